import assert from "node:assert/strict";
import { CachedRead } from "./cached_read.ts";
import { FileRandomAccess } from "./random_access.ts";
import { evictFromPageCache as evict } from "../../tests/helpers/page_cache.ts";

function randomBytes(n: number): Uint8Array {
  const data = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(data.subarray(i, Math.min(i + 65536, n)));
  }
  return data;
}

/** Runs `fn` with a temporary file of `n` random bytes; removes it after. */
async function withRandomFile(
  n: number,
  fn: (path: string, data: Uint8Array) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/f.bin`;
    const data = randomBytes(n);
    await Deno.writeFile(path, data);
    await fn(path, data);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name:
    "CachedRead reads cached pages at any offset into a subarray, and returns 0 for pages not cached",
  ignore: Deno.build.os !== "linux",
  async fn() {
    await withRandomFile(1024 * 1024 + 77, async (path, data) => {
      using file = await Deno.open(path, { read: true });
      const cached = await CachedRead.open(path, file);
      assert.ok(cached !== null, "FFI is allowed: a reader");
      try {
        const into = new Uint8Array(200_000);
        const view = into.subarray(1001, 1001 + 70_000);
        assert.equal(cached.read(12_345, view), view.length);
        assert.deepStrictEqual(view, data.subarray(12_345, 12_345 + 70_000));
        assert.ok(into.subarray(0, 1001).every((b) => b === 0), "before");
        assert.ok(into.subarray(71_001).every((b) => b === 0), "after");
        // Short at the end of the file, nothing past it.
        assert.equal(cached.read(data.length - 300, into), 300);
        assert.equal(cached.read(data.length, into), 0);
        // Too small to hand a pointer to the kernel: left to the thread pool.
        assert.equal(cached.read(0, new Uint8Array(16)), 0);

        evict(path);
        assert.equal(cached.read(500_000, into), 0, "evicted: not read");
      } finally {
        cached.close();
      }
    });
  },
});

Deno.test({
  name:
    "FileRandomAccess reads cached bytes in one call and the rest on the thread pool, equal to the file",
  ignore: Deno.build.os !== "linux",
  async fn() {
    await withRandomFile(8 * 1024 * 1024, async (path, data) => {
      const ra = new FileRandomAccess(
        path,
        await Deno.open(path, { read: true }),
        data.length,
      );
      try {
        const a = new Uint8Array(300_000);
        await ra.readAt(4097, a);
        assert.deepStrictEqual(a, data.subarray(4097, 4097 + a.length));
        assert.equal(ra.cachedBytes, a.length, "all from the page cache");

        // Cold file, then its first 256 KiB cached again: a read across
        // takes what is cached and waits for the rest.
        evict(path);
        const head = new Uint8Array(256 * 1024);
        await ra.readAt(0, head);
        const before = ra.cachedBytes;
        const b = new Uint8Array(4 * 1024 * 1024);
        const inside = new Uint8Array(b.length + 8192);
        await ra.readAt(100_000, inside.subarray(4096, 4096 + b.length));
        assert.deepStrictEqual(
          inside.subarray(4096, 4096 + b.length),
          data.subarray(100_000, 100_000 + b.length),
        );
        const took = ra.cachedBytes - before;
        assert.ok(
          took > 0 && took < b.length,
          `part cached (${took} of ${b.length} bytes)`,
        );
        // Zero-length and small reads.
        await ra.readAt(data.length, new Uint8Array(0));
        const small = new Uint8Array(10);
        await ra.readAt(data.length - 10, small);
        assert.deepStrictEqual(small, data.subarray(data.length - 10));
      } finally {
        ra.close();
      }
    });
  },
});
