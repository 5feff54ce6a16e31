// Copyright the shmap authors. MIT license.
// RWMutex reader seats of dead threads: a reaper frees a dead reader's seat (its read locks
// taken out) without ever touching a seat that a live thread has claimed since, a reap cut
// short is finished by the next reaper, and an rUnlock takes only from a seat its thread still
// owns (a zombie's, reaped and claimed again, is refused) and claims none. On one thread, with
// the engine's functions and made-up owner ids for the other threads; the interleavings are
// forced by running the other thread's steps inside the reaper's look at the census (the clock
// read of its grace check).

import assert from "node:assert/strict";
import { afterEach, describe, test } from "node:test";
import {
  census,
  GONE,
  markTerminating,
  noteOsThreadForTests,
  ownerId,
  record,
  TERMINATE_GRACE_MS,
} from "../src/_engine/census.ts";
import { LOCK_BASE, newLockBlock } from "../src/_engine/lock_block.ts";
import { ownOsThread, setRunTimeForTests } from "../src/_engine/os_thread.ts";
import { RWMutex } from "../src/sync/rw_mutex.ts";
import {
  initRw,
  readers,
  readerSeat,
  rLockFirst,
  rUnlock,
  rwWords,
  seatCountWord,
  tryLock,
  unlock,
} from "../src/_engine/rw_lock.ts";
import { lockWords } from "./fixtures/lock_harness.ts";

const base = LOCK_BASE;
// Owner ids (thread id + 1) of threads that do not exist: this test plays them.
const DEAD = 1_000_001;
const NEWCOMER = 2_000_001;
const WRITER = 3_000_001;
const GONE_REAPER = 4_000_001;

const realNow = performance.now;

afterEach(() => {
  performance.now = realNow;
});

/** A lock of one reader seat, which DEAD holds with one read lock and is now terminating. */
function lockOfDeadReader(): Int32Array {
  census();
  const i32 = newLockBlock("RWMutex", rwWords(1)) as Int32Array;
  initRw(i32, base, 1);
  rLockFirst(i32, base, readerSeat(i32, base, DEAD), DEAD);
  markTerminating(DEAD - 1);
  return i32;
}

/** The owner word of seat 0 (the word before its count). */
function seatOwner(i32: Int32Array): number {
  return Atomics.load(i32, seatCountWord(base, 0) - 1);
}

describe("RWMutex reader seats of dead threads", () => {
  test("a seat freed and claimed by a new reader while another reaper looks keeps its read lock", () => {
    const i32 = lockOfDeadReader();
    // The first look starts DEAD's grace; past it, every look says gone. Inside the reaper's
    // look that says gone, a newcomer reaps the seat itself, claims it and read-locks.
    let looks = 0;
    let newcomerSeat = -1;
    performance.now = () => {
      looks++;
      if (looks === 2) {
        newcomerSeat = readerSeat(i32, base, NEWCOMER);
        assert.equal(rLockFirst(i32, base, newcomerSeat, NEWCOMER), 1);
      }
      return realNow.call(performance) + (looks >= 2 ? 2 * TERMINATE_GRACE_MS : 0);
    };
    assert.throws(() => readerSeat(i32, base, ownerId()), /reader seats/); // sees the grace begin
    assert.throws(() => readerSeat(i32, base, ownerId()), /reader seats/); // reaps: too late
    performance.now = realNow;
    assert.ok(newcomerSeat > 0, "the newcomer ran inside the reaper's look at the census");
    assert.equal(seatOwner(i32), NEWCOMER);
    assert.equal(readers(i32, base), 1, "the newcomer's read lock was taken out under it");
    assert.equal(tryLock(i32, base, WRITER), false, "a writer got in beside a reader");
    rUnlock(i32, base, newcomerSeat, NEWCOMER);
    assert.equal(tryLock(i32, base, WRITER), true);
    unlock(i32, base, WRITER);
  });

  test("a reap cut short (its reaper gone, or this thread's own) is finished by the next", () => {
    census();
    record(GONE_REAPER - 1, GONE);
    const i32 = newLockBlock("RWMutex", rwWords(1)) as Int32Array;
    initRw(i32, base, 1);
    readerSeat(i32, base, DEAD); // seat 0 claimed: below the high-water mark from now on
    for (const reaper of [GONE_REAPER, ownerId()]) {
      // The reaper marked the seat, then stopped before taking the dead reader's count out.
      Atomics.store(i32, seatCountWord(base, 0) - 1, -reaper);
      Atomics.store(i32, seatCountWord(base, 0), 1);
      const seat = readerSeat(i32, base, NEWCOMER);
      assert.equal(seatOwner(i32), NEWCOMER, `reaper ${reaper}'s seat was not taken back`);
      assert.equal(Atomics.load(i32, seat), 0, "the dead reader's count was taken out");
      Atomics.store(i32, seat - 1, 0); // give the seat back for the next round
    }
  });

  test("an rUnlock by a thread whose seat was reaped and claimed again takes nothing", () => {
    // DEAD (here: still running, as a Deno zombie may be once declared gone) read-locked, lost
    // its seat to a reaper, and NEWCOMER claimed it and read-locked. DEAD's rUnlock, which
    // names the seat DEAD's lock object remembers, must refuse, not end NEWCOMER's read lock.
    const i32 = lockOfDeadReader();
    const seat = seatCountWord(base, 0);
    performance.now = () => realNow.call(performance) + 2 * TERMINATE_GRACE_MS;
    readers(i32, base); // (a look at the census: DEAD's grace begins, and is over at once)
    assert.equal(readerSeat(i32, base, NEWCOMER), seat, "the newcomer reaped DEAD's seat");
    performance.now = realNow;
    assert.equal(rLockFirst(i32, base, seat, NEWCOMER), 1);
    assert.throws(() => rUnlock(i32, base, seat, DEAD), /RUnlock of unlocked RWMutex/);
    assert.equal(Atomics.load(i32, seat), 1, "the newcomer's read lock stands");
    assert.equal(tryLock(i32, base, WRITER), false);
    rUnlock(i32, base, seat, NEWCOMER);
  });

  test("an rUnlock without a read lock changes no word (it claims no seat)", () => {
    const rw = new RWMutex({ maxReaderThreads: 2 });
    const words = lockWords(rw);
    const before = words.slice();
    assert.throws(() => rw.rUnlock(), /RUnlock of unlocked RWMutex/);
    assert.deepEqual(words.slice(), before);
    // Through another object of the thread that holds a read lock, it releases that one.
    const other = RWMutex.attach(rw.handle);
    other.rLock();
    rw.rUnlock();
    assert.equal(rw.tryLock(), true);
    rw.unlock();
  });

  test("a claimer that finds every seat held by a thread just recorded terminating waits", () => {
    // This thread looks at `ending` for the first time now: the grace runs from here. It used
    // to find every seat live and throw RangeError; it waits out the grace and takes the seat.
    census();
    const ending = 7_000_001;
    const i32 = newLockBlock("RWMutex", rwWords(1)) as Int32Array;
    initRw(i32, base, 1);
    rLockFirst(i32, base, readerSeat(i32, base, ending), ending);
    markTerminating(ending - 1);
    const started = realNow.call(performance);
    const seat = readerSeat(i32, base, ownerId());
    assert.ok(realNow.call(performance) - started >= TERMINATE_GRACE_MS - 5, "waited the grace");
    assert.equal(seatOwner(i32), ownerId());
    assert.equal(rLockFirst(i32, base, seat, ownerId()), 1);
    rUnlock(i32, base, seat, ownerId());
    assert.equal(readers(i32, base), 0);
  });

  test("a claimer that meets the dead reader's declaration between its look and its reap takes the seat", () => {
    // The reader was killed holding a read lock; its parent's adapter declares it gone (after
    // the grace on Deno) just after the claimer's first reap, which found it terminating and
    // left it. The next look sees it gone, not ending, and that pass's reap frees the seat:
    // counted as nothing coming free, the claim threw RangeError there without looking again
    // (helper-176: a reader's first rLock at once after terminate(), Node and Bun every time).
    census();
    const dying = 8_000_001 + Math.floor(Math.random() * 1000) * 2;
    const i32 = newLockBlock("RWMutex", rwWords(1)) as Int32Array;
    initRw(i32, base, 1);
    rLockFirst(i32, base, readerSeat(i32, base, dying), dying);
    markTerminating(dying - 1);
    let declared = false;
    performance.now = () => {
      // The first look at the clock is the first reap's grace check: the declaration comes now.
      if (!declared) {
        declared = true;
        record(dying - 1, GONE);
      }
      return realNow.call(performance);
    };
    const seat = readerSeat(i32, base, NEWCOMER);
    performance.now = realNow;
    assert.ok(declared, "the reap looked at the clock");
    assert.equal(seatOwner(i32), NEWCOMER);
    assert.equal(Atomics.load(i32, seat), 0, "the dead reader's read lock was taken out");
    assert.equal(rLockFirst(i32, base, seat, NEWCOMER), 1);
    rUnlock(i32, base, seat, NEWCOMER);
    assert.equal(readers(i32, base), 0);
  });

  test("a claimer that finds the only seat being reaped waits for the reap, not a RangeError", () => {
    // A reaper (here a thread marked terminating, its grace not over: live) has marked the only
    // seat; it finishes (its mark becomes 0) while the claimer looks on.
    census();
    const reaper = 6_000_001;
    markTerminating(reaper - 1);
    const i32 = newLockBlock("RWMutex", rwWords(1)) as Int32Array;
    initRw(i32, base, 1);
    readerSeat(i32, base, DEAD); // claimed once: below the high-water mark
    Atomics.store(i32, seatCountWord(base, 0) - 1, -reaper);
    let looks = 0;
    performance.now = () => {
      if (++looks === 3) Atomics.store(i32, seatCountWord(base, 0) - 1, 0); // the reap is done
      return realNow.call(performance);
    };
    const seat = readerSeat(i32, base, NEWCOMER);
    performance.now = realNow;
    assert.ok(looks >= 3, "the claimer looked at the reaper's mark more than twice");
    assert.equal(seatOwner(i32), NEWCOMER);
    assert.equal(seat, seatCountWord(base, 0));
  });
});

test(
  "Deno: an empty reader seat of a terminated thread that may be inside an rLock is not reaped",
  {
    skip: (globalThis as { Deno?: unknown }).Deno === undefined ||
      (globalThis as { Bun?: unknown }).Bun !== undefined || ownOsThread() === 0,
  },
  () => {
    // A Deno zombie (terminate() does not stop a worker running synchronous code) descheduled in
    // RWMutex.rLock between its census check and its add on its seat, holding no read lock, and not
    // run since: declared gone after the grace, its empty seat was reaped as a running zombie's is,
    // and its add, when it ran, landed on a free seat (a read lock counted for no owner, which no
    // reap takes out: every writer waited for good) or on the seat's next owner's. Its seat is kept
    // until it is seen in no call, as a SyncMap seat is. ZOMBIE's OS thread is noted as this one's,
    // whose run time is made to stand still: runnable, and never on a CPU since.
    census();
    const i32 = newLockBlock("RWMutex", rwWords(1)) as Int32Array;
    initRw(i32, base, 1);
    const ZOMBIE = 5_000_001;
    const seat = readerSeat(i32, base, ZOMBIE);
    rLockFirst(i32, base, seat, ZOMBIE);
    rUnlock(i32, base, seat, ZOMBIE);
    noteOsThreadForTests(ZOMBIE - 1, ownOsThread());
    record(ZOMBIE - 1, GONE);
    setRunTimeForTests(() => 0);
    try {
      assert.throws(
        () => readerSeat(i32, base, NEWCOMER),
        /reader seats/,
        "the seat of a zombie that may be inside its rLock was reaped",
      );
      assert.equal(seatOwner(i32), ZOMBIE);
    } finally {
      setRunTimeForTests(undefined);
    }
  },
);
