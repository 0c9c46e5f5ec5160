/**
 * `InFlight` counts tasks that run at once and lets a caller wait until
 * fewer run, without a `Set` of their promises.
 *
 * Why not a Set: V8 gives a Map's or Set's table, each time it grows or
 * shrinks, the generation of the table it replaces. Once a full GC has
 * moved a long-lived Set's table to the old generation, every add and
 * delete on a hot path (one per NBD request) leaves an old-generation
 * table behind that only the next full GC frees, and a backup's heap grew
 * with the disk's size (measured: `--zstd` backups, whose compression
 * buffers start a full GC early on).
 */
export class InFlight {
  #count = 0;
  /** Callers waiting until fewer than `below` tasks run (few: one per waiting loop). */
  #waiters: { below: number; resolve: () => void }[] = [];

  /** Tasks running now. */
  get size(): number {
    return this.#count;
  }

  /** Counts `task` until it settles (its outcome is the caller's to handle). */
  track(task: Promise<unknown>): void {
    this.#count++;
    task.then(this.#settled, this.#settled);
  }

  /** Resolves once fewer than `below` tasks run (at once when they already do). */
  waitBelow(below: number): Promise<void> {
    if (this.#count < below) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ below, resolve }));
  }

  /** Resolves once no task runs. */
  idle(): Promise<void> {
    return this.waitBelow(1);
  }

  #settled = (): void => {
    this.#count--;
    if (this.#waiters.length === 0) return;
    const still = [];
    for (const w of this.#waiters) {
      if (this.#count < w.below) w.resolve();
      else still.push(w);
    }
    this.#waiters = still;
  };
}
