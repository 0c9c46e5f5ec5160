// deno-lint-ignore-file no-console
/**
 * `npm run demo` / `deno task demo`: the main job, for real. Boots a
 * throwaway QEMU VM (no guest OS) with two generated disks, backs it up live
 * with `vmabak backup` while writes land on its disks, then verifies and
 * extracts the archive and checks, byte for byte, that it holds the disks as
 * they were when the backup started. Exits non-zero on any mismatch.
 */
import { TestVm } from "../tests/helpers/qemu_vm.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const MiB = 1024 * 1024;

async function vmabak(args: string[]): Promise<void> {
  console.log(`$ vmabak ${args.join(" ")}`);
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
  }).output();
  Deno.stdout.writeSync(r.stdout);
  Deno.stderr.writeSync(r.stderr);
  if (!r.success) throw new Error(`vmabak ${args[0]} failed`);
}

/**
 * Echoes a child's stderr to ours; resolves true at vmabak's "backup:
 * started" line (echoing goes on after), false if the stream ends first.
 */
function echoUntilStarted(
  stream: ReadableStream<Uint8Array>,
): Promise<boolean> {
  return new Promise((resolve) => {
    (async () => {
      const decoder = new TextDecoder();
      let tail = "";
      let started = false;
      for await (const chunk of stream) {
        Deno.stderr.writeSync(chunk);
        if (started) continue;
        tail = (tail + decoder.decode(chunk, { stream: true })).slice(-4096);
        started = /backup: started/.test(tail);
        if (started) resolve(true);
      }
      resolve(false);
    })();
  });
}

async function same(a: string, b: string): Promise<boolean> {
  return (await new Deno.Command("qemu-img", {
    args: ["compare", "-q", "-f", "raw", "-F", "raw", a, b],
  }).output())
    .success;
}

console.log(
  "== booting a throwaway VM: a 64 MiB raw disk (odd size) and a 32 MiB qcow2 disk",
);
const vm = await TestVm.start({
  disks: [
    {
      format: "raw",
      size: 64 * MiB + 5 * 4096,
      fill: ["write -P 0x11 0 16M", "write -P 0x22 40M 8M"],
    },
    {
      format: "qcow2",
      size: 32 * MiB,
      fill: ["write -P 0x33 0 4M", "write -P 0x44 28M 2M"],
    },
  ],
});
let ok = false;
try {
  const truth = await vm.snapshotDisks("truth");
  console.log(
    `== disks copied as the truth; the VM runs (status: ${await vm.status()})`,
  );
  const archive = `${vm.dir}/vm.vma`;
  console.log(`$ vmabak backup --qmp ${vm.qmpPath} -o ${archive} --speed 16M`);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "backup",
      "--qmp",
      vm.qmpPath,
      "-o",
      archive,
      "--speed",
      "16M",
    ],
    stderr: "piped",
  }).spawn();
  // The guest writes only once vmabak says the backup's instant is fixed.
  if (!(await echoUntilStarted(child.stderr))) {
    await child.status;
    throw new Error('backup ended before it said "backup: started"');
  }
  console.log(
    "== the guest writes while the backup runs (through its virtio devices)",
  );
  for (
    const [disk, offset, len, pattern] of [[0, 60 * MiB, MiB, 0x55], [
      0,
      64 * MiB,
      4096,
      0x56,
    ], [1, 30 * MiB, 512 * 1024, 0x66]]
  ) {
    await vm.guestWrite(disk!, pattern!, offset!, len!);
  }
  if (!(await child.status).success) throw new Error("backup failed");
  const after = await vm.snapshotDisks("after");
  await vmabak(["list", archive]);
  await vmabak(["verify", "-v", archive]);
  await vmabak(["extract", archive, `${vm.dir}/restored`]);
  console.log(
    "== comparing the restored disks with the truth (qemu-img compare)",
  );
  // One raw file per disk, named after its VMA device (disk-drive-virtio0.raw
  // ...): in the VM's disk order.
  const files = [...Deno.readDirSync(`${vm.dir}/restored`)]
    .map((e) => e.name)
    .filter((n) => /^disk-.+\.raw$/.test(n))
    .sort();
  ok = files.length === truth.length;
  if (!ok) {
    console.log(`expected ${truth.length} restored disks, got: ${files}`);
  }
  for (const [i, t] of truth.entries()) {
    const restored = `${vm.dir}/restored/${files[i]}`;
    const equal = await same(t, restored);
    const changed = !(await same(t, after[i]!));
    console.log(
      `disk ${files[i]}: restored ${
        equal ? "EQUALS" : "DIFFERS FROM"
      } the disk at backup start` +
        ` (the live disk ${changed ? "has changed since" : "did not change"})`,
    );
    ok &&= equal && changed;
  }
  console.log(
    `== VM still ${await vm.status()}, ${
      JSON.stringify(await vm.monitor.execute("query-block-jobs"))
    } jobs left`,
  );
} finally {
  await vm.destroy();
}
console.log(ok ? "demo: OK, the live backup is exact" : "demo: FAILED");
Deno.exit(ok ? 0 : 1);
