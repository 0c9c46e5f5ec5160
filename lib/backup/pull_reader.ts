/**
 * Reads one disk's snapshot from QEMU's NBD export, in cluster order: block
 * status first (ranges reported as zero become zero clusters without being
 * read), several 1 MiB reads in flight over one or more connections, each
 * chunk stored into the archive in order, then trimmed from the snapshot so
 * the fleecing image only ever holds what the guest overwrote in the part
 * not read yet.
 */
import { TrimQueue } from "./trim_queue.ts";
import { NbdClient } from "../nbd/client.ts";
import { NbdRequestError } from "../nbd/errors.ts";
import { NBD_E, NBD_STATE_ZERO } from "../nbd/format.ts";
import { VMA_CLUSTER_SIZE } from "../vma/format.ts";
import type { ClusterSink } from "./cluster_assembler.ts";

/** Bytes per read request: 16 clusters. */
export const PULL_CHUNK = 16 * VMA_CLUSTER_SIZE;

/**
 * Chunks read ahead of the one being stored: one read in flight on each of
 * two connections while a chunk is stored. A deeper queue bought no speed
 * and, when the consumer is the slow end (`--zstd`), kept each queued
 * chunk's request promises alive across scavenges: V8 promoted them and its
 * heap grew with the disk (pull --zstd, 512 MiB -> 8 GiB disk: 8 ahead
 * 120 -> 150-159 MiB peak RSS, 2 ahead 110 -> 126 MiB, measured).
 */
export const PULL_READ_AHEAD = 2;

export interface DiskReadOptions {
  socketPath: string;
  exportName: string;
  diskName: string;
  size: number;
  devId: number;
  sink: ClusterSink;
  /** Chunks read ahead of the one being stored (default `PULL_READ_AHEAD`). */
  readAhead?: number;
  /** Connections when the server allows multi-conn (default 2). */
  connections?: number;
  /** TRIM each chunk once stored (default true). */
  trim?: boolean;
  /** Bytes of disk per second at most (0 or absent: unlimited). */
  speed?: number;
  /** Called with the bytes of each chunk once stored. */
  onStored?: (bytes: number) => void;
  /** Throws to stop (a failure elsewhere, an abort). */
  check?: () => void;
}

/** The snapshot can no longer be read: QEMU broke it (the fleecing image could not take a write). */
export class SnapshotBrokenError extends Error {
  override name = "SnapshotBrokenError";
  readonly disk: string;
  readonly offset: number;
  constructor(disk: string, offset: number, options?: ErrorOptions) {
    super(
      `Cannot read the snapshot of disk ${disk} at offset ${offset}: QEMU broke it`,
      options,
    );
    this.disk = disk;
    this.offset = offset;
  }
}

interface Chunk {
  offset: number;
  length: number;
  /** One bit per cluster of the chunk: 1 = zero, not read. */
  zeroMask: number;
  data: Uint8Array | null;
}

export async function readDisk(options: DiskReadOptions): Promise<void> {
  const readAhead = options.readAhead ?? PULL_READ_AHEAD;
  const first = await NbdClient.connect({
    address: { path: options.socketPath },
    exportName: options.exportName,
    metaContexts: ["base:allocation"],
  });
  const clients = [first];
  try {
    if (first.size !== options.size) {
      throw new Error(
        `Cannot read the snapshot of disk ${options.diskName}: the export has ${first.size} bytes, not ${options.size}`,
      );
    }
    const extra = first.canMultiConn ? (options.connections ?? 2) - 1 : 0;
    for (let i = 0; i < extra; i++) {
      clients.push(
        await NbdClient.connect({
          address: { path: options.socketPath },
          exportName: options.exportName,
          metaContexts: ["base:allocation"],
        }),
      );
    }
    const trim = (options.trim ?? true) && first.canTrim;
    const pool: Uint8Array[] = [];
    const chunks = Math.ceil(options.size / PULL_CHUNK);
    const pending: Promise<Chunk>[] = [];
    const trims = new TrimQueue(
      readAhead + 1,
      (error, offset) => broken(error, options, offset),
    );
    let next = 0;
    const started = performance.now();
    const launch = () => {
      const index = next++;
      const client = clients[index % clients.length]!;
      const p = readChunk(client, index, options, pool);
      p.catch(() => {});
      pending.push(p);
    };
    while (next < chunks && pending.length < readAhead) launch();
    for (let done = 0; done < chunks; done++) {
      options.check?.();
      const chunk = await pending.shift()!;
      if (next < chunks) launch();
      await storeChunk(chunk, options);
      if (chunk.data !== null) pool.push(chunk.data);
      options.onStored?.(chunk.length);
      if (options.speed) {
        const due = started +
          ((chunk.offset + chunk.length) / options.speed) * 1000;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      if (trim) {
        const client = clients[done % clients.length]!;
        await trims.send(client, chunk.offset, chunk.length);
      }
    }
    await trims.drain();
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
  }
}

async function readChunk(
  client: NbdClient,
  index: number,
  options: DiskReadOptions,
  pool: Uint8Array[],
): Promise<Chunk> {
  const offset = index * PULL_CHUNK;
  const length = Math.min(PULL_CHUNK, options.size - offset);
  try {
    const clusters = Math.ceil(length / VMA_CLUSTER_SIZE);
    let zeroMask = 0;
    for (let pos = offset; pos < offset + length;) {
      const extents = await client.blockStatus(pos, offset + length - pos);
      for (const e of extents) {
        if ((e.flags & NBD_STATE_ZERO) !== 0) {
          zeroMask |= zeroClusters(
            e.offset - offset,
            e.offset + e.length - offset,
            length,
          );
        }
        pos = Math.max(pos, e.offset + e.length);
      }
    }
    const all = (1 << clusters) - 1;
    if ((zeroMask & all) === all) {
      return { offset, length, zeroMask, data: null };
    }
    // Read from the first to the last data cluster in one request.
    let lo = 0;
    while ((zeroMask >>> lo) & 1) lo++;
    let hi = clusters - 1;
    while ((zeroMask >>> hi) & 1) hi--;
    const data = pool.pop() ?? new Uint8Array(PULL_CHUNK);
    const from = lo * VMA_CLUSTER_SIZE;
    const to = Math.min((hi + 1) * VMA_CLUSTER_SIZE, length);
    try {
      await client.read(offset + from, data.subarray(from, to));
    } catch (error) {
      pool.push(data);
      throw error;
    }
    return { offset, length, zeroMask, data };
  } catch (error) {
    throw broken(error, options, offset);
  }
}

/** Bits of the clusters of a chunk of `length` bytes that lie wholly in [from, to). */
function zeroClusters(from: number, to: number, length: number): number {
  let mask = 0;
  const clusters = Math.ceil(length / VMA_CLUSTER_SIZE);
  for (
    let c = Math.max(0, Math.ceil(from / VMA_CLUSTER_SIZE));
    c < clusters;
    c++
  ) {
    if (Math.min((c + 1) * VMA_CLUSTER_SIZE, length) > to) break;
    mask |= 1 << c;
  }
  return mask;
}

/** One chunk, one call: the writer takes its 16 clusters at once. */
function storeChunk(chunk: Chunk, options: DiskReadOptions): Promise<void> {
  return options.sink.writeClusters(
    options.devId,
    chunk.offset / VMA_CLUSTER_SIZE,
    Math.ceil(chunk.length / VMA_CLUSTER_SIZE),
    chunk.data === null ? null : chunk.data.subarray(0, chunk.length),
    chunk.zeroMask,
  );
}

function broken(error: unknown, options: DiskReadOptions, offset: number) {
  if (error instanceof NbdRequestError && error.errno === NBD_E.INVAL) {
    return new SnapshotBrokenError(options.diskName, offset, { cause: error });
  }
  return error;
}
