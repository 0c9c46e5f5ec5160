/**
 * Proxmox's `ostype` from the guest agent's `guest-get-osinfo` answer (QMP
 * cannot tell it). Pure, fed the answer's JSON value, which the guest
 * controls: only a value of the table in format.ts ever comes out.
 *
 * What qemu-ga reports (qga/commands-posix.c, commands-win32.c):
 * - POSIX: `kernel-release`, `kernel-version`, `machine` from uname(2), the
 *   rest from os-release (`id`, `version-id`, ... each optional). Linux's
 *   `uname -v` always starts with "#" ("#1 SMP PREEMPT_DYNAMIC ...").
 * - Windows: `id` "mswindows", `kernel-version` "MAJOR.MINOR",
 *   `kernel-release` the build number, `variant-id` "client" or "server",
 *   `version-id` from a table ("10", "11", "2019", "2012r2", ...; "N/A"
 *   when unknown, and empty for Windows 7 through a typo in that table), so
 *   the kernel numbers decide and `version-id` is the fallback.
 */
import type { PveOstype } from "./format.ts";
import { printable } from "../text/escape.ts";

/** The fields of GuestOSInfo vmabak reads; every one optional. */
export interface GuestOsInfo {
  id?: string;
  "kernel-release"?: string;
  "kernel-version"?: string;
  "version-id"?: string;
  "variant-id"?: string;
}

export type OstypeAnswer =
  | { ostype: PveOstype; note: null }
  | { ostype: null; note: string };

/** Windows builds at which a 10.0 kernel becomes the next `ostype` (qemu-ga's own thresholds). */
const WIN11_CLIENT_BUILD = 22000;
const WIN2022_SERVER_BUILD = 20344;

/** Windows NT major.minor -> ostype, for clients and servers. */
const WINDOWS_NT: Record<string, { client: PveOstype; server: PveOstype }> = {
  "5.0": { client: "w2k", server: "w2k" },
  "5.1": { client: "wxp", server: "wxp" },
  "5.2": { client: "wxp", server: "w2k3" }, // XP x64 / Server 2003 (R2)
  "6.0": { client: "wvista", server: "w2k8" },
  "6.1": { client: "win7", server: "win7" }, // 7 / 2008 R2
  "6.2": { client: "win8", server: "win8" }, // 8 / 2012
  "6.3": { client: "win8", server: "win8" }, // 8.1 / 2012 R2
};

/** qemu-ga's Windows `version-id` values -> ostype. */
const WINDOWS_VERSION_ID = new Map<string, PveOstype>(Object.entries({
  "2000": "w2k",
  "xp": "wxp",
  "2003": "w2k3",
  "vista": "wvista",
  "2008": "w2k8",
  "7": "win7",
  "2008r2": "win7",
  "8": "win8",
  "8.1": "win8",
  "2012": "win8",
  "2012r2": "win8",
  "10": "win10",
  "2016": "win10",
  "2019": "win10",
  "11": "win11",
  "2022": "win11",
  "2025": "win11",
}));

/** os-release ids of Solaris kernels. */
const SOLARIS_IDS = new Set([
  "solaris",
  "opensolaris",
  "illumos",
  "openindiana",
  "omnios",
  "smartos",
  "tribblix",
]);
/** os-release ids of other POSIX kernels qemu-ga runs on: Proxmox's "other". */
const OTHER_POSIX_IDS = new Set([
  "freebsd",
  "netbsd",
  "openbsd",
  "dragonfly",
  "hardenedbsd",
  "midnightbsd",
  "ghostbsd",
]);

/** `answer`'s string field `key`, or "" when absent or not a string. */
function field(answer: Record<string, unknown>, key: keyof GuestOsInfo) {
  const v = answer[key];
  return typeof v === "string" ? v : "";
}

function left(reason: string): OstypeAnswer {
  return { ostype: null, note: `ostype: ${reason}, left out` };
}

function found(ostype: PveOstype): OstypeAnswer {
  return { ostype, note: null };
}

/** The ostype `guest-get-osinfo`'s `answer` describes, or why there is none. */
export function ostypeFromOsInfo(answer: unknown): OstypeAnswer {
  if (typeof answer !== "object" || answer === null || Array.isArray(answer)) {
    return left("the guest agent's OS info is not an object");
  }
  const info = answer as Record<string, unknown>;
  const rawId = field(info, "id");
  const id = rawId.toLowerCase();
  const release = field(info, "kernel-release");
  const version = field(info, "kernel-version");
  if (id === "mswindows") return windows(info);
  if (version.startsWith("#")) return linux(release);
  if (SOLARIS_IDS.has(id)) return found("solaris");
  if (OTHER_POSIX_IDS.has(id)) return found("other");
  return left(
    `the guest agent names an OS vmabak does not know (id "${
      printable(rawId, 40)
    }", kernel "${printable(release, 40)}")`,
  );
}

function linux(release: string): OstypeAnswer {
  const m = /^(\d{1,4})\.(\d{1,4})/.exec(release);
  if (m === null) {
    return left(
      `Linux kernel release "${printable(release, 40)}" is not a version`,
    );
  }
  const [major, minor] = [Number(m[1]), Number(m[2])];
  if (major > 2 || (major === 2 && minor >= 6)) return found("l26");
  if (major === 2 && minor === 4) return found("l24");
  return left(`Linux ${major}.${minor} has no Proxmox ostype`);
}

function windows(info: Record<string, unknown>): OstypeAnswer {
  const server = field(info, "variant-id") === "server";
  const nt = /^(\d{1,3})\.(\d{1,3})$/.exec(field(info, "kernel-version"));
  const build = /^\d{1,9}$/.test(field(info, "kernel-release"))
    ? Number(field(info, "kernel-release"))
    : null;
  if (nt !== null) {
    const key = `${Number(nt[1])}.${Number(nt[2])}`;
    if (key === "10.0" && build !== null) {
      const next = server ? WIN2022_SERVER_BUILD : WIN11_CLIENT_BUILD;
      return found(build >= next ? "win11" : "win10");
    }
    const known = Object.hasOwn(WINDOWS_NT, key) ? WINDOWS_NT[key] : undefined;
    if (known !== undefined) return found(server ? known.server : known.client);
  }
  const byName = WINDOWS_VERSION_ID.get(
    field(info, "version-id").toLowerCase(),
  );
  if (byName !== undefined) return found(byName);
  return left(
    `Windows ${printable(field(info, "kernel-version"), 20)} build ${
      printable(field(info, "kernel-release"), 20)
    } (${
      printable(field(info, "version-id"), 20)
    }) has no known Proxmox ostype`,
  );
}
