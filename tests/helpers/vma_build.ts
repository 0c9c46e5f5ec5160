/**
 * Builds VMA archives byte by byte for tests, including ones the writer
 * refuses to make: any u64 device size, any names, vmstate streams longer
 * than their recorded size. Checksums are always right, so the reader gets
 * past them to the rule under test.
 */
import { concatBytes } from "../../lib/io/concat.ts";
import { encodeHeader, md5 } from "../../lib/vma/header.ts";
import {
  encodeBlockInfo,
  VMA_BLOCK_SIZE,
  VMA_BLOCKS_PER_EXTENT,
  VMA_DEV_INFO,
  VMA_EXTENT,
  VMA_EXTENT_HEADER_SIZE,
  VMA_EXTENT_MAGIC,
  VMA_HEADER,
  VMA_MD5_SIZE,
} from "../../lib/vma/format.ts";

export interface BuildDevice {
  id: number;
  name: string;
  size: bigint;
}

export interface BuildCluster {
  devId: number;
  cluster: number;
  mask: number;
  /** The stored blocks, in order (4096 bytes each); zeros when absent. */
  data?: Uint8Array;
}

export interface BuildArchive {
  configs?: { name: string; data: Uint8Array }[];
  devices: BuildDevice[];
  /** Each extent: at most 59 clusters. */
  extents?: BuildCluster[][];
  uuid?: Uint8Array;
}

const enc = new TextEncoder();

function view(u8: Uint8Array): DataView {
  return new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
}

function popcount(mask: number): number {
  let n = 0;
  for (let m = mask & 0xffff; m; m &= m - 1) n++;
  return n;
}

/** The archive's bytes. */
export function buildArchive(spec: BuildArchive): Uint8Array {
  const uuid = spec.uuid ?? new Uint8Array(16).fill(7);
  const header = encodeHeader({
    uuid,
    ctime: 1_700_000_000,
    configs: spec.configs ?? [],
    devices: spec.devices.map((d) => ({ id: d.id, name: d.name, size: 1 })),
  });
  const dv = view(header);
  for (const d of spec.devices) {
    const base = VMA_HEADER.devInfo + d.id * VMA_DEV_INFO.entrySize;
    dv.setBigUint64(base + VMA_DEV_INFO.size, d.size);
  }
  header.fill(0, VMA_HEADER.md5sum, VMA_HEADER.md5sum + VMA_MD5_SIZE);
  header.set(md5(header), VMA_HEADER.md5sum);
  const parts: Uint8Array[] = [header];
  for (const extent of spec.extents ?? []) {
    if (extent.length > VMA_BLOCKS_PER_EXTENT) {
      throw new Error("at most 59 clusters per extent");
    }
    const head = new Uint8Array(VMA_EXTENT_HEADER_SIZE);
    const hv = view(head);
    hv.setUint32(VMA_EXTENT.magic, VMA_EXTENT_MAGIC);
    head.set(uuid, VMA_EXTENT.uuid);
    let blocks = 0;
    const data: Uint8Array[] = [];
    extent.forEach((c, i) => {
      hv.setBigUint64(
        VMA_EXTENT.blockInfo + 8 * i,
        encodeBlockInfo({ mask: c.mask, devId: c.devId, cluster: c.cluster }),
      );
      const n = popcount(c.mask);
      const bytes = new Uint8Array(n * VMA_BLOCK_SIZE);
      if (c.data) bytes.set(c.data.subarray(0, bytes.length));
      data.push(bytes);
      blocks += n;
    });
    hv.setUint16(VMA_EXTENT.blockCount, blocks);
    head.set(md5(head), VMA_EXTENT.md5sum);
    parts.push(head, ...data);
  }
  return concatBytes(parts);
}

/** A small valid archive: one config, one 3-cluster disk, all stored. */
export function smallArchive(
  options: { diskName?: string; configName?: string } = {},
): Uint8Array {
  const fill = new Uint8Array(16 * VMA_BLOCK_SIZE);
  for (let i = 0; i < fill.length; i++) fill[i] = (i * 7) & 0xff;
  return buildArchive({
    configs: [{
      name: options.configName ?? "qemu-server.conf",
      data: enc.encode("memory: 64\n"),
    }],
    devices: [{ id: 1, name: options.diskName ?? "drive-a", size: 196608n }],
    extents: [[0, 1, 2].map((cluster) => ({
      devId: 1,
      cluster,
      mask: cluster === 1 ? 0x00ff : 0xffff,
      data: fill,
    }))],
  });
}
