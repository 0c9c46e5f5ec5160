/**
 * Read throughput of NbdClient from qemu-nbd (1 GiB of random data, page
 * cache warm) with 1 and 4 connections, against `nbdcopy URI null:` of the
 * same export (default: 4 connections, 64 requests each; and 1 connection),
 * interleaved runs, medians. Not part of `deno task bench`:
 * `deno run -A scripts/measure_nbd_read.ts [MiB] [runs]`.
 */
import { NbdClient } from "../lib/nbd/client.ts";
import { mbps, table, writeMixedImage } from "./bench_util.ts";

/** Like nbdcopy: 256 KiB requests, many in flight (16 per connection, NbdClient's default). */
const CHUNK = 256 * 1024;
const PER_CONN = 16;

/** `--reader SOCK CONNS`: reads the whole export, prints the seconds it took. */
async function reader(path: string, conns: number): Promise<void> {
  const t0 = performance.now();
  const clients = await Promise.all(
    Array.from(
      { length: conns },
      () => NbdClient.connect({ address: { path }, exportName: "disk" }),
    ),
  );
  const size = clients[0]!.size;
  let next = 0;
  await Promise.all(
    clients.flatMap((c) =>
      Array.from({ length: PER_CONN }, async () => {
        const buf = new Uint8Array(CHUNK);
        for (;;) {
          const at = next;
          next += CHUNK;
          if (at >= size) return;
          await c.read(at, buf.subarray(0, Math.min(CHUNK, size - at)));
        }
      })
    ),
  );
  await Promise.all(clients.map((c) => c.close()));
  await Deno.stdout.write(
    new TextEncoder().encode(`${(performance.now() - t0) / 1000}\n`),
  );
}

/** Wall seconds of a command, and what it printed (the reader's own seconds). */
async function timed(
  cmd: string,
  args: string[],
): Promise<{ seconds: number; printed: number }> {
  const t0 = performance.now();
  const out = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return {
    seconds: (performance.now() - t0) / 1000,
    printed: Number(new TextDecoder().decode(out.stdout)),
  };
}

async function main(): Promise<void> {
  const mib = Number(Deno.args[0] ?? 1024);
  const runs = Number(Deno.args[1] ?? 5);
  const bytes = mib * 1024 * 1024;
  const dir = await Deno.makeTempDir({ prefix: "vmabak-nbdread-" });
  const sock = `${dir}/nbd.sock`;
  const image = `${dir}/disk.raw`;
  await writeMixedImage(image, bytes, 0);
  const server = new Deno.Command("qemu-nbd", {
    args: ["-t", "-e", "8", "-r", "-f", "raw", "-x", "disk", "-k", sock, image],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    for (let i = 0; i < 100; i++) {
      if (await Deno.stat(sock).then(() => true, () => false)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await timed("dd", [`if=${image}`, "of=/dev/null", "bs=4M", "status=none"]); // warm the page cache
    const self = new URL(import.meta.url).pathname;
    const rows: Record<string, number[]> = {};
    const inside: Record<string, number[]> = {};
    const names = ["NbdClient, 1 connection", "NbdClient, 4 connections"];
    const nbdcopy = "nbdcopy URI null:";
    const nbdcopy1 = "nbdcopy --connections=1 URI null:";
    for (let i = 0; i < runs; i++) {
      for (const [k, conns] of [[0, 1], [1, 4]] as const) {
        const t = await timed(Deno.execPath(), [
          "run",
          "-A",
          self,
          "--reader",
          sock,
          String(conns),
        ]);
        (rows[names[k]!] ??= []).push(t.seconds);
        (inside[names[k]!] ??= []).push(t.printed);
      }
      (rows[nbdcopy] ??= []).push(
        (await timed("nbdcopy", [`nbd+unix:///disk?socket=${sock}`, "null:"]))
          .seconds,
      );
      (rows[nbdcopy1] ??= []).push(
        (await timed("nbdcopy", [
          "--connections=1",
          `nbd+unix:///disk?socket=${sock}`,
          "null:",
        ])).seconds,
      );
    }
    const median = (l: number[]) =>
      [...l].sort((a, b) => a - b)[Math.floor(l.length / 2)]!;
    const ref = median(rows[nbdcopy]!);
    const out = [[
      "reader",
      "median s (process)",
      "rate",
      "time vs nbdcopy",
      "s without Deno's start",
    ]];
    for (const [name, list] of Object.entries(rows)) {
      const s = median(list);
      const own = inside[name] ? median(inside[name]!).toFixed(2) : "-";
      out.push([name, s.toFixed(2), mbps(bytes, s), (s / ref).toFixed(2), own]);
    }
    await Deno.stdout.write(new TextEncoder().encode(
      `${mib} MiB raw from qemu-nbd, ${runs} interleaved runs\n${table(out)}\n`,
    ));
  } finally {
    server.kill();
    await server.status;
    await Deno.remove(dir, { recursive: true });
  }
}

if (Deno.args[0] === "--reader") {
  await reader(Deno.args[1]!, Number(Deno.args[2]));
} else {
  await main();
}
