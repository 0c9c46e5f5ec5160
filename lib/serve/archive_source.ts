import { describeFsError, openArchiveFileHandle } from "../io/input.ts";
import { FileRandomAccess, type RandomAccess } from "../io/random_access.ts";
import { looksLikeZstd, ZSTD_MAGIC_SIZE } from "../io/zstd_format.ts";
import { ZstdRandomAccess } from "../io/zstd_random_access.ts";
import { VmaError } from "../vma/errors.ts";

/**
 * Opens an archive file for reads at any offset. A plain `.vma` is read as
 * it is; a `.vma.zst` written by vmabak through its seek table (one frame
 * decompressed per read). Any other `.vma.zst` is refused with a message
 * saying how to serve it (a zstd stream without a seek table cannot be read
 * at random without decompressing from its start).
 */
export async function openRandomAccessArchive(
  path: string,
): Promise<RandomAccess> {
  const file = await openArchiveFileHandle(path);
  let size: number;
  const head = new Uint8Array(ZSTD_MAGIC_SIZE);
  try {
    size = (await file.stat()).size;
    let have = 0;
    while (have < head.length) {
      const n = await file.read(head.subarray(have));
      if (n === null) break;
      have += n;
    }
  } catch (error) {
    file.close();
    throw new VmaError(
      `Cannot read archive ${path}: ${describeFsError(error)}`,
      { cause: error },
    );
  }
  const plain = new FileRandomAccess(path, file, size);
  if (!looksLikeZstd(head)) return plain;
  try {
    const seekable = await ZstdRandomAccess.open(plain);
    if (seekable !== null) return seekable;
  } catch (error) {
    plain.close();
    throw error;
  }
  plain.close();
  throw new VmaError(
    `Cannot serve ${path}: a zstd archive without a seek table (one written by the zstd tool or vzdump) cannot be read at random; decompress it first (zstd -d ${path})`,
  );
}
