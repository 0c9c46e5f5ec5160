/** Checked values of a Proxmox config's entries. */
import type { PveEntry } from "./config.ts";
import { ProxmoxConfigError } from "./errors.ts";

export function intValue(entry: PveEntry, min: number, max: number): number {
  return checkInt(entry, entry.value, min, max);
}

export function checkInt(
  entry: PveEntry,
  value: string,
  min: number,
  max: number,
): number {
  const n = /^\d{1,10}$/.test(value) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) {
    throw new ProxmoxConfigError(
      `Cannot use qemu-server.conf: ${entry.key} (line ${entry.line}) must be an integer from ${min} to ${max}`,
      { line: entry.line, key: entry.key },
    );
  }
  return n;
}

export function invalid(entry: PveEntry, what: string): ProxmoxConfigError {
  return new ProxmoxConfigError(
    `Cannot use qemu-server.conf: ${entry.key} (line ${entry.line}) ${what}`,
    { line: entry.line, key: entry.key },
  );
}
