/**
 * A client of the QEMU guest agent (qemu-ga) on a unix socket: the host end
 * of the VM's `org.qemu.guest_agent.0` port, or qemu-ga's own socket. One
 * command at a time (the agent runs them in order); every call has a
 * timeout; after a timeout the next call re-synchronises first.
 */
import { QgaCommandError, QgaError, QgaTimeoutError } from "./errors.ts";
import { QGA_SYNC_BYTE, QgaLineParser } from "./framing.ts";

const encoder = new TextEncoder();

export class QgaClient {
  #conn: Deno.UnixConn;
  #parser = new QgaLineParser();
  #queue: Record<string, unknown>[] = [];
  #wake: (() => void) | null = null;
  #closed: Error | null = null;
  #inSync = false;
  #nextId = Math.floor(Math.random() * 1e9);

  private constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
    this.#readLoop();
  }

  /** Connects and synchronises (`guest-sync-delimited`) within `timeoutMs`. */
  static async connect(path: string, timeoutMs: number): Promise<QgaClient> {
    let conn: Deno.UnixConn;
    try {
      conn = await Deno.connect({ transport: "unix", path });
    } catch (error) {
      throw new QgaError(
        `Cannot connect to the guest agent at ${path}: ${
          (error as Error).message.split(":")[0]
        }`,
        null,
        { cause: error },
      );
    }
    const client = new QgaClient(conn);
    try {
      await client.sync(timeoutMs);
    } catch (error) {
      client.close();
      throw error;
    }
    return client;
  }

  /** Drops stale replies: sends 0xFF and `guest-sync-delimited`, waits for its id. */
  async sync(timeoutMs: number): Promise<void> {
    const id = this.#nextId++;
    this.#queue = [];
    this.#parser.expectSync();
    await this.#write(
      new Uint8Array([
        QGA_SYNC_BYTE,
        ...encoder.encode(
          JSON.stringify({
            execute: "guest-sync-delimited",
            arguments: { id },
          }) + "\n",
        ),
      ]),
    );
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const reply = await this.#next(
        deadline,
        "guest-sync-delimited",
        timeoutMs,
      );
      if (reply.return === id) break;
    }
    this.#inSync = true;
  }

  /** Runs one command; a reply that does not come in `timeoutMs` is a QgaTimeoutError. */
  async execute<T>(
    command: string,
    args: Record<string, unknown> | undefined,
    timeoutMs: number,
  ): Promise<T> {
    if (!this.#inSync) await this.sync(timeoutMs);
    this.#inSync = false; // until the reply is read
    await this.#write(
      encoder.encode(
        JSON.stringify({
          execute: command,
          ...(args ? { arguments: args } : {}),
        }) +
          "\n",
      ),
    );
    const reply = await this.#next(
      performance.now() + timeoutMs,
      command,
      timeoutMs,
    );
    this.#inSync = true;
    if (reply.error !== undefined) {
      const e = reply.error as { class?: string; desc?: string };
      throw new QgaCommandError(command, e.class ?? "", e.desc ?? "error");
    }
    return reply.return as T;
  }

  /**
   * Sends a command without waiting for its reply: after a timeout the
   * agent may still be busy, and reads the next command only when done.
   */
  async post(command: string): Promise<void> {
    this.#inSync = false;
    await this.#write(
      encoder.encode(JSON.stringify({ execute: command }) + "\n"),
    );
  }

  /** Waits up to `timeoutMs` for `count` replies; returns those that came. */
  async drain(
    count: number,
    timeoutMs: number,
  ): Promise<Record<string, unknown>[]> {
    const got: Record<string, unknown>[] = [];
    const deadline = performance.now() + timeoutMs;
    try {
      while (got.length < count) {
        got.push(await this.#next(deadline, "drain", timeoutMs));
      }
    } catch { /* timeout or closed: what came is enough */ }
    return got;
  }

  close(): void {
    this.#closed ??= new QgaError("Cannot use the guest agent: closed");
    try {
      this.#conn.close();
    } catch { /* closed */ }
    this.#wake?.();
  }

  async #write(bytes: Uint8Array): Promise<void> {
    if (this.#closed) throw this.#closed;
    let done = 0;
    while (done < bytes.length) {
      done += await this.#conn.write(bytes.subarray(done));
    }
  }

  async #next(
    deadline: number,
    command: string,
    timeoutMs: number,
  ): Promise<Record<string, unknown>> {
    for (;;) {
      const msg = this.#queue.shift();
      if (msg !== undefined) return msg;
      if (this.#closed) throw this.#closed;
      const left = deadline - performance.now();
      if (left <= 0) throw new QgaTimeoutError(command, timeoutMs);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#wake = null;
    }
  }

  async #readLoop(): Promise<void> {
    const buf = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await this.#conn.read(buf);
        if (n === null) {
          this.#closed ??= new QgaError(
            "Cannot use the guest agent: it closed the connection",
          );
          break;
        }
        this.#queue.push(...this.#parser.push(buf.subarray(0, n)));
        this.#wake?.();
      }
    } catch (error) {
      this.#closed ??= error instanceof QgaError ? error : new QgaError(
        "Cannot use the guest agent: the connection failed",
        null,
        { cause: error },
      );
    }
    this.#wake?.();
  }
}
