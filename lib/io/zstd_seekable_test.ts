import assert from "node:assert/strict";
import {
  decodeSeekFooter,
  decodeSeekTable,
  encodeSeekTable,
  SEEKABLE_FOOTER_SIZE,
} from "./zstd_seekable.ts";

Deno.test("encodeSeekTable() writes the seekable format's skippable frame, decoded back", () => {
  const frames = [
    { compressed: 100, decompressed: 4194304 },
    { compressed: 7, decompressed: 12 },
  ];
  const table = encodeSeekTable(frames);
  // Skippable magic 0x184D2A5E, Frame_Size, 2 entries, footer.
  assert.deepEqual(
    [...table.subarray(0, 8)],
    [0x5e, 0x2a, 0x4d, 0x18, 2 * 8 + 9, 0, 0, 0],
  );
  assert.deepEqual([...table.subarray(8, 16)], [100, 0, 0, 0, 0, 0, 0x40, 0]);
  assert.deepEqual(
    [...table.subarray(-9)],
    [2, 0, 0, 0, 0, 0xb1, 0xea, 0x92, 0x8f],
  );
  const footer = decodeSeekFooter(table.subarray(-SEEKABLE_FOOTER_SIZE))!;
  assert.deepEqual(footer, {
    frames: 2,
    entrySize: 8,
    tableSize: table.length,
  });
  assert.deepEqual(decodeSeekTable(table, 2, 8), frames);
});

Deno.test("decodeSeekFooter() says null for a stream without a seek table", () => {
  assert.equal(decodeSeekFooter(new Uint8Array(9)), null);
  assert.equal(decodeSeekFooter(new Uint8Array(3)), null);
});
