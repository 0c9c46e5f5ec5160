import {
  type ByteReader,
  EndOfStreamError,
  ExactReader,
} from "../io/read_exact.ts";
import { VmaError } from "./errors.ts";
import {
  ExtentChecker,
  type ExtentSlot,
  type MissingCluster,
} from "./extent_check.ts";
import {
  VMA_BLOCK_SIZE,
  VMA_CLUSTER_SIZE,
  VMA_EXTENT_HEADER_SIZE,
  VMA_HEADER,
} from "./format.ts";
import {
  type DecodedVmaHeader,
  decodeHeader,
  decodeHeaderSize,
  type VmaDevice,
} from "./header.ts";

export type { ExtentSlot, MissingCluster } from "./extent_check.ts";

export interface VmaClusterEvent {
  /** Index of the extent the cluster came in (0-based). */
  extent: number;
  device: VmaDevice;
  cluster: number;
  /** Bit j set: block j is stored; clear: block j is zeros. */
  mask: number;
  /** The whole cluster, zero blocks filled with zeros. Valid until the next event. */
  data: Uint8Array;
}

/** One checked extent: its slots and the stored blocks, in slot order. */
export interface VmaExtentEvent {
  extent: number;
  /** Archive offset of the extent header. */
  offset: number;
  slots: ExtentSlot[];
  /** `blockCount` × 4096 bytes. Valid until the next event. */
  data: Uint8Array;
}

/**
 * Reads a VMA archive from a stream and checks every rule of the format as
 * it goes (see `vma-format.md`, "Reader rules"). Errors are `VmaError`s
 * naming the extent, device and cluster.
 */
export class VmaReader {
  readonly header: DecodedVmaHeader;
  #input: ByteReader;
  #checker: ExtentChecker;
  #cluster = new Uint8Array(VMA_CLUSTER_SIZE);
  #ended = false;

  private constructor(input: ByteReader, header: DecodedVmaHeader) {
    this.#input = input;
    this.header = header;
    this.#checker = new ExtentChecker(header);
  }

  /** Reads and checks the header (of a stream, or any `ByteReader`). */
  static async open(
    source: ReadableStream<Uint8Array> | ByteReader,
  ): Promise<VmaReader> {
    const input = source instanceof ReadableStream
      ? new ExactReader(source)
      : source;
    try {
      const first = new Uint8Array(VMA_HEADER.headerSize + 4);
      await input.readExact(first.length, "VMA header", first);
      const size = decodeHeaderSize(first);
      const bytes = new Uint8Array(size);
      bytes.set(first);
      await input.readExact(
        size - first.length,
        "VMA header",
        bytes.subarray(first.length),
      );
      return new VmaReader(input, decodeHeader(bytes));
    } catch (error) {
      await input.cancel();
      if (error instanceof EndOfStreamError) {
        throw new VmaError(
          `Cannot read VMA header: archive ends after ${error.received} bytes`,
          { cause: error },
        );
      }
      throw error;
    }
  }

  /** See `ExtentChecker.checkReadable` (sizes an archive can address). */
  checkReadable(): void {
    this.#checker.checkReadable();
  }

  /** See `ExtentChecker.expectClusters` (an incremental archive's disks). */
  expectClusters(devId: number, bits: Uint8Array): void {
    this.#checker.expectClusters(devId, bits);
  }

  /** Stops reading the input (for commands that only need the header). */
  async close(): Promise<void> {
    await this.#input.cancel();
  }

  /** Yields every extent in archive order, checked, with its data blocks. */
  async *extents(): AsyncGenerator<VmaExtentEvent> {
    if (this.#ended) throw new VmaError("Cannot read clusters: already read");
    this.#ended = true;
    try {
      this.checkReadable();
      for (let extent = 0;; extent++) {
        const offset = this.#input.position;
        const head = await this.#input.readRecord(
          VMA_EXTENT_HEADER_SIZE,
          `header of extent ${extent}`,
        );
        if (head === null) return;
        const where = `extent ${extent} (archive offset ${offset})`;
        const { slots, blockCount } = this.#checker.check(head, where);
        let data: Uint8Array;
        try {
          data = await this.#input.readExact(
            blockCount * VMA_BLOCK_SIZE,
            `data of ${where}`,
          );
        } catch (error) {
          if (error instanceof EndOfStreamError) {
            throw new VmaError(
              `Cannot read ${where}: short vma extent (${error.received} < ${error.expected} data bytes)`,
              { cause: error },
            );
          }
          throw error;
        }
        yield { extent, offset, slots, data };
      }
    } finally {
      await this.#input.cancel();
    }
  }

  /** Yields every stored cluster in archive order. */
  async *clusters(): AsyncGenerator<VmaClusterEvent> {
    for await (const { extent, slots, data } of this.extents()) {
      let block = 0;
      for (const slot of slots) {
        const out = this.#cluster;
        for (let j = 0; j < 16; j++) {
          const target = out.subarray(
            j * VMA_BLOCK_SIZE,
            (j + 1) * VMA_BLOCK_SIZE,
          );
          if ((slot.mask >>> j) & 1) {
            target.set(
              data.subarray(
                block * VMA_BLOCK_SIZE,
                (block + 1) * VMA_BLOCK_SIZE,
              ),
            );
            block++;
          } else {
            target.fill(0);
          }
        }
        yield {
          extent,
          device: slot.device,
          cluster: slot.cluster,
          mask: slot.mask,
          data: out,
        };
      }
    }
  }

  /** After `clusters()` ran to the end: disk clusters never seen, first per device. */
  missingClusters(): MissingCluster[] {
    return this.#checker.missingClusters();
  }

  /** Throws the Proxmox-style error for the first missing cluster, if any. */
  checkComplete(): void {
    this.#checker.checkComplete();
  }
}
