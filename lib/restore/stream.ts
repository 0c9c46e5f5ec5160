/**
 * `block-stream` of every overlay, all at once: QEMU copies what the
 * overlays do not hold yet from their backing exports into them, then drops
 * the backing file from each overlay's header. Progress from
 * `query-block-jobs`; completion and errors from QMP events.
 */
import type { QmpClient, QmpEvent } from "../qmp/client.ts";
import { checkQemuId, printable } from "../text/escape.ts";

/** A stream job failed, was cancelled, or could not be started. */
export class StreamError extends Error {
  override name = "StreamError";
}

export interface StreamTarget {
  /** The archive device, for messages. */
  device: string;
  /** The overlay's node name. */
  node: string;
}

/** Bytes copied so far of every job together (a finished job counts whole). */
export interface StreamProgress {
  done: number;
  total: number;
  /** Jobs finished, of `jobs`. */
  finished: number;
  jobs: number;
}

interface BlockJobInfo {
  device: string;
  len: number;
  offset: number;
}

const JOB_PREFIX = "vmabak-stream";

/**
 * Streams every target and resolves once all completed. On an error of any
 * job, or when `signal` aborts, the jobs still running are cancelled
 * (bounded wait for QEMU to confirm) and the error is thrown.
 */
export async function streamAll(
  qmp: QmpClient,
  targets: StreamTarget[],
  options: {
    signal: AbortSignal;
    onProgress: (p: StreamProgress) => void;
    intervalMs?: number;
    /** Bytes per second per job (QEMU's `speed`). */
    speed?: number;
  },
): Promise<void> {
  const ids = targets.map((_, i) => `${JOB_PREFIX}${i}`);
  const sizes = new Map<string, number>();
  const ended = new Map<string, string | null>(); // job id -> error, or null
  let wake: () => void = () => {};
  const off = qmp.onEvent((e: QmpEvent) => {
    const id = String(e.data.device ?? "");
    if (!ids.includes(id)) return;
    if (e.event === "BLOCK_JOB_COMPLETED") {
      sizes.set(id, Number(e.data.len ?? 0));
      ended.set(id, e.data.error === undefined ? null : String(e.data.error));
    } else if (e.event === "BLOCK_JOB_CANCELLED") {
      ended.set(id, "cancelled");
    } else return;
    wake();
  });
  const onAbort = () => wake();
  options.signal.addEventListener("abort", onAbort);
  const started: string[] = [];
  try {
    for (const [i, t] of targets.entries()) {
      options.signal.throwIfAborted();
      try {
        await qmp.execute("block-stream", {
          "job-id": ids[i],
          device: t.node,
          ...(options.speed !== undefined ? { speed: options.speed } : {}),
        });
      } catch (error) {
        throw new StreamError(
          `Cannot stream ${printable(t.device, 80)}: ${
            (error as Error).message
          }`,
          { cause: error },
        );
      }
      started.push(ids[i]!);
    }
    for (;;) {
      const failed = ids.findIndex((id) => (ended.get(id) ?? null) !== null);
      if (failed !== -1) {
        throw new StreamError(
          `Cannot stream ${printable(targets[failed]!.device, 80)}: ${
            printable(ended.get(ids[failed]!)!, 200)
          }`,
        );
      }
      options.signal.throwIfAborted();
      const jobs = await qmp.execute<BlockJobInfo[]>("query-block-jobs");
      let done = 0;
      let total = 0;
      for (const id of ids) {
        const j = jobs.find((x) => x.device === id);
        if (ended.has(id)) {
          done += sizes.get(id)!;
          total += sizes.get(id)!;
        } else if (j !== undefined) {
          done += j.offset;
          total += j.len;
        }
      }
      options.onProgress({
        done,
        total,
        finished: ended.size,
        jobs: ids.length,
      });
      if (ended.size === ids.length) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, options.intervalMs ?? 1000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } catch (error) {
    await cancelRunning(qmp, started.filter((id) => !ended.has(id)), ended);
    throw error;
  } finally {
    off();
    options.signal.removeEventListener("abort", onAbort);
  }
}

/** Cancels jobs and waits (at most 30 s) until QEMU says each one ended. */
async function cancelRunning(
  qmp: QmpClient,
  ids: string[],
  ended: Map<string, string | null>,
): Promise<void> {
  for (const id of ids) {
    await qmp.execute(
      "block-job-cancel",
      { device: id, force: true },
      { timeoutMs: 10_000 },
    ).catch(() => {});
  }
  const deadline = Date.now() + 30_000;
  while (ids.some((id) => !ended.has(id)) && Date.now() < deadline) {
    if (qmp.error !== undefined) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * The overlays' nodes that still have a backing node in the running VM
 * (after a complete stream: none).
 */
export async function nodesWithBacking(
  qmp: QmpClient,
  nodes: string[],
): Promise<string[]> {
  const all = await qmp.execute<
    { "node-name": string; backing_file?: string }[]
  >("query-named-block-nodes", { flat: true });
  return nodes.filter((n) => {
    const node = all.find((x) => x["node-name"] === n);
    return node === undefined || node.backing_file !== undefined;
  });
}

/** One progress line: `streamed 12.0 of 64.0 MiB (18%), 0 of 2 disks done`. */
export function progressLine(p: StreamProgress): string {
  const mib = (n: number) => (n / (1024 * 1024)).toFixed(1);
  const pct = p.total === 0 ? 0 : Math.floor((p.done / p.total) * 100);
  return `streamed ${mib(p.done)} of ${
    mib(p.total)
  } MiB (${pct}%), ${p.finished} of ${p.jobs} disks done`;
}

/**
 * Flushes each node to its file: QEMU keeps qcow2 metadata (the L2 tables
 * that say where streamed clusters are) in memory until a flush, and the
 * overlay no longer has a backing file to fall back on. Through HMP's
 * `qemu-io NODE "flush"` (QMP has no flush command), which does not pause
 * the guest. Node names are QEMU ids (checked: no space, quote or comma
 * can reach the monitor's command line).
 */
export async function flushNodes(
  qmp: QmpClient,
  nodes: string[],
): Promise<void> {
  for (const node of nodes) {
    const out = await qmp.execute<string>("human-monitor-command", {
      "command-line": `qemu-io ${checkQemuId(node, "node name")} "flush"`,
    });
    if (out.trim() !== "") {
      throw new StreamError(
        `Cannot flush ${printable(node, 80)}: ${printable(out.trim(), 200)}`,
      );
    }
  }
}
