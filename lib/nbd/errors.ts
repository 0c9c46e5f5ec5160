import { errnoName, NBD_CMD, NBD_E_DESCRIPTION } from "./format.ts";

/** Any NBD failure: protocol violations, refused options, broken connections. */
export class NbdError extends Error {
  override name = "NbdError";
}

/** The server refused an option during the handshake. */
export class NbdOptionError extends NbdError {
  override name = "NbdOptionError";
  /** NBD_OPT_* value. */
  readonly option: number;
  /** NBD_REP_ERR_* value. */
  readonly reply: number;
  constructor(
    message: string,
    fields: { option: number; reply: number },
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.option = fields.option;
    this.reply = fields.reply;
  }
}

const VERB: Record<number, string> = {
  [NBD_CMD.READ]: "read",
  [NBD_CMD.WRITE]: "write",
  [NBD_CMD.TRIM]: "trim",
  [NBD_CMD.WRITE_ZEROES]: "write zeroes of",
  [NBD_CMD.BLOCK_STATUS]: "get block status of",
  [NBD_CMD.CACHE]: "cache",
};

/**
 * The server answered a request with an error. Message:
 * `Cannot read 65536 bytes at offset N from NBD export "x": EINVAL (Invalid argument)`;
 * the parentheses hold the server's own message when it sent one.
 */
export class NbdRequestError extends NbdError {
  override name = "NbdRequestError";
  /** The NBD error value (Linux errno numbers: NBD_E.INVAL is 22). */
  readonly errno: number;
  /** NBD_CMD_* value. */
  readonly command: number;
  readonly offset: number;
  readonly length: number;
  readonly exportName: string;
  /** The text of a structured error chunk, "" when there was none. */
  readonly serverMessage: string;
  constructor(fields: {
    errno: number;
    command: number;
    offset: number;
    length: number;
    exportName: string;
    serverMessage?: string;
  }) {
    const { errno, command, offset, length, exportName } = fields;
    const serverMessage = fields.serverMessage ?? "";
    const detail = serverMessage || NBD_E_DESCRIPTION[errno] || "unknown";
    super(
      `${
        describeRequest(command, offset, length)
      } NBD export "${exportName}": ${errnoName(errno)} (${detail})`,
    );
    this.errno = errno;
    this.command = command;
    this.offset = offset;
    this.length = length;
    this.exportName = exportName;
    this.serverMessage = serverMessage;
  }
}

/** "Cannot read 512 bytes at offset 0 from" and so on. */
function describeRequest(
  command: number,
  offset: number,
  length: number,
): string {
  if (command === NBD_CMD.FLUSH) return "Cannot flush";
  const range = `${length} bytes at offset ${offset}`;
  const to = command === NBD_CMD.WRITE || command === NBD_CMD.TRIM ||
    command === NBD_CMD.WRITE_ZEROES;
  return `Cannot ${VERB[command] ?? `run command ${command} on`} ${range} ${
    to ? "to" : "from"
  }`;
}
