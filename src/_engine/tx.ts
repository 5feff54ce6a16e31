/**
 * Internal. Transactions: how a locked mutation writes shared memory (journal.ts) and gets and
 * gives back blocks, whichever structure it mutates.
 *
 * A {@linkcode Tx} is what the bucket table (table.ts) writes through. Two kinds exist:
 *
 * - {@linkcode WriterTx}, for a GoMap: its single writer owns the arena's allocator too, so the
 *   allocator writes into the writer's journal, and a rollback restores the allocator along
 *   with the table. Frees wait in a list until the mutation is about to commit, so that a block
 *   freed by the mutation is not handed out again by the same mutation (a rollback would make
 *   the freed block live again while the new owner's writes to it were not journaled).
 * - {@linkcode LockedTx}, for a SyncMap's locked steps: the allocator has its own lock and
 *   journal, so allocations are recorded as FREE entries (given back by a rollback) and frees as
 *   DEFER entries (done at commit). A small block comes from the stepping thread's own cache,
 *   its FREE entry appended just after; a larger one from the heap, its FREE entry appended in
 *   the same allocator step as the allocation (see {@linkcode LockedTx.alloc}).
 *
 * @module
 */

import * as alloc_layout from "./alloc_layout.ts";
import type { Arena } from "./arena.ts";
import {
  allocate,
  allocateAtLeast,
  grantedBytes,
  lockedRelease,
  release,
  underLock,
} from "./allocator.ts";
import { MapFullError } from "../errors.ts";
import type { Journal } from "./journal.ts";
import * as journal_module from "./journal.ts";
import {
  freeListed,
  listUnlisted,
  newUnlistedList,
  unlistedHasRoom,
  unlistedListBytes,
} from "./unlisted_list.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { SMALL_MAX } = alloc_layout;
const { J_HAND } = journal_module;

/** A point a transaction can be rolled back to. */
export interface Savepoint {
  readonly mark: number;
  readonly frees: number;
}

/** How a mutation writes, allocates and frees. */
export interface Tx {
  /** The journal the writes go through. */
  readonly journal: Journal;
  /** Writes word `index`, journaled. */
  set(index: number, value: number): void;
  /** Writes byte `offset`, journaled. */
  setByte(offset: number, value: number): void;
  /** Records that words [start, end) were zero before the mutation wrote them. */
  zeroed(start: number, end: number): void;
  /** Allocates a block of `size` bytes (zeroed when `zero`), given back by a rollback. */
  alloc(size: number, zero: boolean): number;
  /**
   * {@linkcode alloc} of at least `size` bytes: when memory has run out, perhaps a block of a
   * larger class. Returns the offset; the block's size is then `grantedBytes` (allocator.ts),
   * and the block must be freed with that size.
   */
  allocAtLeast(size: number, zero: boolean): number;
  /**
   * {@linkcode allocAtLeast}, zeroed, with nothing recorded for a rollback to give back (a
   * SyncMap step's only): for the overflow buckets of a table the step builds whole, which would
   * otherwise take a journal entry each. A rollback of the step must free them: LockedTx lists
   * them in shared memory (unlisted_list.ts), for its rollback alive (SyncCore.locked) or after
   * a death; past the list's room, in memory of its own, and those are stray after a death, for
   * the sweep.
   */
  allocUnlisted?(size: number): number;
  /** Frees a block when the mutation commits. */
  free(offset: number, size: number): void;
  /** A savepoint for {@linkcode rollbackTo}. */
  savepoint(): Savepoint;
  /** Undoes everything done since `point`. */
  rollbackTo(point: Savepoint): void;
  /**
   * Whether the journal surely has `spare` entries left once the commit has performed the frees
   * deferred so far: what a step that is only progress (growWork's second evacuation) checks
   * before it lets the mutation go on with its frees.
   */
  hasRoom(spare: number): boolean;
}

/**
 * Journal entries a GoMap writer's deferred free is counted for by `hasRoom`: a small block's
 * free writes about four (its link, the span's free list and count, the bytes in use), more
 * when its span is linked or unlinked or a large chunk merges with its neighbours (measured: at
 * most 4.6 each over 112 frees of an evacuated chain, up to 30 for one).
 */
const FREE_ENTRIES = 6;

/**
 * The writes both kinds of transaction make alike: through the journal, into the arena. The
 * kinds differ in how they allocate and free.
 */
class JournaledWrites {
  readonly arena: Arena;
  readonly journal: Journal;

  constructor(arena: Arena, journal: Journal) {
    this.arena = arena;
    this.journal = journal;
  }

  set(index: number, value: number): void {
    this.journal.set(index, value);
  }

  setByte(offset: number, value: number): void {
    this.journal.setByte(this.arena.u8, offset, value);
  }

  zeroed(start: number, end: number): void {
    this.journal.zeroed(start, end);
  }
}

/** A GoMap writer's transaction: one journal for the table and the allocator. */
export class WriterTx extends JournaledWrites implements Tx {
  /** The waiting frees, (offset, size) pairs, in `#frees[0, #nfrees)`. */
  #frees: number[] = [];
  /**
   * Words of `#frees` in use. A count rather than the array's length: setting an array's
   * length is a call into the runtime in V8, and every write begins and commits.
   */
  #nfrees = 0;

  alloc(size: number, zero: boolean): number {
    return allocate(this.arena, size, zero, this.journal);
  }

  allocAtLeast(size: number, zero: boolean): number {
    return allocateAtLeast(this.arena, size, zero, this.journal);
  }

  free(offset: number, size: number): void {
    const n = this.#nfrees;
    this.#frees[n] = offset;
    this.#frees[n + 1] = size;
    this.#nfrees = n + 2;
  }

  savepoint(): Savepoint {
    return { mark: this.journal.mark, frees: this.#nfrees };
  }

  hasRoom(spare: number): boolean {
    const j = this.journal;
    return j.capacity - j.mark - (this.#nfrees >> 1) * FREE_ENTRIES >= spare;
  }

  rollbackTo(point: Savepoint): void {
    this.journal.rollbackTo(point.mark);
    this.#nfrees = point.frees;
  }

  /** Begins a mutation. */
  begin(): void {
    this.#nfrees = 0;
    this.journal.begin();
  }

  /** Performs the waiting frees (journaled), then commits. */
  commit(): void {
    const frees = this.#frees;
    for (let i = 0; i < this.#nfrees; i += 2) {
      release(this.arena, frees[i], frees[i + 1], this.journal);
    }
    this.#nfrees = 0;
    this.journal.commit();
  }

  /** Undoes the whole mutation. */
  abort(): void {
    this.#nfrees = 0;
    this.journal.recover();
  }
}

/**
 * A SyncMap locked step's transaction: its own journal; small blocks from the thread's cache,
 * larger ones from the allocator under its own lock.
 */
export class LockedTx extends JournaledWrites implements Tx {
  /** Allocates a small block from the stepping thread's cache (its participant's), or null. */
  readonly #cached: ((size: number) => number) | null;
  /** The root word naming the step's unlisted list (unlisted_list.ts), or 0: none kept. */
  readonly #listWord: number;

  constructor(
    arena: Arena,
    journal: Journal,
    cached: ((size: number) => number) | null = null,
    listWord = 0,
  ) {
    super(arena, journal);
    this.#cached = cached;
    this.#listWord = listWord;
  }

  /**
   * Pairs the step's unlisted list is made with, at its first {@linkcode allocUnlisted}: set by
   * a step about to allocate unlisted blocks (a dirty-table build of a large table), 0 otherwise
   * (none is made).
   */
  unlistedRoom = 0;

  /**
   * Allocates a block for the step, recorded as a FREE entry that a rollback gives back to
   * the heap. A small block (the entry of a new key, its blob, a table's header and first
   * buckets) is popped from this thread's cache and its entry appended after, with no call
   * between (Journal.allocatedFrom): no allocator lock. A death between the pop and the
   * entry's count leaves the block stray, reachable from nowhere: the step is rolled back by
   * the mutex's next holder, and the sweep that follows a participant's death online
   * (_sync_recovery.ts) frees what nothing reaches: so the journal names no record of its
   * caller's meanwhile (J_HAND), and a recovery then sweeps. A larger block comes from the heap
   * in one allocator step that also appends its entry.
   */
  alloc(size: number, zero: boolean): number {
    const cached = this.#cached;
    if (cached !== null && size > 0 && size <= SMALL_MAX) {
      const j = this.journal;
      const hand = this.arena.i32[j.at + J_HAND];
      if (hand === 0) return this.#allocCached(cached, size, zero);
      this.arena.i32[j.at + J_HAND] = 0;
      try {
        return this.#allocCached(cached, size, zero);
      } finally {
        // Also when the pop throws, which it does with nothing popped (a refill's allocator step
        // refused, or stopped at its census check): only a death leaves the word 0.
        this.arena.i32[j.at + J_HAND] = hand;
      }
    }
    return underLock(this.arena, (j) => {
      const offset = allocate(this.arena, size, zero, j);
      this.journal.allocatedVia(offset, size, j);
      return offset;
    });
  }

  allocAtLeast(size: number, zero: boolean): number {
    return underLock(this.arena, (j) => {
      const offset = allocateAtLeast(this.arena, size, zero, j);
      this.journal.allocatedVia(offset, grantedBytes, j);
      return offset;
    });
  }

  /** {@linkcode alloc} of a small block popped from this thread's cache by `cached`. */
  #allocCached(cached: (size: number) => number, size: number, zero: boolean): number {
    const offset = this.journal.allocatedFrom(cached, size);
    // The views read again: the pop may have grown them.
    if (zero) this.arena.i32.fill(0, offset >> 2, (offset + size + 3) >> 2);
    return offset;
  }

  free(offset: number, size: number): void {
    this.journal.deferFree(offset, size);
  }

  /**
   * This step's unlisted blocks ({@linkcode allocUnlisted}), as (offset, size) pairs, for
   * {@linkcode freeUnlisted}. SyncCore.locked empties it as each step begins.
   */
  readonly unlisted: number[] = [];
  /**
   * Whether an {@linkcode allocUnlisted} is between its allocator step and its pair in
   * {@linkcode unlisted}: a stack overflow there leaves its block unrecorded.
   */
  unlistedOpen = false;

  /**
   * A heap block of at least `size` bytes, zeroed, in one allocator step, with no FREE entry
   * (Tx.allocUnlisted). Recorded in the step's unlisted list, in the same allocator step
   * (unlisted_list.ts; the list made there at the first), which a rollback of the step, alive
   * or after a death, frees. Past the list's room (or with none), recorded in
   * {@linkcode unlisted} instead: a rollback alive frees it ({@linkcode freeUnlisted}); after a
   * death it is stray, reachable from nowhere once the step is rolled back, and the sweep that
   * follows a participant's death frees it, as it frees a cached block popped before its entry
   * ({@linkcode alloc}).
   */
  allocUnlisted(size: number): number {
    const a = this.arena;
    const word = this.#listWord;
    let list = word === 0 ? 0 : a.i32[word];
    if (list === 0 && word !== 0 && this.unlistedRoom > 0) {
      // In a step of its own (a death after it leaves an empty list, which a rollback frees). A
      // map too full for it goes on without: the list must not be what fails the step.
      try {
        list = underLock(a, (j) => newUnlistedList(a, word, this.unlistedRoom, j));
      } catch (error) {
        if (!(error instanceof MapFullError)) throw error;
      }
      this.unlistedRoom = 0;
    }
    const listed = list !== 0 && unlistedHasRoom(a, list);
    // Stray after a death: the journal names no record of its caller's from here on (J_HAND),
    // so that a recovery sweeps. Before the block is taken.
    if (!listed) a.i32[this.journal.at + J_HAND] = 0;
    this.unlistedOpen = !listed;
    let offset: number;
    try {
      offset = underLock(a, (j) => {
        const block = allocateAtLeast(a, size, true, j);
        if (listed) listUnlisted(a, list, block, grantedBytes, j);
        return block;
      });
    } catch (error) {
      // Not allocated: an allocator step that throws took no effect, or is rolled back by the
      // allocator's next holder.
      this.unlistedOpen = false;
      throw error;
    }
    if (!listed) this.unlisted.push(offset, grantedBytes);
    this.unlistedOpen = false;
    return offset;
  }

  /**
   * Before the step's commit: its unlisted blocks are its tables' from the commit on, and the
   * list goes, through the journal (the root word cleared, the block freed at the commit), so
   * that a rollback still finds it.
   */
  dropUnlistedList(): void {
    const word = this.#listWord;
    const list = word === 0 ? 0 : this.arena.i32[word];
    if (list === 0) return;
    this.set(word, 0);
    this.free(list, unlistedListBytes(this.arena, list));
  }

  /**
   * Frees this step's unlisted blocks kept past its list, each in its own allocator step, once
   * the step is rolled back (they are reachable from nowhere then; the listed ones went with
   * {@linkcode recover}). Returns false when one may be unrecorded ({@linkcode unlistedOpen}):
   * only a sweep finds it. A free cut short leaves the rest stray too; the caller then leaves
   * the mutex poisoned, and its next holder has them swept.
   */
  freeUnlisted(): boolean {
    const list = this.unlisted;
    while (list.length > 0) {
      const size = list.pop()!;
      lockedRelease(this.arena, list.pop()!, size);
    }
    return !this.unlistedOpen;
  }

  savepoint(): Savepoint {
    return { mark: this.journal.mark, frees: 0 };
  }

  /** A deferred free is its DEFER entry, already counted; the commit frees it elsewhere. */
  hasRoom(spare: number): boolean {
    return this.journal.capacity - this.journal.mark >= spare;
  }

  rollbackTo(point: Savepoint): void {
    this.journal.rollbackTo(point.mark, this.#release);
  }

  /** Frees a block and truncates the journal in one allocator step (journal.ts). */
  readonly #release = (offset: number, size: number, countWord: number, count: number): void => {
    lockedRelease(this.arena, offset, size, [countWord, count]);
  };

  /**
   * Recovers the journal of a holder that died: rolls its step back (or forward, if it was
   * committing).
   *
   * Invariant: this journal is read only once the allocator has no step cut short. Its FREE
   * entries of heap blocks are appended, and its count truncated as each entry's block is
   * freed, inside allocator steps (allocatedVia, {@linkcode lockedRelease}'s `truncate`); those
   * of cached blocks are appended by the step itself once the pop (and any refill's allocator
   * step) is done (see {@linkcode alloc}). A holder that died inside such a step left the
   * allocator's lock poisoned, and the step's writes to this journal in place until the
   * allocator's next holder rolls them back. Read before that, the
   * journal names a block the rollback will give back to the allocator (freeing it again is a
   * double free: the block is later handed out twice) or a count the rollback will raise again
   * (an entry never acted on). Taking the allocator's lock first rolls such a step back.
   */
  recover(): void {
    underLock(this.arena, () => {});
    this.journal.recover(this.#release);
    // After the rollback, which may write into them and restores the list's word if the step
    // had dropped it: a step rolled forward dropped it for good.
    if (this.#listWord !== 0) freeListed(this.arena, this.#listWord);
  }

  /** The free function recovery and commit use. */
  get releaser(): (offset: number, size: number, countWord: number, count: number) => void {
    return this.#release;
  }
}
