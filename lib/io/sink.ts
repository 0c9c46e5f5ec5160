/** Where bytes go, strictly in order: an archive file, a pipe, a compressor. */
export interface ByteSink {
  /** Resolves once `chunk` was taken; the caller may reuse it afterwards. */
  write(chunk: Uint8Array): Promise<void>;
}

/** Anything with a `write` that may take part of a buffer (Deno.FsFile, Deno.Conn). */
export interface PartialWriter {
  write(p: Uint8Array): Promise<number>;
}

/** Writes all of `bytes`, looping over short writes. */
export async function writeAll(
  to: PartialWriter,
  bytes: Uint8Array,
): Promise<void> {
  let done = 0;
  while (done < bytes.length) done += await to.write(bytes.subarray(done));
}

/** Writes all of `bytes` synchronously, looping over short writes. */
export function writeAllSync(
  to: { writeSync(p: Uint8Array): number },
  bytes: Uint8Array,
): void {
  let done = 0;
  while (done < bytes.length) done += to.writeSync(bytes.subarray(done));
}
