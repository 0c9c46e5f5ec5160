import assert from "node:assert/strict";
import { InFlight } from "./in_flight.ts";

function deferred() {
  let resolve!: () => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

Deno.test("InFlight counts tasks until they settle, failed ones too, and wakes each waiter at its bound", async () => {
  const f = new InFlight();
  await f.idle(); // nothing runs
  const tasks = [deferred(), deferred(), deferred()];
  for (const t of tasks) f.track(t.promise.catch(() => {}));
  assert.equal(f.size, 3);
  const woke: string[] = [];
  const below3 = f.waitBelow(3).then(() => woke.push("below 3"));
  const below2 = f.waitBelow(2).then(() => woke.push("below 2"));
  const idle = f.idle().then(() => woke.push("idle"));
  await f.waitBelow(4); // already true
  tasks[1]!.reject(new Error("x"));
  await below3;
  assert.deepEqual(woke, ["below 3"]);
  assert.equal(f.size, 2);
  tasks[0]!.resolve();
  await below2;
  assert.deepEqual(woke, ["below 3", "below 2"]);
  tasks[2]!.resolve();
  await idle;
  assert.deepEqual(woke, ["below 3", "below 2", "idle"]);
  assert.equal(f.size, 0);
});
