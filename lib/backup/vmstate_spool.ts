/**
 * Where QEMU's migration stream goes: `exec:cat > SPOOL`, a 0600 file in
 * local storage (the fleecing directory). QEMU writes it as fast as the disk
 * takes it, so the guest's pause never depends on the archive's consumer,
 * and the writer is QEMU's own child: when vmabak dies, the background
 * snapshot still ends normally (QEMU 7.2 cannot take another one after an
 * interrupted one, until it restarts). `copyInto` stores the spooled stream
 * afterwards as consecutive 64 KiB clusters (the last one padded with zeros).
 */
import { VMA_CLUSTER_SIZE } from "../vma/format.ts";
import { createExclusive, FileError } from "../io/safe_file.ts";
import { printable } from "../text/escape.ts";

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

  /** The migration URI. */
  get uri(): string {
    return `exec:cat > ${shQuote(this.filePath)} 2> ${
      shQuote(this.errorPath)
    } && : > ${shQuote(this.donePath)}`;
  }

  /**
   * Why the spool could not be written (after the migration failed), naming
   * the file: for example no space left in the fleecing directory.
   */
  async writeFailure(): Promise<FileError | undefined> {
    const text = await Deno.readTextFile(this.errorPath).catch(() => "");
    if (text.trim() === "") return undefined;
    const reason = /no space left/i.test(text)
      ? "no space left on the device"
      : /quota/i.test(text)
      ? "disk quota exceeded"
      : printable(text.trim().split("\n")[0]!.replace(/^cat: /, ""), 200);
    return new FileError("write", "VM state spool", this.filePath, reason);
  }

  /** Waits until `cat` has written all (after QEMU said the migration completed). */
  async waitWritten(timeoutMs = 60_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await Deno.stat(this.donePath);
        break;
      } catch {
        if (Date.now() > deadline) {
          throw new Error(
            `Cannot save the VM state: the spool ${this.filePath} was not finished in time`,
          );
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    }
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
  }
}
