// A GoMap reader that finds the write sequence held by a thread recovering a dead writer's
// write waits for the recovery, rather than throw ConcurrentMapWriteError as it does for a
// write that overlaps its read. Two readers under a correct read lock that met a dead writer's
// write at once used to race: one recovered, the other threw.
//
// The recovery is played by a worker that holds the sequence as a recoverer does (SEQ odd with
// its owner id, RECOVERING naming it), then ends it as a recoverer does (RECOVERING 0, the next
// version, a notify) 150 ms later; the main thread reads meanwhile.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { ConcurrentMapWriteError, currentThreadId, GoMap, threadGone } from "../mod.ts";
import { Journal } from "../src/_engine/journal.ts";
import { RECOVERING, SEQ } from "../src/maps/_go_layout.ts";

/** An owner id no thread has: not recorded gone, so it counts as a live thread's. */
const HOLDER = 60_001;

/** Releases, from a worker, after `ms`, the sequence word at `SEQ` as a recoverer does. */
function releaseLater(buffer: SharedArrayBuffer, version: number, ms: number): Worker {
  const code = `
    const { workerData } = require("node:worker_threads");
    const { buffer, version, ms, seq, recovering } = workerData;
    const i32 = new Int32Array(buffer);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    Atomics.store(i32, recovering, 0);
    Atomics.store(i32, seq, version);
    Atomics.notify(i32, seq);
  `;
  return new Worker(code, {
    eval: true,
    workerData: { buffer, version, ms, seq: SEQ, recovering: RECOVERING },
  });
}

test("a GoMap read waits for another thread's recovery of a dead writer's write", async () => {
  const map = new GoMap<number, string>();
  for (let i = 0; i < 100; i++) map.set(i, `v${i}`);
  const buffer = map.handle.buffer as SharedArrayBuffer;
  const i32 = new Int32Array(buffer);
  const version = i32[SEQ];
  // Held by HOLDER, recovering: the write it recovers changed nothing here.
  Atomics.store(i32, SEQ, (HOLDER << 1) | 1);
  Atomics.store(i32, RECOVERING, HOLDER);
  const worker = releaseLater(buffer, (version + 2) | 0, 150);
  const exited = new Promise((resolve) => worker.once("exit", resolve));
  try {
    const started = performance.now();
    assert.equal(map.get(7), "v7");
    assert.ok(performance.now() - started >= 100, "the read waited for the recovery");
    assert.equal(i32[SEQ], (version + 2) | 0);
  } finally {
    await exited;
  }
  map.set(100, "after");
  assert.equal(map.get(100), "after");
  map.verify();
});

test("a GoMap read that meets a live writer (no recovery) still throws at once", () => {
  const map = new GoMap<number, string>();
  map.set(1, "one");
  const i32 = new Int32Array(map.handle.buffer);
  const version = i32[SEQ];
  Atomics.store(i32, SEQ, (HOLDER << 1) | 1);
  try {
    assert.equal(Atomics.load(i32, RECOVERING), 0);
    assert.throws(() => map.get(1), ConcurrentMapWriteError);
    // A recovery by another thread is not a write, but RECOVERING must name the holder.
    Atomics.store(i32, RECOVERING, HOLDER + 1);
    assert.throws(() => map.get(1), ConcurrentMapWriteError);
  } finally {
    Atomics.store(i32, RECOVERING, 0);
    Atomics.store(i32, SEQ, version);
  }
  assert.equal(map.get(1), "one");
});

test("a recovery names its thread in RECOVERING while it runs, and clears it", () => {
  const gone = 60_002;
  threadGone(gone);
  const map = new GoMap<number, string>();
  map.set(1, "one");
  const i32 = new Int32Array(map.handle.buffer);
  // A write of a thread now gone, cut short before it wrote anything.
  Atomics.store(i32, SEQ, ((gone + 1) << 1) | 1);
  const recover = Journal.prototype.recover;
  let during = -1;
  Journal.prototype.recover = function (this: Journal, ...args) {
    during = Atomics.load(i32, RECOVERING);
    return recover.apply(this, args);
  };
  try {
    assert.equal(map.get(1), "one");
  } finally {
    Journal.prototype.recover = recover;
  }
  assert.equal(during, currentThreadId() + 1, "the recoverer's owner id");
  assert.equal(Atomics.load(i32, RECOVERING), 0);
  assert.equal(Atomics.load(i32, SEQ) & 1, 0);
  map.verify();
});
