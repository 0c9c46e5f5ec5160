/** Errors of the QEMU guest agent client. */
export class QgaError extends Error {
  override name = "QgaError";
  constructor(
    message: string,
    /** The command concerned, when there is one. */
    readonly command: string | null = null,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

/** The agent did not answer in time (it may still run the command). */
export class QgaTimeoutError extends QgaError {
  override name = "QgaTimeoutError";
  constructor(command: string, readonly timeoutMs: number) {
    super(
      `Cannot run guest agent command ${command}: no answer in ${
        timeoutMs / 1000
      } s`,
      command,
    );
  }
}

/** The agent answered with an error (`{"error": {"class", "desc"}}`). */
export class QgaCommandError extends QgaError {
  override name = "QgaCommandError";
  constructor(command: string, readonly errorClass: string, desc: string) {
    super(`Cannot run guest agent command ${command}: ${desc}`, command);
  }
}
