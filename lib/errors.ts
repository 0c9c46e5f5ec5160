/**
 * Errors shared by every command. Each protocol or format has its own error
 * tree beside its code (`VmaError`, `NbdError`, `QmpError`); this file holds
 * only what the CLI itself decides on.
 */

/** A command line that cannot be understood: `main.ts` exits with 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Work stopped on request (SIGINT, SIGTERM, or an aborted signal). */
export class CancelledError extends Error {
  override name = "CancelledError";
  constructor(
    message = "Cannot continue: cancelled by signal",
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
