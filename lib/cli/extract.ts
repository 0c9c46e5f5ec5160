import { openArchiveReader } from "./archive.ts";
import { parseCommandArgs } from "./args.ts";
import type { Command } from "./types.ts";
import { extractArchive } from "../vma/extract.ts";
import { printable } from "../text/escape.ts";

const USAGE = "vmabak extract ARCHIVE TARGETDIR [-v]";

export const extractCommand: Command = {
  name: "extract",
  summary:
    "write an archive's disks (sparse raw files), vmstate and configs into a new directory",
  usage: USAGE,
  async run(ctx) {
    const { values, positionals } = parseCommandArgs(ctx.args, {
      verbose: { type: "boolean", short: "v" },
    }, {
      min: 2,
      max: 2,
      usage: USAGE,
    });
    const reader = await openArchiveReader(positionals[0]!, ctx);
    const result = await extractArchive(reader, positionals[1]!, {
      signal: ctx.signal,
    });
    if (values.verbose) {
      for (const f of result.files) {
        ctx.stderr.line(`extracted ${printable(`${positionals[1]}/${f}`)}`);
      }
    }
  },
};
