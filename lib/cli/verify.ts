import { openArchiveReader } from "./archive.ts";
import { parseCommandArgs } from "./args.ts";
import type { Command } from "./types.ts";
import { formatUuid } from "../vma/format.ts";
import { printable } from "../text/escape.ts";

const USAGE = "vmabak verify ARCHIVE [-v]";

export const verifyCommand: Command = {
  name: "verify",
  summary: "check every rule of an archive, completeness included",
  usage: USAGE,
  async run(ctx) {
    const { values, positionals } = parseCommandArgs(ctx.args, {
      verbose: { type: "boolean", short: "v" },
    }, {
      min: 1,
      max: 1,
      usage: USAGE,
    });
    const reader = await openArchiveReader(positionals[0]!, ctx);
    const perDevice = new Map<
      number,
      { clusters: number; zero: number; stored: number }
    >();
    for (const d of reader.header.devices) {
      perDevice.set(d.id, { clusters: 0, zero: 0, stored: 0 });
    }
    let extents = 0;
    for await (const ev of reader.clusters()) {
      ctx.signal.throwIfAborted();
      extents = ev.extent + 1;
      const s = perDevice.get(ev.device.id)!;
      s.clusters++;
      if (ev.mask === 0) s.zero++;
      let m = ev.mask;
      while (m) {
        s.stored += 4096;
        m &= m - 1;
      }
    }
    reader.checkComplete();
    if (values.verbose) {
      ctx.stderr.line(
        `archive ${formatUuid(reader.header.uuid)}: ${extents} extents`,
      );
      for (const d of reader.header.devices) {
        const s = perDevice.get(d.id)!;
        ctx.stderr.line(
          `device ${d.id} ${
            printable(d.name)
          }: ${d.exactSize} bytes, ${s.clusters} clusters (${s.zero} all zero), ${s.stored} bytes stored`,
        );
      }
      ctx.stderr.line("verify: archive is valid and complete");
    }
  },
};
