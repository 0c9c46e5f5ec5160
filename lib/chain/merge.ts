import type { ByteSink } from "../cli/types.ts";
import { formatUuid } from "../vma/format.ts";
import type { VmaReader } from "../vma/reader.ts";
import { VmaWriter } from "../vma/writer.ts";
import type { ChainLink } from "./chain.ts";
import {
  DESCRIPTION_CONFIG,
  readDescription,
  RUNS_CONFIG_PREFIX,
} from "./incremental.ts";
import { replayChain } from "./replay.ts";

export interface MergeResult {
  uuid: string;
  /** Clusters taken from each archive, newest first. */
  taken: number[];
  archiveBytes: number;
}

const encoder = new TextEncoder();

/**
 * Writes a synthetic full: an ordinary, complete VMA of the chain's newest
 * instant (its configs, devices, ctime and vmstate), built by replaying the
 * chain newest first (see `replayChain`). Its vmabak.json loses the
 * `incremental` record and gains `merged` (the uuids it came from).
 * `readers` and `links` are newest first.
 */
export async function mergeChain(
  readers: VmaReader[],
  links: ChainLink[],
  sink: ByteSink,
  options: { signal?: AbortSignal } = {},
): Promise<MergeResult> {
  const newest = links[0]!.header;
  const writer = new VmaWriter(sink, { ctime: newest.ctime });
  for (const c of newest.configs) {
    // The incremental's own cluster runs do not describe the full.
    if (c.name.startsWith(RUNS_CONFIG_PREFIX)) continue;
    if (c.name !== DESCRIPTION_CONFIG) {
      writer.addConfig(c.name, c.data);
      continue;
    }
    const description = readDescription(newest)!;
    delete description.incremental;
    description.merged = {
      from: links.map((l) => formatUuid(l.header.uuid)),
    };
    writer.addConfig(
      c.name,
      encoder.encode(JSON.stringify(description, null, 2) + "\n"),
    );
  }
  const ids = new Map<number, number>();
  for (const d of newest.devices) {
    ids.set(d.id, writer.addDevice(d.name, d.size));
  }
  await writer.start();
  const { taken } = await replayChain(readers, links, async (c) => {
    await writer.writeCluster(
      ids.get(c.device.id)!,
      c.cluster,
      c.mask === 0 ? null : c.data,
    );
  }, options);
  await writer.finish();
  return {
    uuid: formatUuid(writer.uuid),
    taken,
    archiveBytes: writer.bytesWritten,
  };
}
