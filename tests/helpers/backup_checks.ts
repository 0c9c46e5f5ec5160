/** Checks shared by the backup tests: the VM is clean, archives equal the truth, fleecing files are gone. */
import assert from "node:assert/strict";
import type { DiskSpec, TestVm } from "./qemu_vm.ts";
import { assertSameRaw, run, spawnVmabak, vmabak } from "./run.ts";
import { sleep } from "./sleep.ts";

export const MiB = 1024 * 1024;

/** Two disks: raw of an odd size with data, zeros and a hole; qcow2 with large holes. */
export function twoDisks(): DiskSpec[] {
  return [
    {
      format: "raw",
      size: 40 * MiB + 3 * 4096 + 512,
      fill: ["write -P 0x11 0 8M", "write -z 8M 4M", "write -P 0x22 30M 2M"],
    },
    {
      format: "qcow2",
      size: 24 * MiB,
      fill: ["write -P 0x33 0 1M", "write -P 0x44 20M 1M"],
    },
  ];
}

/** No job, export or node of vmabak's; every device on its original node; the VM in `status`. */
export async function assertVmClean(
  vm: TestVm,
  status = "running",
): Promise<void> {
  assert.deepEqual(await vm.monitor.execute("query-block-jobs"), []);
  assert.deepEqual(await vm.monitor.execute("query-block-exports"), []);
  const nodes = await vm.monitor.execute<{ "node-name": string }[]>(
    "query-named-block-nodes",
  );
  assert.deepEqual(
    nodes.map((n) => n["node-name"]).filter((n) => n.startsWith("vmabak-")),
    [],
  );
  const blocks = await vm.monitor.execute<
    { qdev: string; inserted: { "node-name": string } }[]
  >("query-block");
  for (const d of vm.disks) {
    const b = blocks.find((b) => b.qdev === d.qdev);
    assert.equal(b?.inserted["node-name"], d.node, `${d.qdev} on ${d.node}`);
  }
  assert.equal(await vm.status(), status);
}

/** Extracts `archive` and compares each disk with its truth image (qemu-img compare). */
export async function assertArchiveEquals(
  archive: string,
  truth: string[],
  names: string[],
): Promise<void> {
  const out = `${archive}.out`;
  const x = await vmabak(["extract", archive, out]);
  assert.equal(x.code, 0, x.stderr);
  for (const [i, t] of truth.entries()) {
    await assertSameRaw(t, `${out}/disk-${names[i]}.raw`, `disk ${names[i]}`);
  }
  await Deno.remove(out, { recursive: true });
}

/** Files of vmabak's in a directory. */
export function vmabakFiles(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
    n.startsWith("vmabak-")
  );
}

export interface SlowBackup {
  /** The vmabak process (kill it to test crashes). */
  child: Deno.ChildProcess;
  /** vmabak's exit code and stderr, once both ends finished. */
  done: Promise<{ code: number; stderr: string }>;
  /** Resolves once vmabak said the backup's instant is fixed ("backup: started"). */
  started: Promise<void>;
}

/** Reads a child's stderr as text; `started` resolves at "backup: started". */
export function watchStderr(stream: ReadableStream<Uint8Array>): {
  text: Promise<string>;
  started: Promise<void>;
} {
  let seen: () => void = () => {};
  const started = new Promise<void>((r) => seen = r);
  const text = (async () => {
    let all = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      all += chunk;
      if (/backup: started/.test(all)) seen();
    }
    seen();
    return all;
  })();
  return { text, started };
}

/** `vmabak ARGS... -o -` piped into a consumer that writes `out` ("-": drops) at `rate` bytes/s. */
export function spawnSlowBackup(
  args: string[],
  rate: number,
  out: string,
): SlowBackup {
  const slow = new URL("./slow_cat.ts", import.meta.url).pathname;
  const child = spawnVmabak([...args, "-o", "-"], {
    stdout: "piped",
    stderr: "piped",
  });
  const reader = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", slow, String(rate), out],
    stdin: "piped",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const piped = child.stdout.pipeTo(reader.stdin).catch(() => {});
  const err = watchStderr(child.stderr);
  const done = (async () => {
    const status = await child.status;
    await piped;
    await reader.status;
    return { code: status.code, stderr: await err.text };
  })();
  return { child, done, started: err.started };
}

/**
 * `spawnSlowBackup`, returned once vmabak fixed its instant and `settleMs`
 * more passed (its reader is under way: writes can land before and behind it).
 */
export async function slowBackupUnderWay(
  args: string[],
  rate: number,
  out: string,
  settleMs = 1000,
): Promise<SlowBackup> {
  const b = spawnSlowBackup(args, rate, out);
  await b.started;
  await sleep(settleMs);
  return b;
}

/** Allocated bytes of a file (sparse files: what it really holds). */
export function allocated(path: string): number {
  try {
    return (Deno.statSync(path).blocks ?? 0) * 512;
  } catch {
    return 0;
  }
}

/**
 * `extract LAST --base ... DIR` of `chain` (oldest first) gives, for each
 * device in `names`, the bytes of the file at the same index of `truth`.
 */
export async function assertChainEquals(
  chain: string[],
  truth: string[],
  names: string[],
): Promise<void> {
  const [last, ...bases] = [...chain].reverse();
  const out = `${last}.chain`;
  const x = await vmabak([
    "extract",
    last!,
    ...bases.flatMap((b) => ["--base", b]),
    out,
  ]);
  assert.equal(x.code, 0, x.stderr);
  for (const [i, t] of truth.entries()) {
    const r = await run("cmp", [t, `${out}/disk-${names[i]}.raw`]);
    assert.equal(r.code, 0, `${last} disk ${names[i]}: ${r.text}${r.stderr}`);
  }
  await Deno.remove(out, { recursive: true });
}
