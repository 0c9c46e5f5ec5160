/**
 * An NBD server: listening, connections and their lifetimes. The handshake
 * is in server_handshake.ts, the requests in server_transmission.ts, every
 * byte layout in handshake.ts and transmission.ts.
 */
import { EndOfStreamError } from "../io/read_exact.ts";
import { NbdError } from "./errors.ts";
import {
  NBD_FLAG_C_FIXED_NEWSTYLE,
  NBD_FLAG_C_NO_ZEROES,
  NBD_FLAG_FIXED_NEWSTYLE,
  NBD_FLAG_NO_ZEROES,
  NBD_SIZE,
} from "./format.ts";
import { decodeClientFlags, encodeGreeting } from "./handshake.ts";
import { type NbdExport, negotiateServer } from "./server_handshake.ts";
import { transmit } from "./server_transmission.ts";
import { SocketReader } from "./socket_reader.ts";

export type { NbdExport, NbdExportHandler } from "./server_handshake.ts";
export type { BlockExtent } from "./transmission.ts";

/** Where to listen: a unix socket, or TCP (explicitly: the caller picks the host). */
export type NbdListenAddress =
  | { path: string }
  | { hostname: string; port: number };

export type NbdServerOptions = NbdListenAddress & {
  exports: NbdExport[];
  /** Requests handled at once per connection (default 16, QEMU's own limit). */
  maxInFlight?: number;
};

/**
 * An NBD server (fixed newstyle; simple or structured replies;
 * `base:allocation` block status), one or more exports, any number of
 * connections, each independent of the others: a client that dies or
 * misbehaves only loses its own connection.
 */
export class NbdServer {
  /** The unix socket path, or "" on TCP. */
  readonly path: string;
  /** Where it listens; on TCP with the actual port (when 0 was asked). */
  readonly address: NbdListenAddress;
  #listener: Deno.Listener;
  #exports: Map<string, NbdExport>;
  #maxInFlight: number;
  #conns = new Set<Deno.Conn>();
  #error: Error | undefined;
  #closed = false;
  #acceptLoop: Promise<void>;
  #connLoops = new Set<Promise<void>>();

  private constructor(listener: Deno.Listener, options: NbdServerOptions) {
    this.#listener = listener;
    if ("path" in options) {
      this.path = options.path;
      this.address = { path: options.path };
    } else {
      const a = listener.addr as Deno.NetAddr;
      this.path = "";
      this.address = { hostname: a.hostname, port: a.port };
    }
    this.#exports = new Map(options.exports.map((e) => [e.name, e]));
    this.#maxInFlight = options.maxInFlight ?? 16;
    this.#acceptLoop = this.#accept();
  }

  static listen(options: NbdServerOptions): Promise<NbdServer> {
    const where = "path" in options
      ? options.path
      : `${options.hostname}:${options.port}`;
    try {
      const listener = "path" in options
        ? Deno.listen({ transport: "unix", path: options.path })
        : Deno.listen({
          transport: "tcp",
          hostname: options.hostname,
          port: options.port,
        });
      return Promise.resolve(new NbdServer(listener, options));
    } catch (error) {
      return Promise.reject(
        new NbdError(
          `Cannot listen on ${where}: ${(error as Error).message}`,
          { cause: error },
        ),
      );
    }
  }

  /** The first handler failure, latched: the data an export received is incomplete. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** Connections open now. */
  get connections(): number {
    return this.#conns.size;
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
    if (this.path) await Deno.remove(this.path).catch(() => {});
  }

  async #accept(): Promise<void> {
    while (!this.#closed) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closed || error instanceof Deno.errors.BadResource) return;
        continue; // e.g. a connection reset before accept: keep serving
      }
      if (conn.remoteAddr.transport === "tcp") {
        (conn as Deno.TcpConn).setNoDelay(true);
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

  async #serve(conn: Deno.Conn): Promise<void> {
    // Reads into one reused buffer (and write payloads straight into pooled
    // ones): `conn.readable` would allocate a new chunk per read.
    const input = new SocketReader(conn);
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
      const flags = decodeClientFlags(
        await input.readExact(NBD_SIZE.clientFlags, "NBD client flags"),
      );
      const known = NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES;
      if ((flags & NBD_FLAG_C_FIXED_NEWSTYLE) === 0 || (flags & ~known) !== 0) {
        return;
      }
      const session = await negotiateServer(input, send, {
        exports: this.#exports,
        noZeroes: (flags & NBD_FLAG_C_NO_ZEROES) !== 0,
      });
      if (session === null) return;
      await transmit(input, send, session, {
        maxInFlight: this.#maxInFlight,
        latch: (e) => this.#latch(e),
      });
    } catch (error) {
      if (
        !(error instanceof EndOfStreamError || error instanceof NbdError ||
          error instanceof Deno.errors.BadResource ||
          error instanceof Deno.errors.ConnectionReset ||
          error instanceof Deno.errors.BrokenPipe)
      ) {
        throw error;
      }
    } finally {
      await writing.catch(() => {});
      await input.cancel();
    }
  }
}
