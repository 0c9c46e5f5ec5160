import type { ByteSink } from "./sink.ts";
import { createPartial, writeAllTo } from "./safe_file.ts";
import { zstdSink } from "./zstd.ts";

/** Where an archive goes; `commit()` makes it final, `abort()` removes it. */
export interface ArchiveOutput extends ByteSink {
  /** The final name, or "-" for standard output. */
  readonly path: string;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

export interface ArchiveOutputOptions {
  /** Compress with zstd at this level (independent ~4 MiB frames). */
  zstd?: number;
  /** Compression Workers (default 2). */
  zstdWorkers?: number;
}

/**
 * Opens an archive for writing, strictly sequentially. A file is written as
 * `PATH.<random>.partial` (exclusive, 0600, see `safe_file.ts`) and published
 * as PATH only by `commit()`, so an archive that failed half-way never looks
 * complete. `-` writes to standard output. An existing PATH is refused, never
 * overwritten, also when it appears while the archive is written. With `zstd`, what is written
 * is compressed on its way out; `commit()` flushes the last frame first.
 */
export async function openArchiveOutput(
  path: string,
  stdout: ByteSink,
  options: ArchiveOutputOptions = {},
): Promise<ArchiveOutput> {
  const raw = await openRawOutput(path, stdout);
  if (options.zstd === undefined) return raw;
  const compressed = zstdSink(
    raw,
    options.zstd,
    options.zstdWorkers === undefined ? {} : { workers: options.zstdWorkers },
  );
  return {
    path,
    write: (chunk) => compressed.write(chunk),
    async commit() {
      await compressed.close();
      await raw.commit();
    },
    async abort() {
      compressed.abort();
      await raw.abort();
    },
  };
}

async function openRawOutput(
  path: string,
  stdout: ByteSink,
): Promise<ArchiveOutput> {
  if (path === "-") {
    return {
      path,
      write: (chunk) => stdout.write(chunk),
      commit: () => Promise.resolve(),
      abort: () => Promise.resolve(),
    };
  }
  const partial = await createPartial(path, { what: "archive" });
  const where = { what: "archive", path };
  return {
    path,
    write: (chunk) => writeAllTo(partial.file, chunk, where),
    commit: () => partial.commit(),
    abort: () => partial.abort(),
  };
}
