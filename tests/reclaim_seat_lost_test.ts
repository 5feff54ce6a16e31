// Copyright the shmap authors. MIT license.
// Engine unit tests of a participant seat lost in the middle of a call (src/_engine/reclaim.ts,
// registry.ts): a Deno worker terminated while it runs synchronous code keeps running its call
// past the grace, after which its seat is released, its retire list swept and freed by another
// participant, and the seat claimed again. What the late call and the late threads of the
// release write must neither leak a block nor take a seat from its new owner. Participants here
// are real, on a SyncMap's arena, driven by hand in one thread; their frees are recorded instead
// of made (the tags name no block). The full storm (termination_storm_full_test.ts) met the
// first case on Deno: a retire list grown for a seat whose list a sweep had freed, reachable
// from nowhere.

import assert from "node:assert/strict";
import { describe, it, test } from "node:test";
import { Worker } from "node:worker_threads";
import { SyncMap, threadGone } from "../mod.ts";
import { Arena, KIND_SYNC_MAP } from "../src/_engine/arena.ts";
import { lockedAllocate, verifyHeap } from "../src/_engine/allocator.ts";
import { Journal } from "../src/_engine/journal.ts";
import { Participant, QUIESCE_EVERY, RETIRES_PER_OP } from "../src/_engine/reclaim.ts";
import {
  ANNOUNCE,
  CLAIM,
  claimSeat,
  finishRelease,
  generationOf,
  OWNER,
  RELEASER,
  releaseSeat,
  SEAT_FREE,
  SEAT_RELEASING,
  SEAT_WORDS,
  seatBlocks,
  stateOf,
} from "../src/_engine/registry.ts";
import { registryOf } from "../src/maps/_sync_layout.ts";

/** A fresh map, its own participant offline, and the registry of a second attach of it. */
async function setup() {
  const map = new SyncMap<number, number>({ maxParticipants: 6 });
  await new Promise((resolve) => setTimeout(resolve, 0));
  const arena = Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test");
  return { map, arena, registry: registryOf(arena) };
}

type Registry = ReturnType<typeof registryOf>;

/** A participant of a new seat whose frees are recorded (and `onFree` called with each tag). */
function participant(registry: Registry, onFree: (tag: number) => void = () => {}) {
  const ticket = claimSeat(registry);
  const freed: number[] = [];
  const p = new Participant(registry, ticket, (tag) => {
    freed.push(tag);
    onFree(tag);
    return false;
  });
  return { p, ticket, freed };
}

/**
 * Enters `p`'s call and retires blocks (fake tags) until its retire list is full, so that its
 * next retirement needs the list grown. Returns how many it retired.
 */
function fillList(p: Participant): number {
  p.enter();
  p.makeRoom(RETIRES_PER_OP);
  let retired = 0;
  while (p.canRetire) p.retire(0x100 * ++retired);
  return retired;
}

/** Brings `p` to a quiescent point, announcing the current epoch, and collects. */
function quiesceAndCollect(p: Participant): void {
  for (let i = 0; i < QUIESCE_EVERY; i++) p.enter();
  p.collect();
}

/** Word `w` of seat `index`. */
const seatWord = (registry: Registry, index: number, w: number): number =>
  Atomics.load(registry.arena.i32, registry.seats + index * SEAT_WORDS + w);

describe("a seat lost in the middle of a call", () => {
  it("a retire list is not grown for a seat released and swept meanwhile", async () => {
    const { map, registry } = await setup();
    const late = participant(registry);
    const sweeper = participant(registry);
    // The late participant retires until its list is full: its next retirements need a new one.
    const retired = fillList(late.p);
    assert.ok(retired >= QUIESCE_EVERY, `a list of ${retired} entries`);
    // Its worker is declared gone in the middle of the call: the seat is released, and another
    // participant sweeps what it left (an orphan) and frees the emptied list.
    releaseSeat(registry, late.ticket.index, generationOf(late.ticket.word));
    for (let i = 0; i < 4; i++) quiesceAndCollect(sweeper.p);
    assert.equal(sweeper.freed.length, retired, "the sweep freed what the late call retired");
    assert.equal(seatBlocks(registry, late.ticket.index).list, 0, "the sweep freed the list");
    const used = map.stats().bytesUsed;
    // The late call goes on to its next retirement, which needs room.
    assert.throws(() => late.p.makeRoom(RETIRES_PER_OP), /released/);
    assert.equal(seatBlocks(registry, late.ticket.index).list, 0, "no list given to the seat");
    assert.equal(map.stats().bytesUsed, used, "nothing allocated");
    assert.deepEqual(late.freed, [], "nothing freed twice");
    map.verify();
    sweeper.p.close();
    map.verify();
  });

  it("a late call touches neither the announcement nor the list of the seat's new owner", async () => {
    const { map, registry } = await setup();
    const late = participant(registry);
    fillList(late.p);
    // Released in the middle of the call, the seat is claimed again at once: its new owner
    // adopts the list (with room in it) and announces.
    releaseSeat(registry, late.ticket.index, generationOf(late.ticket.word));
    const next = participant(registry);
    assert.equal(next.ticket.index, late.ticket.index);
    next.p.enter();
    const other = participant(registry);
    for (let i = 0; i < 3; i++) quiesceAndCollect(other.p);
    const announced = seatWord(registry, next.ticket.index, ANNOUNCE);
    const list = seatBlocks(registry, next.ticket.index).list;
    const count = registry.arena.i32[list >> 2];
    // The late call goes on to its next retirement: it must not collect the new owner's list
    // (announcing for it, after the epochs it read) nor take its room.
    assert.throws(() => late.p.makeRoom(RETIRES_PER_OP), /released/);
    assert.equal(seatWord(registry, next.ticket.index, ANNOUNCE), announced, "the announcement");
    assert.equal(seatBlocks(registry, next.ticket.index).list, list);
    assert.equal(registry.arena.i32[list >> 2], count, "the new owner's list count");
    assert.deepEqual(late.freed, []);
    next.p.close();
    other.p.close();
    map.verify();
  });

  it("a list move left unsettled by a stack overflow is rolled back before the list is used", async () => {
    const { arena, registry } = await setup();
    const mine = participant(registry);
    // Online at an epoch before the retirements: it holds them back, so no collect makes room.
    participant(registry).p.enter();
    const retired = fillList(mine.p);
    const old = seatBlocks(registry, mine.ticket.index).list;
    // The move's commit overflows as it is entered, and so does its rollback: the allocator
    // lock is released poisoned, its step's writes in place (LIST naming the new list).
    const { commit, recover } = Journal.prototype;
    let armed = true;
    const overflow = () => new RangeError("Maximum call stack size exceeded");
    Journal.prototype.commit = function (this: Journal, ...args: Parameters<typeof commit>) {
      if (armed) throw overflow();
      return commit.apply(this, args);
    };
    Journal.prototype.recover = function (this: Journal) {
      if (armed) {
        armed = false;
        throw overflow();
      }
      return recover.apply(this);
    };
    try {
      assert.throws(() => mine.p.makeRoom(RETIRES_PER_OP), /Maximum call stack/);
    } finally {
      Object.assign(Journal.prototype, { commit, recover });
    }
    // The next call's room is made on a settled list, and what it retires stays listed.
    mine.p.makeRoom(RETIRES_PER_OP);
    mine.p.retire(0x7770);
    lockedAllocate(arena, 16, false); // any step of the allocator settles what is left
    const list = seatBlocks(registry, mine.ticket.index).list;
    assert.notEqual(list, old, "the list moved");
    assert.ok(verifyHeap(arena).blocks.has(list), "the seat's list is handed out");
    assert.equal(arena.i32[list >> 2], retired + 1, "every retirement listed");
    assert.equal(mine.p.pending, retired + 1);
  });

  it("a borrower's late end of its sweep leaves the seat to its new owner", async () => {
    const { map, registry } = await setup();
    const gone = participant(registry);
    const index = gone.ticket.index;
    // The borrower sweeping the orphan outlives its grace at its first free: the seat is reaped
    // from it (released) and claimed by a new participant, and the borrower, marked terminating,
    // stops at its next check (here, the free throws as the check would).
    let next: ReturnType<typeof participant> | undefined;
    const stopped = new Error("the borrower is stopped");
    const borrower = participant(registry, () => {
      if (next !== undefined) return;
      releaseSeat(registry, index, generationOf(seatWord(registry, index, CLAIM)));
      next = participant(registry);
      throw stopped;
    });
    gone.p.enter();
    gone.p.makeRoom(RETIRES_PER_OP);
    gone.p.retire(0x100);
    gone.p.retire(0x200);
    releaseSeat(registry, index, generationOf(gone.ticket.word));
    for (let i = 0; i < 4 && next === undefined; i++) {
      try {
        quiesceAndCollect(borrower.p);
      } catch (error) {
        if (error !== stopped) throw error;
      }
    }
    assert.ok(next !== undefined, "the borrower swept the orphan");
    assert.equal(next.ticket.index, index, "the new owner has the orphan's seat");
    assert.equal(seatWord(registry, index, CLAIM), next.ticket.word, "the new owner's claim");
    assert.ok(next.p.holdsSeat);
    next.p.enter();
    next.p.close();
    borrower.p.close();
    map.verify();
  });

  it("a releaser's late end of a release taken over leaves the seat to its new owner", async () => {
    const { map, registry } = await setup();
    const gone = participant(registry);
    const index = gone.ticket.index;
    let next: ReturnType<typeof participant> | undefined;
    // The releaser outlives its grace after the rollback (onReleased): its release is taken
    // over and finished, and the seat claimed again, before its own release goes on.
    releaseSeat(registry, index, generationOf(gone.ticket.word), 0, () => {
      if (next !== undefined) return;
      finishRelease(registry, index);
      next = participant(registry);
    });
    assert.ok(next !== undefined);
    assert.equal(next.ticket.index, index, "the new owner has the released seat");
    assert.equal(seatWord(registry, index, CLAIM), next.ticket.word, "the new owner's claim");
    assert.notEqual(seatWord(registry, index, OWNER), 0, "the new owner's OWNER");
    next.p.enter();
    next.p.makeRoom(RETIRES_PER_OP);
    assert.notEqual(seatBlocks(registry, index).list, 0);
    next.p.close();
    map.verify();
  });
});

test("a releaser marked terminating in the middle of a release stops before its last stores", async () => {
  // A worker reaping a seat is terminated meanwhile: past the grace, its release may have been
  // taken over and finished, and the seat claimed again, so it must not go on to clear OWNER and
  // ANNOUNCE and store FREE. It stops at the census check before them, its release left for others.
  const map = new SyncMap<number, number>();
  const worker = new Worker(new URL("./fixtures/late_releaser_worker.ts", import.meta.url), {
    workerData: { handle: map.handle },
  });
  const messages: { seat?: number; owner?: number; outcome?: string }[] = [];
  worker.on("message", (m) => messages.push(m));
  await new Promise((resolve, reject) => {
    worker.once("exit", resolve);
    worker.once("error", reject);
  });
  const { seat, owner } = messages[0];
  assert.ok(seat !== undefined && owner !== undefined, JSON.stringify(messages));
  // A Deno node:worker_threads worker exits where the others throw (census.ts, stop).
  if (messages.length > 1) assert.equal(messages[1].outcome, "TerminatedError");
  const registry = registryOf(Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test"));
  assert.equal(stateOf(seatWord(registry, seat, CLAIM)), SEAT_RELEASING, "the release is left");
  assert.equal(seatWord(registry, seat, RELEASER), owner);
  // Once the worker is known gone, the next reap takes its release over and finishes it.
  threadGone(owner - 1);
  map.verify();
  assert.equal(stateOf(seatWord(registry, seat, CLAIM)), SEAT_FREE);
  assert.equal(seatWord(registry, seat, RELEASER), 0);
});
