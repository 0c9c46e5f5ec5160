/**
 * A slow consumer for tests and benchmarks: copies standard input to a file
 * (or drops it with "-") at RATE bytes per second, like ssh over a modest
 * link. Usage: deno run -A slow_cat.ts RATE OUTFILE|-
 */
const [rateArg, out] = Deno.args;
const rate = Number(rateArg);
const file = out === "-" || out === undefined
  ? undefined
  : await Deno.open(out, { write: true, createNew: true, mode: 0o600 });
const buf = new Uint8Array(16384);
const started = performance.now();
let total = 0;
for (;;) {
  const n = await Deno.stdin.read(buf);
  if (n === null) break;
  if (file) {
    let done = 0;
    while (done < n) done += await file.write(buf.subarray(done, n));
  }
  total += n;
  const due = started + (total / rate) * 1000;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
file?.close();
