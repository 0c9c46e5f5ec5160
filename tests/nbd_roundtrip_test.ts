import assert from "node:assert/strict";
import { NbdClient } from "../lib/nbd/client.ts";
import { NbdRequestError } from "../lib/nbd/errors.ts";
import { NBD_E } from "../lib/nbd/format.ts";
import { makePrivateTempDir } from "../lib/io/safe_file.ts";
import { NbdServer } from "../lib/nbd/server.ts";

Deno.test("NbdClient and NbdServer: replies out of order, handler failures as structured errors", async () => {
  const dir = await makePrivateTempDir("vmabak-nbdrt-");
  const size = 64 * 65536;
  const mem = new Uint8Array(size);
  crypto.getRandomValues(mem.subarray(0, 65536));
  for (let i = 1; i < 64; i++) mem.copyWithin(i * 65536, 0, 65536);
  for (let i = 0; i < 64; i++) mem[i * 65536] = i;
  const order: number[] = [];
  const server = await NbdServer.listen({
    path: `${dir}/nbd.sock`,
    maxInFlight: 32,
    exports: [{
      name: "d",
      size,
      handler: {
        async read(offset, into) {
          const i = offset / 65536;
          if (i === 13) throw new Error("injected read failure");
          // Later requests finish first.
          await new Promise((r) => setTimeout(r, (32 - (i % 32)) * 3));
          order.push(i);
          into.set(mem.subarray(offset, offset + into.length));
        },
        write: () => Promise.resolve(),
        writeZeroes: () => Promise.resolve(),
      },
    }],
  });
  const c = await NbdClient.connect({
    address: { path: `${dir}/nbd.sock` },
    exportName: "d",
    maxInFlight: 32,
  });
  try {
    assert.ok(c.structuredReplies && !c.readOnly && !c.canMultiConn);
    const results = await Promise.all(
      Array.from({ length: 64 }, async (_, i) => {
        const b = new Uint8Array(65536);
        try {
          await c.read(i * 65536, b);
          return b[0] === i &&
            b.subarray(1).every((v, k) => v === mem[i * 65536 + 1 + k]);
        } catch (error) {
          return error as Error;
        }
      }),
    );
    const failed = results[13] as Error;
    assert.ok(failed instanceof NbdRequestError);
    assert.equal(failed.errno, NBD_E.IO);
    assert.equal(
      failed.message,
      'Cannot read 65536 bytes at offset 851968 from NBD export "d": EIO (read failed)',
    );
    results.splice(13, 1);
    assert.ok(results.every((r) => r === true));
    assert.notDeepEqual(order, [...order].sort((a, b) => a - b)); // really out of order
    assert.match(server.error?.message ?? "", /injected read failure/);
    const ext = await c.blockStatus(0, size);
    assert.deepEqual(ext, [{ offset: 0, length: size, flags: 0 }]);
  } finally {
    await c.close();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});
