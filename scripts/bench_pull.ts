// deno-lint-ignore-file no-console
/**
 * Issue 8's table: the pull engine against the best way to read the same
 * snapshot on stock QEMU 7.2 (nbdcopy from a fleecing export), push mode,
 * and QEMU's own local copy; the guest's write latency with the output
 * drained at 20 MiB/s (idle, push, pull); peak memory from 512 MiB to 8 GiB
 * disks (512 MiB, 2 GiB, BIG) in both modes with and without --zstd,
 * under /usr/bin/time -v; the fleecing image's largest size with and
 * without TRIM. BENCH_PULL_BYTES sets the main disk's size (default 2 GiB),
 * BENCH_PULL_BIG the memory row's big disk (default 8 GiB, 0 to skip).
 */
import { TestVm } from "../tests/helpers/qemu_vm.ts";
import { spawnSlowBackup } from "../tests/helpers/backup_checks.ts";
import {
  best,
  MAIN,
  mbps,
  measure,
  table,
  writeMixedImage,
} from "./bench_util.ts";
import { sleep } from "../tests/helpers/sleep.ts";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const SIZE = Number(Deno.env.get("BENCH_PULL_BYTES") ?? 2 * GiB);
const BIG = Number(Deno.env.get("BENCH_PULL_BIG") ?? 8 * GiB);
const RUNS = 3;
const VMABAK = `${Deno.execPath()} run -A ${MAIN}`;

const work = await Deno.makeTempDir({
  prefix: "vmabak-bench-pull-",
  dir: "/var/tmp",
});
const mixed = `${work}/mixed.raw`;
await writeMixedImage(mixed, SIZE, 0.25, 7);

async function vmWith(path: string, size: number): Promise<TestVm> {
  return await TestVm.start({
    disks: [{
      format: "raw",
      size,
      prepare: async (p) => {
        await Deno.remove(p);
        await Deno.link(path, p).catch(() => Deno.copyFile(path, p));
      },
    }],
    memoryMiB: 64,
  });
}

const warm = (path: string) =>
  new Deno.Command("cat", { args: [path], stdout: "null" }).output().then(
    () => {},
  );

/** QEMU's own fleecing export of disk 0 (copy-before-write, snapshot-access, NBD server); returns its URI and the teardown. */
async function fleecingExport(vm: TestVm, size: number) {
  const q = vm.monitor;
  const d = vm.disks[0]!;
  const fl = `${vm.dir}/bench-fleece.qcow2`;
  await new Deno.Command("qemu-img", {
    args: ["create", "-q", "-f", "qcow2", fl, String(size)],
  }).output();
  const sock = `${vm.dir}/bench-nbd.sock`;
  await q.execute("blockdev-add", {
    driver: "qcow2",
    "node-name": "bfl",
    discard: "unmap",
    file: { driver: "file", filename: fl },
  });
  await q.execute("stop");
  await q.execute("blockdev-add", {
    driver: "copy-before-write",
    "node-name": "bcbw",
    file: d.node,
    target: "bfl",
    "on-cbw-error": "break-snapshot",
    "cbw-timeout": 30,
  });
  await q.execute("qom-set", {
    path: d.qdev,
    property: "drive",
    value: "bcbw",
  });
  await q.execute("blockdev-add", {
    driver: "snapshot-access",
    "node-name": "bacc",
    file: "bcbw",
    discard: "unmap",
  });
  await q.execute("cont");
  await q.execute("nbd-server-start", {
    addr: { type: "unix", data: { path: sock } },
  });
  await q.execute("block-export-add", {
    type: "nbd",
    id: "bexp",
    "node-name": "bacc",
    name: "d",
    writable: true,
  });
  return {
    uri: `nbd+unix:///d?socket=${sock}`,
    async close() {
      await q.execute("block-export-del", { id: "bexp" });
      await q.waitEvent((e) => e.event === "BLOCK_EXPORT_DELETED");
      await q.execute("nbd-server-stop");
      await q.execute("blockdev-del", { "node-name": "bacc" });
      await q.execute("qom-set", {
        path: d.qdev,
        property: "drive",
        value: d.node,
      });
      await q.execute("blockdev-del", { "node-name": "bcbw" });
      await q.execute("blockdev-del", { "node-name": "bfl" });
      await Deno.remove(fl);
    },
  };
}

/** QEMU's own blockdev-backup into a local raw file, + sync. */
async function qemuOwn(vm: TestVm, size: number): Promise<number> {
  const q = vm.monitor;
  const target = `${vm.dir}/own.raw`;
  await new Deno.Command("qemu-img", {
    args: ["create", "-q", "-f", "raw", target, String(size)],
  }).output();
  await warm(vm.disks[0]!.path);
  const start = performance.now();
  await q.execute("blockdev-add", {
    driver: "file",
    filename: target,
    "node-name": "bown",
  });
  await q.execute("blockdev-backup", {
    "job-id": "bown",
    device: vm.disks[0]!.node,
    target: "bown",
    sync: "full",
  });
  await q.waitEvent((e) =>
    e.event === "BLOCK_JOB_COMPLETED" && e.data.device === "bown"
  );
  // fsync of this file only (sync -f would flush the whole filesystem).
  const f = await Deno.open(target, { write: true });
  await f.syncData();
  f.close();
  const s = (performance.now() - start) / 1000;
  await q.execute("blockdev-del", { "node-name": "bown" });
  await Deno.remove(target);
  return s;
}

/** vmabak needs the VM's main QMP socket: the test monitor stays on the second one. */
const backup = (vm: TestVm, mode: string, extra = "") =>
  `${VMABAK} backup --mode ${mode} --qmp ${vm.qmpPath} --fleecing-dir ${vm.dir} ${extra}`;

const backupArgs = (vm: TestVm, mode: string) => [
  "backup",
  "--mode",
  mode,
  "--qmp",
  vm.qmpPath,
  "--fleecing-dir",
  vm.dir,
];

const fmtS = (s: number) => `${s.toFixed(2)} s`;
const fmtRss = (k: number) => `${(k / 1024).toFixed(0)} MiB`;

// 1. Throughput.
const vm = await vmWith(mixed, SIZE);
const rows: string[][] = [["method", "time", "rate", "peak RSS", "vs nbdcopy"]];
try {
  const disk = vm.disks[0]!;
  let nbdcopy = Infinity;
  for (let i = 0; i < RUNS; i++) {
    const exp = await fleecingExport(vm, SIZE);
    await warm(disk.path);
    const m = await measure(
      `nbdcopy --flush '${exp.uri}' out.raw`,
      vm.dir,
    );
    nbdcopy = Math.min(nbdcopy, m.seconds);
    await Deno.remove(`${vm.dir}/out.raw`);
    await exp.close();
  }
  const own = Math.min(await qemuOwn(vm, SIZE), await qemuOwn(vm, SIZE));
  // Untimed: the previous archive goes, the disk is in the page cache.
  const before = async () => {
    for (const f of ["b.vma", "b.vma.zst"]) {
      await Deno.remove(`${vm.dir}/${f}`).catch(() => {});
    }
    await warm(disk.path);
  };
  const pull = await best(
    RUNS,
    `${backup(vm, "pull")} -o b.vma`,
    vm.dir,
    before,
  );
  const push = await best(
    RUNS,
    `${backup(vm, "push")} -o b.vma`,
    vm.dir,
    before,
  );
  const pullZ = await best(
    1,
    `${backup(vm, "pull")} -o b.vma.zst`,
    vm.dir,
    before,
  );
  const pushZ = await best(
    1,
    `${backup(vm, "push")} -o b.vma.zst`,
    vm.dir,
    before,
  );
  const row = (name: string, s: number, rss?: number) => [
    name,
    fmtS(s),
    mbps(SIZE, s),
    rss === undefined ? "-" : fmtRss(rss),
    `${(s / nbdcopy).toFixed(2)}x`,
  ];
  rows.push(
    row("nbdcopy --flush of a fleecing export -> raw file", nbdcopy),
    row(
      "vmabak backup --mode pull -o FILE (fsync)",
      pull.seconds,
      pull.maxRssKiB,
    ),
    row(
      "vmabak backup --mode push -o FILE (fsync)",
      push.seconds,
      push.maxRssKiB,
    ),
    row(
      "vmabak backup --mode pull -o FILE.zst",
      pullZ.seconds,
      pullZ.maxRssKiB,
    ),
    row(
      "vmabak backup --mode push -o FILE.zst",
      pushZ.seconds,
      pushZ.maxRssKiB,
    ),
    row("QEMU blockdev-backup -> local raw file, + fsync", own),
  );
  console.log(
    `\n== pull vs push: ${
      SIZE / GiB
    } GiB raw disk, a quarter zero, VM running (best of ${RUNS}) ==`,
  );
  console.log(table(rows));
} finally {
  await vm.destroy();
}

// 2. Guest write latency with the output drained at 20 MiB/s.
{
  const lvm = await vmWith(mixed, SIZE);
  try {
    const writes = async (from: number) => {
      const out: number[] = [];
      for (let i = 0; i < 24; i++) {
        const off = from + ((i * 7919) % 64) * MiB + (i % 16) * 65536;
        const t = performance.now();
        await lvm.guestWrite(0, 0x40 + i, off, 65536);
        out.push(performance.now() - t);
        await sleep(20);
      }
      return out.sort((a, b) => a - b);
    };
    const stat = (xs: number[]) =>
      `${xs[xs.length >> 1]!.toFixed(2)} ms median, ${
        xs[Math.floor(xs.length * 0.9)]!.toFixed(1)
      } ms p90`;
    const idle = await writes(SIZE - 512 * MiB);
    const during = async (mode: string, from: number) => {
      const b = spawnSlowBackup(backupArgs(lvm, mode), 20 * MiB, "-");
      await sleep(3000);
      const xs = await writes(from);
      b.child.kill("SIGTERM");
      await b.done;
      return xs;
    };
    const push = await during("push", SIZE - 384 * MiB);
    const pull = await during("pull", SIZE - 256 * MiB);
    const med = (xs: number[]) => xs[xs.length >> 1]!;
    console.log(
      `\n== guest 64 KiB writes through the device, ahead of the backup, output drained at 20 MiB/s ==`,
    );
    console.log(table([
      ["condition", "latency", "vs idle"],
      ["idle", stat(idle), "1.0x"],
      [
        "during a push backup",
        stat(push),
        `${(med(push) / med(idle)).toFixed(1)}x`,
      ],
      [
        "during a pull backup",
        stat(pull),
        `${(med(pull) / med(idle)).toFixed(1)}x`,
      ],
    ]));
  } finally {
    await lvm.destroy();
  }
}

// 3. Fleecing image's largest size, with and without TRIM: the guest rewrites 256 MiB behind and ahead of the reader.
{
  const fvm = await vmWith(mixed, SIZE);
  try {
    const largest = async (trim: boolean) => {
      const b = spawnSlowBackup(
        [...backupArgs(fvm, "pull"), ...(trim ? [] : ["--no-trim"])],
        64 * MiB,
        "-",
      );
      let max = 0;
      const sample = setInterval(() => {
        for (const e of Deno.readDirSync(fvm.dir)) {
          if (/^vmabak-.*fleece0\.qcow2$/.test(e.name)) {
            try {
              max = Math.max(
                max,
                (Deno.statSync(`${fvm.dir}/${e.name}`).blocks ?? 0) * 512,
              );
            } catch { /* gone */ }
          }
        }
      }, 50);
      await sleep(2000);
      for (let i = 0; i < 128; i++) {
        await fvm.guestWrite(0, 0x60, ((i * 37) % 1024) * MiB, MiB);
      }
      await b.done;
      clearInterval(sample);
      return max;
    };
    const withTrim = await largest(true);
    const without = await largest(false);
    console.log(
      `\n== fleecing image, largest allocated size during a pull backup (output 64 MiB/s, guest rewrites 128 MiB spread over the first GiB) ==`,
    );
    console.log(table([
      ["reader", "largest fleecing image"],
      ["TRIM after storing (default)", `${(withTrim / MiB).toFixed(1)} MiB`],
      ["no TRIM", `${(without / MiB).toFixed(1)} MiB`],
    ]));
  } finally {
    await fvm.destroy();
  }
}

// 4. Peak RSS from 512 MiB to BIG disks (issue 8: at most 150 MiB, flat).
if (BIG > 0) {
  const sizes = [...new Set([512 * MiB, 2 * GiB, BIG])].filter((s) => s <= BIG);
  const rssRows: string[][] = [[
    "disk",
    "pull",
    "push",
    "pull --zstd",
    "push --zstd",
  ]];
  for (const size of sizes) {
    const img = `${work}/rss.raw`;
    await Deno.remove(img).catch(() => {});
    // The mixed image, repeated (or cut) to the size.
    await new Deno.Command("bash", {
      args: [
        "-c",
        `for i in $(seq ${
          Math.ceil(size / SIZE)
        }); do cat ${mixed}; done | head -c ${size} > ${img}`,
      ],
    }).output();
    const rvm = await vmWith(img, size);
    try {
      const one = async (mode: string, out: string) => {
        await Deno.remove(`${rvm.dir}/${out}`).catch(() => {});
        return (await measure(
          `${backup(rvm, mode)} -o ${out}`,
          rvm.dir,
        )).maxRssKiB;
      };
      rssRows.push([
        `${size / MiB} MiB`,
        fmtRss(await one("pull", "b.vma")),
        fmtRss(await one("push", "b.vma")),
        fmtRss(await one("pull", "b.vma.zst")),
        fmtRss(await one("push", "b.vma.zst")),
      ]);
    } finally {
      await rvm.destroy();
      await Deno.remove(img).catch(() => {});
    }
  }
  console.log(
    `\n== vmabak's peak RSS by disk size (archive to a file; /usr/bin/time -v) ==`,
  );
  console.log(table(rssRows));
}
await Deno.remove(work, { recursive: true });
