/**
 * The one way vmabak creates files: archives, extracted disks, configs,
 * vmstate, resume.sh. Every file is created exclusively (`O_CREAT|O_EXCL`:
 * an existing file or a symlink, even a dangling one, is refused, never
 * followed), mode 0600 unless asked otherwise; directories 0700. An archive
 * is written under a temporary name no other run can pick
 * (`ARCHIVE.<random>.partial`) and published with `link()`, which never
 * replaces a file: if ARCHIVE appeared meanwhile, this run fails and the
 * other run's archive stays as it is. Every file system error becomes a
 * `FileError` naming the file and what it is for.
 */
import { printable } from "../text/escape.ts";

/** Longest file name most Linux file systems store (bytes of one path component). */
export const NAME_MAX = 255;

/** A file could not be created, written or published. */
export class FileError extends Error {
  override name = "FileError";
  constructor(
    /** "create", "write", "publish", ... */
    readonly verb: string,
    /** What the file is: "archive", "disk image", "config", ... */
    readonly what: string,
    readonly path: string,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(`Cannot ${verb} ${what} ${printable(path)}: ${reason}`, options);
  }
}

const OS_ERRORS: Record<number, string> = {
  1: "EPERM",
  5: "EIO",
  13: "EACCES",
  17: "EEXIST",
  20: "ENOTDIR",
  27: "EFBIG",
  28: "ENOSPC",
  30: "EROFS",
  36: "ENAMETOOLONG",
  40: "ELOOP",
  122: "EDQUOT",
};

/** The errno name of a file system error ("ENOSPC"), from its code or its "(os error N)". */
export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown })?.code;
  if (typeof code === "string") return code;
  const m = /\(os error (\d+)\)/.exec(String((error as Error)?.message));
  return m ? OS_ERRORS[Number(m[1])] : undefined;
}

/** The short reason of a file system error, in words, without Deno's call details. */
export function fsReason(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file or directory";
  if (error instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (error instanceof Deno.errors.AlreadyExists) return "it already exists";
  if (error instanceof Deno.errors.IsADirectory) return "it is a directory";
  const code = errorCode(error);
  const words: Record<string, string> = {
    ENOSPC: "no space left on the device",
    EDQUOT: "disk quota exceeded",
    EFBIG: "the file would be larger than the file system allows",
    ENAMETOOLONG: "the file name is longer than the file system allows",
    ELOOP: "it is a symbolic link",
    EROFS: "the file system is read-only",
    ENOTDIR: "a part of the path is not a directory",
    EEXIST: "it already exists",
    EACCES: "permission denied",
    EPERM: "operation not permitted",
    EIO: "input/output error",
  };
  if (typeof code === "string" && code in words) return words[code]!;
  const message = error instanceof Error ? error.message : String(error);
  return printable(
    message.replace(/:? *\(os error \d+\).*$/s, "").replace(/,.*$/s, ""),
  );
}

/** Wraps a file system error as a `FileError` (a `FileError` passes through). */
export function fileError(
  verb: string,
  what: string,
  path: string,
  error: unknown,
): FileError {
  if (error instanceof FileError) return error;
  return new FileError(verb, what, path, fsReason(error), { cause: error });
}

export interface CreateOptions {
  /** What the file is, for messages ("disk image", "config"). */
  what: string;
  /** Permission bits; default 0600. */
  mode?: number;
}

/** Creates a new file for writing; refuses an existing file or symlink. */
export async function createExclusive(
  path: string,
  options: CreateOptions,
): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, {
      write: true,
      createNew: true,
      mode: options.mode ?? 0o600,
    });
  } catch (error) {
    throw fileError("create", options.what, path, error);
  }
}

/** Writes all of `bytes` at the file's position; errors name the file. */
export async function writeAllTo(
  file: Deno.FsFile,
  bytes: Uint8Array,
  where: { what: string; path: string },
): Promise<void> {
  try {
    let done = 0;
    while (done < bytes.length) done += await file.write(bytes.subarray(done));
  } catch (error) {
    throw fileError("write", where.what, where.path, error);
  }
}

/** `writeAllTo` without a promise per call (small writes on a hot path). */
export function writeAllToSync(
  file: Deno.FsFile,
  bytes: Uint8Array,
  where: { what: string; path: string },
): void {
  try {
    let done = 0;
    while (done < bytes.length) done += file.writeSync(bytes.subarray(done));
  } catch (error) {
    throw fileError("write", where.what, where.path, error);
  }
}

/** Creates a new file holding `data` (exclusive, 0600 unless asked otherwise). */
export async function writeFileExclusive(
  path: string,
  data: Uint8Array,
  options: CreateOptions,
): Promise<void> {
  const file = await createExclusive(path, options);
  try {
    await writeAllTo(file, data, { what: options.what, path });
  } finally {
    file.close();
  }
}

/** Creates a new directory, mode 0700; refuses one that exists. */
export async function makePrivateDir(
  path: string,
  what: string,
): Promise<void> {
  try {
    await Deno.mkdir(path, { mode: 0o700 });
    await Deno.chmod(path, 0o700); // whatever the umask says
  } catch (error) {
    throw fileError("create", what, path, error);
  }
}

/**
 * Makes a fresh temporary directory (in $TMPDIR, named `prefix` + random)
 * only the current user can enter, mode 0700, for sockets (NBD, migration):
 * nothing else can connect to them. Returns its path.
 */
export async function makePrivateTempDir(prefix: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix });
  await Deno.chmod(dir, 0o700);
  const mode = (await Deno.stat(dir)).mode! & 0o777;
  if (mode !== 0o700) {
    await Deno.remove(dir, { recursive: true });
    throw new FileError(
      "create",
      "private directory",
      dir,
      `mode is ${mode.toString(8)}, not 700`,
    );
  }
  return dir;
}

/** Checks that `name` fits in one path component of most file systems. */
export function fitsFileName(name: string): boolean {
  return new TextEncoder().encode(name).length <= NAME_MAX;
}

/** A file written under a temporary name, published by `commit()`. */
export interface PartialFile {
  readonly file: Deno.FsFile;
  /** What the file is, for messages. */
  readonly what: string;
  /** The final name. */
  readonly path: string;
  /** The temporary name, `PATH.<random>.partial`. */
  readonly partialPath: string;
  /** Flushes, closes and publishes under `path`; never replaces a file. */
  commit(): Promise<void>;
  /** Closes and removes the temporary file. */
  abort(): Promise<void>;
}

function randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts writing `path` as `PATH.<random>.partial` (exclusive, 0600). Fails
 * at once when `path` exists. `commit()` links the temporary file to `path`
 * (a link never replaces a file) and removes the temporary name; when
 * `path` appeared meanwhile, commit fails, removes this run's file and
 * leaves the other one intact.
 */
export async function createPartial(
  path: string,
  options: CreateOptions,
): Promise<PartialFile> {
  const { what } = options;
  if (await exists(path)) {
    throw new FileError("write", what, path, "it already exists");
  }
  const base = path.split("/").pop()!;
  if (!fitsFileName(`${base}.${randomHex(6)}.partial`)) {
    throw new FileError(
      "write",
      what,
      path,
      `the name is too long (at most ${
        NAME_MAX - 21
      } bytes, for the temporary name)`,
    );
  }
  const partialPath = `${path}.${randomHex(6)}.partial`;
  const file = await createExclusive(partialPath, options);
  let open = true;
  const close = () => {
    if (open) {
      open = false;
      file.close();
    }
  };
  const remove = () => Deno.remove(partialPath).catch(() => {});
  return {
    file,
    what,
    path,
    partialPath,
    async commit() {
      try {
        await file.syncData();
      } catch (error) {
        close();
        await remove();
        throw fileError("write", what, partialPath, error);
      }
      close();
      try {
        await publish(partialPath, path);
      } catch (error) {
        await remove();
        if (error instanceof Deno.errors.AlreadyExists) {
          throw new FileError(
            "write",
            what,
            path,
            "it appeared while this run was writing (another run wrote it); that file is kept, this run's output is discarded",
            { cause: error },
          );
        }
        throw fileError("write", what, path, error);
      }
      await remove();
    },
    async abort() {
      close();
      await remove();
    },
  };
}

/** Gives `from` the name `to` without ever replacing a file at `to`. */
async function publish(from: string, to: string): Promise<void> {
  try {
    await Deno.link(from, to);
  } catch (error) {
    const code = errorCode(error);
    // File systems without hard links: check, then rename (a small race).
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP") {
      throw error;
    }
    if (await exists(to)) throw new Deno.errors.AlreadyExists(to);
    await Deno.rename(from, to);
  }
}
