/**
 * How disk data gets from QEMU into the archive. The orchestrator calls the
 * stages in order; each registers the undo of what it changed on the
 * context's stack.
 *
 * - `push`: QEMU's backup jobs write every disk into vmabak's NBD server (no
 *   temporary storage; a slow output slows the guest's writes).
 * - `pull`: copy-before-write filters keep the instant in local fleecing
 *   images; vmabak reads it from QEMU's NBD server at its own pace.
 */
import type { Tracking } from "./tracking.ts";

export interface DataPath {
  readonly mode: "push" | "pull";
  /** Whether the instant needs the guest stopped (changes that no transaction covers). */
  readonly needsStop: boolean;
  /** What can be set up while the guest runs: servers, nodes, files. */
  prepare(): Promise<void>;
  /**
   * Fixes the instant of every disk (the guest is stopped when `needsStop`),
   * and `tracking`'s bitmaps at that same instant: push puts them in its
   * jobs' transaction (no stop), pull adds them within its stop.
   */
  snapshot(tracking?: Tracking): Promise<void>;
  /** Called once the instant is fixed and the guest may run again. */
  afterInstant(): Promise<void>;
  /** Stores every cluster of every disk into the archive. */
  copy(onProgress: () => void): Promise<void>;
  /** Bytes of disk copied so far, for progress. */
  readonly done: number;
}

export interface DataPathOptions {
  /** Bytes per second per disk; 0 or absent: unlimited (push only). */
  speed?: number;
  /** QEMU's copy workers per job (push only). */
  maxWorkers?: number;
  /**
   * Push: start the jobs nearly still and let them go in `afterInstant`, so
   * that nothing in flight to a slow consumer holds up the drain that
   * starting the RAM snapshot does (it would stretch the guest's pause).
   */
  holdJobs?: boolean;
}
