// Copyright the shmap authors. MIT license.
// The hand log (registry.ts HAND_TAKEN, maps/_sync_hand_log.ts): a `store` of a key in the read
// table that dies anywhere in its log is settled by its seat's release, with no sweep of the
// whole map; a stop the log cannot tell apart is swept. In one thread: a second object's seat
// plays the worker, its steps taken as `swap` takes them (_sync_store.ts), and its owner recorded
// gone where the worker would have died.

import assert from "node:assert/strict";
import { test } from "node:test";
import type { SyncMap } from "../mod.ts";
import { GONE, record } from "../src/_engine/census.ts";
import { cachePutBack } from "../src/_engine/alloc_cache.ts";
import {
  ANNOUNCE,
  CACHE,
  CLAIM,
  HAND,
  HAND_ENTRY,
  HAND_NEW,
  HAND_OLD,
  HAND_SWAP,
  HAND_TAKEN,
  INFLIGHT,
  LIST,
  OWNER,
  PARKED,
  PARKED_CLEAN,
  SEAT_IN_USE,
  SEAT_WORDS,
} from "../src/_engine/registry.ts";
import { epochAt, RL_COUNT, tagAt, UNSTAMPED } from "../src/_engine/retire_list.ts";
import { R_SEATS, R_SWEEP_DUE, RECORD_HEADER } from "../src/maps/_sync_layout.ts";
import { syncAccessOf } from "../src/maps/sync_map.ts";
import { SyncCore } from "../src/maps/_sync_core.ts";
import { currentEntryForNumber } from "../src/maps/_sync_entries.ts";
import { retrySweep, setMarkHookForTests, sweepsForTests } from "../src/maps/_sync_recovery.ts";
import { secondSeat } from "./fixtures/second_seat.ts";
import { forEachHeld, settleHandLog } from "../src/maps/_sync_hand_log.ts";

/** A map of 100 number keys with fractions (records), and a second object on a seat of its own. */
function setUp() {
  return secondSeat((i) => i + 0.5);
}

/**
 * {@linkcode setUp}, then the second object's record taken under its hand log (HAND_TAKEN), as a
 * store's first step: `s` the second object's state, `r` the record.
 */
function takenUnderLog() {
  const { map, other, i32, seat } = setUp();
  const s = syncAccessOf(other);
  s.participant.enter();
  const r = s.participant.allocateLogged(RECORD_HEADER);
  assert.equal(i32[seat + HAND] & 3, HAND_TAKEN);
  return { map, i32, seat, s, r };
}

/**
 * Thread ids for the dead owners, each used once: a death recorded for an id already gone does
 * not change the census, and no reap would follow.
 */
let nextGhost = 2 ** 27 + 40_000 + Math.floor(Math.random() * 1_000) * 100;

/** Records the owner of `seat` gone, then makes quiescent points of `map` until it is released. */
function die(map: SyncMap<number, number>, i32: Int32Array, seat: number): void {
  assert.notEqual(Atomics.load(i32, seat + ANNOUNCE), 0, "died inside a call: announced");
  const ghost = nextGhost++;
  Atomics.store(i32, seat + OWNER, ghost + 1);
  record(ghost, GONE);
  for (let n = 0; n < 64; n++) map.load(0);
  assert.equal(Atomics.load(i32, seat + OWNER), 0, "the dead participant's seat is released");
}

/**
 * What a dead seat retired is freed as the others collect: `map` back to `empty` bytes in use,
 * and whole.
 */
function backToEmpty(map: SyncMap<number, number>, empty: number): void {
  for (let n = 0; n < 4096 && map.stats().bytesUsed > empty; n++) map.store(200, n + 0.5);
  map.delete(200);
  for (let n = 0; n < 4096 && map.stats().bytesUsed > empty; n++) map.load(0);
  assert.ok(map.stats().bytesUsed <= empty, `bytesUsed ${map.stats().bytesUsed} > ${empty}`);
  map.verify();
}

/** Participant.retire's tag and epoch for record `old` in `seat`'s list, without its count. */
function retiredUncounted(i32: Int32Array, seat: number, old: number): void {
  const w = i32[seat + LIST] >> 2;
  const n = i32[w + RL_COUNT];
  i32[tagAt(w, n)] = old;
  i32[epochAt(w, n)] = UNSTAMPED;
}

/**
 * The sweeps a death of `seat`'s owner makes: the owner recorded gone ({@linkcode die}), then
 * quiescent points of `map` until no sweep is due ({@linkcode settle}).
 */
function sweepsAtDeath(map: SyncMap<number, number>, i32: Int32Array, seat: number): number {
  const sweeps = sweepsForTests.count;
  die(map, i32, seat);
  settle(map, i32);
  return sweepsForTests.count - sweeps;
}

/** Makes quiescent points of `map` until no sweep is due, or 5 s. */
function settle(map: SyncMap<number, number>, i32: Int32Array): void {
  const end = performance.now() + 5_000;
  while (Atomics.load(i32, R_SWEEP_DUE) !== 0 && performance.now() < end) map.load(0);
}

/**
 * The end of a store of 7.25 over key 5's record staged in the seat at word `seat` (index
 * `index`), `exchanged` or not: its log settled once first if `again` (as by a releaser that
 * stopped midway: registry.ts finishRelease has another finish the release from the start), then
 * its owner dies. Its release settles the log with no sweep, the store applied wholly or not at
 * all, and what the seat held comes back: `map` whole, and back to `empty` bytes in use.
 */
function diesSettled(
  map: SyncMap<number, number>,
  i32: Int32Array,
  seat: number,
  index: number,
  again: boolean,
  exchanged: boolean,
  empty: number,
): void {
  if (again) assert.ok(settleHandLog(syncAccessOf(map).core, index));
  const made = sweepsAtDeath(map, i32, seat);
  assert.equal(Atomics.load(i32, R_SWEEP_DUE), 0, "no sweep is due");
  assert.equal(made, 0, "nothing swept");
  assert.equal(map.load(5), exchanged ? 7.25 : 5.5, "the store applied wholly or not at all");
  map.verify(); // every block reached, listed or cached: nothing leaked, nothing freed twice
  backToEmpty(map, empty);
  map.close();
}

// The steps of a store of 7.25 (a record) over key 5's record, in swap's order; the worker dies
// after the step named.
const STOPS = [
  "the log names the block, before the pop",
  "the block taken",
  "the exchange logged",
  "the exchange made",
  "the old record's retirement written, not counted",
  "the old record retired",
] as const;

for (const [at, stop] of STOPS.entries()) {
  for (const again of [false, true]) {
    test(`SyncMap: a store that died after ${stop} is settled from its hand log${again ? ", twice" : ""}`, () => {
      const { map, other, i32, seat } = setUp();
      const s = syncAccessOf(other);
      const part = s.participant;
      const a = s.arena;
      const empty = map.stats().bytesUsed;
      // swap's steps (_sync_store.ts), for a number key and a number value that needs a record.
      part.enter();
      const r = part.allocate(RECORD_HEADER, true, true);
      a.f64[r >> 3] = 7.25;
      assert.equal(i32[seat + HAND] & 3, HAND_TAKEN, "the block is taken under a log");
      assert.equal(i32[seat + HAND_NEW], r);
      if (at === 0) {
        // Not taken yet: the head of its list again, the log naming it.
        const hand = i32[seat + HAND];
        cachePutBack(a, i32[seat + CACHE], hand >>> 2, r);
        assert.equal(i32[seat + HAND_NEW], r);
      }
      const e = currentEntryForNumber(s, 5);
      const old = i32[e >> 2];
      assert.ok(old > 1 && (old & 1) === 0, "key 5 holds a record");
      if (at >= 2) part.logSwap(e, old, r);
      if (at >= 3) assert.equal(Atomics.compareExchange(i32, e >> 2, old, r), old);
      if (at === 4) retiredUncounted(i32, seat, old);
      if (at >= 5) s.core.retireRecord(old);
      diesSettled(map, i32, seat, part.index, again, at >= 3, empty);
    });
  }
}

// The same store with its exchange logged as its block is taken (Participant.allocateSwap: a store
// of a number whose key's entry holds a record), stopped after each step.
const SWAP_STOPS = [
  "its log, before the pop",
  "the block taken",
  "the exchange made",
  "the old record's retirement written, not counted",
  "the old record retired",
] as const;

for (const [at, stop] of SWAP_STOPS.entries()) {
  for (const again of [false, true]) {
    test(`SyncMap: a store logged as it took its block, dead after ${stop}, is settled from its log${again ? ", twice" : ""}`, () => {
      const { map, other, i32, seat } = setUp();
      const s = syncAccessOf(other);
      const part = s.participant;
      const a = s.arena;
      const empty = map.stats().bytesUsed;
      part.enter();
      const e = currentEntryForNumber(s, 5);
      const old = i32[e >> 2];
      assert.ok(old > 1 && (old & 1) === 0, "key 5 holds a record");
      const r = part.allocateSwap(RECORD_HEADER, e, old);
      assert.notEqual(r, 0, "taken from the cache");
      a.f64[r >> 3] = 7.25;
      assert.equal(i32[seat + HAND] & 3, HAND_SWAP, "the exchange is logged as the block is taken");
      assert.deepEqual([i32[seat + HAND_NEW], i32[seat + HAND_ENTRY], i32[seat + HAND_OLD]], [
        r,
        e,
        old,
      ]);
      // Not taken yet: the head of its list again, the log naming it.
      if (at === 0) cachePutBack(a, i32[seat + CACHE], i32[seat + HAND] >>> 2, r);
      if (at >= 2) assert.equal(Atomics.compareExchange(i32, e >> 2, old, r), old);
      if (at === 3) retiredUncounted(i32, seat, old);
      if (at >= 4) s.core.retireRecord(old);
      diesSettled(map, i32, seat, part.index, again, at >= 2, empty);
    });
  }
}

// Logged before its pop, the block still the head of its list: nothing was taken, whatever the
// entry holds since (another thread's store between the death and the release).
test("SyncMap: a store dead before the pop of its block, the key stored again since, is not swept", () => {
  const { map, other, i32, seat } = setUp();
  const s = syncAccessOf(other);
  const part = s.participant;
  const empty = map.stats().bytesUsed;
  part.enter();
  const e = currentEntryForNumber(s, 5);
  const r = part.allocateSwap(RECORD_HEADER, e, i32[e >> 2]);
  cachePutBack(s.arena, i32[seat + CACHE], i32[seat + HAND] >>> 2, r);
  map.store(5, 9.5);
  assert.equal(sweepsAtDeath(map, i32, seat), 0, "nothing swept");
  assert.equal(map.load(5), 9.5);
  map.verify();
  backToEmpty(map, empty);
  map.close();
});

test("SyncMap: a store of a number over a record logs its exchange as it takes its block", () => {
  const { other, i32, seat } = setUp();
  const s = syncAccessOf(other);
  const part = s.participant;
  const taken: [number, number][] = [];
  const allocateSwap = part.allocateSwap;
  part.allocateSwap = function (size: number, e: number, old: number): number {
    const r = allocateSwap.call(this, size, e, old);
    taken.push([r, i32[seat + HAND] & 3]);
    return r;
  };
  try {
    other.store(5, 7.25); // over a record: taken with its exchange logged
    other.store(6, 7); // an immediate: no block
    other.store(300, 0.5); // a key new to the map: no entry to log
  } finally {
    part.allocateSwap = allocateSwap;
  }
  assert.equal(taken.length, 1);
  assert.notEqual(taken[0][0], 0);
  assert.equal(taken[0][1], HAND_SWAP);
  assert.equal(i32[seat + HAND], 0, "the log ended");
  assert.equal(other.load(5), 7.25);
});

// The entry written by another thread after the stop can hold neither value the log names: the
// log cannot tell whether the exchange was the dead thread's, and the seat is swept.
for (const exchanged of [false, true]) {
  test(`SyncMap: a logged store that died ${exchanged ? "after" : "before"} its exchange, the key stored again since, is swept`, () => {
    const { map, other, i32, seat } = setUp();
    const s = syncAccessOf(other);
    const part = s.participant;
    part.enter();
    const r = part.allocate(RECORD_HEADER, true, true);
    s.arena.f64[r >> 3] = 7.25;
    const e = currentEntryForNumber(s, 5);
    const old = i32[e >> 2];
    part.logSwap(e, old, r);
    if (exchanged) assert.equal(Atomics.compareExchange(i32, e >> 2, old, r), old);
    map.store(5, 9.5); // another thread's store, between the death and the release
    assert.equal(sweepsAtDeath(map, i32, seat), 1, "swept once");
    assert.equal(map.load(5), 9.5);
    map.verify();
    map.close();
  });
}

// Every call leaves the word 0 or 1: a logged store ends its log, so the next log is never written
// over another one. Over another one, a death between its words left the settling a mix of the
// two (helper-141: a store of an immediate over a record, stopped between HAND_OLD and HAND_NEW
// after a store of a record had left its log, had a published record put back in the cache).
test("SyncMap: every call leaves the hand word 0 or 1", () => {
  const { other, i32, seat } = setUp();
  const hand = () => i32[seat + HAND];
  let x = 0x2545f491;
  const next = () => (x = Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) ^ (x >>> 12)) >>> 0;
  for (let n = 0; n < 4000; n++) {
    const k = next() % 150; // keys 100 to 149 are new to the read table
    const r = next() % 8;
    const v = r < 3 ? next() % 1000 : r < 6 ? (next() % 1000) + 0.5 : undefined;
    if (v === undefined) {
      if (r === 6) other.delete(k);
      else other.load(k);
    } else other.store(k, v);
    assert.ok(hand() === 0 || hand() === 1, `after call ${n}: ${hand()}`);
  }
  other.store(5, 7.25);
  assert.equal(hand(), 0, "a record over a record");
  other.store(1000, 0.5); // a new key: the locked step, which the record's log goes through
  assert.equal(hand(), 0, "a new key's store");
  other.delete(1000);
  assert.equal(hand(), 1, "a delete");
  assert.equal(other.load(5), 7.25);
  assert.equal(hand(), 0, "a read lowers it");
});

// A log's words are read only under its phase word, written last: a store of an immediate over a
// record stopped after HAND_ENTRY and HAND_OLD (the word still 0) is not settled at all.
test("SyncMap: a log stopped before its phase word is not read", () => {
  const { map, other, i32, seat } = setUp();
  const s = syncAccessOf(other);
  other.store(5, 7.25);
  s.participant.enter();
  const e6 = currentEntryForNumber(s, 6);
  i32[seat + HAND_ENTRY] = e6;
  i32[seat + HAND_OLD] = i32[e6 >> 2];
  assert.equal(sweepsAtDeath(map, i32, seat), 0, "nothing swept");
  map.verify();
  for (let n = 0; n < 200; n++) map.store(300 + n, n + 0.25);
  assert.equal(map.load(5), 7.25);
  assert.equal(map.load(6), 6.5);
  map.close();
});

// A store nested in the record copy of a logged one (a String.prototype.charCodeAt the user
// patched, storing through the same object) logs nothing and raises the word: a death after it
// returns, before the outer's exchange, is swept, with the outer's record in hand (helper-141:
// the nested store's log replaced the outer's and said nothing was in hand). The settling is
// asked where the death would be; the thread then goes on.
/**
 * Stores a string value over key 5 through `other`, whose copy into its record (a
 * `String.prototype.charCodeAt` the user patched) runs `nested` once; returns the hand word after
 * `nested` and whether a settling of the seat's log there would have done (a death there).
 */
function nestedInCopy(
  { map, other, i32, seat, index }: ReturnType<typeof secondSeat<string>>,
  nested: () => void,
): { hand: number; settled: boolean | undefined } {
  const charCodeAt = String.prototype.charCodeAt;
  let hand = -1;
  let settled: boolean | undefined;
  String.prototype.charCodeAt = function (this: string, i: number) {
    if (i === 5 && hand === -1) {
      String.prototype.charCodeAt = charCodeAt;
      nested();
      hand = i32[seat + HAND];
      settled = settleHandLog(syncAccessOf(map).core, index);
    }
    return charCodeAt.call(this, i);
  };
  try {
    other.store(5, "an outer value, long");
  } finally {
    String.prototype.charCodeAt = charCodeAt;
  }
  return { hand, settled };
}

test("SyncMap: a store nested in a logged store's record copy raises the word", () => {
  const seated = secondSeat((i) => `value ${i}`);
  const { map, other, i32, seat } = seated;
  const { hand, settled } = nestedInCopy(seated, () => other.store(2, "a nested value"));
  assert.equal(hand, 1, "raised by the nested store");
  assert.equal(settled, false, "a death there is swept");
  assert.equal(i32[seat + HAND], 1, "the outer store went on raised");
  // (What the two stores wrote is not checked: the nested call shares the outer's scratch, as
  // nothing tells the map that a built-in it calls is user code: README, "Deno".)
  map.verify();
  map.close();
});

// A second call nested in a record copy, after a first one raised the outer store's log, finds
// the word 1, which a call opens its log from: under a hold it must not (helper-144). Logged
// there, a death inside it was settled from its log alone, and the outer store's record, reached
// by nothing, leaked with no sweep.
/** A string value, as the outer store's whose copy the nested calls run in. */
const OUTER = "an outer value, long enough";

test("SyncMap: no call logs under a hold, the word raised or not", () => {
  const { map, other, i32, seat } = setUp();
  const s = syncAccessOf(other);
  const part = s.participant;
  part.enter();
  const outer = s.core.newRecord(s.probeValue(OUTER as unknown as number), true, true);
  assert.equal(i32[seat + HAND] & 3, HAND_TAKEN, "the outer store's log");
  part.holdBegin(); // SyncCore's #copyString
  try {
    other.store(2, 7.25); // a first nested store: raises the word
    assert.equal(i32[seat + HAND], 1);
    part.enter(); // a second one, up to its block and its log
    const e = currentEntryForNumber(s, 3);
    const old = i32[e >> 2];
    assert.equal(part.allocateSwap(RECORD_HEADER, e, old), 0, "allocateSwap takes nothing");
    const r = part.allocateLogged(RECORD_HEADER);
    assert.equal(i32[seat + HAND], 1, "taken unlogged");
    assert.equal(part.logSwap(e, old, r), false);
    assert.equal(part.logSwap(e, old, 7), false, "an immediate");
    assert.equal(part.logDelete(e, old, false), false);
    assert.equal(i32[seat + HAND], 1, "still raised: a death here is swept");
    assert.equal(settleHandLog(syncAccessOf(map).core, part.index), false);
    part.release(r, RECORD_HEADER);
  } finally {
    part.holdEnd();
  }
  part.release(outer, RECORD_HEADER + 4 + 2 * OUTER.length);
  map.verify();
  map.close();
});

test("SyncMap: a store dead in the second call nested in its record copy is swept", () => {
  const { map, other, i32, seat } = setUp();
  const s = syncAccessOf(other);
  const part = s.participant;
  part.enter();
  s.core.newRecord(s.probeValue(OUTER as unknown as number), true, true);
  part.holdBegin();
  other.store(2, 7.25);
  part.enter();
  const e = currentEntryForNumber(s, 3);
  const old = i32[e >> 2];
  let r = part.allocateSwap(RECORD_HEADER, e, old);
  if (r === 0) {
    r = part.allocateLogged(RECORD_HEADER);
    part.logSwap(e, old, r);
  }
  part.holdEnd(); // in this thread only, so that `map` can reap the seat
  assert.equal(sweepsAtDeath(map, i32, seat), 1, "swept: the outer record is found unreached");
  map.verify();
  map.close();
});

test("SyncMap: a record freed unpublished raises the word before the free", () => {
  const { map, i32, seat, s, r } = takenUnderLog();
  // As swap's finally after a catch cut short by a stack overflow, which left the log naming r.
  s.core.releaseUnpublished(r);
  assert.equal(i32[seat + HAND], 1, "raised: no log names a block back in the cache");
  map.verify();
  map.close();
});

// A death after stores that returned, in the same task (between calls, or in a read): nothing
// in hand, and no sweep.
test("SyncMap: a store that returned, then a death in a read, is not swept", () => {
  const { map, other, i32, seat } = setUp();
  other.store(5, 7.25);
  other.store(6, 8.25);
  assert.equal(other.load(5), 7.25);
  other.load(123_456); // a miss: the read table is not amended, so no lock
  assert.equal(sweepsAtDeath(map, i32, seat), 0, "nothing swept");
  assert.equal(map.load(5), 7.25);
  assert.equal(map.load(6), 8.25);
  map.verify();
  map.close();
});

// A sweep due from an earlier death must not run over a hand log no release has settled yet: the
// block the log names is reached by nothing, and swept, it was put back again by the settling,
// a double free (tests/pool_test.ts on Bun found it). Here the owner is recorded gone and a retry
// of the sweep comes before any reap of it: the retry leaves the sweep due, the reap settles the
// log, and the sweep after it finds nothing amiss.
test("SyncMap: no sweep runs over a dead participant's hand log before its release", () => {
  const { map, i32, seat, r } = takenUnderLog();
  const ghost = nextGhost++;
  Atomics.store(i32, seat + OWNER, ghost + 1);
  record(ghost, GONE);
  Atomics.store(i32, R_SWEEP_DUE, 1); // left by another death
  const sweeps = sweepsForTests.count;
  retrySweep(syncAccessOf(map).core);
  assert.equal(sweepsForTests.count, sweeps, "no sweep over the unsettled log");
  assert.equal(Atomics.load(i32, R_SWEEP_DUE), 1, "left due");
  for (let n = 0; n < 64; n++) map.load(0); // the reap: the seat released, its log settled
  assert.equal(Atomics.load(i32, seat + OWNER), 0);
  settle(map, i32);
  assert.equal(sweepsForTests.count, sweeps + 1, "the sweep left due, after the release");
  assert.notEqual(r, 0);
  map.verify(); // the record went back to the seat's cache once: not freed twice
  for (let j = 200; j < 400; j++) map.store(j, j + 0.5); // blocks of its class, handed out again
  map.verify();
  map.close();
});

// A sweep checks for unsettled logs before it marks, and an owner it found alive then may be
// found gone by the marking: its end declared meanwhile (a worker adapter does so from its event
// loop, at any moment) or its grace run out. One parked in the mutex's wait with its record in
// hand is then no longer in flight, and its record is reached by nothing; freed by the sweep, it
// was put back into the seat's cache by the release's settling as well, and so handed out twice
// (tests/pool_test.ts on Bun, 4 runs in 70).
test("SyncMap: a sweep frees no block a hand log names, its owner found gone as it marks", () => {
  const { map, i32, seat, r } = takenUnderLog();
  // Parked in the mutex's wait with the record in flight, as Participant's park leaves it.
  i32[seat + INFLIGHT] = r;
  Atomics.store(i32, seat + PARKED, PARKED_CLEAN);
  const ghost = nextGhost++;
  Atomics.store(i32, seat + OWNER, ghost + 1);
  Atomics.store(i32, R_SWEEP_DUE, 1); // left by another death
  const sweeps = sweepsForTests.count;
  setMarkHookForTests(() => record(ghost, GONE));
  try {
    retrySweep(syncAccessOf(map).core);
  } finally {
    setMarkHookForTests(undefined);
  }
  assert.equal(sweepsForTests.count, sweeps + 1, "swept, the owner alive at its checks");
  for (let n = 0; n < 64; n++) map.load(0); // the reap: the seat released, its log settled
  assert.equal(Atomics.load(i32, seat + OWNER), 0);
  settle(map, i32);
  map.verify(); // the record went back to the seat's cache once: not freed twice
  for (let j = 200; j < 400; j++) map.store(j, j + 0.5); // blocks of its class, handed out again
  map.verify();
  map.close();
});

// verify() marks what a live participant's log holds too (the same marking as a sweep's): the
// block taken, reached by nothing else while the call is under way; not one the log names before
// its pop, still at the head of its list, which the cache holds.
for (const popped of [true, false]) {
  test(`SyncMap: verify() counts a parked participant's logged block ${popped ? "as in hand" : "before its pop as cached"}`, () => {
    const { map, i32, seat, s, r } = takenUnderLog();
    if (!popped) cachePutBack(s.arena, i32[seat + CACHE], i32[seat + HAND] >>> 2, r);
    Atomics.store(i32, seat + PARKED, PARKED_CLEAN); // parked, nothing in flight: the pause goes on
    try {
      map.verify();
    } finally {
      Atomics.store(i32, seat + PARKED, 0);
    }
    map.close();
  });
}

// A log whose cache word lies past the buffer (words no log holds): the settling gives up on it (a
// sweep finds what it held), and the marking keeps its block all the same, for verify() to report
// rather than free a block a log names. Both answers come from one predicate (takenState).
test("SyncMap: a log whose cache lies past the views is given up by the settling, its block kept by the marking", () => {
  const { map, i32, seat, s, r } = takenUnderLog();
  const core = syncAccessOf(map).core;
  const index = (seat - i32[R_SEATS]) / SEAT_WORDS;
  const cache = i32[seat + CACHE];
  const held: number[] = [];
  Atomics.store(i32, seat + PARKED, PARKED_CLEAN); // parked: a log a release would settle
  i32[seat + CACHE] = s.arena.bytes + 4096;
  try {
    assert.equal(settleHandLog(core, index), false, "the settling gives up");
    forEachHeld(core, index, (b) => held.push(b));
  } finally {
    i32[seat + CACHE] = cache;
    Atomics.store(i32, seat + PARKED, 0);
  }
  assert.deepEqual(held, [r], "the marking keeps the block the log took");
  // The same log with its cache word back: off its list (what the settling would put back), and
  // kept by the marking while the seat may hold it.
  held.length = 0;
  Atomics.store(i32, seat + PARKED, PARKED_CLEAN);
  try {
    forEachHeld(core, index, (b) => held.push(b));
  } finally {
    Atomics.store(i32, seat + PARKED, 0);
  }
  assert.deepEqual(held, [r]);
  map.close();
});

// A log stays in its seat once settled, and a seat claimed again (its next owner not yet online,
// or a collect borrowing it) is in use with that log in it, naming blocks freed since: the marking
// counts only the logs a release would settle, of seats announced or parked.
test("SyncMap: a settled log left in a seat claimed again is not taken for one in hand", () => {
  const { map, i32, seat, r } = takenUnderLog();
  die(map, i32, seat); // released: its log settled, the record back in the seat's cache
  for (let n = 0; n < 4096 && i32[seat + CACHE] !== 0; n++) map.load(0);
  assert.equal(i32[seat + CACHE], 0, "the orphan's cache given back: the record free in its span");
  assert.equal(i32[seat + HAND_NEW], r, "the settled log is still in the seat");
  // Claimed again, as claimFree leaves it before its new owner writes anything.
  const claim = Atomics.load(i32, seat + CLAIM);
  Atomics.store(i32, seat + CLAIM, (claim & ~3) | SEAT_IN_USE);
  try {
    map.verify();
  } finally {
    Atomics.store(i32, seat + CLAIM, claim);
  }
  map.close();
});

// Strings: the record of a string value, taken under the log in newRecord.
test("SyncMap: a store of a string value that died after its exchange is settled from its log", () => {
  const { map, other, i32, seat } = secondSeat((i) => `value ${i}`);
  const s = syncAccessOf(other);
  s.participant.enter();
  const r = s.core.newRecord(s.probeValue("a new value, longer than the old one"), true, true);
  assert.equal(i32[seat + HAND] & 3, HAND_TAKEN);
  const e5 = currentEntryForNumber(s as never, 5);
  const old = i32[e5 >> 2];
  s.participant.logSwap(e5, old, r);
  assert.equal(Atomics.compareExchange(i32, e5 >> 2, old, r), old);
  assert.equal(sweepsAtDeath(map as never, i32, seat), 0, "nothing swept");
  assert.equal(map.load(5), "a new value, longer than the old one");
  map.verify();
  map.close();
});

// The steps of a delete of key 5 (a record) in the read table, in deleteEntry's order; the worker
// dies after the step named. Between the exchange and the count the log cannot say whether the
// exchange was the dead call's: swept, as before the log.
const DELETE_STOPS = [
  { stop: "the exchange logged", swept: false },
  { stop: "the exchange made", swept: true },
  { stop: "the key counted out", swept: false },
  { stop: "the old record's retirement written, not counted", swept: false },
  { stop: "the old record retired", swept: false },
] as const;

for (const [at, { stop, swept }] of DELETE_STOPS.entries()) {
  test(`SyncMap: a delete that died after ${stop} is ${swept ? "swept" : "settled from its hand log"}`, () => {
    const { map, other, i32, seat } = setUp();
    const s = syncAccessOf(other);
    const part = s.participant;
    const empty = map.stats().bytesUsed;
    // deleteEntry's steps (_sync_delete.ts).
    part.enter();
    const e = currentEntryForNumber(s, 5);
    const old = i32[e >> 2];
    assert.ok(old > 1 && (old & 1) === 0, "key 5 holds a record");
    assert.ok(part.logDelete(e, old, false));
    assert.equal(i32[seat + HAND], HAND_SWAP);
    if (at >= 1) assert.equal(Atomics.compareExchange(i32, e >> 2, old, 0), old);
    if (at >= 2) {
      s.core.count(-1);
      part.logCounted();
    }
    if (at === 3) retiredUncounted(i32, seat, old);
    if (at >= 4) s.core.retireRecord(old);
    const made = sweepsAtDeath(map, i32, seat);
    assert.equal(Atomics.load(i32, R_SWEEP_DUE), 0, "no sweep is due");
    assert.equal(made, swept ? 1 : 0, "sweeps");
    assert.equal(map.load(5), at >= 1 ? undefined : 5.5, "the delete applied wholly or not at all");
    assert.equal(map.size, at >= 1 ? 99 : 100, "the key count");
    map.verify();
    backToEmpty(map, empty);
    map.close();
  });
}

test("SyncMap: a delete ends its log; one whose locked step took its entry out stays raised", () => {
  const { map, other, i32, seat } = setUp();
  other.delete(5); // in the read table: logged
  assert.equal(i32[seat + HAND], 0, "ended");
  assert.equal(other.loadAndDelete(6)[0], 6.5);
  assert.equal(i32[seat + HAND], 0, "ended");
  assert.ok(other.compareAndSwap(2, 2.5, 3.5)); // raised: it takes its record unlogged
  assert.equal(i32[seat + HAND], 1);
  assert.equal(other.compareAndDelete(7, 7.5), true);
  assert.equal(i32[seat + HAND], 0, "a compare-and-delete's ended");
  assert.ok(other.compareAndSwap(2, 3.5, 4.5));
  assert.equal(other.compareAndDelete(8, 9.5), false);
  assert.equal(i32[seat + HAND], 1, "a mismatch takes nothing and writes nothing");
  map.store(300, 1.5); // a key only the dirty table holds
  assert.equal(other.delete(300), true); // its step took the entry out
  assert.equal(i32[seat + HAND], 1, "raised: the record is reached through a retired entry only");
  map.verify();
  map.close();
});

// A write of a new key nested in a logged store's record copy: it must neither log over the outer
// store's log nor end with the word lowered while the outer store holds its record (a store's and
// a loadOrStore's step end their logs as they return).
for (const nested of ["store", "loadOrStore"] as const) {
  test(`SyncMap: a ${nested} of a new key nested in a store's record copy leaves the word raised`, () => {
    const seated = secondSeat((i) => `value ${i}`);
    const { map, other, i32, seat } = seated;
    let inStep = -1;
    const addLocked = SyncCore.prototype.addLocked;
    let found: { hand: number; settled: boolean | undefined };
    try {
      found = nestedInCopy(seated, () => {
        SyncCore.prototype.addLocked = function (this: SyncCore, ...args) {
          inStep = i32[seat + HAND];
          return addLocked.apply(this, args);
        };
        if (nested === "store") other.store(1000, "a nested new key");
        else other.loadOrStore(1000, "a nested new key");
        SyncCore.prototype.addLocked = addLocked;
      });
    } finally {
      SyncCore.prototype.addLocked = addLocked;
    }
    const { hand, settled } = found;
    // Its record taken unlogged, not over the outer store's log: raised all through.
    assert.equal(inStep, 1, "raised in the nested write's step");
    assert.equal(hand, 1, "raised after the nested write");
    assert.equal(settled, false, "a death there is swept");
    // (The outer store then goes on raised, or through the mutex, whose step ends its log.)
    assert.ok(i32[seat + HAND] === 0 || i32[seat + HAND] === 1, `${i32[seat + HAND]}`);
    // (What the two wrote is not checked: they share the handle's scratch, as in the test above.)
    map.verify();
    map.close();
  });
}
