/**
 * Internal. Journals: undo logs in shared memory that make a locked mutation all-or-nothing
 * when the thread performing it dies part-way.
 *
 * A mutation under a lock (a GoMap write, a SyncMap's locked step, an allocator operation)
 * writes shared words through its lock's journal: {@linkcode Journal.set} first appends the
 * word's index and old value, then writes the new value. When the lock's holder dies, the next
 * holder finds the lock poisoned (futex.ts) and calls {@linkcode Journal.recover}, which writes
 * the old values back, newest first, so the structure is exactly as it was before the
 * mutation began. Committing is emptying the journal: the count, then the state.
 *
 * What needs no entry: writes into memory the mutation itself allocated (rolling back the
 * allocation makes it free again, and the allocator journals the words a free block needs, see
 * allocator.ts), and words nobody reads before the mutation commits. Ranges known to be zero
 * before the mutation (the empty buckets an evacuation fills) take one ZERO entry.
 *
 * Two kinds exist for structures whose allocator has a lock of its own (SyncMap), because the
 * allocator's state cannot be rolled back by another lock's journal: FREE entries name a block
 * this mutation allocated, which a rollback gives back; DEFER entries name a block the mutation
 * frees, which must not be freed before the commit (a rollback would make it reachable again).
 * A commit with DEFER entries first sets state COMMITTING, after which recovery rolls
 * *forward*: it performs the remaining frees. A word that lock-free readers load (SyncMap's
 * read-table word) is not written during the mutation at all: {@linkcode Journal.publishAtCommit}
 * notes it, and the commit stores it once COMMITTING is set (recovery rolling forward stores it
 * again), so no reader ever sees a value that a rollback would take back. Each free done by rollback or commit truncates the
 * journal inside the allocator's own journaled critical section (allocator.ts, `release`'s
 * `truncate` argument), so a free is never done twice however the thread dies.
 *
 * Entries are written before the count that covers them, in program order by one thread;
 * recovery runs in a thread that learned of the death through the census, after the dead
 * thread stopped, so it sees every write the dead thread made.
 *
 * A journal's words are shared memory, which a bug or a stray write elsewhere may have
 * corrupted. Nothing read from them is trusted: the count is bounded by the capacity the
 * journal was made with (kept locally, and the capacity word checked against it), an idle
 * journal has no entries, and a rollback or roll-forward checks every entry it will act on
 * (each word inside the arena and outside the journal's own bookkeeping, each block inside the
 * arena and of a kind this journal may hold) before it writes anything. Corruption is a
 * RangeError naming the journal's word and what is wrong with it, thrown with nothing written.
 *
 * Layout (32-bit words from `at`):
 *
 * | word     | meaning                                                           |
 * | -------- | ----------------------------------------------------------------- |
 * | 0        | entries in use                                                    |
 * | 1        | capacity in entries                                               |
 * | 2        | state: IDLE, ACTIVE or COMMITTING                                  |
 * | 3        | intent: a multi-step operation under way (its owner's code), or 0 |
 * | 4..7     | the intent's arguments and progress                               |
 * | 8        | word index to publish at commit, or 0                             |
 * | 9        | the value to publish there                                        |
 * | 10, 11   | the lock's owner's own (a SyncMap's step: its caller's hand)      |
 * | 12 + 2i  | entry i, first word: `(index << 2) \| kind`                       |
 * | 13 + 2i  | entry i, second word: the old value, an end index, or a size      |
 *
 * @module
 */

import { MapFullError } from "../errors.ts";

const J_COUNT = 0;
const J_CAPACITY = 1;
const J_STATE = 2;
/** Word of the intent (a multi-step operation's code) relative to the journal. */
export const J_INTENT = 3;
/** First of the intent's four argument words. */
export const J_ARGS = 4;
const J_PUBLISH = 8;
const J_PUBLISH_VALUE = 9;
const J_ENTRIES = 12;
/**
 * A word the journal's owner writes plainly under its lock, which no rollback touches: a SyncMap
 * step of a new key names here the record its caller holds in hand; 0 while a step may leave a
 * block stray; {@linkcode J_HAND_CLEAN} once the last step, or recovery, ended wholly. For a
 * recovery after the holder's death (maps/_sync_hand_log.ts).
 */
export const J_HAND = 10;
/** {@linkcode J_HAND} once its step is over, commit and all that follows it: nothing is stray. */
export const J_HAND_CLEAN = -1;
/** The seat word offset of the participant whose record {@linkcode J_HAND} names. */
export const J_HAND_SEAT = 11;

/** Not in a mutation. */
export const IDLE = 0;
/** In a mutation: recovery rolls back. */
export const ACTIVE = 1;
/** Committing: recovery performs the remaining deferred frees. */
export const COMMITTING = 2;

const K_WORD = 0;
const K_ZERO = 1;
const K_FREE = 2;
const K_DEFER = 3;

/** Words a journal of `capacity` entries occupies. */
export function journalWords(capacity: number): number {
  return J_ENTRIES + 2 * capacity;
}

/** Frees a block for a journal: `release(offset, size, countWord, count)` (see above). */
export type JournalFree = (offset: number, size: number, countWord: number, count: number) => void;

/**
 * Thrown when a mutation needs more entries than its journal holds. The mutation is then undone,
 * as one that found no memory is, so callers see it as the {@linkcode MapFullError} it is: the
 * map cannot take this write as it stands.
 */
export class JournalFullError extends MapFullError {
  constructor() {
    super(0, 0);
    this.message = "the mutation is larger than the map's journal can undo; it was not made";
    this.name = "JournalFullError";
  }
}

/**
 * Where a journal finds its view: the arena, whose `i32` is remade when the buffer grows.
 * A journal reads `i32` again on every use.
 */
export interface JournalView {
  readonly i32: Int32Array;
}

/** A journal at word `at` of its source's `i32`. */
export class Journal {
  readonly at: number;
  /**
   * Entries the journal was made with. Every bound on the count is this local copy, never the
   * shared capacity word, which is only checked against it.
   */
  readonly capacity: number;
  /**
   * Read as `#src.i32` at every use: a property load that stays monomorphic, since every
   * journal's source is an Arena. A view function instead is a call, one closure per kind of
   * journal, which V8 does not inline (the churn shapes cost 1.08x to 1.15x that way on Deno).
   */
  readonly #src: JournalView;
  /**
   * Whether this thread appended a DEFER entry since the journal was last emptied: a commit
   * without one (and with nothing to publish) has nothing to roll forward. Local, since only
   * the lock's holder appends; a stale true (the entry was rolled back) only costs a walk.
   */
  #defers = false;
  /**
   * Whether the mutation under way emptied a table slot (table.ts, a delete's mark). An insert
   * writes an empty slot's words plainly only while this is false: a slot emptied by the same
   * mutation is live again after its rollback, and must find its own words there. Local, as
   * `#defers` is; set again by every {@linkcode begin}.
   */
  slotEmptied = false;

  /**
   * The journal of `capacity` entries at word `at` of `src.i32`. Throws RangeError when its
   * words do not lie inside the view (a corrupt offset: the view covers every block in use).
   */
  constructor(src: JournalView, at: number, capacity: number) {
    this.#src = src;
    this.at = at;
    this.capacity = capacity;
    const length = src.i32.length;
    if (!(at > 0 && at + journalWords(capacity) <= length)) {
      throw new RangeError(
        `corrupt journal offset: words ${at} to ${at + journalWords(capacity)} lie outside ` +
          `the arena's ${length} words`,
      );
    }
  }

  /** Writes an empty journal of `capacity` entries at `at` of `i32`. */
  static format(i32: Int32Array, at: number, capacity: number): void {
    i32.fill(0, at, at + J_ENTRIES);
    i32[at + J_CAPACITY] = capacity;
  }

  /** Whether a mutation was under way (its holder died, or it is the caller's own). */
  get dirty(): boolean {
    const i32 = this.#src.i32;
    return i32[this.at + J_COUNT] !== 0 || i32[this.at + J_STATE] !== IDLE ||
      i32[this.at + J_INTENT] !== 0;
  }

  /**
   * What is wrong with this journal for one that no mutation is using (for `verify()`): not
   * empty, not idle, an intent left, a word noted to publish, or a capacity word other than the
   * one it was made with. Null when nothing is.
   */
  idleProblem(): string | null {
    const i32 = this.#src.i32;
    const at = this.at;
    if (this.dirty) return "is not empty";
    if (i32[at + J_CAPACITY] !== this.capacity) {
      return `has capacity word ${i32[at + J_CAPACITY]}, made with ${this.capacity}`;
    }
    if (i32[at + J_PUBLISH] !== 0) return `notes word ${i32[at + J_PUBLISH]} to publish`;
    return null;
  }

  /** Starts a mutation. The journal must be idle. */
  begin(): void {
    const i32 = this.#src.i32;
    this.#checkIdle(i32);
    i32[this.at + J_STATE] = ACTIVE;
    this.slotEmptied = false;
  }

  /**
   * Throws RangeError unless the journal is idle: no entries, no mutation under way, its
   * capacity word intact. Only the lock's holder begins a mutation, and every mutation (or its
   * recovery) ends idle, so a journal found otherwise here is corrupt.
   */
  #checkIdle(i32: Int32Array): void {
    const at = this.at;
    if (
      i32[at + J_COUNT] !== 0 || i32[at + J_STATE] !== IDLE ||
      i32[at + J_CAPACITY] !== this.capacity
    ) {
      const capacity = i32[at + J_CAPACITY];
      if (capacity !== this.capacity) throw this.#corrupt(J_CAPACITY, this.#badCapacity(capacity));
      const count = i32[at + J_COUNT];
      if (count !== 0) {
        throw this.#corrupt(J_COUNT, `count ${count} as a mutation begins, expected 0`);
      }
      throw this.#corrupt(
        J_STATE,
        `state ${i32[at + J_STATE]} as a mutation begins, expected ${IDLE} (idle)`,
      );
    }
  }

  /** The error for journal word `word` (relative to the journal) found holding `what`. */
  #corrupt(word: number, what: string): RangeError {
    return new RangeError(`corrupt journal at word ${this.at + word}: ${what}`);
  }

  #badCapacity(capacity: number): string {
    return `capacity ${capacity}, made with ${this.capacity}`;
  }

  /**
   * The error for count `n`, read as a mutation appends: JournalFullError when the journal is
   * full, RangeError when `n` lies outside 0..capacity.
   */
  #full(n: number): RangeError {
    if (n === this.capacity) return new JournalFullError();
    return this.#corrupt(J_COUNT, `count ${n}, capacity ${this.capacity}`);
  }

  /** Writes `value` to word `index`, remembering the old value. */
  set(index: number, value: number): void {
    const i32 = this.#src.i32;
    const at = this.at;
    const n = i32[at + J_COUNT];
    // Unsigned: a negative count (corrupt) fails the same compare.
    if (n >>> 0 >= this.capacity) throw this.#full(n);
    const e = at + J_ENTRIES + 2 * n;
    i32[e] = index << 2; // K_WORD
    i32[e + 1] = i32[index];
    i32[at + J_COUNT] = n + 1;
    i32[index] = value;
  }

  /**
   * A whole mutation of two adjacent words, `index` and `index + 1`, from an idle journal:
   * {@linkcode begin}, two {@linkcode set}s and {@linkcode commit} in one call (a GoMap
   * overwrite of an inline value, its hot path). Both entries and the count go in before either
   * word changes; a death before the count returns to 0 is rolled back like any mutation. It
   * sets ACTIVE as begin does, so that an idle journal never has entries (see #checked).
   * `i32` is the journal's view as it stands (its source's `i32`), which the caller holds
   * already: this hot path reads it from no object.
   */
  setPair(i32: Int32Array, index: number, lo: number, hi: number): void {
    const at = this.at;
    this.#checkIdle(i32);
    if (this.capacity < 2) throw new JournalFullError();
    i32[at + J_STATE] = ACTIVE;
    const e = at + J_ENTRIES;
    i32[e] = index << 2; // K_WORD
    i32[e + 1] = i32[index];
    i32[e + 2] = (index + 1) << 2; // K_WORD
    i32[e + 3] = i32[index + 1];
    i32[at + J_COUNT] = 2;
    i32[index] = lo;
    i32[index + 1] = hi;
    i32[at + J_COUNT] = 0;
    i32[at + J_STATE] = IDLE;
  }

  /** Writes byte `offset` of the arena, remembering the word that holds it. */
  setByte(u8: Uint8Array, offset: number, value: number): void {
    this.set(offset >> 2, this.#src.i32[offset >> 2]);
    u8[offset] = value;
  }

  /** Remembers that words [start, end) were zero: a rollback zeroes them again. */
  zeroed(start: number, end: number): void {
    this.#append((start << 2) | K_ZERO, end);
  }

  /**
   * Allocates a block with `pop` (a pop from the thread's cache) and appends its FREE entry.
   * The room is checked first, so a full journal throws with nothing popped. After `pop`
   * returns come only plain writes, with no call between the pop and the count (a call is
   * where a stack overflow throws: thrown there, the block would be out of the cache and named
   * by no entry, leaked by a live thread). A death between the pop and the count leaves that
   * block stray, for the sweep (tx.ts LockedTx.alloc).
   */
  allocatedFrom(pop: (size: number) => number, size: number): number {
    const at = this.at;
    const n = this.#src.i32[at + J_COUNT];
    if (n >>> 0 >= this.capacity) throw this.#full(n);
    const offset = pop(size);
    const i32 = this.#src.i32; // again: the pop may have grown this thread's views
    const e = at + J_ENTRIES + 2 * n;
    i32[e] = ((offset >> 2) << 2) | K_FREE;
    i32[e + 1] = size;
    i32[at + J_COUNT] = n + 1;
    return offset;
  }

  /** Frees a block when the mutation commits, not before. */
  deferFree(offset: number, size: number): void {
    this.#append(((offset >> 2) << 2) | K_DEFER, size);
    this.#defers = true;
  }

  #append(first: number, second: number): void {
    const i32 = this.#src.i32;
    const at = this.at;
    const n = i32[at + J_COUNT];
    if (n >>> 0 >= this.capacity) throw this.#full(n);
    const e = at + J_ENTRIES + 2 * n;
    i32[e] = first;
    i32[e + 1] = second;
    i32[at + J_COUNT] = n + 1;
  }

  /**
   * Notes that word `index` is to hold `value` from the commit on: it is stored (sequentially
   * consistent) once the commit can no longer be rolled back. For words lock-free readers load.
   */
  publishAtCommit(index: number, value: number): void {
    const i32 = this.#src.i32;
    i32[this.at + J_PUBLISH_VALUE] = value;
    i32[this.at + J_PUBLISH] = index;
  }

  /**
   * Commits: publishes the noted word, performs the deferred frees through `free` (which
   * truncates the journal as it goes), then empties the journal.
   */
  commit(free?: JournalFree): void {
    const i32 = this.#src.i32;
    const at = this.at;
    if (this.#defers || i32[at + J_PUBLISH] !== 0) {
      i32[at + J_STATE] = COMMITTING;
      this.#forward(free);
    }
    this.#finish();
  }

  #finish(): void {
    const i32 = this.#src.i32;
    const at = this.at;
    this.#defers = false;
    i32[at + J_COUNT] = 0;
    i32[at + J_PUBLISH] = 0;
    i32[at + J_STATE] = IDLE;
  }

  /**
   * Puts the structure back as it was before the interrupted mutation (or, if it was
   * committing, finishes the commit). Idempotent: a rollback cut short by another death is
   * finished by the next one. The intent words are left for the owner to act on. Throws
   * RangeError, having written nothing, when the journal is corrupt (see #checked).
   */
  recover(free?: JournalFree): void {
    const at = this.at;
    if (this.#src.i32[at + J_STATE] === COMMITTING) this.#forward(free);
    else this.rollbackTo(0, free);
    this.#finish();
  }

  /** A savepoint: the mutation can be rolled back to here with {@linkcode rollbackTo}. */
  get mark(): number {
    return this.#src.i32[this.at + J_COUNT];
  }

  /**
   * Undoes the entries after savepoint `mark`, newest first, and drops them. Throws RangeError,
   * having written nothing, when the journal is corrupt (see #checked).
   */
  rollbackTo(mark: number, free?: JournalFree): void {
    const at = this.at;
    const count = this.#checked(this.#src.i32, mark, free);
    for (let n = count; n > mark; n--) {
      const i32 = this.#src.i32;
      const e = at + J_ENTRIES + 2 * (n - 1);
      const first = i32[e];
      const second = i32[e + 1];
      switch (first & 3) {
        case K_WORD:
          i32[first >>> 2] = second;
          break;
        case K_ZERO:
          i32.fill(0, first >>> 2, second);
          break;
        case K_FREE:
          free!((first >>> 2) << 2, second, at + J_COUNT, n - 1);
          continue; // free() truncated the journal
      }
      this.#src.i32[at + J_COUNT] = n - 1;
    }
  }

  /**
   * Checks everything a rollback to `mark` or a roll-forward will read before it writes
   * anything, and returns the count. The header: the capacity word is the one the journal was
   * made with, the state is one of the three, the count lies in mark..capacity, and an idle
   * journal has none (every mutation sets ACTIVE before its first entry, and its end stores
   * count 0 before IDLE). The word to publish, if any, and each entry above `mark`: a WORD or
   * ZERO entry's words lie inside the view and outside this journal's bookkeeping (only its
   * intent and argument words are written through it), and a FREE or DEFER entry, which only a
   * journal with a `free` holds, names a 16-aligned block of positive size inside the view.
   *
   * What this cannot tell: a count corrupted to another value inside the bounds makes stale
   * entries look live. Stale entries were written by the same code, so they are well-formed,
   * and their writes stay inside the arena.
   */
  #checked(i32: Int32Array, mark: number, free: JournalFree | undefined): number {
    const at = this.at;
    const capacity = i32[at + J_CAPACITY];
    if (capacity !== this.capacity) throw this.#corrupt(J_CAPACITY, this.#badCapacity(capacity));
    const state = i32[at + J_STATE];
    if (state !== IDLE && state !== ACTIVE && state !== COMMITTING) {
      throw this.#corrupt(J_STATE, `state ${state}`);
    }
    const n = i32[at + J_COUNT];
    if (!(n >= mark && n <= capacity) || (state === IDLE && n !== 0)) {
      const expected = state === IDLE ? "0 while idle" : `${mark} to ${capacity}`;
      throw this.#corrupt(J_COUNT, `count ${n}, expected ${expected}`);
    }
    const publish = i32[at + J_PUBLISH];
    if (publish !== 0 && !this.#writable(i32, publish, publish + 1)) {
      throw this.#corrupt(J_PUBLISH, `word to publish ${publish}`);
    }
    for (let k = mark; k < n; k++) {
      const e = at + J_ENTRIES + 2 * k;
      const first = i32[e];
      const second = i32[e + 1];
      const start = first >>> 2;
      let ok: boolean;
      switch (first & 3) {
        case K_WORD:
          ok = this.#writable(i32, start, start + 1);
          break;
        case K_ZERO:
          ok = start <= second && this.#writable(i32, start, second);
          break;
        default: // K_FREE, K_DEFER: byte offset start * 4, second bytes
          ok = free !== undefined && (start & 3) === 0 && start > 0 && second > 0 &&
            start + (second >> 2) <= i32.length;
      }
      if (!ok) throw this.#corrupt(J_ENTRIES + 2 * k, `entry ${k} is (${first}, ${second})`);
    }
    return n;
  }

  /**
   * Whether a rollback may write words [start, end): inside the view, and not this journal's
   * count, capacity, state, publish words or entries, which a write would turn into
   * unchecked entries; its intent and argument words are written through it.
   */
  #writable(i32: Int32Array, start: number, end: number): boolean {
    const at = this.at;
    if (!(start >= 0 && end <= i32.length)) return false;
    if (end <= at || start >= at + journalWords(this.capacity)) return true;
    return start >= at + J_INTENT && end <= at + J_ARGS + 4;
  }

  /**
   * Appends a FREE entry for a block just allocated, writing the entry and the count through
   * `outer` (the allocator's journal), so that the allocation and its record are one step.
   */
  allocatedVia(offset: number, size: number, outer: Journal): void {
    const i32 = this.#src.i32;
    const at = this.at;
    const n = i32[at + J_COUNT];
    if (n >>> 0 >= this.capacity) throw this.#full(n);
    const e = at + J_ENTRIES + 2 * n;
    outer.set(e, ((offset >> 2) << 2) | K_FREE);
    outer.set(e + 1, size);
    outer.set(at + J_COUNT, n + 1);
  }

  /**
   * Publishes the noted word, then performs the DEFER entries, newest first. The other entries
   * need nothing done and are passed over without a write: each free truncates the journal to
   * below its own entry (dropping those above it too), and the caller empties it after. A death
   * part-way leaves COMMITTING and a count below which lie exactly the frees not yet done.
   */
  #forward(free: JournalFree | undefined): void {
    const at = this.at;
    let i32 = this.#src.i32;
    const count = this.#checked(i32, 0, free);
    if (i32[at + J_PUBLISH] !== 0) {
      Atomics.store(i32, i32[at + J_PUBLISH], i32[at + J_PUBLISH_VALUE]);
    }
    for (let n = count; n > 0; n--) {
      const e = at + J_ENTRIES + 2 * (n - 1);
      if ((i32[e] & 3) !== K_DEFER) continue;
      free!((i32[e] >>> 2) << 2, i32[e + 1], at + J_COUNT, n - 1);
      i32 = this.#src.i32; // the free may have grown the buffer
    }
  }

  /**
   * Whether a commit has begun (state COMMITTING): the mutation has taken effect, and a
   * recovery rolls it forward.
   */
  get committing(): boolean {
    return this.#src.i32[this.at + J_STATE] === COMMITTING;
  }

  /** Whether a mutation is under way and not committing: a recovery rolls it back. */
  get active(): boolean {
    return this.#src.i32[this.at + J_STATE] === ACTIVE;
  }

  /** The intent under way (0: none). */
  get intent(): number {
    return this.#src.i32[this.at + J_INTENT];
  }

  /** Argument word `k` (0..3) of the intent. */
  arg(k: number): number {
    return this.#src.i32[this.at + J_ARGS + k];
  }

  /**
   * Sets the intent and its arguments with plain writes (the intent is the owner's to read). A
   * step that must commit with its intent writes them through its transaction instead
   * ({@linkcode intentWord}, {@linkcode argWord}).
   */
  setIntent(intent: number, a = 0, b = 0, c = 0, d = 0): void {
    const i32 = this.#src.i32;
    const w = this.at + J_ARGS;
    i32[w] = a;
    i32[w + 1] = b;
    i32[w + 2] = c;
    i32[w + 3] = d;
    i32[this.at + J_INTENT] = intent;
  }

  /** Word index of the intent, for a journaled write. */
  get intentWord(): number {
    return this.at + J_INTENT;
  }

  /** Word index of intent argument `k`, for journaled progress updates. */
  argWord(k: number): number {
    return this.at + J_ARGS + k;
  }

  /** Entries in use (for tests and verify). */
  get length(): number {
    return this.#src.i32[this.at + J_COUNT];
  }

  /** Entries still free: a mutation made of steps of known size stops while they fit. */
  get room(): number {
    return this.capacity - this.#src.i32[this.at + J_COUNT];
  }
}
