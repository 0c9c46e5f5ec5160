export * from "./format.ts";
export { VmaError } from "./errors.ts";
export {
  decodeHeader,
  encodeHeader,
  type VmaConfig,
  type VmaDevice,
  type VmaHeader,
} from "./header.ts";
export {
  type MissingCluster,
  type VmaClusterEvent,
  VmaReader,
} from "./reader.ts";
export { VmaWriter, type VmaWriterOptions } from "./writer.ts";
