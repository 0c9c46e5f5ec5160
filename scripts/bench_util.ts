/** Shared helpers of the benchmarks: timed runs with peak memory, test data, a table. */

export const MAIN = new URL("../main.ts", import.meta.url).pathname;

export interface Measure {
  seconds: number;
  maxRssKiB: number;
}

/** A bash pipeline in `cwd`: what it printed and its wall seconds; throws when it fails. */
export async function shell(
  script: string,
  cwd: string,
): Promise<{ text: string; seconds: number }> {
  const start = performance.now();
  const out = await new Deno.Command("bash", {
    args: ["-o", "pipefail", "-c", script],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - start) / 1000;
  if (!out.success) {
    throw new Error(
      `${script} failed: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return { text: new TextDecoder().decode(out.stdout), seconds };
}

/** Runs a shell command under /usr/bin/time -v; returns wall seconds and peak RSS. */
export async function measure(script: string, cwd: string): Promise<Measure> {
  const { seconds, maxRssKiB } = await measureWithStderr(script, cwd);
  return { seconds, maxRssKiB };
}

/** `measure`, and also what the command (and time -v) wrote to stderr. */
export async function measureWithStderr(
  script: string,
  cwd: string,
): Promise<Measure & { stderr: string }> {
  const start = performance.now();
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-v", "bash", "-o", "pipefail", "-c", script],
    cwd,
    stdout: "null",
    stderr: "piped",
  }).output();
  const seconds = (performance.now() - start) / 1000;
  const err = new TextDecoder().decode(out.stderr);
  if (!out.success) {
    throw new Error(`benchmark command failed: ${script}\n${err}`);
  }
  const rss = Number(
    /Maximum resident set size \(kbytes\): (\d+)/.exec(err)?.[1] ?? NaN,
  );
  return { seconds, maxRssKiB: rss, stderr: err };
}

/** Best of n runs (least noise on a shared 2-core machine). */
export async function best(
  n: number,
  script: string,
  cwd: string,
  before?: () => Promise<void>,
): Promise<Measure> {
  let bestRun: Measure | undefined;
  for (let i = 0; i < n; i++) {
    await before?.();
    const m = await measure(script, cwd);
    if (bestRun === undefined || m.seconds < bestRun.seconds) bestRun = m;
  }
  return bestRun!;
}

/**
 * Writes a test image: each 4 KiB block independently zero (probability
 * `zeroShare`) or pseudo-random data, deterministic for a seed.
 */
export async function writeMixedImage(
  path: string,
  bytes: number,
  zeroShare: number,
  seed = 1,
): Promise<void> {
  const file = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  const chunk = new Uint8Array(4 << 20);
  const words = new Uint32Array(chunk.buffer);
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  try {
    for (let done = 0; done < bytes;) {
      for (let b = 0; b < chunk.length / 4096; b++) {
        const base = b * 1024;
        if (next() / 0x100000000 < zeroShare) words.fill(0, base, base + 1024);
        else for (let i = 0; i < 1024; i++) words[base + i] = next();
      }
      const n = Math.min(chunk.length, bytes - done);
      let w = 0;
      while (w < n) w += await file.write(chunk.subarray(w, n));
      done += n;
    }
  } finally {
    file.close();
  }
}

export function mbps(bytes: number, seconds: number): string {
  return `${(bytes / 1e6 / seconds).toFixed(0)} MB/s`;
}

/** Prints rows as an aligned table. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) =>
    Math.max(...rows.map((r) => (r[i] ?? "").length))
  );
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ")).join(
    "\n",
  );
}

/**
 * Writes a disk-like raw image: per 4 MiB, 1 MiB hole (never written),
 * 2 MiB random data, 1 MiB of alternating 64 KiB zero runs (written) and
 * random data. A quarter holes, an eighth written zeros.
 */
export async function writeDiskImage(
  path: string,
  bytes: number,
): Promise<void> {
  const MiB = 1 << 20;
  const file = await Deno.open(path, {
    write: true,
    create: true,
    truncate: true,
  });
  const data = new Uint8Array(3 * MiB);
  try {
    await file.truncate(bytes);
    for (let at = 0; at < bytes; at += 4 * MiB) {
      for (let i = 0; i < data.length; i += 65536) {
        const piece = data.subarray(i, i + 65536);
        if (i >= 2 * MiB && ((i / 65536) & 1) === 0) piece.fill(0);
        else crypto.getRandomValues(piece);
      }
      const n = Math.min(data.length, bytes - at - MiB);
      if (n <= 0) continue;
      await file.seek(at + MiB, Deno.SeekMode.Start);
      let w = 0;
      while (w < n) w += await file.write(data.subarray(w, n));
    }
  } finally {
    file.close();
  }
}

/**
 * Runs each named script `n` times, interleaved (a, b, c, a, b, c, ...), so
 * the machine's drift hits all alike; returns the median run of each.
 */
export async function medians(
  n: number,
  scripts: Record<string, string>,
  cwd: string,
  before?: (name: string) => Promise<void>,
): Promise<Record<string, Measure>> {
  const runs: Record<string, Measure[]> = {};
  for (let i = 0; i < n; i++) {
    for (const [name, script] of Object.entries(scripts)) {
      await before?.(name);
      (runs[name] ??= []).push(await measure(script, cwd));
    }
  }
  const out: Record<string, Measure> = {};
  for (const [name, list] of Object.entries(runs)) {
    list.sort((a, b) => a.seconds - b.seconds);
    out[name] = list[Math.floor(list.length / 2)]!;
  }
  return out;
}
