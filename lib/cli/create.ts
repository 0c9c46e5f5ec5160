import { parseCommandArgs, parseZstdLevel } from "./args.ts";
import type { Command } from "./types.ts";
import { describeFsError } from "../io/input.ts";
import { openArchiveOutput } from "../io/output.ts";
import { createArchive, type ImageSource } from "../vma/create.ts";
import { UsageError } from "../errors.ts";

const USAGE =
  "vmabak create ARCHIVE [--zstd[=LEVEL]] [-c CONFIGFILE]... [NAME=]IMAGE...";

/** Default zstd level, also used when ARCHIVE ends in `.zst`. */
export const DEFAULT_ZSTD_LEVEL = 3;

/** `--zstd[=LEVEL]`, or the default level for an ARCHIVE named `*.zst`. */
export function zstdLevelFor(
  archive: string,
  option: unknown,
): number | undefined {
  return parseZstdLevel(option) ??
    (archive.endsWith(".zst") ? DEFAULT_ZSTD_LEVEL : undefined);
}

/** `NAME=IMAGE` or `IMAGE` (named `diskN`, N counting from 0 as Proxmox's tool does). */
export function parseImageArgs(args: string[]): ImageSource[] {
  return args.map((arg, i) => {
    const eq = arg.indexOf("=");
    if (eq === 0) throw new UsageError(`empty device name in "${arg}"`);
    if (eq > 0) {
      const path = arg.slice(eq + 1);
      if (path === "") throw new UsageError(`no image path in "${arg}"`);
      return { name: arg.slice(0, eq), path };
    }
    return { name: `disk${i}`, path: arg };
  });
}

export async function readConfigFiles(
  paths: string[],
): Promise<{ name: string; data: Uint8Array }[]> {
  return await Promise.all(paths.map(async (path) => {
    try {
      return { name: path.split("/").pop()!, data: await Deno.readFile(path) };
    } catch (error) {
      throw new Error(`Cannot read config ${path}: ${describeFsError(error)}`, {
        cause: error,
      });
    }
  }));
}

export const createCommand: Command = {
  name: "create",
  summary: "create an archive from raw images (offline)",
  usage: USAGE,
  async run(ctx) {
    const { values, positionals } = parseCommandArgs(
      ctx.args,
      {
        config: { type: "string", short: "c", multiple: true },
        zstd: { type: "string" },
      },
      { min: 1, max: Infinity, usage: USAGE },
    );
    const [archive, ...imageArgs] = positionals as [string, ...string[]];
    const images = parseImageArgs(imageArgs);
    const configs = await readConfigFiles(
      (values.config as string[] | undefined) ?? [],
    );
    const zstd = zstdLevelFor(archive, values.zstd);
    const output = await openArchiveOutput(
      archive,
      ctx.stdout,
      zstd === undefined ? {} : { zstd },
    );
    try {
      await createArchive(output, { configs, images, signal: ctx.signal });
      await output.commit();
    } catch (error) {
      await output.abort();
      throw error;
    }
  },
};
