// Copyright the shmap authors. MIT license.
// Engine unit tests of the epochs a retired block waits on (src/_engine/reclaim.ts): a retirement
// is stamped lazily, at the retirer's next quiescent point or collect, with an epoch loaded after
// the unlink, and a list whose owner is released unstamped is stamped as its seat is released.
// Participants here are real, on a SyncMap's arena, driven by hand in one thread; their frees
// are recorded instead of made (the tags name no block).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SyncMap } from "../mod.ts";
import { Arena, KIND_SYNC_MAP } from "../src/_engine/arena.ts";
import { COLLECT_BUDGET, Participant, QUIESCE_EVERY } from "../src/_engine/reclaim.ts";
import { claimSeat, releaseSeat } from "../src/_engine/registry.ts";
import { registryOf } from "../src/maps/_sync_layout.ts";

/**
 * `n` participants of a fresh map, each recording the tags it frees (or tries to: the first
 * throws, once, as it frees `throwAt`, as a stack overflow or a terminated thread can), and
 * calling `onFree` with its index and the tag after recording it.
 */
async function setup(n: number, throwAt = -1, onFree?: (i: number, tag: number) => void) {
  const map = new SyncMap<number, number>({ maxParticipants: 6 });
  // Let the map's own participant go offline (a microtask at the end of the task), so that its
  // announcement holds nothing back.
  await new Promise((resolve) => setTimeout(resolve, 0));
  const registry = registryOf(Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test"));
  const ps = Array.from({ length: n }, (_, i) => {
    const freed: number[] = [];
    let throwOnce = i === 0 ? throwAt : -1;
    const ticket = claimSeat(registry);
    const p = new Participant(registry, ticket, (tag) => {
      freed.push(tag);
      onFree?.(i, tag);
      if (tag === throwOnce) {
        throwOnce = -1;
        throw new RangeError("Maximum call stack size exceeded");
      }
      return false;
    });
    return { p, freed, ticket };
  });
  return { map, registry, ps };
}

/** Calls that bring `p` to a quiescent point, where it announces the current epoch. */
function quiesce(p: Participant): void {
  for (let i = 0; i < QUIESCE_EVERY; i++) p.enter();
}

/** Collects of `p`, each after a quiescent point, until more could not free more. */
function collectAll(p: Participant): void {
  for (let i = 0; i < 4; i++) {
    quiesce(p);
    p.collect();
  }
}

/**
 * Brings `one` and `two` online and has one retire a backlog of `n` blocks while two stalls, all
 * stamped: one's collect kept them, and put its next try off to 1.5 * n. Synchronous: an await
 * would let both go offline (their microtask), which the callers' counts do not expect.
 */
function stalledBacklog(one: Seat, two: Seat, n: number): void {
  one.p.enter();
  two.p.enter();
  for (let k = 0; k < n; k++) {
    one.p.enter(); // room for the retirement, and a quiescent point every QUIESCE_EVERY
    one.p.retire(0x10000 + 16 * k);
  }
  // Stamps the last ones too: a stamp is lazy, and one made after two's next announcement would
  // rightly make them wait for the one after.
  one.p.collect();
  assert.deepEqual(one.freed, [], "freed while two, stalled, may read them");
}

const hex = (tags: number[]): string => tags.map((t) => t.toString(16)).join(", ");

type Seat = Awaited<ReturnType<typeof setup>>["ps"][number];

/**
 * Asserts that `retirer`'s collect keeps `tag`, which it retired after `reader`'s last
 * announcement (`why` names what a free would break), until `reader` announces again, and then
 * frees it.
 */
function freedOnlyOnceAnnounced(retirer: Seat, reader: Seat, tag: number, why: string): void {
  retirer.p.collect();
  assert.deepEqual(retirer.freed, [], why);
  quiesce(reader.p);
  retirer.p.collect();
  assert.deepEqual(retirer.freed, [tag]);
}

const X = 0x100; // a tag: a 16-aligned "offset" with kind 0
const Y = 0x200;
const Z = 0x300;

describe("reclamation epochs", () => {
  it("keeps a block retired after an announcement until that participant announces again", async () => {
    const { map, ps: [one, two] } = await setup(2);
    // Both online, at the epoch of now.
    one.p.enter();
    two.p.enter();
    // One retires and collects: the epoch advances past what two loaded, and one announces it.
    one.p.retire(Y);
    one.p.collect();
    // Two retires now, after that advance: one's announcement came before this unlink, so one
    // may still be reading the block. An epoch stamped from what two loaded before the advance
    // would let two's collect free it at once. Once one announces again, it is safe to free.
    two.p.retire(X);
    freedOnlyOnceAnnounced(
      two,
      one,
      X,
      "freed while a participant that announced before it may read it",
    );
    one.p.close();
    two.p.close();
    map.close();
  });

  it("announces during a long sweep, so that another's collect meanwhile frees what waited for it", async () => {
    // While one sweeps a large backlog, two retires Z and collects: Z is dated after one's
    // announcement at the start of its collect, so only an announcement one makes later, in
    // the middle of its sweep, lets two's next collect free Z before one's sweep ends. Without
    // it, each writer's long sweep held the other's frees back (docs/design.md, "Long sweeps
    // announce"). Backlog of 1,024: the sweep announces every 256 entries.
    const BACKLOG = 1024;
    let frees = 0;
    let twoFreedZ = -1;
    const { map, ps: [one, two] } = await setup(2, -1, (i) => {
      if (i !== 0) return;
      frees++;
      if (frees === 1) {
        two.p.enter();
        two.p.retire(Z);
        two.p.collect(); // dates Z after one's announcement: kept
        assert.deepEqual(two.freed, [], "Z freed while one may still read it");
      } else if (frees === BACKLOG / 2) {
        two.p.collect();
        if (two.freed.includes(Z)) twoFreedZ = frees;
      }
    });
    one.p.enter();
    two.p.enter();
    const tags = Array.from({ length: BACKLOG }, (_, k) => 0x10000 + 16 * k);
    for (const tag of tags) {
      one.p.enter(); // room for the retirement
      one.p.retire(tag);
    }
    one.p.collect(); // stamps the backlog; two's announcement predates it: nothing freed
    assert.deepEqual(one.freed, []);
    quiesce(two.p); // two announces an epoch after the stamp: the backlog may go
    one.p.collect();
    assert.equal(one.freed.length, BACKLOG, "one's whole backlog freed");
    assert.equal(
      twoFreedZ,
      BACKLOG / 2,
      "two's collect halfway through one's sweep freed Z: one announced during its sweep",
    );
    one.p.close();
    two.p.close();
    map.close();
  });

  it("frees what a participant retired and never stamped, once its seat is released", async () => {
    const { map, registry, ps: [one, two] } = await setup(2);
    one.p.enter();
    two.p.enter();
    two.p.retire(X);
    // Two's seat is released before any quiescent point or collect of its own stamped X (as a
    // dead worker's is): the collect that borrows the orphan's list stamps X, and a later one
    // frees it. Taken for stamped, or never stamped, X would be freed early or wait for good.
    releaseSeat(registry, two.ticket.index, two.ticket.word >>> 2);
    one.p.collect();
    quiesce(one.p);
    one.p.collect();
    assert.deepEqual(one.freed, [X], "the orphan's block is freed by the borrower's collect");
    one.p.close();
    map.close();
  });

  it("dates a retirement of a locked step after the step, whose unlink is its commit", async () => {
    const { map, registry, ps: [one, two] } = await setup(2);
    one.p.enter();
    two.p.enter();
    // Two's locked step retires a table (as a promotion does) whose unlink, R_READ's
    // publication, comes at the commit. Meanwhile one collects and announces a later epoch,
    // then may read the old R_READ, which is still published.
    const i32 = registry.arena.i32;
    two.p.retireTx(X, { set: (index, value) => (i32[index] = value) });
    one.p.retire(Y);
    one.p.collect();
    // The commit publishes the new R_READ (nothing to do here). Dated at the retirement, X
    // would be freed now, while one may still walk the old table.
    freedOnlyOnceAnnounced(
      two,
      one,
      X,
      "freed before a participant that read the old table moved on",
    );
    one.p.close();
    two.p.close();
    map.close();
  });

  it("frees a retirement made after a collect whose free threw", async () => {
    const { map, ps: [one] } = await setup(1, Y);
    one.p.enter();
    one.p.retire(X);
    one.p.retire(Y);
    // The sweep takes Y off the list, then its free throws: the participant's counts must
    // follow the list, or the next retirement would land where no stamp reaches it.
    assert.throws(() => one.p.collect(), RangeError);
    one.p.retire(Z);
    collectAll(one.p);
    assert.ok(one.freed.includes(X) && one.freed.includes(Z), `freed: ${hex(one.freed)}`);
    one.p.close();
    map.close();
  });

  it("frees a retirement written into a list after its seat was released", async () => {
    const { map, registry, ps: [one, two] } = await setup(2);
    one.p.enter();
    two.p.enter();
    two.p.retire(X);
    releaseSeat(registry, two.ticket.index, two.ticket.word >>> 2);
    // The owner's call in progress (a Deno zombie's, past its grace) retires into the released
    // list, unstamped; the orphan's borrowers must still free it, and the list must empty.
    two.p.retire(Y);
    collectAll(one.p);
    assert.ok(one.freed.includes(X) && one.freed.includes(Y), `freed: ${hex(one.freed)}`);
    assert.equal(map.stats().participants, 2, "the orphan's seat is free again");
    one.p.close();
    map.close();
  });

  it("never stamps 0: a retirement dated in the instant the epoch wraps through 0", async () => {
    const { map, registry, ps: [q, p] } = await setup(2);
    const i32 = registry.arena.i32;
    q.p.enter();
    p.p.enter();
    // A collector's first add took the epoch from -1 to 0, and its second has not come yet.
    Atomics.store(i32, registry.epochWord, 0);
    // Q's quiescent point in that instant loads 0 and announces 1; then Q reads block X.
    quiesce(q.p);
    // P unlinks X and makes its quiescent point in the same instant: X is dated by a load of 0.
    p.p.retire(X);
    quiesce(p.p);
    // The collector's second add. Dated 0, X would be older than Q's announcement of 1.
    Atomics.store(i32, registry.epochWord, 1);
    freedOnlyOnceAnnounced(
      p,
      q,
      X,
      "freed while Q, which announced before its unlink, may read it",
    );
    q.p.close();
    p.p.close();
    map.close();
  });

  it("grows the list by its own count, not a stale one, after a collect whose free threw", async () => {
    const { map, ps: [one] } = await setup(1, X);
    one.p.enter();
    one.p.retire(X);
    one.p.retire(Y);
    one.p.retire(Z);
    // The sweep frees Z, then Y, then X, whose free throws: the list is empty.
    assert.throws(() => one.p.collect(), RangeError);
    assert.deepEqual(one.freed, [Z, Y, X]);
    // A call nested in user code (a hold, where no collect runs) finds its room short and grows
    // the list: by a stale count it would copy the three freed entries back.
    one.p.hold(() => one.p.makeRoom(1000));
    collectAll(one.p);
    assert.deepEqual(one.freed, [Z, Y, X], `freed twice: ${hex(one.freed)}`);
    one.p.close();
    map.close();
  });

  it("keeps what a zombie retires into its released list, however far the epoch moved", async () => {
    const { map, registry, ps: [one, two, q] } = await setup(3);
    const i32 = registry.arena.i32;
    one.p.enter();
    two.p.enter();
    q.p.enter();
    two.p.retire(X);
    releaseSeat(registry, two.ticket.index, two.ticket.word >>> 2);
    // Two's call in progress (a Deno zombie's, in a long user encode) outlives its release, while
    // the epoch moves on 2^30 and more: an undated entry must not then pass for an old one.
    const e = Atomics.load(i32, registry.epochWord);
    Atomics.store(i32, registry.epochWord, (e + 2 ** 30 + 10) | 0);
    // Q announces, then reads block Y; the zombie unlinks Y and retires it.
    quiesce(q.p);
    two.p.retire(Y);
    one.p.collect();
    assert.ok(
      !one.freed.includes(Y),
      "freed while Q, which announced before its unlink, may read it",
    );
    one.p.close();
    q.p.close();
    map.close();
  });

  it("frees a stall's backlog soon after the laggard announces, a budget at a time", async () => {
    // Two announces and stalls while one retires a backlog: one's quiescent points keep it, and
    // each failed try puts the next further off (#collectAt, half as many again). Once two
    // announces again, one's next quiescent point frees, without waiting for that threshold
    // (before: nothing freed until one had retired half its backlog again), and each frees at
    // most COLLECT_BUDGET, so that no single call of one's pays for the whole backlog.
    const BACKLOG = 3 * COLLECT_BUDGET;
    const { map, ps: [one, two] } = await setup(2);
    stalledBacklog(one, two, BACKLOG);
    quiesce(two.p);
    const after: number[] = [];
    for (let q = 0; q < 4; q++) {
      quiesce(one.p);
      after.push(one.freed.length);
    }
    assert.deepEqual(after, [COLLECT_BUDGET, 2 * COLLECT_BUDGET, BACKLOG, BACKLOG]);
    assert.equal(one.p.pending, 0);
    one.p.close();
    two.p.close();
    map.close();
  });

  it("frees all it can, from the top, in a collect that must, between budgeted slices", async () => {
    // A budgeted slice goes on from where the last stopped; a collect that frees all it can
    // (reclaimNow, for a call out of memory) must walk the whole list: above that point lies X,
    // retired after the first slice, freeable once two goes offline (helper-131's review).
    const BACKLOG = 3 * COLLECT_BUDGET;
    const { map, ps: [one, two] } = await setup(2);
    stalledBacklog(one, two, BACKLOG);
    quiesce(two.p);
    quiesce(one.p); // the first slice
    assert.equal(one.freed.length, COLLECT_BUDGET);
    one.p.enter();
    one.p.retire(X); // above where the slice stopped
    quiesce(one.p); // the second slice, which goes on below it
    assert.equal(one.freed.length, 2 * COLLECT_BUDGET);
    two.p.idle(); // two goes offline: X may go
    one.p.reclaimNow();
    assert.ok(one.freed.includes(X), "X left by a collect that frees all it can");
    assert.equal(one.p.pending, 0);
    one.p.close();
    two.p.close();
    map.close();
  });
});
