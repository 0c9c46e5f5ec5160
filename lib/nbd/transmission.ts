/**
 * Pure encoders and decoders of the NBD transmission phase: requests, simple
 * replies, structured reply chunks (OFFSET_DATA, OFFSET_HOLE, BLOCK_STATUS,
 * ERROR, ERROR_OFFSET, NONE) and block status descriptors. Fed bytes, never
 * sockets; used by both the server and the client.
 */
import { fromUtf8, getSafe64, need, utf8, view } from "./_bytes.ts";
import { NbdError } from "./errors.ts";
import {
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_SIZE,
  NBD_STRUCTURED_REPLY_MAGIC,
} from "./format.ts";

export interface Request {
  flags: number;
  type: number;
  cookie: bigint;
  offset: number;
  length: number;
}

export function decodeRequest(bytes: Uint8Array): Request {
  need(bytes, NBD_SIZE.request, "request");
  const dv = view(bytes);
  const magic = dv.getUint32(0);
  if (magic !== NBD_REQUEST_MAGIC) {
    throw new NbdError(
      `Cannot read NBD request: bad magic 0x${magic.toString(16)}`,
    );
  }
  return {
    flags: dv.getUint16(4),
    type: dv.getUint16(6),
    cookie: dv.getBigUint64(8),
    offset: getSafe64(dv, 16, "request offset"),
    length: dv.getUint32(24),
  };
}

export function encodeRequest(r: Request): Uint8Array {
  const out = new Uint8Array(NBD_SIZE.request);
  const dv = view(out);
  dv.setUint32(0, NBD_REQUEST_MAGIC);
  dv.setUint16(4, r.flags);
  dv.setUint16(6, r.type);
  dv.setBigUint64(8, r.cookie);
  dv.setBigUint64(16, BigInt(r.offset));
  dv.setUint32(24, r.length);
  return out;
}

/** A simple reply; read data (only on success) follows the 16-byte header. */
export function encodeSimpleReply(
  cookie: bigint,
  error: number,
  data?: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(
    NBD_SIZE.simpleReply + (error === 0 && data ? data.length : 0),
  );
  const dv = view(out);
  dv.setUint32(0, NBD_SIMPLE_REPLY_MAGIC);
  dv.setUint32(4, error);
  dv.setBigUint64(8, cookie);
  if (error === 0 && data) out.set(data, NBD_SIZE.simpleReply);
  return out;
}

/** The magic that starts every reply: which kind of header follows. */
export function decodeReplyMagic(bytes: Uint8Array): "simple" | "structured" {
  need(bytes, 4, "reply");
  const magic = view(bytes).getUint32(0);
  if (magic === NBD_SIMPLE_REPLY_MAGIC) return "simple";
  if (magic === NBD_STRUCTURED_REPLY_MAGIC) return "structured";
  throw new NbdError(
    `Cannot read NBD reply: bad magic 0x${magic.toString(16)}`,
  );
}

export interface SimpleReply {
  error: number;
  cookie: bigint;
}

export function decodeSimpleReply(bytes: Uint8Array): SimpleReply {
  need(bytes, NBD_SIZE.simpleReply, "simple reply");
  if (decodeReplyMagic(bytes) !== "simple") {
    throw new NbdError("Cannot read NBD simple reply: bad magic");
  }
  const dv = view(bytes);
  return { error: dv.getUint32(4), cookie: dv.getBigUint64(8) };
}

/** A structured reply chunk header; `length` bytes of payload follow. */
export interface ChunkHeader {
  flags: number;
  type: number;
  cookie: bigint;
  length: number;
}

export function encodeChunkHeader(h: ChunkHeader): Uint8Array {
  const out = new Uint8Array(NBD_SIZE.structuredReply);
  writeChunkHeader(out, h);
  return out;
}

function writeChunkHeader(out: Uint8Array, h: ChunkHeader): void {
  const dv = view(out);
  dv.setUint32(0, NBD_STRUCTURED_REPLY_MAGIC);
  dv.setUint16(4, h.flags);
  dv.setUint16(6, h.type);
  dv.setBigUint64(8, h.cookie);
  dv.setUint32(16, h.length);
}

export function decodeChunkHeader(bytes: Uint8Array): ChunkHeader {
  need(bytes, NBD_SIZE.structuredReply, "structured reply");
  if (decodeReplyMagic(bytes) !== "structured") {
    throw new NbdError("Cannot read NBD structured reply: bad magic");
  }
  const dv = view(bytes);
  return {
    flags: dv.getUint16(4),
    type: dv.getUint16(6),
    cookie: dv.getBigUint64(8),
    length: dv.getUint32(16),
  };
}

/** A chunk of one type with a small payload, as one buffer. */
function chunk(
  cookie: bigint,
  flags: number,
  type: number,
  payload: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(NBD_SIZE.structuredReply + payload.length);
  writeChunkHeader(out, { flags, type, cookie, length: payload.length });
  out.set(payload, NBD_SIZE.structuredReply);
  return out;
}

/** NBD_REPLY_TYPE_NONE with NBD_REPLY_FLAG_DONE: the reply ends, no error. */
export function encodeNoneChunk(cookie: bigint): Uint8Array {
  return chunk(
    cookie,
    NBD_REPLY_FLAG_DONE,
    NBD_REPLY_TYPE.NONE,
    new Uint8Array(0),
  );
}

/**
 * The header of an NBD_REPLY_TYPE_OFFSET_DATA chunk with its offset field
 * (28 bytes); `dataLength` bytes of data follow it on the wire.
 */
export function encodeOffsetDataHeader(
  cookie: bigint,
  fields: { flags: number; offset: number; dataLength: number },
): Uint8Array {
  const out = new Uint8Array(NBD_SIZE.structuredReply + 8);
  writeChunkHeader(out, {
    flags: fields.flags,
    type: NBD_REPLY_TYPE.OFFSET_DATA,
    cookie,
    length: 8 + fields.dataLength,
  });
  view(out).setBigUint64(NBD_SIZE.structuredReply, BigInt(fields.offset));
  return out;
}

/** The offset field at the start of an OFFSET_DATA payload. */
export function decodeOffsetData(payload: Uint8Array): number {
  need(payload, 8, "NBD_REPLY_TYPE_OFFSET_DATA");
  return getSafe64(view(payload), 0, "NBD_REPLY_TYPE_OFFSET_DATA offset");
}

export interface Hole {
  offset: number;
  length: number;
}

export function encodeOffsetHoleChunk(
  cookie: bigint,
  flags: number,
  hole: Hole,
): Uint8Array {
  const payload = new Uint8Array(12);
  const dv = view(payload);
  dv.setBigUint64(0, BigInt(hole.offset));
  dv.setUint32(8, hole.length);
  return chunk(cookie, flags, NBD_REPLY_TYPE.OFFSET_HOLE, payload);
}

export function decodeOffsetHole(payload: Uint8Array): Hole {
  if (payload.length !== 12) {
    throw new NbdError("Cannot read NBD_REPLY_TYPE_OFFSET_HOLE: wrong length");
  }
  const dv = view(payload);
  return {
    offset: getSafe64(dv, 0, "NBD_REPLY_TYPE_OFFSET_HOLE offset"),
    length: dv.getUint32(8),
  };
}

/**
 * A run of an export in one state, at an absolute offset: NBD_STATE_HOLE |
 * NBD_STATE_ZERO for `base:allocation`, NBD_STATE_DIRTY for dirty bitmaps.
 */
export interface BlockExtent {
  offset: number;
  length: number;
  flags: number;
}

/** One block status descriptor: a run of `length` bytes in state `flags`. */
export interface BlockDescriptor {
  length: number;
  flags: number;
}

export interface BlockStatus {
  contextId: number;
  descriptors: BlockDescriptor[];
}

export function encodeBlockStatusChunk(
  cookie: bigint,
  flags: number,
  status: BlockStatus,
): Uint8Array {
  const payload = new Uint8Array(
    4 + NBD_SIZE.blockDescriptor * status.descriptors.length,
  );
  const dv = view(payload);
  dv.setUint32(0, status.contextId);
  status.descriptors.forEach((d, i) => {
    dv.setUint32(4 + 8 * i, d.length);
    dv.setUint32(8 + 8 * i, d.flags);
  });
  return chunk(cookie, flags, NBD_REPLY_TYPE.BLOCK_STATUS, payload);
}

export function decodeBlockStatus(payload: Uint8Array): BlockStatus {
  if (
    payload.length < 4 + NBD_SIZE.blockDescriptor ||
    (payload.length - 4) % NBD_SIZE.blockDescriptor !== 0
  ) {
    throw new NbdError(
      `Cannot read NBD_REPLY_TYPE_BLOCK_STATUS: length ${payload.length}`,
    );
  }
  const dv = view(payload);
  const descriptors = [];
  for (let at = 4; at < payload.length; at += NBD_SIZE.blockDescriptor) {
    descriptors.push({ length: dv.getUint32(at), flags: dv.getUint32(at + 4) });
  }
  return { contextId: dv.getUint32(0), descriptors };
}

/** NBD_REPLY_TYPE_ERROR, or ERROR_OFFSET when `offset` is given. */
export interface ChunkError {
  error: number;
  message: string;
  offset?: number;
}

export function encodeErrorChunk(
  cookie: bigint,
  flags: number,
  e: ChunkError,
): Uint8Array {
  const message = utf8(e.message);
  const withOffset = e.offset !== undefined;
  const payload = new Uint8Array(6 + message.length + (withOffset ? 8 : 0));
  const dv = view(payload);
  dv.setUint32(0, e.error);
  dv.setUint16(4, message.length);
  payload.set(message, 6);
  if (withOffset) dv.setBigUint64(6 + message.length, BigInt(e.offset!));
  const type = withOffset ? NBD_REPLY_TYPE.ERROR_OFFSET : NBD_REPLY_TYPE.ERROR;
  return chunk(cookie, flags, type, payload);
}

/** An error chunk of any error type (bit 15 set); the offset only for ERROR_OFFSET. */
export function decodeErrorChunk(
  type: number,
  payload: Uint8Array,
): ChunkError {
  const what = "structured error reply";
  need(payload, 6, what);
  const dv = view(payload);
  const length = dv.getUint16(4);
  need(payload, 6 + length, what);
  const message = fromUtf8(payload.subarray(6, 6 + length), what);
  const out: ChunkError = { error: dv.getUint32(0), message };
  if (type === NBD_REPLY_TYPE.ERROR_OFFSET) {
    if (payload.length !== 6 + length + 8) {
      throw new NbdError(`Cannot read NBD ${what}: wrong length`);
    }
    out.offset = getSafe64(dv, 6 + length, "error offset");
  }
  return out;
}
