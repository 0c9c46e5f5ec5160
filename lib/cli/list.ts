import { readArchiveHeader } from "./archive.ts";
import { parseCommandArgs } from "./args.ts";
import type { Command } from "./types.ts";
import { formatUuid, VMA_VMSTATE_NAME } from "../vma/format.ts";
import type { DecodedVmaHeader, VmaHeader } from "../vma/header.ts";
import { printable } from "../text/escape.ts";
import { type IncrementalInfo, readIncremental } from "../chain/incremental.ts";

const USAGE = "vmabak list ARCHIVE [--json]";

/** Formats seconds since the epoch like C's ctime(3), in local time, without the newline. */
export function formatCtime(seconds: number): string {
  const d = new Date(seconds * 1000);
  if (Number.isNaN(d.getTime())) {
    return `${seconds} seconds since the epoch (not a date)`;
  }
  const days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  const months = [
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
  ];
  const p2 = (n: number) => String(n).padStart(2, "0");
  return `${days[d.getDay()]} ${months[d.getMonth()]} ${
    String(d.getDate()).padStart(2, " ")
  } ` +
    `${p2(d.getHours())}:${p2(d.getMinutes())}:${
      p2(d.getSeconds())
    } ${d.getFullYear()}`;
}

/**
 * The lines of Proxmox's `vma list`. Names are printed with control
 * characters escaped (one entry, one line); sizes are exact u64 integers.
 */
export function listLines(h: DecodedVmaHeader): string[] {
  const lines = h.configs.map((c) =>
    `CFG: size: ${c.data.length} name: ${printable(c.name)}`
  );
  for (const d of h.devices) {
    lines.push(
      d.name === VMA_VMSTATE_NAME
        ? `VMSTATE: dev_id=${d.id} memory: ${d.exactSize}`
        : `DEV: dev_id=${d.id} size: ${d.exactSize} devname: ${
          printable(d.name)
        }`,
    );
  }
  lines.push(`CTIME: ${formatCtime(h.ctime)}`);
  return lines;
}

/** `list --json`: names as JSON strings, sizes as exact JSON integers. */
export function listJson(h: DecodedVmaHeader): string {
  return jsonForTerminal(JSON.stringify(
    listObject(h),
    (_key, value) =>
      typeof value === "bigint"
        ? value <= BigInt(Number.MAX_SAFE_INTEGER)
          ? Number(value)
          : (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON(
            value.toString(),
          )
        : value,
    2,
  ));
}

/**
 * JSON text with the characters JSON.stringify leaves raw but a terminal
 * may act on (DEL, C1 controls, line separators, bidi overrides) written as
 * `\uXXXX` escapes: the same JSON value, safe to print.
 */
export function jsonForTerminal(json: string): string {
  return json.replace(
    /[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** What `list` adds for an incremental archive, after Proxmox's lines. */
export function incrementalLines(h: VmaHeader, inc: IncrementalInfo): string[] {
  const r = inc.record;
  const lines = [
    `INCREMENTAL: ${r.index} of full ${r.full} base ${r.base} uuid ${
      formatUuid(h.uuid)
    }`,
  ];
  for (const d of h.devices) {
    const set = inc.sets.get(d.id);
    if (set === undefined) continue;
    lines.push(
      `CHANGED: dev_id=${d.id} clusters: ${set.count} of ${set.size} devname: ${
        printable(d.name)
      }`,
    );
  }
  lines.push(
    "NOTE: an incremental archive: Proxmox's vma cannot restore it; " +
      "'vmabak merge FULL INC... -o OUT.vma' makes a full archive it accepts, " +
      "'vmabak extract THIS --base PREV... DIR' restores the chain",
  );
  return lines;
}

function listObject(h: DecodedVmaHeader): unknown {
  const inc = readIncremental(h);
  return {
    uuid: formatUuid(h.uuid),
    ctime: h.ctime,
    configs: h.configs.map((c) => ({ name: c.name, size: c.data.length })),
    devices: h.devices.map((d) => ({
      id: d.id,
      name: d.name,
      size: d.exactSize,
      vmstate: d.name === VMA_VMSTATE_NAME,
      ...(inc?.sets.has(d.id)
        ? { changedClusters: inc.sets.get(d.id)!.count }
        : {}),
    })),
    incremental: inc === null ? null : {
      index: inc.record.index,
      base: inc.record.base,
      full: inc.record.full,
    },
  };
}

export const listCommand: Command = {
  name: "list",
  summary: "list the configs and devices of an archive",
  usage: USAGE,
  async run(ctx) {
    const { values, positionals } = parseCommandArgs(ctx.args, {
      json: { type: "boolean" },
    }, {
      min: 1,
      max: 1,
      usage: USAGE,
    });
    const header = await readArchiveHeader(positionals[0]!, ctx);
    if (values.json) {
      ctx.out.line(listJson(header));
    } else {
      for (const line of listLines(header)) ctx.out.line(line);
      const inc = readIncremental(header);
      if (inc !== null) {
        for (const line of incrementalLines(header, inc)) ctx.out.line(line);
      }
    }
  },
};
