/** Any NBD failure: protocol violations, refused options, broken connections. */
export class NbdError extends Error {
  override name = "NbdError";
}
