import { parseCommandArgs } from "./args.ts";
import { openChain } from "./chain.ts";
import { zstdLevelFor } from "./create.ts";
import type { Command } from "./types.ts";
import { UsageError } from "../errors.ts";
import { openArchiveOutput } from "../io/output.ts";
import { mergeChain } from "../chain/merge.ts";

const USAGE =
  "vmabak merge FULL INC1 ... INCn -o OUTPUT|- [--zstd[=LEVEL]] [-v]";

export const mergeCommand: Command = {
  name: "merge",
  summary:
    "turn a full and its incrementals into one ordinary full archive (Proxmox reads it)",
  usage: USAGE,
  async run(ctx) {
    const { values, positionals } = parseCommandArgs(ctx.args, {
      output: { type: "string", short: "o" },
      zstd: { type: "string" },
      verbose: { type: "boolean", short: "v" },
    }, { min: 1, max: Infinity, usage: USAGE });
    if (typeof values.output !== "string") {
      throw new UsageError(`-o OUTPUT is required (usage: ${USAGE})`);
    }
    const newestFirst = [...positionals].reverse();
    const chain = await openChain(newestFirst, ctx, "merge");
    try {
      const zstd = zstdLevelFor(values.output, values.zstd);
      const output = await openArchiveOutput(
        values.output,
        ctx.stdout,
        zstd === undefined ? {} : { zstd },
      );
      try {
        const result = await mergeChain(chain.readers, chain.links, output, {
          signal: ctx.signal,
        });
        await output.commit();
        if (values.verbose) {
          chain.links.forEach((l, i) =>
            ctx.stderr.line(
              `merge: ${result.taken[i]} clusters from ${l.label}`,
            )
          );
          ctx.stderr.line(
            `merge: wrote ${values.output} (uuid ${result.uuid}), ${result.archiveBytes} bytes`,
          );
        }
      } catch (error) {
        await output.abort();
        throw error;
      }
    } finally {
      await chain.close();
    }
  },
};
