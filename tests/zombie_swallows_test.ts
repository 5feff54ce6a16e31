// Copyright the shmap authors. MIT license.
// Deno: a web worker whose loop catches TerminatedError and calls the map again ends there.
// Deno's terminate() does not stop synchronous code, so such a loop ran on for good after it,
// at full CPU, and kept the process alive (helper-166): each call threw TerminatedError again.
// The calls after the mark throw, so that `finally` blocks run and code that catches the error
// can tidy up; the STOPPED_CALLS_MAXth ends the worker (census.ts stoppedAgain, by Deno's own
// close()).

import assert from "node:assert/strict";
import { test } from "node:test";
import { STOPPED_CALLS_MAX } from "../src/_engine/census.ts";
import { SyncMap } from "../src/maps/sync_map.ts";
import { spawn } from "../src/workers/deno.ts";
import { sleep, until } from "./fixtures/harness.ts";
import { runtime } from "./fixtures/spawn.ts";

test("deno.ts: a terminated worker that swallows TerminatedError and calls on is ended", {
  skip: runtime !== "deno"
    ? "Deno's web Worker only (Bun's and Node's terminate() stop it)"
    : undefined,
  timeout: 60_000,
}, async () => {
  const map = new SyncMap<number, number>();
  const counts = new Int32Array(new SharedArrayBuffer(8));
  const worker = spawn(new URL("./fixtures/swallowing_zombie_deno_worker.ts", import.meta.url), {
    map,
  });
  worker.onmessage = () => worker.postMessage(counts);
  await until(() => Atomics.load(counts, 0) > 10_000, "the worker's loop runs");
  worker.terminate();
  await until(() => Atomics.load(counts, 1) > 0, "the worker caught a TerminatedError");
  // Ended by now: its next thousand calls take well under a millisecond.
  await sleep(200);
  const at = Atomics.load(counts, 0);
  await sleep(300);
  const later = Atomics.load(counts, 0);
  assert.equal(later - at, 0, `the worker ran on: ${later - at} more calls in 300 ms`);
  // The first stopped the thread; of the STOPPED_CALLS_MAX after it, the last ended the worker
  // before it could throw.
  assert.equal(Atomics.load(counts, 1), STOPPED_CALLS_MAX, "TerminatedErrors before the end");
  await until(() => map.stats().participants === 1, "its seat came back");
  map.verify();
});
