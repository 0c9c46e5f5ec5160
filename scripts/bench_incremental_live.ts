/** The live half of bench_incremental.ts (needs the pull engine). */
export async function benchLiveIncremental(
  _size: number,
  _share: number,
  _runs: number,
): Promise<void> {
}
