/** Any problem with a VMA archive: bad input, broken rules, misuse of the writer. */
export class VmaError extends Error {
  override name = "VmaError";
}
