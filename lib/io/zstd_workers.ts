/**
 * zstd frame decompression off the main thread: a small pool of Workers,
 * each running `node:zlib`'s zstdDecompressSync on frames handed to it.
 * Input and output move between threads by transfer, never copied; the
 * output's allocation, page faults and garbage stay in the worker. The
 * worker's code is inline (a blob URL), so a bundle of vmabak stays one
 * file.
 */

/** Output chunk size cap (see WORKER_SOURCE): a seek table's claim cannot make more. */
export const MAX_CHUNK = 64 * 1024 * 1024;

/**
 * One output chunk of the frame's size plus one (no 16 KiB pieces joined:
 * 2-4x faster), at most `want` bytes out (a frame that decompresses to
 * more than its seek table entry says fails instead of filling memory).
 */
const WORKER_SOURCE = `
import * as zlib from "node:zlib";
self.onmessage = (event) => {
  const { id, input, want, into } = event.data;
  const back = into === null ? [input.buffer] : [input.buffer, into.buffer];
  try {
    let out = zlib.zstdDecompressSync(input, {
      chunkSize: Math.min(want, ${MAX_CHUNK}) + 1,
      maxOutputLength: Math.max(want, 1),
    });
    if (into !== null && into.length >= out.length) {
      into.set(out);
      out = into.subarray(0, out.length);
    } else {
      if (out.byteOffset !== 0 || out.buffer.byteLength > out.length + 1) {
        out = new Uint8Array(out); // from a shared slab: send a copy
      }
      back.push(out.buffer);
    }
    self.postMessage({ id, out, input, into }, back);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    self.postMessage({ id, error: message, input, into }, back);
  }
};
`;

interface Job {
  resolve(out: Uint8Array<ArrayBuffer>): void;
  reject(error: Error): void;
  /** Gets the lent buffers the result does not use, once back. */
  lent(buffers: Uint8Array<ArrayBuffer>[]): void;
}

interface Reply {
  id: number;
  out?: Uint8Array<ArrayBuffer>;
  input: Uint8Array<ArrayBuffer>;
  into: Uint8Array<ArrayBuffer> | null;
  error?: string;
}

/** Thrown for a frame the worker could not decompress; `reason` is zlib's. */
export class FrameDecompressError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = "FrameDecompressError";
  }
}

/** Workers that decompress zstd frames, jobs spread over them in turn. */
export class ZstdWorkers {
  #workers: Worker[] = [];
  #jobs = new Map<number, Job>();
  #next = 0;
  #turn = 0;
  #failed: Error | null = null;

  constructor(count: number) {
    const url = URL.createObjectURL(
      new Blob([WORKER_SOURCE], { type: "text/javascript" }),
    );
    try {
      for (let i = 0; i < count; i++) {
        const worker = new Worker(url, { type: "module" });
        worker.onmessage = (e: MessageEvent<Reply>) => this.#settle(e.data);
        worker.onerror = (e: ErrorEvent) => {
          e.preventDefault();
          this.#fail(new Error(`zstd worker failed: ${e.message}`));
        };
        this.#workers.push(worker);
      }
    } finally {
      URL.revokeObjectURL(url);
    }
  }

  /**
   * Decompresses one frame of `want` bytes, into `into` when it is large
   * enough (no new memory on this thread). `input` and `into` move to a
   * worker; when they are back, `lent` gets those the result is not in.
   */
  decompress(
    input: Uint8Array<ArrayBuffer>,
    want: number,
    into: Uint8Array<ArrayBuffer> | null,
    lent: (buffers: Uint8Array<ArrayBuffer>[]) => void,
  ): Promise<Uint8Array<ArrayBuffer>> {
    if (this.#failed !== null) return Promise.reject(this.#failed);
    const id = this.#next++;
    const worker = this.#workers[this.#turn++ % this.#workers.length]!;
    return new Promise((resolve, reject) => {
      this.#jobs.set(id, { resolve, reject, lent });
      const transfer = into === null
        ? [input.buffer]
        : [input.buffer, into.buffer];
      worker.postMessage({ id, input, want, into }, transfer);
    });
  }

  #settle(reply: Reply): void {
    const job = this.#jobs.get(reply.id);
    if (job === undefined) return;
    this.#jobs.delete(reply.id);
    const unused = [reply.input];
    if (reply.into !== null && reply.out?.buffer !== reply.into.buffer) {
      unused.push(reply.into);
    }
    job.lent(unused);
    if (reply.out !== undefined) job.resolve(reply.out);
    else job.reject(new FrameDecompressError(reply.error ?? "unknown error"));
  }

  #fail(error: Error): void {
    this.#failed ??= error;
    for (const job of this.#jobs.values()) job.reject(error);
    this.#jobs.clear();
  }

  close(): void {
    this.#fail(new Error("zstd workers closed"));
    for (const w of this.#workers) w.terminate();
    this.#workers = [];
  }
}
