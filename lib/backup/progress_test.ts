import assert from "node:assert/strict";
import {
  formatBytes,
  formatDuration,
  renderBar,
  renderJson,
  renderLine,
} from "./progress.ts";

Deno.test("progress rendering: bytes, durations, bar, line, json", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(3 * 1024 ** 3), "3.0 GiB");
  assert.equal(formatDuration(75), "1:15");
  assert.equal(formatDuration(3725), "1:02:05");
  assert.equal(formatDuration(Infinity), "--:--");
  const p = {
    done: 512 * 1024 ** 2,
    total: 1024 ** 3,
    elapsedMs: 4000,
    archiveBytes: 0,
  };
  assert.equal(
    renderBar(p, 10),
    "[#####.....]  50% 512.0 MiB / 1.0 GiB  128.0 MiB/s  ETA 0:04",
  );
  assert.equal(
    renderLine(p),
    "backup: 50% (512.0 MiB of 1.0 GiB, 128.0 MiB/s)",
  );
  assert.deepEqual(JSON.parse(renderJson("progress", { done: 1 })), {
    type: "progress",
    done: 1,
  });
});
