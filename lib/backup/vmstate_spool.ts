/**
 * Receives QEMU's migration stream on a unix socket and spools it into a
 * local 0600 file as fast as QEMU sends it, so the guest's pause never
 * depends on how fast the archive's consumer reads. `copyInto` stores the
 * spooled stream afterwards as consecutive 64 KiB clusters (the last one
 * padded with zeros).
 */
import { writeAll } from "../io/sink.ts";
import { VMA_CLUSTER_SIZE } from "../vma/format.ts";

export class VmstateSpool {
  readonly socketPath: string;
  readonly filePath: string;
  /** Resolves with the stream's size once QEMU closed the connection. */
  readonly received: Promise<number>;
  #listener: Deno.Listener<Deno.UnixConn, Deno.UnixAddr>;
  #conn: Deno.UnixConn | undefined;
  #file: Deno.FsFile;

  private constructor(socketPath: string, filePath: string, file: Deno.FsFile) {
    this.socketPath = socketPath;
    this.filePath = filePath;
    this.#file = file;
    this.#listener = Deno.listen({ transport: "unix", path: socketPath });
    this.received = this.#receive();
    this.received.catch(() => {});
  }

  static async open(
    socketPath: string,
    filePath: string,
  ): Promise<VmstateSpool> {
    let file: Deno.FsFile;
    try {
      file = await Deno.open(filePath, {
        read: true,
        write: true,
        createNew: true,
        mode: 0o600,
      });
    } catch (error) {
      throw new Error(
        `Cannot spool the VM state into ${filePath}: ${
          (error as Error).message
        }`,
        { cause: error },
      );
    }
    return new VmstateSpool(socketPath, filePath, file);
  }

  async #receive(): Promise<number> {
    const conn = await this.#listener.accept();
    this.#conn = conn;
    this.#listener.close();
    const buf = new Uint8Array(1 << 20);
    let bytes = 0;
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        try {
          await writeAll(this.#file, buf.subarray(0, n));
        } catch (error) {
          throw new Error(
            `Cannot spool the VM state into ${this.filePath}: ${
              (error as Error).message
            }`,
            { cause: error },
          );
        }
        bytes += n;
      }
      if (bytes === 0) {
        throw new Error(
          "Cannot save the VM state: QEMU sent no migration data",
        );
      }
      return bytes;
    } finally {
      try {
        conn.close();
      } catch { /* closed */ }
    }
  }

  /** Stores the spooled stream as clusters 0, 1, ... (in order); returns their count. */
  async copyInto(
    store: (cluster: number, data: Uint8Array) => Promise<void>,
  ): Promise<number> {
    const bytes = await this.received;
    await this.#file.seek(0, Deno.SeekMode.Start);
    const buf = new Uint8Array(VMA_CLUSTER_SIZE);
    let cluster = 0;
    for (let left = bytes; left > 0;) {
      const want = Math.min(left, VMA_CLUSTER_SIZE);
      let fill = 0;
      while (fill < want) {
        const n = await this.#file.read(buf.subarray(fill, want));
        if (n === null) {
          throw new Error(
            `Cannot read the spooled VM state ${this.filePath}: it ended early`,
          );
        }
        fill += n;
      }
      await store(cluster++, buf.subarray(0, want));
      left -= want;
    }
    return cluster;
  }

  /** Closes the socket and the file and deletes the file. */
  async close(): Promise<void> {
    for (const c of [this.#listener, this.#conn, this.#file]) {
      try {
        c?.close();
      } catch { /* closed */ }
    }
    await Deno.remove(this.filePath).catch(() => {});
  }
}
