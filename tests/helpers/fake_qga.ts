/**
 * A stand-in for qemu-ga on a unix socket, for the freeze paths a real agent
 * cannot take safely on a build host (its freeze would freeze the host's own
 * file systems). It answers `guest-sync-delimited` as qemu-ga does (0xFF
 * first) and `guest-get-osinfo` (any answer given), records every
 * command, and has fault knobs for the freeze.
 */
/** What qemu-ga 7.2 answers on a Debian 12 guest. */
export const DEBIAN_OSINFO = {
  "name": "Debian GNU/Linux",
  "kernel-release": "6.1.0-13-amd64",
  "version": "12 (bookworm)",
  "pretty-name": "Debian GNU/Linux 12 (bookworm)",
  "version-id": "12",
  "kernel-version": "#1 SMP PREEMPT_DYNAMIC Debian 6.1.55-1 (2023-09-29)",
  "machine": "x86_64",
  "id": "debian",
};

export interface FakeQgaOptions {
  /**
   * "ok": answers 1 file system; "slow": the same, after `slowMs`, and like
   * qemu-ga reads nothing else meanwhile; "error": a GenericError.
   */
  freeze: "ok" | "slow" | "error";
  slowMs?: number;
  /**
   * The answer to `guest-get-osinfo`: a `return` value, or an error answer
   * (`{ error: { class, desc } }`); default: a Debian guest's.
   */
  osinfo?: unknown;
  /** Answers `guest-get-osinfo` this late (reading nothing else meanwhile, like qemu-ga). */
  osinfoDelayMs?: number;
  /** Called when a command arrives, before it is answered. */
  onCommand?: (command: string) => Promise<void> | void;
}

export class FakeQga {
  readonly path: string;
  readonly commands: string[] = [];
  #listener: Deno.UnixListener;
  #conns = new Set<Deno.UnixConn>();
  #served: Promise<void>;

  private constructor(path: string, options: FakeQgaOptions) {
    this.path = path;
    this.#listener = Deno.listen({ transport: "unix", path });
    this.#served = this.#serve(options);
  }

  static start(path: string, options: FakeQgaOptions): FakeQga {
    return new FakeQga(path, options);
  }

  async #serve(options: FakeQgaOptions): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        this.#conns.add(conn);
        this.#handle(conn, options).catch(() => {}).finally(() =>
          this.#conns.delete(conn)
        );
      }
    } catch { /* closed */ }
  }

  async #handle(conn: Deno.UnixConn, options: FakeQgaOptions): Promise<void> {
    const enc = new TextEncoder();
    const dec = new TextDecoder();
    let text = "";
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) return;
      // 0xFF resets the parser, as in qemu-ga.
      const bytes = buf.subarray(0, n);
      const ff = bytes.lastIndexOf(0xff);
      text = ff >= 0
        ? dec.decode(bytes.subarray(ff + 1))
        : text + dec.decode(bytes);
      let nl;
      while ((nl = text.indexOf("\n")) >= 0) {
        const line = text.slice(0, nl);
        text = text.slice(nl + 1);
        const msg = JSON.parse(line) as {
          execute: string;
          arguments?: { id?: number };
        };
        this.commands.push(msg.execute);
        await options.onCommand?.(msg.execute);
        let reply: string;
        if (msg.execute === "guest-sync-delimited") {
          reply = "\xff" + JSON.stringify({ return: msg.arguments?.id });
        } else if (msg.execute === "guest-fsfreeze-freeze") {
          if (options.freeze === "slow") {
            await new Promise((r) => setTimeout(r, options.slowMs ?? 2000));
          }
          reply = options.freeze === "error"
            ? JSON.stringify({
              error: { class: "GenericError", desc: "freeze failed" },
            })
            : JSON.stringify({ return: 1 });
        } else if (msg.execute === "guest-fsfreeze-thaw") {
          reply = JSON.stringify({ return: 1 });
        } else if (msg.execute === "guest-get-osinfo") {
          if (options.osinfoDelayMs) {
            await new Promise((r) => setTimeout(r, options.osinfoDelayMs));
          }
          const answer = options.osinfo ?? DEBIAN_OSINFO;
          reply = JSON.stringify(
            typeof answer === "object" && answer !== null && "error" in answer
              ? answer
              : { return: answer },
          );
        } else {
          reply = JSON.stringify({ return: {} });
        }
        const bytesOut = reply.startsWith("\xff")
          ? new Uint8Array([0xff, ...enc.encode(reply.slice(1) + "\n")])
          : enc.encode(reply + "\n");
        await conn.write(bytesOut);
      }
    }
  }

  async stop(): Promise<void> {
    try {
      this.#listener.close();
    } catch { /* closed */ }
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await this.#served;
  }
}
