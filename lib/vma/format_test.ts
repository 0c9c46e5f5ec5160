import assert from "node:assert/strict";
import * as F from "./format.ts";

Deno.test("VMA constants match the contract", () => {
  assert.equal(F.VMA_MAGIC, 0x564d4100); // "VMA\0"
  assert.equal(F.VMA_EXTENT_MAGIC, 0x564d4145); // "VMAE"
  assert.equal(F.VMA_VERSION, 1);
  assert.equal(F.VMA_BLOCK_SIZE, 4096);
  assert.equal(F.VMA_CLUSTER_SIZE, 65536);
  assert.equal(F.VMA_BLOCKS_PER_CLUSTER, 16);
  assert.equal(F.VMA_EXTENT_HEADER_SIZE, 512);
  assert.equal(F.VMA_BLOCKS_PER_EXTENT, 59);
  assert.equal(F.VMA_MAX_EXTENT_SIZE, 3867136);
  assert.equal(512 + 59 * 65536, 3867136);
  assert.equal(F.VMA_EXTENT.blockInfo + 59 * 8, 512);
  assert.equal(F.VMA_HEADER.devInfo + 256 * F.VMA_DEV_INFO.entrySize, 12288);
  assert.equal(F.VMA_BLOB_BUFFER_OFFSET, 12288);
  assert.equal(F.VMA_MAX_DEVICES, 256);
  assert.equal(F.VMA_MAX_CONFIGS, 256);
  assert.equal(F.VMA_MAX_BLOB_SIZE, 65535);
  assert.equal(F.VMA_VMSTATE_NAME, "vmstate");
});

Deno.test("VMA header and extent offsets match the contract", () => {
  assert.deepEqual({ ...F.VMA_HEADER }, {
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
  });
  assert.equal(F.VMA_HEADER.reserved + 1984, F.VMA_HEADER.configNames);
  assert.equal(F.VMA_HEADER.configNames + 256 * 4, F.VMA_HEADER.configData);
  assert.equal(F.VMA_HEADER.configData + 256 * 4, F.VMA_HEADER.reserved2);
  assert.deepEqual({ ...F.VMA_DEV_INFO }, {
    devnamePtr: 0,
    reserved: 4,
    size: 8,
    reserved2: 16,
    entrySize: 32,
  });
  assert.deepEqual({ ...F.VMA_EXTENT }, {
    magic: 0,
    reserved: 4,
    blockCount: 6,
    uuid: 8,
    md5sum: 24,
    blockInfo: 40,
  });
});

Deno.test("encodeBlockInfo() packs mask 63..48, dev_id 39..32, cluster 31..0", () => {
  assert.equal(
    F.encodeBlockInfo({ mask: 0xffff, devId: 255, cluster: 0xffffffff }),
    0xffff00ffffffffffn,
  );
  assert.equal(
    F.encodeBlockInfo({ mask: 0x8001, devId: 2, cluster: 7 }),
    0x8001000200000007n,
  );
  assert.deepEqual(F.decodeBlockInfo(0x8001aa0200000007n), {
    mask: 0x8001,
    reserved: 0xaa,
    devId: 2,
    cluster: 7,
  });
  for (const [mask, devId] of [[0xffff, 255], [0x8001, 2], [0, 1]]) {
    assert.equal(
      BigInt(F.blockInfoHigh(mask!, devId!)),
      F.encodeBlockInfo({ mask: mask!, devId: devId!, cluster: 0 }) >> 32n,
    );
  }
  assert.equal(F.maskBlockCount(0xffff), 16);
  assert.equal(F.maskBlockCount(0x8001), 2);
});
