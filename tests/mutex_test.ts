// Copyright the shmap authors. MIT license.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Mutex, type MutexHandle } from "../src/sync/mutex.ts";
import { RWMutex } from "../src/sync/rw_mutex.ts";
import { CONTENDED } from "../src/_engine/futex.ts";
import { LOCK_BASE } from "../src/_engine/lock_block.ts";
import { beforeAtomics, notifiesOn } from "./fixtures/atomics_calls.ts";
import {
  assertRefusesBadHandles,
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

/** A new mutex, locked by this thread, with a view of its words and its lock word as held. */
function lockedMutex(): { mu: Mutex; words: Int32Array; held: number } {
  const mu = new Mutex();
  const { buffer, byteOffset } = mu.handle;
  const words = new Int32Array(buffer, byteOffset);
  mu.lock();
  return { mu, words, held: words[LOCK_BASE] };
}

test("Mutex: an unlock with a sleeper flagged releases the lock and wakes one", () => {
  // A sleeper sets CONTENDED before it waits (futex.ts lockWordSlow); set here by hand, so that
  // the test tells a woken sleeper from one that would only wake at its wait's time limit.
  const { mu, words, held } = lockedMutex();
  assert.notEqual(held, 0);
  words[LOCK_BASE] = held | CONTENDED;
  const calls = notifiesOn(words, () => mu.unlock());
  assert.equal(words[LOCK_BASE], 0, "released");
  assert.deepEqual(calls, [[LOCK_BASE, 1]], "one sleeper woken");
  assert.equal(mu.tryLock(), true);
  mu.unlock();
});

test("Mutex: an unlock wakes a sleeper that flagged the word after the unlock read it", () => {
  // The sleeper's CONTENDED lands just before the unlock's first atomic write: between the plain
  // read and the exchange on V8, before the compare-exchange on JavaScriptCore. Either way the
  // unlock must see it and wake the sleeper, or the sleeper waits out its time limit.
  const { mu, words, held } = lockedMutex();
  let flagged = false;
  const calls = notifiesOn(words, () =>
    beforeAtomics((n) => {
      if (n !== 1) return;
      flagged = true;
      words[LOCK_BASE] = held | CONTENDED;
    }, () => mu.unlock()));
  assert.ok(flagged);
  assert.equal(words[LOCK_BASE], 0, "released");
  assert.deepEqual(calls, [[LOCK_BASE, 1]], "one sleeper woken");
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

test("Mutex: two objects of one lock in one thread lock and unlock for each other", () => {
  // The fast paths keep the caller's owner word in the object: an object that never locked
  // must still unlock what its thread holds, and then lock as the owner it is.
  const mu = new Mutex();
  const other = Mutex.attach(mu.handle);
  mu.lock();
  other.unlock(); // `other` has never locked
  assert.equal(other.tryLock(), true);
  mu.unlock();
  other.lock();
  mu.unlock();
  assert.throws(() => other.unlock(), { message: "sync: unlock of unlocked mutex" });
  mu.lock();
  assert.throws(() => other.lock(), /already holds/);
  other.unlock();
  assert.equal(mu.tryLock(), true);
  mu.unlock();
});

test("Mutex.attach rejects bad handles with a TypeError", () => {
  const good = new Mutex().handle;
  assertRefusesBadHandles(good, new RWMutex().handle, (h) => Mutex.attach(h as MutexHandle));
  // A failed attach leaves nothing behind: the next constructor makes a fresh mutex.
  assert.notEqual(new Mutex().handle.buffer, good.buffer);
});

test("Mutex.attach refuses a block with no room for its lock word", () => {
  const { buffer, byteOffset } = new Mutex().handle;
  const copy = new SharedArrayBuffer(buffer.byteLength);
  new Int32Array(copy).set(new Int32Array(buffer, byteOffset));
  new Int32Array(copy)[2] -= 1; // its size in words, header included
  assert.throws(() => Mutex.attach({ kind: "Mutex", buffer: copy, byteOffset: 0 }), {
    name: "TypeError",
    message: /corrupt \(bad size\)/,
  });
});

countingTests("Mutex", "mu", "workers");

test("Mutex: a worker blocks in lock() until another agent unlocks", async () => {
  const mu = new Mutex();
  await heldOffUntilUnlock(
    "mu",
    mu,
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
