/**
 * Where QEMU's migration stream goes: `cat` into SPOOL, a 0600 file in
 * local storage (the fleecing directory). QEMU writes it as fast as the disk
 * takes it, so the guest's pause never depends on the archive's consumer,
 * and the writer is QEMU's own child: when vmabak dies, the background
 * snapshot still ends normally (QEMU 7.2 cannot take another one after an
 * interrupted one, until it restarts). `copyInto` stores the spooled stream
 * afterwards as consecutive 64 KiB clusters (the last one padded with zeros).
 *
 * The spool's shell command never fails the migration: when the spool
 * cannot be written (full directory, quota, I/O error), the rest of the
 * stream is drained to /dev/null so the background snapshot still completes,
 * and the failure is recorded for vmabak (see `uri`). In QEMU 7.2 a
 * background snapshot that FAILS (its output closed mid-way) leaves guest RAM
 * registered for userfaultfd write-protection with nobody serving the
 * faults: the next guest write to a page not yet saved, by a vCPU or by
 * QEMU's main loop (virtio completions, a reset), blocks for good in the
 * kernel, and the VM is wedged until it is restarted. Only a completed
 * snapshot unregisters.
 */
import { VMA_CLUSTER_SIZE } from "../vma/format.ts";
import { createExclusive } from "../io/safe_file.ts";
import { printable } from "../text/escape.ts";

/** The spool could not be written: the backup fails, the VM is fine. */
export class SpoolWriteError extends Error {
  override name = "SpoolWriteError";
  constructor(
    /** The directory the spool was in (the fleecing directory). */
    readonly dir: string,
    readonly path: string,
    /** In words: "no space left on the device", ... */
    readonly reason: string,
  ) {
    super(
      `Cannot save the VM state: ${reason} in ${printable(dir)} (writing ${
        printable(path.slice(dir.length + 1))
      }); ${
        /space|quota/.test(reason) ? "free space there or " : ""
      }choose another directory with --fleecing-dir`,
    );
  }
}

/** 'text' for sh. */
function shQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

export class VmstateSpool {
  readonly filePath: string;
  /** Made by the shell once `cat` wrote everything (in the private directory). */
  readonly donePath: string;

  private constructor(filePath: string, donePath: string) {
    this.filePath = filePath;
    this.donePath = donePath;
  }

  /** Creates the spool file exclusively, 0600. */
  static async create(
    filePath: string,
    donePath: string,
  ): Promise<VmstateSpool> {
    (await createExclusive(filePath, { what: "VM state spool" })).close();
    return new VmstateSpool(filePath, donePath);
  }

  /** Where `cat` reports a failure to write the spool (beside `donePath`). */
  get errorPath(): string {
    return `${this.donePath}.err`;
  }

  /** Where the shell writes its pid and `cat`'s (beside `donePath`). */
  get pidPath(): string {
    return `${this.donePath}.pid`;
  }

  /**
   * The migration URI. `cat` writes the spool; if it fails (or `abandon`
   * stops it), a second `cat` drains the rest of the stream to /dev/null
   * (fd 3 keeps the pipe open in between, so QEMU never sees it close) and
   * the migration completes. The done file gets `cat`'s exit status: 0, or
   * why the spool is incomplete in the error file. stderr's redirection
   * comes first, so a spool that cannot even be created is reported too.
   * `cat` runs in the background (its stdin made explicit) only so that its
   * pid is known.
   */
  get uri(): string {
    const err = shQuote(this.errorPath);
    const done = shQuote(this.donePath);
    return `exec:exec 3<&0; cat <&3 2> ${err} > ${
      shQuote(this.filePath)
    } & echo $$ $! > ${
      shQuote(this.pidPath)
    }; if wait $!; then echo 0 > ${done}; else s=$?; cat <&3 > /dev/null; echo $s > ${done}; fi`;
  }

  /**
   * Stops writing the spool (the backup failed or was aborted): `cat` is
   * killed, the shell drains the rest of the stream to /dev/null, and the
   * background snapshot completes at memory speed instead of at the
   * spool's. Never cancel the migration instead (see the top of the file).
   * Returns whether it stopped a writer (false when it had ended, or is not
   * ours to signal).
   */
  async abandon(): Promise<boolean> {
    try {
      const [sh, cat] = (await Deno.readTextFile(this.pidPath)).trim().split(
        " ",
      ).map(Number);
      if (!Number.isSafeInteger(sh) || !Number.isSafeInteger(cat)) {
        return false;
      }
      // The writer is the child of the shell that runs this spool's command.
      const stat = await Deno.readTextFile(`/proc/${cat}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const cmdline = await Deno.readTextFile(`/proc/${sh}/cmdline`);
      if (ppid !== sh || !cmdline.includes(this.pidPath)) return false;
      Deno.kill(cat!, "SIGTERM");
      return true;
    } catch {
      return false;
    }
  }

  /** The spool's directory. */
  get dir(): string {
    return this.filePath.slice(0, this.filePath.lastIndexOf("/")) || "/";
  }

  /** Bytes in the spool so far. */
  async size(): Promise<number> {
    return (await Deno.stat(this.filePath)).size;
  }

  /** The spool took nothing for `seconds`. */
  stalled(seconds: number): SpoolWriteError {
    return new SpoolWriteError(
      this.dir,
      this.filePath,
      `the spool took nothing for ${seconds} s (its disk hangs or is far too slow)`,
    );
  }

  /** Why the spool could not be written, naming its directory. */
  async writeFailure(): Promise<SpoolWriteError> {
    const text = await Deno.readTextFile(this.errorPath).catch(() => "");
    const reason = /no space left/i.test(text)
      ? "no space left on the device"
      : /quota/i.test(text)
      ? "disk quota exceeded"
      : text.trim() !== ""
      ? printable(
        text.trim().split("\n")[0]!.replace(/^(cat|sh|[^:]*sh): (\d+: )?/, ""),
        200,
      )
      : "the spool could not be written";
    return new SpoolWriteError(this.dir, this.filePath, reason);
  }

  /**
   * Waits until the spool's writer ended (after QEMU said the migration
   * completed) and returns the stream's size; throws `SpoolWriteError` when
   * the spool could not be written.
   */
  async waitWritten(timeoutMs = 60_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let status: string;
    for (;;) {
      try {
        status = (await Deno.readTextFile(this.donePath)).trim();
        if (status !== "") break;
      } catch { /* not yet */ }
      if (Date.now() > deadline) {
        throw new Error(
          `Cannot save the VM state: the spool ${
            printable(this.filePath)
          } was not finished in time`,
        );
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    if (status !== "0") throw await this.writeFailure();
    const bytes = (await Deno.stat(this.filePath)).size;
    if (bytes === 0) {
      throw new Error("Cannot save the VM state: QEMU sent no migration data");
    }
    return bytes;
  }

  /** Stores the spooled stream as clusters 0, 1, ... (in order); returns their count. */
  async copyInto(
    store: (cluster: number, data: Uint8Array) => Promise<void>,
  ): Promise<number> {
    using file = await Deno.open(this.filePath, { read: true });
    const buf = new Uint8Array(VMA_CLUSTER_SIZE);
    let cluster = 0;
    for (;;) {
      let fill = 0;
      while (fill < buf.length) {
        const n = await file.read(buf.subarray(fill));
        if (n === null) break;
        fill += n;
      }
      if (fill === 0) break;
      await store(cluster++, buf.subarray(0, fill));
      if (fill < buf.length) break;
    }
    return cluster;
  }

  /** Deletes the spool. */
  async remove(): Promise<void> {
    await Deno.remove(this.filePath).catch(() => {});
    await Deno.remove(this.donePath).catch(() => {});
    await Deno.remove(this.errorPath).catch(() => {});
    await Deno.remove(this.pidPath).catch(() => {});
  }
}
