// deno-lint-ignore-file no-console -- tests print what they measured
/**
 * Fuzzing the reading commands in-process (issue 9, "Keep it fixed"): a
 * seeded, bounded corpus of mutated archives (plain and zstd-wrapped, with
 * hostile names, checksums repaired half the time so mutations reach the
 * deeper rules) through list, config, verify, extract and restore. Asserts:
 * no uncaught or internal exception, every failure is one line with exit
 * code 1, nothing is written outside the target, memory stays bounded.
 */
import assert from "node:assert/strict";
import { COMMANDS } from "../lib/cli/commands.ts";
import { failureOutcome } from "../lib/cli/outcome.ts";
import type { CommandContext } from "../lib/cli/types.ts";
import { nodeZstd } from "../lib/io/_node_zstd.ts";
import { md5 } from "../lib/vma/header.ts";
import {
  VMA_EXTENT,
  VMA_EXTENT_HEADER_SIZE,
  VMA_HEADER,
  VMA_MD5_SIZE,
} from "../lib/vma/format.ts";
import { FIXTURE, withTempDir } from "./helpers/run.ts";
import { buildArchive, smallArchive } from "./helpers/vma_build.ts";
import { SeededRandom } from "./helpers/random.ts";
import { goodDescription } from "../lib/backup/_test_description.ts";

const CASES_PER_SEED = 700;
const SEEDS = [1, 2, 3, 4];
const MAX_RSS_GROWTH = 512 * 1024 * 1024;

const enc = new TextEncoder();

function seedArchives(): Uint8Array[] {
  const fill = new Uint8Array(65536).map((_, i) => (i * 13) & 0xff);
  const desc = goodDescription();
  return [
    smallArchive(),
    buildArchive({
      configs: [{
        name: "vmabak.json",
        data: enc.encode(JSON.stringify(desc)),
      }],
      devices: [
        { id: 1, name: "drive0", size: 4n * 65536n - 512n },
        { id: 2, name: "vmstate", size: 3n * 65536n },
      ],
      extents: [[
        { devId: 2, cluster: 0, mask: 0xffff, data: fill },
        { devId: 1, cluster: 3, mask: 0x00ff, data: fill },
        { devId: 1, cluster: 0, mask: 0xffff, data: fill },
        { devId: 2, cluster: 1, mask: 0x0000 },
      ], [
        { devId: 1, cluster: 1, mask: 0 },
        { devId: 1, cluster: 2, mask: 0x8001, data: fill },
      ]],
    }),
    buildArchive({
      configs: [
        {
          name: "qemu-server.conf",
          data: enc.encode("memory: 64\nscsi0: x\n"),
        },
        { name: "a\x1b[2Jb\nCFG: fake", data: enc.encode("x") },
      ],
      devices: [
        { id: 1, name: "drive-scsi0\nDEV: dev_id=9 size: 1", size: 65536n },
        { id: 7, name: "\u202eevil", size: 2n ** 53n + 1n },
        { id: 255, name: "../escape", size: 512n },
      ],
      extents: [[{ devId: 1, cluster: 0, mask: 0xffff, data: fill }]],
    }),
    Deno.readFileSync(FIXTURE).subarray(0, 160 * 1024),
  ];
}

/** Repairs the header and extent checksums where the layout still allows. */
function repairChecksums(a: Uint8Array): void {
  if (a.length < VMA_HEADER.headerSize + 4) return;
  const dv = new DataView(a.buffer, a.byteOffset, a.byteLength);
  const headerSize = dv.getUint32(VMA_HEADER.headerSize);
  if (headerSize > a.length || headerSize < VMA_HEADER.devInfo) return;
  const head = a.subarray(0, headerSize);
  head.fill(0, VMA_HEADER.md5sum, VMA_HEADER.md5sum + VMA_MD5_SIZE);
  head.set(md5(head), VMA_HEADER.md5sum);
  for (let at = headerSize; at + VMA_EXTENT_HEADER_SIZE <= a.length;) {
    const e = a.subarray(at, at + VMA_EXTENT_HEADER_SIZE);
    e.fill(0, VMA_EXTENT.md5sum, VMA_EXTENT.md5sum + VMA_MD5_SIZE);
    e.set(md5(e), VMA_EXTENT.md5sum);
    at += VMA_EXTENT_HEADER_SIZE +
      dv.getUint16(at + VMA_EXTENT.blockCount) * 4096;
  }
}

function mutate(seed: Uint8Array, rnd: SeededRandom): Uint8Array {
  let a = seed.slice();
  const hot = () =>
    rnd.pick([
      () => rnd.int(64), // fixed header fields
      () => VMA_HEADER.configNames + rnd.int(2048), // config pointers
      () => VMA_HEADER.devInfo + rnd.int(8192), // device table (sizes, name pointers)
      () => 12288 + rnd.int(600), // blob buffer (names)
      () => rnd.int(a.length), // anywhere (extents, data)
    ])();
  const n = 1 + rnd.int(4);
  for (let i = 0; i < n && a.length > 0; i++) {
    const at = Math.min(hot(), a.length - 1);
    switch (rnd.int(7)) {
      case 0:
        a[at]! ^= 1 << rnd.int(8);
        break;
      case 1:
        if (rnd.next() < 0.3 && at + 1 < a.length) {
          a.set(rnd.pick([[0xc2, 0x9b], [0xe2, 0x80]]), at); // C1 CSI, U+20xx
        } else {
          a[at] = rnd.pick([
            0,
            0xff,
            0x7f,
            0x80,
            0x0a,
            0x1b,
            0x2f,
            rnd.int(256),
          ]);
        }
        break;
      case 2: { // a u64 or u32 of a hostile value
        const dv = new DataView(a.buffer);
        const p = at & ~7;
        if (p + 8 <= a.length) {
          dv.setBigUint64(
            p,
            rnd.pick([
              2n ** 63n,
              2n ** 64n - 1n,
              2n ** 48n,
              2n ** 44n,
              2n ** 53n + 1n,
              0n,
            ]),
          );
        }
        break;
      }
      case 3:
        a = a.slice(0, rnd.int(a.length));
        break;
      case 4: { // duplicate a slice somewhere
        const from = rnd.int(a.length);
        const piece = a.slice(from, from + 1 + rnd.int(8192));
        const to = rnd.int(a.length);
        const b = new Uint8Array(a.length + piece.length);
        b.set(a.subarray(0, to));
        b.set(piece, to);
        b.set(a.subarray(to), to + piece.length);
        a = b;
        break;
      }
      case 5: { // a registered device gets a hostile size
        const dv = new DataView(a.buffer);
        const ids = [];
        for (let id = 1; id < 256; id++) {
          const base = VMA_HEADER.devInfo + 32 * id;
          if (base + 16 <= a.length && dv.getUint32(base) !== 0) ids.push(id);
        }
        if (ids.length > 0) {
          dv.setBigUint64(
            VMA_HEADER.devInfo + 32 * rnd.pick(ids) + 8,
            rnd.pick([
              2n ** 63n,
              2n ** 64n - 1n,
              2n ** 48n + 1n,
              2n ** 44n,
              2n ** 53n + 1n,
              2n ** 40n,
            ]),
          );
        }
        break;
      }
      default:
        a.set(rnd.bytes(Math.min(16, a.length - at)), at);
    }
  }
  if (rnd.next() < 0.6) repairChecksums(a);
  return a;
}

function streamOf(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let sent = false;
  return new ReadableStream({
    pull(c) {
      if (sent) return c.close();
      sent = true;
      c.enqueue(bytes);
    },
  });
}

const INTERNAL =
  /os error|Array buffer allocation|Cannot read properties|is not a function|is not iterable|undefined|NaN|Maximum call stack/;

interface RunOutcome {
  code: number;
  line?: string;
}

async function runInProcess(
  name: string,
  args: string[],
  input: Uint8Array,
): Promise<RunOutcome> {
  const command = COMMANDS.find((c) => c.name === name)!;
  let outBytes = 0;
  let violation: string | undefined;
  // Text for a terminal never carries a control character (names are
  // escaped); `list` prints each entry on one line.
  const check = (t: string, line: boolean) => {
    outBytes += t.length;
    // deno-lint-ignore no-control-regex
    const bad = /[\x00-\x08\x0b-\x1f\x7f-\x9f]|NaN|undefined/.test(t) ||
      (line && name === "list" && !args.includes("--json") && t.includes("\n"));
    if (bad) violation ??= `${name} printed ${JSON.stringify(t.slice(0, 200))}`;
  };
  const text = {
    line: (t: string) => check(t, true),
    text: (t: string) => check(t, false),
  };
  const ctx: CommandContext = {
    args,
    stdout: {
      write(chunk) {
        outBytes += chunk.length;
        return Promise.resolve();
      },
    },
    stderr: text,
    out: text,
    stdin: streamOf(input),
    signal: new AbortController().signal,
    stderrIsTerminal: false,
  };
  try {
    await command.run(ctx);
    if (violation) throw new Error(violation);
    return { code: 0 };
  } catch (error) {
    if (violation) throw new Error(violation);
    const internal = error instanceof TypeError ||
      error instanceof RangeError || error instanceof ReferenceError ||
      error instanceof SyntaxError;
    const outcome = failureOutcome(error);
    if (
      internal || INTERNAL.test(outcome.line) || outcome.line.includes("\n")
    ) {
      throw new Error(
        `${name}: internal or multi-line error: ${
          (error as Error)?.stack ?? error
        }`,
      );
    }
    return { code: outcome.code, line: outcome.line };
  }
}

function listTree(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    out.push(e.name + (e.isDirectory ? "/" : e.isSymlink ? "@" : ""));
  }
  return out.sort();
}

Deno.test("fuzz: mutated archives through list, config, verify, extract, restore fail with one line and exit 1, write only inside the target, in bounded memory", async () => {
  await withTempDir(async (root) => {
    const seeds = seedArchives();
    // Every seed, plain and zstd-wrapped, is read without error by list.
    for (const s of seeds) {
      assert.equal((await runInProcess("list", ["-"], s)).code, 0);
      assert.equal(
        (await runInProcess("list", ["-"], nodeZstd.zstdCompressSync(s))).code,
        0,
      );
    }
    const out = `${root}/out`;
    Deno.mkdirSync(out);
    const rss0 = Deno.memoryUsage().rss;
    let maxRss = rss0;
    const codes = new Map<string, number>();
    let cases = 0;
    const t0 = performance.now();
    for (const seedNumber of SEEDS) {
      const rnd = new SeededRandom(seedNumber);
      for (let i = 0; i < CASES_PER_SEED; i++) {
        let bytes = mutate(rnd.pick(seeds), rnd);
        const wrap = rnd.int(4);
        if (wrap === 1) bytes = nodeZstd.zstdCompressSync(bytes);
        if (wrap === 2) { // a corrupted zstd stream
          bytes = nodeZstd.zstdCompressSync(bytes).slice();
          bytes[rnd.int(bytes.length)]! ^= 1 << rnd.int(8);
        }
        const where = `seed ${seedNumber} case ${i}`;
        for (
          const [name, args] of [
            ["list", ["-"]],
            ["list", ["--json", "-"]],
            ["config", ["-"]],
            ["verify", ["-"]],
            ["extract", ["-", `${out}/t`]],
            ["restore", ["-", `${out}/r`]],
          ] as const
        ) {
          const r = await runInProcess(name, [...args], bytes);
          assert.ok(
            r.code === 0 || r.code === 1,
            `${where} ${name}: code ${r.code}`,
          );
          const key = `${name} ${r.code}`;
          codes.set(key, (codes.get(key) ?? 0) + 1);
          if (name === "extract" || name === "restore") {
            const top = listTree(out);
            assert.ok(
              top.every((e) => e === "t/" || e === "r/"),
              `${where} ${name}: wrote ${top} beside the target`,
            );
            assert.deepEqual(listTree(root), ["out/"], `${where} ${name}`);
            for (const t of ["t", "r"]) {
              if (!(top as string[]).includes(`${t}/`)) continue;
              for (const e of listTree(`${out}/${t}`)) {
                assert.ok(
                  !/[\/@]$/.test(e),
                  `${where} ${name}: ${e} in the target`,
                );
              }
              Deno.removeSync(`${out}/${t}`, { recursive: true });
            }
          }
        }
        cases++;
        if (i % 50 === 0) {
          maxRss = Math.max(maxRss, Deno.memoryUsage().rss);
        }
      }
    }
    const seconds = (performance.now() - t0) / 1000;
    maxRss = Math.max(maxRss, Deno.memoryUsage().rss);
    console.log(
      `fuzz: ${cases} archives x 6 commands in ${seconds.toFixed(1)} s; RSS ${
        (rss0 / 2 ** 20).toFixed(0)
      } -> max ${(maxRss / 2 ** 20).toFixed(0)} MiB; outcomes ${
        JSON.stringify(Object.fromEntries([...codes].sort()))
      }`,
    );
    assert.ok(
      maxRss - rss0 < MAX_RSS_GROWTH,
      `RSS grew by ${((maxRss - rss0) / 2 ** 20).toFixed(0)} MiB`,
    );
    // The corpus reaches past the checksums: some mutated archives still pass.
    assert.ok((codes.get("verify 0") ?? 0) > 0);
    assert.ok((codes.get("list 0") ?? 0) > 0);
  });
});
