import assert from "node:assert/strict";
import { EndOfStreamError } from "../io/read_exact.ts";
import { makePrivateTempDir } from "../io/safe_file.ts";
import { SocketReader } from "./socket_reader.ts";

/** A unix socket whose other end writes `bytes` in pieces of random size, then closes. */
async function socketWith(bytes: Uint8Array) {
  const dir = await makePrivateTempDir("vmabak-sockreader-");
  const path = `${dir}/s.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const writer = listener.accept().then(async (conn) => {
    let s = 12345;
    for (let at = 0; at < bytes.length;) {
      s = (s * 1103515245 + 12345) & 0x7fffffff;
      const n = Math.min(bytes.length - at, 1 + (s % 300_000));
      for (let w = 0; w < n;) {
        w += await conn.write(bytes.subarray(at + w, at + n));
      }
      at += n;
    }
    conn.close();
  });
  const conn = await Deno.connect({ transport: "unix", path });
  return {
    conn,
    async done() {
      await writer;
      listener.close();
      try {
        conn.close();
      } catch { /* the stream closed it at its end */ }
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("SocketReader reads a socket exactly: headers, payloads larger than its buffer, into the caller's memory", async () => {
  const bytes = new Uint8Array(5 << 20).map((_, i) =>
    (i * 31 + (i >> 13)) & 0xff
  );
  const s = await socketWith(bytes);
  const r = new SocketReader(s.conn, 64 * 1024);
  let at = 0;
  const expect = (got: Uint8Array, n: number) => {
    assert.deepEqual(got, bytes.subarray(at, at + n), `at ${at}`);
    at += n;
  };
  for (let i = 0; at < bytes.length - (1 << 20); i++) {
    // A header, peeked then read, then a payload of 0 to 600 KiB.
    assert.deepEqual(await r.peek(16), bytes.subarray(at, at + 16));
    expect(await r.readExact(16), 16);
    const n = Math.min((i * 97_003) % 600_000, bytes.length - at);
    if (i % 3 === 0) expect(await r.readExact(n), n); // a fresh array above 64 KiB
    else {
      const into = new Uint8Array(n + 7);
      await r.readInto(into.subarray(3, 3 + n));
      expect(into.subarray(3, 3 + n), n);
    }
    assert.equal(r.position, at);
  }
  const rest = bytes.length - at;
  await assert.rejects(
    r.readInto(new Uint8Array(rest + 100), "the tail"),
    (e: unknown) =>
      e instanceof EndOfStreamError && e.expected === rest + 100 &&
      e.received === rest && /Cannot read the tail/.test(e.message),
  );
  assert.equal(await r.atEnd(), true);
  assert.equal(await r.readRecord(4), null);
  await s.done();
});
