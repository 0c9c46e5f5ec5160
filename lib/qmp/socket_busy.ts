/**
 * Is a QEMU QMP socket already serving a client? QEMU serves one client per
 * QMP socket and leaves the next ones waiting in the listen backlog, silent.
 * Linux lists every unix socket in /proc/net/unix with the path it is bound
 * to; sockets accepted from (or queued on) a listener carry the listener's
 * path, so a connected entry with the QMP socket's path means another
 * client holds it.
 */
import { resolve } from "node:path";

/** `__SO_ACCEPTCON`: the listening socket itself. */
const SO_ACCEPTCON = 0x10000;
/** `SS_CONNECTED`: a connection the server accepted (queued ones show `SS_CONNECTING`). */
const SS_CONNECTED = 3;
/**
 * An accepted connection whose client is still there holds 3 references;
 * once the client hung up it holds 2 until the server notices and closes it
 * (a QEMU whose main loop stalls notices late: not "in use" then).
 */
const LIVE_REFCOUNT = 3;

/** Counts the connections the server bound to `path` has accepted, from /proc/net/unix text. */
export function countConnections(procNetUnix: string, path: string): number {
  const wanted = resolve(path);
  let count = 0;
  for (const line of procNetUnix.split("\n").slice(1)) {
    // Num RefCount Protocol Flags Type St Inode Path
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8) continue;
    const refs = parseInt(fields[1]!, 16);
    const flags = parseInt(fields[3]!, 16);
    const state = parseInt(fields[5]!, 16);
    const bound = fields.slice(7).join(" ");
    const same = bound === wanted ||
      (!bound.startsWith("/") && !bound.startsWith("@") &&
        wanted.endsWith(`/${bound}`));
    if (!same || flags & SO_ACCEPTCON) continue;
    if (state === SS_CONNECTED && refs >= LIVE_REFCOUNT) count++;
  }
  return count;
}

/** Whether a client is connected to the unix socket at `path` (false when it cannot be told). */
export async function socketInUse(path: string): Promise<boolean> {
  try {
    return countConnections(
      await Deno.readTextFile("/proc/net/unix"),
      path,
    ) > 0;
  } catch {
    return false;
  }
}
