// Copyright the shmap authors. MIT license.
// rw_lock.ts's fast paths, word by word: lockFast takes the write lock only when nobody holds
// it or waits for it, and otherwise gives back everything it took; unlockFast releases only a
// writer mutex word that is exactly the caller's, and wakes the readers that wait. RWMutex.lock
// and unlock go through them, and the long way fixes up after a fast path that left a seat
// flagged, so this is where such a slip shows. Last, a writer stopped at each step of
// lockFast's back-out, and what the next taker of the lock finds.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { CONTENDED, OWNER_SHIFT, POISONED } from "../src/_engine/futex.ts";
import {
  initRw,
  lockFast,
  readerSeat,
  rLockFirst,
  rUnlock,
  rwWords,
  seatCountWord,
  unlock,
  unlockFast,
  WRITER_MU,
} from "../src/_engine/rw_lock.ts";
import { beforeAtomics, notifiesOn, stoppedAfter } from "./fixtures/atomics_calls.ts";
import { OwnerDeadError, RWMutex, threadGone } from "../mod.ts";
import { LOCK_BASE } from "../src/_engine/lock_block.ts";

const BASE = 4;
const SEATS = 4;
/** The state word's flag a reader turned away by a writer sets before it sleeps. */
const READERS_WAITING = 2;
/** Owner ids of two threads; no census is consulted by the fast paths. */
const ME = 7;
const OTHER = 9;

function block(): Int32Array {
  const i32 = new Int32Array(new SharedArrayBuffer(4 * (BASE + rwWords(SEATS))));
  initRw(i32, BASE, SEATS);
  return i32;
}

/** The writer's note of the seats it flagged: its own, read by no one else, left as written. */
const FLAGGED = BASE + 3;

/** Every word of the lock but the writer's note, to compare a before with an after. */
function words(i32: Int32Array): number[] {
  return Array.from(i32, (w, i) => i === FLAGGED ? 0 : w);
}

describe("rw_lock.ts lockFast and unlockFast", () => {
  test("with no seat claimed, lock and unlock go the fast way and leave the words as found", () => {
    const i32 = block();
    const before = words(i32);
    assert.equal(lockFast(i32, BASE, ME << OWNER_SHIFT), true);
    assert.equal(i32[BASE + WRITER_MU], ME << OWNER_SHIFT);
    assert.equal(i32[BASE] & 1, 1, "WRITER set");
    assert.equal(unlockFast(i32, BASE, ME << OWNER_SHIFT), true);
    assert.deepEqual(words(i32), before);
  });

  test("seats claimed but empty are flagged, then cleared by the unlock", () => {
    const i32 = block();
    const seats = [readerSeat(i32, BASE, ME), readerSeat(i32, BASE, OTHER)];
    const before = words(i32);
    assert.equal(lockFast(i32, BASE, ME << OWNER_SHIFT), true);
    for (const seat of seats) assert.equal(i32[seat], 1 << 30, "SEAT_WRITER on every seat");
    assert.equal(unlockFast(i32, BASE, ME << OWNER_SHIFT), true);
    assert.deepEqual(words(i32), before);
  });

  test("with a reader inside, it takes nothing and changes no word", () => {
    const i32 = block();
    readerSeat(i32, BASE, ME); // a seat of its own, empty
    const seat = readerSeat(i32, BASE, OTHER);
    rLockFirst(i32, BASE, seat, OTHER);
    const before = words(i32);
    assert.equal(lockFast(i32, BASE, ME << OWNER_SHIFT), false);
    assert.deepEqual(words(i32), before);
    rUnlock(i32, BASE, seat, OTHER);
    assert.equal(lockFast(i32, BASE, ME << OWNER_SHIFT), true, "in once the reader has left");
  });

  test("a writer mutex word that is not 0 is left alone", () => {
    for (const word of [OTHER << OWNER_SHIFT, ME << OWNER_SHIFT, POISONED, CONTENDED]) {
      const i32 = block();
      readerSeat(i32, BASE, OTHER);
      i32[BASE + WRITER_MU] = word;
      const before = words(i32);
      assert.equal(lockFast(i32, BASE, ME << OWNER_SHIFT), false, `word 0x${word.toString(16)}`);
      assert.deepEqual(words(i32), before);
    }
  });

  test("unlockFast leaves any word but the caller's own, flag-free, to the long way", () => {
    const mine = ME << OWNER_SHIFT;
    for (const word of [0, OTHER << OWNER_SHIFT, mine | CONTENDED, mine | POISONED]) {
      const i32 = block();
      assert.equal(lockFast(i32, BASE, ME << OWNER_SHIFT), true);
      i32[BASE + WRITER_MU] = word;
      const before = words(i32);
      assert.equal(unlockFast(i32, BASE, mine), false, `word 0x${word.toString(16)}`);
      assert.deepEqual(words(i32), before);
    }
    const i32 = block();
    assert.equal(lockFast(i32, BASE, ME << OWNER_SHIFT), true);
    assert.equal(unlockFast(i32, BASE, 0), false, "an object that never learnt its owner word");
  });

  test("a word with a sleeper flagged goes the long way, which releases it and wakes one", () => {
    const i32 = block();
    readerSeat(i32, BASE, OTHER);
    const before = words(i32);
    assert.equal(lockFast(i32, BASE, ME << OWNER_SHIFT), true);
    i32[BASE + WRITER_MU] |= CONTENDED; // as a writer that went to sleep on the mutex sets it
    const held = words(i32);
    assert.equal(unlockFast(i32, BASE, ME << OWNER_SHIFT), false);
    assert.deepEqual(words(i32), held);
    const calls = notifiesOn(i32, () => unlock(i32, BASE, ME));
    assert.deepEqual(calls, [[BASE + WRITER_MU, 1]]);
    assert.deepEqual(words(i32), before);
  });

  test("unlockFast wakes the readers a writer turned away", () => {
    const i32 = block();
    readerSeat(i32, BASE, OTHER);
    const before = words(i32);
    assert.equal(lockFast(i32, BASE, ME << OWNER_SHIFT), true);
    i32[BASE] |= READERS_WAITING; // as rLockSlow sets it before a reader sleeps on the state
    const calls = notifiesOn(i32, () => {
      assert.equal(unlockFast(i32, BASE, ME << OWNER_SHIFT), true);
    });
    assert.deepEqual(calls, [[BASE, Infinity]]);
    assert.deepEqual(words(i32), before);
  });

  test("backing out, it wakes a writer and readers that began to wait meanwhile", () => {
    const i32 = block();
    const seat = readerSeat(i32, BASE, OTHER);
    rLockFirst(i32, BASE, seat, OTHER);
    const calls = notifiesOn(i32, () => {
      beforeAtomics((n) => {
        // After the compare-exchange, a writer sleeps on the mutex; after the state's `or`, a
        // reader turned away sleeps on the state word.
        if (n === 2) i32[BASE + WRITER_MU] |= CONTENDED;
        if (n === 3) i32[BASE] |= READERS_WAITING;
      }, () => assert.equal(lockFast(i32, BASE, ME << OWNER_SHIFT), false));
    });
    assert.deepEqual(calls, [[BASE, Infinity], [BASE + WRITER_MU, 1]]);
    assert.equal(i32[BASE + WRITER_MU], 0);
    assert.equal(i32[BASE] & 3, 0);
    assert.equal(i32[seat], 1, "the reader still in, its seat unflagged");
  });

  test("a seat claimed after the writer got in stays unflagged, and the unlock clears the rest", () => {
    const i32 = block();
    const early = readerSeat(i32, BASE, OTHER);
    assert.equal(lockFast(i32, BASE, ME << OWNER_SHIFT), true);
    const late = readerSeat(i32, BASE, 11);
    assert.equal(i32[late], 0);
    assert.equal(unlockFast(i32, BASE, ME << OWNER_SHIFT), true);
    assert.equal(i32[early], 0);
    assert.equal(i32[seatCountWord(BASE, 1)], 0);
  });
});

/**
 * A writer that finds a reader inside backs out. Stopped after each of its atomic operations
 * (one reader seat: the compare-exchange, the state's `or`, the seat's `or`, the note up, the
 * seat's `and`, the state's `and`, the note down, the release), it is declared gone and the
 * next lock() takes the lock over. It poisons the lock if the stopped writer held the writer
 * mutex with no note up, as the long way's does: it could have been inside. With the note up it
 * never got in, and the lock comes clean. After the note is down and before the release, the
 * taker cannot tell, and poisons (backOut's window, the same).
 */
describe("a writer stopped at each step of lockFast's back-out", () => {
  const POISONS = [false, true, true, true, false, false, false, true, false];
  let next = 70_000; // owner ids of threads this process does not have
  for (let n = 0; n < POISONS.length; n++) {
    const comes = POISONS[n] ? "poisoned" : "clean";
    test(`after ${n} atomic operations: the next lock comes ${comes}`, () => {
      const rw = new RWMutex();
      const { buffer, byteOffset } = rw.handle;
      const i32 = new Int32Array(buffer, byteOffset);
      const writer = next++;
      const reader = next++;
      const seat = readerSeat(i32, LOCK_BASE, reader);
      rLockFirst(i32, LOCK_BASE, seat, reader);
      const stopped = stoppedAfter(n, () => {
        assert.equal(lockFast(i32, LOCK_BASE, writer << OWNER_SHIFT), false);
      });
      assert.equal(stopped, n < 8, "stopped, or backed out whole");
      rUnlock(i32, LOCK_BASE, seat, reader);
      threadGone(writer - 1); // owner ids are thread ids plus one
      let poisoned = false;
      try {
        rw.lock();
      } catch (error) {
        assert.ok(error instanceof OwnerDeadError, String(error));
        poisoned = true;
        rw.markConsistent();
      }
      assert.equal(poisoned, POISONS[n]);
      rw.unlock();
      assert.equal(i32[seat], 0, "the seat neither flagged nor counted");
      assert.equal(i32[LOCK_BASE] & 3, 0, "neither WRITER nor READERS_WAITING left");
      assert.equal(rw.tryRLock(), true);
      rw.rUnlock();
    });
  }
});
