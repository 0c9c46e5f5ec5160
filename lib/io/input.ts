import { FileReader } from "./file_reader.ts";
import { type ByteReader, ExactReader } from "./read_exact.ts";
import { fsReason } from "./safe_file.ts";
import { maybeDecompress } from "./zstd.ts";
import { looksLikeZstd, ZSTD_MAGIC_SIZE } from "./zstd_format.ts";

/**
 * Opens an archive for reading: a path, or `-` for standard input. Every
 * reading command goes through here. A zstd-compressed archive (`.vma.zst`,
 * told by its first bytes, not its name) comes back decompressed.
 */
export async function openArchiveInput(
  path: string,
  stdin: ReadableStream<Uint8Array>,
): Promise<ReadableStream<Uint8Array>> {
  return await maybeDecompress(
    path === "-" ? stdin : await openArchiveFile(path),
  );
}

/**
 * Like `openArchiveInput`, as a `ByteReader`. An uncompressed archive file
 * is read directly in large pieces (no stream in between): the fast path of
 * `extract` and `verify`.
 */
export async function openArchiveByteReader(
  path: string,
  stdin: ReadableStream<Uint8Array>,
): Promise<ByteReader> {
  if (path === "-") return new ExactReader(await maybeDecompress(stdin));
  const file = await openArchiveFileHandle(path);
  try {
    const head = new Uint8Array(ZSTD_MAGIC_SIZE);
    let have = 0;
    while (have < head.length) {
      const n = await file.read(head.subarray(have));
      if (n === null) break;
      have += n;
    }
    await file.seek(0, Deno.SeekMode.Start);
    if (!looksLikeZstd(head.subarray(0, have))) return new FileReader(file);
  } catch (error) {
    file.close();
    throw new Error(`Cannot read archive ${path}: ${describeFsError(error)}`, {
      cause: error,
    });
  }
  return new ExactReader(await maybeDecompress(file.readable));
}

async function openArchiveFile(
  path: string,
): Promise<ReadableStream<Uint8Array>> {
  return (await openArchiveFileHandle(path)).readable;
}

/** Opens an archive file for reading; refuses a directory. */
export async function openArchiveFileHandle(
  path: string,
): Promise<Deno.FsFile> {
  try {
    const file = await Deno.open(path, { read: true });
    const info = await file.stat();
    if (info.isDirectory) {
      file.close();
      throw new Error("it is a directory");
    }
    return file;
  } catch (error) {
    throw new Error(`Cannot open archive ${path}: ${describeFsError(error)}`, {
      cause: error,
    });
  }
}

/** The short reason of a file system error, without Deno's call details. */
export function describeFsError(error: unknown): string {
  return fsReason(error);
}
