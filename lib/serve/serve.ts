/**
 * `serve`: an archive as read-only NBD exports, one per device, named as
 * the device (`drive-scsi0`, `vmstate`), from an index built once.
 */
import { NbdServer } from "../nbd/server.ts";
import type { NbdExport, NbdListenAddress } from "../nbd/server.ts";
import { indexArchive } from "../vma/index.ts";
import type { ArchiveIndex } from "../vma/index.ts";
import { openRandomAccessArchive } from "./archive_source.ts";
import { DeviceImage } from "./device_image.ts";
import { type ChainLink, checkChain, makeLink } from "../chain/chain.ts";
import { ChainError } from "../chain/errors.ts";
import { VMA_VMSTATE_NAME } from "../vma/format.ts";

/** The exports of an indexed archive: every device, read-only, with block status. */
export function archiveExports(
  index: ArchiveIndex,
  description: string,
  bases: ArchiveIndex[] = [],
): NbdExport[] {
  return index.devices.map((entry) => {
    // A chain: each disk falls through to its bases, newest first (the
    // chain check made sure they hold it, with the same size).
    const layers = [{ index, entry }];
    if (entry.device.name !== VMA_VMSTATE_NAME) {
      for (const base of bases) {
        const e = base.devices.find((d) => d.device.name === entry.device.name);
        if (e !== undefined) layers.push({ index: base, entry: e });
      }
    }
    const image = new DeviceImage(layers);
    return {
      name: entry.device.name,
      size: image.size,
      readOnly: true,
      description: `${entry.device.name} of ${description}`,
      handler: {
        read: (offset, into) => image.read(offset, into),
        blockStatus: (offset, length) => image.blockStatus(offset, length),
      },
    };
  });
}

export interface ServeStarted extends Served {
  server: NbdServer;
}

/** An archive (or chain) indexed and checked, its exports ready to serve. */
export interface Served {
  index: ArchiveIndex;
  /** An incremental's bases, newest first. */
  bases: ArchiveIndex[];
  exports: NbdExport[];
  /** Milliseconds the index took. */
  indexMs: number;
}

/**
 * Indexes `path` (and, for an incremental, its `bases`, newest first: the
 * chain is checked from the uuids before anything is served) and starts
 * serving it on `listen`.
 */
export async function startServe(
  path: string,
  listen: NbdListenAddress,
  options: { signal?: AbortSignal; bases?: string[] } = {},
): Promise<ServeStarted> {
  const served = await indexServed(path, options);
  try {
    // nbdcopy keeps 64 requests in flight per connection.
    const server = await NbdServer.listen({
      ...listen,
      exports: served.exports,
      maxInFlight: 64,
    });
    return { ...served, server };
  } catch (error) {
    closeServed(served);
    throw error;
  }
}

/** Closes the archive files of `indexServed`. */
export function closeServed(served: Served): void {
  served.index.source.close();
  for (const b of served.bases) b.source.close();
}

/**
 * Indexes `path` and its `bases` (newest first) and checks the chain;
 * returns the exports without serving them yet.
 */
export async function indexServed(
  path: string,
  options: { signal?: AbortSignal; bases?: string[] } = {},
): Promise<Served> {
  const paths = [path, ...(options.bases ?? [])];
  const indexes: ArchiveIndex[] = [];
  try {
    const start = performance.now();
    const links: ChainLink[] = [];
    for (const p of paths) {
      const source = await openRandomAccessArchive(p);
      let link: ChainLink | undefined;
      try {
        indexes.push(
          await indexArchive(source, {
            ...(options.signal ? { signal: options.signal } : {}),
            expected: (header) => {
              link = makeLink(p, header);
              return new Map(
                [...link.incremental?.sets ?? []].map((
                  [id, set],
                ) => [id, set.bits]),
              );
            },
          }),
        );
      } catch (error) {
        source.close();
        throw error;
      }
      links.push(link!);
    }
    const first = links[0]!;
    if (links.length === 1 && first.incremental !== null) {
      const r = first.incremental.record;
      throw new ChainError(
        `Cannot serve ${path}: it is incremental ${r.index} of the chain of full ${r.full}; give its bases with --base (newest first), or make a full with vmabak merge`,
      );
    }
    checkChain(links);
    const indexMs = performance.now() - start;
    const [index, ...bases] = indexes as [ArchiveIndex, ...ArchiveIndex[]];
    const exports = archiveExports(index, path, bases);
    return { index, bases, exports, indexMs };
  } catch (error) {
    for (const i of indexes) i.source.close();
    throw error;
  }
}
