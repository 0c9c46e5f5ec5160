// deno-lint-ignore-file no-console
/**
 * `vmabak serve`: `nbdcopy` from vmabak's exports against `nbdcopy` from
 * `qemu-nbd` serving the extracted raw image (medians of interleaved runs,
 * all to `null:`), index times for a 2 GiB disk archive and for a sparse
 * 100 GiB disk holding 1 GiB of data, and serve's peak RSS on each.
 */
import { openArchiveOutput } from "../lib/io/output.ts";
import { VmaWriter } from "../lib/vma/writer.ts";
import {
  MAIN,
  mbps,
  type Measure,
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
  let m: Record<string, Measure>;
  try {
    m = await medians(
      RUNS,
      {
        qemu:
          "nbdcopy -- [ qemu-nbd -r -f raw out/disk-drive-scsi0.raw ] null:",
        serve: `nbdcopy 'nbd+unix:///drive-scsi0?socket=${dir}/v.sock' null:`,
        zserve: `nbdcopy 'nbd+unix:///drive-scsi0?socket=${dir}/z.sock' null:`,
      },
      dir,
      () => sh("cat x.vma x.vma.zst out/disk-drive-scsi0.raw > /dev/null"),
    );
  } finally {
    served.rss = await served.stop();
    zserved.rss = await zserved.stop();
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
    } MiB disk (a quarter holes) to null: (median of ${RUNS}) ==`,
  );
  const row = (name: string, r: Measure) => [
    name,
    `${r.seconds.toFixed(2)} s`,
    mbps(SIZE, r.seconds),
    `${(m.qemu!.seconds / r.seconds).toFixed(2)}x`,
  ];
  console.log(table([
    ["source", "time", "rate", "throughput vs qemu-nbd"],
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
