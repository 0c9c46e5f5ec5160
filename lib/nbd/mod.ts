/**
 * NBD for vmabak: one codec (format.ts, handshake.ts, transmission.ts)
 * shared by the server and the client.
 */
export {
  type BlockExtent,
  NbdClient,
  type NbdClientOptions,
} from "./client.ts";
export { NbdError, NbdOptionError, NbdRequestError } from "./errors.ts";
export {
  BASE_ALLOCATION,
  NBD_CMD,
  NBD_E,
  NBD_FLAG,
  NBD_STATE_DIRTY,
  NBD_STATE_HOLE,
  NBD_STATE_ZERO,
} from "./format.ts";
export {
  type NbdExport,
  type NbdExportHandler,
  type NbdListenAddress,
  NbdServer,
  type NbdServerOptions,
} from "./server.ts";
