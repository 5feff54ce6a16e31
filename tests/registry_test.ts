// Copyright the shmap authors. MIT license.
// Engine unit tests of the participant registry's claim and release protocols
// (src/_engine/registry.ts): a claimer records itself as OWNER before it claims, and a releaser
// as RELEASER before it releases, so a thread stopped at any point of either leaves a seat that
// someone else claims, finds dead, or finishes releasing, never one lost for good. The states a
// stopped thread leaves are written by hand into a real SyncMap's seats.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SyncMap } from "../mod.ts";
import { Arena, KIND_SYNC_MAP } from "../src/_engine/arena.ts";
import {
  GONE,
  ownerId,
  record,
  stateOf as threadState,
  TERMINATING,
} from "../src/_engine/census.ts";
import {
  adoptSeat,
  ANNOUNCE,
  CLAIM,
  CLAIM_LOOKED,
  CLAIMED,
  claimSeat,
  deadSeats,
  OWNER,
  RELEASER,
  releaseSeat,
  RESERVER,
  resumeWorld,
  SEAT_FREE,
  SEAT_IN_USE,
  SEAT_RELEASING,
  SEAT_WORDS,
  seatsComingFree,
  setAdoptHookForTests,
  setClaimHookForTests,
  stateOf,
  stuckReleases,
  takeRelease,
} from "../src/_engine/registry.ts";
import { Participant, QUIESCE_EVERY } from "../src/_engine/reclaim.ts";
import { registryOf } from "../src/maps/_sync_layout.ts";
import { shareSyncMap, type SyncMapHandle } from "../src/maps/sync_map.ts";
import type { PauseMessage, PauseReply } from "./fixtures/pause_world_worker.ts";
import { ReplyQueue } from "./fixtures/reply_queue.ts";
import { startWorker } from "./fixtures/spawn.ts";

/** Thread ids far from any real one, each recorded gone. */
let ghosts = 2 ** 27 + 5000 + Math.floor(Math.random() * 10_000) * 8;
function ghostOwner(): number {
  const id = ghosts++;
  record(id, GONE);
  return id + 1;
}

/** The owner id of a thread no census knows as ended: a live claimer or releaser stand-in. */
function liveOwner(): number {
  for (;;) {
    const id = 2 ** 26 + Math.floor(Math.random() * 2 ** 20);
    if (threadState(id) === 0) return id + 1;
  }
}

/**
 * A map with `n` participant seats, the first taken by the map itself, and atomic access to
 * word `w` (OWNER, CLAIM, ...) of its seat `seat`.
 */
function setup(n: number) {
  const map = new SyncMap<string, number>({ maxParticipants: n });
  const i32 = new Int32Array(map.handle.buffer);
  // Claims and deadSeats read only the words (no growth, no allocation).
  const registry = registryOf({ i32 } as unknown as Arena);
  const word = (seat: number, w: number): number => registry.seats + seat * SEAT_WORDS + w;
  const load = (seat: number, w: number): number => Atomics.load(i32, word(seat, w));
  const store = (seat: number, w: number, value: number): void => {
    Atomics.store(i32, word(seat, w), value);
  };
  return { map, registry, load, store };
}

/**
 * Shares `map` (from setup) with a by-hand attach that stores "k", then stages what a dead
 * owner and a dead releaser of that share leave: the releaser had moved the claim to RELEASING
 * in the next generation and stopped there, the owner's announcement still up. Returns the seat
 * and its claim word before the release.
 */
function deadReleaserMidway(
  { map, load, store }: ReturnType<typeof setup>,
): { handle: SyncMapHandle; seat: number; claim: number } {
  const { handle } = shareSyncMap(map as SyncMap<never, never>);
  const share = SyncMap.attach<string, number>(handle);
  share.store("k", 1);
  const seat = handle.participant!;
  const claim = load(seat, CLAIM);
  store(seat, OWNER, ghostOwner());
  store(seat, ANNOUNCE, 1);
  store(seat, RELEASER, ghostOwner());
  store(seat, CLAIM, (((claim >>> 2) + 1) << 2) | SEAT_RELEASING);
  return { handle, seat, claim };
}

describe("participant registry: claims", () => {
  it("records the claimer as OWNER of the seat it claims", () => {
    const { map, registry, load } = setup(4);
    const ticket = claimSeat(registry);
    assert.equal(load(ticket.index, OWNER), ownerId());
    assert.equal(stateOf(load(ticket.index, CLAIM)), SEAT_IN_USE);
    map.close();
  });

  it("takes over a free seat whose OWNER names a claimer that died before claiming", () => {
    const { map, registry, load, store } = setup(2);
    // Seat 0 is the map's; seat 1 is the only one left, left by a dead claimer.
    assert.equal(stateOf(load(1, CLAIM)), SEAT_FREE);
    store(1, OWNER, ghostOwner());
    const ticket = claimSeat(registry);
    assert.equal(ticket.index, 1);
    assert.equal(load(1, OWNER), ownerId());
    map.close();
  });

  it("leaves alone a free seat that a live thread is claiming", () => {
    const { map, registry, load, store } = setup(3);
    // A live claimer (this test stands in for it with the id of a thread never recorded gone)
    // has written OWNER of seat 1 and not yet claimed it: the next claimer takes seat 2.
    const live = liveOwner();
    store(1, OWNER, live);
    const ticket = claimSeat(registry);
    assert.equal(ticket.index, 2);
    assert.equal(load(1, OWNER), live, "the live claimer's OWNER stays");
    map.close();
  });

  it("names a claimer that died after claiming among the dead seats", () => {
    const { map, registry, store } = setup(3);
    const ticket = claimSeat(registry);
    // The claim and its OWNER are written; then the claimer dies.
    const owner = ghostOwner();
    store(ticket.index, OWNER, owner);
    assert.deepEqual(
      deadSeats(registry).map((d) => d.index),
      [ticket.index],
      "the seat of a claimer gone after its claim is found",
    );
    map.close();
  });

  it("a claimer descheduled after its look at a free seat leaves the seat of a claimer that came and ended meanwhile for deadSeats", () => {
    // claimFree reads CLAIM free, then takes OWNER. Descheduled in between (a pool worker sweeping
    // released seats as its task ends), it may find the seat claimed meanwhile by a worker that
    // has run its task and ended: OWNER names that worker, gone, and is taken over; the claim
    // then fails. OWNER must go back to the gone worker, else the seat stays in use with no
    // owner, and no reap ever gives it back (tinypool with isolateWorkers on Bun, helper-168).
    const { map, registry, load, store } = setup(2);
    // Seat 0 is the map's; seat 1 is the only one left.
    const other = ghostOwner();
    setClaimHookForTests(() => {
      setClaimHookForTests(undefined);
      // The other claimer, OWNER first and then the claim; then it ends (ghostOwner: gone).
      store(1, OWNER, other);
      store(1, CLAIM, (load(1, CLAIM) & ~3) | SEAT_IN_USE);
      Atomics.store(new Int32Array(map.handle.buffer), registry.highWord, 2); // as take() does
    });
    try {
      assert.throws(() => claimSeat(registry), RangeError, "the one free seat was taken");
    } finally {
      setClaimHookForTests(undefined);
    }
    assert.equal(load(1, OWNER), other, "the gone claimer's OWNER stays");
    assert.deepEqual(deadSeats(registry).map((d) => d.index), [1], "its seat is found dead");
    // A reap gives it back (verify() runs one), and it can be claimed again.
    map.verify();
    assert.equal(stateOf(load(1, CLAIM)), SEAT_FREE);
    assert.equal(claimSeat(registry).index, 1);
    map.close();
  });

  it("a claimer descheduled after its look at a free seat takes no gone owner's OWNER from under that seat's release", () => {
    // claimFree reads CLAIM free, then takes OWNER, over from a gone thread. Descheduled in
    // between, it may find the seat claimed meanwhile by a worker that has since ended, its seat
    // now being released by a reap: taken over, OWNER names the claimer (alive) when the release
    // reads it, and the release takes the seat's owner for a live one: no rollback of the dead
    // owner's step under the map's mutex and the allocator lock before its retire list and cache
    // are repaired and made orphans (onReleased's deadOwner 0, finishRelease's `gone` false), and
    // on Deno no wait for a zombie owner's call.
    const { map, registry, load, store } = setup(2);
    const other = ghostOwner();
    let generation = -1;
    let deadOwner = -1;
    // A release repairs the seat's list and cache: a registry of the whole arena.
    const arena = Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test");
    const reap = (): void => {
      releaseSeat(registryOf(arena), 1, generation, 0, (owner) => {
        deadOwner = owner;
      });
    };
    setClaimHookForTests((step) => {
      if (step === CLAIM_LOOKED) {
        // The other claimer, OWNER first and then the claim; then it ends (ghostOwner: gone).
        store(1, OWNER, other);
        store(1, CLAIM, (load(1, CLAIM) & ~3) | SEAT_IN_USE);
        Atomics.store(new Int32Array(map.handle.buffer), registry.highWord, 2); // as take() does
        generation = load(1, CLAIM) >>> 2;
      } else {
        // After the stale claimer's look at OWNER: a reap releases the dead worker's seat.
        setClaimHookForTests(undefined);
        reap();
      }
    });
    let ticket;
    try {
      // The first look loses the seat; the reap frees it, and the next look claims it (take).
      ticket = claimSeat(registry);
    } finally {
      setClaimHookForTests(undefined);
    }
    assert.equal(deadOwner, other, "the release learns its owner is gone");
    assert.equal(ticket.index, 1);
    assert.equal(stateOf(load(1, CLAIM)), SEAT_IN_USE, "released, then claimed again");
    assert.equal(load(1, OWNER), ownerId());
    map.close();
  });

  it("a claimer that dies right after its claim of a seat past the high-water mark leaves it for deadSeats", () => {
    // Scans of the seats (deadSeats, stuckReleases, pauseWorld) stop at the high-water mark.
    // A claimer that died after its claim of the first seat never claimed before, and before it
    // raised the mark, left a seat IN_USE by a gone thread where no reap looks: given back only
    // once a later claim had to go past it, never if it was the last seat.
    const { map, registry, load, store } = setup(2);
    // Seat 0 is the map's; seat 1, the last, was never claimed.
    const i32 = new Int32Array(map.handle.buffer);
    assert.equal(Atomics.load(i32, registry.highWord), 1);
    setClaimHookForTests((step) => {
      if (step !== CLAIMED) return;
      setClaimHookForTests(undefined);
      throw new Error("the claimer dies here");
    });
    try {
      assert.throws(() => claimSeat(registry), /the claimer dies here/);
    } finally {
      setClaimHookForTests(undefined);
    }
    assert.equal(stateOf(load(1, CLAIM)), SEAT_IN_USE);
    store(1, OWNER, ghostOwner()); // the claimer, another thread, is gone
    assert.deepEqual(deadSeats(registry).map((d) => d.index), [1], "its seat is found dead");
    map.verify(); // a reap gives it back
    assert.equal(stateOf(load(1, CLAIM)), SEAT_FREE);
    assert.equal(claimSeat(registry).index, 1);
    map.close();
  });
});

describe("participant registry: claims in a race", () => {
  it("a claim that lost a seat to another claimer looks again, and takes it once it is free again", () => {
    // Two threads closing and attaching in a loop: this one read seat 1 free; meanwhile the other
    // claimed it, closed it (the claim moved on a generation) and claimed seat 2, the last one.
    // This claim of seat 1 fails, and seat 2 is taken: one look over the seats ends there,
    // though seat 1 is free again (helper-171).
    const { map, registry, load, store } = setup(3);
    const other = liveOwner();
    setClaimHookForTests(() => {
      setClaimHookForTests(undefined);
      store(1, CLAIM, ((load(1, CLAIM) >>> 2) + 1) << 2);
      store(2, OWNER, other);
      store(2, CLAIM, (load(2, CLAIM) & ~3) | SEAT_IN_USE);
    });
    let index = -1;
    try {
      index = claimSeat(registry).index;
    } finally {
      setClaimHookForTests(undefined);
    }
    assert.equal(index, 1, "seat 1 is claimed at the next look");
    assert.equal(load(1, OWNER), ownerId());
    // As if the other had closed, so that the map closes cleanly.
    store(2, CLAIM, load(2, CLAIM) & ~3);
    store(2, OWNER, 0);
    map.close();
  });

  it("a claim clears the RELEASER the seat's last release has not cleared yet, and the claim's release gives the seat back", () => {
    // The seat's last release, by a live thread, stored FREE and has not yet cleared RELEASER
    // (its last step). This thread claims the seat and, closing, releases it: the release took
    // that id for a live releaser's at work and did nothing, and the seat stayed in use, by an
    // owner that had closed, until this thread's end (helper-171: two workers attaching and
    // closing in a loop, maxParticipants 3, lost a seat so in about one Node run in two).
    const { map, load, store } = setup(2);
    // Releases repair the seat's list: a registry over the arena itself.
    const registry = registryOf(Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test"));
    store(1, RELEASER, liveOwner());
    const ticket = claimSeat(registry);
    assert.equal(ticket.index, 1);
    assert.equal(load(1, RELEASER), 0, "the last release's RELEASER is cleared by the claim");
    releaseSeat(registry, ticket.index, ticket.word >>> 2);
    assert.equal(stateOf(load(1, CLAIM)), SEAT_FREE, "the seat is given back");
    assert.equal(load(1, RELEASER), 0);
    assert.equal(claimSeat(registry).index, 1, "and claimed again at once");
    map.close();
  });

  it("a release that finds RELEASER held by another live thread waits, then leaves the release to a timer", async () => {
    // A thread that read an old release of the seat takes RELEASER to take it over, finds the
    // claim moved on, and gives the word back: a release of the claim in that moment must wait
    // for the word and then go on, not leave the seat in use. Here the holder stands still (its
    // id never cleared) past the wait: the release is retried from a timer, which gives the
    // seat back once the word is free.
    const { map, load, store } = setup(2);
    const registry = registryOf(Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test"));
    const ticket = claimSeat(registry);
    store(ticket.index, RELEASER, liveOwner());
    releaseSeat(registry, ticket.index, ticket.word >>> 2);
    assert.equal(stateOf(load(ticket.index, CLAIM)), SEAT_IN_USE, "held still: not released yet");
    // The holder gives its word back.
    store(ticket.index, RELEASER, 0);
    const deadline = Date.now() + 5_000;
    while (stateOf(load(ticket.index, CLAIM)) !== SEAT_FREE && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(stateOf(load(ticket.index, CLAIM)), SEAT_FREE, "released from the timer");
    assert.equal(load(ticket.index, RELEASER), 0);
    assert.equal(load(ticket.index, OWNER), 0);
    map.close();
  });
});

describe("participant registry: adoptions", () => {
  it("a claimer that read the seat free before it was reserved does not keep the adopting worker out of OWNER", () => {
    // A claimer reads seat CLAIM free, and is descheduled before it takes OWNER; meanwhile a
    // parent reserves the seat (OWNER back to 0 once RESERVER is written) and its worker begins
    // to adopt it. The claimer takes OWNER (from 0) between the worker's claim and its OWNER,
    // then finds the seat no longer free and gives OWNER back to 0. The worker's OWNER must
    // survive that: with none, the seat is IN_USE with no owner while its worker runs, which
    // pauseWorld and parkedHolding skip (a sweep with that participant mid-call) and whose
    // release never learns its owner (no rollback of its step, no wait for its call).
    const { map, registry, load, store } = setup(4);
    const { handle, release } = shareSyncMap(map as SyncMap<never, never>);
    const seat = handle.participant!;
    const claimer = liveOwner();
    assert.equal(load(seat, OWNER), 0, "a reservation leaves no OWNER");
    setAdoptHookForTests(() => {
      store(seat, OWNER, claimer); // claimFree's take of OWNER, from 0
    });
    try {
      adoptSeat(registry, seat, handle.generation!);
    } finally {
      setAdoptHookForTests(undefined);
    }
    // The claimer's claim of a FREE word fails (the seat is IN_USE): OWNER back to what it took.
    const i32 = new Int32Array(map.handle.buffer);
    Atomics.compareExchange(i32, registry.seats + seat * SEAT_WORDS + OWNER, claimer, 0);
    assert.equal(stateOf(load(seat, CLAIM)), SEAT_IN_USE);
    assert.equal(load(seat, OWNER), ownerId(), "the adopting worker is the seat's OWNER");
    release();
    map.close();
  });

  it("a claimer that dies holding the OWNER of a reserved seat does not make the reservation dead", () => {
    // A claimer that read the seat free, looked at CLAIM again (still free) and was descheduled
    // before its take of OWNER from 0, takes it after a parent reserved the seat (OWNER back to 0
    // once RESERVER is written), and would give it back once its claim failed; it dies first. Its
    // gone id in OWNER made deadSeats take the reservation of a live parent (and of the worker
    // about to adopt it) for dead, and a reap released it: the worker's attach then failed.
    const { map, registry, load, store } = setup(4);
    const { handle, release } = shareSyncMap(map as SyncMap<never, never>);
    const seat = handle.participant!;
    assert.equal(load(seat, RESERVER), ownerId(), "the parent, alive, reserved it");
    store(seat, OWNER, ghostOwner()); // the claimer's take of OWNER, then its death
    assert.deepEqual(deadSeats(registry), [], "a live parent's reservation is not dead");
    const ticket = adoptSeat(registry, seat, handle.generation!); // the worker attaches
    assert.equal(load(seat, OWNER), ownerId());
    assert.equal(ticket.index, seat);
    release();
    assert.equal(load(seat, RESERVER), 0, "cleared as the seat is released");
    map.close();
  });

  it("a worker descheduled in its adoption does not overwrite the OWNER of the seat's next claimer", () => {
    // A worker adopting its reserved seat moves the claim, then writes OWNER. Terminated and
    // descheduled between the two, its share is released after the grace and the seat may be
    // claimed by another thread before the worker runs on: its OWNER must stay that claimer's
    // (else deadSeats would take the live claimer's seat for the zombie's).
    const { map, registry, load, store } = setup(4);
    const { handle, release } = shareSyncMap(map as SyncMap<never, never>);
    const seat = handle.participant!;
    const next = liveOwner();
    setAdoptHookForTests(() => {
      release(); // no grace: the adoption's claim is released here
      assert.equal(stateOf(load(seat, CLAIM)), SEAT_FREE);
      store(seat, OWNER, next); // claimFree by another thread: OWNER first, then the claim
      store(seat, CLAIM, (load(seat, CLAIM) & ~3) | SEAT_IN_USE);
    });
    try {
      adoptSeat(registry, seat, handle.generation!);
    } finally {
      setAdoptHookForTests(undefined);
    }
    assert.equal(load(seat, OWNER), next, "the next claimer's OWNER stays");
    assert.deepEqual(deadSeats(registry), [], "no live seat taken for dead");
    map.close();
  });

  it("an adoption that the release beat leaves a free seat claimable", () => {
    const { map, registry, load } = setup(4);
    const { handle, release } = shareSyncMap(map as SyncMap<never, never>);
    const seat = handle.participant!;
    setAdoptHookForTests(() => release());
    try {
      adoptSeat(registry, seat, handle.generation!);
    } finally {
      setAdoptHookForTests(undefined);
    }
    assert.equal(stateOf(load(seat, CLAIM)), SEAT_FREE);
    assert.equal(load(seat, OWNER), 0, "no OWNER left on the free seat");
    map.close();
  });
});

describe("participant registry: releases", () => {
  it("finishes a release whose releaser died midway, so its announcement stops holding memory", () => {
    const staged = setup(4);
    const { map, load } = staged;
    // The share's owner and then its releaser died midway.
    const { seat } = deadReleaserMidway(staged);
    // Any reclamation step finishes it (the next call's, the census having changed); verify()
    // runs one, then checks the seats.
    map.verify();
    assert.equal(stateOf(load(seat, CLAIM)), SEAT_FREE);
    assert.equal(load(seat, RELEASER), 0);
    assert.equal(load(seat, ANNOUNCE), 0);
    assert.equal(map.stats().participants, 1);
    assert.equal(map.load("k"), 1);
    map.close();
  });

  it("finishes a dead releaser's release when a later release of the same seat comes", () => {
    // Two threads reaping one dead seat: the first moved the claim to RELEASING and died in
    // finishRelease; the second, which found the seat dead before that, releases the same
    // generation. It takes RELEASER over from the dead releaser and must finish the release:
    // a seat left RELEASING with no RELEASER is never finished (nor looked at again).
    const staged = setup(4);
    const { map, load } = staged;
    const { handle, seat, claim } = deadReleaserMidway(staged);
    const registry = registryOf(Arena.attach(handle.buffer, KIND_SYNC_MAP, true, "test"));
    releaseSeat(registry, seat, claim >>> 2);
    assert.equal(stateOf(load(seat, CLAIM)), SEAT_FREE, "the release is finished");
    assert.equal(load(seat, RELEASER), 0);
    assert.equal(load(seat, ANNOUNCE), 0, "the dead owner's announcement is withdrawn");
    map.verify();
    assert.equal(map.stats().participants, 1);
    assert.equal(map.load("k"), 1);
    map.close();
  });

  it("leaves a release whose releaser is alive to it", () => {
    const { map, registry, load, store } = setup(4);
    const ticket = claimSeat(registry);
    const live = liveOwner();
    store(ticket.index, RELEASER, live);
    const claim = (((ticket.word >>> 2) + 1) << 2) | SEAT_RELEASING;
    store(ticket.index, CLAIM, claim);
    assert.deepEqual(stuckReleases(registry), []);
    assert.equal(load(ticket.index, CLAIM), claim);
    assert.equal(load(ticket.index, RELEASER), live);
    // As if its releaser had finished, so that the map closes cleanly.
    store(ticket.index, RELEASER, 0);
    store(ticket.index, CLAIM, claim & ~3);
    map.close();
  });
});

describe("participant registry: taking a release over", () => {
  it("takes nothing from a release that was finished after it was read", () => {
    // A participant reads a seat RELEASING (put off: no releaser), looks its owner up in /proc
    // (slow), and meanwhile another finishes the release and the seat is claimed again. Its take
    // must not leave its id as RELEASER: the next release of the seat would take it for a live
    // releaser's and do nothing.
    const { map, registry, load, store } = setup(4);
    const ticket = claimSeat(registry);
    const at = registry.seats + ticket.index * SEAT_WORDS;
    const i32 = new Int32Array(map.handle.buffer);
    const releasing = (((ticket.word >>> 2) + 1) << 2) | SEAT_RELEASING;
    store(ticket.index, CLAIM, releasing);
    store(ticket.index, RELEASER, 0);
    // Read as RELEASING; then finished by another, and claimed again.
    store(ticket.index, CLAIM, (releasing & ~3) | SEAT_IN_USE);
    assert.equal(takeRelease(i32, at, releasing, false), false);
    assert.equal(load(ticket.index, RELEASER), 0, "no releaser left on the seat");
    // Still RELEASING as read: taken.
    store(ticket.index, CLAIM, releasing);
    assert.equal(takeRelease(i32, at, releasing, false), true);
    assert.equal(load(ticket.index, RELEASER), ownerId());
    // From a gone releaser, the same.
    store(ticket.index, RELEASER, ghostOwner());
    store(ticket.index, CLAIM, (releasing & ~3) | SEAT_FREE);
    assert.equal(takeRelease(i32, at, releasing, true), false);
    assert.equal(load(ticket.index, RELEASER), 0);
    store(ticket.index, CLAIM, (releasing & ~3) | SEAT_FREE);
    store(ticket.index, OWNER, 0);
    map.close();
  });
});

describe("participant registry: a stale take of a release", () => {
  it("a stale take of a gone releaser's release that is no longer the one it read leaves that releaser's id, for the next reap", () => {
    // A participant reads a seat RELEASING, its releaser gone (stuckReleases), and is descheduled
    // before it takes RELEASER over. Meanwhile another thread finishes that release, the seat is
    // claimed again, and its next release's releaser dies in finishRelease after clearing OWNER.
    // The stale take takes RELEASER over from that gone releaser, finds the release is not the
    // one it read, and gives RELEASER up: to 0, the seat was RELEASING with no releaser and no
    // OWNER, which stuckReleases never takes (a put-off release needs an OWNER out of calls),
    // and its announcement held reclamation back, and every sweep off, for good.
    const staged = setup(4);
    const { map, registry, load, store } = staged;
    const { seat, claim } = deadReleaserMidway(staged);
    const releaser = load(seat, RELEASER);
    store(seat, OWNER, 0); // the dead releaser cleared OWNER, then died
    const i32 = new Int32Array(map.handle.buffer);
    const at = registry.seats + seat * SEAT_WORDS;
    // The release the stale take read: an earlier one of the seat.
    const stale = (claim & ~3) | SEAT_RELEASING;
    assert.equal(takeRelease(i32, at, stale, true), false, "not the release it read");
    assert.equal(load(seat, RELEASER), releaser, "the gone releaser's id stays");
    // The next reap takes the release over and finishes it (verify() runs one).
    map.verify();
    assert.equal(stateOf(load(seat, CLAIM)), SEAT_FREE, "the release is finished");
    assert.equal(load(seat, ANNOUNCE), 0, "the dead owner's announcement is withdrawn");
    assert.equal(map.stats().participants, 1);
    map.close();
  });
});

describe("participant registry: a release that finds a stale releaser", () => {
  it("a release that finds RELEASER held by a stale release of a passed generation still gives the seat back", async () => {
    // A reap (or a worker adapter's release) found the seat dead in an earlier generation and
    // was descheduled before it took RELEASER; meanwhile the seat was released by another, and
    // claimed by a live participant. The stale release takes RELEASER (from 0), finds the
    // generation passed, and gives it back: a few instructions, in which that participant's
    // close finds a live releaser at work and leaves the release to it. Left so, the closed
    // participant's seat stayed IN_USE by its live thread until that thread ended, which
    // deadSeats alone gives back (a pool worker's, for the life of the pool).
    const { map, registry, load, store } = setup(4);
    const ticket = claimSeat(registry); // the live participant's claim
    const seat = ticket.index;
    const stale = liveOwner();
    store(seat, RELEASER, stale); // the stale release's take of RELEASER
    // The participant's close: a release of its own seat, in its generation.
    const arena = Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test");
    releaseSeat(registryOf(arena), seat, ticket.word >>> 2);
    // The stale release finds its generation passed, and gives RELEASER back.
    const i32 = new Int32Array(map.handle.buffer);
    Atomics.compareExchange(i32, registry.seats + seat * SEAT_WORDS + RELEASER, stale, 0);
    const deadline = Date.now() + 2000;
    while (stateOf(load(seat, CLAIM)) !== SEAT_FREE && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.equal(
      stateOf(load(seat, CLAIM)),
      SEAT_FREE,
      "the closed participant's seat is given back",
    );
    assert.equal(load(seat, OWNER), 0);
    assert.equal(load(seat, RELEASER), 0);
    assert.equal(map.stats().participants, 1);
    map.close();
  });
});

/**
 * A map of `n` seats whose own participant has gone offline (its task ended), and its arena and
 * registry, for participants made by hand beside it.
 */
async function offlineMap(n: number) {
  const map = new SyncMap<number, number>({ maxParticipants: n });
  await new Promise((resolve) => setTimeout(resolve, 0));
  const arena = Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test");
  return { map, arena, registry: registryOf(arena) };
}

describe("participant registry: borrowing an orphan", () => {
  it("a reap that looked at a seat while it was borrowed never releases the claim made after the borrow", async () => {
    // A collect borrows a released seat to sweep its orphaned list: a claim in the seat's
    // generation, given back as FREE. A reap (deadSeats, another thread) reads CLAIM during the
    // borrow and is descheduled; the borrow ends, OWNER 0, and the reap reads OWNER there, then
    // RESERVER, the parent that once reserved the seat for a worker, gone since: dead, in the
    // generation read. Meanwhile a live participant claims the seat. Given back in the same
    // generation, the borrow let that claim be the very word the reap read, and the reap's
    // release took the live participant's seat from it (its next call throws, its share lost).
    const { map, arena, registry } = await offlineMap(6);
    const i32 = arena.i32;
    const word = (seat: number, w: number): number => registry.seats + seat * SEAT_WORDS + w;
    const X = 0x10000;
    let seen = -1;
    let orphanSeat = -1;
    const borrowerTicket = claimSeat(registry);
    const borrower = new Participant(registry, borrowerTicket, () => {
      // Freed by the borrow's sweep of the orphan's list: the reap looks at CLAIM now.
      seen = Atomics.load(i32, word(orphanSeat, CLAIM));
      return false;
    });
    const ownerTicket = claimSeat(registry);
    orphanSeat = ownerTicket.index;
    const owner = new Participant(registry, ownerTicket, () => false);
    borrower.enter();
    owner.enter();
    owner.retire(X);
    // The seat was once reserved by a parent that has ended since.
    Atomics.store(i32, word(orphanSeat, RESERVER), ghostOwner());
    releaseSeat(registry, ownerTicket.index, ownerTicket.word >>> 2); // an orphan, X in its list
    for (let i = 0; i < 4 && seen === -1; i++) {
      for (let k = 0; k < QUIESCE_EVERY; k++) borrower.enter();
      borrower.collect();
    }
    assert.equal(stateOf(seen), SEAT_IN_USE, "the reap looked during the borrow");
    assert.equal(stateOf(Atomics.load(i32, word(orphanSeat, CLAIM))), SEAT_FREE, "given back");
    // The reap reads OWNER after the borrow: 0, then RESERVER: gone. Dead, in the generation read.
    assert.equal(Atomics.load(i32, word(orphanSeat, OWNER)), 0);
    const dead = { index: orphanSeat, generation: seen >>> 2 };
    // A live participant claims the seat; then the reap releases what it found dead.
    const next = claimSeat(registry);
    assert.equal(next.index, orphanSeat);
    releaseSeat(registry, dead.index, dead.generation);
    assert.equal(
      Atomics.load(i32, word(orphanSeat, CLAIM)),
      next.word,
      "the live participant's claim stays",
    );
    releaseSeat(registry, next.index, next.word >>> 2);
    borrower.close();
    map.close();
  });
});

describe("participant registry: seats coming free", () => {
  it("a claim that failed while a sweep borrowed the last seat finds it coming free after", async () => {
    // A claim finds every seat taken, one of them borrowed by another thread's sweep of what
    // its released owner left (the new worker of a pool, its parent sweeping the seat of the
    // worker it replaced). By the time the claimer looks for a seat coming free (takeSeat), the
    // borrow has ended: the seat reads free, the orphan count 0. Read as "nothing coming", the
    // attach threw though the seat was free (a CI run on Deno); a free seat is worth a retry.
    const { map, registry } = await offlineMap(3);
    let during: { threw: boolean; coming: boolean } | undefined;
    const borrower = new Participant(registry, claimSeat(registry), () => {
      if (during !== undefined) return false;
      let threw = false;
      try {
        claimSeat(registry);
      } catch (error) {
        assert.ok(error instanceof RangeError);
        threw = true;
      }
      during = { threw, coming: seatsComingFree(registry) };
      return false;
    });
    const ownerTicket = claimSeat(registry);
    const owner = new Participant(registry, ownerTicket, () => false);
    borrower.enter();
    owner.enter();
    owner.retire(0x10000);
    // Every seat held by a live thread: nothing is coming free.
    assert.equal(seatsComingFree(registry), false);
    releaseSeat(registry, ownerTicket.index, ownerTicket.word >>> 2); // an orphan
    assert.equal(seatsComingFree(registry), true, "the orphan's seat, released");
    for (let i = 0; i < 4 && during === undefined; i++) {
      for (let k = 0; k < QUIESCE_EVERY; k++) borrower.enter();
      borrower.collect();
    }
    assert.deepEqual(during, { threw: true, coming: true }, "during the borrow");
    assert.equal(seatsComingFree(registry), true, "after the borrow: the seat is free");
    const next = claimSeat(registry);
    assert.equal(next.index, ownerTicket.index);
    assert.equal(seatsComingFree(registry), false);
    releaseSeat(registry, next.index, next.word >>> 2);
    borrower.close();
    map.close();
  });
});

describe("participant registry: stopping the world", () => {
  it("resumeWorld lowers only this thread's own pause", () => {
    // A stopper that ran on past the grace (a Deno zombie) finds its pause taken over by
    // another thread, as a dead pauser's is: its resumeWorld must not lower that one.
    const { map, registry } = setup(4);
    const i32 = new Int32Array(map.handle.buffer);
    const other = liveOwner();
    try {
      Atomics.store(i32, registry.pauseWord, other);
      resumeWorld(registry);
      assert.equal(Atomics.load(i32, registry.pauseWord), other, "another thread's pause stays");
      Atomics.store(i32, registry.pauseWord, ownerId());
      resumeWorld(registry);
      assert.equal(Atomics.load(i32, registry.pauseWord), 0, "its own is lowered");
    } finally {
      Atomics.store(i32, registry.pauseWord, 0);
      map.close();
    }
  });

  it("a stopper found terminated as it waits gives up at once, its pause lowered", async () => {
    // A thread terminated while it waits for the world to stop (Deno's terminate() does not
    // stop a busy worker) must not wait on and then sweep: its end is declared after a grace
    // of 250 ms, from when others take its pause, its releases and its seat over.
    const { map, registry, store } = setup(4);
    // A participant of a live thread in one long task: it never parks.
    const blocker = claimSeat(registry);
    store(blocker.index, OWNER, liveOwner());
    store(blocker.index, ANNOUNCE, 1);
    const replies = new ReplyQueue<PauseReply>();
    const worker = startWorker(
      new URL("./fixtures/pause_world_worker.ts", import.meta.url),
      replies.listeners((error) => ({ error: error.message })),
    );
    try {
      worker.postMessage({ map: map.handle } satisfies PauseMessage);
      const { threadId, error } = await replies.take(30_000, "the worker's thread id");
      assert.equal(error, undefined);
      record(threadId!, TERMINATING);
      worker.postMessage({ pauseMs: 5_000 } satisfies PauseMessage);
      const reply = await replies.take(30_000, "what pauseWorld did");
      assert.equal(reply.outcome, "threw TerminatedError");
      assert.ok(reply.ms! < 2_000, `it gave up after ${reply.ms} ms`);
      assert.equal(reply.pause, 0, "the pause is lowered");
      assert.equal(Atomics.load(new Int32Array(map.handle.buffer), registry.pauseWord), 0);
    } finally {
      worker.terminate();
      store(blocker.index, ANNOUNCE, 0);
      store(blocker.index, OWNER, ownerId());
      map.close();
    }
  });
});
