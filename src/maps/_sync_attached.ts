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
 * An object made by `new SyncMap()` is listed only once its memory can reach another object:
 * when its `handle` is read or it is shared with a worker (`noteAttached`). Until then no attach
 * can find its memory (the handle is the only way out), and nothing else in this thread, or in
 * another, can reach it: it needs no entry, no finalizer and no stop hook (census.ts), so one
 * that is dropped or closed is freed by the next garbage collection, and making one costs the
 * same however many exist. An entry is found by its map's hash seed, in O(1) however many are
 * listed, and by its object through `listedObjects`.
 *
 * Nothing in a listed entry keeps its object: a WeakRef keeps its target alive until the job
 * that made it (or last called its `deref()`) ends (ECMAScript AddToKeptObjects), so an entry
 * reaches its object through a WeakRef to a cell (`Cell`), which `close()` empties. A loop that
 * made 30,000 maps in one task, each listed and WeakRef'd at construction, closed or not, kept
 * every one and its SharedArrayBuffer until the task ended (and walked the whole list at each
 * construction): the process ran out of memory or of memory mappings (helper-166).
 *
 * Nothing here is shared memory: each thread has its own list.
 *
 * @module
 */

import { type Arena, sameMemory } from "../_engine/arena.ts";
import { onGone, onOwnExit } from "../_engine/census.ts";
import type { Participant } from "../_engine/reclaim.ts";
import { type SlotCodec, UserSlots } from "../_engine/slots.ts";

/** What an entry needs of its object's state (the object's SyncAccess). */
interface State {
  readonly participant: Participant;
  readonly arena: Arena;
  readonly keys: SlotCodec<unknown>;
  readonly values: SlotCodec<unknown>;
}

/**
 * What an entry reaches its object through, weakly: the object keeps its cell (`listedObjects`), and
 * the cell keeps the object until its last close. `close()`'s last attach empties it, so that a
 * cell kept alive to the end of the job by its WeakRef reaches nothing of a closed object.
 */
interface Cell {
  object: object | undefined;
  state: State | undefined;
}

interface Attached {
  /** Weak: an object nobody holds goes (and its seat with it: see `collected`). */
  readonly cell: WeakRef<Cell>;
  /**
   * The object's participant, for `collected` to close when the object goes unclosed (also
   * once the entry left the list for a seat no longer its own: the close takes its stop hook
   * back); it does not reach the object. Cleared by the last `close()`.
   */
  participant: Participant | undefined;
  readonly seed0: number;
  readonly seed1: number;
  readonly keys: unknown;
  readonly values: unknown;
  /** Attaches not closed yet (the constructor's counts as one). */
  attaches: number;
}

/** The listed entries by their map's first hash seed: a lookup reads its map's entries only. */
const bySeed = new Map<number, Attached[]>();
/** Each listed object's cell and entry; they live as long as the object (a WeakMap's key). */
const listedObjects = new WeakMap<object, { readonly cell: Cell; readonly entry: Attached }>();
/** How many entries are listed (tests). */
let listedCount = 0;

/** Takes `at` off the list (once). */
function unlist(at: Attached): void {
  const bucket = bySeed.get(at.seed0);
  const i = bucket === undefined ? -1 : bucket.indexOf(at);
  if (i < 0) return;
  // Spliced, not swapped with the last: the newest entry is found first, as it always was.
  bucket!.splice(i, 1);
  if (bucket!.length === 0) bySeed.delete(at.seed0);
  listedCount--;
}

/**
 * Closes the participant of an object collected without its last `close()`: otherwise its seat
 * would stay taken until its thread ends, and a thread whose tasks attach and drop the map
 * would take a seat every time the collector ran. The entry does not reach its object (the
 * object reaches it), so holding it here does not keep the object. A finalizer runs as a
 * task of its own, never inside a call. What its close throws has no caller to reach: the
 * seat is then left to the thread's end, as before.
 */
const collected = new FinalizationRegistry<Attached>((at) => {
  const participant = at.participant;
  unlist(at);
  try {
    participant?.close();
  } catch {
    // See above.
  }
});

/** What makes two codecs the same for reuse: null for any built-in, else the user's codec. */
function codecIdentity(slots: SlotCodec<unknown>): unknown {
  return slots instanceof UserSlots ? slots.codec : null;
}

/**
 * Records `object`, made over `state`'s participant seat, as attached once: at construction for
 * an attached object, when its memory first leaves it for one made by `new SyncMap()`
 * (`SyncMap.handle`, a share with a worker). Does nothing for an object listed already, or one
 * whose seat is no longer its own (closed). Costs O(1), however many objects are listed.
 */
export function noteAttached(object: object, state: State): void {
  if (listedObjects.has(object) || !state.participant.holdsSeat) return;
  const cell: Cell = { object, state };
  const entry: Attached = {
    cell: new WeakRef(cell),
    participant: state.participant,
    seed0: state.arena.seed0,
    seed1: state.arena.seed1,
    keys: codecIdentity(state.keys),
    values: codecIdentity(state.values),
    attaches: 1,
  };
  listedObjects.set(object, { cell, entry });
  const bucket = bySeed.get(entry.seed0);
  if (bucket === undefined) bySeed.set(entry.seed0, [entry]);
  else bucket.push(entry);
  listedCount++;
  collected.register(object, entry, object);
}

/**
 * This thread's live object for the map `arena` views, with these codecs, counted attached once
 * more; or undefined. With `seat` (a reserved seat's index and generation), only the object that
 * adopted that seat. Entries of the map whose object was collected, or whose seat is no longer
 * theirs (closed, or released by an adapter), are dropped on the way.
 */
export function attachedAgain(
  arena: Arena,
  keys: SlotCodec<unknown>,
  values: SlotCodec<unknown>,
  seat: { index: number; generation: number } | undefined,
): object | undefined {
  const bucket = bySeed.get(arena.seed0);
  if (bucket === undefined) return undefined;
  const k = codecIdentity(keys);
  const v = codecIdentity(values);
  for (let i = bucket.length - 1; i >= 0; i--) {
    const at = bucket[i];
    const cell = at.cell.deref();
    const object = cell?.object;
    const state = cell?.state;
    if (object === undefined || state === undefined || !state.participant.holdsSeat) {
      unlist(at);
      continue;
    }
    if (
      at.seed1 !== arena.seed1 || at.keys !== k || at.values !== v ||
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

/**
 * Whether closing `object` now would close its last attach (or it is not listed): the close
 * that gives its seat back.
 */
export function lastAttach(object: object): boolean {
  const at = listedObjects.get(object)?.entry;
  return at === undefined || at.attaches <= 1;
}

/**
 * Counts one attach of `object` closed. Returns true when it was the last (or the object is not
 * listed): the caller then closes its participant. The last takes the object off the list and
 * empties its cell, so that nothing here holds it or its memory from then on.
 */
export function closeAttach(object: object): boolean {
  const listed = listedObjects.get(object);
  if (listed === undefined) return true;
  const { cell, entry } = listed;
  if (--entry.attaches > 0) return false;
  unlist(entry);
  listedObjects.delete(object);
  cell.object = undefined;
  cell.state = undefined;
  entry.participant = undefined;
  collected.unregister(object);
  return true;
}

/**
 * Has the participant of each live listed object of this thread, or of those over the memory of
 * `arena` only, look for the participants of gone threads now and give back their seats
 * (Participant.reapNow), as its next call would. Where this thread holds something a reap must
 * not sweep (inside a call of its own, in user code), the quiescent point leaves the reap for
 * later, as it does for any call. What a reap throws is the object's next call's to throw
 * (Participant.defer).
 */
export function reapThroughListed(arena?: Arena): void {
  for (const at of listedNow()) {
    const state = at.cell.deref()?.state;
    if (state === undefined || !state.participant.holdsSeat) continue;
    if (
      arena !== undefined &&
      (at.seed0 !== arena.seed0 || at.seed1 !== arena.seed1 || !sameMemory(state.arena, arena))
    ) {
      continue;
    }
    const p = state.participant;
    try {
      p.reapNow();
    } catch (error) {
      p.defer(error);
    }
  }
}

/** Every entry listed now: a copy, which what is done to each (a close unlists) leaves whole. */
function listedNow(): Attached[] {
  return [...bySeed.values()].flat();
}

// Where this thread learns of a thread's end, its objects give back that thread's seats at once.
onGone(() => reapThroughListed());

/**
 * As this worker exits of its own accord (census.ts onOwnExit), each listed object of it that
 * is in no call gives its seat back, as its close() would: nobody else gives back the seat of
 * a worker that ended untracked until some live object of the map makes a call. One inside a
 * call (`process.exit()` from user code it runs) is left to the others, as a death is. Never
 * throws: what a close throws is dropped with the thread.
 */
function closeIdleListed(): void {
  for (const at of listedNow()) {
    const p = at.cell.deref()?.state?.participant ?? at.participant;
    if (p === undefined || !p.holdsSeat || !p.inNoCall) continue;
    try {
      p.close();
    } catch {
      // Left as a dead worker's seat is, for the others to give back.
    }
  }
}
onOwnExit(closeIdleListed);

/** How many objects this thread lists (tests). */
export function listedCountForTests(): number {
  return listedCount;
}
