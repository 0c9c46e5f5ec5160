import { formatUuid, VMA_VMSTATE_NAME } from "../vma/format.ts";
import type { VmaHeader } from "../vma/header.ts";
import { ClusterSet, decodeRuns, encodeRuns } from "./cluster_set.ts";
import { ChainError } from "./errors.ts";
import { clusterCount } from "../vma/format.ts";

/** The config that describes a vmabak archive (see lib/backup). */
export const DESCRIPTION_CONFIG = "vmabak.json";

/**
 * What `vmabak.json` says of an incremental archive, under the key
 * `incremental`. A full archive has no such key.
 */
export interface IncrementalRecord {
  /** uuid of the archive this one continues (the chain's previous link). */
  base: string;
  /** uuid of the chain's full archive. */
  full: string;
  /** Place in the chain: 1 for the first incremental after the full. */
  index: number;
  /** Per disk (by device name): how many clusters it holds, and which (`encodeRuns`). */
  disks: Record<string, { clusters: number; runs: string }>;
}

/** An incremental record checked against its archive's header. */
export interface IncrementalInfo {
  record: IncrementalRecord;
  /** Per disk device id: exactly the clusters the archive holds. */
  sets: Map<number, ClusterSet>;
}

const UUID_RE =
  /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Validates the `incremental` value of a vmabak.json (untrusted input). */
export function parseIncrementalRecord(value: unknown): IncrementalRecord {
  const bad = (why: string) =>
    new ChainError(`Cannot read the incremental record: ${why}`);
  if (!isObject(value)) throw bad("not an object");
  const { base, full, index, disks } = value;
  if (typeof base !== "string" || !UUID_RE.test(base)) {
    throw bad("base is not a uuid");
  }
  if (typeof full !== "string" || !UUID_RE.test(full)) {
    throw bad("full is not a uuid");
  }
  if (typeof index !== "number" || !Number.isInteger(index) || index < 1) {
    throw bad("index is not a positive integer");
  }
  if (!isObject(disks)) throw bad("disks is not an object");
  const out: IncrementalRecord["disks"] = {};
  for (const [name, d] of Object.entries(disks)) {
    if (
      !isObject(d) || typeof d.runs !== "string" ||
      typeof d.clusters !== "number" || !Number.isSafeInteger(d.clusters) ||
      d.clusters < 0
    ) {
      throw bad(`disk ${JSON.stringify(name)} has no clusters and runs`);
    }
    out[name] = { clusters: d.clusters, runs: d.runs };
  }
  return { base, full, index, disks: out };
}

/** The archive's vmabak.json as a plain object, or null when it has none. */
export function readDescription(
  header: VmaHeader,
): Record<string, unknown> | null {
  const config = header.configs.find((c) => c.name === DESCRIPTION_CONFIG);
  if (config === undefined) return null;
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder().decode(config.data));
  } catch {
    throw new ChainError(
      `Cannot read ${DESCRIPTION_CONFIG}: not valid JSON`,
    );
  }
  if (!isObject(value)) {
    throw new ChainError(`Cannot read ${DESCRIPTION_CONFIG}: not an object`);
  }
  return value;
}

/**
 * The incremental record of an archive, checked against its header: every
 * disk has a set, every set names a disk, counts agree. Null for a full.
 */
export function readIncremental(header: VmaHeader): IncrementalInfo | null {
  const description = readDescription(header);
  if (description?.incremental === undefined) return null;
  const record = parseIncrementalRecord(description.incremental);
  const sets = new Map<number, ClusterSet>();
  const disks = header.devices.filter((d) => d.name !== VMA_VMSTATE_NAME);
  for (const d of disks) {
    const entry = record.disks[d.name];
    if (entry === undefined) {
      throw new ChainError(
        `Cannot read the incremental record: no cluster set for disk ${d.name}`,
      );
    }
    const set = decodeRuns(entry.runs, clusterCount(d.size));
    if (set.count !== entry.clusters) {
      throw new ChainError(
        `Cannot read the incremental record: disk ${d.name} says ${entry.clusters} clusters, its runs hold ${set.count}`,
      );
    }
    sets.set(d.id, set);
  }
  for (const name of Object.keys(record.disks)) {
    if (!disks.some((d) => d.name === name)) {
      throw new ChainError(
        `Cannot read the incremental record: disk ${name} is not in the archive`,
      );
    }
  }
  return { record, sets };
}

/**
 * The record of a new incremental whose base is the archive with `base`'s
 * header; `sets` by disk name.
 */
export function makeIncrementalRecord(
  base: VmaHeader,
  sets: Map<string, ClusterSet>,
): IncrementalRecord {
  const baseInfo = readIncremental(base);
  const uuid = formatUuid(base.uuid);
  const disks: IncrementalRecord["disks"] = {};
  for (const [name, set] of sets) {
    disks[name] = { clusters: set.count, runs: encodeRuns(set) };
  }
  return {
    base: uuid,
    full: baseInfo?.record.full ?? uuid,
    index: (baseInfo?.record.index ?? 0) + 1,
    disks,
  };
}
