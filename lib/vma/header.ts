import { createHash } from "node:crypto";
import { VmaError } from "./errors.ts";
import { printable } from "../text/escape.ts";
import {
  VMA_BLOB_BUFFER_OFFSET,
  VMA_DEV_INFO,
  VMA_HEADER,
  VMA_HEADER_ALIGN,
  VMA_MAGIC,
  VMA_MAX_BLOB_SIZE,
  VMA_MAX_CONFIGS,
  VMA_MAX_DEVICE_SIZE,
  VMA_MAX_DEVICES,
  VMA_MD5_SIZE,
  VMA_UUID_SIZE,
  VMA_VERSION,
  VMA_VMSTATE_NAME,
} from "./format.ts";

export interface VmaConfig {
  name: string;
  data: Uint8Array;
}

export interface VmaDevice {
  /** 1..255 */
  id: number;
  name: string;
  /** Bytes; for `vmstate` only a hint. */
  size: number;
}

/** A device as read from an archive: `exactSize` holds the u64 exactly. */
export interface VmaDeviceRecord extends VmaDevice {
  /** The recorded size, exact even past 2^53 (`size` is then rounded). */
  exactSize: bigint;
}

export interface VmaHeader {
  uuid: Uint8Array;
  /** Seconds since the epoch. */
  ctime: number;
  configs: VmaConfig[];
  /** Registered devices in id order. */
  devices: VmaDevice[];
  headerSize: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: false });

export function md5(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(createHash("md5").update(bytes).digest());
}

function view(u8: Uint8Array): DataView {
  return new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
}

/** Builds the whole header (blob buffer included, padded to 512, md5 set). */
export function encodeHeader(
  header: Omit<VmaHeader, "headerSize">,
): Uint8Array {
  if (header.uuid.length !== VMA_UUID_SIZE) {
    throw new VmaError("Cannot write VMA header: uuid must be 16 bytes");
  }
  if (header.configs.length > VMA_MAX_CONFIGS) {
    throw new VmaError(
      `Cannot write VMA header: ${header.configs.length} configs, at most ${VMA_MAX_CONFIGS}`,
    );
  }
  const blobs: Uint8Array[] = [];
  let fill = 1; // pointer 0 means "none"
  const addBlob = (data: Uint8Array): number => {
    if (data.length > VMA_MAX_BLOB_SIZE) {
      throw new VmaError(
        `Cannot write VMA header: blob of ${data.length} bytes, at most ${VMA_MAX_BLOB_SIZE}`,
      );
    }
    const ptr = fill;
    const entry = new Uint8Array(2 + data.length);
    view(entry).setUint16(0, data.length, true);
    entry.set(data, 2);
    blobs.push(entry);
    fill += entry.length;
    return ptr;
  };
  const addString = (s: string) => addBlob(encoder.encode(s + "\0"));

  const configPtrs = header.configs.map((c) =>
    [addString(c.name), addBlob(c.data)] as const
  );
  const devPtrs = header.devices.map((d) => addString(d.name));

  const headerSize =
    Math.ceil((VMA_BLOB_BUFFER_OFFSET + fill) / VMA_HEADER_ALIGN) *
    VMA_HEADER_ALIGN;
  const out = new Uint8Array(headerSize);
  const dv = view(out);
  dv.setUint32(VMA_HEADER.magic, VMA_MAGIC);
  dv.setUint32(VMA_HEADER.version, VMA_VERSION);
  out.set(header.uuid, VMA_HEADER.uuid);
  dv.setBigInt64(VMA_HEADER.ctime, BigInt(Math.trunc(header.ctime)));
  dv.setUint32(VMA_HEADER.blobBufferOffset, VMA_BLOB_BUFFER_OFFSET);
  dv.setUint32(VMA_HEADER.blobBufferSize, fill);
  dv.setUint32(VMA_HEADER.headerSize, headerSize);
  configPtrs.forEach(([namePtr, dataPtr], i) => {
    dv.setUint32(VMA_HEADER.configNames + 4 * i, namePtr);
    dv.setUint32(VMA_HEADER.configData + 4 * i, dataPtr);
  });
  header.devices.forEach((d, i) => {
    if (d.id < 1 || d.id >= VMA_MAX_DEVICES) {
      throw new VmaError(`Cannot write VMA header: device id ${d.id}`);
    }
    const base = VMA_HEADER.devInfo + d.id * VMA_DEV_INFO.entrySize;
    dv.setUint32(base + VMA_DEV_INFO.devnamePtr, devPtrs[i]!);
    dv.setBigUint64(base + VMA_DEV_INFO.size, BigInt(d.size));
  });
  let pos = VMA_BLOB_BUFFER_OFFSET + 1;
  for (const b of blobs) {
    out.set(b, pos);
    pos += b.length;
  }
  out.set(md5(out), VMA_HEADER.md5sum);
  return out;
}

/** The fixed part a reader needs first: how long the whole header is. */
export function decodeHeaderSize(first: Uint8Array): number {
  const dv = view(first);
  if (dv.getUint32(VMA_HEADER.magic) !== VMA_MAGIC) {
    throw new VmaError(
      "Cannot read VMA archive: not a vma file - wrong magic number",
    );
  }
  const version = dv.getUint32(VMA_HEADER.version);
  if (version !== VMA_VERSION) {
    throw new VmaError(
      `Cannot read VMA archive: unsupported version ${version}`,
    );
  }
  const headerSize = dv.getUint32(VMA_HEADER.headerSize);
  if (
    headerSize <= VMA_BLOB_BUFFER_OFFSET ||
    headerSize % VMA_HEADER_ALIGN !== 0 || headerSize > 16 * 1024 * 1024
  ) {
    throw new VmaError(
      `Cannot read VMA archive: bad header size ${headerSize}`,
    );
  }
  return headerSize;
}

/** A header as read from an archive. */
export interface DecodedVmaHeader extends VmaHeader {
  devices: VmaDeviceRecord[];
}

/** Parses and checks a whole header (the bytes are not modified). */
export function decodeHeader(bytes: Uint8Array): DecodedVmaHeader {
  const headerSize = decodeHeaderSize(bytes);
  if (bytes.length !== headerSize) {
    throw new VmaError("Cannot read VMA header: wrong length");
  }
  const dv = view(bytes);
  const copy = new Uint8Array(bytes); // a copy, even when given a node Buffer
  copy.fill(0, VMA_HEADER.md5sum, VMA_HEADER.md5sum + VMA_MD5_SIZE);
  const expect = md5(copy);
  const got = bytes.subarray(
    VMA_HEADER.md5sum,
    VMA_HEADER.md5sum + VMA_MD5_SIZE,
  );
  if (!expect.every((b, i) => b === got[i])) {
    throw new VmaError("Cannot read VMA header: wrong vma header chechsum");
  }

  const blobOffset = dv.getUint32(VMA_HEADER.blobBufferOffset);
  const blobSize = dv.getUint32(VMA_HEADER.blobBufferSize);
  if (
    blobOffset < VMA_BLOB_BUFFER_OFFSET || blobOffset + blobSize > headerSize
  ) {
    throw new VmaError(
      `Cannot read VMA header: blob buffer ${blobOffset}+${blobSize} outside the header`,
    );
  }
  // Walk the blob entries as Proxmox's reader does: only these starts are valid pointers.
  const blobs = new Map<number, Uint8Array>();
  const end = blobOffset + blobSize;
  for (let ptr = 1; blobOffset + ptr + 2 <= end;) {
    const len = dv.getUint16(blobOffset + ptr, true);
    const start = blobOffset + ptr + 2;
    if (start + len > end) break;
    blobs.set(ptr, bytes.subarray(start, start + len));
    ptr += 2 + len;
  }
  const blobAt = (ptr: number, what: string) => {
    const blob = blobs.get(ptr);
    if (blob === undefined) {
      throw new VmaError(
        `Cannot read VMA header: vma contains invalid data pointers (${what})`,
      );
    }
    return blob;
  };
  const stringAt = (ptr: number, what: string) => {
    const blob = blobAt(ptr, what);
    if (blob.length === 0 || blob[blob.length - 1] !== 0) {
      throw new VmaError(
        `Cannot read VMA header: ${what} is not a NUL-terminated string`,
      );
    }
    return decoder.decode(blob.subarray(0, blob.length - 1));
  };

  const configs: VmaConfig[] = [];
  for (let i = 0; i < VMA_MAX_CONFIGS; i++) {
    const namePtr = dv.getUint32(VMA_HEADER.configNames + 4 * i);
    const dataPtr = dv.getUint32(VMA_HEADER.configData + 4 * i);
    if (namePtr === 0) continue;
    configs.push({
      name: stringAt(namePtr, `config ${i} name`),
      data: new Uint8Array(blobAt(dataPtr, `config ${i} data`)),
    });
  }
  const devices: VmaDeviceRecord[] = [];
  for (let id = 1; id < VMA_MAX_DEVICES; id++) {
    const base = VMA_HEADER.devInfo + id * VMA_DEV_INFO.entrySize;
    const namePtr = dv.getUint32(base + VMA_DEV_INFO.devnamePtr);
    const exactSize = dv.getBigUint64(base + VMA_DEV_INFO.size);
    if (namePtr === 0 || exactSize === 0n) continue;
    devices.push({
      id,
      name: stringAt(namePtr, `device ${id} name`),
      size: Number(exactSize),
      exactSize,
    });
  }
  return {
    uuid: bytes.slice(VMA_HEADER.uuid, VMA_HEADER.uuid + VMA_UUID_SIZE),
    ctime: Number(dv.getBigInt64(VMA_HEADER.ctime)),
    configs,
    devices,
    headerSize,
  };
}

/**
 * Throws for a device whose data cannot be read: a recorded size past what a
 * VMA archive can address (2^32 clusters). Listing a header needs no check.
 */
export function checkDeviceSizes(header: VmaHeader): void {
  for (const d of header.devices) {
    if (d.size > VMA_MAX_DEVICE_SIZE) {
      const exact = (d as Partial<VmaDeviceRecord>).exactSize ?? BigInt(d.size);
      throw new VmaError(
        `Cannot read device ${d.id} ${
          printable(d.name, 80)
        }: its recorded size, ${exact} bytes, is more than a VMA archive can hold (${VMA_MAX_DEVICE_SIZE} bytes)`,
      );
    }
  }
}

export function isVmstate(device: { name: string }): boolean {
  return device.name === VMA_VMSTATE_NAME;
}
