/**
 * NbdClient against a scripted fake server (codecs only): a server without
 * NBD_OPT_GO nor structured replies, and one that breaks the protocol.
 */
import assert from "node:assert/strict";
import { NbdClient } from "../lib/nbd/client.ts";
import { NbdError } from "../lib/nbd/errors.ts";
import {
  NBD_CMD,
  NBD_FLAG,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_OPT,
  NBD_REP,
  NBD_SIZE,
} from "../lib/nbd/format.ts";
import {
  decodeClientFlags,
  decodeOptionHeader,
  encodeExportNameReply,
  encodeGreeting,
  encodeOptionReply,
} from "../lib/nbd/handshake.ts";
import { makePrivateTempDir } from "../lib/io/safe_file.ts";
import { SocketReader } from "../lib/nbd/socket_reader.ts";
import { decodeRequest, encodeSimpleReply } from "../lib/nbd/transmission.ts";

const SIZE = 1 << 20;

/** One connection of a server that knows only NBD_OPT_EXPORT_NAME; `wrongCookie` answers a made-up cookie. */
async function fakeServer(conn: Deno.Conn, knobs: { wrongCookie: boolean }) {
  const input = new SocketReader(conn);
  const log: string[] = [];
  const send = async (b: Uint8Array) => {
    for (let done = 0; done < b.length;) {
      done += await conn.write(b.subarray(done));
    }
  };
  try {
    await send(encodeGreeting(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES));
    log.push(`flags ${decodeClientFlags(await input.readExact(4))}`);
    for (;;) {
      const h = decodeOptionHeader(
        await input.readExact(NBD_SIZE.optionHeader),
      );
      const data = (await input.readExact(h.length)).slice();
      log.push(`option ${h.option}`);
      if (h.option === NBD_OPT.EXPORT_NAME) {
        log.push(`name ${new TextDecoder().decode(data)}`);
        await send(encodeExportNameReply(SIZE, NBD_FLAG.HAS_FLAGS, true));
        break;
      }
      await send(encodeOptionReply(h.option, NBD_REP.ERR_UNSUP));
    }
    for (;;) {
      const r = decodeRequest(await input.readExact(NBD_SIZE.request));
      log.push(`cmd ${r.type}`);
      if (r.type === NBD_CMD.DISC) break;
      const cookie = knobs.wrongCookie ? r.cookie + 1000n : r.cookie;
      const data = new Uint8Array(r.length).fill(r.offset / 512);
      await send(encodeSimpleReply(cookie, 0, data));
    }
  } catch { /* the client hung up */ }
  try {
    conn.close();
  } catch { /* the reader's stream closed it at the end */ }
  return log;
}

async function withFake(
  knobs: { wrongCookie: boolean },
  fn: (path: string) => Promise<void>,
): Promise<string[]> {
  const dir = await makePrivateTempDir("vmabak-nbdfake-");
  const path = `${dir}/fake.sock`;
  const listener = Deno.listen({ transport: "unix", path });
  const served = listener.accept().then((c) => fakeServer(c, knobs));
  try {
    await fn(path);
    return await served;
  } finally {
    listener.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("NbdClient falls back to NBD_OPT_EXPORT_NAME and simple replies", async () => {
  const log = await withFake({ wrongCookie: false }, async (path) => {
    const c = await NbdClient.connect({
      address: { path },
      exportName: "d0",
      metaContexts: ["base:allocation"],
    });
    assert.equal(c.size, SIZE);
    assert.ok(!c.structuredReplies && !c.hasMetaContext("base:allocation"));
    assert.deepEqual(c.blockSize, {
      minimum: 1,
      preferred: 4096,
      maximum: 32 * 1024 * 1024,
    });
    const b = new Uint8Array(512);
    await c.read(2048, b);
    assert.ok(b.every((v) => v === 4));
    await c.close();
  });
  assert.deepEqual(log, [
    "flags 3",
    `option ${NBD_OPT.STRUCTURED_REPLY}`,
    `option ${NBD_OPT.GO}`,
    `option ${NBD_OPT.EXPORT_NAME}`,
    "name d0",
    `cmd ${NBD_CMD.READ}`,
    `cmd ${NBD_CMD.DISC}`,
  ]);
});

Deno.test("NbdClient latches a reply for an unknown cookie as fatal", async () => {
  await withFake({ wrongCookie: true }, async (path) => {
    const c = await NbdClient.connect({ address: { path }, exportName: "d0" });
    const reads = [0, 512, 1024].map((o) =>
      c.read(o, new Uint8Array(512)).then(() => null, (e) => e)
    );
    for (const e of await Promise.all(reads)) {
      assert.ok(e instanceof NbdError);
      assert.match(
        e.message,
        /^Cannot read from NBD export "d0": reply for unknown cookie/,
      );
    }
    await assert.rejects(c.flush(), /unknown cookie/);
    await c.close();
  });
});
