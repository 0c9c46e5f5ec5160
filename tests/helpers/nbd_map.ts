/** Reading a whole NBD export's block status map with vmabak's own client, for tests. */
import assert from "node:assert/strict";
import type { BlockExtent, NbdClient } from "../../lib/nbd/client.ts";

/** Every extent of a context from offset 0 to the end, adjacent runs of one state merged. */
export async function fullMap(
  c: NbdClient,
  context?: string,
): Promise<BlockExtent[]> {
  const out: BlockExtent[] = [];
  for (let at = 0; at < c.size;) {
    const extents = await c.blockStatus(at, c.size - at, context);
    assert.equal(extents[0]!.offset, at);
    for (const e of extents) {
      const last = out.at(-1);
      if (last && last.flags === e.flags) last.length += e.length;
      else out.push({ ...e });
      at = e.offset + e.length;
    }
  }
  return out;
}
