import {
  QmpBusyError,
  QmpCommandError,
  QmpConnectionError,
  QmpError,
  QmpTimeoutError,
} from "./errors.ts";
import { socketInUse } from "./socket_busy.ts";
import { QmpLineParser } from "./framing.ts";

export interface QmpEvent {
  event: string;
  data: Record<string, unknown>;
  /** Microseconds since the epoch, from QEMU's timestamp. */
  timestampUs: number;
}

export interface QmpGreeting {
  version: {
    qemu: { major: number; minor: number; micro: number };
    package: string;
  };
  capabilities: string[];
}

/**
 * How long a command may stay unanswered before the connection is given up:
 * a QEMU whose main loop is stuck (a vCPU that never stops) must not hang
 * vmabak forever. Every command vmabak sends answers in milliseconds.
 */
export const QMP_COMMAND_TIMEOUT_MS = 5 * 60_000;

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

interface Waiter {
  match: (e: QmpEvent) => boolean;
  resolve: (e: QmpEvent) => void;
  reject: (error: Error) => void;
}

const encoder = new TextEncoder();

/**
 * A QMP client on a unix socket: negotiates capabilities, sends commands with
 * ids and routes replies by id, keeps events apart (an event can come before
 * the reply of the command that caused it). When the connection ends, every
 * pending command and event wait fails with the same latched error.
 */
export class QmpClient {
  readonly greeting: QmpGreeting;
  #conn: Deno.UnixConn;
  #parser = new QmpLineParser();
  #pending = new Map<string, Pending>();
  #events: QmpEvent[] = [];
  #waiters = new Set<Waiter>();
  #listeners = new Set<(e: QmpEvent) => void>();
  #nextId = 1;
  #error: Error | undefined;
  #readLoop: Promise<void> | undefined;
  #writing = Promise.resolve();

  private constructor(conn: Deno.UnixConn, greeting: QmpGreeting) {
    this.#conn = conn;
    this.greeting = greeting;
  }

  /**
   * Connects, reads the greeting and leaves capabilities negotiation mode.
   * When the greeting does not come at once and another client holds the
   * socket, fails within about half a second with a `QmpBusyError`.
   */
  static async connect(
    path: string,
    options: { timeoutMs?: number } = {},
  ): Promise<QmpClient> {
    let conn: Deno.UnixConn;
    try {
      conn = await Deno.connect({ transport: "unix", path });
    } catch (error) {
      // A full listen backlog: clients are queued behind the one QEMU serves.
      if (/\(os error 11\)/.test(String((error as Error).message))) {
        throw new QmpBusyError(path, { cause: error });
      }
      throw new QmpConnectionError(
        `Cannot connect to QMP socket ${path}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
    const timeoutMs = options.timeoutMs ?? 10_000;
    const timer = setTimeout(() => conn.close(), timeoutMs);
    try {
      const parser = new QmpLineParser();
      const buf = new Uint8Array(65536);
      let greeting: Record<string, unknown> | undefined;
      const early: Record<string, unknown>[] = [];
      let reading: Promise<number | null> | undefined;
      let busyChecks = 0;
      while (greeting === undefined) {
        reading ??= conn.read(buf).catch(() => null);
        const n = await raceDelay(reading, 250);
        if (n === "waiting") {
          // Two looks 250 ms apart, so our own just-accepted connection is not taken for another.
          if (await socketInUse(path) && ++busyChecks >= 2) {
            throw new QmpBusyError(path);
          }
          continue;
        }
        reading = undefined;
        if (n === null) {
          if (await socketInUse(path)) throw new QmpBusyError(path);
          throw new QmpConnectionError(
            `Cannot connect to QMP socket ${path}: no greeting (it is not QMP, or QEMU does not answer)`,
          );
        }
        const msgs = parser.push(buf.subarray(0, n));
        greeting = msgs.shift();
        early.push(...msgs);
        if (greeting !== undefined && !("QMP" in greeting)) {
          throw new QmpConnectionError(
            `Cannot connect to QMP socket ${path}: not a QMP greeting`,
          );
        }
      }
      clearTimeout(timer);
      const client = new QmpClient(conn, greeting.QMP as QmpGreeting);
      client.#parser = parser;
      for (const m of early) client.#dispatch(m);
      client.#readLoop = client.#read();
      // Bounded like the greeting: a QEMU whose main loop is stuck (e.g. on
      // guest RAM a failed background snapshot left write-protected) sends
      // the greeting from its monitor thread but never answers.
      await client.execute("qmp_capabilities", undefined, { timeoutMs })
        .catch((error) => {
          if (!(error instanceof QmpTimeoutError)) throw error;
          throw new QmpConnectionError(
            `Cannot connect to QMP socket ${path}: QEMU greeted but does not answer within ${
              Math.round(timeoutMs / 1000)
            } s (its main loop is stuck, e.g. on guest RAM that an interrupted background snapshot left write-protected in QEMU 7.2): restart the VM`,
            { cause: error },
          );
        });
      return client;
    } catch (error) {
      clearTimeout(timer);
      try {
        conn.close();
      } catch { /* closed */ }
      if (error instanceof QmpError) throw error;
      throw new QmpConnectionError(
        `Cannot connect to QMP socket ${path}: ${(error as Error).message}`,
        {
          cause: error,
        },
      );
    }
  }

  /** The error that ended the connection, if it ended. */
  get error(): Error | undefined {
    return this.#error;
  }

  /**
   * Sends a command and waits for its reply. When none comes within
   * `timeoutMs` (default `QMP_COMMAND_TIMEOUT_MS`), the connection is closed
   * and this and every other pending command fail with a `QmpTimeoutError`.
   */
  execute<T = unknown>(
    command: string,
    args?: Record<string, unknown>,
    options: { timeoutMs?: number } = {},
  ): Promise<T> {
    if (this.#error) return Promise.reject(this.#error);
    const id = `vmabak-${this.#nextId++}`;
    const msg: Record<string, unknown> = { execute: command, id };
    if (args !== undefined) msg.arguments = args;
    const bytes = encoder.encode(JSON.stringify(msg) + "\n");
    const timeoutMs = options.timeoutMs ?? QMP_COMMAND_TIMEOUT_MS;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => this.#fail(new QmpTimeoutError(command, timeoutMs)),
        timeoutMs,
      );
      this.#pending.set(id, {
        command,
        resolve: (v) => {
          clearTimeout(timer);
          (resolve as (v: unknown) => void)(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.#writing = this.#writing.then(async () => {
        let done = 0;
        while (done < bytes.length) {
          done += await this.#conn.write(bytes.subarray(done));
        }
      }).catch((error) =>
        this.#fail(
          new QmpConnectionError(
            `Cannot send QMP command ${command}: ${error.message}`,
          ),
        )
      );
    });
  }

  /** Every event from now on (also those waited for). */
  onEvent(listener: (e: QmpEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Waits for an event; looks first among the events received already (which
   * it then removes), so one that came early is not missed.
   */
  waitEvent(
    match: (e: QmpEvent) => boolean,
    options: { signal?: AbortSignal; timeoutMs?: number } = {},
  ): Promise<QmpEvent> {
    const i = this.#events.findIndex(match);
    if (i !== -1) return Promise.resolve(this.#events.splice(i, 1)[0]!);
    if (this.#error) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        this.#waiters.delete(waiter);
        clearTimeout(timer);
        options.signal?.removeEventListener("abort", onAbort);
      };
      const waiter: Waiter = {
        match,
        resolve: (e) => {
          done();
          resolve(e);
        },
        reject: (err) => {
          done();
          reject(err);
        },
      };
      const onAbort = () => waiter.reject(options.signal!.reason);
      if (options.signal?.aborted) return reject(options.signal.reason);
      options.signal?.addEventListener("abort", onAbort, { once: true });
      if (options.timeoutMs !== undefined) {
        timer = setTimeout(
          () =>
            waiter.reject(new QmpError("Cannot wait for QMP event: timed out")),
          options.timeoutMs,
        );
      }
      this.#waiters.add(waiter);
    });
  }

  /** Drops events received so far that match (noise such as JOB_STATUS_CHANGE). */
  discardEvents(match: (e: QmpEvent) => boolean): void {
    this.#events = this.#events.filter((e) => !match(e));
  }

  async close(): Promise<void> {
    this.#fail(
      new QmpConnectionError("Cannot run QMP command: the client was closed"),
    );
    await this.#readLoop?.catch(() => {});
  }

  async #read(): Promise<void> {
    const buf = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await this.#conn.read(buf);
        if (n === null) break;
        for (const m of this.#parser.push(buf.subarray(0, n))) {
          this.#dispatch(m);
        }
      }
      this.#fail(
        new QmpConnectionError(
          "Cannot talk to QEMU: it closed the QMP connection (did QEMU exit?)",
        ),
      );
    } catch (error) {
      if (error instanceof QmpError) return this.#fail(error);
      const message = (error as Error).message;
      if (/reset by peer|broken pipe/i.test(message)) {
        return this.#fail(
          new QmpConnectionError(
            "Cannot talk to QEMU: it closed the QMP connection (did QEMU exit?)",
          ),
        );
      }
      this.#fail(
        new QmpConnectionError(
          `Cannot talk to QEMU: the QMP connection broke: ${message}`,
        ),
      );
    }
  }

  #dispatch(m: Record<string, unknown>): void {
    if (typeof m.event === "string") {
      const ts = m.timestamp as
        | { seconds?: number; microseconds?: number }
        | undefined;
      const e: QmpEvent = {
        event: m.event,
        data: (m.data as Record<string, unknown>) ?? {},
        timestampUs: (ts?.seconds ?? 0) * 1e6 + (ts?.microseconds ?? 0),
      };
      for (const l of this.#listeners) l(e);
      for (const w of this.#waiters) {
        if (w.match(e)) return w.resolve(e);
      }
      this.#events.push(e);
      if (this.#events.length > 10_000) this.#events.shift();
      return;
    }
    const id = typeof m.id === "string" ? m.id : undefined;
    const p = id === undefined ? undefined : this.#pending.get(id);
    if (p === undefined) return; // a reply to no command of ours (e.g. an unsolicited parse error)
    this.#pending.delete(id!);
    if ("error" in m) {
      const err = m.error as { class?: string; desc?: string };
      p.reject(
        new QmpCommandError(
          p.command,
          err.class ?? "GenericError",
          err.desc ?? "unknown error",
        ),
      );
    } else {
      p.resolve(m.return);
    }
  }

  #fail(error: Error): void {
    if (this.#error) return;
    this.#error = error;
    try {
      this.#conn.close();
    } catch { /* closed */ }
    for (const p of this.#pending.values()) {
      if (error instanceof QmpTimeoutError) {
        p.reject(error);
        continue;
      }
      p.reject(
        new QmpConnectionError(
          `Cannot run QMP command ${p.command}: ${error.message}`,
          { cause: error },
        ),
      );
    }
    this.#pending.clear();
    for (const w of [...this.#waiters]) w.reject(error);
  }
}

/** `promise`'s value, or "waiting" when it took longer than `ms`. */
async function raceDelay<T>(
  promise: Promise<T>,
  ms: number,
): Promise<T | "waiting"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<"waiting">((resolve) => {
        timer = setTimeout(() => resolve("waiting"), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
