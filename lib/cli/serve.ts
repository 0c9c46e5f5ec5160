import { parseCommandArgs } from "./args.ts";
import type { Command } from "./types.ts";
import { UsageError } from "../errors.ts";
import type { NbdListenAddress } from "../nbd/server.ts";
import { startServe } from "../serve/serve.ts";
import { printable } from "../text/escape.ts";

const USAGE =
  "vmabak serve ARCHIVE [--base PREV]... (--socket PATH | --tcp [HOST:]PORT)";

export const serveCommand: Command = {
  name: "serve",
  summary:
    "serve an archive's disks as read-only NBD exports until SIGINT/SIGTERM",
  usage: USAGE,
  async run(ctx) {
    const { values, positionals } = parseCommandArgs(ctx.args, {
      socket: { type: "string" },
      tcp: { type: "string" },
      base: { type: "string", multiple: true },
    }, { min: 1, max: 1, usage: USAGE });
    const listen = parseListen(values.socket, values.tcp);
    const archive = positionals[0]!;
    const { server, index, bases, exports, indexMs } = await startServe(
      archive,
      listen,
      {
        signal: ctx.signal,
        bases: (values.base as string[] | undefined) ?? [],
      },
    );
    try {
      ctx.stderr.line(
        `indexed ${printable(archive, 200)}: ${index.extentCount} extents in ${
          indexMs.toFixed(0)
        } ms, index ${(index.memoryBytes / 1024).toFixed(0)} KiB`,
      );
      for (const e of exports) {
        ctx.stderr.line(
          `export ${printable(e.name, 80)}: ${e.size} bytes, read-only`,
        );
      }
      const a = server.address;
      if ("path" in a) {
        ctx.stderr.line(
          `listening on unix socket ${a.path} (nbd+unix:///NAME?socket=${a.path})`,
        );
      } else {
        const loopback = a.hostname === "127.0.0.1" || a.hostname === "::1";
        ctx.stderr.line(
          `listening on tcp ${a.hostname}:${a.port} (nbd://${a.hostname}:${a.port}/NAME)${
            loopback
              ? ", loopback only: --tcp 0.0.0.0:PORT to serve other hosts"
              : ", reachable from other hosts: NBD has no authentication"
          }`,
        );
      }
      ctx.stderr.line("serving until SIGINT or SIGTERM");
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve();
        ctx.signal.addEventListener("abort", () => resolve(), { once: true });
      });
    } finally {
      await server.close();
      index.source.close();
      for (const b of bases) b.source.close();
    }
  },
};

/** `--socket PATH` or `--tcp [HOST:]PORT` (HOST defaults to 127.0.0.1). */
export function parseListen(
  socket: unknown,
  tcp: unknown,
): NbdListenAddress {
  if ((socket === undefined) === (tcp === undefined)) {
    throw new UsageError(`give one of --socket or --tcp (usage: ${USAGE})`);
  }
  if (typeof socket === "string") return { path: socket };
  const m = /^(?:\[?([^\]]*?)\]?:)?(\d+)$/.exec(String(tcp));
  const port = Number(m?.[2]);
  if (m === null || !(port >= 0 && port <= 65535)) {
    throw new UsageError(
      `--tcp wants [HOST:]PORT, got ${printable(String(tcp), 80)}`,
    );
  }
  return { hostname: m[1] || "127.0.0.1", port };
}
