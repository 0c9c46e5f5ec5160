import { openArchiveReader } from "./archive.ts";
import type { CommandContext } from "./types.ts";
import { type ChainLink, checkChain, makeLink } from "../chain/chain.ts";
import { ChainError } from "../chain/errors.ts";
import type { VmaReader } from "../vma/reader.ts";

/** Open readers of a chain (newest first), their headers read and the chain checked. */
export interface OpenChain {
  readers: VmaReader[];
  links: ChainLink[];
  close(): Promise<void>;
}

/**
 * Opens the archives of a chain, newest first (only the newest may be `-`),
 * reads every header and checks the chain from the uuids, before anything
 * is written. A single incremental without its bases is refused.
 */
export async function openChain(
  paths: string[],
  ctx: CommandContext,
  what: string,
): Promise<OpenChain> {
  const readers: VmaReader[] = [];
  const close = async () => {
    for (const r of readers) await r.close().catch(() => {});
  };
  try {
    if (paths.slice(1).includes("-")) {
      throw new ChainError(
        `Cannot ${what}: only the newest archive can be read from standard input`,
      );
    }
    const links: ChainLink[] = [];
    for (const path of paths) {
      const reader = await openArchiveReader(path, ctx);
      readers.push(reader);
      links.push(makeLink(path, reader.header));
    }
    const first = links[0]!;
    if (links.length === 1 && first.incremental !== null) {
      const r = first.incremental.record;
      throw new ChainError(
        `Cannot ${what} ${first.label}: it is incremental ${r.index} of the chain of full ${r.full}; ` +
          `give its bases with --base (newest first), or make a full with vmabak merge`,
      );
    }
    checkChain(links);
    return { readers, links, close };
  } catch (error) {
    await close();
    throw error;
  }
}
