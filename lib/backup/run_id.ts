/**
 * Names of what one vmabak run adds to QEMU and to the fleecing directory:
 * `vmabak-p<pid>s<start>-<what>`. The pid and the process's start time (in
 * clock ticks since boot, from /proc) let a later run tell whether the run
 * that made a leftover is still alive, even after the pid was reused.
 */

/** The prefix of every name vmabak gives to QEMU objects and files. */
export const NAME_PREFIX = "vmabak-";

export interface RunId {
  pid: number;
  /** Start time of the process (field 22 of /proc/PID/stat), 0 when unknown. */
  start: number;
  /** `vmabak-p<pid>s<start>` */
  tag: string;
}

const RUN_TAG = /^vmabak-p(\d+)s(\d+)-/;

/** The run id of this process. */
export function currentRun(): RunId {
  const pid = Deno.pid;
  const start = processStart(pid) ?? 0;
  return { pid, start, tag: `${NAME_PREFIX}p${pid}s${start}` };
}

/** `vmabak-p1s2-fleece0` -> the run that named it, or undefined for other names. */
export function runOf(name: string): RunId | undefined {
  const m = RUN_TAG.exec(name);
  if (m === null) return undefined;
  const pid = Number(m[1]);
  const start = Number(m[2]);
  return { pid, start, tag: `${NAME_PREFIX}p${pid}s${start}` };
}

/** Whether the process that made `run` still exists (same pid, same start time). */
export function isRunAlive(run: RunId): boolean {
  if (run.pid === Deno.pid) return true;
  const start = processStart(run.pid);
  return start !== undefined && (run.start === 0 || start === run.start);
}

function processStart(pid: number): number | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The command name (field 2) may hold spaces and parentheses: split after its last ")".
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const start = Number(fields[19]);
    return Number.isSafeInteger(start) ? start : undefined;
  } catch {
    return undefined;
  }
}
