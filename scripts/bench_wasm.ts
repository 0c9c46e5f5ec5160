// deno-lint-ignore-file no-console
/**
 * Building blocks on one 1 GiB buffer, in one run: the zero scan (WASM SIMD
 * copy-in and in place, the TypeScript reference, a C reference built with
 * `cc -O2`), zstd L1/L3 (vmabak's zstdSink over node:zlib with 2 Workers and
 * on the main thread, @bokuweb/zstd-wasm, the `zstd -T1` tool) and MD5
 * (node:crypto, `md5sum`). Data: 128 x [5 MiB of tar of /usr, 2 MiB zeros,
 * 1 MiB random], like real disks. `BENCH_WASM_MIB=256` for a shorter run.
 */
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import { MAIN, mbps, shell, table } from "./bench_util.ts";
import { haveTool } from "../tests/helpers/run.ts";
import { nonZeroMask, ZeroScanner } from "../lib/wasm/zero.ts";
import { nonZeroMaskReference } from "../lib/wasm/zero_reference.ts";
import { maybeDecompress, zstdSink } from "../lib/io/zstd.ts";

const MIB = 1 << 20;
const SIZE = Number(Deno.env.get("BENCH_WASM_MIB") ?? 1024) * MIB;
const CLUSTER = 65536;
const dir = await Deno.makeTempDir({ prefix: "vmabak-bench-wasm-" });

function sh(script: string): Promise<{ text: string; seconds: number }> {
  return shell(script, dir);
}

/** Best time of n calls. */
async function best(n: number, fn: () => unknown): Promise<number> {
  let min = Infinity;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    min = Math.min(min, (performance.now() - t) / 1000);
  }
  return min;
}

async function makeData(): Promise<Uint8Array> {
  const tarBytes = (SIZE / 8) * 5;
  await sh(
    `(tar cf - /usr/lib /usr/share /usr/bin 2>/dev/null || true) | head -c ${tarBytes} > tar.bin`,
  );
  const tar = await Deno.readFile(`${dir}/tar.bin`);
  const data = new Uint8Array(SIZE);
  const random = new Uint8Array(MIB);
  for (let at = 0, t = 0; at < SIZE; at += 8 * MIB, t += 5 * MIB) {
    data.set(tar.subarray(t % tar.length, t % tar.length + 5 * MIB), at);
    for (let i = 0; i < MIB; i += 65536) {
      crypto.getRandomValues(random.subarray(i, i + 65536));
    }
    data.set(random, at + 7 * MIB);
  }
  await Deno.remove(`${dir}/tar.bin`);
  await Deno.writeFile(`${dir}/data.bin`, data);
  return data;
}

const C_SCAN = `
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
/* uint64 OR of 8 words with early exit per 4 KiB block (QEMU buffer_zero_int style). */
static int block_nonzero(const unsigned char *p, size_t n) {
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const uint64_t *w = (const uint64_t *)(p + i);
    if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) return 1;
  }
  for (; i < n; i++) if (p[i]) return 1;
  return 0;
}
int main(int argc, char **argv) {
  FILE *f = fopen(argv[1], "rb");
  fseek(f, 0, SEEK_END); long size = ftell(f); fseek(f, 0, SEEK_SET);
  unsigned char *buf = aligned_alloc(64, size);
  if (fread(buf, 1, size, f) != (size_t)size) return 1;
  unsigned char *zero = aligned_alloc(64, size);
  memset(zero, 0, size);
  for (int pass = 0; pass < 2; pass++) {
    unsigned char *d = pass == 0 ? buf : zero;
    double bestt = 1e9; unsigned long blocks = 0;
    for (int run = 0; run < 3; run++) {
      struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
      blocks = 0;
      for (long c = 0; c < size; c += 65536) {
        unsigned mask = 0;
        for (int j = 0; j < 16; j++) mask |= block_nonzero(d + c + j * 4096, 4096) << j;
        blocks += __builtin_popcount(mask);
      }
      clock_gettime(CLOCK_MONOTONIC, &b);
      double t = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
      if (t < bestt) bestt = t;
    }
    printf("%f %lu\\n", bestt, blocks);
  }
  return 0;
}
`;

function popcount(m: number): number {
  let n = 0;
  for (; m; m &= m - 1) n++;
  return n;
}

function scanAll(data: Uint8Array, scan: (c: Uint8Array) => number): number {
  let blocks = 0;
  for (let at = 0; at < data.length; at += CLUSTER) {
    blocks += popcount(scan(data.subarray(at, at + CLUSTER)));
  }
  return blocks;
}

try {
  console.log(
    `\n== building blocks on ${SIZE / MIB} MiB (best of 3 unless noted) ==`,
  );
  const data = await makeData();
  const zeros = new Uint8Array(SIZE);
  zeros.fill(1).fill(0); // real pages, not the shared zero page
  const rows: string[][] = [[
    "operation",
    "data",
    "rate",
    "speed vs native",
    "note",
  ]];
  const rate = (s: number) => mbps(SIZE, s);
  const ratio = (s: number, native: number | undefined) =>
    native === undefined ? "-" : `${(native / s).toFixed(2)}x`;

  // Zero scan.
  let cNative: { mix: number; zero: number; blocks: number } | undefined;
  if (await haveTool("cc")) {
    await Deno.writeTextFile(`${dir}/scan.c`, C_SCAN);
    await sh("cc -O2 -o scan scan.c");
    const [mix, zero] = (await sh("./scan data.bin")).text.trim().split("\n")
      .map((l) => l.split(" ").map(Number));
    cNative = { mix: mix![0]!, zero: zero![0]!, blocks: mix![1]! };
  }
  const inPlace = new ZeroScanner(SIZE);
  inPlace.buffer.set(data);
  const wasmInPlace = (d: "mix" | "zero") => {
    if (d === "zero") inPlace.buffer.fill(0);
    let blocks = 0;
    for (let at = 0; at < SIZE; at += CLUSTER) {
      blocks += popcount(inPlace.maskAt(at, CLUSTER));
    }
    return blocks;
  };
  const expectBlocks = scanAll(data, nonZeroMaskReference);
  for (const [name, d] of [["mix", data], ["all-zero", zeros]] as const) {
    const native = cNative === undefined
      ? undefined
      : name === "mix"
      ? cNative.mix
      : cNative.zero;
    if (cNative !== undefined && name === "mix") {
      if (cNative.blocks !== expectBlocks) throw new Error("C scan disagrees");
    }
    const copyIn = await best(3, () => scanAll(d, nonZeroMask));
    const inPl = await best(
      3,
      () => wasmInPlace(name === "mix" ? "mix" : "zero"),
    );
    const ref = await best(3, () => scanAll(d, nonZeroMaskReference));
    if (name === "mix" && scanAll(d, nonZeroMask) !== expectBlocks) {
      throw new Error("WASM scan disagrees with the reference");
    }
    rows.push([
      "zero scan WASM SIMD, 64 KiB copy-in",
      name,
      rate(copyIn),
      ratio(copyIn, native),
      "nonZeroMask()",
    ]);
    rows.push([
      "zero scan WASM SIMD, in place",
      name,
      rate(inPl),
      ratio(inPl, native),
      "ZeroScanner.maskAt()",
    ]);
    rows.push([
      "zero scan TS reference (Uint32Array)",
      name,
      rate(ref),
      ratio(ref, native),
      "",
    ]);
    if (native !== undefined) {
      rows.push([
        "zero scan C cc -O2 (uint64 x8)",
        name,
        rate(native),
        "1.00x",
        "native",
      ]);
    }
  }

  // zstd.
  await sh("cat data.bin > /dev/null");
  const zstdWasm = createRequire(import.meta.url)("@bokuweb/zstd-wasm") as {
    init(): Promise<void>;
    compress(buf: Uint8Array, level: number): Uint8Array;
  };
  await zstdWasm.init();
  for (const level of [1, 3]) {
    const nativeRatio =
      Number((await sh(`zstd -T1 -${level} -q -c data.bin | wc -c`)).text) /
      SIZE;
    const native = await sh(`zstd -T1 -${level} -q -c data.bin > /dev/null`);
    const viaSink = async (workers: number) => {
      let out = 0;
      const t = performance.now();
      const sink = zstdSink(
        {
          write: (c) => {
            out += c.length;
            return Promise.resolve();
          },
        },
        level,
        { workers },
      );
      for (let at = 0; at < SIZE; at += 3867136) {
        await sink.write(data.subarray(at, at + 3867136));
      }
      await sink.close();
      return { s: (performance.now() - t) / 1000, ratio: out / SIZE };
    };
    for (const workers of [2, 0]) {
      const a = await viaSink(workers);
      const b = await viaSink(workers);
      const s = Math.min(a.s, b.s);
      rows.push([
        `zstd L${level} node:zlib zstdSink, ${
          workers ? `${workers} Workers` : "main thread"
        }`,
        "real",
        rate(s),
        ratio(s, native.seconds),
        `ratio ${a.ratio.toFixed(3)}, best of 2`,
      ]);
    }
    let out = 0;
    const t = performance.now();
    for (let at = 0; at < SIZE; at += 4 * MIB) {
      out += zstdWasm.compress(data.subarray(at, at + 4 * MIB), level).length;
    }
    const ws = (performance.now() - t) / 1000;
    rows.push([
      `zstd L${level} @bokuweb/zstd-wasm, 4 MiB frames`,
      "real",
      rate(ws),
      ratio(ws, native.seconds),
      `ratio ${(out / SIZE).toFixed(3)}, 1 run`,
    ]);
    rows.push([
      `zstd L${level} zstd -T1 (file, cached)`,
      "real",
      rate(native.seconds),
      "1.00x",
      `ratio ${nativeRatio.toFixed(3)}, native, 1 run`,
    ]);
  }

  // The whole pipeline: read, zero scan, VMA, compress, write a file.
  for (const level of [1, 3]) {
    await sh("cat data.bin > /dev/null; rm -f x.vma.zst");
    const c = await sh(
      `${Deno.execPath()} run -A ${MAIN} create --zstd=${level} x.vma.zst data.bin`,
    );
    const native = await sh(`zstd -T1 -${level} -q -c data.bin > /dev/null`);
    const size = (await Deno.stat(`${dir}/x.vma.zst`)).size;
    rows.push([
      `vmabak create --zstd=${level} (whole pipeline)`,
      "real",
      rate(c.seconds),
      ratio(c.seconds, native.seconds),
      `ratio ${
        (size / SIZE).toFixed(3)
      } vs zstd -T1 -${level} of the image, 1 run`,
    ]);
    await Deno.remove(`${dir}/x.vma.zst`);
  }

  // Decompression, from a file as `vmabak verify x.vma.zst` reads it.
  const ours = await Deno.open(`${dir}/ours.zst`, {
    write: true,
    create: true,
  });
  const sink = zstdSink({
    write: async (c) => {
      for (let w = 0; w < c.length;) w += await ours.write(c.subarray(w));
    },
  }, 1);
  for (let at = 0; at < SIZE; at += 4 * MIB) {
    await sink.write(data.subarray(at, at + 4 * MIB));
  }
  await sink.close();
  ours.close();
  await sh("zstd -T1 -1 -q -c data.bin > tool.zst");
  for (
    const [file, what] of [
      ["ours.zst", "vmabak frames (4 MiB each)"],
      ["tool.zst", "one frame by zstd -1"],
    ]
  ) {
    await sh(`cat ${file} > /dev/null`);
    const nativeD = await sh(`zstd -d -q -c ${file} > /dev/null`);
    const d = await best(2, async () => {
      const f = await Deno.open(`${dir}/${file}`);
      let n = 0;
      for await (const c of await maybeDecompress(f.readable)) n += c.length;
      if (n !== SIZE) throw new Error(`decompressed ${n} bytes`);
    });
    rows.push([
      `zstd -d node:zlib maybeDecompress, ${what}`,
      "real",
      rate(d),
      ratio(d, nativeD.seconds),
      "file, best of 2",
    ]);
    rows.push([
      `zstd -d zstd tool, ${what}`,
      "real",
      rate(nativeD.seconds),
      "1.00x",
      "native, 1 run",
    ]);
  }

  // MD5.
  const md5sum = await best(2, async () => {
    await sh("md5sum data.bin");
  });
  const md5 = await best(2, () => {
    const h = createHash("md5");
    for (let at = 0; at < SIZE; at += 4 * MIB) {
      h.update(data.subarray(at, at + 4 * MIB));
    }
    return h.digest("hex");
  });
  rows.push([
    "MD5 node:crypto, 4 MiB updates",
    "real",
    rate(md5),
    ratio(md5, md5sum),
    "best of 2",
  ]);
  rows.push([
    "MD5 md5sum (file, cached)",
    "real",
    rate(md5sum),
    "1.00x",
    "native, best of 2",
  ]);
  console.log(table(rows));
} finally {
  await Deno.remove(dir, { recursive: true });
}
