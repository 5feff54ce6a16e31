// Copyright the shmap authors. MIT license.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Mutex, type MutexHandle } from "../src/sync/mutex.ts";
import { RWMutex } from "../src/sync/rw_mutex.ts";
import {
  assertRefusesHandles,
  countingTests,
  heldOffUntilUnlock,
  shared,
  withWorkers,
} from "./fixtures/lock_harness.ts";

test("Mutex: lock, unlock and tryLock on one thread", () => {
  const mu = new Mutex();
  assert.equal(mu.tryLock(), true);
  assert.equal(mu.tryLock(), false);
  mu.unlock();
  mu.lock();
  assert.equal(mu.tryLock(), false);
  mu.unlock();
  assert.equal(mu.tryLock(), true);
  mu.unlock();
});

test("Mutex: unlock of an unlocked mutex throws Go's message and leaves it usable", () => {
  const mu = new Mutex();
  assert.throws(() => mu.unlock(), { name: "Error", message: "sync: unlock of unlocked mutex" });
  mu.lock();
  mu.unlock();
  assert.throws(() => mu.unlock(), { message: "sync: unlock of unlocked mutex" });
  assert.equal(mu.tryLock(), true);
  mu.unlock();
});

test("Mutex: handle is a plain structured-cloneable object", () => {
  const mu = new Mutex();
  const h = mu.handle;
  assert.equal(h.kind, "Mutex");
  assert.ok(h.buffer instanceof SharedArrayBuffer);
  assert.equal(typeof h.byteOffset, "number");
  const copy = structuredClone(h);
  assert.deepEqual(Object.keys(copy).sort(), ["buffer", "byteOffset", "census", "kind"]);
  // The clone shares memory: a mutex attached through it sees the original's state.
  const other = Mutex.attach(copy);
  mu.lock();
  assert.equal(other.tryLock(), false);
  mu.unlock();
  assert.equal(other.tryLock(), true);
  assert.equal(mu.tryLock(), false);
  other.unlock();
});

test("Mutex.attach rejects bad handles with a TypeError", () => {
  const good = new Mutex().handle;
  const bad: [string, unknown, RegExp][] = [
    ["null", null, /got null/],
    ["undefined", undefined, /got undefined/],
    ["a number", 42, /got a number 42/],
    ["a string", "Mutex", /got a string "Mutex"/],
    ["an empty object", {}, /handle\.kind must be "Mutex"/],
    ["a wrong kind", { ...good, kind: "Map" }, /handle\.kind must be "Mutex", got a string "Map"/],
    ["an RWMutex handle", new RWMutex().handle, /got a string "RWMutex" \(use RWMutex\.attach\)/],
    ["no buffer", { kind: "Mutex", byteOffset: 0 }, /must be a SharedArrayBuffer, got undefined/],
    [
      "a non-shared ArrayBuffer",
      { ...good, buffer: new ArrayBuffer(16) },
      /must be a SharedArrayBuffer, got an ArrayBuffer/,
    ],
    [
      "a typed array instead of a buffer",
      { ...good, buffer: new Int32Array(new SharedArrayBuffer(16)) },
      /must be a SharedArrayBuffer/,
    ],
    ["a missing offset", { kind: "Mutex", buffer: good.buffer }, /non-negative integer/],
    ["a negative offset", { ...good, byteOffset: -4 }, /non-negative integer, got a number -4/],
    ["a fractional offset", { ...good, byteOffset: 1.5 }, /non-negative integer/],
    ["a misaligned offset", { ...good, byteOffset: 8 }, /not a multiple of 64/],
    ["an out-of-range offset", { ...good, byteOffset: 64 }, /out of range/],
    [
      "memory that holds no lock",
      { kind: "Mutex", buffer: new SharedArrayBuffer(256), byteOffset: 64 },
      /no shmap lock at byteOffset 64 \(bad magic word\)/,
    ],
    [
      "an RWMutex's memory labelled as a Mutex",
      { ...new RWMutex().handle, kind: "Mutex" },
      /is an RWMutex, not a Mutex/,
    ],
  ];
  assertRefusesHandles("Mutex", (h) => Mutex.attach(h as MutexHandle), bad);
  // A failed attach leaves nothing behind: the next constructor makes a fresh mutex.
  const fresh = new Mutex();
  assert.notEqual(fresh.handle.buffer, good.buffer);
});

countingTests("Mutex", "mu", "workers");

test("Mutex: a worker blocks in lock() until another agent unlocks", async () => {
  const mu = new Mutex();
  await heldOffUntilUnlock(
    { mu: mu.handle },
    () => mu.lock(),
    () => mu.unlock(),
    [{ op: "mu.tryLock" }, { op: "mu.lock" }],
    [{ op: "mu.unlock" }],
    [false],
    "the worker got in while the main thread held it",
  );
  assert.equal(mu.tryLock(), true);
});

test("Mutex: only the thread holding the lock may unlock it", async () => {
  const mu = new Mutex();
  const ctrl = shared(4);
  await withWorkers(1, async ([w]) => {
    assert.deepEqual(await w.run([{ op: "mu.lock" }], { ctrl, mu: mu.handle }), []);
    assert.equal(mu.tryLock(), false);
    assert.throws(() => mu.unlock(), /held by another thread/);
    assert.equal(mu.tryLock(), false, "the failed unlock left the lock held");
    assert.deepEqual(await w.run([{ op: "mu.unlock" }], { ctrl, mu: mu.handle }), []);
    assert.deepEqual(
      await w.run([{ op: "mu.tryLock" }, { op: "mu.unlock" }], { ctrl, mu: mu.handle }),
      [
        true,
      ],
    );
  });
});
