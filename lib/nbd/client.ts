/**
 * An NBD client: connection state and I/O only; every byte layout comes from
 * handshake.ts and transmission.ts. Several requests run at once (replies
 * are routed by cookie); the first fatal error is latched and fails every
 * pending and later request.
 */
import { InFlight } from "../io/in_flight.ts";
import { EndOfStreamError } from "../io/read_exact.ts";
import { negotiate } from "./client_handshake.ts";
import { NbdError } from "./errors.ts";
import { BASE_ALLOCATION, NBD_CMD, NBD_CMD_FLAG, NBD_FLAG } from "./format.ts";
import type { BlockSizes } from "./handshake.ts";
import { type Pending, ReplyRouter } from "./client_replies.ts";
import { SocketReader } from "./socket_reader.ts";
import { type BlockExtent, encodeRequest } from "./transmission.ts";

export interface NbdClientOptions {
  address: { path: string } | { hostname: string; port: number };
  exportName: string;
  /** Default ["base:allocation"]. E.g. "qemu:dirty-bitmap:NAME". */
  metaContexts?: string[];
  /** Requests in flight on this connection (default 16). */
  maxInFlight?: number;
}

export type { BlockExtent };

/** Largest READ/WRITE sent, whatever the server allows. */
const MAX_DATA_REQUEST = 32 * 1024 * 1024;
/** Largest TRIM/WRITE_ZEROES/BLOCK_STATUS sent (a power of two: stays aligned). */
const MAX_NODATA_REQUEST = 1024 * 1024 * 1024;

interface RequestExtra {
  flags?: number;
  into?: Uint8Array;
  payload?: Uint8Array;
  contextId?: number;
  extents?: BlockExtent[];
}

export class NbdClient {
  readonly exportName: string;
  readonly size: number;
  readonly exportFlags: number;
  readonly readOnly: boolean;
  readonly canMultiConn: boolean;
  readonly canTrim: boolean;
  readonly canWriteZeroes: boolean;
  readonly canFlush: boolean;
  readonly structuredReplies: boolean;
  readonly blockSize: { minimum: number; preferred: number; maximum: number };
  #conn: Deno.Conn;
  #reader: SocketReader;
  #contexts: Map<string, number>;
  #replies: ReplyRouter;
  /** Requests not yet settled, queued or sent (a counter: see `InFlight`). */
  #active = new InFlight();
  #free: number;
  #waiters: (() => void)[] = [];
  #writing: Promise<void> = Promise.resolve();
  #error: Error | undefined;
  #closing: Promise<void> | undefined;
  #readLoop: Promise<void>;

  private constructor(
    conn: Deno.Conn,
    reader: SocketReader,
    init: {
      exportName: string;
      size: number;
      flags: number;
      blockSize: BlockSizes;
      structuredReplies: boolean;
      contexts: Map<string, number>;
      maxInFlight: number;
    },
  ) {
    this.#conn = conn;
    this.#reader = reader;
    this.exportName = init.exportName;
    this.size = init.size;
    this.exportFlags = init.flags;
    const has = (f: number) => (init.flags & f) !== 0;
    this.readOnly = has(NBD_FLAG.READ_ONLY);
    this.canMultiConn = has(NBD_FLAG.CAN_MULTI_CONN);
    this.canTrim = has(NBD_FLAG.SEND_TRIM);
    this.canWriteZeroes = has(NBD_FLAG.SEND_WRITE_ZEROES);
    this.canFlush = has(NBD_FLAG.SEND_FLUSH);
    this.structuredReplies = init.structuredReplies;
    this.blockSize = init.blockSize;
    this.#contexts = init.contexts;
    this.#free = Math.max(1, init.maxInFlight);
    this.#replies = new ReplyRouter(reader, init.exportName);
    this.#readLoop = this.#receive();
  }

  static async connect(options: NbdClientOptions): Promise<NbdClient> {
    const where = "path" in options.address
      ? options.address.path
      : `${options.address.hostname}:${options.address.port}`;
    let conn: Deno.Conn;
    try {
      if ("path" in options.address) {
        conn = await Deno.connect({
          transport: "unix",
          path: options.address.path,
        });
      } else {
        const tcp = await Deno.connect({
          hostname: options.address.hostname,
          port: options.address.port,
        });
        tcp.setNoDelay(true);
        conn = tcp;
      }
    } catch (error) {
      throw new NbdError(
        `Cannot connect to NBD server ${where}: ${(error as Error).message}`,
        { cause: error },
      );
    }
    const reader = new SocketReader(conn);
    try {
      const n = await negotiate({
        readExact: (len, what) => reader.readExact(len, what),
        write: (bytes) => writeAll(conn, bytes),
      }, {
        exportName: options.exportName,
        metaContexts: options.metaContexts ?? [BASE_ALLOCATION],
      });
      return new NbdClient(conn, reader, {
        exportName: options.exportName,
        size: n.size,
        flags: n.flags,
        blockSize: n.blockSize,
        structuredReplies: n.structuredReplies,
        contexts: new Map(n.contexts.map((c) => [c.name, c.id])),
        maxInFlight: options.maxInFlight ?? 16,
      });
    } catch (error) {
      try {
        conn.close();
      } catch { /* already closed */ }
      if (error instanceof NbdError) throw error;
      throw new NbdError(
        `Cannot open NBD export "${options.exportName}" at ${where}: ${
          (error as Error).message
        }`,
        { cause: error },
      );
    }
  }

  /** Whether the server agreed to this meta context (e.g. "base:allocation"). */
  hasMetaContext(name: string): boolean {
    return this.#contexts.has(name);
  }

  /** Fills `into` from `offset` (requests split at the server's maximum block size). */
  async read(offset: number, into: Uint8Array): Promise<void> {
    this.#checkRange("read", offset, into.length);
    await this.#inSteps(
      offset,
      into,
      (at, part) =>
        this.#request(NBD_CMD.READ, at, part.length, { into: part }),
    );
  }

  async write(offset: number, data: Uint8Array): Promise<void> {
    this.#checkRange("write", offset, data.length);
    this.#checkWritable("write", offset, data.length);
    await this.#inSteps(
      offset,
      data,
      (at, part) =>
        this.#request(NBD_CMD.WRITE, at, part.length, { payload: part }),
    );
  }

  /** One request per piece of `bytes` of at most the server's maximum block size, all in flight at once. */
  async #inSteps(
    offset: number,
    bytes: Uint8Array,
    send: (offset: number, part: Uint8Array) => Promise<unknown>,
  ): Promise<void> {
    const step = this.#dataStep();
    const parts = [];
    for (let at = 0; at < bytes.length; at += step) {
      parts.push(
        send(
          offset + at,
          bytes.subarray(at, Math.min(at + step, bytes.length)),
        ),
      );
    }
    await Promise.all(parts);
  }

  /** Zeros a range; with `noHole` the server must keep it allocated. Falls back to writes of zeros. */
  async writeZeroes(
    offset: number,
    length: number,
    options: { noHole?: boolean } = {},
  ): Promise<void> {
    this.#checkRange("write zeroes of", offset, length);
    this.#checkWritable("write zeroes of", offset, length);
    if (!this.canWriteZeroes) {
      const zeros = new Uint8Array(Math.min(length, this.#dataStep()));
      for (let at = 0; at < length; at += zeros.length) {
        await this.write(
          offset + at,
          zeros.subarray(0, Math.min(zeros.length, length - at)),
        );
      }
      return;
    }
    const flags = options.noHole ? NBD_CMD_FLAG.NO_HOLE : 0;
    await this.#split(NBD_CMD.WRITE_ZEROES, offset, length, flags);
  }

  /** Discards a range (the server may free it). Needs `canTrim`. */
  async trim(offset: number, length: number): Promise<void> {
    this.#checkRange("trim", offset, length);
    this.#checkWritable("trim", offset, length);
    if (!this.canTrim) {
      throw new NbdError(
        `Cannot trim NBD export "${this.exportName}": the server does not support NBD_CMD_TRIM`,
      );
    }
    await this.#split(NBD_CMD.TRIM, offset, length, 0);
  }

  /** Makes written data durable; nothing to do when the server has no flush. */
  async flush(): Promise<void> {
    if (this.#error) throw this.#error;
    if (!this.canFlush) return;
    await this.#request(NBD_CMD.FLUSH, 0, 0, {});
  }

  /**
   * Extents from `offset`, contiguous, clipped to the request, covering at
   * least its start. Without block status on the server, `base:allocation`
   * reports everything as data.
   */
  async blockStatus(
    offset: number,
    length: number,
    context: string = BASE_ALLOCATION,
  ): Promise<BlockExtent[]> {
    this.#checkRange("get block status of", offset, length);
    if (this.#error) throw this.#error;
    const contextId = this.#contexts.get(context);
    if (length === 0) return [];
    if (contextId === undefined) {
      if (context === BASE_ALLOCATION) return [{ offset, length, flags: 0 }];
      throw new NbdError(
        `Cannot get block status of NBD export "${this.exportName}": the server did not agree to meta context "${context}"`,
      );
    }
    const extents: BlockExtent[] = [];
    await this.#request(
      NBD_CMD.BLOCK_STATUS,
      offset,
      Math.min(length, MAX_NODATA_REQUEST),
      { contextId, extents },
    );
    if (extents.length === 0) {
      throw new NbdError(
        `Cannot get block status of NBD export "${this.exportName}": the server sent no extent for "${context}"`,
      );
    }
    return extents;
  }

  /** Waits for pending requests, sends NBD_CMD_DISC, closes. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    await this.#active.idle();
    if (this.#error === undefined) {
      const disc = encodeRequest({
        flags: 0,
        type: NBD_CMD.DISC,
        // No reply comes: any cookie will do (request cookies start at 1).
        cookie: 0n,
        offset: 0,
        length: 0,
      });
      await this.#send(disc).catch(() => {});
    }
    this.#fail(new NbdError(`NBD export "${this.exportName}" is closed`));
    await this.#readLoop;
  }

  #dataStep(): number {
    const max = Math.min(this.blockSize.maximum, MAX_DATA_REQUEST);
    return max - (max % this.blockSize.minimum);
  }

  #checkRange(verb: string, offset: number, length: number): void {
    if (
      !Number.isSafeInteger(offset) || offset < 0 || length < 0 ||
      offset + length > this.size
    ) {
      throw new NbdError(
        `Cannot ${verb} ${length} bytes at offset ${offset} of NBD export "${this.exportName}": outside its ${this.size} bytes`,
      );
    }
  }

  #checkWritable(verb: string, offset: number, length: number): void {
    if (this.readOnly) {
      throw new NbdError(
        `Cannot ${verb} ${length} bytes at offset ${offset} of NBD export "${this.exportName}": the export is read-only`,
      );
    }
  }

  async #split(
    command: number,
    offset: number,
    length: number,
    flags: number,
  ): Promise<void> {
    const parts = [];
    for (let at = 0; at < length; at += MAX_NODATA_REQUEST) {
      const n = Math.min(MAX_NODATA_REQUEST, length - at);
      parts.push(this.#request(command, offset + at, n, { flags }));
    }
    await Promise.all(parts);
  }

  #request(
    command: number,
    offset: number,
    length: number,
    extra: RequestExtra,
  ): Promise<void> {
    if (this.#closing) {
      return Promise.reject(
        new NbdError(`NBD export "${this.exportName}" is closed`),
      );
    }
    const task = this.#issue(command, offset, length, extra);
    this.#active.track(task);
    return task;
  }

  async #issue(
    command: number,
    offset: number,
    length: number,
    extra: RequestExtra,
  ): Promise<void> {
    if (this.#error) throw this.#error;
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiters.push(resolve));
    try {
      if (this.#error) throw this.#error;
      const { promise: done, resolve, reject } = Promise.withResolvers<void>();
      const p: Pending = {
        command,
        offset,
        length,
        received: 0,
        resolve,
        reject,
      };
      if (extra.into) p.into = extra.into;
      if (extra.contextId !== undefined) p.contextId = extra.contextId;
      if (extra.extents) p.extents = extra.extents;
      // Throws (nothing is sent) when no slot is left.
      const cookie = this.#replies.add(p);
      const header = encodeRequest({
        flags: extra.flags ?? 0,
        type: command,
        cookie,
        offset,
        length,
      });
      this.#send(header, extra.payload).catch((error) =>
        this.#fail(
          new NbdError(
            `Cannot send to NBD export "${this.exportName}": ${error.message}`,
            { cause: error },
          ),
        )
      );
      await done;
    } finally {
      const next = this.#waiters.shift();
      if (next) next();
      else this.#free++;
    }
  }

  #send(header: Uint8Array, payload?: Uint8Array): Promise<void> {
    this.#writing = this.#writing.then(async () => {
      await writeAll(this.#conn, header);
      if (payload) await writeAll(this.#conn, payload);
    });
    return this.#writing;
  }

  /** Latches the first fatal error, fails everything pending, closes the socket. */
  #fail(error: Error): void {
    if (this.#error) return;
    this.#error = error;
    this.#replies.failAll(error);
    for (const w of this.#waiters.splice(0)) w();
    try {
      this.#conn.close();
    } catch { /* already closed */ }
  }

  async #receive(): Promise<void> {
    try {
      await this.#replies.run();
    } catch (error) {
      if (this.#error) return;
      const reason = error instanceof EndOfStreamError
        ? "the server closed the connection"
        : (error as Error).message;
      this.#fail(
        new NbdError(
          `Cannot read from NBD export "${this.exportName}": ${reason}`,
          { cause: error },
        ),
      );
    }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await conn.write(bytes.subarray(done));
}
