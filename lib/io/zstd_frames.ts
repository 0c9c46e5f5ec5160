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
 * subarrays of the input, one per frame and chunk), marks where each frame
 * ends with `FRAME_END`, drops skippable frames, and rejects anything that
 * is not a frame. `end()` throws when the stream stops inside a frame. Each
 * frame can then go to its own decompressor, whatever the decompressor does
 * at frame boundaries.
 */
export class ZstdFrameSplitter {
  #state: State = "magic";
  /** Bytes still wanted in the current state. */
  #need = ZSTD_MAGIC_SIZE;
  /** Small fields (magic, headers) gathered across chunks, for parsing. */
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
    /** Start in `chunk` of the frame bytes not passed on yet, or -1. */
    let run = this.#inRegularFrame() ? 0 : -1;
    /** Where in `chunk` the current magic began (-1: in an earlier chunk). */
    let magicAt = -1;
    let i = 0;
    while (i < chunk.length) {
      if (this.#state === "magic" && this.#have === 0) magicAt = i;
      const take = Math.min(this.#need - this.#have, chunk.length - i);
      if (this.#state !== "blockContent" && this.#state !== "skipContent") {
        this.#scratch.set(chunk.subarray(i, i + take), this.#have);
      }
      this.#have += take;
      i += take;
      this.#offset += take;
      if (this.#have < this.#need) break;
      const event = this.#advance();
      if (event === "start") {
        if (magicAt >= 0) run = magicAt;
        else {
          out.push(this.#scratch.slice(0, ZSTD_MAGIC_SIZE));
          run = i;
        }
      } else if (event === "end") {
        if (i > run) out.push(chunk.subarray(run, i));
        out.push(FRAME_END);
        run = -1;
      }
    }
    if (run >= 0 && run < chunk.length) out.push(chunk.subarray(run));
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

  #inRegularFrame(): boolean {
    return this.#state !== "magic" && this.#state !== "skipSize" &&
      this.#state !== "skipContent";
  }

  #expect(state: State, bytes: number): void {
    this.#state = state;
    this.#need = bytes;
    this.#have = 0;
  }

  /** The current field is complete: parse it and move on. */
  #advance(): "start" | "end" | null {
    const s = this.#scratch;
    switch (this.#state) {
      case "magic": {
        const magic = new DataView(s.buffer, 0, 4).getUint32(0, true);
        const kind = frameKind(magic);
        if (kind === "zstd") {
          this.#expect("descriptor", 1);
          return "start";
        }
        if (kind === "skippable") {
          this.#expect("skipSize", 4);
          return null;
        }
        throw new ZstdError(
          `Cannot decompress: no zstd frame at byte ${
            this.#offset - ZSTD_MAGIC_SIZE
          } (magic 0x${magic.toString(16).padStart(8, "0")})`,
        );
      }
      case "descriptor": {
        const { rest, checksum } = decodeFrameDescriptor(s[0]!);
        this.#checksum = checksum;
        if (rest > 0) this.#expect("frameHeader", rest);
        else this.#expect("blockHeader", ZSTD_BLOCK_HEADER_SIZE);
        return null;
      }
      case "frameHeader":
        this.#expect("blockHeader", ZSTD_BLOCK_HEADER_SIZE);
        return null;
      case "blockHeader": {
        const { last, contentSize } = decodeBlockHeader(s[0]!, s[1]!, s[2]!);
        this.#lastBlock = last;
        if (contentSize > 0) {
          this.#expect("blockContent", contentSize);
          return null;
        }
        return this.#afterBlock();
      }
      case "blockContent":
        return this.#afterBlock();
      case "checksum":
        return this.#frameDone();
      case "skipSize": {
        const size = new DataView(s.buffer, 0, 4).getUint32(0, true);
        if (size > 0) this.#expect("skipContent", size);
        else this.#expect("magic", ZSTD_MAGIC_SIZE);
        return null;
      }
      case "skipContent":
        this.#expect("magic", ZSTD_MAGIC_SIZE);
        return null;
    }
  }

  #afterBlock(): "end" | null {
    if (!this.#lastBlock) {
      this.#expect("blockHeader", ZSTD_BLOCK_HEADER_SIZE);
      return null;
    }
    if (this.#checksum) {
      this.#expect("checksum", ZSTD_CHECKSUM_SIZE);
      return null;
    }
    return this.#frameDone();
  }

  #frameDone(): "end" {
    this.#frames++;
    this.#expect("magic", ZSTD_MAGIC_SIZE);
    return "end";
  }
}
