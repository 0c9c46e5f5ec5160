import { openArchiveReader } from "./archive.ts";
import { parseCommandArgs } from "./args.ts";
import type { Command } from "./types.ts";
import { formatUuid } from "../vma/format.ts";
import { printable } from "../text/escape.ts";
import { makeLink } from "../chain/chain.ts";
import { expectRecordedClusters } from "../chain/replay.ts";

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
    let link;
    try {
      link = makeLink(positionals[0]!, reader.header);
    } catch (error) {
      await reader.close();
      throw error;
    }
    // An incremental must hold exactly its recorded clusters.
    expectRecordedClusters(reader, link);
    const inc = link.incremental;
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
        `archive ${formatUuid(reader.header.uuid)}: ${extents} extents${
          inc === null
            ? ""
            : `, incremental ${inc.record.index} of full ${inc.record.full}, base ${inc.record.base}`
        }`,
      );
      for (const d of reader.header.devices) {
        const s = perDevice.get(d.id)!;
        ctx.stderr.line(
          `device ${d.id} ${
            printable(d.name)
          }: ${d.exactSize} bytes, ${s.clusters}${
            inc?.sets.has(d.id) ? ` changed of ${inc.sets.get(d.id)!.size}` : ""
          } clusters (${s.zero} all zero), ${s.stored} bytes stored`,
        );
      }
      ctx.stderr.line(
        inc === null
          ? "verify: archive is valid and complete"
          : "verify: incremental archive is valid and holds exactly its recorded clusters; vmabak merge makes a full Proxmox accepts",
      );
    }
  },
};
