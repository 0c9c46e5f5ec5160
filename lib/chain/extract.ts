import {
  extractArchive,
  type ExtractResult,
  ExtractTarget,
} from "../vma/extract.ts";
import type { VmaReader } from "../vma/reader.ts";
import { type ChainLink, checkChain } from "./chain.ts";
import { replayChain } from "./replay.ts";

/**
 * Extracts the chain's newest instant into `dir` (see `ExtractTarget`):
 * every archive read once, newest first, each cluster written once.
 * `readers` and `links` are newest first.
 */
export async function extractChain(
  readers: VmaReader[],
  links: ChainLink[],
  dir: string,
  options: { signal?: AbortSignal } = {},
): Promise<ExtractResult> {
  if (readers.length === 1) {
    // A lone full archive: extent by extent, one write per run of blocks.
    checkChain(links);
    return await extractArchive(readers[0]!, dir, options);
  }
  const target = await ExtractTarget.create(links[0]!.header, dir);
  try {
    await replayChain(readers, links, (c) => target.write(c), options);
    return await target.finish();
  } finally {
    target.close();
  }
}
