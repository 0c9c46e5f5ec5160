/** Any QMP failure. */
export class QmpError extends Error {
  override name = "QmpError";
}

/** QEMU answered a command with `{"error": {"class", "desc"}}`. */
export class QmpCommandError extends QmpError {
  override name = "QmpCommandError";
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly desc: string,
  ) {
    super(`Cannot run QMP command ${command}: ${desc}`);
  }
}

/** The connection failed, closed, or carried something that is not QMP. */
export class QmpConnectionError extends QmpError {
  override name = "QmpConnectionError";
}

/** Another client holds the QMP socket (QEMU serves one at a time). */
export class QmpBusyError extends QmpConnectionError {
  override name = "QmpBusyError";
  constructor(readonly path: string, options?: ErrorOptions) {
    super(
      `Cannot connect to QMP socket ${path}: it is in use by another client (QEMU serves one client per QMP socket)`,
      options,
    );
  }
}

/** QEMU did not answer a command in time; the connection is then closed (its state is unknown). */
export class QmpTimeoutError extends QmpConnectionError {
  override name = "QmpTimeoutError";
  constructor(readonly command: string, readonly timeoutMs: number) {
    super(
      `Cannot run QMP command ${command}: QEMU did not answer within ${
        Math.round(timeoutMs / 1000)
      } s`,
    );
  }
}
