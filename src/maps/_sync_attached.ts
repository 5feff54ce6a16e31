/**
 * Internal. The SyncMap objects of this thread, so that attaching a map this thread already
 * uses gives back the object it has, not a new participant seat.
 *
 * A pool's task typically attaches the handle its message carries, every task, and rarely
 * closes what it attached. Each attach used to claim a seat of its own, kept until the object
 * was closed or its thread ended, so a worker that ran `maxParticipants` tasks (256 by default)
 * made every later attach throw. One seat a thread is all a thread needs: an object's calls
 * from one thread never overlap but by nesting, which an object already handles (user code
 * inside its own calls). So an attach finds this thread's live object for the same map and the
 * same codecs, counts one more attach on it and returns it; `close()` counts one down and gives
 * the seat back with the last. The object made by `new SyncMap()` counts as one attach.
 *
 * The same map: a handle that crossed a `postMessage` carries another `SharedArrayBuffer`
 * object over the same memory, so objects are not compared. A candidate must have the new
 * arena's hash seeds (64 random bits chosen at creation), and then its memory must be the new
 * arena's (arena.ts `sameMemory`): a map whose buffer was copied from another has its seeds.
 *
 * The same codecs: built-in codecs are named, and the name is the map's (checked at attach), so
 * any two are the same; a user codec is the same only as the same object.
 *
 * A handle that carries a seat the worker adapters reserved for this worker (`participant`)
 * gets the object that adopted that seat, if it is still live in this thread; otherwise it
 * adopts the seat, as before.
 *
 * Nothing here is shared memory: each thread has its own list.
 *
 * @module
 */

import { type Arena, sameMemory } from "../_engine/arena.ts";
import type { Participant } from "../_engine/reclaim.ts";
import { type SlotCodec, UserSlots } from "../_engine/slots.ts";

interface Attached {
  /** Weak: an object nobody holds goes (and its seat with it: see `collected`). */
  readonly object: WeakRef<object>;
  /** The object's participant and arena; weak as well (the object holds them). */
  readonly state: WeakRef<{ readonly participant: Participant; readonly arena: Arena }>;
  readonly seed0: number;
  readonly seed1: number;
  readonly keys: unknown;
  readonly values: unknown;
  /** Attaches not closed yet (the constructor's counts as one). */
  attaches: number;
}

const live: Attached[] = [];

/**
 * Closes the participant of an object collected without its last `close()`: otherwise its seat
 * would stay taken until its thread ends, and a thread whose tasks attach and drop the map
 * would take a seat every time the collector ran. The participant does not reach its object
 * (the object reaches it), so holding it here does not keep the object. A finalizer runs as a
 * task of its own, never inside a call. What its close throws has no caller to reach: the
 * seat is then left to the thread's end, as before.
 */
const collected = new FinalizationRegistry<Participant>((participant) => {
  try {
    participant.close();
  } catch {
    // See above.
  }
});

/** What makes two codecs the same for reuse: null for any built-in, else the user's codec. */
function codecIdentity(slots: SlotCodec<unknown>): unknown {
  return slots instanceof UserSlots ? slots.codec : null;
}

/** Records `object`, just made over `state`'s participant seat, as attached once. */
export function noteAttached(
  object: object,
  state: { readonly participant: Participant; readonly arena: Arena },
  keys: SlotCodec<unknown>,
  values: SlotCodec<unknown>,
): void {
  collected.register(object, state.participant, object);
  // Entries of collected objects go here too, not only when an attach walks the list.
  for (let i = live.length - 1; i >= 0; i--) {
    if (live[i].object.deref() === undefined) live.splice(i, 1);
  }
  live.push({
    object: new WeakRef(object),
    state: new WeakRef(state),
    seed0: state.arena.seed0,
    seed1: state.arena.seed1,
    keys: codecIdentity(keys),
    values: codecIdentity(values),
    attaches: 1,
  });
}

/**
 * This thread's live object for the map `arena` views, with these codecs, counted attached once
 * more; or undefined. With `seat` (a reserved seat's index and generation), only the object that
 * adopted that seat. Entries whose object was collected, or whose seat is no longer theirs
 * (closed, or released by an adapter), are dropped on the way.
 */
export function attachedAgain(
  arena: Arena,
  keys: SlotCodec<unknown>,
  values: SlotCodec<unknown>,
  seat: { index: number; generation: number } | undefined,
): object | undefined {
  const k = codecIdentity(keys);
  const v = codecIdentity(values);
  for (let i = live.length - 1; i >= 0; i--) {
    const at = live[i];
    const object = at.object.deref();
    const state = at.state.deref();
    if (object === undefined || state === undefined || !state.participant.holdsSeat) {
      live.splice(i, 1);
      continue;
    }
    if (
      at.seed0 !== arena.seed0 || at.seed1 !== arena.seed1 || at.keys !== k || at.values !== v ||
      !sameMemory(state.arena, arena)
    ) {
      continue;
    }
    const p = state.participant;
    if (seat !== undefined && (seat.index !== p.index || seat.generation !== p.generation)) {
      continue;
    }
    at.attaches++;
    return object;
  }
  return undefined;
}

/** The listed entry of `object`, or undefined. */
function entryOf(object: object): Attached | undefined {
  return live.find((at) => at.object.deref() === object);
}

/**
 * Whether closing `object` now would close its last attach (or it is not listed): the close
 * that gives its seat back.
 */
export function lastAttach(object: object): boolean {
  const at = entryOf(object);
  return at === undefined || at.attaches <= 1;
}

/**
 * Counts one attach of `object` closed. Returns true when it was the last (or the object is not
 * listed): the caller then closes its participant.
 */
export function closeAttach(object: object): boolean {
  const at = entryOf(object);
  if (at !== undefined && --at.attaches > 0) return false;
  if (at !== undefined) live.splice(live.indexOf(at), 1);
  collected.unregister(object);
  return true;
}
