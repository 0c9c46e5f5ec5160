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

/** The exports of an indexed archive: every device, read-only, with block status. */
export function archiveExports(
  index: ArchiveIndex,
  description: string,
): NbdExport[] {
  return index.devices.map((entry) => {
    const image = new DeviceImage([{ index, entry }]);
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

export interface ServeStarted {
  server: NbdServer;
  index: ArchiveIndex;
  exports: NbdExport[];
  /** Milliseconds the index took. */
  indexMs: number;
}

/** Indexes `path` and starts serving it on `listen`. */
export async function startServe(
  path: string,
  listen: NbdListenAddress,
  options: { signal?: AbortSignal } = {},
): Promise<ServeStarted> {
  const source = await openRandomAccessArchive(path);
  try {
    const start = performance.now();
    const index = await indexArchive(source, options);
    const indexMs = performance.now() - start;
    const exports = archiveExports(index, path);
    const server = await NbdServer.listen({ ...listen, exports });
    return { server, index, exports, indexMs };
  } catch (error) {
    source.close();
    throw error;
  }
}
