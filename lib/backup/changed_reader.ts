/**
 * Reads the changed clusters of one disk's snapshot from QEMU's NBD export:
 * the set comes from the export's `qemu:dirty-bitmap:NAME` context (the
 * run's frozen bitmap), then only those clusters are read, in order, several
 * requests in flight. The copy-before-write filter was given the same
 * bitmap, so it never keeps old data of the clean part (and that part cannot
 * be read); what was stored is trimmed in long spans, clean clusters
 * between included, so the filter stops copying it: one TRIM per span
 * instead of two per changed run (measured: the copy of 1638 scattered
 * clusters of a 2 GiB disk went from 0.64-1.02 s to 0.46-0.51 s). One
 * connection: a second one (multi-conn) and NBD's DF flag (QEMU reads
 * without looking for holes) were measured no faster, and cost more CPU.
 */
import { ClusterSet } from "../chain/cluster_set.ts";
import { NbdClient } from "../nbd/client.ts";
import { NBD_STATE_DIRTY } from "../nbd/format.ts";
import { clusterCount, VMA_CLUSTER_SIZE } from "../vma/format.ts";
import type { ClusterSink } from "./cluster_assembler.ts";
import { NbdRequestError } from "../nbd/errors.ts";
import { NBD_E } from "../nbd/format.ts";
import { SnapshotBrokenError } from "./pull_reader.ts";
import { TrimQueue } from "./trim_queue.ts";

/** Clusters per read request (1 MiB). */
const CHUNK_CLUSTERS = 16;

/**
 * What was stored is trimmed in spans of at least this many bytes of the
 * disk (clean clusters between included: the filter never copies those).
 */
const TRIM_SPAN = 64 * 1024 * 1024;

/** The meta context of a dirty bitmap exported with the snapshot. */
export function dirtyContext(bitmap: string): string {
  return `qemu:dirty-bitmap:${bitmap}`;
}

export interface ChangedDisk {
  socketPath: string;
  exportName: string;
  diskName: string;
  size: number;
  /** The frozen bitmap exported with the snapshot. */
  bitmap: string;
}

/** Opens a connection with the dirty bitmap's context and checks the export's size. */
export async function connectChanged(disk: ChangedDisk): Promise<NbdClient> {
  const client = await NbdClient.connect({
    address: { path: disk.socketPath },
    exportName: disk.exportName,
    metaContexts: [dirtyContext(disk.bitmap)],
  });
  if (client.size !== disk.size) {
    await client.close();
    throw new Error(
      `Cannot read the snapshot of disk ${disk.diskName}: the export has ${client.size} bytes, not ${disk.size}`,
    );
  }
  return client;
}

/** Every cluster the bitmap marks (a cluster partly dirty counts whole). */
export async function changedClusters(
  client: NbdClient,
  disk: ChangedDisk,
): Promise<ClusterSet> {
  const set = new ClusterSet(clusterCount(disk.size));
  const context = dirtyContext(disk.bitmap);
  for (let pos = 0; pos < disk.size;) {
    const extents = await client.blockStatus(pos, disk.size - pos, context);
    for (const e of extents) {
      if ((e.flags & NBD_STATE_DIRTY) !== 0) {
        const first = Math.floor(e.offset / VMA_CLUSTER_SIZE);
        const end = Math.ceil((e.offset + e.length) / VMA_CLUSTER_SIZE);
        for (let c = first; c < end; c++) set.add(c);
      }
      pos = Math.max(pos, e.offset + e.length);
    }
  }
  return set;
}

export interface ReadChangedOptions {
  devId: number;
  sink: ClusterSink;
  /** Read requests in flight (default 32: changed clusters are often single). */
  readAhead?: number;
  /** TRIM the clean part first and each chunk once stored (default true). */
  trim?: boolean;
  onStored?: (bytes: number) => void;
  /** Bytes of changed data per second at most. */
  speed?: number;
  /** Throws to stop. */
  check?: () => void;
}

/**
 * Reads the clusters of `set` in order and stores each into the sink. A
 * snapshot QEMU broke (EINVAL) becomes a `SnapshotBrokenError`.
 */
export async function readChanged(
  client: NbdClient,
  disk: ChangedDisk,
  set: ClusterSet,
  options: ReadChangedOptions,
): Promise<void> {
  try {
    await readRuns(client, disk, set, options);
  } catch (error) {
    if (error instanceof NbdRequestError && error.errno === NBD_E.INVAL) {
      throw new SnapshotBrokenError(disk.diskName, 0, { cause: error });
    }
    throw error;
  }
}

async function readRuns(
  client: NbdClient,
  disk: ChangedDisk,
  set: ClusterSet,
  options: ReadChangedOptions,
): Promise<void> {
  const trim = (options.trim ?? true) && client.canTrim;
  const chunks: [number, number][] = [];
  for (const [start, length] of set.runs()) {
    for (let c = start; c < start + length; c += CHUNK_CLUSTERS) {
      chunks.push([c, Math.min(CHUNK_CLUSTERS, start + length - c)]);
    }
  }
  const bytes = (c: number, n: number) =>
    [
      c * VMA_CLUSTER_SIZE,
      Math.min((c + n) * VMA_CLUSTER_SIZE, disk.size) - c * VMA_CLUSTER_SIZE,
    ] as const;
  const trims = new TrimQueue(64);
  /** Where the part already stored and trimmed ends. */
  let trimmed = 0;
  const readAhead = options.readAhead ?? 32;
  const pool: Uint8Array[] = [];
  const pending: Promise<Uint8Array>[] = [];
  let next = 0;
  const launch = () => {
    const [c, n] = chunks[next++]!;
    const [offset, length] = bytes(c, n);
    const buf = (n === CHUNK_CLUSTERS ? pool.pop() : undefined) ??
      new Uint8Array(n * VMA_CLUSTER_SIZE);
    const p = client.read(offset, buf.subarray(0, length)).then(() => buf);
    p.catch(() => {});
    pending.push(p);
  };
  while (next < chunks.length && pending.length < readAhead) launch();
  const started = performance.now();
  let stored = 0;
  for (let i = 0; i < chunks.length; i++) {
    options.check?.();
    const buf = await pending.shift()!;
    const [c, n] = chunks[i]!;
    const [offset, length] = bytes(c, n);
    await options.sink.writeClusters(
      options.devId,
      c,
      n,
      buf.subarray(0, length),
    );
    if (n === CHUNK_CLUSTERS) pool.push(buf);
    if (next < chunks.length) launch();
    options.onStored?.(length);
    stored += length;
    if (options.speed) {
      const wait = started + (stored / options.speed) * 1000 -
        performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    if (trim && offset + length - trimmed >= TRIM_SPAN) {
      await trims.send(client, trimmed, offset + length - trimmed);
      trimmed = offset + length;
    }
  }
  if (trim && trimmed < disk.size) {
    await trims.send(client, trimmed, disk.size - trimmed);
  }
  await trims.drain();
}
