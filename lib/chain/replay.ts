import { clusterCount, VMA_VMSTATE_NAME } from "../vma/format.ts";
import type { VmaDevice } from "../vma/header.ts";
import type { VmaReader } from "../vma/reader.ts";
import { type ChainLink, checkChain } from "./chain.ts";
import { ClusterSet } from "./cluster_set.ts";
import { ChainError } from "./errors.ts";

/** A cluster of the chain's newest state, on a device of the newest header. */
export interface ReplayedCluster {
  device: VmaDevice;
  cluster: number;
  mask: number;
  /** Valid until the callback's promise resolves. */
  data: Uint8Array;
}

export interface ReplayResult {
  /** Clusters taken from each archive, newest first. */
  taken: number[];
}

/**
 * Makes an incremental's reader hold its archive to the recorded cluster
 * sets: another cluster is an error, and completeness means the whole set.
 */
export function expectRecordedClusters(
  reader: VmaReader,
  link: ChainLink,
): void {
  for (const [devId, set] of link.incremental?.sets ?? []) {
    reader.expectClusters(devId, set.bits);
  }
}

/**
 * Streams the state of a chain at its newest archive's instant: reads each
 * archive once, sequentially, newest first, and passes on every disk
 * cluster not already taken from a newer one (one bit per cluster
 * remembers which), plus the newest archive's vmstate. Every archive is
 * checked as it is read (format rules, its recorded set); at the end every
 * cluster of every disk must have come from some archive. `links` are
 * checked with `checkChain` first.
 */
export async function replayChain(
  readers: VmaReader[],
  links: ChainLink[],
  onCluster: (c: ReplayedCluster) => Promise<void>,
  options: { signal?: AbortSignal } = {},
): Promise<ReplayResult> {
  checkChain(links);
  const newest = links[0]!.header;
  const disks = newest.devices.filter((d) => d.name !== VMA_VMSTATE_NAME);
  const written = new Map<string, { device: VmaDevice; set: ClusterSet }>(
    disks.map((d) => [d.name, {
      device: d,
      set: new ClusterSet(clusterCount(d.size)),
    }]),
  );
  const vmstate = newest.devices.find((d) => d.name === VMA_VMSTATE_NAME);
  const taken: number[] = [];
  for (const [i, reader] of readers.entries()) {
    expectRecordedClusters(reader, links[i]!);
    let count = 0;
    for await (const ev of reader.clusters()) {
      options.signal?.throwIfAborted();
      if (ev.device.name === VMA_VMSTATE_NAME) {
        if (i === 0 && vmstate !== undefined) {
          count++;
          await onCluster({ ...ev, device: vmstate });
        }
        continue;
      }
      const w = written.get(ev.device.name);
      if (w === undefined || !w.set.add(ev.cluster)) continue;
      count++;
      await onCluster({
        device: w.device,
        cluster: ev.cluster,
        mask: ev.mask,
        data: ev.data,
      });
    }
    reader.checkComplete();
    taken.push(count);
  }
  for (const w of written.values()) {
    if (!w.set.isFull()) {
      const full = new ClusterSet(w.set.size);
      full.addRange(0, w.set.size);
      throw new ChainError(
        `Cannot use chain: cluster ${
          w.set.firstMissingOf(full)
        } of disk ${w.device.name} is in none of its archives`,
      );
    }
  }
  return { taken };
}
