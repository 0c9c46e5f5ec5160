/** Runs vmabak (main.ts, or the file in VMABAK_ENTRY) and external tools as subprocesses, for tests. */
import assert from "node:assert/strict";

export const MAIN = new URL("../../main.ts", import.meta.url).pathname;
export const FIXTURE =
  new URL("../../../shared/fixtures/proxmox-sample.vma", import.meta.url)
    .pathname;

/** A vzdump backup written by Proxmox's own writer (../shared/fixtures/README.md). */
export const VZDUMP_FIXTURE = new URL(
  "../../../shared/fixtures/vzdump-qemu-101-2026_11_30-12_00_00.vma.zst",
  import.meta.url,
).pathname;
/** Proxmox's own `vma` tool (../shared/tools/proxmox-vma/README.md). */
export const PVE_VMA = new URL(
  "../../../shared/tools/proxmox-vma/vma",
  import.meta.url,
).pathname;

export interface RunResult {
  code: number;
  stdout: Uint8Array;
  stderr: string;
  text: string;
}

const dec = new TextDecoder();

/**
 * A child still running after this long is killed (SIGKILL) and the test
 * sees its exit code 137: a hang fails one test instead of the whole suite.
 */
const RUN_TIMEOUT_MS = 10 * 60_000;

export async function run(
  cmd: string,
  args: string[],
  options: { stdin?: Uint8Array; cwd?: string } = {},
): Promise<RunResult> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: options.stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
    ...(options.cwd ? { cwd: options.cwd } : {}),
  }).spawn();
  if (options.stdin) {
    const w = child.stdin.getWriter();
    await w.write(options.stdin).catch(() => {});
    await w.close().catch(() => {});
  }
  const timer = setTimeout(() => {
    // deno-lint-ignore no-console
    console.error(
      `run: ${cmd} ${args.join(" ")} still runs after ${
        RUN_TIMEOUT_MS / 1000
      } s; killing it`,
    );
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, RUN_TIMEOUT_MS);
  const out = await child.output().finally(() => clearTimeout(timer));
  return {
    code: out.code,
    stdout: out.stdout,
    stderr: dec.decode(out.stderr),
    text: dec.decode(out.stdout),
  };
}

/** `deno run -A main.ts ARGS...` */
export function vmabak(
  args: string[],
  options: { stdin?: Uint8Array; cwd?: string } = {},
): Promise<RunResult> {
  return run(Deno.execPath(), ["run", "-A", MAIN, ...args], options);
}

/** `deno run -A main.ts ARGS...` as a child process; stdin, stdout and stderr as given (default "null"). */
export function spawnVmabak(
  args: string[],
  stdio: {
    stdin?: "piped" | "null";
    stdout?: "piped" | "null";
    stderr?: "piped" | "null";
  } = {},
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdin: stdio.stdin ?? "null",
    stdout: stdio.stdout ?? "null",
    stderr: stdio.stderr ?? "null",
  }).spawn();
}

/** A bash pipeline; `$VMABAK` expands to the vmabak command. */
export function sh(script: string, cwd?: string): Promise<RunResult> {
  return run("bash", [
    "-o",
    "pipefail",
    "-c",
    `VMABAK="${Deno.execPath()} run -A ${MAIN}"; ${script}`,
  ], cwd ? { cwd } : {});
}

export async function haveTool(
  tool: string,
  arg = "--version",
): Promise<boolean> {
  try {
    return (await new Deno.Command(tool, {
      args: [arg],
      stdout: "null",
      stderr: "null",
    }).output()).success;
  } catch {
    return false;
  }
}

/** A temp dir removed after `fn`, whatever happens. */
export async function withTempDir<T>(
  fn: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "vmabak-test-" });
  try {
    return await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Asserts an error output is exactly one line, with no stack trace. */
export function oneLine(stderr: string): string {
  const lines = stderr.trimEnd().split("\n");
  if (lines.length !== 1 || /^\s+at /m.test(stderr)) {
    throw new Error(`expected one error line, got:\n${stderr}`);
  }
  return lines[0]!;
}

/** Whether Proxmox's `vma` runs here. */
export async function havePveVma(): Promise<boolean> {
  try {
    await Deno.stat(PVE_VMA);
    return (await run(PVE_VMA, ["list", "/dev/null"])).code !== 127;
  } catch {
    return false;
  }
}

/** `qemu-img ARGS...`, asserted to succeed. */
export async function qemuImg(args: string[]): Promise<void> {
  const r = await run("qemu-img", args);
  assert.equal(r.code, 0, r.stderr);
}

/** Asserts `qemu-img compare -f raw -F raw A B` finds the two images equal; `what` leads the failure message. */
export async function assertSameRaw(
  a: string,
  b: string,
  what?: string,
): Promise<void> {
  const r = await run("qemu-img", ["compare", "-f", "raw", "-F", "raw", a, b]);
  const why = `${r.text}${r.stderr}`;
  assert.equal(r.code, 0, what === undefined ? why : `${what}: ${why}`);
}
