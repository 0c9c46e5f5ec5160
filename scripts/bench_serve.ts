// deno-lint-ignore-file no-console
/**
 * `vmabak serve`: `nbdcopy` from vmabak's exports against `nbdcopy` from
 * `qemu-nbd` serving the extracted raw image (medians of interleaved runs,
 * all to `null:`; each server's CPU time per copy, which a busy machine
 * changes less than wall time), index times for a 2 GiB disk archive and
 * for a sparse 100 GiB disk holding 1 GiB of data, and serve's peak RSS on
 * each.
 */
import { openArchiveOutput } from "../lib/io/output.ts";
import { startQemuNbd } from "../tests/helpers/nbd_peers.ts";
import { VmaWriter } from "../lib/vma/writer.ts";
import {
  MAIN,
  mbps,
  type Measure,
  measure,
  medians,
  table,
  writeDiskImage,
} from "./bench_util.ts";

const SIZE = Number(Deno.env.get("BENCH_SERVE_BYTES") ?? 2 ** 31);
const SPARSE = 100 * 2 ** 30;
const SPARSE_DATA = 2 ** 30;
const RUNS = Number(Deno.env.get("BENCH_RUNS") ?? 3);
const dir = await Deno.makeTempDir({ prefix: "vmabak-bench-serve-" });
const deno = Deno.execPath();

/** A running `vmabak serve` and what it printed about its index. */
interface Serving {
  rss: number;
  pid: number;
  indexMs: number;
  indexKiB: number;
  stop(): Promise<number>;
}

async function startServe(archive: string, socket: string): Promise<Serving> {
  const child = new Deno.Command(deno, {
    args: ["run", "-A", MAIN, "serve", archive, "--socket", socket],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream())
    .getReader();
  let text = "";
  while (!text.includes("serving until")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`serve failed: ${text}`);
    text += value;
  }
  const m = /in (\d+) ms, index (\d+) KiB/.exec(text)!;
  const drain = (async () => {
    while (!(await reader.read()).done) { /* keep the pipe empty */ }
  })();
  return {
    pid: child.pid,
    rss: 0,
    indexMs: Number(m[1]),
    indexKiB: Number(m[2]),
    async stop() {
      const status = await Deno.readTextFile(`/proc/${child.pid}/status`);
      const hwm = Number(/VmHWM:\s+(\d+)/.exec(status)![1]);
      child.kill("SIGINT");
      await child.status;
      await drain;
      return hwm;
    },
  };
}

/** CPU seconds (user + system) process `pid` has used so far. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of /proc/PID/stat, in clock ticks.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * Runs each copy `n` times, interleaved, after warming the page cache;
 * returns per name the median run and the median CPU seconds its server
 * (process `pid`) used during a copy.
 */
async function copies(
  n: number,
  runs: Record<string, { script: string; pid: number }>,
  cwd: string,
  warm: () => Promise<void>,
): Promise<Record<string, Measure & { cpu: number }>> {
  const got: Record<string, (Measure & { cpu: number })[]> = {};
  for (let i = 0; i < n; i++) {
    for (const [name, { script, pid }] of Object.entries(runs)) {
      await warm();
      const before = await cpuSeconds(pid);
      const m = await measure(script, cwd);
      (got[name] ??= []).push({ ...m, cpu: (await cpuSeconds(pid)) - before });
    }
  }
  const median = (xs: number[]) =>
    xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  return Object.fromEntries(
    Object.entries(got).map(([name, list]) => {
      const m = list.slice().sort((a, b) => a.seconds - b.seconds)[
        Math.floor(list.length / 2)
      ]!;
      return [name, { ...m, cpu: median(list.map((r) => r.cpu)) }];
    }),
  );
}

/** The sparse archive, written directly (create would read 100 GiB of holes). */
async function writeSparseArchive(path: string): Promise<void> {
  const out = await openArchiveOutput(path, { write: () => Promise.resolve() });
  const writer = new VmaWriter(out);
  const id = writer.addDevice("drive-scsi0", SPARSE);
  await writer.start();
  const data = new Uint8Array(65536);
  const every = Math.floor(SPARSE / SPARSE_DATA); // 1 data cluster in `every`
  for (let c = 0; c < SPARSE / 65536; c++) {
    if (c % every === 0) {
      crypto.getRandomValues(data);
      await writer.writeCluster(id, c, data);
    } else await writer.writeCluster(id, c, null);
  }
  await writer.finish();
  await out.commit();
}

async function sh(script: string): Promise<void> {
  const r = await new Deno.Command("bash", {
    args: ["-c", script],
    cwd: dir,
    stderr: "piped",
  }).output();
  if (!r.success) {
    throw new Error(`${script}: ${new TextDecoder().decode(r.stderr)}`);
  }
}

try {
  await writeDiskImage(`${dir}/img.raw`, SIZE);
  await sh(`${deno} run -A ${MAIN} create x.vma drive-scsi0=img.raw`);
  await sh(`${deno} run -A ${MAIN} extract x.vma out`);
  await sh(
    `${deno} run -A ${MAIN} create --zstd=1 x.vma.zst drive-scsi0=img.raw`,
  );
  const served = await startServe(`${dir}/x.vma`, `${dir}/v.sock`);
  const zserved = await startServe(`${dir}/x.vma.zst`, `${dir}/z.sock`);
  // qemu-nbd's own default: one client at a time.
  const qemu = await startQemuNbd(`${dir}/out/disk-drive-scsi0.raw`, {
    format: "raw",
    exportName: "drive-scsi0",
    readOnly: true,
    shared: 1,
  });
  let m: Record<string, Measure & { cpu: number }>;
  const uri = (socket: string) =>
    `nbdcopy 'nbd+unix:///drive-scsi0?socket=${dir}/${socket}' null:`;
  const load = Deno.loadavg()[0]!;
  try {
    m = await copies(
      RUNS,
      {
        qemu: { script: `nbdcopy '${qemu.uri}' null:`, pid: qemu.pid },
        serve: { script: uri("v.sock"), pid: served.pid },
        zserve: { script: uri("z.sock"), pid: zserved.pid },
      },
      dir,
      () => sh("cat x.vma x.vma.zst out/disk-drive-scsi0.raw > /dev/null"),
    );
  } finally {
    served.rss = await served.stop();
    zserved.rss = await zserved.stop();
    await qemu.stop();
  }
  await writeSparseArchive(`${dir}/sparse.vma`);
  const sparse = await startServe(`${dir}/sparse.vma`, `${dir}/s.sock`);
  const sparseCopy = await medians(1, {
    copy: `nbdcopy 'nbd+unix:///drive-scsi0?socket=${dir}/s.sock' null:`,
  }, dir);
  const sparseRss = await sparse.stop();
  const sparseBytes = (await Deno.stat(`${dir}/sparse.vma`)).size;

  console.log(
    `\n== serve: nbdcopy of a ${
      SIZE / 2 ** 20
    } MiB disk (a quarter holes) to null: (median of ${RUNS}; load average ${
      load.toFixed(1)
    } on ${navigator.hardwareConcurrency} CPUs) ==`,
  );
  const row = (name: string, r: Measure & { cpu: number }) => [
    name,
    `${r.seconds.toFixed(2)} s`,
    mbps(SIZE, r.seconds),
    `${(m.qemu!.seconds / r.seconds).toFixed(2)}x`,
    `${r.cpu.toFixed(2)} s`,
  ];
  console.log(table([
    ["source", "time", "rate", "throughput vs qemu-nbd", "server CPU"],
    row("qemu-nbd (extracted raw)", m.qemu!),
    row("vmabak serve (.vma)", m.serve!),
    row("vmabak serve (.vma.zst, seek table)", m.zserve!),
  ]));
  console.log("\n== serve: index and memory ==");
  console.log(table([
    ["archive", "archive size", "index time", "index memory", "serve peak RSS"],
    [
      `${SIZE / 2 ** 30} GiB disk`,
      `${((await Deno.stat(`${dir}/x.vma`)).size / 2 ** 20).toFixed(0)} MiB`,
      `${served.indexMs} ms`,
      `${served.indexKiB} KiB`,
      `${(served.rss / 1024).toFixed(0)} MiB`,
    ],
    [
      `${SIZE / 2 ** 30} GiB disk, .vma.zst`,
      `${
        ((await Deno.stat(`${dir}/x.vma.zst`)).size / 2 ** 20).toFixed(0)
      } MiB`,
      `${zserved.indexMs} ms`,
      `${zserved.indexKiB} KiB`,
      `${(zserved.rss / 1024).toFixed(0)} MiB`,
    ],
    [
      "100 GiB disk, 1 GiB data",
      `${(sparseBytes / 2 ** 20).toFixed(0)} MiB`,
      `${sparse.indexMs} ms`,
      `${sparse.indexKiB} KiB`,
      `${(sparseRss / 1024).toFixed(0)} MiB`,
    ],
  ]));
  console.log(
    `nbdcopy of the 100 GiB sparse export: ${
      sparseCopy.copy!.seconds.toFixed(2)
    } s (holes skipped by block status)`,
  );
} finally {
  await Deno.remove(dir, { recursive: true });
}
