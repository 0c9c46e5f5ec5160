/**
 * Reads a Proxmox VM config (`qemu-server.conf`), untrusted bytes, into its
 * main section's entries, its `#qmdump#map` lines and the names of the other
 * sections. Structure only: what each value means is decided in plan.ts.
 */
import { ProxmoxConfigError } from "./errors.ts";
import {
  PVE_LINE_RE,
  PVE_MAP_RE,
  PVE_OPTION_KEY_RE,
  PVE_SECTION_RE,
} from "./format.ts";

export interface PveEntry {
  key: string;
  value: string;
  /** 1-based line number. */
  line: number;
}

/** `#qmdump#map:<virtdev>:<devname>:<storeid>:<format>:` */
export interface PveMapLine {
  virtdev: string;
  devname: string;
  storeid: string;
  format: string;
  line: number;
}

export interface PveConfig {
  entries: Map<string, PveEntry>;
  maps: PveMapLine[];
  /** Names of the sections after the main one (snapshots, `PENDING`). */
  sections: string[];
}

/** A config larger than this is not a VM config. */
export const PVE_CONFIG_MAX_BYTES = 1024 * 1024;

/**
 * Parses the config. Refuses what Proxmox itself would not write: bytes that
 * are not UTF-8, control characters (CR included), lines that are neither
 * `key: value`, a comment nor a section header, and duplicate keys.
 */
export function parsePveConfig(bytes: Uint8Array): PveConfig {
  if (bytes.length > PVE_CONFIG_MAX_BYTES) {
    throw new ProxmoxConfigError(
      `Cannot read qemu-server.conf: ${bytes.length} bytes is too large for a VM config`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (error) {
    throw new ProxmoxConfigError(
      "Cannot read qemu-server.conf: it is not UTF-8 text",
      {},
      { cause: error },
    );
  }
  const config: PveConfig = { entries: new Map(), maps: [], sections: [] };
  const lines = text.split("\n");
  let main = true;
  for (const [i, raw] of lines.entries()) {
    const line = i + 1;
    // deno-lint-ignore no-control-regex
    if (/[\x00-\x08\x0a-\x1f\x7f]/.test(raw)) {
      throw new ProxmoxConfigError(
        `Cannot read qemu-server.conf: line ${line} holds a control character`,
        { line },
      );
    }
    if (/^\s*$/.test(raw)) continue;
    const section = PVE_SECTION_RE.exec(raw);
    if (section) {
      main = false;
      config.sections.push(section[1]!);
      continue;
    }
    if (!main) continue;
    if (raw.startsWith("#")) {
      const m = PVE_MAP_RE.exec(raw);
      if (m) {
        config.maps.push({
          virtdev: m[1]!,
          devname: m[2]!,
          storeid: m[3]!,
          format: m[4]!,
          line,
        });
      }
      continue; // the VM's description, or a vzdump comment
    }
    const kv = PVE_LINE_RE.exec(raw);
    if (!kv) {
      throw new ProxmoxConfigError(
        `Cannot read qemu-server.conf: line ${line} is not "key: value"`,
        { line },
      );
    }
    const key = kv[1]!;
    if (config.entries.has(key)) {
      throw new ProxmoxConfigError(
        `Cannot read qemu-server.conf: key ${key} appears twice (lines ${
          config.entries.get(key)!.line
        } and ${line})`,
        { line, key },
      );
    }
    config.entries.set(key, { key, value: kv[2]!, line });
  }
  return config;
}

/**
 * Splits a property string (`local:vm-1-disk-0,size=4G,iothread=1`) into
 * its options; a leading value without `=` is stored under `defaultKey`.
 */
export function parsePropertyString(
  entry: PveEntry,
  defaultKey: string | null,
): Map<string, string> {
  const options = new Map<string, string>();
  for (const [i, part] of entry.value.split(",").entries()) {
    const eq = part.indexOf("=");
    let key: string;
    let value: string;
    if (eq < 0 && i === 0 && defaultKey !== null) {
      key = defaultKey;
      value = part;
    } else if (eq > 0) {
      key = part.slice(0, eq);
      value = part.slice(eq + 1);
    } else {
      throw new ProxmoxConfigError(
        `Cannot read qemu-server.conf: ${entry.key} (line ${entry.line}) has an option without "name="`,
        { line: entry.line, key: entry.key },
      );
    }
    if (!PVE_OPTION_KEY_RE.test(key) || options.has(key)) {
      throw new ProxmoxConfigError(
        `Cannot read qemu-server.conf: ${entry.key} (line ${entry.line}) has ${
          options.has(key) ? "a repeated" : "an invalid"
        } option name`,
        { line: entry.line, key: entry.key },
      );
    }
    options.set(key, value);
  }
  return options;
}
