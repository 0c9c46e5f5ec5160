/** Pure encoders and decoders of NBD messages: fed bytes, never sockets. */
import { NbdError } from "./errors.ts";
import {
  IHAVEOPT,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_INFO,
  NBD_REP_MAGIC,
  NBD_REQUEST_MAGIC,
  NBD_SIMPLE_REPLY_MAGIC,
  NBD_SIZE,
  NBDMAGIC,
} from "./format.ts";

const enc = new TextEncoder();
const dec = new TextDecoder("utf-8", { fatal: true });

function view(u8: Uint8Array): DataView {
  return new DataView(u8.buffer, u8.byteOffset, u8.byteLength);
}

export function encodeGreeting(): Uint8Array {
  const out = new Uint8Array(NBD_SIZE.greeting);
  const dv = view(out);
  dv.setBigUint64(0, NBDMAGIC);
  dv.setBigUint64(8, IHAVEOPT);
  dv.setUint16(16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
  return out;
}

export interface OptionHeader {
  option: number;
  length: number;
}

export function decodeOptionHeader(bytes: Uint8Array): OptionHeader {
  const dv = view(bytes);
  if (dv.getBigUint64(0) !== IHAVEOPT) {
    throw new NbdError("Cannot read NBD option: bad magic");
  }
  return { option: dv.getUint32(8), length: dv.getUint32(12) };
}

export function encodeOptionReply(
  option: number,
  type: number,
  data: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const out = new Uint8Array(NBD_SIZE.optionReplyHeader + data.length);
  const dv = view(out);
  dv.setBigUint64(0, NBD_REP_MAGIC);
  dv.setUint32(8, option);
  dv.setUint32(12, type);
  dv.setUint32(16, data.length);
  out.set(data, NBD_SIZE.optionReplyHeader);
  return out;
}

/** NBD_OPT_INFO / NBD_OPT_GO payload: export name and requested info types. */
export interface InfoRequest {
  name: string;
  requests: number[];
}

export function decodeInfoRequest(data: Uint8Array): InfoRequest {
  if (data.length < 6) {
    throw new NbdError("Cannot read NBD_OPT_GO: payload too short");
  }
  const dv = view(data);
  const nameLength = dv.getUint32(0);
  if (4 + nameLength + 2 > data.length) {
    throw new NbdError("Cannot read NBD_OPT_GO: name longer than the payload");
  }
  const name = decodeName(data.subarray(4, 4 + nameLength));
  const count = dv.getUint16(4 + nameLength);
  if (4 + nameLength + 2 + 2 * count !== data.length) {
    throw new NbdError("Cannot read NBD_OPT_GO: wrong number of info requests");
  }
  const requests = [];
  for (let i = 0; i < count; i++) {
    requests.push(dv.getUint16(4 + nameLength + 2 + 2 * i));
  }
  return { name, requests };
}

export function decodeName(bytes: Uint8Array): string {
  try {
    return dec.decode(bytes);
  } catch {
    throw new NbdError("Cannot read NBD export name: not UTF-8");
  }
}

export function encodeInfoExport(size: number, flags: number): Uint8Array {
  const out = new Uint8Array(2 + 8 + 2);
  const dv = view(out);
  dv.setUint16(0, NBD_INFO.EXPORT);
  dv.setBigUint64(2, BigInt(size));
  dv.setUint16(10, flags);
  return out;
}

export function encodeInfoBlockSize(
  min: number,
  preferred: number,
  max: number,
): Uint8Array {
  const out = new Uint8Array(2 + 12);
  const dv = view(out);
  dv.setUint16(0, NBD_INFO.BLOCK_SIZE);
  dv.setUint32(2, min);
  dv.setUint32(6, preferred);
  dv.setUint32(10, max);
  return out;
}

export function encodeInfoName(name: string): Uint8Array {
  const bytes = enc.encode(name);
  const out = new Uint8Array(2 + bytes.length);
  view(out).setUint16(0, NBD_INFO.NAME);
  out.set(bytes, 2);
  return out;
}

/** NBD_REP_SERVER payload of NBD_OPT_LIST. */
export function encodeServerName(name: string): Uint8Array {
  const bytes = enc.encode(name);
  const out = new Uint8Array(4 + bytes.length);
  view(out).setUint32(0, bytes.length);
  out.set(bytes, 4);
  return out;
}

/** Reply to NBD_OPT_EXPORT_NAME: size, flags, and 124 zeros unless the client said NO_ZEROES. */
export function encodeExportNameReply(
  size: number,
  flags: number,
  noZeroes: boolean,
): Uint8Array {
  const out = new Uint8Array(10 + (noZeroes ? 0 : NBD_SIZE.exportNamePadding));
  const dv = view(out);
  dv.setBigUint64(0, BigInt(size));
  dv.setUint16(8, flags);
  return out;
}

export interface Request {
  flags: number;
  type: number;
  cookie: bigint;
  offset: number;
  length: number;
}

export function decodeRequest(bytes: Uint8Array): Request {
  const dv = view(bytes);
  const magic = dv.getUint32(0);
  if (magic !== NBD_REQUEST_MAGIC) {
    throw new NbdError(
      `Cannot read NBD request: bad magic 0x${magic.toString(16)}`,
    );
  }
  const offset = dv.getBigUint64(16);
  if (offset > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new NbdError("Cannot read NBD request: offset too large");
  }
  return {
    flags: dv.getUint16(4),
    type: dv.getUint16(6),
    cookie: dv.getBigUint64(8),
    offset: Number(offset),
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
