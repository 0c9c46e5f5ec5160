/** A chain of archives that does not fit together, or a bad incremental record. */
export class ChainError extends Error {
  override name = "ChainError";
}
