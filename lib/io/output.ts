import { type ByteSink, writeAll } from "./sink.ts";
import { describeFsError } from "./input.ts";
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
}

/**
 * Opens an archive for writing, strictly sequentially. A file is written as
 * `PATH.partial` and renamed to PATH only by `commit()`, so an archive that
 * failed half-way never looks complete. `-` writes to standard output. An
 * existing PATH is refused, never overwritten. With `zstd`, what is written
 * is compressed on its way out; `commit()` flushes the last frame first.
 */
export async function openArchiveOutput(
  path: string,
  stdout: ByteSink,
  options: ArchiveOutputOptions = {},
): Promise<ArchiveOutput> {
  const raw = await openRawOutput(path, stdout);
  if (options.zstd === undefined) return raw;
  const compressed = zstdSink(raw, options.zstd);
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
  const partial = `${path}.partial`;
  let exists = false;
  try {
    await Deno.lstat(path);
    exists = true;
  } catch { /* free */ }
  if (exists) {
    throw new Error(`Cannot write archive ${path}: it already exists`);
  }
  let file: Deno.FsFile;
  try {
    file = await Deno.open(partial, {
      write: true,
      create: true,
      truncate: true,
      mode: 0o600,
    });
  } catch (error) {
    throw new Error(
      `Cannot write archive ${partial}: ${describeFsError(error)}`,
      { cause: error },
    );
  }
  let open = true;
  const close = () => {
    if (open) {
      open = false;
      file.close();
    }
  };
  return {
    path,
    write: (chunk) => writeAll(file, chunk),
    async commit() {
      await file.syncData();
      close();
      await Deno.rename(partial, path);
    },
    async abort() {
      close();
      await Deno.remove(partial).catch(() => {});
    },
  };
}
