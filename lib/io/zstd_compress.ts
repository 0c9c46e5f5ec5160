/**
 * Compression of whole chunks into independent zstd frames, with Deno's
 * built-in `node:zlib` zstd: on the calling thread, or in Workers so that
 * compression overlaps reading, scanning and writing and uses both cores.
 * The Worker source is a string run from a blob URL, so it survives
 * `deno bundle` (a single file needs no worker module beside it).
 */
import { nodeZstd } from "./_node_zstd.ts";
import { ZstdError } from "./zstd_format.ts";

export interface CompressedChunk {
  /**
   * One complete zstd frame (content size and checksum included), at the
   * start of the input buffer: it holds `frameCapacity` bytes, more than a
   * frame of its input can take.
   */
  frame: Uint8Array;
  /** The input buffer (where `frame` lies), handed back for reuse once the frame is written. */
  buffer: ArrayBuffer;
}

/**
 * Turns `buffer[0, length)` into one frame written over the same buffer
 * (of at least `frameCapacity(length)` bytes); the buffer is lent, then
 * returned. No memory is made per frame: a new 4 MiB buffer per frame,
 * even freed at once, counted against V8's heap limit and started a full
 * GC early in every compressed backup.
 */
export interface ChunkCompressor {
  compress(buffer: ArrayBuffer, length: number): Promise<CompressedChunk>;
  /** Stops the workers; pending calls fail. */
  close(): void;
}

/** Bytes a buffer needs to take the frame of `length` input bytes (above zstd's bound). */
export function frameCapacity(length: number): number {
  return length + (length >> 7) + 65536;
}

/** Checks a zstd level (the library accepts 1..22 for compression). */
export function checkZstdLevel(level: number): number {
  if (!Number.isInteger(level) || level < 1 || level > 22) {
    throw new RangeError(
      `Cannot compress with zstd level ${level}: expected an integer from 1 to 22`,
    );
  }
  return level;
}

function zstdParams(level: number) {
  return {
    params: {
      [nodeZstd.constants.ZSTD_c_compressionLevel]: level,
      [nodeZstd.constants.ZSTD_c_checksumFlag]: 1,
    },
  };
}

/** Compresses on the calling thread (blocks it while compressing). */
export function inlineCompressor(level: number): ChunkCompressor {
  const params = zstdParams(checkZstdLevel(level));
  let closed = false;
  return {
    compress(buffer, length) {
      if (closed) return Promise.reject(new ZstdError("compressor closed"));
      try {
        const out = nodeZstd.zstdCompressSync(
          new Uint8Array(buffer, 0, length),
          { ...params, chunkSize: frameCapacity(length) },
        );
        const frame = intoBuffer(out, buffer);
        return Promise.resolve({ frame, buffer });
      } catch (error) {
        return Promise.reject(error);
      }
    },
    close() {
      closed = true;
    },
  };
}

/**
 * Copies a frame over its input and frees the compressor's output at once
 * (made for this frame alone: its chunkSize is above the frame's bound).
 */
function intoBuffer(out: Uint8Array, buffer: ArrayBuffer): Uint8Array {
  if (out.length > buffer.byteLength) {
    throw new ZstdError(
      `Cannot compress: a frame of ${out.length} bytes does not fit its ${buffer.byteLength}-byte buffer`,
    );
  }
  const frame = new Uint8Array(buffer, 0, out.length);
  frame.set(out);
  freeBuffer(out.buffer as ArrayBuffer);
  return frame;
}

function freeBuffer(buffer: ArrayBuffer): void {
  const b = buffer as ArrayBuffer & { transfer?: (n: number) => ArrayBuffer };
  if (typeof b.transfer === "function") b.transfer(0);
}

const WORKER_SOURCE = `
import { constants, zstdCompressSync } from "node:zlib";
self.onmessage = (event) => {
  const { id, buffer, length, capacity, level } = event.data;
  try {
    const out = zstdCompressSync(new Uint8Array(buffer, 0, length), {
      chunkSize: capacity,
      params: {
        [constants.ZSTD_c_compressionLevel]: level,
        [constants.ZSTD_c_checksumFlag]: 1,
      },
    });
    if (out.length > buffer.byteLength) {
      throw new Error("a frame of " + out.length + " bytes does not fit its " + buffer.byteLength + "-byte buffer");
    }
    // The frame goes back in the input buffer: no new buffer crosses to
    // the main thread. The output was made for this frame alone (chunkSize
    // above its bound): free it now rather than at this isolate's next GC.
    new Uint8Array(buffer, 0, out.length).set(out);
    const frameLength = out.length;
    out.buffer.transfer(0);
    self.postMessage({ id, frameLength, buffer }, [buffer]);
  } catch (error) {
    self.postMessage({ id, error: String(error && error.message || error), buffer }, [buffer]);
  }
};
`;

interface Job {
  resolve(chunk: CompressedChunk): void;
  reject(error: unknown): void;
}

let workerUrl: string | undefined;

/**
 * Compresses in `count` Workers, one job per Worker at a time; more jobs
 * wait for a free Worker. Workers start on the first call.
 */
export function workerCompressor(
  level: number,
  count: number,
): ChunkCompressor {
  checkZstdLevel(level);
  const workers: { worker: Worker; job: Job | undefined }[] = [];
  const waiting: {
    buffer: ArrayBuffer;
    length: number;
    job: Job;
  }[] = [];
  let failure: unknown;
  let nextId = 0;

  const fail = (error: unknown) => {
    failure ??= error;
    for (const w of workers) {
      w.job?.reject(failure);
      w.job = undefined;
    }
    for (const q of waiting.splice(0)) q.job.reject(failure);
  };

  const start = () => {
    workerUrl ??= URL.createObjectURL(
      new Blob([WORKER_SOURCE], { type: "application/javascript" }),
    );
    for (let i = 0; i < count; i++) {
      const slot: { worker: Worker; job: Job | undefined } = {
        worker: new Worker(workerUrl, { type: "module" }),
        job: undefined,
      };
      slot.worker.onmessage = (event: MessageEvent) => {
        const job = slot.job;
        slot.job = undefined;
        const data = event.data as {
          frameLength?: number;
          error?: string;
          buffer: ArrayBuffer;
        };
        if (data.error !== undefined || data.frameLength === undefined) {
          job?.reject(new ZstdError(`Cannot compress: ${data.error}`));
        } else {
          job?.resolve({
            frame: new Uint8Array(data.buffer, 0, data.frameLength),
            buffer: data.buffer,
          });
        }
        pump();
      };
      slot.worker.onerror = (event: ErrorEvent) => {
        event.preventDefault();
        fail(new ZstdError(`Cannot compress: worker failed: ${event.message}`));
      };
      workers.push(slot);
    }
  };

  const pump = () => {
    for (const slot of workers) {
      if (slot.job !== undefined) continue;
      const next = waiting.shift();
      if (next === undefined) return;
      slot.job = next.job;
      slot.worker.postMessage(
        {
          id: nextId++,
          buffer: next.buffer,
          length: next.length,
          capacity: frameCapacity(next.length),
          level,
        },
        [next.buffer],
      );
    }
  };

  return {
    compress(buffer, length) {
      if (failure !== undefined) return Promise.reject(failure);
      if (workers.length === 0) start();
      return new Promise((resolve, reject) => {
        waiting.push({ buffer, length, job: { resolve, reject } });
        pump();
      });
    },
    close() {
      fail(new ZstdError("Cannot compress: the compressor was closed"));
      for (const w of workers) w.worker.terminate();
      workers.length = 0;
    },
  };
}
