/**
 * A throwaway QEMU VM for tests, the demo and the benchmarks: no guest OS
 * (or the counter boot sector), one QMP socket for vmabak and a second QMP
 * monitor for the test itself (guest writes, checks).
 */
import { QmpClient } from "../../lib/qmp/client.ts";
import { haveTool } from "./run.ts";

export interface DiskSpec {
  format: "raw" | "qcow2";
  size: number;
  /** qemu-io commands that fill the image before boot, e.g. "write -P 0x11 0 1M". */
  fill?: string[];
  /** Writes the image's content before boot (after it was created). */
  prepare?: (path: string) => Promise<void>;
}

export interface TestVmOptions {
  disks: DiskSpec[];
  memoryMiB?: number;
  /** A boot sector written at offset 0 of the first disk (the VM then runs it). */
  bootSector?: Uint8Array;
  /** Leave the vCPUs stopped. */
  paused?: boolean;
  extraArgs?: string[];
  /**
   * QEMU is killed when it still runs this long after start (default
   * `VMABAK_TEST_VM_WATCHDOG_S` or 600 s; 0: never), so a test that hangs on
   * a wedged QEMU fails instead of stalling the whole suite.
   */
  watchdogSeconds?: number;
}

function defaultWatchdogSeconds(): number {
  // Unset: NaN, so the default; set to "" it is 0 (no watchdog).
  const env = Number(Deno.env.get("VMABAK_TEST_VM_WATCHDOG_S"));
  return Number.isFinite(env) && env >= 0 ? env : 600;
}

export const QEMU = "qemu-system-x86_64";

export async function haveQemu(): Promise<boolean> {
  return await haveTool(QEMU) && await haveTool("qemu-img");
}

async function sh(cmd: string, args: string[]): Promise<void> {
  const r = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(r.stderr)}`,
    );
  }
}

export class TestVm {
  readonly dir: string;
  readonly qmpPath: string;
  readonly disks: {
    path: string;
    format: string;
    size: number;
    node: string;
    device: string;
    qdev: string;
  }[];
  monitor!: QmpClient;
  #child!: Deno.ChildProcess;
  #status: Promise<Deno.CommandStatus> | undefined;
  /** The last 16 KiB QEMU wrote on stderr (read all along: a full pipe would block QEMU). */
  #stderrTail = "";
  #stderrDone: Promise<void> = Promise.resolve();
  #killedByTest = false;
  #watchdog: ReturnType<typeof setTimeout> | undefined;
  readonly #watchdogSeconds: number;
  readonly args: string[];

  private constructor(dir: string, options: TestVmOptions) {
    this.dir = dir;
    this.qmpPath = `${dir}/qmp.sock`;
    this.#watchdogSeconds = options.watchdogSeconds ?? defaultWatchdogSeconds();
    this.disks = options.disks.map((d, i) => ({
      path: `${dir}/disk${i}.${d.format}`,
      format: d.format,
      size: d.size,
      node: `drive${i}`,
      device: `vd${i}`,
      qdev: `/machine/peripheral/vd${i}/virtio-backend`,
    }));
    this.args = [
      "-machine",
      "q35,accel=tcg",
      "-m",
      String(options.memoryMiB ?? 64),
      "-nodefaults",
      "-display",
      "none",
      "-S",
      "-qmp",
      `unix:${this.qmpPath},server=on,wait=off`,
      "-chardev",
      `socket,id=mon2,path=${dir}/monitor.sock,server=on,wait=off`,
      "-mon",
      "chardev=mon2,mode=control",
      ...this.disks.flatMap((d, i) => [
        "-blockdev",
        `driver=file,filename=${d.path},node-name=file${i}`,
        "-blockdev",
        `driver=${d.format},file=file${i},node-name=${d.node}`,
        "-device",
        `virtio-blk-pci,drive=${d.node},id=${d.device}${
          i === 0 ? ",bootindex=0" : ""
        }`,
      ]),
      ...(options.extraArgs ?? []),
    ];
  }

  static async start(options: TestVmOptions): Promise<TestVm> {
    const dir = await Deno.makeTempDir({ prefix: "vmabak-vm-" });
    const vm = new TestVm(dir, options);
    try {
      for (const [i, d] of vm.disks.entries()) {
        await sh("qemu-img", [
          "create",
          "-q",
          "-f",
          d.format,
          d.path,
          String(d.size),
        ]);
        await options.disks[i]!.prepare?.(d.path);
        const fill = options.disks[i]!.fill ?? [];
        if (fill.length > 0) {
          await sh("qemu-io", [
            "-f",
            d.format,
            d.path,
            ...fill.flatMap((c) => ["-c", c]),
          ]);
        }
        if (i === 0 && options.bootSector) {
          if (d.format !== "raw") {
            throw new Error("the boot sector needs a raw first disk");
          }
          const f = await Deno.open(d.path, { write: true });
          await f.write(options.bootSector);
          f.close();
        }
      }
      await vm.#launch();
      if (!options.paused) await vm.monitor.execute("cont");
      return vm;
    } catch (error) {
      await vm.destroy();
      throw error;
    }
  }

  /** A write through the guest's virtio device (above any backup filter). */
  async guestWrite(
    disk: number,
    pattern: number,
    offset: number,
    length: number,
  ): Promise<void> {
    await this.monitor.execute("human-monitor-command", {
      "command-line": `qemu-io -d ${
        this.disks[disk]!.qdev
      } "write -P ${pattern} ${offset} ${length}"`,
    });
  }

  async status(): Promise<string> {
    const s = await this.monitor.execute<{ status: string }>("query-status");
    return s.status;
  }

  /** Copies the disk images (the truth at this moment) with qemu-img convert to raw. */
  async snapshotDisks(suffix: string): Promise<string[]> {
    const out = [];
    for (const [i, d] of this.disks.entries()) {
      const target = `${this.dir}/truth${i}-${suffix}.raw`;
      await sh("qemu-img", [
        "convert",
        "-U",
        "-f",
        d.format,
        "-O",
        "raw",
        d.path,
        target,
      ]);
      out.push(target);
    }
    return out;
  }

  /**
   * Shuts QEMU down cleanly (`quit`: qcow2 images store their persistent
   * bitmaps) and starts it again on the same images and sockets, running.
   */
  async restart(): Promise<void> {
    await this.monitor.execute("quit").catch(() => {});
    await this.monitor.close().catch(() => {});
    await this.#status;
    await this.#stderrDone;
    await Deno.remove(this.qmpPath).catch(() => {});
    await Deno.remove(`${this.dir}/monitor.sock`).catch(() => {});
    await this.#launch();
    await this.monitor.execute("cont");
  }

  /** Spawns QEMU on `args` and connects the test's own monitor; the guest is not yet running. */
  async #launch(): Promise<void> {
    this.#child = new Deno.Command(QEMU, {
      args: this.args,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#status = this.#child.status;
    this.#killedByTest = false;
    this.#armWatchdog();
    this.#stderrTail = "";
    this.#stderrDone = this.#drainStderr(this.#child.stderr);
    for (let i = 0; i < 100; i++) {
      try {
        await Deno.stat(`${this.dir}/monitor.sock`);
        await Deno.stat(this.qmpPath);
        break;
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
    }
    // The socket file exists from bind(); a loaded host can still refuse before listen().
    for (let i = 0;; i++) {
      try {
        this.monitor = await QmpClient.connect(`${this.dir}/monitor.sock`);
        break;
      } catch (error) {
        if (i >= 50) throw error;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  async #drainStderr(stream: ReadableStream<Uint8Array>): Promise<void> {
    const dec = new TextDecoder();
    try {
      for await (const chunk of stream) {
        this.#stderrTail =
          (this.#stderrTail + dec.decode(chunk, { stream: true }))
            .slice(-16384);
      }
    } catch { /* cancelled */ }
  }

  /** What QEMU wrote on stderr lately (its last 16 KiB). */
  get stderrTail(): string {
    return this.#stderrTail;
  }

  #armWatchdog(): void {
    clearTimeout(this.#watchdog);
    if (this.#watchdogSeconds <= 0) return;
    const child = this.#child;
    this.#watchdog = setTimeout(() => {
      // deno-lint-ignore no-console
      console.error(
        `TestVm watchdog: QEMU in ${this.dir} still runs after ${this.#watchdogSeconds} s; killing it (the test hung)`,
      );
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, this.#watchdogSeconds * 1000);
  }

  /** QEMU's process id (to stop and continue it with signals). */
  get pid(): number {
    return this.#child.pid;
  }

  kill(): void {
    this.#killedByTest = true;
    try {
      this.#child.kill("SIGKILL");
    } catch { /* gone */ }
  }

  get exited(): Promise<Deno.CommandStatus> {
    return this.#status!;
  }

  async destroy(): Promise<void> {
    clearTimeout(this.#watchdog);
    await this.monitor?.close().catch(() => {});
    if (this.#child) {
      const early = await Promise.race([
        this.#child.status,
        Promise.resolve(undefined),
      ]);
      if (early !== undefined && !early.success && !this.#killedByTest) {
        // QEMU died without the test asking: say how, for whoever reads the log.
        // deno-lint-ignore no-console
        console.error(
          `QEMU exited by itself (code ${early.code}, signal ${early.signal}); its stderr ends:\n${this.#stderrTail}`,
        );
      }
      this.kill();
      await this.#child.status.catch(() => {});
      await this.#stderrDone;
    }
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** The migration capabilities a QEMU has on, by name. */
export async function migrationCapsOn(qmp: QmpClient): Promise<string[]> {
  const caps = await qmp.execute<{ capability: string; state: boolean }[]>(
    "query-migrate-capabilities",
  );
  return caps.filter((c) => c.state).map((c) => c.capability);
}
