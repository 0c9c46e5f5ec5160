/** Drops a file's pages from the Linux page cache (test setup for cold reads). */

/** POSIX_FADV_DONTNEED: the kernel drops the file's clean cached pages. */
const POSIX_FADV_DONTNEED = 4;

/**
 * Evicts `path` from the page cache: fdatasync (so its pages are clean),
 * then posix_fadvise(DONTNEED) over the whole file. Linux with glibc only.
 */
export function evictFromPageCache(path: string): void {
  const libc = Deno.dlopen("libc.so.6", {
    open: { parameters: ["buffer", "i32"], result: "i32" },
    fdatasync: { parameters: ["i32"], result: "i32" },
    posix_fadvise: { parameters: ["i32", "i64", "i64", "i32"], result: "i32" },
    close: { parameters: ["i32"], result: "i32" },
  });
  try {
    const fd = libc.symbols.open(new TextEncoder().encode(`${path}\0`), 0);
    if (fd < 0) throw new Error(`Cannot open ${path} to evict it`);
    try {
      if (libc.symbols.fdatasync(fd) !== 0) {
        throw new Error(`Cannot sync ${path}`);
      }
      const r = libc.symbols.posix_fadvise(fd, 0n, 0n, POSIX_FADV_DONTNEED);
      if (r !== 0) throw new Error(`Cannot evict ${path}: error ${r}`);
    } finally {
      libc.symbols.close(fd);
    }
  } finally {
    libc.close();
  }
}
