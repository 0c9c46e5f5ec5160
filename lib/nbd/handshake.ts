/**
 * Pure encoders and decoders of the NBD handshake (fixed newstyle): the
 * greeting, client flags, options and option replies, NBD_OPT_INFO/GO and
 * their NBD_REP_INFO payloads, NBD_OPT_LIST and the meta-context options.
 * Fed bytes, never sockets; used by both the server and the client.
 */
import { fromUtf8, getSafe64, need, utf8, view } from "./_bytes.ts";
import { NbdError } from "./errors.ts";
import {
  IHAVEOPT,
  NBD_INFO,
  NBD_REP_MAGIC,
  NBD_SIZE,
  NBDMAGIC,
} from "./format.ts";

export function encodeGreeting(handshakeFlags: number): Uint8Array {
  const out = new Uint8Array(NBD_SIZE.greeting);
  const dv = view(out);
  dv.setBigUint64(0, NBDMAGIC);
  dv.setBigUint64(8, IHAVEOPT);
  dv.setUint16(16, handshakeFlags);
  return out;
}

/** The handshake flags of a newstyle greeting. */
export function decodeGreeting(bytes: Uint8Array): number {
  need(bytes, NBD_SIZE.greeting, "greeting");
  const dv = view(bytes);
  if (dv.getBigUint64(0) !== NBDMAGIC) {
    throw new NbdError("Cannot read NBD greeting: not an NBD server");
  }
  if (dv.getBigUint64(8) !== IHAVEOPT) {
    throw new NbdError(
      "Cannot read NBD greeting: oldstyle server (newstyle needed)",
    );
  }
  return dv.getUint16(16);
}

export function encodeClientFlags(flags: number): Uint8Array {
  const out = new Uint8Array(NBD_SIZE.clientFlags);
  view(out).setUint32(0, flags);
  return out;
}

export function decodeClientFlags(bytes: Uint8Array): number {
  need(bytes, NBD_SIZE.clientFlags, "client flags");
  return view(bytes).getUint32(0);
}

export interface OptionHeader {
  option: number;
  length: number;
}

/** An option as the client sends it: header and payload. */
export function encodeOption(
  option: number,
  data: Uint8Array = new Uint8Array(0),
): Uint8Array {
  const out = new Uint8Array(NBD_SIZE.optionHeader + data.length);
  const dv = view(out);
  dv.setBigUint64(0, IHAVEOPT);
  dv.setUint32(8, option);
  dv.setUint32(12, data.length);
  out.set(data, NBD_SIZE.optionHeader);
  return out;
}

export function decodeOptionHeader(bytes: Uint8Array): OptionHeader {
  need(bytes, NBD_SIZE.optionHeader, "option");
  const dv = view(bytes);
  if (dv.getBigUint64(0) !== IHAVEOPT) {
    throw new NbdError("Cannot read NBD option: bad magic");
  }
  return { option: dv.getUint32(8), length: dv.getUint32(12) };
}

export interface OptionReplyHeader {
  option: number;
  type: number;
  length: number;
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

export function decodeOptionReplyHeader(bytes: Uint8Array): OptionReplyHeader {
  need(bytes, NBD_SIZE.optionReplyHeader, "option reply");
  const dv = view(bytes);
  if (dv.getBigUint64(0) !== NBD_REP_MAGIC) {
    throw new NbdError("Cannot read NBD option reply: bad magic");
  }
  return {
    option: dv.getUint32(8),
    type: dv.getUint32(12),
    length: dv.getUint32(16),
  };
}

/** NBD_OPT_INFO / NBD_OPT_GO payload: export name and requested info types. */
export interface InfoRequest {
  name: string;
  requests: number[];
}

export function encodeInfoRequest(r: InfoRequest): Uint8Array {
  const name = utf8(r.name);
  const out = new Uint8Array(4 + name.length + 2 + 2 * r.requests.length);
  const dv = view(out);
  dv.setUint32(0, name.length);
  out.set(name, 4);
  dv.setUint16(4 + name.length, r.requests.length);
  r.requests.forEach((t, i) => dv.setUint16(4 + name.length + 2 + 2 * i, t));
  return out;
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
  return fromUtf8(bytes, "export name");
}

export function encodeInfoExport(size: number, flags: number): Uint8Array {
  const out = new Uint8Array(2 + 8 + 2);
  const dv = view(out);
  dv.setUint16(0, NBD_INFO.EXPORT);
  dv.setBigUint64(2, BigInt(size));
  dv.setUint16(10, flags);
  return out;
}

export interface BlockSizes {
  minimum: number;
  preferred: number;
  maximum: number;
}

export function encodeInfoBlockSize(sizes: BlockSizes): Uint8Array {
  const out = new Uint8Array(2 + 12);
  const dv = view(out);
  dv.setUint16(0, NBD_INFO.BLOCK_SIZE);
  dv.setUint32(2, sizes.minimum);
  dv.setUint32(6, sizes.preferred);
  dv.setUint32(10, sizes.maximum);
  return out;
}

export function encodeInfoName(name: string): Uint8Array {
  const bytes = utf8(name);
  const out = new Uint8Array(2 + bytes.length);
  view(out).setUint16(0, NBD_INFO.NAME);
  out.set(bytes, 2);
  return out;
}

export function encodeInfoDescription(description: string): Uint8Array {
  const bytes = utf8(description);
  const out = new Uint8Array(2 + bytes.length);
  view(out).setUint16(0, NBD_INFO.DESCRIPTION);
  out.set(bytes, 2);
  return out;
}

/** One NBD_REP_INFO payload. Unknown types are returned as such (the spec says ignore them). */
export type Info =
  | { type: typeof NBD_INFO.EXPORT; size: number; flags: number }
  | { type: typeof NBD_INFO.NAME; name: string }
  | { type: typeof NBD_INFO.DESCRIPTION; description: string }
  | ({ type: typeof NBD_INFO.BLOCK_SIZE } & BlockSizes)
  | { type: "unknown"; info: number };

export function decodeInfo(data: Uint8Array): Info {
  need(data, 2, "NBD_REP_INFO");
  const dv = view(data);
  const type = dv.getUint16(0);
  switch (type) {
    case NBD_INFO.EXPORT:
      if (data.length !== 12) {
        throw new NbdError("Cannot read NBD_INFO_EXPORT: wrong length");
      }
      return {
        type,
        size: getSafe64(dv, 2, "export size"),
        flags: dv.getUint16(10),
      };
    case NBD_INFO.NAME:
      return { type, name: fromUtf8(data.subarray(2), "NBD_INFO_NAME") };
    case NBD_INFO.DESCRIPTION:
      return {
        type,
        description: fromUtf8(data.subarray(2), "NBD_INFO_DESCRIPTION"),
      };
    case NBD_INFO.BLOCK_SIZE:
      if (data.length !== 14) {
        throw new NbdError("Cannot read NBD_INFO_BLOCK_SIZE: wrong length");
      }
      return {
        type,
        minimum: dv.getUint32(2),
        preferred: dv.getUint32(6),
        maximum: dv.getUint32(10),
      };
    default:
      return { type: "unknown", info: type };
  }
}

/** NBD_REP_SERVER payload of NBD_OPT_LIST: name, then an optional description. */
export function encodeServerName(name: string, description = ""): Uint8Array {
  const bytes = utf8(name);
  const desc = utf8(description);
  const out = new Uint8Array(4 + bytes.length + desc.length);
  view(out).setUint32(0, bytes.length);
  out.set(bytes, 4);
  out.set(desc, 4 + bytes.length);
  return out;
}

export function decodeServerName(
  data: Uint8Array,
): { name: string; description: string } {
  need(data, 4, "NBD_REP_SERVER");
  const length = view(data).getUint32(0);
  need(data, 4 + length, "NBD_REP_SERVER");
  return {
    name: decodeName(data.subarray(4, 4 + length)),
    description: fromUtf8(data.subarray(4 + length), "export description"),
  };
}

/** Reply to NBD_OPT_EXPORT_NAME: size, flags, and 124 zeros unless the client said NO_ZEROES. */
export function encodeExportNameReply(
  size: number,
  flags: number,
  noZeroes: boolean,
): Uint8Array {
  const out = new Uint8Array(
    NBD_SIZE.exportNameReply + (noZeroes ? 0 : NBD_SIZE.exportNamePadding),
  );
  const dv = view(out);
  dv.setBigUint64(0, BigInt(size));
  dv.setUint16(8, flags);
  return out;
}

/** The first 10 bytes of the reply to NBD_OPT_EXPORT_NAME. */
export function decodeExportNameReply(
  bytes: Uint8Array,
): { size: number; flags: number } {
  need(bytes, NBD_SIZE.exportNameReply, "NBD_OPT_EXPORT_NAME reply");
  const dv = view(bytes);
  return { size: getSafe64(dv, 0, "export size"), flags: dv.getUint16(8) };
}

/** NBD_OPT_SET_META_CONTEXT / NBD_OPT_LIST_META_CONTEXT payload. */
export interface MetaContextRequest {
  name: string;
  queries: string[];
}

export function encodeMetaContextRequest(r: MetaContextRequest): Uint8Array {
  const name = utf8(r.name);
  const queries = r.queries.map(utf8);
  const out = new Uint8Array(
    4 + name.length + 4 + queries.reduce((n, q) => n + 4 + q.length, 0),
  );
  const dv = view(out);
  dv.setUint32(0, name.length);
  out.set(name, 4);
  let at = 4 + name.length;
  dv.setUint32(at, queries.length);
  at += 4;
  for (const q of queries) {
    dv.setUint32(at, q.length);
    out.set(q, at + 4);
    at += 4 + q.length;
  }
  return out;
}

export function decodeMetaContextRequest(
  data: Uint8Array,
): MetaContextRequest {
  const what = "meta context request";
  need(data, 4, what);
  const dv = view(data);
  const nameLength = dv.getUint32(0);
  need(data, 4 + nameLength + 4, what);
  const name = decodeName(data.subarray(4, 4 + nameLength));
  const count = dv.getUint32(4 + nameLength);
  const queries = [];
  let at = 4 + nameLength + 4;
  for (let i = 0; i < count; i++) {
    need(data, at + 4, what);
    const length = dv.getUint32(at);
    need(data, at + 4 + length, what);
    queries.push(fromUtf8(data.subarray(at + 4, at + 4 + length), what));
    at += 4 + length;
  }
  if (at !== data.length) {
    throw new NbdError(`Cannot read NBD ${what}: trailing bytes`);
  }
  return { name, queries };
}

/** NBD_REP_META_CONTEXT payload: the context id and its name. */
export interface MetaContext {
  id: number;
  name: string;
}

export function encodeMetaContextReply(c: MetaContext): Uint8Array {
  const name = utf8(c.name);
  const out = new Uint8Array(4 + name.length);
  view(out).setUint32(0, c.id);
  out.set(name, 4);
  return out;
}

export function decodeMetaContextReply(data: Uint8Array): MetaContext {
  need(data, 4, "NBD_REP_META_CONTEXT");
  return {
    id: view(data).getUint32(0),
    name: fromUtf8(data.subarray(4), "NBD_REP_META_CONTEXT"),
  };
}
