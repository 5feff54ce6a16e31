// Copyright the shmap authors. MIT license.
// rw_lock.ts's fast paths, word by word: lockFast takes the write lock only when nobody holds
// it or waits for it, and otherwise gives back everything it took; unlockFast releases only a
// writer mutex word that is exactly the caller's. RWMutex.lock and unlock go through them, and
// the long way fixes up after a fast path that left a seat flagged, so this is where such a
// slip shows.

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
  unlockFast,
  WRITER_MU,
} from "../src/_engine/rw_lock.ts";
import { notifiesOn } from "./fixtures/atomics_calls.ts";

const BASE = 4;
const SEATS = 4;
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
    assert.equal(lockFast(i32, BASE, ME), true);
    assert.equal(i32[BASE + WRITER_MU], ME << OWNER_SHIFT);
    assert.equal(i32[BASE] & 1, 1, "WRITER set");
    assert.equal(unlockFast(i32, BASE, ME << OWNER_SHIFT), true);
    assert.deepEqual(words(i32), before);
  });

  test("seats claimed but empty are flagged, then cleared by the unlock", () => {
    const i32 = block();
    const seats = [readerSeat(i32, BASE, ME), readerSeat(i32, BASE, OTHER)];
    const before = words(i32);
    assert.equal(lockFast(i32, BASE, ME), true);
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
    assert.equal(lockFast(i32, BASE, ME), false);
    assert.deepEqual(words(i32), before);
    rUnlock(i32, BASE, seat);
    assert.equal(lockFast(i32, BASE, ME), true, "in once the reader has left");
  });

  test("a writer mutex word that is not 0 is left alone", () => {
    for (const word of [OTHER << OWNER_SHIFT, ME << OWNER_SHIFT, POISONED, CONTENDED]) {
      const i32 = block();
      readerSeat(i32, BASE, OTHER);
      i32[BASE + WRITER_MU] = word;
      const before = words(i32);
      assert.equal(lockFast(i32, BASE, ME), false, `word 0x${word.toString(16)}`);
      assert.deepEqual(words(i32), before);
    }
  });

  test("unlockFast leaves any word but the caller's own, CONTENDED aside, to the long way", () => {
    const mine = ME << OWNER_SHIFT;
    for (
      const word of [0, OTHER << OWNER_SHIFT, OTHER << OWNER_SHIFT | CONTENDED, mine | POISONED]
    ) {
      const i32 = block();
      assert.equal(lockFast(i32, BASE, ME), true);
      i32[BASE + WRITER_MU] = word;
      const before = words(i32);
      assert.equal(unlockFast(i32, BASE, mine), false, `word 0x${word.toString(16)}`);
      assert.deepEqual(words(i32), before);
    }
    const i32 = block();
    assert.equal(lockFast(i32, BASE, ME), true);
    assert.equal(unlockFast(i32, BASE, 0), false, "an object that never learnt its owner word");
  });

  test("unlockFast of a word with a sleeper flagged releases it and wakes one", () => {
    const i32 = block();
    readerSeat(i32, BASE, OTHER);
    const before = words(i32);
    assert.equal(lockFast(i32, BASE, ME), true);
    i32[BASE + WRITER_MU] |= CONTENDED; // as a writer that went to sleep on the mutex sets it
    const calls = notifiesOn(i32, () => {
      assert.equal(unlockFast(i32, BASE, ME << OWNER_SHIFT), true);
    });
    assert.deepEqual(calls, [[BASE + WRITER_MU, 1]]);
    assert.deepEqual(words(i32), before);
  });

  test("a seat claimed after the writer got in stays unflagged, and the unlock clears the rest", () => {
    const i32 = block();
    const early = readerSeat(i32, BASE, OTHER);
    assert.equal(lockFast(i32, BASE, ME), true);
    const late = readerSeat(i32, BASE, 11);
    assert.equal(i32[late], 0);
    assert.equal(unlockFast(i32, BASE, ME << OWNER_SHIFT), true);
    assert.equal(i32[early], 0);
    assert.equal(i32[seatCountWord(BASE, 1)], 0);
  });
});
