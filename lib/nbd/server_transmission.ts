/** The server side of the NBD transmission phase: requests in, replies out, for one connection. */
import { InFlight } from "../io/in_flight.ts";
import type { ByteReader } from "../io/read_exact.ts";
import { NbdError } from "./errors.ts";
import {
  BLOCK_SIZE_MAX,
  NBD_CMD,
  NBD_CMD_FLAG,
  NBD_E,
  NBD_REPLY_FLAG_DONE,
  NBD_SIZE,
} from "./format.ts";
import {
  BASE_ALLOCATION_ID,
  isReadOnly,
  type Session,
} from "./server_handshake.ts";
import {
  type BlockDescriptor,
  decodeRequest,
  encodeBlockStatusChunk,
  encodeErrorChunk,
  encodeOffsetDataHeader,
  encodeSimpleReply,
  type Request,
} from "./transmission.ts";

/** Requests with a data payload above this close the connection. */
const MAX_REQUEST_LENGTH = BLOCK_SIZE_MAX;
/** Write payloads up to this size (QEMU's block-copy sends 1 MiB) use pooled buffers. */
const POOLED_PAYLOAD = 1024 * 1024;
/** Read replies up to this payload size go out of pooled buffers. */
const POOLED_REPLY = 1024 * 1024;
/** Most descriptors in one block status reply. */
const MAX_DESCRIPTORS = 64 * 1024;

export interface TransmitOptions {
  maxInFlight: number;
  /** Called with a handler's failure (the client gets EIO). */
  latch(error: Error): void;
}

/** A handler failed; the client gets `errno`. */
class HandlerFailure {
  constructor(readonly errno: number) {}
}

/**
 * Serves requests until NBD_CMD_DISC or the end of the stream. Up to
 * `maxInFlight` requests run at once; beyond that the socket is not read,
 * so a slow handler slows the client down instead of filling memory.
 */
export async function transmit(
  input: ByteReader,
  send: (b: Uint8Array) => Promise<void>,
  session: Session,
  opts: TransmitOptions,
): Promise<void> {
  const { exp, structuredReplies } = session;
  const h = exp.handler;
  const readOnly = isReadOnly(exp);

  const replyError = (r: Request, errno: number, message = "") =>
    structuredReplies &&
      (r.type === NBD_CMD.READ || r.type === NBD_CMD.BLOCK_STATUS)
      ? send(encodeErrorChunk(r.cookie, NBD_REPLY_FLAG_DONE, {
        error: errno,
        message,
      }))
      : send(encodeSimpleReply(r.cookie, errno));
  const ok = (r: Request) => send(encodeSimpleReply(r.cookie, 0));

  /** Runs a handler call; its failure is latched and becomes EIO. */
  const call = async <T>(fn: () => Promise<T>): Promise<T | HandlerFailure> => {
    try {
      return await fn();
    } catch (error) {
      opts.latch(error instanceof Error ? error : new Error(String(error)));
      return new HandlerFailure(NBD_E.IO);
    }
  };

  // Read replies: header and payload in one reused buffer, one write each.
  const replies = new ReplyPool(
    structuredReplies ? NBD_SIZE.structuredReply + 8 : NBD_SIZE.simpleReply,
    opts.maxInFlight,
  );
  const read = async (r: Request): Promise<void> => {
    if (h.read === undefined) return await replyError(r, NBD_E.INVAL);
    const out = replies.take(r.length);
    try {
      const got = await call(() =>
        h.read!(r.offset, out.subarray(replies.head))
      );
      if (got instanceof HandlerFailure) {
        return await replyError(r, got.errno, "read failed");
      }
      out.set(
        structuredReplies
          ? encodeOffsetDataHeader(r.cookie, {
            flags: NBD_REPLY_FLAG_DONE,
            offset: r.offset,
            dataLength: r.length,
          })
          : encodeSimpleReply(r.cookie, 0),
      );
      await send(out);
    } finally {
      replies.give(out);
    }
  };

  const blockStatus = async (r: Request): Promise<void> => {
    if (!session.baseAllocation || r.length === 0) {
      return await replyError(r, NBD_E.INVAL);
    }
    const end = r.offset + r.length;
    const extents = h.blockStatus === undefined
      ? [{ offset: r.offset, length: r.length, flags: 0 }]
      : await call(() => h.blockStatus!(r.offset, r.length));
    if (extents instanceof HandlerFailure) {
      return await replyError(r, extents.errno, "block status failed");
    }
    const descriptors: BlockDescriptor[] = [];
    let at = r.offset;
    for (const e of extents) {
      if (e.offset !== at || e.length <= 0) break;
      const length = Math.min(e.length, end - at);
      descriptors.push({ length, flags: e.flags });
      at += length;
      if (
        at >= end || descriptors.length >= MAX_DESCRIPTORS ||
        (r.flags & NBD_CMD_FLAG.REQ_ONE) !== 0
      ) break;
    }
    if (descriptors.length === 0) {
      opts.latch(
        new NbdError(
          `Cannot answer NBD block status of export "${exp.name}" at ${r.offset}: the handler returned no extent there`,
        ),
      );
      return await replyError(r, NBD_E.IO, "no extent");
    }
    await send(
      encodeBlockStatusChunk(r.cookie, NBD_REPLY_FLAG_DONE, {
        contextId: BASE_ALLOCATION_ID,
        descriptors,
      }),
    );
  };

  const handle = async (
    r: Request,
    payload: Uint8Array | null,
  ): Promise<void> => {
    const inRange = r.offset + r.length <= exp.size;
    const writing = r.type === NBD_CMD.WRITE ||
      r.type === NBD_CMD.WRITE_ZEROES || r.type === NBD_CMD.TRIM;
    if (writing && readOnly) return await replyError(r, NBD_E.PERM);
    if (!inRange && r.type !== NBD_CMD.FLUSH) {
      return await replyError(r, NBD_E.INVAL);
    }
    let result: unknown;
    switch (r.type) {
      case NBD_CMD.READ:
        return await read(r);
      case NBD_CMD.BLOCK_STATUS:
        return await blockStatus(r);
      case NBD_CMD.WRITE:
        result = await call(() => h.write!(r.offset, payload!));
        break;
      case NBD_CMD.WRITE_ZEROES:
      case NBD_CMD.TRIM:
        if (h.writeZeroes === undefined) {
          return await replyError(r, NBD_E.NOTSUP);
        }
        result = await call(() => h.writeZeroes!(r.offset, r.length));
        break;
      case NBD_CMD.FLUSH:
        result = await call(async () => await h.flush?.());
        break;
      case NBD_CMD.CACHE:
        break;
      default:
        return await replyError(r, NBD_E.INVAL);
    }
    if (result instanceof HandlerFailure) {
      return await replyError(r, result.errno);
    }
    await ok(r);
  };

  const inFlight = new InFlight();
  // Write payloads go into reused buffers: memory stays flat however long the copy.
  const pool: Uint8Array[] = [];
  for (;;) {
    await inFlight.waitBelow(opts.maxInFlight);
    const header = await input.readRecord(NBD_SIZE.request, "NBD request");
    if (header === null) break;
    const r = decodeRequest(header);
    if (r.type === NBD_CMD.DISC) break;
    let payload: Uint8Array | null = null;
    if (r.type === NBD_CMD.WRITE) {
      if (r.length > MAX_REQUEST_LENGTH) {
        throw new NbdError(`Cannot accept NBD write of ${r.length} bytes`);
      }
      const buffer = r.length <= POOLED_PAYLOAD
        ? pool.pop() ?? new Uint8Array(POOLED_PAYLOAD)
        : undefined;
      payload = await input.readExact(r.length, "NBD write payload", buffer);
    } else if (r.type === NBD_CMD.READ && r.length > MAX_REQUEST_LENGTH) {
      await replyError(r, NBD_E.OVERFLOW);
      continue;
    }
    if (
      r.type === NBD_CMD.WRITE_ZEROES &&
      (r.flags & NBD_CMD_FLAG.FAST_ZERO) !== 0 && readOnly
    ) {
      await replyError(r, NBD_E.NOTSUP);
      continue;
    }
    // A flush covers every write answered before it: wait for those first.
    if (r.type === NBD_CMD.FLUSH) await inFlight.idle();
    const pooled = payload !== null && r.length <= POOLED_PAYLOAD
      ? payload
      : null;
    inFlight.track(
      handle(r, payload).catch(() => {}).finally(() => {
        if (pooled !== null) {
          pool.push(
            new Uint8Array(pooled.buffer, pooled.byteOffset, POOLED_PAYLOAD),
          );
        }
      }),
    );
  }
  await inFlight.idle();
}

/**
 * Reply buffers (`head` bytes of header, then the payload) reused per
 * connection: a read reply costs no allocation and no zero fill. Buffers
 * come in power-of-two payload sizes up to POOLED_REPLY; each size keeps at
 * most `keep` buffers (no more are in flight at once).
 */
class ReplyPool {
  #free = new Map<number, Uint8Array[]>();

  constructor(readonly head: number, readonly keep: number) {}

  /** A buffer of exactly `head + length` bytes (its contents are stale). */
  take(length: number): Uint8Array {
    if (length > POOLED_REPLY) return new Uint8Array(this.head + length);
    const size = capacity(length);
    const buffer = this.#free.get(size)?.pop() ??
      new Uint8Array(this.head + size);
    return buffer.subarray(0, this.head + length);
  }

  give(out: Uint8Array): void {
    const size = out.buffer.byteLength - this.head;
    if (size > POOLED_REPLY || size !== capacity(size)) return;
    let list = this.#free.get(size);
    if (list === undefined) this.#free.set(size, list = []);
    if (list.length < this.keep) list.push(new Uint8Array(out.buffer));
  }
}

/** The power of two at or above `length`, at least 4 KiB. */
function capacity(length: number): number {
  let size = 4096;
  while (size < length) size *= 2;
  return size;
}
