import type { Command } from "./types.ts";
import { backupCommand } from "./backup.ts";
import { cleanupCommand } from "./cleanup.ts";
import { configCommand } from "./config.ts";
import { createCommand } from "./create.ts";
import { extractCommand } from "./extract.ts";
import { listCommand } from "./list.ts";
import { mergeCommand } from "./merge.ts";
import { restoreCommand } from "./restore.ts";
import { serveCommand } from "./serve.ts";
import { resumeCommand } from "./resume.ts";
import { verifyCommand } from "./verify.ts";

/**
 * Every subcommand, in the order `vmabak --help` lists them. Each lives in a
 * file of its own beside this one and is added here.
 */
export const COMMANDS: readonly Command[] = [
  backupCommand,
  createCommand,
  listCommand,
  configCommand,
  verifyCommand,
  extractCommand,
  mergeCommand,
  restoreCommand,
  serveCommand,
  resumeCommand,
  cleanupCommand,
];
