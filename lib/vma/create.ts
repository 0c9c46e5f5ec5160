import type { ByteSink } from "../io/sink.ts";
import { describeFsError } from "../io/input.ts";
import { VmaError } from "./errors.ts";
import { VMA_BLOCKS_PER_EXTENT, VMA_CLUSTER_SIZE } from "./format.ts";
import { VMA_MAX_RUN, VmaWriter } from "./writer.ts";

export interface ImageSource {
  name: string;
  path: string;
}

export interface CreateOptions {
  configs: { name: string; data: Uint8Array }[];
  images: ImageSource[];
  signal?: AbortSignal;
  /** Called after each chunk with the bytes read so far. */
  onProgress?: (done: number, total: number) => void;
}

const CHUNK = VMA_BLOCKS_PER_EXTENT * VMA_CLUSTER_SIZE;
const RUN = VMA_MAX_RUN * VMA_CLUSTER_SIZE;

/** Size of a raw image or block device, rounded up to whole 512-byte sectors as QEMU sees it. */
export function recordedSize(bytes: number): number {
  return Math.ceil(bytes / 512) * 512;
}

/**
 * Writes an archive of raw images (files or block devices), device ids in
 * the given order. Offline: the images must not change meanwhile.
 */
export async function createArchive(
  sink: ByteSink,
  options: CreateOptions,
): Promise<VmaWriter> {
  const writer = new VmaWriter(sink);
  for (const c of options.configs) writer.addConfig(c.name, c.data);
  const files: { file: Deno.FsFile; size: number; id: number; path: string }[] =
    [];
  try {
    for (const image of options.images) {
      let file: Deno.FsFile;
      try {
        file = await Deno.open(image.path, { read: true });
      } catch (error) {
        throw new VmaError(
          `Cannot read image ${image.path}: ${describeFsError(error)}`,
          { cause: error },
        );
      }
      const size = await file.seek(0, Deno.SeekMode.End);
      await file.seek(0, Deno.SeekMode.Start);
      files.push({ file, size, id: 0, path: image.path });
      if (size === 0) {
        throw new VmaError(`Cannot add image ${image.path}: it is empty`);
      }
      files[files.length - 1]!.id = writer.addDevice(
        image.name,
        recordedSize(size),
      );
    }
    await writer.start();
    const total = files.reduce((a, f) => a + f.size, 0);
    let done = 0;
    const buffer = new Uint8Array(CHUNK);
    for (const f of files) {
      for (let offset = 0; offset < f.size;) {
        options.signal?.throwIfAborted();
        const want = Math.min(CHUNK, f.size - offset);
        const got = await readFull(f.file, buffer.subarray(0, want));
        if (got < want) {
          throw new VmaError(
            `Cannot read image ${f.path}: it shrank while reading (at ${
              offset + got
            })`,
          );
        }
        // Up to VMA_MAX_RUN clusters per call (the writer's most).
        for (let at = 0; at < got; at += RUN) {
          const piece = buffer.subarray(at, Math.min(at + RUN, got));
          await writer.writeClusters(
            f.id,
            (offset + at) / VMA_CLUSTER_SIZE,
            Math.ceil(piece.length / VMA_CLUSTER_SIZE),
            piece,
          );
        }
        offset += got;
        done += got;
        options.onProgress?.(done, total);
      }
    }
    await writer.finish();
    return writer;
  } finally {
    for (const f of files) f.file.close();
  }
}

async function readFull(file: Deno.FsFile, into: Uint8Array): Promise<number> {
  let done = 0;
  while (done < into.length) {
    const n = await file.read(into.subarray(done));
    if (n === null) break;
    done += n;
  }
  return done;
}
