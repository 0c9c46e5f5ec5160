import { VmaError } from "./errors.ts";

/**
 * Checks that an archive's config or device name can be used as a file name
 * inside a target directory: no `/`, `\`, NUL, control characters, `.`, `..`
 * or empty names (Proxmox's reader uses names verbatim; ours must not).
 */
export function checkSafeName(name: string, what: string): string {
  if (
    name === "" || name === "." || name === ".." || /[\/\\\0]/.test(name) ||
    // deno-lint-ignore no-control-regex
    /[\x00-\x1f\x7f]/.test(name) || name.length > 200
  ) {
    throw new VmaError(
      `Cannot use ${what} name ${JSON.stringify(name)} as a file name: unsafe`,
    );
  }
  return name;
}
