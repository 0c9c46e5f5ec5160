import { EndOfStreamError, ExactReader } from "../io/read_exact.ts";
import { NbdError } from "./errors.ts";
import {
  BLOCK_SIZE_MAX,
  BLOCK_SIZE_MIN,
  BLOCK_SIZE_PREFERRED,
  MAX_OPTION_LENGTH,
  NBD_CMD,
  NBD_CMD_FLAG,
  NBD_E,
  NBD_FLAG,
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_INFO,
  NBD_OPT,
  NBD_REP,
  NBD_SIZE,
} from "./format.ts";
import {
  decodeInfoRequest,
  decodeName,
  decodeOptionHeader,
  encodeExportNameReply,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoName,
  encodeOptionReply,
  encodeServerName,
} from "./handshake.ts";
import {
  decodeRequest,
  encodeSimpleReply,
  type Request,
} from "./transmission.ts";

/** What an export does with the client's requests. */
export interface NbdExportHandler {
  /** `data` is valid only until the promise resolves. Slow promises are backpressure. */
  write(offset: number, data: Uint8Array): Promise<void>;
  /** A range of zeros (WRITE_ZEROES or TRIM). */
  writeZeroes(offset: number, length: number): Promise<void>;
  /** Fills `into` from `offset`. Without it, reads fail with EINVAL. */
  read?(offset: number, into: Uint8Array): Promise<void>;
  flush?(): Promise<void>;
}

export interface NbdExport {
  name: string;
  size: number;
  readOnly?: boolean;
  description?: string;
  handler: NbdExportHandler;
}

export interface NbdServerOptions {
  path: string;
  exports: NbdExport[];
  /** Requests handled at once per connection (default 16, QEMU's own limit). */
  maxInFlight?: number;
}

/** Requests with a data payload above this close the connection. */
const MAX_REQUEST_LENGTH = BLOCK_SIZE_MAX;
/** Write payloads up to this size (QEMU's block-copy sends 1 MiB) use pooled buffers. */
const POOLED_PAYLOAD = 1024 * 1024;

/**
 * An NBD server on a unix socket (fixed newstyle, simple replies), one or
 * more exports, any number of connections. Requests of a connection run
 * concurrently up to `maxInFlight`; beyond that the server stops reading the
 * socket, so a slow handler slows the client down instead of filling memory.
 */
export class NbdServer {
  readonly path: string;
  #listener: Deno.Listener<Deno.UnixConn, Deno.UnixAddr>;
  #exports: Map<string, NbdExport>;
  #maxInFlight: number;
  #conns = new Set<Deno.UnixConn>();
  #error: Error | undefined;
  #closed = false;
  #acceptLoop: Promise<void>;
  #connLoops = new Set<Promise<void>>();

  private constructor(
    listener: Deno.Listener<Deno.UnixConn, Deno.UnixAddr>,
    options: NbdServerOptions,
  ) {
    this.path = options.path;
    this.#listener = listener;
    this.#exports = new Map(options.exports.map((e) => [e.name, e]));
    this.#maxInFlight = options.maxInFlight ?? 16;
    this.#acceptLoop = this.#accept();
  }

  static listen(options: NbdServerOptions): Promise<NbdServer> {
    try {
      const listener = Deno.listen({ transport: "unix", path: options.path });
      return Promise.resolve(new NbdServer(listener, options));
    } catch (error) {
      return Promise.reject(
        new NbdError(
          `Cannot listen on ${options.path}: ${(error as Error).message}`,
          { cause: error },
        ),
      );
    }
  }

  /** The first handler failure, latched: the data an export received is incomplete. */
  get error(): Error | undefined {
    return this.#error;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch { /* already closed */ }
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
    await this.#acceptLoop;
    await Promise.allSettled([...this.#connLoops]);
    await Deno.remove(this.path).catch(() => {});
  }

  async #accept(): Promise<void> {
    while (!this.#closed) {
      let conn: Deno.UnixConn;
      try {
        conn = await this.#listener.accept();
      } catch {
        return;
      }
      this.#conns.add(conn);
      const loop = this.#serve(conn).catch(() => {}).finally(() => {
        this.#conns.delete(conn);
        this.#connLoops.delete(loop);
        try {
          conn.close();
        } catch { /* already closed */ }
      });
      this.#connLoops.add(loop);
    }
  }

  #latch(error: Error): void {
    this.#error ??= error;
  }

  async #serve(conn: Deno.UnixConn): Promise<void> {
    const input = new ExactReader(conn.readable);
    let writing = Promise.resolve();
    const send = (bytes: Uint8Array): Promise<void> => {
      writing = writing.then(async () => {
        let done = 0;
        while (done < bytes.length) {
          done += await conn.write(bytes.subarray(done));
        }
      });
      return writing;
    };
    try {
      await send(encodeGreeting(NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES));
      const flags = new DataView(
        (await input.readExact(NBD_SIZE.clientFlags)).slice().buffer,
      ).getUint32(0);
      if ((flags & NBD_FLAG_C_FIXED_NEWSTYLE) === 0 || (flags & ~3) !== 0) {
        return;
      }
      const exp = await this.#negotiate(
        input,
        send,
        (flags & NBD_FLAG_C_NO_ZEROES) !== 0,
      );
      if (exp === null) return;
      await this.#transmit(input, send, exp);
    } catch (error) {
      if (
        !(error instanceof EndOfStreamError || error instanceof NbdError ||
          error instanceof Deno.errors.BadResource)
      ) {
        throw error;
      }
    } finally {
      await writing.catch(() => {});
      await input.cancel();
    }
  }

  #flags(exp: NbdExport): number {
    let flags = NBD_FLAG.HAS_FLAGS | NBD_FLAG.SEND_FLUSH |
      NBD_FLAG.SEND_WRITE_ZEROES | NBD_FLAG.SEND_TRIM |
      NBD_FLAG.SEND_FAST_ZERO;
    if (exp.readOnly) flags |= NBD_FLAG.READ_ONLY;
    if (exp.readOnly) flags |= NBD_FLAG.CAN_MULTI_CONN;
    return flags;
  }

  /** The option phase; returns the chosen export, or null when the client aborted. */
  async #negotiate(
    input: ExactReader,
    send: (b: Uint8Array) => Promise<void>,
    noZeroes: boolean,
  ): Promise<NbdExport | null> {
    for (;;) {
      const { option, length } = decodeOptionHeader(
        await input.readExact(NBD_SIZE.optionHeader),
      );
      if (length > MAX_OPTION_LENGTH) {
        throw new NbdError(`Cannot read NBD option ${option}: ${length} bytes`);
      }
      const data = (await input.readExact(length)).slice();
      const reply = (type: number, payload?: Uint8Array) =>
        send(encodeOptionReply(option, type, payload));
      switch (option) {
        case NBD_OPT.EXPORT_NAME: {
          const exp = this.#exports.get(decodeName(data));
          if (exp === undefined) return null; // the protocol's only answer: hang up
          await send(
            encodeExportNameReply(exp.size, this.#flags(exp), noZeroes),
          );
          return exp;
        }
        case NBD_OPT.ABORT:
          await reply(NBD_REP.ACK).catch(() => {});
          return null;
        case NBD_OPT.LIST:
          if (length !== 0) {
            await reply(NBD_REP.ERR_INVALID);
            break;
          }
          for (const name of this.#exports.keys()) {
            await reply(NBD_REP.SERVER, encodeServerName(name));
          }
          await reply(NBD_REP.ACK);
          break;
        case NBD_OPT.INFO:
        case NBD_OPT.GO: {
          let request;
          try {
            request = decodeInfoRequest(data);
          } catch {
            await reply(NBD_REP.ERR_INVALID);
            break;
          }
          const exp = this.#exports.get(request.name);
          if (exp === undefined) {
            await reply(NBD_REP.ERR_UNKNOWN);
            break;
          }
          await reply(
            NBD_REP.INFO,
            encodeInfoExport(exp.size, this.#flags(exp)),
          );
          await reply(
            NBD_REP.INFO,
            encodeInfoBlockSize({
              minimum: BLOCK_SIZE_MIN,
              preferred: BLOCK_SIZE_PREFERRED,
              maximum: BLOCK_SIZE_MAX,
            }),
          );
          if (request.requests.includes(NBD_INFO.NAME)) {
            await reply(NBD_REP.INFO, encodeInfoName(exp.name));
          }
          await reply(NBD_REP.ACK);
          if (option === NBD_OPT.GO) return exp;
          break;
        }
        default:
          // Structured replies, meta contexts, TLS: not offered. QEMU works without them.
          await reply(NBD_REP.ERR_UNSUP);
      }
    }
  }

  async #transmit(
    input: ExactReader,
    send: (b: Uint8Array) => Promise<void>,
    exp: NbdExport,
  ): Promise<void> {
    const inFlight = new Set<Promise<void>>();
    const reply = (r: Request, error: number, data?: Uint8Array) =>
      send(encodeSimpleReply(r.cookie, error, data));
    const handle = async (
      r: Request,
      payload: Uint8Array | null,
    ): Promise<void> => {
      const h = exp.handler;
      const inRange = r.offset + r.length <= exp.size;
      try {
        switch (r.type) {
          case NBD_CMD.WRITE:
            if (exp.readOnly) return await reply(r, NBD_E.PERM);
            if (!inRange) return await reply(r, NBD_E.INVAL);
            await h.write(r.offset, payload!);
            return await reply(r, 0);
          case NBD_CMD.WRITE_ZEROES:
          case NBD_CMD.TRIM:
            if (exp.readOnly) return await reply(r, NBD_E.PERM);
            if (!inRange) return await reply(r, NBD_E.INVAL);
            await h.writeZeroes(r.offset, r.length);
            return await reply(r, 0);
          case NBD_CMD.READ: {
            if (!inRange || h.read === undefined) {
              return await reply(r, NBD_E.INVAL);
            }
            const into = new Uint8Array(r.length);
            await h.read(r.offset, into);
            return await reply(r, 0, into);
          }
          case NBD_CMD.FLUSH:
            await h.flush?.();
            return await reply(r, 0);
          case NBD_CMD.CACHE:
            return await reply(r, 0);
          default:
            return await reply(r, NBD_E.INVAL);
        }
      } catch (error) {
        if (
          error instanceof Deno.errors.BadResource ||
          error instanceof Deno.errors.BrokenPipe
        ) throw error;
        this.#latch(error instanceof Error ? error : new Error(String(error)));
        await reply(r, NBD_E.IO);
      }
    };

    // Write payloads go into reused buffers: memory stays flat however long the copy.
    const pool: Uint8Array[] = [];
    for (;;) {
      while (inFlight.size >= this.#maxInFlight) await Promise.race(inFlight);
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
        await reply(r, NBD_E.OVERFLOW);
        continue;
      }
      if (
        r.type === NBD_CMD.WRITE_ZEROES &&
        (r.flags & NBD_CMD_FLAG.FAST_ZERO) !== 0 && exp.readOnly
      ) {
        await reply(r, NBD_E.NOTSUP);
        continue;
      }
      // A flush covers every write answered before it: wait for those first.
      if (r.type === NBD_CMD.FLUSH) await Promise.allSettled([...inFlight]);
      const pooled = payload !== null && r.length <= POOLED_PAYLOAD
        ? payload
        : null;
      const task: Promise<void> = handle(r, payload).catch(() => {}).finally(
        () => {
          inFlight.delete(task);
          if (pooled !== null) {
            pool.push(
              new Uint8Array(pooled.buffer, pooled.byteOffset, POOLED_PAYLOAD),
            );
          }
        },
      );
      inFlight.add(task);
    }
    await Promise.allSettled([...inFlight]);
  }
}
