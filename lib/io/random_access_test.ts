import assert from "node:assert/strict";
import { EndOfStreamError } from "./read_exact.ts";
import { FileRandomAccess } from "./random_access.ts";

Deno.test("FileRandomAccess: many reads in flight, sequential and scattered, return the file's bytes", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/f.bin`;
    const data = new Uint8Array(3 * 1024 * 1024 + 123);
    for (let i = 0; i < data.length; i += 65536) {
      crypto.getRandomValues(
        data.subarray(i, Math.min(i + 65536, data.length)),
      );
    }
    await Deno.writeFile(path, data);
    const file = await Deno.open(path, { read: true });
    const ra = new FileRandomAccess(path, file, data.length);
    try {
      // Three sequential streams (as several NBD connections send) and scattered reads, 48 at once.
      const reads: [number, number][] = [];
      for (let s = 0; s < 3; s++) {
        for (
          let at = s * 1024 * 1024;
          at < (s + 1) * 1024 * 1024;
          at += 65536
        ) {
          reads.push([at, 65536]);
        }
      }
      for (let i = 0; i < 40; i++) {
        const at = (i * 7919 * 4099) % (data.length - 5000);
        reads.push([at, 1 + (i * 977) % 5000]);
      }
      reads.push([data.length - 123, 123]);
      const got = await Promise.all(
        reads.map(async ([at, n]) => {
          const b = new Uint8Array(n);
          await ra.readAt(at, b);
          return b;
        }),
      );
      reads.forEach(([at, n], i) => {
        assert.deepStrictEqual(got[i], data.slice(at, at + n), `read at ${at}`);
      });
      await assert.rejects(
        () => ra.readAt(data.length - 10, new Uint8Array(11)),
        EndOfStreamError,
      );
    } finally {
      ra.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
