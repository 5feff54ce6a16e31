/**
 * Internal. How `SyncMap.compute` tells a retry its own callback caused from one another
 * writer caused.
 *
 * `compute` runs `fn` and stores its result only if the key still holds what `fn` was given;
 * when `fn` itself writes the key (a nested `store`, or a nested `compute` of it), the key has
 * changed by the time `fn` returns, so `compute` runs `fn` again, which writes again: a loop
 * that never ends. Another worker's writes cannot do that (each lost round is another writer's
 * success), so only this thread's own writes need telling apart, and this file does it: while
 * a `compute` callback runs on this thread, every value record any SyncMap call of this thread
 * makes is noted as (buffer, offset), and every value it takes out (a delete, a clear) as
 * (buffer, 0). After a lost round, the record the key holds is looked up among those made during
 * that round's `fn` (or, when the key has no value, a removal): if it is one, this thread's own
 * callback wrote the key. `compute` allows a few such rounds in a row (_computed.ts
 * `SELF_WRITES_MAX`: a callback may write its key conditionally, and the value it then sees
 * stops it), then throws.
 *
 * A record noted may have been replaced and freed since, its offset reused by another worker's
 * record for the same key: a false "own write", which can only count towards the limit, and
 * needs that to happen `SELF_WRITES_MAX` rounds in a row. An immediate (a small integer held
 * in the entry itself, _sync_layout.ts) is a value, not a block: another writer may store the
 * same integer, so it is noted with the entry this thread stored it into, at the exchange, and
 * only that entry's word counts. Writes made through another
 * SyncMap object of the same map whose buffer object differs are not recognised: `compute`
 * then runs `fn` on as before.
 *
 * Thread-local JavaScript state; nothing here is shared memory.
 *
 * @module
 */

/** Notes kept at most in one outermost `compute`; past it every lost round counts as own. */
const NOTED_MAX = 1 << 16;
/** Array slots of one note: (buffer, entry or 0, value word). */
const NOTE = 3;

/** `compute` callbacks running on this thread now (nested computes each count). */
let depth = 0;
/**
 * Notes made while a callback ran, since the outermost compute began, each (buffer, entry,
 * value word): a record's offset with entry 0 (a record is this thread's alone, wherever it is
 * stored), an immediate with the entry it was stored into, a removal as word 0 with entry 0.
 */
const made: (SharedArrayBuffer | ArrayBuffer | number)[] = [];
/** Whether more than NOTED_MAX notes were made: {@linkcode madeSince} then says yes. */
let overflowed = false;

function note(buffer: SharedArrayBuffer | ArrayBuffer, e: number, p: number): void {
  if (made.length >= NOTE * NOTED_MAX) overflowed = true;
  else made.push(buffer, e, p);
}

/** Notes record `r` of the map in `buffer`, when a compute callback is running (newRecord). */
export function noteRecord(buffer: SharedArrayBuffer | ArrayBuffer, r: number): void {
  if (depth !== 0) note(buffer, 0, r);
}

/**
 * Notes immediate `p` stored into entry `e` of the map in `buffer`, when a compute callback is
 * running (SyncCore.noteStored, at the exchange that stored it). An immediate is a value, which
 * another writer may store too, so it counts as this thread's own write only in the entry this
 * thread stored it into.
 */
export function noteImmediate(buffer: SharedArrayBuffer | ArrayBuffer, e: number, p: number): void {
  if (depth !== 0) note(buffer, e, p);
}

/**
 * Notes that a value of the map in `buffer` was taken out (a delete, a clear), when a compute
 * callback is running: noted as record 0, which no record is, and which {@linkcode madeSince}
 * is asked about when the key has no value once a round is lost. A callback that deletes its
 * own key on one round and stores it on the next would otherwise never count a round as its
 * own. Another key's deletion by the callback counts too: it can only count towards the limit.
 */
export function noteRemoval(buffer: SharedArrayBuffer | ArrayBuffer): void {
  noteRecord(buffer, 0);
}

/** Marks the start of one run of a callback; returns the mark for {@linkcode madeSince}. */
export function enterCallback(): number {
  depth++;
  return made.length;
}

/**
 * Marks the end of a run begun by {@linkcode enterCallback}; returns the end mark for
 * {@linkcode madeSince}: what the compute does after its callback (its own store, noted for
 * an outer callback when nested) is not the callback's write.
 */
export function exitCallback(): number {
  depth--;
  return made.length;
}

/**
 * Whether value word `p` of entry `e` of the map in `buffer` was noted between `mark` and `end`
 * (a run's own write); for `p` 0 (the key has no value), whether a value of that map was taken
 * out then.
 */
export function madeSince(
  mark: number,
  end: number,
  buffer: SharedArrayBuffer | ArrayBuffer,
  e: number,
  p: number,
): boolean {
  if (overflowed) return true;
  for (let i = mark; i < end; i += NOTE) {
    if (made[i + 2] === p && made[i] === buffer && (made[i + 1] === 0 || made[i + 1] === e)) {
      return true;
    }
  }
  return false;
}

/** Forgets the notes once the outermost compute has returned or thrown. */
export function endCompute(): void {
  if (depth !== 0) return;
  if (made.length !== 0) made.length = 0; // a store to `length` is a runtime call (see locked)
  overflowed = false;
}
