/**
 * The zstd frame layout (RFC 8878 §3.1) as far as vmabak walks it: frame
 * boundaries and skippable frames, never the compressed blocks themselves.
 */

/** Regular frame magic 0xFD2FB528, on the wire `28 B5 2F FD` (little-endian). */
export const ZSTD_MAGIC = 0xfd2fb528;
/** Skippable frames: magic 0x184D2A50..0x184D2A5F, then a u32le size. */
export const ZSTD_SKIPPABLE_MAGIC = 0x184d2a50;
export const ZSTD_SKIPPABLE_MASK = 0xfffffff0;
export const ZSTD_MAGIC_SIZE = 4;
/** Skippable frame: magic + Frame_Size (u32le). */
export const ZSTD_SKIPPABLE_HEADER_SIZE = 8;
/** Block_Header: 3 bytes little-endian (Last_Block 1 bit, Block_Type 2, Block_Size 21). */
export const ZSTD_BLOCK_HEADER_SIZE = 3;
export const ZSTD_CHECKSUM_SIZE = 4;
/** Block_Size never exceeds 128 KiB. */
export const ZSTD_BLOCK_SIZE_MAX = 128 * 1024;

export const ZSTD_BLOCK_TYPE = {
  raw: 0,
  rle: 1,
  compressed: 2,
  reserved: 3,
} as const;

/** Frame_Header_Descriptor bits. */
export const ZSTD_FHD = {
  /** bits 7-6: Frame_Content_Size_flag */
  fcsShift: 6,
  singleSegment: 0x20,
  reserved: 0x08,
  checksum: 0x04,
  /** bits 1-0: Dictionary_ID_flag */
  dictIdMask: 0x03,
} as const;

const DICT_ID_SIZES = [0, 1, 2, 4] as const;
const FCS_SIZES = [0, 2, 4, 8] as const;

/** A problem in a zstd stream. */
export class ZstdError extends Error {
  override name = "ZstdError";
}

/** What the first 4 bytes of a frame say. */
export function frameKind(
  magic: number,
): "zstd" | "skippable" | "unknown" {
  if (magic === ZSTD_MAGIC) return "zstd";
  if (((magic & ZSTD_SKIPPABLE_MASK) >>> 0) === ZSTD_SKIPPABLE_MAGIC) {
    return "skippable";
  }
  return "unknown";
}

/** Whether a stream starting with these bytes is zstd (a regular or skippable frame). */
export function looksLikeZstd(head: Uint8Array): boolean {
  if (head.length < ZSTD_MAGIC_SIZE) return false;
  const magic = new DataView(head.buffer, head.byteOffset, ZSTD_MAGIC_SIZE)
    .getUint32(0, true);
  return frameKind(magic) !== "unknown";
}

/**
 * Bytes of the frame header after the descriptor byte (Window_Descriptor,
 * Dictionary_ID, Frame_Content_Size) and whether a checksum ends the frame.
 */
export function decodeFrameDescriptor(
  fhd: number,
): { rest: number; checksum: boolean } {
  if (fhd & ZSTD_FHD.reserved) {
    throw new ZstdError(
      "Cannot read zstd frame: reserved bit set in the frame header",
    );
  }
  const single = (fhd & ZSTD_FHD.singleSegment) !== 0;
  const fcsFlag = fhd >>> ZSTD_FHD.fcsShift;
  const fcs = fcsFlag === 0 ? (single ? 1 : 0) : FCS_SIZES[fcsFlag]!;
  return {
    rest: (single ? 0 : 1) + DICT_ID_SIZES[fhd & ZSTD_FHD.dictIdMask]! + fcs,
    checksum: (fhd & ZSTD_FHD.checksum) !== 0,
  };
}

/** A Block_Header: whether it is the last, and how many content bytes follow. */
export function decodeBlockHeader(
  b0: number,
  b1: number,
  b2: number,
): { last: boolean; contentSize: number } {
  const v = b0 | (b1 << 8) | (b2 << 16);
  const type = (v >>> 1) & 3;
  const size = v >>> 3;
  if (type === ZSTD_BLOCK_TYPE.reserved) {
    throw new ZstdError("Cannot read zstd frame: reserved block type");
  }
  if (size > ZSTD_BLOCK_SIZE_MAX) {
    throw new ZstdError(
      `Cannot read zstd frame: block size ${size} is over ${ZSTD_BLOCK_SIZE_MAX}`,
    );
  }
  return {
    last: (v & 1) === 1,
    contentSize: type === ZSTD_BLOCK_TYPE.rle ? 1 : size,
  };
}
