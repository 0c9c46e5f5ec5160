/**
 * The zstd seekable format's seek table (facebook/zstd
 * `contrib/seekable_format/zstd_seekable_compression_format.md`): a
 * skippable frame at the end of the stream listing every frame's compressed
 * and decompressed size, so a reader can find and decompress one frame
 * without reading those before it. `zstd -d` and `zstd -t` skip it.
 */
import { ZstdError } from "./zstd_format.ts";

/** Skippable frame magic of a seek table (0x184D2A5E, on the wire `5E 2A 4D 18`). */
export const SEEKABLE_SKIPPABLE_MAGIC = 0x184d2a5e;
/** Seekable_Magic_Number, last 4 bytes of the stream. */
export const SEEKABLE_MAGIC = 0x8f92eab1;
/** Seek_Table_Footer: Number_Of_Frames u32le, Seek_Table_Descriptor u8, magic u32le. */
export const SEEKABLE_FOOTER_SIZE = 9;
/** Seek_Table_Entries without checksums: Compressed_Size u32le, Decompressed_Size u32le. */
export const SEEKABLE_ENTRY_SIZE = 8;
/** Seek_Table_Descriptor bit 7: entries carry a 4-byte checksum. */
export const SEEKABLE_CHECKSUM_FLAG = 0x80;
/** Skippable frame header: magic u32le + Frame_Size u32le. */
const SKIPPABLE_HEADER = 8;

export interface SeekFrame {
  compressed: number;
  decompressed: number;
}

/** The whole skippable frame holding a seek table of `frames`. */
export function encodeSeekTable(frames: SeekFrame[]): Uint8Array {
  const body = frames.length * SEEKABLE_ENTRY_SIZE + SEEKABLE_FOOTER_SIZE;
  const out = new Uint8Array(SKIPPABLE_HEADER + body);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, SEEKABLE_SKIPPABLE_MAGIC, true);
  dv.setUint32(4, body, true);
  frames.forEach((f, i) => {
    dv.setUint32(SKIPPABLE_HEADER + i * 8, f.compressed, true);
    dv.setUint32(SKIPPABLE_HEADER + i * 8 + 4, f.decompressed, true);
  });
  const footer = out.length - SEEKABLE_FOOTER_SIZE;
  dv.setUint32(footer, frames.length, true);
  dv.setUint8(footer + 4, 0);
  dv.setUint32(footer + 5, SEEKABLE_MAGIC, true);
  return out;
}

/**
 * Reads the footer (the stream's last 9 bytes): the number of frames and
 * the size of the whole seek table frame, or null when there is none.
 */
export function decodeSeekFooter(
  footer: Uint8Array,
): { frames: number; entrySize: number; tableSize: number } | null {
  if (footer.length !== SEEKABLE_FOOTER_SIZE) return null;
  const dv = new DataView(footer.buffer, footer.byteOffset, footer.byteLength);
  if (dv.getUint32(5, true) !== SEEKABLE_MAGIC) return null;
  const frames = dv.getUint32(0, true);
  const descriptor = dv.getUint8(4);
  if (descriptor & 0x7c) {
    throw new ZstdError("Cannot read zstd seek table: reserved bits set");
  }
  const entrySize = descriptor & SEEKABLE_CHECKSUM_FLAG ? 12 : 8;
  return {
    frames,
    entrySize,
    tableSize: SKIPPABLE_HEADER + frames * entrySize + SEEKABLE_FOOTER_SIZE,
  };
}

/** The entries of a whole seek table frame (as sized by `decodeSeekFooter`). */
export function decodeSeekTable(
  table: Uint8Array,
  frames: number,
  entrySize: number,
): SeekFrame[] {
  const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
  if (
    dv.getUint32(0, true) !== SEEKABLE_SKIPPABLE_MAGIC ||
    dv.getUint32(4, true) !== table.length - SKIPPABLE_HEADER
  ) {
    throw new ZstdError("Cannot read zstd seek table: bad skippable frame");
  }
  const out: SeekFrame[] = [];
  for (let i = 0; i < frames; i++) {
    const at = SKIPPABLE_HEADER + i * entrySize;
    out.push({
      compressed: dv.getUint32(at, true),
      decompressed: dv.getUint32(at + 4, true),
    });
  }
  return out;
}
