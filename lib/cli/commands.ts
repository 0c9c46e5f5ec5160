import type { Command } from "./types.ts";

/**
 * Every subcommand, in the order `vmabak --help` lists them. Each lives in a
 * file of its own beside this one and is added here.
 */
export const COMMANDS: readonly Command[] = [];
