import { formatUuid, VMA_VMSTATE_NAME } from "../vma/format.ts";
import type { VmaHeader } from "../vma/header.ts";
import { ChainError } from "./errors.ts";
import { type IncrementalInfo, readIncremental } from "./incremental.ts";

/** One archive of a chain, as given on the command line. */
export interface ChainLink {
  /** How the user named it (a path), for messages. */
  label: string;
  header: VmaHeader;
  /** Null for a full archive. */
  incremental: IncrementalInfo | null;
}

/** Reads a link's incremental record (null for a full), naming the archive in errors. */
export function makeLink(label: string, header: VmaHeader): ChainLink {
  try {
    return { label, header, incremental: readIncremental(header) };
  } catch (error) {
    throw new ChainError(
      `Cannot use ${label}: ${
        (error as Error).message.replace(/^Cannot /, "")
      }`,
      { cause: error },
    );
  }
}

/**
 * Checks that `links`, newest first, form one chain: each incremental's base
 * is the next link's uuid, the last link is the full all of them name, and
 * every disk of the newest archive is in each base with the same size.
 * Throws a one-line `ChainError` saying what is wrong.
 */
export function checkChain(links: ChainLink[]): void {
  if (links.length === 0) throw new ChainError("Cannot use chain: it is empty");
  const uuids = links.map((l) => formatUuid(l.header.uuid));
  const seen = new Map<string, number>();
  uuids.forEach((u, i) => {
    const before = seen.get(u);
    if (before !== undefined) {
      throw new ChainError(
        `Cannot use chain: ${links[i]!.label} and ${
          links[before]!.label
        } are the same archive (uuid ${u})`,
      );
    }
    seen.set(u, i);
  });
  const last = links[links.length - 1]!;
  if (last.incremental !== null) {
    const base = last.incremental.record.base;
    const given = seen.get(base);
    throw new ChainError(
      given !== undefined
        ? `Cannot use chain: wrong order, ${last.label} is based on ${
          links[given]!.label
        }; give the archives ${
          links.length > 1 ? "newest first" : "in order"
        } ending with the full`
        : `Cannot use chain: ${last.label} is an incremental (base ${base}, full ${last.incremental.record.full}) and its base is not given`,
    );
  }
  const full = uuids[uuids.length - 1]!;
  for (let i = 0; i < links.length - 1; i++) {
    const link = links[i]!;
    const next = links[i + 1]!;
    const inc = link.incremental;
    if (inc === null) {
      throw new ChainError(
        `Cannot use chain: ${link.label} is a full backup, so ${next.label} cannot be one of its bases`,
      );
    }
    if (inc.record.full !== full) {
      throw new ChainError(
        `Cannot use chain: ${link.label} belongs to the chain of full ${inc.record.full}, not of ${last.label} (${full}): another VM or another chain`,
      );
    }
    if (inc.record.base !== uuids[i + 1]) {
      const at = seen.get(inc.record.base);
      throw new ChainError(
        at !== undefined
          ? `Cannot use chain: wrong order, ${link.label} is based on ${
            links[at]!.label
          }, not on ${next.label}`
          : `Cannot use chain: a link is missing, ${link.label} is based on ${inc.record.base} (incremental ${
            inc.record.index - 1
          } of its chain), which is not given`,
      );
    }
    for (const d of link.header.devices) {
      if (d.name === VMA_VMSTATE_NAME) continue;
      const b = next.header.devices.find((x) => x.name === d.name);
      if (b === undefined || b.size !== d.size) {
        throw new ChainError(
          `Cannot use chain: disk ${d.name} of ${link.label} ${
            b === undefined
              ? `is not in ${next.label}`
              : `has ${d.size} bytes, ${b.size} in ${next.label}`
          }`,
        );
      }
    }
  }
}
