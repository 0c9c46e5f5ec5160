import { fsReason } from "./safe_file.ts";
import { maybeDecompress } from "./zstd.ts";

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

async function openArchiveFile(
  path: string,
): Promise<ReadableStream<Uint8Array>> {
  try {
    const file = await Deno.open(path, { read: true });
    const info = await file.stat();
    if (info.isDirectory) {
      file.close();
      throw new Error("it is a directory");
    }
    return file.readable;
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
