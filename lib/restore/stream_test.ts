import assert from "node:assert/strict";
import { progressLine } from "./stream.ts";

Deno.test("progressLine() says bytes done of total in MiB, the percentage and the disks done", () => {
  assert.equal(
    progressLine({ done: 0, total: 0, finished: 0, jobs: 2 }),
    "streamed 0.0 of 0.0 MiB (0%), 0 of 2 disks done",
  );
  assert.equal(
    progressLine({
      done: 24117248,
      total: 83886080,
      finished: 1,
      jobs: 2,
    }),
    "streamed 23.0 of 80.0 MiB (28%), 1 of 2 disks done",
  );
  // Never 100% before every byte is there.
  assert.match(
    progressLine({ done: 83886079, total: 83886080, finished: 1, jobs: 2 }),
    /\(99%\)/,
  );
});
