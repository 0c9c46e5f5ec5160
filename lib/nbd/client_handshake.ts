/** The client side of the NBD handshake (fixed newstyle): options in, export facts out. */
import { EndOfStreamError } from "../io/read_exact.ts";
import { NbdError, NbdOptionError } from "./errors.ts";
import {
  DEFAULT_BLOCK_SIZE,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_INFO,
  NBD_OPT,
  NBD_REP,
  NBD_REP_FLAG_ERROR,
  NBD_SIZE,
  nbdName,
} from "./format.ts";
import {
  type BlockSizes,
  decodeExportNameReply,
  decodeGreeting,
  decodeInfo,
  decodeMetaContextReply,
  decodeOptionReplyHeader,
  encodeClientFlags,
  encodeInfoRequest,
  encodeMetaContextRequest,
  encodeOption,
  type MetaContext,
  type OptionReplyHeader,
} from "./handshake.ts";

/** The handshake's view of the connection. */
export interface HandshakeIo {
  readExact(n: number, what?: string): Promise<Uint8Array>;
  write(bytes: Uint8Array): Promise<void>;
}

export interface Negotiated {
  size: number;
  /** Transmission flags (NBD_FLAG.*). */
  flags: number;
  blockSize: BlockSizes;
  structuredReplies: boolean;
  /** Meta contexts the server agreed to, with their ids. */
  contexts: MetaContext[];
}

/** Option replies longer than this are a broken server. */
const MAX_REPLY = 16 * 1024 * 1024;
const dec = new TextDecoder();

/**
 * Runs the handshake: NO_ZEROES when offered, NBD_OPT_STRUCTURED_REPLY,
 * NBD_OPT_SET_META_CONTEXT (only with structured replies), then NBD_OPT_GO
 * with NBD_INFO_BLOCK_SIZE, or NBD_OPT_EXPORT_NAME when the server does not
 * know NBD_OPT_GO (or is not fixed newstyle).
 */
export async function negotiate(
  io: HandshakeIo,
  want: { exportName: string; metaContexts: string[] },
): Promise<Negotiated> {
  const name = want.exportName;
  const handshake = decodeGreeting(
    await io.readExact(NBD_SIZE.greeting, "NBD greeting"),
  );
  const noZeroes = (handshake & NBD_FLAG_NO_ZEROES) !== 0;
  const fixed = (handshake & NBD_FLAG_FIXED_NEWSTYLE) !== 0;
  await io.write(encodeClientFlags(
    (fixed ? NBD_FLAG_C_FIXED_NEWSTYLE : 0) |
      (noZeroes ? NBD_FLAG_C_NO_ZEROES : 0),
  ));
  if (!fixed) return await exportName(io, name, noZeroes);

  await io.write(encodeOption(NBD_OPT.STRUCTURED_REPLY));
  const sr = await readReply(io, NBD_OPT.STRUCTURED_REPLY);
  const structuredReplies = sr.header.type === NBD_REP.ACK;

  const contexts: MetaContext[] = [];
  if (structuredReplies && want.metaContexts.length > 0) {
    await io.write(encodeOption(
      NBD_OPT.SET_META_CONTEXT,
      encodeMetaContextRequest({ name, queries: want.metaContexts }),
    ));
    for (;;) {
      const r = await readReply(io, NBD_OPT.SET_META_CONTEXT);
      if (r.header.type === NBD_REP.META_CONTEXT) {
        contexts.push(decodeMetaContextReply(r.data));
      } else break; // ACK, or an error: no contexts, block status falls back
    }
  }

  await io.write(encodeOption(
    NBD_OPT.GO,
    encodeInfoRequest({ name, requests: [NBD_INFO.BLOCK_SIZE] }),
  ));
  let size: number | undefined;
  let flags = 0;
  let blockSize: BlockSizes = { ...DEFAULT_BLOCK_SIZE };
  for (;;) {
    const r = await readReply(io, NBD_OPT.GO);
    const type = r.header.type;
    if (type === NBD_REP.ACK) break;
    if (type === NBD_REP.ERR_UNSUP) {
      return await exportName(io, name, noZeroes, structuredReplies, contexts);
    }
    if ((type & NBD_REP_FLAG_ERROR) !== 0) {
      throw refused(name, NBD_OPT.GO, type, r.data);
    }
    if (type !== NBD_REP.INFO) continue;
    const info = decodeInfo(r.data);
    if (info.type === NBD_INFO.EXPORT) {
      size = info.size;
      flags = info.flags;
    } else if (info.type === NBD_INFO.BLOCK_SIZE) {
      blockSize = saneBlockSizes(info);
    }
  }
  if (size === undefined) {
    throw new NbdError(
      `Cannot open NBD export "${name}": the server sent no NBD_INFO_EXPORT`,
    );
  }
  return { size, flags, blockSize, structuredReplies, contexts };
}

/** The old way in: NBD_OPT_EXPORT_NAME, answered by size and flags, or a hang-up. */
async function exportName(
  io: HandshakeIo,
  name: string,
  noZeroes: boolean,
  structuredReplies = false,
  contexts: MetaContext[] = [],
): Promise<Negotiated> {
  await io.write(
    encodeOption(NBD_OPT.EXPORT_NAME, new TextEncoder().encode(name)),
  );
  let reply;
  try {
    reply = decodeExportNameReply(
      await io.readExact(NBD_SIZE.exportNameReply, "NBD_OPT_EXPORT_NAME reply"),
    );
  } catch (error) {
    if (!(error instanceof EndOfStreamError)) throw error;
    throw new NbdOptionError(
      `Cannot open NBD export "${name}": the server closed the connection on NBD_OPT_EXPORT_NAME (no such export?)`,
      { option: NBD_OPT.EXPORT_NAME, reply: 0 },
      { cause: error },
    );
  }
  if (!noZeroes) await io.readExact(NBD_SIZE.exportNamePadding, "padding");
  return {
    size: reply.size,
    flags: reply.flags,
    blockSize: { ...DEFAULT_BLOCK_SIZE },
    structuredReplies,
    contexts,
  };
}

async function readReply(
  io: HandshakeIo,
  option: number,
): Promise<{ header: OptionReplyHeader; data: Uint8Array }> {
  const header = decodeOptionReplyHeader(
    await io.readExact(NBD_SIZE.optionReplyHeader, "NBD option reply"),
  );
  if (header.option !== option) {
    throw new NbdError(
      `Cannot negotiate NBD: reply to ${
        nbdName(NBD_OPT, "NBD_OPT_", header.option)
      } while waiting for ${nbdName(NBD_OPT, "NBD_OPT_", option)}`,
    );
  }
  if (header.length > MAX_REPLY) {
    throw new NbdError(
      `Cannot negotiate NBD: option reply of ${header.length} bytes`,
    );
  }
  const data = header.length === 0
    ? new Uint8Array(0)
    : (await io.readExact(header.length, "NBD option reply")).slice();
  return { header, data };
}

function refused(
  name: string,
  option: number,
  reply: number,
  data: Uint8Array,
): NbdOptionError {
  const text = dec.decode(data).trim();
  return new NbdOptionError(
    `Cannot open NBD export "${name}": the server refused ${
      nbdName(NBD_OPT, "NBD_OPT_", option)
    } with ${nbdName(NBD_REP, "NBD_REP_", reply)}${text ? ` (${text})` : ""}`,
    { option, reply },
  );
}

/** Block sizes as the spec constrains them; nonsense falls back to the defaults. */
function saneBlockSizes(s: BlockSizes): BlockSizes {
  const pow2 = (n: number) => n > 0 && (n & (n - 1)) === 0;
  if (
    !pow2(s.minimum) || s.minimum > 65536 || s.preferred < s.minimum ||
    s.maximum < s.minimum ||
    (s.maximum !== 0xffffffff && s.maximum % s.minimum !== 0)
  ) return { ...DEFAULT_BLOCK_SIZE };
  return { minimum: s.minimum, preferred: s.preferred, maximum: s.maximum };
}
