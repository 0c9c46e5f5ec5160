/**
 * Every constant and byte offset of the VMA format (Proxmox's `vma.h`,
 * `vma_spec.txt`). All integers are big-endian except the 2-byte blob
 * lengths, which are little-endian. See docs in `../shared/docs/vma-format.md`.
 */

/** "VMA\0" */
export const VMA_MAGIC = 0x564d4100;
/** "VMAE" */
export const VMA_EXTENT_MAGIC = 0x564d4145;
export const VMA_VERSION = 1;

/** Bytes in a block: the unit of zero detection. */
export const VMA_BLOCK_SIZE = 4096;
/** Bytes in a cluster: the unit a device is stored in. */
export const VMA_CLUSTER_SIZE = 65536;
/** Blocks in a cluster (bits of a blockinfo mask). */
export const VMA_BLOCKS_PER_CLUSTER = VMA_CLUSTER_SIZE / VMA_BLOCK_SIZE;
/** Bytes of an extent header. */
export const VMA_EXTENT_HEADER_SIZE = 512;
/** Clusters an extent can hold. */
export const VMA_BLOCKS_PER_EXTENT = 59;
/** Largest extent: header plus 59 whole clusters. */
export const VMA_MAX_EXTENT_SIZE = VMA_EXTENT_HEADER_SIZE +
  VMA_BLOCKS_PER_EXTENT * VMA_CLUSTER_SIZE;
/** Device ids run from 1 to 255; slot 0 is unused. */
export const VMA_MAX_DEVICES = 256;
export const VMA_MAX_CONFIGS = 256;
/** Largest device: cluster numbers are 32 bits, so 2^32 clusters of 64 KiB (2^48 bytes). */
export const VMA_MAX_DEVICE_SIZE = 2 ** 32 * VMA_CLUSTER_SIZE;
/** Where the writer places the blob buffer; readers require at least this. */
export const VMA_BLOB_BUFFER_OFFSET = 12288;
/** Largest blob (its length is a u16). */
export const VMA_MAX_BLOB_SIZE = 65535;
/** The device name reserved for the RAM and device state stream. */
export const VMA_VMSTATE_NAME = "vmstate";
/** Headers are padded to this. */
export const VMA_HEADER_ALIGN = 512;

/** Byte offsets in the archive header. */
export const VMA_HEADER = {
  magic: 0,
  version: 4,
  uuid: 8,
  ctime: 24,
  md5sum: 32,
  blobBufferOffset: 48,
  blobBufferSize: 52,
  headerSize: 56,
  reserved: 60,
  configNames: 2044,
  configData: 3068,
  reserved2: 4092,
  devInfo: 4096,
} as const;

/** Byte offsets in one 32-byte device info entry. */
export const VMA_DEV_INFO = {
  devnamePtr: 0,
  reserved: 4,
  size: 8,
  reserved2: 16,
  entrySize: 32,
} as const;

/** Byte offsets in the 512-byte extent header. */
export const VMA_EXTENT = {
  magic: 0,
  reserved: 4,
  blockCount: 6,
  uuid: 8,
  md5sum: 24,
  blockInfo: 40,
} as const;

export const VMA_UUID_SIZE = 16;
export const VMA_MD5_SIZE = 16;

/** A blockinfo word: mask 63..48, reserved 47..40, dev_id 39..32, cluster 31..0. */
export interface BlockInfo {
  mask: number;
  devId: number;
  cluster: number;
}

export function encodeBlockInfo({ mask, devId, cluster }: BlockInfo): bigint {
  return (BigInt(mask & 0xffff) << 48n) | (BigInt(devId & 0xff) << 32n) |
    BigInt(cluster >>> 0);
}

/** The high 32 bits of `encodeBlockInfo`'s word (the low ones are the cluster). */
export function blockInfoHigh(mask: number, devId: number): number {
  return (((mask & 0xffff) << 16) | (devId & 0xff)) >>> 0;
}

export function decodeBlockInfo(
  word: bigint,
): BlockInfo & { reserved: number } {
  return {
    mask: Number((word >> 48n) & 0xffffn),
    reserved: Number((word >> 40n) & 0xffn),
    devId: Number((word >> 32n) & 0xffn),
    cluster: Number(word & 0xffffffffn),
  };
}

/** Number of set bits in a 16-bit mask: blocks stored for a cluster. */
export function maskBlockCount(mask: number): number {
  let n = 0;
  for (let m = mask & 0xffff; m !== 0; m &= m - 1) n++;
  return n;
}

/** Clusters a device of `size` bytes spans. */
export function clusterCount(size: number): number {
  return Math.ceil(size / VMA_CLUSTER_SIZE);
}

/** Formats 16 uuid bytes as 8-4-4-4-12 hex. */
export function formatUuid(uuid: Uint8Array): string {
  const hex = Array.from(uuid, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${
    hex.slice(16, 20)
  }-${hex.slice(20)}`;
}
