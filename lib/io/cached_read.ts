/**
 * Reads of a file's page-cache pages in one call on the calling thread:
 * Linux `preadv2(fd, iov, 1, offset, RWF_NOWAIT)` through FFI, a read at a
 * position (no seek) that returns at once with what is cached instead of
 * waiting for the disk. Deno has no pread of its own; its file reads are a
 * seek and a read, each a trip to the thread pool.
 */
import * as fs from "node:fs";

/** `RWF_NOWAIT` of `<linux/fs.h>`: fail with EAGAIN rather than wait for I/O. */
const RWF_NOWAIT = 0x08;
/**
 * Reads smaller than this take the thread-pool path: V8 may keep a typed
 * array of at most 64 bytes inside its heap, where it can move, and the
 * iovec holds a raw pointer to it.
 */
const MIN_LENGTH = 256;

const SYMBOLS = {
  preadv2: {
    parameters: ["i32", "buffer", "i32", "i64", "i32"],
    result: "i64",
  },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>;
let libc: Libc | null | undefined;

/** libc's preadv2, or null: not Linux/glibc, or no FFI permission (never prompts). */
function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  try {
    if (
      Deno.build.os === "linux" &&
      Deno.permissions.querySync({ name: "ffi" }).state === "granted"
    ) {
      libc = Deno.dlopen("libc.so.6", SYMBOLS);
    }
  } catch { /* no libc.so.6 (musl) or no preadv2: the thread-pool path */ }
  return libc;
}

/** A file's cached bytes read without waiting (see the module comment). */
export class CachedRead {
  #libc: Libc;
  #fd: number;
  #iov = new BigUint64Array(2);
  #closed = false;

  private constructor(lib: Libc, fd: number) {
    this.#libc = lib;
    this.#fd = fd;
  }

  /**
   * A reader of the file `file` (opened from `path`), or null when this
   * process cannot use one. `path` is opened again for an OS file
   * descriptor; that it is the same file as `file` is checked.
   */
  static async open(path: string, file: Deno.FsFile): Promise<
    CachedRead | null
  > {
    const lib = loadLibc();
    if (lib === null) return null;
    let fd: number;
    try {
      fd = fs.openSync(path, "r");
    } catch {
      return null;
    }
    try {
      const [want, got] = await Promise.all([
        file.stat(),
        Deno.stat(`/proc/self/fd/${fd}`),
      ]);
      if (want.dev === got.dev && want.ino === got.ino) {
        return new CachedRead(lib, fd);
      }
    } catch { /* no /proc: cannot tell the descriptor is the file's */ }
    fs.closeSync(fd);
    return null;
  }

  /**
   * Fills `into` from `offset` as far as the page cache holds it: returns
   * the bytes read (0 when the first page is not cached, on any error, or
   * for a read too small for this path). Never waits for the disk.
   */
  read(offset: number, into: Uint8Array): number {
    if (this.#closed || into.length < MIN_LENGTH) return 0;
    const ptr = Deno.UnsafePointer.of(into);
    if (ptr === null) return 0;
    this.#iov[0] = BigInt(Deno.UnsafePointer.value(ptr));
    this.#iov[1] = BigInt(into.length);
    const n = Number(
      this.#libc.symbols.preadv2(
        this.#fd,
        this.#iov,
        1,
        BigInt(offset),
        RWF_NOWAIT,
      ),
    );
    return n > 0 ? n : 0;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    fs.closeSync(this.#fd);
  }
}
