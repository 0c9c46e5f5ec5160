import { formatUuid, VMA_VMSTATE_NAME } from "../vma/format.ts";
import type { VmaHeader } from "../vma/header.ts";
import {
  type ClusterSet,
  decodeRunBytes,
  decodeRuns,
  encodeRunBytes,
  encodeRuns,
} from "./cluster_set.ts";
import { ChainError } from "./errors.ts";
import { clusterCount } from "../vma/format.ts";
import { parseVmDescription } from "../backup/description.ts";
import { concatBytes } from "../io/concat.ts";

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
  /**
   * Per disk (by device name): how many clusters it holds, and which: their
   * runs (`encodeRuns`) inline, or, when long, in configs of their own
   * (`runsConfigs`, `encodeRunBytes` split in order).
   */
  disks: Record<string, IncrementalDisk>;
}

export type IncrementalDisk =
  | { clusters: number; runs: string }
  | { clusters: number; runsConfigs: string[] };

/** Runs longer than this (base64 characters) go into configs of their own. */
export const INLINE_RUNS_LIMIT = 4096;
/** Name of the configs holding long runs: `vmabak-runs-<disk index>-<part>`. */
export const RUNS_CONFIG_PREFIX = "vmabak-runs-";
const MAX_CONFIG_BYTES = 65535;

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
      !isObject(d) || typeof d.clusters !== "number" ||
      !Number.isSafeInteger(d.clusters) || d.clusters < 0
    ) {
      throw bad(`disk ${JSON.stringify(name)} has no cluster count`);
    }
    if (typeof d.runs === "string") {
      out[name] = { clusters: d.clusters, runs: d.runs };
    } else if (
      Array.isArray(d.runsConfigs) &&
      d.runsConfigs.every((c) => typeof c === "string")
    ) {
      out[name] = { clusters: d.clusters, runsConfigs: d.runsConfigs };
    } else {
      throw bad(`disk ${JSON.stringify(name)} has no runs`);
    }
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
  // An incremental's description goes through the one door, whole.
  const config = header.configs.find((c) => c.name === DESCRIPTION_CONFIG)!;
  const record = parseVmDescription(config.data).incremental!;
  const sets = new Map<number, ClusterSet>();
  const disks = header.devices.filter((d) => d.name !== VMA_VMSTATE_NAME);
  for (const d of disks) {
    const entry = record.disks[d.name];
    if (entry === undefined) {
      throw new ChainError(
        `Cannot read the incremental record: no cluster set for disk ${d.name}`,
      );
    }
    const set = "runs" in entry
      ? decodeRuns(entry.runs, clusterCount(d.size))
      : decodeRunBytes(
        joinConfigs(header, entry.runsConfigs),
        clusterCount(d.size),
      );
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

function joinConfigs(header: VmaHeader, names: string[]): Uint8Array {
  const parts = names.map((n) => {
    const c = header.configs.find((c) => c.name === n);
    if (c === undefined) {
      throw new ChainError(
        `Cannot read the incremental record: config ${n} is not in the archive`,
      );
    }
    return c.data;
  });
  return concatBytes(parts);
}

/** A new incremental's record, and the configs that hold its long runs. */
export interface NewIncremental {
  record: IncrementalRecord;
  configs: { name: string; data: Uint8Array }[];
}

/**
 * The record of a new incremental whose base is the archive with `base`'s
 * header; `sets` by disk name, in the archive's disk order.
 */
export function makeIncremental(
  base: VmaHeader,
  sets: Map<string, ClusterSet>,
): NewIncremental {
  const baseInfo = readIncremental(base);
  const uuid = formatUuid(base.uuid);
  const disks: IncrementalRecord["disks"] = {};
  const configs: NewIncremental["configs"] = [];
  let index = 0;
  for (const [name, set] of sets) {
    const runs = encodeRuns(set);
    if (runs.length <= INLINE_RUNS_LIMIT) {
      disks[name] = { clusters: set.count, runs };
    } else {
      const bytes = encodeRunBytes(set);
      const names: string[] = [];
      for (let at = 0, part = 0; at < bytes.length; part++) {
        const data = bytes.slice(at, at + MAX_CONFIG_BYTES);
        const n = `${RUNS_CONFIG_PREFIX}${index}-${part}`;
        configs.push({ name: n, data });
        names.push(n);
        at += data.length;
      }
      disks[name] = { clusters: set.count, runsConfigs: names };
    }
    index++;
  }
  return {
    record: {
      base: uuid,
      full: baseInfo?.record.full ?? uuid,
      index: (baseInfo?.record.index ?? 0) + 1,
      disks,
    },
    configs,
  };
}
