/**
 * Every wire constant of the NBD protocol that vmabak uses, with the names
 * of the protocol document (`doc/proto.md` of the NBD project): a table
 * `NBD_CMD.BLOCK_STATUS` is the spec's `NBD_CMD_BLOCK_STATUS`, and so on.
 * Integers on the wire are big-endian. Shared by the server and the client.
 */

/** "NBDMAGIC" */
export const NBDMAGIC = 0x4e42444d41474943n;
/** "IHAVEOPT" */
export const IHAVEOPT = 0x49484156454f5054n;
/** Option reply magic. */
export const NBD_REP_MAGIC = 0x3e889045565a9n;
export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;
export const NBD_STRUCTURED_REPLY_MAGIC = 0x668e33ef;

/** Handshake flags (server) and client flags. */
export const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_NO_ZEROES = 1 << 1;
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_C_NO_ZEROES = 1 << 1;

/** Transmission flags (`NBD_FLAG_*`). */
export const NBD_FLAG = {
  HAS_FLAGS: 1 << 0,
  READ_ONLY: 1 << 1,
  SEND_FLUSH: 1 << 2,
  SEND_FUA: 1 << 3,
  ROTATIONAL: 1 << 4,
  SEND_TRIM: 1 << 5,
  SEND_WRITE_ZEROES: 1 << 6,
  SEND_DF: 1 << 7,
  CAN_MULTI_CONN: 1 << 8,
  SEND_RESIZE: 1 << 9,
  SEND_CACHE: 1 << 10,
  SEND_FAST_ZERO: 1 << 11,
} as const;

/** Options (`NBD_OPT_*`). */
export const NBD_OPT = {
  EXPORT_NAME: 1,
  ABORT: 2,
  LIST: 3,
  PEEK_EXPORT: 4,
  STARTTLS: 5,
  INFO: 6,
  GO: 7,
  STRUCTURED_REPLY: 8,
  LIST_META_CONTEXT: 9,
  SET_META_CONTEXT: 10,
} as const;

/** Option reply types (`NBD_REP_*`); the error bit is bit 31. */
export const NBD_REP = {
  ACK: 1,
  SERVER: 2,
  INFO: 3,
  META_CONTEXT: 4,
  ERR_UNSUP: 0x80000001,
  ERR_POLICY: 0x80000002,
  ERR_INVALID: 0x80000003,
  ERR_PLATFORM: 0x80000004,
  ERR_TLS_REQD: 0x80000005,
  ERR_UNKNOWN: 0x80000006,
  ERR_SHUTDOWN: 0x80000007,
  ERR_BLOCK_SIZE_REQD: 0x80000008,
  ERR_TOO_BIG: 0x80000009,
} as const;
export const NBD_REP_FLAG_ERROR = 0x80000000;

/** Information types of NBD_OPT_INFO / NBD_OPT_GO (`NBD_INFO_*`). */
export const NBD_INFO = {
  EXPORT: 0,
  NAME: 1,
  DESCRIPTION: 2,
  BLOCK_SIZE: 3,
} as const;

/** Commands (`NBD_CMD_*`). */
export const NBD_CMD = {
  READ: 0,
  WRITE: 1,
  DISC: 2,
  FLUSH: 3,
  TRIM: 4,
  CACHE: 5,
  WRITE_ZEROES: 6,
  BLOCK_STATUS: 7,
  RESIZE: 8,
} as const;

/** Command flags (`NBD_CMD_FLAG_*`). */
export const NBD_CMD_FLAG = {
  FUA: 1 << 0,
  NO_HOLE: 1 << 1,
  DF: 1 << 2,
  REQ_ONE: 1 << 3,
  FAST_ZERO: 1 << 4,
} as const;

/** Structured reply chunk types (`NBD_REPLY_TYPE_*`); bit 15 marks errors. */
export const NBD_REPLY_TYPE = {
  NONE: 0,
  OFFSET_DATA: 1,
  OFFSET_HOLE: 2,
  BLOCK_STATUS: 5,
  ERROR: (1 << 15) + 1,
  ERROR_OFFSET: (1 << 15) + 2,
} as const;
export const NBD_REPLY_TYPE_ERROR_BIT = 1 << 15;
/** Structured reply flag: the last chunk of a reply. */
export const NBD_REPLY_FLAG_DONE = 1 << 0;

/** `base:allocation` states. */
export const NBD_STATE_HOLE = 1 << 0;
export const NBD_STATE_ZERO = 1 << 1;
/** `qemu:dirty-bitmap:NAME` state: the extent is dirty. */
export const NBD_STATE_DIRTY = 1 << 0;
/** The metadata context every server with block status offers. */
export const BASE_ALLOCATION = "base:allocation";

/** Error values in replies (Linux errno numbers, as the protocol fixes them). */
export const NBD_E = {
  PERM: 1,
  IO: 5,
  NOMEM: 12,
  INVAL: 22,
  NOSPC: 28,
  OVERFLOW: 75,
  NOTSUP: 95,
  SHUTDOWN: 108,
} as const;

/** strerror() of each NBD error value. */
export const NBD_E_DESCRIPTION: Readonly<Record<number, string>> = {
  [NBD_E.PERM]: "Operation not permitted",
  [NBD_E.IO]: "Input/output error",
  [NBD_E.NOMEM]: "Cannot allocate memory",
  [NBD_E.INVAL]: "Invalid argument",
  [NBD_E.NOSPC]: "No space left on device",
  [NBD_E.OVERFLOW]: "Value too large for defined data type",
  [NBD_E.NOTSUP]: "Operation not supported",
  [NBD_E.SHUTDOWN]: "Server shutting down",
};

/** Sizes of fixed structures. */
export const NBD_SIZE = {
  /** Server greeting: NBDMAGIC, IHAVEOPT, handshake flags. */
  greeting: 8 + 8 + 2,
  clientFlags: 4,
  /** Option header: IHAVEOPT, option, length. */
  optionHeader: 8 + 4 + 4,
  /** Option reply header: magic, option, type, length. */
  optionReplyHeader: 8 + 4 + 4 + 4,
  /** Request: magic, flags, type, cookie, offset, length. */
  request: 4 + 2 + 2 + 8 + 8 + 4,
  /** Simple reply: magic, error, cookie. */
  simpleReply: 4 + 4 + 8,
  /** Structured reply chunk header: magic, flags, type, cookie, length. */
  structuredReply: 4 + 2 + 2 + 8 + 4,
  /** Block status descriptor: length, status flags. */
  blockDescriptor: 4 + 4,
  /** Reply to NBD_OPT_EXPORT_NAME before the padding: size, flags. */
  exportNameReply: 8 + 2,
  /** Zero padding after NBD_OPT_EXPORT_NAME's reply unless NO_ZEROES. */
  exportNamePadding: 124,
} as const;

/** Limits without block size information (the spec's interoperable defaults). */
export const DEFAULT_BLOCK_SIZE = {
  minimum: 1,
  preferred: 4096,
  maximum: 32 * 1024 * 1024,
} as const;

/** Block sizes vmabak advertises: QEMU's backup then uses 64 KiB clusters. */
export const BLOCK_SIZE_MIN = 512;
export const BLOCK_SIZE_PREFERRED = 65536;
export const BLOCK_SIZE_MAX = 32 * 1024 * 1024;
/** Longest option payload accepted. */
export const MAX_OPTION_LENGTH = 64 * 1024;

/** "NBD_OPT_GO" for 7 and so on, for messages; the number when unknown. */
export function nbdName(
  table: Readonly<Record<string, number>>,
  prefix: string,
  value: number,
): string {
  for (const [k, v] of Object.entries(table)) {
    if (v === value) return `${prefix}${k}`;
  }
  return String(value);
}

/** "EINVAL" for 22 and so on. */
export function errnoName(errno: number): string {
  const name = nbdName(NBD_E, "E", errno);
  return name === String(errno) ? `error ${errno}` : name;
}
