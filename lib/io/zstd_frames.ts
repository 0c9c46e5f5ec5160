import {
  decodeBlockHeader,
  decodeFrameDescriptor,
  frameKind,
  ZSTD_BLOCK_HEADER_SIZE,
  ZSTD_CHECKSUM_SIZE,
  ZSTD_MAGIC_SIZE,
  ZstdError,
} from "./zstd_format.ts";

/** Marks the end of a regular frame in the output of `ZstdFrameSplitter`. */
export const FRAME_END: unique symbol = Symbol("zstd frame end");
export type FramePiece = Uint8Array | typeof FRAME_END;

type State =
  | "magic"
  | "descriptor"
  | "frameHeader"
  | "blockHeader"
  | "blockContent"
  | "checksum"
  | "skipSize"
  | "skipContent";

/**
 * Walks a stream of concatenated zstd frames, fed chunk by chunk, without
 * decompressing: it passes the bytes of each regular frame through (as
 * subarrays), marks where each frame ends with `FRAME_END`, drops skippable
 * frames, and rejects anything that is not a frame. `end()` throws when the
 * stream stops inside a frame. Each frame can then go to its own
 * decompressor, whatever the decompressor does at frame boundaries.
 */
export class ZstdFrameSplitter {
  #state: State = "magic";
  /** Bytes still wanted in the current state. */
  #need = ZSTD_MAGIC_SIZE;
  /** Small fields (magic, headers) gathered across chunks. */
  #scratch = new Uint8Array(16);
  #have = 0;
  #checksum = false;
  #lastBlock = false;
  #frames = 0;
  /** Stream offset of the next byte, for messages. */
  #offset = 0;

  /** Regular frames completed so far. */
  get frames(): number {
    return this.#frames;
  }

  push(chunk: Uint8Array): FramePiece[] {
    const out: FramePiece[] = [];
    let i = 0;
    while (i < chunk.length) {
      const take = Math.min(this.#need - this.#have, chunk.length - i);
      if (this.#state === "blockContent" || this.#state === "skipContent") {
        if (this.#state === "blockContent") {
          out.push(chunk.subarray(i, i + take));
        }
        this.#have += take;
      } else {
        this.#scratch.set(chunk.subarray(i, i + take), this.#have);
        this.#have += take;
      }
      i += take;
      this.#offset += take;
      if (this.#have === this.#need) this.#advance(out);
    }
    return out;
  }

  /** Call at the end of the input: throws unless it ended between frames. */
  end(): void {
    if (this.#state !== "magic" || this.#have !== 0) {
      throw new ZstdError(
        `Cannot decompress: the zstd stream is truncated (ends inside a frame at byte ${this.#offset})`,
      );
    }
  }

  #expect(state: State, bytes: number): void {
    this.#state = state;
    this.#need = bytes;
    this.#have = 0;
  }

  /** The gathered field as bytes to pass on (a copy: scratch is reused). */
  #field(): Uint8Array {
    return this.#scratch.slice(0, this.#have);
  }

  #advance(out: FramePiece[]): void {
    const s = this.#scratch;
    switch (this.#state) {
      case "magic": {
        const magic = new DataView(s.buffer, 0, 4).getUint32(0, true);
        const kind = frameKind(magic);
        if (kind === "zstd") {
          out.push(this.#field());
          this.#expect("descriptor", 1);
        } else if (kind === "skippable") {
          this.#expect("skipSize", 4);
        } else {
          throw new ZstdError(
            `Cannot decompress: no zstd frame at byte ${
              this.#offset - ZSTD_MAGIC_SIZE
            } (magic 0x${magic.toString(16).padStart(8, "0")})`,
          );
        }
        return;
      }
      case "descriptor": {
        const { rest, checksum } = decodeFrameDescriptor(s[0]!);
        this.#checksum = checksum;
        out.push(this.#field());
        if (rest > 0) this.#expect("frameHeader", rest);
        else this.#expect("blockHeader", ZSTD_BLOCK_HEADER_SIZE);
        return;
      }
      case "frameHeader":
        out.push(this.#field());
        this.#expect("blockHeader", ZSTD_BLOCK_HEADER_SIZE);
        return;
      case "blockHeader": {
        const { last, contentSize } = decodeBlockHeader(s[0]!, s[1]!, s[2]!);
        out.push(this.#field());
        this.#lastBlock = last;
        if (contentSize > 0) this.#expect("blockContent", contentSize);
        else this.#afterBlock(out, last);
        return;
      }
      case "blockContent":
        this.#afterBlock(out, this.#lastBlock);
        return;
      case "checksum":
        out.push(this.#field());
        this.#frameDone(out);
        return;
      case "skipSize": {
        const size = new DataView(s.buffer, 0, 4).getUint32(0, true);
        if (size > 0) this.#expect("skipContent", size);
        else this.#expect("magic", ZSTD_MAGIC_SIZE);
        return;
      }
      case "skipContent":
        this.#expect("magic", ZSTD_MAGIC_SIZE);
        return;
    }
  }

  #afterBlock(out: FramePiece[], last: boolean): void {
    if (!last) this.#expect("blockHeader", ZSTD_BLOCK_HEADER_SIZE);
    else if (this.#checksum) this.#expect("checksum", ZSTD_CHECKSUM_SIZE);
    else this.#frameDone(out);
  }

  #frameDone(out: FramePiece[]): void {
    out.push(FRAME_END);
    this.#frames++;
    this.#expect("magic", ZSTD_MAGIC_SIZE);
  }
}
