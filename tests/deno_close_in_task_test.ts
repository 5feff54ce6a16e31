// Copyright the shmap authors. MIT license.
// Deno: a web worker started by the adapter that closes itself in the task where it used a
// SyncMap leaves nothing in the process. Deno 2.9.6 kept two file descriptors and the worker's
// module graph (3 MB) for good when a worker ended before its main module's evaluation was
// reported, as Deno's own close() did here with the SyncMap's microtask queued behind it
// (helper-164, helper-167): the adapter's close() ends the worker from a microtask queued behind.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import process from "node:process";
import { SyncMap } from "../src/maps/sync_map.ts";
import { spawn } from "../src/workers/deno.ts";
import { sleep, until } from "./fixtures/harness.ts";
import { runtime } from "./fixtures/spawn.ts";

const WORKER = new URL("./fixtures/close_in_task_deno_worker.ts", import.meta.url);
/** Workers that close themselves: 2 descriptors each leaked, 48 in all, before the fix. */
const WORKERS = 24;

/** This process's open file descriptors (Linux). */
function openFds(): number {
  return readdirSync("/proc/self/fd").length;
}

/** Spawns one worker, which closes itself, and waits until its share is released. */
async function closeOne(map: SyncMap<string, number>, n: number): Promise<void> {
  spawn(WORKER, { map });
  await until(() => map.load("stored") === n, `worker ${n} stored`);
  // Released (declared gone, its seat back) 250 ms after its goodbye.
  await until(() => map.stats().participants === 1, `worker ${n}'s seat came back`);
}

const DENO_ONLY = runtime !== "deno" ? "Deno's web Worker only" : undefined;

test("deno.ts: a worker closing itself in the task that used a SyncMap leaks no descriptors", {
  skip: DENO_ONLY ?? (process.platform !== "linux" ? "counts descriptors in /proc" : undefined),
  timeout: 120_000,
}, async () => {
  const map = new SyncMap<string, number>();
  // Warm-up: the first workers open the runtime's caches, for good.
  for (let n = 1; n <= 2; n++) await closeOne(map, n);
  await sleep(200);
  const before = openFds();
  for (let n = 3; n <= WORKERS + 2; n++) await closeOne(map, n);
  // A worker's thread frees its event loop as it ends, after its goodbye.
  let after = openFds();
  for (let i = 0; i < 100 && after > before + WORKERS / 4; i++) {
    await sleep(20);
    after = openFds();
  }
  assert.ok(
    after <= before + WORKERS / 4,
    `${WORKERS} closed workers left ${after - before} descriptors open (${before} -> ${after})`,
  );
  // The rest of each worker's code ran: the adapter's close() ends it from a microtask.
  assert.equal(map.load("after close"), WORKERS + 2);
  assert.equal(map.stats().participants, 1);
  map.verify();
});

test("deno.ts: a worker's close() in a loop ends it at the second call", {
  skip: DENO_ONLY,
  timeout: 60_000,
}, async () => {
  // Deno's own close() ends a worker at once; the adapter's waits for a microtask, which a loop
  // never yields to: the second call must end it, or the worker spins for good.
  const map = new SyncMap<string, number>();
  map.store("mode", 1);
  spawn(WORKER, { map });
  await until(() => map.stats().participants === 1 && map.load("loop") !== undefined, "ended");
  assert.equal(map.load("loop"), 2);
  map.verify();
});

test("deno.ts: no message queued behind a close() runs", {
  skip: DENO_ONLY,
  timeout: 60_000,
}, async () => {
  const map = new SyncMap<string, number>();
  map.store("mode", 2);
  const worker = spawn(WORKER, { map });
  await until(() => map.load("listening") === 1, "listening");
  for (let i = 0; i < 20; i++) worker.postMessage(i);
  await until(() => map.stats().participants === 1, "its seat came back");
  await sleep(100);
  assert.equal(map.load("messages"), 1);
  map.verify();
});
