import assert from "node:assert/strict";
import {
  errnoName,
  NBD_CMD,
  NBD_INFO,
  NBD_OPT,
  NBD_REP,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE,
  NBD_SIZE,
  nbdName,
} from "./format.ts";
import {
  decodeClientFlags,
  decodeExportNameReply,
  decodeGreeting,
  decodeInfo,
  decodeInfoRequest,
  decodeMetaContextReply,
  decodeMetaContextRequest,
  decodeOptionHeader,
  decodeOptionReplyHeader,
  decodeServerName,
  encodeClientFlags,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoName,
  encodeInfoRequest,
  encodeMetaContextReply,
  encodeMetaContextRequest,
  encodeOption,
  encodeOptionReply,
  encodeServerName,
} from "./handshake.ts";
import {
  decodeBlockStatus,
  decodeChunkHeader,
  decodeErrorChunk,
  decodeOffsetData,
  decodeOffsetHole,
  decodeReplyMagic,
  decodeRequest,
  decodeSimpleReply,
  encodeBlockStatusChunk,
  encodeErrorChunk,
  encodeNoneChunk,
  encodeOffsetDataHeader,
  encodeOffsetHoleChunk,
  encodeRequest,
  encodeSimpleReply,
} from "./transmission.ts";
import { NbdError, NbdRequestError } from "./errors.ts";

/** Bytes from hex with spaces: "4e 42 44". */
function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  return Uint8Array.from(
    clean.match(/../g) ?? [],
    (b) => parseInt(b, 16),
  );
}

const ascii = (s: string) =>
  [...s].map((c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join(" ");

Deno.test("NBD sizes and values are the spec's", () => {
  assert.equal(NBD_SIZE.greeting, 18);
  assert.equal(NBD_SIZE.request, 28);
  assert.equal(NBD_SIZE.simpleReply, 16);
  assert.equal(NBD_SIZE.structuredReply, 20);
  assert.equal(NBD_SIZE.optionReplyHeader, 20);
  assert.equal(NBD_REPLY_TYPE.ERROR, 32769);
  assert.equal(NBD_REPLY_TYPE.ERROR_OFFSET, 32770);
  assert.equal(NBD_REPLY_TYPE.BLOCK_STATUS, 5);
  assert.equal(NBD_CMD.BLOCK_STATUS, 7);
  assert.equal(NBD_OPT.SET_META_CONTEXT, 10);
  assert.equal(nbdName(NBD_REP, "NBD_REP_", 0x80000006), "NBD_REP_ERR_UNKNOWN");
  assert.equal(errnoName(22), "EINVAL");
  assert.equal(errnoName(99), "error 99");
});

Deno.test("encodeGreeting()/decodeGreeting(): NBDMAGIC IHAVEOPT flags", () => {
  const bytes = hex(`${ascii("NBDMAGIC")} ${ascii("IHAVEOPT")} 00 03`);
  assert.deepEqual(encodeGreeting(3), bytes);
  assert.equal(decodeGreeting(bytes), 3);
  const oldstyle = hex(`${ascii("NBDMAGIC")} 00 00 42 02 81 86 12 53 00 00`);
  assert.throws(() => decodeGreeting(oldstyle), /oldstyle/);
  assert.throws(() => decodeGreeting(new Uint8Array(18)), /not an NBD server/);
});

Deno.test("client flags and options", () => {
  assert.deepEqual(encodeClientFlags(3), hex("00 00 00 03"));
  assert.equal(decodeClientFlags(hex("00 00 00 01")), 1);
  const opt = encodeOption(NBD_OPT.STRUCTURED_REPLY);
  assert.deepEqual(opt, hex(`${ascii("IHAVEOPT")} 00 00 00 08 00 00 00 00`));
  assert.deepEqual(decodeOptionHeader(opt), { option: 8, length: 0 });
  assert.throws(() => decodeOptionHeader(new Uint8Array(16)), NbdError);
});

Deno.test("option replies: header with magic 0x3e889045565a9", () => {
  const bytes = encodeOptionReply(NBD_OPT.GO, NBD_REP.ERR_UNKNOWN, hex("41"));
  assert.deepEqual(
    bytes,
    hex("00 03 e8 89 04 55 65 a9 00 00 00 07 80 00 00 06 00 00 00 01 41"),
  );
  assert.deepEqual(decodeOptionReplyHeader(bytes), {
    option: 7,
    type: 0x80000006,
    length: 1,
  });
});

Deno.test("NBD_OPT_GO payload and NBD_REP_INFO payloads", () => {
  const go = hex("00 00 00 02 64 30 00 01 00 03"); // "d0", one request: BLOCK_SIZE
  assert.deepEqual(
    encodeInfoRequest({ name: "d0", requests: [NBD_INFO.BLOCK_SIZE] }),
    go,
  );
  assert.deepEqual(decodeInfoRequest(go), { name: "d0", requests: [3] });
  assert.throws(() => decodeInfoRequest(hex("00 00 00 09 64 30 00 00")));

  const exp = hex("00 00 00 00 00 00 00 01 00 00 01 4d");
  assert.deepEqual(encodeInfoExport(65536, 0x14d), exp);
  assert.deepEqual(decodeInfo(exp), { type: 0, size: 65536, flags: 0x14d });
  const bs = hex("00 03 00 00 02 00 00 01 00 00 02 00 00 00");
  assert.deepEqual(
    encodeInfoBlockSize({ minimum: 512, preferred: 65536, maximum: 1 << 25 }),
    bs,
  );
  assert.deepEqual(decodeInfo(bs), {
    type: 3,
    minimum: 512,
    preferred: 65536,
    maximum: 1 << 25,
  });
  assert.deepEqual(decodeInfo(encodeInfoName("x")), { type: 1, name: "x" });
  assert.deepEqual(decodeInfo(hex("00 09 ff")), { type: "unknown", info: 9 });
  assert.throws(() => decodeInfo(hex("00 03 00")), /BLOCK_SIZE/);
});

Deno.test("NBD_OPT_LIST replies and NBD_OPT_EXPORT_NAME reply", () => {
  const server = hex("00 00 00 01 61 64");
  assert.deepEqual(encodeServerName("a", "d"), server);
  assert.deepEqual(decodeServerName(server), { name: "a", description: "d" });
  const r = encodeExportNameReply(512, 3, false);
  assert.equal(r.length, 134);
  assert.deepEqual(r.subarray(0, 10), hex("00 00 00 00 00 00 02 00 00 03"));
  assert.equal(encodeExportNameReply(512, 3, true).length, 10);
  assert.deepEqual(decodeExportNameReply(r), { size: 512, flags: 3 });
});

Deno.test("NBD_OPT_SET_META_CONTEXT request and NBD_REP_META_CONTEXT", () => {
  const req = hex(
    `00 00 00 01 64 00 00 00 01 00 00 00 0f ${ascii("base:allocation")}`,
  );
  assert.deepEqual(
    encodeMetaContextRequest({ name: "d", queries: ["base:allocation"] }),
    req,
  );
  assert.deepEqual(decodeMetaContextRequest(req), {
    name: "d",
    queries: ["base:allocation"],
  });
  assert.throws(() => decodeMetaContextRequest(req.subarray(0, 12)));
  const rep = hex(`00 00 00 02 ${ascii("base:allocation")}`);
  assert.deepEqual(
    encodeMetaContextReply({ id: 2, name: "base:allocation" }),
    rep,
  );
  assert.deepEqual(decodeMetaContextReply(rep), {
    id: 2,
    name: "base:allocation",
  });
});

Deno.test("requests: magic 0x25609513, flags, type, cookie, offset, length", () => {
  const bytes = hex(
    "25 60 95 13 00 02 00 06 00 00 00 00 00 00 00 2a 00 00 00 01 00 00 00 00 00 01 00 00",
  );
  const r = {
    flags: 2,
    type: NBD_CMD.WRITE_ZEROES,
    cookie: 42n,
    offset: 4294967296,
    length: 65536,
  };
  assert.deepEqual(encodeRequest(r), bytes);
  assert.deepEqual(decodeRequest(bytes), r);
  assert.throws(() => decodeRequest(new Uint8Array(28)), /bad magic/);
});

Deno.test("simple replies: magic 0x67446698, error, cookie, data", () => {
  const bytes = encodeSimpleReply(7n, 0, hex("aa bb"));
  assert.deepEqual(
    bytes,
    hex("67 44 66 98 00 00 00 00 00 00 00 00 00 00 00 07 aa bb"),
  );
  assert.equal(decodeReplyMagic(bytes), "simple");
  assert.deepEqual(decodeSimpleReply(bytes), { error: 0, cookie: 7n });
  assert.equal(encodeSimpleReply(7n, 22, hex("aa")).length, 16); // no data on error
  assert.throws(() => decodeReplyMagic(hex("00 00 00 00")), /bad magic/);
});

Deno.test("structured reply chunks: OFFSET_DATA and OFFSET_HOLE", () => {
  const data = encodeOffsetDataHeader(1n, {
    flags: NBD_REPLY_FLAG_DONE,
    offset: 4096,
    dataLength: 512,
  });
  assert.deepEqual(
    data,
    hex(
      "66 8e 33 ef 00 01 00 01 00 00 00 00 00 00 00 01 00 00 02 08 00 00 00 00 00 00 10 00",
    ),
  );
  assert.equal(decodeReplyMagic(data), "structured");
  assert.deepEqual(decodeChunkHeader(data), {
    flags: 1,
    type: NBD_REPLY_TYPE.OFFSET_DATA,
    cookie: 1n,
    length: 520,
  });
  assert.equal(decodeOffsetData(data.subarray(20)), 4096);

  const hole = encodeOffsetHoleChunk(2n, 0, { offset: 8192, length: 4096 });
  assert.deepEqual(
    hole,
    hex(
      "66 8e 33 ef 00 00 00 02 00 00 00 00 00 00 00 02 00 00 00 0c 00 00 00 00 00 00 20 00 00 00 10 00",
    ),
  );
  assert.deepEqual(decodeOffsetHole(hole.subarray(20)), {
    offset: 8192,
    length: 4096,
  });
});

Deno.test("structured reply chunks: BLOCK_STATUS, ERROR, ERROR_OFFSET, NONE", () => {
  const bs = encodeBlockStatusChunk(3n, NBD_REPLY_FLAG_DONE, {
    contextId: 1,
    descriptors: [{ length: 65536, flags: 0 }, { length: 4096, flags: 3 }],
  });
  assert.deepEqual(
    bs,
    hex(
      "66 8e 33 ef 00 01 00 05 00 00 00 00 00 00 00 03 00 00 00 14" +
        " 00 00 00 01 00 01 00 00 00 00 00 00 00 00 10 00 00 00 00 03",
    ),
  );
  assert.deepEqual(decodeBlockStatus(bs.subarray(20)), {
    contextId: 1,
    descriptors: [{ length: 65536, flags: 0 }, { length: 4096, flags: 3 }],
  });
  assert.throws(() => decodeBlockStatus(hex("00 00 00 01 00 00")));

  const err = encodeErrorChunk(4n, NBD_REPLY_FLAG_DONE, {
    error: 22,
    message: "no",
  });
  assert.deepEqual(
    err,
    hex(
      "66 8e 33 ef 00 01 80 01 00 00 00 00 00 00 00 04 00 00 00 08 00 00 00 16 00 02 6e 6f",
    ),
  );
  assert.deepEqual(decodeErrorChunk(NBD_REPLY_TYPE.ERROR, err.subarray(20)), {
    error: 22,
    message: "no",
  });
  const eo = encodeErrorChunk(5n, 0, { error: 5, message: "", offset: 512 });
  assert.deepEqual(decodeChunkHeader(eo).type, NBD_REPLY_TYPE.ERROR_OFFSET);
  assert.deepEqual(
    decodeErrorChunk(NBD_REPLY_TYPE.ERROR_OFFSET, eo.subarray(20)),
    { error: 5, message: "", offset: 512 },
  );
  assert.deepEqual(
    encodeNoneChunk(6n),
    hex("66 8e 33 ef 00 01 00 00 00 00 00 00 00 00 00 06 00 00 00 00"),
  );
});

Deno.test("NbdRequestError says what failed, where, and the errno", () => {
  const e = new NbdRequestError({
    errno: 22,
    command: NBD_CMD.READ,
    offset: 1048576,
    length: 65536,
    exportName: "x",
  });
  assert.equal(
    e.message,
    'Cannot read 65536 bytes at offset 1048576 from NBD export "x": EINVAL (Invalid argument)',
  );
  assert.equal(e.errno, 22);
  assert.equal(e.command, NBD_CMD.READ);
  assert.ok(e instanceof NbdError);
  const w = new NbdRequestError({
    errno: 5,
    command: NBD_CMD.WRITE,
    offset: 0,
    length: 512,
    exportName: "y",
    serverMessage: "injected",
  });
  assert.equal(
    w.message,
    'Cannot write 512 bytes at offset 0 to NBD export "y": EIO (injected)',
  );
});
