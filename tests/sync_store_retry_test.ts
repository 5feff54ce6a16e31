// Copyright the shmap authors. MIT license.
// A SyncMap store whose locked step ran out of memory is run again after a collect
// (SyncAccess.lockedOrReclaim), and a collect is a quiescent point: the read table the store's
// lock-free search found without the key may be freed meanwhile, and a new table allocated at
// its offset and promoted. The retry must search the read table again, or the key is added to
// the dirty table a second time and the store is lost (found by helper-126's review). The other
// worker is a second participant of the same map in this thread, acting in the two windows the
// store leaves; the out-of-memory error is the allocator's own (its test hook refuses the step's
// allocation).

import assert from "node:assert/strict";
import { test } from "node:test";
import { SyncMap } from "../mod.ts";
import { attachOwnSeat } from "../src/maps/sync_map.ts";
import { SyncCore } from "../src/maps/_sync_core.ts";
import { Participant } from "../src/_engine/reclaim.ts";
import { failAllocationsForTests } from "../src/_engine/allocator.ts";
import { AMENDED, R_READ } from "../src/maps/_sync_layout.ts";

test("SyncMap: a store's locked step run again after a collect searches the read table again", () => {
  const N = 8;
  const h1 = new SyncMap<number, number>();
  const h2 = attachOwnSeat<number, number>(h1.handle);
  const i32 = new Int32Array(h1.handle.buffer);
  const enter = Participant.prototype.enter;
  const locked = SyncCore.prototype.locked;
  const reclaimNow = Participant.prototype.reclaimNow;
  let captured: Participant | null = null;
  const participantOf = (f: () => void): Participant => {
    captured = null;
    f();
    return captured!;
  };
  try {
    Participant.prototype.enter = function (this: Participant) {
      captured = this;
      return enter.call(this);
    };
    for (let k = 0; k < N; k++) h1.store(k, k + 0.5);
    for (let i = 0; i < 5 && h1.stats().amended; i++) for (let k = 0; k < N; k++) h1.load(k);
    assert.equal(h1.stats().amended, false, "promoted");
    const p1 = participantOf(() => h1.store(0, 0.25)); // a retired record: p1 has some waiting
    for (let k = 1; k < N; k++) h1.store(k, k + 0.25);
    const p2 = participantOf(() => h2.store(0, 0.125));
    assert.notEqual(p1, p2);
    const searched = i32[R_READ]; // the read table h1's store will find without K
    const K = 1000;
    let phase = 1;
    let retriedAt = 0;
    let core1: SyncCore | null = null;
    SyncCore.prototype.locked = function <T, A>(this: SyncCore, f: (arg: A) => T, arg?: A): T {
      if (phase === 1) {
        phase = 2;
        core1 = this;
        // The other worker promotes, retiring the table searched, and reaches a quiescent point.
        h2.store(999, 7.5);
        for (let i = 0; i < 3 * N && (i32[R_READ] & ~AMENDED) === (searched & ~AMENDED); i++) {
          h2.load(999);
        }
        p2.collect();
        failAllocationsForTests(() => true);
        try {
          return locked.call(this, f as (arg: unknown) => T, arg) as T;
        } finally {
          failAllocationsForTests(undefined);
        }
      }
      if (phase === 3 && this === core1) {
        phase = 4;
        retriedAt = i32[R_READ];
      }
      return locked.call(this, f as (arg: unknown) => T, arg) as T;
    };
    Participant.prototype.reclaimNow = function (this: Participant) {
      const freed = reclaimNow.call(this);
      if (phase === 2 && this === p1) {
        phase = 3;
        // Between the tries: the other worker stores K, frees the old table and promotes new
        // ones until one lands at the offset searched.
        h2.store(K, 7.5);
        for (let t = 0; t < 40 && i32[R_READ] !== searched; t++) {
          p2.collect();
          h2.store(2000 + t, 1.5);
          for (let i = 0; i < 200 && (i32[R_READ] & AMENDED) !== 0; i++) h2.load(2000 + t);
        }
      }
      return freed;
    };
    h1.store(K, 9.5);
    assert.equal(phase, 4, "the step ran out of memory and was run again");
    assert.equal(
      retriedAt,
      searched,
      "a new read table at the offset searched, as the retry began",
    );
    assert.equal(h1.load(K), 9.5);
    assert.equal(h2.load(K), 9.5);
    let seen = 0;
    h1.range((k) => {
      if (k === K) seen++;
      return true;
    });
    assert.equal(seen, 1, "K listed once");
    h1.verify();
  } finally {
    Participant.prototype.enter = enter;
    SyncCore.prototype.locked = locked;
    Participant.prototype.reclaimNow = reclaimNow;
    failAllocationsForTests(undefined);
  }
});
