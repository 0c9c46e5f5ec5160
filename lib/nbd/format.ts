/**
 * Every wire constant of the NBD protocol that vmabak uses, with the names
 * of the protocol document (`doc/proto.md` of the NBD project). Integers on
 * the wire are big-endian.
 */

/** "NBDMAGIC" */
export const NBDMAGIC = 0x4e42444d41474943n;
/** "IHAVEOPT" */
export const IHAVEOPT = 0x49484156454f5054n;
/** Option reply magic. */
export const NBD_REP_MAGIC = 0x3e889045565a9n;
export const NBD_REQUEST_MAGIC = 0x25609513;
export const NBD_SIMPLE_REPLY_MAGIC = 0x67446698;

/** Handshake flags (server) and client flags. */
export const NBD_FLAG_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_NO_ZEROES = 1 << 1;
export const NBD_FLAG_C_FIXED_NEWSTYLE = 1 << 0;
export const NBD_FLAG_C_NO_ZEROES = 1 << 1;

/** Transmission flags. */
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

/** Options. */
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

/** Option reply types. */
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

/** Information types of NBD_OPT_INFO / NBD_OPT_GO. */
export const NBD_INFO = {
  EXPORT: 0,
  NAME: 1,
  DESCRIPTION: 2,
  BLOCK_SIZE: 3,
} as const;

/** Commands. */
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

/** Command flags. */
export const NBD_CMD_FLAG = {
  FUA: 1 << 0,
  NO_HOLE: 1 << 1,
  DF: 1 << 2,
  REQ_ONE: 1 << 3,
  FAST_ZERO: 1 << 4,
} as const;

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
  simpleReply: 4 + 4 + 8,
  /** Zero padding after NBD_OPT_EXPORT_NAME's reply unless NO_ZEROES. */
  exportNamePadding: 124,
} as const;

/** Block sizes vmabak advertises: QEMU's backup then uses 64 KiB clusters. */
export const BLOCK_SIZE_MIN = 512;
export const BLOCK_SIZE_PREFERRED = 65536;
export const BLOCK_SIZE_MAX = 32 * 1024 * 1024;
/** Longest option payload accepted. */
export const MAX_OPTION_LENGTH = 64 * 1024;
