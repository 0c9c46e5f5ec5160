import { parseCommandArgs } from "./args.ts";
import { openChain } from "./chain.ts";
import type { Command } from "./types.ts";
import { extractChain } from "../chain/extract.ts";
import { printable } from "../text/escape.ts";

const USAGE = "vmabak extract ARCHIVE [--base PREV]... TARGETDIR [-v]";

export const extractCommand: Command = {
  name: "extract",
  summary:
    "write an archive's disks (sparse raw files), vmstate and configs into a new directory; an incremental with its --base archives",
  usage: USAGE,
  async run(ctx) {
    const { values, positionals } = parseCommandArgs(ctx.args, {
      verbose: { type: "boolean", short: "v" },
      base: { type: "string", multiple: true },
    }, {
      min: 2,
      max: 2,
      usage: USAGE,
    });
    const bases = (values.base as string[] | undefined) ?? [];
    const chain = await openChain([positionals[0]!, ...bases], ctx, "extract");
    try {
      const result = await extractChain(
        chain.readers,
        chain.links,
        positionals[1]!,
        { signal: ctx.signal },
      );
      if (values.verbose) {
        for (const f of result.files) {
          ctx.stderr.line(`extracted ${printable(`${positionals[1]}/${f}`)}`);
        }
      }
    } finally {
      await chain.close();
    }
  },
};
