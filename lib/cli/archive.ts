import type { CommandContext } from "./types.ts";
import { openArchiveByteReader } from "../io/input.ts";
import { VmaReader } from "../vma/reader.ts";

/** Opens ARCHIVE (a path, or `-` for standard input; zstd or plain) and reads its header. */
export async function openArchiveReader(
  path: string,
  ctx: CommandContext,
): Promise<VmaReader> {
  return await VmaReader.open(await openArchiveByteReader(path, ctx.stdin));
}

/** Reads only an archive's header, then lets go of the input. */
export async function readArchiveHeader(
  path: string,
  ctx: CommandContext,
): Promise<VmaReader["header"]> {
  const reader = await openArchiveReader(path, ctx);
  await reader.close();
  return reader.header;
}
