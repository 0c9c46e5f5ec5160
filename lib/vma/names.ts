import { VmaError } from "./errors.ts";
import { fitsFileName, NAME_MAX } from "../io/safe_file.ts";
import { printable } from "../text/escape.ts";

/**
 * Checks that an archive's config or device name can be used as a file name
 * inside a target directory: no `/`, `\`, NUL, control characters, `.`, `..`
 * or empty names (Proxmox's reader uses names verbatim; ours must not).
 */
export function checkSafeName(name: string, what: string): string {
  if (
    name === "" || name === "." || name === ".." || /[\/\\\0]/.test(name) ||
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f]/.test(name)
  ) {
    throw new VmaError(
      `Cannot use ${what} name "${printable(name, 80)}" as a file name: unsafe`,
    );
  }
  return name;
}

/** Checks that a file name fits the target file system's limit, in words. */
export function checkFileNameLength(file: string, what: string): string {
  if (!fitsFileName(file)) {
    throw new VmaError(
      `Cannot extract ${what} "${printable(file, 60)}": its file name is ${
        new TextEncoder().encode(file).length
      } bytes, more than file systems allow (${NAME_MAX})`,
    );
  }
  return file;
}
