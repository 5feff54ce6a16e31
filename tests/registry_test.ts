// Copyright the shmap authors. MIT license.
// Engine unit tests of the participant registry's claim protocol (src/_engine/registry.ts): a
// claimer records itself as OWNER before it claims, so a claimer stopped at any point leaves a
// slot that is claimed again or found dead, never one lost for good. The states a stopped
// claimer leaves are written by hand into a real SyncMap's slots.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SyncMap } from "../mod.ts";
import type { Arena } from "../src/_engine/arena.ts";
import { GONE, ownerId, record } from "../src/_engine/census.ts";
import {
  CLAIM,
  claimSlot,
  deadSlots,
  OWNER,
  SLOT_FREE,
  SLOT_IN_USE,
  SLOT_WORDS,
  stateOf,
} from "../src/_engine/registry.ts";
import { registryOf } from "../src/maps/_sync_layout.ts";

/** Thread ids far from any real one, each recorded gone. */
let ghosts = 2 ** 27 + 5000 + Math.floor(Math.random() * 10_000) * 8;
function ghostOwner(): number {
  const id = ghosts++;
  record(id, GONE);
  return id + 1;
}

/** A map with `n` participant slots, the first taken by the map itself. */
function setup(n: number) {
  const map = new SyncMap<string, number>({ maxParticipants: n });
  const i32 = new Int32Array(map.handle.buffer);
  // Claims and deadSlots read only the words (no growth, no allocation).
  const registry = registryOf({ i32 } as unknown as Arena);
  const word = (slot: number, w: number): number => registry.slots + slot * SLOT_WORDS + w;
  return { map, i32, registry, word };
}

describe("participant registry: claims", () => {
  it("records the claimer as OWNER of the slot it claims", () => {
    const { map, i32, registry, word } = setup(4);
    const ticket = claimSlot(registry);
    assert.equal(Atomics.load(i32, word(ticket.index, OWNER)), ownerId());
    assert.equal(stateOf(Atomics.load(i32, word(ticket.index, CLAIM))), SLOT_IN_USE);
    map.close();
  });

  it("takes over a free slot whose OWNER names a claimer that died before claiming", () => {
    const { map, i32, registry, word } = setup(2);
    // Slot 0 is the map's; slot 1 is the only one left, left by a dead claimer.
    assert.equal(stateOf(Atomics.load(i32, word(1, CLAIM))), SLOT_FREE);
    Atomics.store(i32, word(1, OWNER), ghostOwner());
    const ticket = claimSlot(registry);
    assert.equal(ticket.index, 1);
    assert.equal(Atomics.load(i32, word(1, OWNER)), ownerId());
    map.close();
  });

  it("leaves alone a free slot that a live thread is claiming", () => {
    const { map, i32, registry, word } = setup(3);
    // A live claimer (this test stands in for it with the id of a thread never recorded gone)
    // has written OWNER of slot 1 and not yet claimed it: the next claimer takes slot 2.
    const live = 2 ** 27 + 1 + Math.floor(Math.random() * 1000);
    Atomics.store(i32, word(1, OWNER), live);
    const ticket = claimSlot(registry);
    assert.equal(ticket.index, 2);
    assert.equal(Atomics.load(i32, word(1, OWNER)), live, "the live claimer's OWNER stays");
    map.close();
  });

  it("names a claimer that died after claiming among the dead slots", () => {
    const { map, i32, registry, word } = setup(3);
    const ticket = claimSlot(registry);
    // The claim and its OWNER are written; then the claimer dies.
    const owner = ghostOwner();
    Atomics.store(i32, word(ticket.index, OWNER), owner);
    assert.deepEqual(
      deadSlots(registry).map((d) => d.index),
      [ticket.index],
      "the slot of a claimer gone after its claim is found",
    );
    map.close();
  });
});
