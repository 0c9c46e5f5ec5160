/**
 * A chain of archives built offline for tests: a full of two raw images
 * (`vmabak create`), then three incrementals (the test writer), the images
 * changed in between; the images of every instant are kept.
 */
import assert from "node:assert/strict";
import { writeIncremental } from "./incremental.ts";
import { vmabak } from "./run.ts";

const CLUSTER = 65536;

/** Copies `src` to `dst`, then writes each [offset, length, byte] (byte 0: zeros). */
export async function mutate(
  src: string,
  dst: string,
  writes: [number, number, number][],
): Promise<void> {
  const bytes = await Deno.readFile(src);
  for (const [offset, length, byte] of writes) {
    bytes.fill(byte, offset, offset + length);
  }
  await Deno.writeFile(dst, bytes);
}

/** The clusters where two images differ. */
export async function changedClusters(a: string, b: string): Promise<number[]> {
  const x = await Deno.readFile(a);
  const y = await Deno.readFile(b);
  const out = [];
  for (let c = 0; c * CLUSTER < x.length; c++) {
    const s = c * CLUSTER;
    const e = Math.min(s + CLUSTER, x.length);
    for (let i = s; i < e; i++) {
      if (x[i] !== y[i]) {
        out.push(c);
        break;
      }
    }
  }
  return out;
}

/** Asserts that `got` is `want` followed by zeros up to a 512-byte multiple. */
export async function assertImage(got: string, want: string): Promise<void> {
  const a = await Deno.readFile(want);
  const b = await Deno.readFile(got);
  assert.equal(b.length, Math.ceil(a.length / 512) * 512, got);
  assert.ok(
    Buffer.compare(b.subarray(0, a.length), a) === 0,
    `${got} differs from ${want}`,
  );
  assert.ok(b.subarray(a.length).every((v) => v === 0));
}

export interface Chain {
  dir: string;
  /** Image states per instant: [disk a, disk b]. */
  states: [string, string][];
  archives: string[];
  changed: Record<string, number[]>[];
}

/** full (state 0), inc1 (state 1), inc2 (state 2), inc3 (state 2 again: no change). */
export async function buildChain(dir: string): Promise<Chain> {
  const a0 = `${dir}/a0.raw`;
  const b0 = `${dir}/b0.raw`;
  const random = new Uint8Array(3 * 1024 * 1024 + 1536);
  for (let i = 0; i < random.length; i += 65536) {
    crypto.getRandomValues(
      random.subarray(i, Math.min(i + 65536, random.length)),
    );
  }
  random.fill(0, CLUSTER * 10, CLUSTER * 14); // some zero clusters
  await Deno.writeFile(a0, random);
  await Deno.writeFile(b0, new Uint8Array(2 * 1024 * 1024).fill(0x5a));
  await Deno.writeTextFile(`${dir}/qemu-server.conf`, "name: chain\n");
  const full = `${dir}/full.vma`;
  const c = await vmabak([
    "create",
    full,
    "-c",
    `${dir}/qemu-server.conf`,
    `drive0=${a0}`,
    `drive1=${b0}`,
  ]);
  assert.equal(c.code, 0, c.stderr);
  const states: [string, string][] = [[a0, b0]];
  const archives = [full];
  const changed: Record<string, number[]>[] = [];
  const steps: [[number, number, number][], [number, number, number][]][] = [
    // inc1: data into a zero range, a cluster zeroed, the odd last cluster, a partial write.
    [[[CLUSTER * 11 + 100, 5000, 0x11], [CLUSTER * 2, CLUSTER, 0], [
      random.length - 700,
      700,
      0x22,
    ]], [[CLUSTER * 3, 3 * CLUSTER, 0x33]]],
    // inc2: some clusters again, some inc1 never touched.
    [[[CLUSTER * 11, 4096, 0x44], [CLUSTER * 30, 2 * CLUSTER + 17, 0x55]], []],
    // inc3: nothing changed.
    [[], []],
  ];
  for (const [i, [wa, wb]] of steps.entries()) {
    const [pa, pb] = states[i]!;
    const na = `${dir}/a${i + 1}.raw`;
    const nb = `${dir}/b${i + 1}.raw`;
    await mutate(pa, na, wa);
    await mutate(pb, nb, wb);
    const ch = {
      drive0: await changedClusters(pa, na),
      drive1: await changedClusters(pb, nb),
    };
    const inc = `${dir}/inc${i + 1}.vma`;
    await writeIncremental(inc, {
      base: archives[i]!,
      images: { drive0: na, drive1: nb },
      changed: ch,
    });
    states.push([na, nb]);
    archives.push(inc);
    changed.push(ch);
  }
  return { dir, states, archives, changed };
}
