import { parseCommandArgs } from "./args.ts";
import { openChain } from "./chain.ts";
import type { Command, CommandContext } from "./types.ts";
import { extractChain } from "../chain/extract.ts";
import { UsageError } from "../errors.ts";
import { parseNbdUri } from "../extract/nbd_uri.ts";
import { extractQcow2 } from "../extract/qcow2.ts";
import { extractToNbd } from "../extract/to_nbd.ts";
import { printable } from "../text/escape.ts";

const USAGE =
  "vmabak extract ARCHIVE [--base PREV]... TARGETDIR [--format raw|qcow2] [-v] | vmabak extract ARCHIVE --to NBD-URI";

export const extractCommand: Command = {
  name: "extract",
  summary:
    "write an archive's disks (sparse raw files), vmstate and configs into a new directory, or its disks into NBD exports; an incremental with its --base archives",
  usage: USAGE,
  async run(ctx) {
    const { values, positionals } = parseCommandArgs(ctx.args, {
      verbose: { type: "boolean", short: "v" },
      base: { type: "string", multiple: true },
      to: { type: "string" },
      format: { type: "string" },
    }, {
      min: 1,
      max: 2,
      usage: USAGE,
    });
    const bases = (values.base as string[] | undefined) ?? [];
    if (values.to !== undefined) {
      if (positionals.length !== 1 || bases.length > 0) {
        throw new UsageError(
          `--to takes one full archive and no TARGETDIR (usage: ${USAGE})`,
        );
      }
      return await extractTo(positionals[0]!, String(values.to), ctx);
    }
    if (positionals.length !== 2) {
      throw new UsageError(`expected ARCHIVE and TARGETDIR (usage: ${USAGE})`);
    }
    const format = values.format ?? "raw";
    if (format !== "raw" && format !== "qcow2") {
      throw new UsageError(`--format is raw or qcow2 (usage: ${USAGE})`);
    }
    if (format === "qcow2") {
      if (bases.length > 0) {
        throw new UsageError(
          `--format qcow2 takes one full archive (usage: ${USAGE})`,
        );
      }
      const chain = await openChain([positionals[0]!], ctx, "extract");
      try {
        const result = await extractQcow2(chain.readers[0]!, positionals[1]!, {
          signal: ctx.signal,
        });
        for (const device of result.skipped) {
          ctx.stderr.line(
            `skipped ${
              printable(device, 80)
            } (not a disk; extract as raw for it)`,
          );
        }
        if (values.verbose) printExtracted(ctx, positionals[1]!, result.files);
      } finally {
        await chain.close();
      }
      return;
    }
    const chain = await openChain([positionals[0]!, ...bases], ctx, "extract");
    try {
      const result = await extractChain(
        chain.readers,
        chain.links,
        positionals[1]!,
        { signal: ctx.signal },
      );
      if (values.verbose) printExtracted(ctx, positionals[1]!, result.files);
    } finally {
      await chain.close();
    }
  },
};

async function extractTo(
  archive: string,
  uri: string,
  ctx: CommandContext,
): Promise<void> {
  const target = parseNbdUri(uri);
  const chain = await openChain([archive], ctx, "extract");
  try {
    const result = await extractToNbd(chain.readers[0]!, target, {
      signal: ctx.signal,
    });
    for (const [device, name] of result.exports) {
      ctx.stderr.line(
        `extracted ${printable(device, 80)} to NBD export "${
          printable(name, 80)
        }"`,
      );
    }
    for (const device of result.skipped) {
      ctx.stderr.line(`skipped ${printable(device, 80)} (not a disk)`);
    }
  } finally {
    await chain.close();
  }
}

/** `-v`: one line per file written into `dir`. */
function printExtracted(
  ctx: CommandContext,
  dir: string,
  files: readonly string[],
): void {
  for (const f of files) {
    ctx.stderr.line(`extracted ${printable(`${dir}/${f}`)}`);
  }
}
