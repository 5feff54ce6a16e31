// Copyright the shmap authors. MIT license.
// A store copies a string value into the record it has taken with String.prototype.charCodeAt,
// which user code may have replaced, and which may then call the map. The record is in hand
// there: reached by nothing, named by no seat but the store's hand log. The copy runs under a
// hold (SyncCore's #copyString): no call nested there sweeps (which would free the record), makes
// a quiescent point that collects, or lowers the hand word; and a copy that throws frees the
// record and leaves no log open (helper-142's review, each case a test that failed before).

import assert from "node:assert/strict";
import { test } from "node:test";
import type { SyncMap } from "../mod.ts";
import { HAND, seatMayHold } from "../src/_engine/registry.ts";
import { R_SWEEP_DUE } from "../src/maps/_sync_layout.ts";
import { syncAccessOf } from "../src/maps/sync_map.ts";
import { sweepsForTests } from "../src/maps/_sync_recovery.ts";
import { secondSeat } from "./fixtures/second_seat.ts";

/** A map of 100 string values, and a second object on a seat of its own. */
function setUp() {
  return secondSeat((i) => `value ${i}`);
}

/**
 * Runs `f` from the copy of `other.store(5, ...)`'s value, once, with the built-in
 * charCodeAt back in place meanwhile; returns what the store threw, if anything.
 */
function inCopy(other: SyncMap<number, string>, f: () => void): unknown {
  const charCodeAt = String.prototype.charCodeAt;
  let done = false;
  String.prototype.charCodeAt = function (this: string, i: number) {
    if (i === 5 && !done) {
      done = true;
      String.prototype.charCodeAt = charCodeAt;
      f();
    }
    return charCodeAt.call(this, i);
  };
  try {
    other.store(5, "an outer value, long");
  } catch (error) {
    return error;
  } finally {
    String.prototype.charCodeAt = charCodeAt;
  }
  assert.ok(done, "the copy called charCodeAt");
  return undefined;
}

test("SyncMap: a sweep due is not run by loads nested in a store's record copy", () => {
  const { map, other, i32 } = setUp();
  let swept = -1;
  const thrown = inCopy(other, () => {
    const before = sweepsForTests.count;
    Atomics.store(i32, R_SWEEP_DUE, 1); // as another worker's death leaves it
    // Quiescent points of another object of the thread, each of which retries a sweep due
    // (after 100 ms at first): for 400 ms, or until one has swept.
    const end = performance.now() + 400;
    while (Atomics.load(i32, R_SWEEP_DUE) !== 0 && performance.now() < end) map.load(3);
    swept = sweepsForTests.count - before;
  });
  assert.equal(thrown, undefined);
  assert.equal(swept, 0, "no sweep while the record is in hand");
  for (let j = 200; j < 260; j++) map.store(j, `an outer value, l${j}`); // blocks of its class
  assert.equal(other.load(5), "an outer value, long");
  map.verify(); // the sweep left due runs here, and finds nothing amiss
  map.close();
});

test("SyncMap: verify() nested in a store's record copy is a TypeError, and the store is undone", () => {
  const { map, other } = setUp();
  const empty = map.stats().bytesUsed;
  const thrown = inCopy(other, () => map.verify());
  assert.ok(thrown instanceof TypeError, String(thrown));
  assert.equal(other.load(5), "value 5", "not stored");
  assert.equal(map.stats().bytesUsed, empty, "its record freed");
  map.verify();
  map.close();
});

// A death right after the nested calls, before the outer store's exchange, must be swept (the
// word raised) or settled from the outer's own log; the word lowered left its record unfound.
for (
  const [what, nested] of [
    ["a store, then a load", (o: SyncMap<number, string>) => {
      o.store(2, "a nested value");
      o.load(2);
    }],
    ["a load whose quiescent point would collect", (o: SyncMap<number, string>) => {
      syncAccessOf(o).participant.collectSoon();
      o.load(2);
    }],
  ] as const
) {
  test(`SyncMap: ${what} nested in a store's record copy leave the hand word as it was`, () => {
    const { map, other, i32, seat, index } = setUp();
    let taken = -1, hand = -1, mayHold = false;
    assert.equal(
      inCopy(other, () => {
        taken = i32[seat + HAND];
        nested(other);
        hand = i32[seat + HAND];
        mayHold = seatMayHold(syncAccessOf(map).core.registry, index);
      }),
      undefined,
    );
    assert.equal(taken & 3, 2, "the record taken under the store's log");
    assert.ok(hand === 1 || hand === taken, `the word ${hand} after the nested calls`);
    assert.ok(mayHold, "a death there is settled or swept");
    map.verify();
    map.close();
  });
}

test("SyncMap: a store whose record copy throws frees the record and leaves no log", () => {
  const { map, other, i32, seat } = setUp();
  const empty = map.stats().bytesUsed;
  const thrown = inCopy(other, () => {
    throw new Error("from charCodeAt");
  });
  assert.match(String(thrown), /from charCodeAt/);
  assert.ok(i32[seat + HAND] === 0 || i32[seat + HAND] === 1, `the word ${i32[seat + HAND]}`);
  assert.equal(map.stats().bytesUsed, empty, "its record freed");
  assert.equal(other.load(5), "value 5");
  map.verify();
  map.close();
});
