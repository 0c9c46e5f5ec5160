/** Routes the NBD replies of one connection to their pending requests. */
import { EndOfStreamError } from "../io/read_exact.ts";
import { NbdError, NbdRequestError } from "./errors.ts";
import {
  NBD_CMD,
  NBD_E,
  NBD_REPLY_FLAG_DONE,
  NBD_REPLY_TYPE,
  NBD_REPLY_TYPE_ERROR_BIT,
  NBD_SIZE,
} from "./format.ts";
import type { SocketReader } from "./socket_reader.ts";
import {
  type BlockExtent,
  decodeBlockStatus,
  decodeChunkHeader,
  decodeErrorChunk,
  decodeOffsetData,
  decodeOffsetHole,
  decodeReplyMagic,
  decodeSimpleReply,
} from "./transmission.ts";

/** Requests in flight on one connection at most (cookies keep their slot in 16 bits). */
const MAX_SLOTS = 0xffff;
/** Block status chunks longer than this are a broken server. */
const MAX_STATUS_CHUNK = 16 * 1024 * 1024;

/** A request waiting for its reply. */
export interface Pending {
  command: number;
  offset: number;
  length: number;
  /** READ: where the data goes. */
  into?: Uint8Array;
  /** READ: bytes covered by data and holes so far. */
  received: number;
  /** BLOCK_STATUS: the context wanted, and where its extents go. */
  contextId?: number;
  extents?: BlockExtent[];
  error?: { errno: number; message: string };
  resolve(): void;
  reject(error: Error): void;
}

export class ReplyRouter {
  #reader: SocketReader;
  #exportName: string;
  /**
   * Requests waiting for their reply, by slot (an array, not a Map: see
   * `InFlight` in lib/io). A cookie is the slot + 1 in its low 16 bits and
   * a request count above, so a stray reply for a finished request is
   * refused even when its slot has a new request.
   */
  #slots: (Pending | undefined)[] = [];
  #cookies: number[] = [];
  #freeSlots: number[] = [];
  #issued = 0;
  /** Called whenever a request completes. */
  onSettled: () => void = () => {};

  constructor(reader: SocketReader, exportName: string) {
    this.#reader = reader;
    this.#exportName = exportName;
  }

  /** Requests waiting for their reply (every slot made and not free). */
  get size(): number {
    return this.#slots.length - this.#freeSlots.length;
  }

  /** Registers a request; returns its cookie. */
  add(p: Pending): bigint {
    const slot = this.#freeSlots.pop() ?? this.#slots.length;
    if (slot >= MAX_SLOTS) {
      throw new NbdError(`more than ${MAX_SLOTS} NBD requests in flight`);
    }
    const cookie = ++this.#issued * (MAX_SLOTS + 1) + slot + 1;
    this.#slots[slot] = p;
    this.#cookies[slot] = cookie;
    return BigInt(cookie);
  }

  failAll(error: Error): void {
    const pending = this.#slots;
    this.#slots = [];
    this.#cookies = [];
    this.#freeSlots = [];
    for (const p of pending) p?.reject(error);
  }

  /** Reads replies until the stream ends or breaks (then it throws). */
  async run(): Promise<void> {
    for (;;) {
      if (this.size === 0 && await this.#reader.atEnd()) {
        throw new EndOfStreamError(NBD_SIZE.simpleReply, 0, "NBD reply");
      }
      const kind = decodeReplyMagic(await this.#reader.peek(4, "NBD reply"));
      if (kind === "simple") await this.#simpleReply();
      else await this.#chunk();
    }
  }

  #take(cookie: bigint): Pending {
    const n = Number(cookie);
    const slot = (n % (MAX_SLOTS + 1)) - 1;
    // Cookies this router made are safe integers (exact as numbers); a
    // larger one matches none.
    const p = slot >= 0 && this.#cookies[slot] === n && Number.isSafeInteger(n)
      ? this.#slots[slot]
      : undefined;
    if (p === undefined) {
      throw new NbdError(`reply for unknown cookie ${cookie}`);
    }
    return p;
  }

  async #simpleReply(): Promise<void> {
    const r = decodeSimpleReply(
      await this.#reader.readExact(NBD_SIZE.simpleReply, "NBD reply"),
    );
    const p = this.#take(r.cookie);
    if (r.error === 0 && p.command === NBD_CMD.READ) {
      await this.#reader.readInto(p.into!, "NBD read data");
      p.received = p.length;
    }
    if (r.error !== 0) p.error = { errno: r.error, message: "" };
    this.#finish(r.cookie, p);
  }

  async #chunk(): Promise<void> {
    const h = decodeChunkHeader(
      await this.#reader.readExact(NBD_SIZE.structuredReply, "NBD reply"),
    );
    const p = this.#take(h.cookie);
    const end = p.offset + p.length;
    switch (h.type) {
      case NBD_REPLY_TYPE.OFFSET_DATA: {
        if (p.into === undefined || h.length < 8) {
          throw new NbdError("unexpected NBD_REPLY_TYPE_OFFSET_DATA");
        }
        const at = decodeOffsetData(await this.#reader.readExact(8));
        const n = h.length - 8;
        if (at < p.offset || at + n > end) {
          throw new NbdError("NBD_REPLY_TYPE_OFFSET_DATA outside the request");
        }
        await this.#reader.readInto(
          p.into.subarray(at - p.offset, at - p.offset + n),
          "NBD read data",
        );
        p.received += n;
        break;
      }
      case NBD_REPLY_TYPE.OFFSET_HOLE: {
        const hole = decodeOffsetHole(await this.#reader.readExact(h.length));
        if (
          p.into === undefined || hole.offset < p.offset ||
          hole.offset + hole.length > end
        ) throw new NbdError("NBD_REPLY_TYPE_OFFSET_HOLE outside the request");
        p.into.fill(
          0,
          hole.offset - p.offset,
          hole.offset - p.offset + hole.length,
        );
        p.received += hole.length;
        break;
      }
      case NBD_REPLY_TYPE.BLOCK_STATUS: {
        if (p.extents === undefined || h.length > MAX_STATUS_CHUNK) {
          throw new NbdError("unexpected NBD_REPLY_TYPE_BLOCK_STATUS");
        }
        const s = decodeBlockStatus(await this.#reader.readExact(h.length));
        if (s.contextId === p.contextId) {
          let at = p.offset;
          for (const d of s.descriptors) {
            const length = Math.min(d.length, end - at);
            if (length <= 0) break;
            p.extents.push({ offset: at, length, flags: d.flags });
            at += length;
          }
        }
        break;
      }
      case NBD_REPLY_TYPE.NONE:
        if (h.length !== 0) throw new NbdError("NBD_REPLY_TYPE_NONE with data");
        break;
      default: {
        if ((h.type & NBD_REPLY_TYPE_ERROR_BIT) === 0) {
          throw new NbdError(`unknown NBD structured reply type ${h.type}`);
        }
        const e = decodeErrorChunk(
          h.type,
          await this.#reader.readExact(h.length),
        );
        p.error ??= { errno: e.error || NBD_E.IO, message: e.message };
      }
    }
    if ((h.flags & NBD_REPLY_FLAG_DONE) !== 0) this.#finish(h.cookie, p);
  }

  #finish(cookie: bigint, p: Pending): void {
    const slot = (Number(cookie) % (MAX_SLOTS + 1)) - 1;
    this.#slots[slot] = undefined;
    this.#cookies[slot] = 0;
    this.#freeSlots.push(slot);
    if (p.error) {
      p.reject(
        new NbdRequestError({
          errno: p.error.errno,
          command: p.command,
          offset: p.offset,
          length: p.length,
          exportName: this.#exportName,
          serverMessage: p.error.message,
        }),
      );
    } else if (p.command === NBD_CMD.READ && p.received !== p.length) {
      p.reject(
        new NbdError(
          `Cannot read ${p.length} bytes at offset ${p.offset} from NBD export "${this.#exportName}": the server sent ${p.received}`,
        ),
      );
    } else p.resolve();
  }
}
