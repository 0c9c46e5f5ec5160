/** The server side of the NBD handshake (fixed newstyle): options in, a chosen export out. */
import type { ByteReader } from "../io/read_exact.ts";
import { NbdError } from "./errors.ts";
import {
  BASE_ALLOCATION,
  BLOCK_SIZE_MAX,
  BLOCK_SIZE_MIN,
  BLOCK_SIZE_PREFERRED,
  MAX_OPTION_LENGTH,
  NBD_FLAG,
  NBD_INFO,
  NBD_OPT,
  NBD_REP,
  NBD_SIZE,
} from "./format.ts";
import {
  type BlockSizes,
  decodeInfoRequest,
  decodeMetaContextRequest,
  decodeName,
  decodeOptionHeader,
  encodeExportNameReply,
  encodeInfoBlockSize,
  encodeInfoDescription,
  encodeInfoExport,
  encodeInfoName,
  encodeMetaContextReply,
  encodeOptionReply,
  encodeServerName,
} from "./handshake.ts";
import type { BlockExtent } from "./transmission.ts";

/** What an export does with the client's requests. */
export interface NbdExportHandler {
  /** `data` is valid only until the promise resolves. Slow promises are backpressure. Without it, writes fail with EPERM. */
  write?(offset: number, data: Uint8Array): Promise<void>;
  /** A range of zeros (WRITE_ZEROES or TRIM). */
  writeZeroes?(offset: number, length: number): Promise<void>;
  /** Fills `into` from `offset`. Without it, reads fail with EINVAL. */
  read?(offset: number, into: Uint8Array): Promise<void>;
  flush?(): Promise<void>;
  /**
   * `base:allocation` of a range: contiguous extents from `offset`, covering
   * at least part of it (more is clipped), NBD_STATE_HOLE|NBD_STATE_ZERO for
   * zero ranges. Without it, everything is reported as data.
   */
  blockStatus?(offset: number, length: number): Promise<BlockExtent[]>;
}

export interface NbdExport {
  name: string;
  size: number;
  /** Writes get EPERM; the export is advertised read-only and multi-conn. */
  readOnly?: boolean;
  description?: string;
  /** Advertised block sizes (default 512 / 64 KiB / 32 MiB). */
  blockSize?: BlockSizes;
  handler: NbdExportHandler;
}

/** The context id of `base:allocation`, the only context offered. */
export const BASE_ALLOCATION_ID = 1;

export const DEFAULT_SERVER_BLOCK_SIZE: BlockSizes = {
  minimum: BLOCK_SIZE_MIN,
  preferred: BLOCK_SIZE_PREFERRED,
  maximum: BLOCK_SIZE_MAX,
};

/** The outcome of a handshake: the export and what was agreed. */
export interface Session {
  exp: NbdExport;
  structuredReplies: boolean;
  /** `base:allocation` was selected with NBD_OPT_SET_META_CONTEXT. */
  baseAllocation: boolean;
}

export function isReadOnly(exp: NbdExport): boolean {
  return exp.readOnly === true || exp.handler.write === undefined;
}

/** Transmission flags of an export. */
export function exportFlags(exp: NbdExport): number {
  let flags = NBD_FLAG.HAS_FLAGS | NBD_FLAG.SEND_FLUSH;
  if (isReadOnly(exp)) {
    // Nothing changes the data: every connection sees the same bytes.
    flags |= NBD_FLAG.READ_ONLY | NBD_FLAG.CAN_MULTI_CONN;
  } else {
    flags |= NBD_FLAG.SEND_WRITE_ZEROES | NBD_FLAG.SEND_TRIM |
      NBD_FLAG.SEND_FAST_ZERO;
  }
  return flags;
}

/**
 * Runs the option phase; returns the session, or null when the client
 * aborted or asked NBD_OPT_EXPORT_NAME for an unknown export (the protocol's
 * only answer to that is to hang up).
 */
export async function negotiateServer(
  input: ByteReader,
  send: (b: Uint8Array) => Promise<void>,
  opts: { exports: Map<string, NbdExport>; noZeroes: boolean },
): Promise<Session | null> {
  let structuredReplies = false;
  /** The export `base:allocation` was selected for, if any. */
  let contextsFor: string | undefined;
  for (;;) {
    const { option, length } = decodeOptionHeader(
      await input.readExact(NBD_SIZE.optionHeader, "NBD option"),
    );
    if (length > MAX_OPTION_LENGTH) {
      throw new NbdError(`Cannot read NBD option ${option}: ${length} bytes`);
    }
    const data = (await input.readExact(length, "NBD option")).slice();
    const reply = (type: number, payload?: Uint8Array) =>
      send(encodeOptionReply(option, type, payload));
    const fail = (type: number, message: string) =>
      reply(type, new TextEncoder().encode(message));
    switch (option) {
      case NBD_OPT.EXPORT_NAME: {
        const exp = opts.exports.get(decodeName(data));
        if (exp === undefined) return null;
        await send(
          encodeExportNameReply(exp.size, exportFlags(exp), opts.noZeroes),
        );
        return {
          exp,
          structuredReplies,
          baseAllocation: structuredReplies && contextsFor === exp.name,
        };
      }
      case NBD_OPT.ABORT:
        await reply(NBD_REP.ACK).catch(() => {});
        return null;
      case NBD_OPT.LIST:
        if (length !== 0) {
          await fail(NBD_REP.ERR_INVALID, "NBD_OPT_LIST takes no data");
          break;
        }
        for (const exp of opts.exports.values()) {
          await reply(
            NBD_REP.SERVER,
            encodeServerName(exp.name, exp.description ?? ""),
          );
        }
        await reply(NBD_REP.ACK);
        break;
      case NBD_OPT.STRUCTURED_REPLY:
        if (length !== 0) {
          await fail(
            NBD_REP.ERR_INVALID,
            "NBD_OPT_STRUCTURED_REPLY takes no data",
          );
          break;
        }
        structuredReplies = true;
        await reply(NBD_REP.ACK);
        break;
      case NBD_OPT.LIST_META_CONTEXT:
      case NBD_OPT.SET_META_CONTEXT: {
        const set = option === NBD_OPT.SET_META_CONTEXT;
        let request;
        try {
          request = decodeMetaContextRequest(data);
        } catch (error) {
          await fail(NBD_REP.ERR_INVALID, (error as Error).message);
          break;
        }
        if (!structuredReplies) {
          await fail(NBD_REP.ERR_INVALID, "structured replies not negotiated");
          break;
        }
        if (!opts.exports.has(request.name)) {
          await fail(NBD_REP.ERR_UNKNOWN, `export "${request.name}" not found`);
          break;
        }
        const matches = set
          ? request.queries.includes(BASE_ALLOCATION)
          : request.queries.length === 0 ||
            request.queries.some((q) => q === "base:" || q === BASE_ALLOCATION);
        if (set) contextsFor = matches ? request.name : undefined;
        if (matches) {
          await reply(
            NBD_REP.META_CONTEXT,
            encodeMetaContextReply({
              id: BASE_ALLOCATION_ID,
              name: BASE_ALLOCATION,
            }),
          );
        }
        await reply(NBD_REP.ACK);
        break;
      }
      case NBD_OPT.INFO:
      case NBD_OPT.GO: {
        let request;
        try {
          request = decodeInfoRequest(data);
        } catch (error) {
          await fail(NBD_REP.ERR_INVALID, (error as Error).message);
          break;
        }
        const exp = opts.exports.get(request.name);
        if (exp === undefined) {
          await fail(NBD_REP.ERR_UNKNOWN, `export "${request.name}" not found`);
          break;
        }
        await reply(NBD_REP.INFO, encodeInfoExport(exp.size, exportFlags(exp)));
        await reply(
          NBD_REP.INFO,
          encodeInfoBlockSize(exp.blockSize ?? DEFAULT_SERVER_BLOCK_SIZE),
        );
        if (request.requests.includes(NBD_INFO.NAME)) {
          await reply(NBD_REP.INFO, encodeInfoName(exp.name));
        }
        if (
          request.requests.includes(NBD_INFO.DESCRIPTION) &&
          exp.description !== undefined
        ) {
          await reply(NBD_REP.INFO, encodeInfoDescription(exp.description));
        }
        await reply(NBD_REP.ACK);
        if (option === NBD_OPT.GO) {
          return {
            exp,
            structuredReplies,
            baseAllocation: structuredReplies && contextsFor === exp.name,
          };
        }
        break;
      }
      default:
        // TLS and anything newer: not offered.
        await fail(NBD_REP.ERR_UNSUP, `option ${option} not supported`);
    }
  }
}
