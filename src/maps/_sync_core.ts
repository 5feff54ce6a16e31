/**
 * Internal. The shared-memory half of a SyncMap: its tables and entries, value records, the
 * steps Go's sync.Map takes under its mutex, and what runs when that mutex is found poisoned.
 * The public class (sync_map.ts) encodes and decodes, runs the lock-free fast paths, and calls
 * in here for the rest.
 *
 * Every step under the mutex is a transaction (tx.ts) on the mutex's journal: the words it
 * changes in the dirty table, the root and retire lists are journaled, the blocks it allocates
 * are recorded for a rollback to free, and the blocks it frees are freed at commit. Two steps
 * are too big for a journal and run after their transaction commits, as intents a recoverer
 * finishes: marking the entries a promoted-away read table owns, and expunging every entry on
 * `clear`. The entries' `p` words are never journaled: lock-free stores change them too. What
 * a rollback leaves inconsistent about them is repaired from the state itself (see
 * {@linkcode SyncCore.recoverMutex}). docs/design.md walks through each step and what a death
 * at each point leaves.
 *
 * @module
 */

import { bytesUsed } from "../_engine/allocator.ts";
import type { Arena } from "../_engine/arena.ts";
import { checkAlive, liveOwnerId, liveOwnerIdAtEntry, ownerId } from "../_engine/census.ts";
import { clearPoison, lockWord } from "../_engine/futex.ts";
import * as futex from "../_engine/futex.ts";
import { Journal } from "../_engine/journal.ts";
import * as journal_module from "../_engine/journal.ts";
import type { Participant } from "../_engine/reclaim.ts";
import { type Registry, seatsCachedBytes, seatsKeys } from "../_engine/registry.ts";
import * as registry_module from "../_engine/registry.ts";
import {
  blobSize,
  hashStored,
  isBlob,
  isNumberSlot,
  numberOf,
  type Probe,
} from "../_engine/slots.ts";
import * as slots_module from "../_engine/slots.ts";
import { Table } from "../_engine/table.ts";
import { bucketBytesForHint, keysWithoutGrowth } from "../_engine/table_layout.ts";
import { gatherChainSlots, keySlotsFor } from "../_engine/table_iter.ts";
import { LockedTx } from "../_engine/tx.ts";
import { TerminatedError } from "../errors.ts";
import { noteImmediate, noteRecord, noteRemoval } from "./_compute_watch.ts";
import { handBack } from "./_sync_hand_log.ts";
import { immediateOf, immediateWords, registryOf } from "./_sync_layout.ts";
import * as sync_layout from "./_sync_layout.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { ACQUIRED, CONTENDED, OWNER_SHIFT, POISONED } = futex;
const { J_ARGS, J_HAND, J_HAND_CLEAN, J_HAND_SEAT, J_INTENT } = journal_module;
const { KEYS, SEAT_WORDS } = registry_module;
const { MODE_INLINE, MODE_STRING } = slots_module;
const {
  AMENDED,
  E_KEY_HI,
  E_KEY_LO,
  E_OWNER,
  E_P,
  ENTRY_BYTES,
  EXPUNGED,
  K_ENTRY,
  K_RECORD,
  K_TABLE,
  NIL,
  R_COUNT,
  R_DIRTY,
  R_JOURNAL,
  R_MISSES,
  R_MU,
  R_READ,
  R_SERIAL,
  R_SWEEP_DUE,
  R_UNLISTED,
  REC_HI,
  REC_LO,
  RECORD_HEADER,
  S_ENTRY,
  S_OWNS,
  SYNC_JOURNAL_ENTRIES,
  T_SERIAL,
  TABLE_HEADER_BYTES,
} = sync_layout;

/** Journal intent: marking what an old read table owns; argument 0 is its header. */
const INTENT_MARK = 1;
/** Journal intent: clearing; arguments 0 and 1 are the old read and dirty table headers. */
const INTENT_CLEAR = 2;

function noop(): void {}

/**
 * A new dirty table made from a read table with at least this many deleted keys, half of it or
 * more, is promoted at once (see addLocked); so is one that copied no key at all.
 */
const MOSTLY_DELETED_MIN = 64;

/**
 * The fewest misses that promote a dirty table that holds keys, in a map with room (see
 * {@linkcode promotes}). Go's missLocked promotes once the misses reach the dirty table's count,
 * however small. A key added and deleted in turn beside a few others (Go's SwapMostlyMisses: a
 * map of requests in flight) had each delete's miss promote the dirty table it emptied, and the
 * next add build one again: a table made and one retired a round. Here each costs the allocator,
 * a journal and a retirement, where Go's costs a map allocation; with this floor a table is made
 * every eighth round, and a round takes 0.44x to 0.51x the time on Deno, 0.49x on Bun
 * (bench/compare_versions.ts, "SwapMostlyMisses"; 16 gave no more, 4 gave 0.54x). A small dirty
 * table's keys then take the mutex for eight loads rather than one or two. Go's algorithm allows
 * a promotion at any miss past the count, so a later one keeps its semantics.
 */
const PROMOTE_MISSES_MIN = 8;

/**
 * Whether `misses` misses promote a dirty table of `keys` keys in arena `a` (missLocked, and the
 * read step's test). Go's rule (misses reach the count) with {@linkcode PROMOTE_MISSES_MIN} as a
 * floor, but only while the map uses at most a quarter of its maxBytes: a dirty table kept past
 * its count keeps the read table it would replace, and its retired blocks, alive longer, and a
 * 64 KiB map holding 50 keys (about 30 KB) met MapFullError with the floor where it fitted
 * without (tests/limits_test.ts, "what cannot fit in maxBytes": 54 of 300 hash seeds). An empty
 * dirty table is promoted at the first miss: it holds nothing for a later add to reuse, and its
 * promotion lets the next new key's table, which copies nothing, be promoted at once
 * (addLocked). The floor's test reads H_BYTES_USED (one atomic load) only for a miss that Go's
 * rule alone would promote.
 */
function promotes(a: Arena, misses: number, keys: number): boolean {
  return misses >= keys &&
    (misses >= PROMOTE_MISSES_MIN || keys === 0 || bytesUsed(a) > a.maxBytes / 4);
}

/**
 * Keys from which a dirty-table build lists its overflow buckets (tx.ts LockedTx.unlistedRoom),
 * so that its death needs no sweep: below, the sweep is short (0.1 to 0.25 µs a key).
 */
const UNLISTED_MIN_KEYS = 1024;

/**
 * A retired table that owns at least this many keys' blocks (their entries and key blobs, and
 * the values a clear took out) is a bulk free. The step that retires it has its participant
 * collect at its next call (Participant.collectSoon), and the free has the participant give
 * its cache and the spare spans back (reclaim.ts Free). Otherwise the freed blocks would sit in
 * the cache, counted in use by their spans, and be handed out scattered over all the spans
 * they came from, while the calls made before the free place their own blocks in the room left
 * around them: no span empties, and a table growing again finds no large or aligned chunk for
 * its buckets. A map cleared when full, or emptied by deletes, would then hold far fewer keys
 * than before (README: "A full map recovers"). Below this, the blocks freed are about what a
 * cache absorbs from ordinary churn, and both would cost a map cleared at every call (Go's
 * Clear benchmark) a collect, a flush and refills at each clear.
 */
const BULK_KEYS = 64;

/** SyncCore's list of entries a step expunged, when it expunged none. */
const NONE_EXPUNGED: readonly number[] = Object.freeze([]);

/** The shared-memory state of one SyncMap object, and the steps taken under its mutex. */
export class SyncCore {
  readonly arena: Arena;
  readonly participant: Participant;
  readonly registry: Registry;
  /** This participant's seat's KEYS word (registry.ts), which {@linkcode count} moves. */
  readonly #keys: Int32Array;
  readonly tx: LockedTx;
  /** Whether values that fit are stored as immediates (_sync_layout.ts): `auto`, `float64`, `int32`. */
  readonly immediates: boolean;
  /** A record this object allocated and has not published yet (for a parked participant). */
  inflight = 0;

  /** {@linkcode inflight} as a block, for INFLIGHT and a sweep's marking: 0 for an immediate. */
  get inflightBlock(): number {
    return (this.inflight & 1) === 0 ? this.inflight : 0;
  }
  /**
   * The record the current step stored into an existing entry, or 0. That store (an exchange
   * or compare-exchange of E_P) is not journaled: when the step's commit throws in a live
   * thread (a stack overflow) and the step is rolled back, the record stays published, and
   * the caller must not free it. So too the record of a key the step added (`addedRecord`),
   * once the step has taken effect: its commit done, even if what follows the commit throws.
   * Cleared as each step begins, and by the caller once read (a stale value could name a block
   * freed and allocated again since).
   */
  published = 0;
  /**
   * The record of the key this step added (set by the caller of addLocked), published and
   * counted by locked() as the step takes effect (see `published`): not by the caller after the
   * step returns, which something thrown after the commit (its intents, a stack overflow)
   * would skip.
   */
  addedRecord = 0;
  /**
   * Called after a step whose lock had to be recovered from a dead holder (reclamation), in
   * the middle of the operation that took the lock.
   */
  onDeadOwner: (() => void) | undefined;
  // Table views, remade when the tables are replaced.
  #read: Table | null = null;
  #dirty: Table | null = null;
  /** The read word this step will publish at its commit (see #setRead), or -1. */
  #pendingRead = -1;

  constructor(arena: Arena, participant: Participant, immediates: boolean) {
    this.arena = arena;
    this.participant = participant;
    this.immediates = immediates;
    this.registry = registryOf(arena);
    this.#keys = new Int32Array(
      arena.buffer,
      (this.registry.seats + participant.index * SEAT_WORDS + KEYS) * 4,
      1,
    );
    this.tx = new LockedTx(
      arena,
      new Journal(
        arena,
        arena.i32[R_JOURNAL] >> 2,
        SYNC_JOURNAL_ENTRIES,
      ),
      (size) => participant.allocate(size),
      R_UNLISTED,
    );
  }

  // ---- Tables and entries --------------------------------------------------------------------

  /** The read table view for the read word `word`, or null when it is empty. */
  readTable(word: number): Table | null {
    const h = word & ~AMENDED;
    if (h === 0) return null;
    const cached = this.#read;
    if (cached !== null && cached.h === h >> 2) return cached;
    // A new read table may lie past this worker's views, when another worker grew the buffer
    // and then made the table there: cover the whole buffer. Everything the table references
    // was allocated before it was published.
    const a = this.arena;
    if (h + TABLE_HEADER_BYTES > a.bytes) a.reach(a.buffer.byteLength);
    return (this.#read = new Table(a, h, false, noop, this.tx));
  }

  /** The dirty table view, or null when there is none. Under the lock. */
  dirtyTable(): Table | null {
    const h = this.arena.i32[R_DIRTY];
    if (h === 0) return null;
    const cached = this.#dirty;
    if (cached !== null && cached.h === h >> 2) return cached;
    return (this.#dirty = new Table(this.arena, h, false, noop, this.tx));
  }

  /** The entry of `probe` in `table`, or 0. */
  findIn(table: Table | null, probe: Probe): number {
    if (table === null) return 0;
    const k = table.find(probe);
    return k < 0 ? 0 : this.entryAt(k);
  }

  /**
   * The entry of key slot `k`, its 16 bytes covered by this worker's views: an entry may lie
   * past them even when the bucket pointing to it does not (another worker grew the buffer,
   * then allocated the entry there), and an out-of-view Atomics access throws.
   */
  entryAt(k: number): number {
    const a = this.arena;
    const e = a.i32[(k >> 2) + S_ENTRY];
    if (e + ENTRY_BYTES > a.bytes) a.reach(e + ENTRY_BYTES);
    return e;
  }

  // ---- The mutex ----------------------------------------------------------------------------

  /**
   * Runs `f` under the mutex as one transaction: commits it if `f` returns, rolls it back if
   * it throws, then finishes the intents the commit left (marking, clearing) and unlocks.
   * Returns `f`'s result once the step has taken effect (its commit begun), if a
   * TerminatedError came after that: a caller that saw the error would undo what the step
   * published (free its record in flight). What is left of the commit is then finished here if
   * this thread can, else by the mutex's next holder, the mutex released poisoned.
   *
   * `f` is called with `arg`: a step of a hot path is a function of the module's that takes its
   * arguments from `arg` (the caller's SyncAccess), not a closure, whose context V8 makes at
   * every call (about 77 bytes a store or delete, the garbage of a churn loop).
   */
  locked<T, A = undefined>(f: (arg: A) => T, arg?: A): T {
    // Taken before the lock: the release below must make no call (see the finally).
    const i32 = this.arena.i32;
    // A thread marked terminating stops before the mutex, as before an allocator step
    // (allocator.ts underLock): a step of a long call of a zombie's (a reap) is one.
    const me = liveOwnerIdAtEntry();
    this.published = 0;
    this.addedRecord = 0;
    this.#lock(i32, me);
    // Whether the step took effect: its commit done (or begun, in the catch).
    let done = false;
    // Whether the step is over: committed and its intents carried out, or rolled back. Until
    // then the mutex is released poisoned, whatever threw (a stack overflow can throw from any
    // call, the rollback's included), so that its next holder recovers the step as a dead
    // holder's (recoverMutex) instead of meeting a journal still begun.
    let settled = false;
    let result!: T;
    try {
      // This step's own (a step before may have been cut short with some recorded). Emptied
      // only when it holds some: a store to an array's length is a runtime call in V8's
      // optimized code, about 35 ns of this step's 95 on Deno, even on an empty array.
      if (this.tx.unlisted.length !== 0) this.tx.unlisted.length = 0;
      this.tx.unlistedOpen = false;
      result = f(arg as A);
      this.tx.dropUnlistedList();
      this.tx.journal.commit(this.tx.releaser);
      done = true;
      if (this.addedRecord !== 0) {
        // Inline, no call of ours (a stack overflow can strike at any call's entry): the
        // record is the entry's now, and the key is counted (see addedRecord).
        this.published = this.addedRecord;
        this.addedRecord = 0;
        this.#keys[0]++;
      }
      this.#afterCommit();
      settled = true;
      // Over, the key counted and the intents done: a holder that dies between here and the
      // release left nothing for a recovery to sweep (an acquisition cut short, too).
      i32[this.tx.journal.at + J_HAND] = J_HAND_CLEAN;
    } catch (error) {
      if (!done && !this.tx.journal.committing) {
        // The record handed to the step (Participant.stepHand) is the caller's again, and its
        // log says so before the rollback writes anything.
        this.participant.unstepHand();
        // Rolled back: the step never took effect. Through the transaction: an allocator step
        // cut short inside this one (released poisoned) is rolled back first, before this
        // journal's FREE entries are read.
        this.tx.recover();
        this.#unexpungeRolledBack();
        // Its unlisted blocks (a dirty-table copy's overflow buckets) only now: the rollback
        // may write to them (an overflow link of the step's own insert into the new table).
        // One that may be unrecorded, or a free that throws (in a thread marked terminating,
        // the first), leaves the mutex poisoned, for a sweep.
        const freed = this.tx.freeUnlisted();
        // Undone, nothing of the step stray: a census check that stops this thread from here on
        // (a Deno zombie, in resync or the repair's steps) leaves its recovery nothing to sweep.
        if (freed) i32[this.tx.journal.at + J_HAND] = J_HAND_CLEAN;
        this.participant.resync();
        if (this.#unexpunged) {
          // The step put an expunged entry back (NIL, not journaled), and its dirty-table
          // insert was undone: a lock-free store may fill the entry meanwhile, and a value
          // missing from the dirty table would be lost at the next promotion. Repaired as
          // after a death (a stack overflow, say, cut the step short past its unexpunge). A
          // repair that fails leaves the mutex poisoned, for the next holder to repair, and
          // the caller gets the step's own error (a MapFullError of the repair's would have
          // the caller run the step again).
          this.#read = null;
          this.#dirty = null;
          try {
            this.#repairInvariants();
          } catch {
            throw error;
          }
        }
        settled = freed;
        throw error;
      }
      // The step took effect: what threw came after its commit began (its deferred frees, or
      // its intents). A thread marked terminating meets a check at each free and in the
      // intents' walks (and a stack overflow may come again): the rest is left to the mutex's
      // next holder, which rolls the commit forward and finishes the intents.
      if (!done) {
        done = true;
        if (this.addedRecord !== 0) {
          // Inline, no call of ours (a stack overflow can strike at any call's entry): the
          // record is the entry's now, and the key is counted (see addedRecord).
          this.published = this.addedRecord;
          this.addedRecord = 0;
          this.#keys[0]++;
        }
        try {
          this.tx.recover();
          this.#afterCommit();
          settled = true;
          i32[this.tx.journal.at + J_HAND] = J_HAND_CLEAN; // over, as below the commit above
        } catch {
          // Left to the next holder.
        }
        this.participant.resync();
      }
      // The caller gets the result, as from a step that took effect, when the error is the
      // census check's: this thread stops at its next call. Any other error (corrupt memory, a
      // stack overflow) still reaches it, as it did before this thread was checked here.
      if (!(error instanceof TerminatedError)) throw error;
    } finally {
      this.#pendingRead = -1;
      this.#expunged = NONE_EXPUNGED;
      this.#unexpunged = false;
      // The release, written out with builtins alone: a stack overflow is checked for as a
      // function of ours is entered, and this release must not fail (the mutex would be held
      // for good by a thread that goes on). Unsettled, it leaves the mutex poisoned: the next
      // holder recovers the step as a dead holder's. The word is read plainly: while this
      // thread holds the mutex its owner bits are this thread's (waiters only add CONTENDED, and
      // a take-over from a thread found gone fails the compare-exchange, which returns the word
      // as it is).
      let w = i32[R_MU];
      while (w >>> OWNER_SHIFT === me) {
        const found = Atomics.compareExchange(i32, R_MU, w, settled ? w & POISONED : POISONED);
        if (found === w) {
          if ((w & CONTENDED) !== 0) Atomics.notify(i32, R_MU, 1);
          break;
        }
        w = found;
      }
    }
    // A recovery of the mutex found a dead holder: have what it left reclaimed, once unlocked
    // (the reclaim takes the mutex itself). The caller is in the middle of an operation here:
    // the hook must not sweep now (see _sync_access.ts).
    if (this.#deadOwnerFound) {
      this.#deadOwnerFound = false;
      this.onDeadOwner?.();
    }
    return result;
  }

  /** Set by {@linkcode recoverMutex}; acted on by {@linkcode locked} once unlocked. */
  #deadOwnerFound = false;

  /**
   * The entries this step's dirty-table build expunged, so far. Their `p` words are not
   * journaled, so a rollback of the step (the build, or what came after it in the step, failed)
   * leaves them expunged with no dirty table, where a store of their keys would find no table
   * to put them back in: {@linkcode locked} turns them back to NIL, as recoverMutex's
   * invariant repair does after a death (and does when this thread's rollback itself fails).
   */
  #expunged: readonly number[] = NONE_EXPUNGED;

  /** Whether this step made an expunged entry NIL again (unexpungeLocked); see locked(). */
  #unexpunged = false;

  #unexpungeRolledBack(): void {
    const i32 = this.arena.i32;
    for (const e of this.#expunged) Atomics.compareExchange(i32, e >> 2, EXPUNGED, NIL);
  }

  /**
   * Parks this participant while it sleeps in the mutex, so that a stop of the world (held by
   * the mutex's holder) can go on without it. Every path that takes the mutex holds no block
   * of its own then but `inflight`. The allocator's lock parks nothing: a thread sleeping in
   * it may be midway through a lock-free step (freeing a retired table, replacing its retire
   * list) with blocks in hand that a sweep would take for leaked.
   */
  readonly #onWait = (waiting: boolean): void => {
    if (waiting) this.participant.park(this.inflightBlock);
    else this.participant.unpark();
  };

  #lock(i32: Int32Array, me: number, journaled = true): void {
    const a = this.arena;
    // Whether this thread held the mutex already (lockWord then throws): not to be released.
    const already = i32[R_MU] >>> OWNER_SHIFT === me;
    let clean = false;
    // A recovery or a begin that throws (a corrupt journal is a RangeError, and a stack
    // overflow can throw from any call) leaves the mutex unlocked, poisoned: held, it would
    // stop every other thread's calls for good; the next holder recovers whatever was left.
    try {
      const status = lockWord(i32, R_MU, me, this.#onWait);
      // Under the lock, cover memory other workers allocated since this worker's views were
      // made: the locked paths follow offsets without checking each against the views.
      // (Records, which lock-free stores publish, are checked one by one as they are decoded.)
      a.reachTop();
      if (status !== ACQUIRED) this.recoverMutex();
      clean = true; // a begin that throws (a corrupt journal, a stack overflow) wrote nothing
      if (!journaled) return; // a read step (#readLocked): J_HAND stays J_HAND_CLEAN
      // No record handed to this step yet (Participant.stepHand): a recovery that finds none
      // sweeps after a death in it. Before the begin, so that no recovery of this step reads
      // the word an earlier step left (helper-143).
      a.i32[this.tx.journal.at + J_HAND] = 0;
      this.tx.journal.begin();
    } catch (error) {
      // Not waiting any more, whatever threw: unparked, written out. An unpark cut short by a
      // stack overflow as it was entered (lockWord's watcher) would leave this participant
      // parked while it runs on, and a stop of the world would go on without it (helper-108).
      if (i32[this.participant.parkedAt] !== 0) Atomics.store(i32, this.participant.parkedAt, 0);
      // Released, written out as in locked(), poisoned unless nothing was left half-done; also
      // after a lockWord that took the mutex and then threw.
      let w = Atomics.load(i32, R_MU);
      while (!already && w >>> OWNER_SHIFT === me) {
        const found = Atomics.compareExchange(i32, R_MU, w, clean ? w & POISONED : POISONED);
        if (found === w) {
          if ((w & CONTENDED) !== 0) Atomics.notify(i32, R_MU, 1);
          break;
        }
        w = found;
      }
      throw error;
    }
  }

  /**
   * The mutex was poisoned: its holder died inside a step (or a recovery of one). Rolls that
   * step back from the journal (or forward, if it was committing), finishes an intent it left,
   * restores the invariants the entries' `p` words must meet, and clears the poison. Each part
   * can be cut short by another death and redone by the next holder.
   */
  recoverMutex(): void {
    const a = this.arena;
    const journal = this.tx.journal;
    // Read before the rollback empties the journal. J_HAND_CLEAN: the last step was over (the
    // holder stopped before its next began, say in acquiring the mutex). A record: the step of a
    // new key, which leaves no block stray while it names it, and, if it is rolled back, the
    // record goes back to its seat's log before the rollback, so that a recovery cut short and
    // done again finds it so (_sync_hand_log.ts handBack).
    // ACTIVE with entries: not committed (a commit empties the count before it sets IDLE, and
    // the step's new entry, which the record is written into, is one of its entries); ACTIVE
    // with none may be the end of a commit, the record published and its key not counted
    // (helper-143): swept.
    const hand = a.i32[journal.at + J_HAND];
    const accounted = hand === J_HAND_CLEAN ||
      (hand > 0 && journal.active && journal.mark > 0 &&
        handBack(this, a.i32[journal.at + J_HAND_SEAT], hand));
    this.tx.recover();
    a.i32[journal.at + J_HAND] = 0;
    // Otherwise the step may have left blocks no rollback gives back (a dirty-table copy's
    // unlisted overflow buckets, a cached block popped before its entry, the caller's record
    // after a commit whose key the holder had not yet counted): the reap that follows
    // (onDeadOwner) sweeps them, whether or not the holder's seat is found dead.
    if (!accounted) Atomics.store(a.i32, R_SWEEP_DUE, 1);
    this.#read = null;
    this.#dirty = null;
    const intent = journal.intent;
    if (intent === INTENT_MARK) this.#markOwned(journal.arg(0));
    else if (intent === INTENT_CLEAR) this.#kill(journal.arg(0), journal.arg(1));
    if (intent !== 0) journal.setIntent(0);
    this.#repairInvariants();
    a.i32[journal.at + J_HAND] = J_HAND_CLEAN; // recovered: a sweep is due if one is needed
    clearPoison(a.i32, R_MU, ownerId());
    this.#deadOwnerFound = true;
  }

  /**
   * The invariants a rolled-back step may have left broken, because the `p` words it changed
   * are not journaled: with no dirty table, no read entry is expunged (a dirty-table build
   * expunged some, and was undone); with one, every read entry not expunged is in it (an
   * unexpunge happened, and its insert was undone).
   */
  #repairInvariants(): void {
    const a = this.arena;
    const read = this.readTable(Atomics.load(a.i32, R_READ));
    if (read === null) return;
    const dirty = this.dirtyTable();
    const missing: number[] = [];
    read.forEachKeySlot(0, 0, (k) => {
      const e = a.i32[(k >> 2) + S_ENTRY];
      if (dirty === null) {
        Atomics.compareExchange(a.i32, e >> 2, EXPUNGED, NIL);
      } else if (Atomics.load(a.i32, e >> 2) !== EXPUNGED) {
        missing.push(e);
      }
    });
    if (dirty === null || missing.length === 0) return;
    const present = new Set<number>();
    dirty.forEachKeySlot(0, 0, (k) => present.add(a.i32[(k >> 2) + S_ENTRY]));
    const journal = this.tx.journal;
    journal.begin();
    try {
      for (const e of missing) {
        if (present.has(e)) continue;
        const lo = a.i32[(e >> 2) + E_KEY_LO];
        const hi = a.i32[(e >> 2) + E_KEY_HI];
        const k = dirty.insertUnique(lo, hi, hashStored(a, lo, hi), true);
        this.tx.set((k >> 2) + S_ENTRY, e);
        this.tx.set((k >> 2) + S_OWNS, 0);
      }
      journal.commit(this.tx.releaser);
    } catch (error) {
      this.tx.recover(); // the allocator first, as in locked()
      throw error;
    }
  }

  /** Carries out the intent the step committed with (see #intend), if any. */
  #afterCommit(): void {
    const journal = this.tx.journal;
    const intent = journal.intent;
    if (intent === 0) return;
    if (intent === INTENT_MARK) this.#markOwned(journal.arg(0));
    else if (intent === INTENT_CLEAR) this.#kill(journal.arg(0), journal.arg(1));
    journal.setIntent(0);
  }

  /**
   * Records an intent as part of this step (journaled), so that it commits with the step or is
   * rolled back with it: a death right after the commit leaves it for the recoverer.
   */
  #intend(intent: number, a: number, b = 0): void {
    const journal = this.tx.journal;
    if (journal.intent !== 0) throw new Error("internal: two intents in one step");
    this.tx.set(journal.argWord(0), a);
    this.tx.set(journal.argWord(1), b);
    this.tx.set(journal.intentWord, intent);
  }

  // ---- Steps under the mutex -----------------------------------------------------------------

  /**
   * Go's unexpungeLocked: an expunged entry of the read table is not in the dirty table; put
   * it back there before storing into it. Its NIL is not journaled, and a lock-free store may
   * fill the entry at once: a rollback of the step leaves a key whose value is missing from the
   * dirty table. Nothing after it in a step fails but on corrupt memory or a stack overflow;
   * either way the repair runs (locked() after a live rollback, recoverMutex after a death).
   */
  unexpungeLocked(e: number, probe: Probe): void {
    const a = this.arena;
    // An expunged entry changes only under the mutex: lock-free writers leave it alone, and
    // never write EXPUNGED, so a plain read tells it exactly.
    if (a.i32[e >> 2] !== EXPUNGED) return;
    // Expunged entries exist only while there is a dirty table (dirtyLocked made them). The
    // insert comes first: if it fails, the entry is as it was.
    const dirty = this.dirtyTable();
    if (dirty === null) {
      // Broken (written from outside, or by a path that failed to restore its expunges): as
      // recoverMutex's repair does, the entry goes back to NIL, in the read table.
      Atomics.store(a.i32, e >> 2, NIL);
      return;
    }
    let k: number;
    const lo = probe.lo;
    try {
      probe.lo = a.i32[(e >> 2) + E_KEY_LO];
      k = dirty.insert(probe, false);
    } finally {
      probe.lo = lo;
    }
    dirty.setValueWords(k, e, 0); // S_ENTRY, S_OWNS
    this.#unexpunged = true;
    Atomics.store(a.i32, e >> 2, NIL);
  }

  /**
   * Adds a new key with value `record` (or a pending `p`: _sync_compute.ts) to the dirty
   * table, making the dirty table first if there is none (Go's dirtyLocked) and marking the
   * read table amended. The caller looked the key up in both tables in this step and found it in
   * neither, and counts the new key once the step has committed.
   */
  addLocked(probe: Probe, record: number, read: number): void {
    const a = this.arena;
    const tx = this.tx;
    const promote = (read & AMENDED) === 0 && this.#dirtyLocked(read);
    const dirty = this.dirtyTable()!;
    const e = tx.alloc(ENTRY_BYTES, false);
    const keyLo = probe.materialize(a, tx);
    const lo = probe.lo;
    let k: number;
    probe.lo = keyLo;
    try {
      // Every caller found the key in neither table in this step (or the read table it copied
      // lacked it): its first empty slot, with no second walk, when no growth is due.
      k = dirty.insertAbsent(probe);
      if (k < 0) k = dirty.insert(probe, false);
    } finally {
      probe.lo = lo;
    }
    const i32 = a.i32;
    i32[(e >> 2) + E_P] = record;
    this.noteStored(e, record);
    i32[(e >> 2) + E_KEY_LO] = keyLo;
    i32[(e >> 2) + E_KEY_HI] = probe.hi;
    i32[(e >> 2) + E_OWNER] = 0;
    dirty.setValueWords(k, e, 0); // S_ENTRY, S_OWNS
    // A read table of mostly deleted keys would otherwise stay, beside the dirty table, until
    // enough loads miss (stores alone never promote): promote at once, so that its memory comes
    // back; and a dirty table that copied nothing, so that its one key is read without the
    // mutex (#dirtyLocked). Promotion at any time is valid in Go's algorithm; the copy was paid
    // already.
    if (promote) this.promoteLocked();
    else if ((read & AMENDED) === 0) this.#setRead(read | AMENDED);
  }

  /**
   * Sets the read word this step publishes: readers load it without the mutex, so it is stored
   * only once the commit can no longer be rolled back (Journal.publishAtCommit). Until then the
   * step sees it through {@linkcode readWord}.
   */
  #setRead(word: number): void {
    this.#pendingRead = word;
    this.tx.journal.publishAtCommit(R_READ, word);
  }

  /**
   * The read word as this step sees it: the one it will publish, or the published one. Under
   * the mutex R_READ is read plainly: only the mutex's holder writes it (at a commit, or at a
   * recovery's roll-forward, in this thread), and the compare-exchange that took the mutex
   * orders this read after the last holder's store. An `Atomics.load` is a builtin call on V8
   * (13 to 19 ns); the steps under the mutex read the word so throughout.
   */
  readWord(): number {
    return this.#pendingRead !== -1 ? this.#pendingRead : this.arena.i32[R_READ];
  }

  /**
   * Go's dirtyLocked: when there is no dirty table, makes one holding every entry of the read
   * table that is not deleted, expunging the deleted ones (NIL; a pending entry is copied, since
   * its computation will store into it). The new table is fresh memory (its inserts need no
   * journal); the expunges are undone by {@linkcode locked}'s rollback (see #expunged), and
   * after a death by recoverMutex's invariant repair. Its overflow buckets take no journal
   * entry (Tx.allocUnlisted): a copy of a large read table needs thousands (a table of 200,000
   * keys about 6,000), more than a journal holds. So a step that throws after the copy began,
   * in the copy or after it, frees them once rolled back ({@linkcode locked}); after a death they
   * are stray, and the sweep that follows it frees them.
   * Returns whether the new table should be promoted at once (see addLocked): most of the read
   * table was deleted, or all of it (an empty read table included: what the promotion of a dirty
   * table emptied by deletes leaves). In the second case the promoted table holds just the key
   * being added, which the read table then answers without the mutex. Left amended, a key stored
   * and deleted in turn (a flag set and cleared) made every store build a dirty table and every
   * delete promote it emptied: two locked steps, a table made and one retired, per round. A map
   * with no read table yet (never promoted) keeps Go's path: its first keys wait in the dirty
   * table for the misses that promote it.
   */
  #dirtyLocked(readWord: number): boolean {
    const a = this.arena;
    if (a.i32[R_DIRTY] !== 0) return false;
    const read = this.readTable(readWord);
    const header = this.tx.alloc(TABLE_HEADER_BYTES, true);
    // Sized for the keys with a value (deleted entries are expunged, not copied), and with the
    // read table's buckets while those keys fill a quarter of them or more: the read table is
    // the last dirty table, grown to what it took in before its promotion, and this one will
    // take in as much. Sized for the live keys alone, a churn of a fixed key set (Go's
    // StoreDeleteChurn shape) grew every dirty table once, evacuating each bucket: 1.2x the
    // time on Deno and Bun (separate processes, same run). Not in a map that would then use
    // more than half its maxBytes: there the step's other blocks (its records, a span) may not
    // fit beside the larger array, and the store would fail where it fitted before.
    const live = Math.min(read?.count ?? 0, this.keyCount());
    const room = read === null ? 0 : keysWithoutGrowth(read.B);
    const larger = 4 * live >= room && room > live &&
      bytesUsed(a) + bucketBytesForHint(room) - bucketBytesForHint(live) <= a.maxBytes / 2;
    Table.create(this.tx, a, header, larger ? room : live);
    const dirty = new Table(a, header, false, noop, this.tx);
    // Known to locked() as they are made: a rollback of the step turns them back to NIL.
    const expunged: number[] = [];
    this.#expunged = expunged;
    dirty.unlistedOverflow = true;
    // Room for the overflow buckets a copy needs, in the list that a rollback frees them from
    // after a death (1% to 3% of the keys; past the room, a death in the step is swept). Only
    // for a table whose sweep would cost: in a small map the list's span, in a new size class,
    // was what a nearly full map could not find room for (sync_map_handles_test.ts).
    const keys = read?.count ?? 0;
    this.tx.unlistedRoom = keys >= UNLISTED_MIN_KEYS ? (keys >> 4) + 64 : 0;
    try {
      this.#copyRead(read, dirty, expunged);
    } finally {
      dirty.unlistedOverflow = false;
      this.tx.unlistedRoom = 0;
    }
    this.tx.set(R_DIRTY, header);
    this.#dirty = dirty;
    if (read === null) return false;
    return expunged.length === read.count ||
      (expunged.length >= MOSTLY_DELETED_MIN && 2 * expunged.length >= read.count);
  }

  /**
   * {@linkcode #dirtyLocked}'s copy: expunges the deleted entries, inserts the others. When the
   * dirty table has the read table's bucket count (it is sized so while the keys fill a quarter
   * of the buckets, see #dirtyLocked) and the read table is not growing, each key goes to the
   * bucket number it has there, with its tophash, bucket by bucket: no key is hashed again (Go's
   * dirtyLocked hashes every one; here that was a HalfSipHash of each number key not in the
   * hash memo, and the lookup of each string key's blob).
   */
  #copyRead(read: Table | null, dirty: Table, expunged: number[]): void {
    if (read === null) return;
    const slots = keySlotsFor(read);
    const B = read.B;
    if (B === dirty.B && !read.growing) {
      const tops: number[] = [];
      for (let j = 0; j < 1 << B; j++) {
        const n = gatherChainSlots(read, j, slots, tops);
        if (n !== 0) this.#copySlots(slots, n, dirty, expunged, j, tops);
      }
    } else {
      this.#copySlots(slots, read.gatherKeySlots(0, 0, slots), dirty, expunged, -1, null);
    }
  }

  /**
   * {@linkcode #copyRead}'s loop over `n` gathered key slots of the read table: into bucket
   * number `bucket` of the dirty table with the tophashes `tops`, or, without `tops` (`bucket`
   * unused), where each key's hash puts it. No call per key but the insert (a visitor closure per key, and an
   * `Atomics.load` per entry, a builtin call on V8, cost more). An entry's `p` is read plainly
   * first: under the mutex, EXPUNGED is exact (only the mutex's holder writes it or writes over
   * it), and a value read plainly is one the entry held, which a lock-free delete may turn to NIL
   * right after the copy as after an atomic load. Only NIL takes the compare-exchange that
   * expunges it.
   */
  #copySlots(
    slots: number[],
    n: number,
    dirty: Table,
    expunged: number[],
    bucket: number,
    tops: number[] | null,
  ): void {
    const a = this.arena;
    for (let j = 0; j < n; j++) {
      // A rebuild of a large map can outlast the grace after which a thread marked
      // terminating counts as gone: one marked meanwhile stops (the step rolled back).
      checkAlive();
      const k = slots[j];
      const i32 = a.i32;
      const e = i32[(k >> 2) + S_ENTRY];
      let p = i32[e >> 2];
      if (p === EXPUNGED) continue;
      if (p === NIL) {
        // tryExpungeLocked
        p = Atomics.compareExchange(i32, e >> 2, NIL, EXPUNGED);
        if (p === NIL) {
          expunged.push(e);
          continue;
        }
        if (p === EXPUNGED) continue; // no other thread expunges; as the loop it replaced
      }
      const lo = i32[k >> 2];
      const hi = i32[(k >> 2) + 1];
      const keySlot = tops !== null
        ? dirty.insertUniqueIn(bucket, tops[j], lo, hi)
        : dirty.insertUnique(lo, hi, hashStored(a, lo, hi));
      a.i32[(keySlot >> 2) + S_ENTRY] = e;
    }
  }

  /**
   * Go's Load after the read table missed `probe`'s key while amended: under the mutex, the
   * read table again, then the dirty table, counting a miss. Returns the entry, or 0.
   * `searched` is the read word whose table the caller found without the key in this
   * operation: while R_READ still holds it, that table is the one the caller searched (a read
   * table is immutable, and one retired meanwhile is not freed before this participant's next
   * quiescent point, so its offset cannot name a new table yet), and is not searched again.
   */
  entryLocked(probe: Probe, searched: number): number {
    // The read paths enter without the census check (Participant.enterRead): the mutex has it.
    checkAlive();
    const found = this.#readLocked(probe, searched);
    if (found !== PROMOTES) return found;
    // The miss promotes the dirty table: a step that writes, journaled.
    return this.locked(() => {
      const read = this.arena.i32[R_READ]; // plainly, under the mutex (see readWord)
      let e = read === searched ? 0 : this.findIn(this.readTable(read), probe);
      if (e === 0 && (read & AMENDED) !== 0) {
        e = this.findIn(this.dirtyTable(), probe);
        this.missLocked();
      }
      return e;
    });
  }

  /**
   * {@linkcode entryLocked}'s lookup as a read step: under the mutex with no journal (no begin, no
   * commit, no closure), for the miss that does not promote. Returns the entry, 0, or
   * {@linkcode PROMOTES} (having written nothing) when the miss it would count promotes the dirty
   * table (missLocked). Its one write is R_MISSES, plainly, and only short of that: a counter under
   * MU, which no lock-free path reads for a decision (a journaled step that rolls back later
   * restores what it found at its own begin).
   *
   * A death at any point leaves the journal idle and J_HAND as the last step left it: J_HAND_CLEAN
   * (a step that releases the mutex clean ends so, settled or rolled back, as does a recovery; one
   * left otherwise released it poisoned, and this step's acquisition recovered it first; a begin
   * that threw, on a corrupt journal or at a stack overflow, leaves 0, which only makes a recovery
   * sweep), so its recovery rolls nothing back and sweeps nothing, and R_MISSES holds the old count
   * (which may promote already: then this step wrote nothing) or the new one, which does not. A
   * throw (a stack overflow, a corrupt table's RangeError) leaves nothing half-done: the mutex is
   * released clean.
   */
  #readLocked(probe: Probe, searched: number): number {
    const i32 = this.arena.i32;
    const me = liveOwnerId();
    this.#lock(i32, me, false);
    let e: number;
    try {
      const read = i32[R_READ]; // plainly, under the mutex (see readWord)
      e = read === searched ? 0 : this.findIn(this.readTable(read), probe);
      if (e === 0 && (read & AMENDED) !== 0) {
        const dirty = this.dirtyTable();
        e = this.findIn(dirty, probe);
        if (dirty !== null) {
          const misses = i32[R_MISSES] + 1;
          if (promotes(this.arena, misses, dirty.count)) e = PROMOTES;
          else i32[R_MISSES] = misses;
        }
      }
    } finally {
      // The release, written out as in locked() (no call of ours), clean.
      let w = i32[R_MU];
      while (w >>> OWNER_SHIFT === me) {
        const found = Atomics.compareExchange(i32, R_MU, w, w & POISONED);
        if (found === w) {
          if ((w & CONTENDED) !== 0) Atomics.notify(i32, R_MU, 1);
          break;
        }
        w = found;
      }
    }
    if (this.#deadOwnerFound) {
      this.#deadOwnerFound = false;
      this.onDeadOwner?.();
    }
    return e;
  }

  /**
   * Go's missLocked: counts a miss and promotes the dirty table once misses reach its size, and
   * {@linkcode PROMOTE_MISSES_MIN} at least in a map with room ({@linkcode promotes}).
   * A promotion retires the old read table, and a read (`load`, `loadOk`, `has`: enterRead)
   * makes no room to retire in: a participant without it (its retire list could not grow, the
   * map full) leaves the promotion due, for the next miss counted with room. Go may promote at
   * any miss past the count, so a later one is as good.
   */
  missLocked(): void {
    const a = this.arena;
    const misses = a.i32[R_MISSES] + 1;
    const dirty = this.dirtyTable();
    if (dirty === null) return;
    if (!promotes(a, misses, dirty.count)) {
      this.tx.set(R_MISSES, misses);
      return;
    }
    if (!this.participant.canRetire && (this.readWord() & ~AMENDED) !== 0) {
      // Due, and no higher: the count never wraps. (Compared here, not by Math.max, which user
      // code may have replaced, and which would run under the mutex.)
      const count = dirty.count;
      this.tx.set(R_MISSES, count > PROMOTE_MISSES_MIN ? count : PROMOTE_MISSES_MIN);
      return;
    }
    this.promoteLocked();
  }

  /**
   * Makes the dirty table the read table and retires the old read table. The entries the old
   * table owns are marked after the commit (an intent: #markOwned).
   */
  promoteLocked(): void {
    const a = this.arena;
    const oldWord = this.readWord();
    const dirty = a.i32[R_DIRTY];
    // Callers promote only while the read word is amended, which a dirty table always is.
    if (dirty === 0) {
      throw new RangeError("corrupt SyncMap: amended, with no dirty table to promote");
    }
    // A fresh serial for the new read table: 64 bits, so that none ever repeats.
    const lo = (a.i32[R_SERIAL] + 1) | 0;
    const hi = lo === 0 ? (a.i32[R_SERIAL + 1] + 1) | 0 : a.i32[R_SERIAL + 1];
    this.tx.set(R_SERIAL, lo);
    if (lo === 0) this.tx.set(R_SERIAL + 1, hi);
    this.tx.set((dirty >> 2) + T_SERIAL, lo);
    this.tx.set((dirty >> 2) + T_SERIAL + 1, hi);
    this.#setRead(dirty);
    this.tx.set(R_DIRTY, 0);
    this.tx.set(R_MISSES, 0);
    const old = oldWord & ~AMENDED;
    if (old === 0) return;
    this.participant.retireTx(old | K_TABLE, this.tx);
    this.#intend(INTENT_MARK, old);
  }

  /**
   * Entries of an old read table that are expunged are in no table now: they die with it. One
   * expunged later, while in the new read table, must not: hence marking them now, before the
   * mutex is released (no dirty table exists yet that could expunge others). Idempotent. A loop
   * with no call per key, as #copyRead; `p` read plainly, since whether it is EXPUNGED changes
   * only under the mutex.
   */
  #markOwned(header: number): void {
    const a = this.arena;
    const old = new Table(a, header, false, noop, this.tx);
    let owned = 0;
    const slots = keySlotsFor(old);
    const n = old.gatherKeySlots(0, 0, slots);
    for (let j = 0; j < n; j++) {
      checkAlive(); // as in #dirtyLocked; the mutex's next holder marks again
      const k = slots[j];
      const i32 = a.i32;
      const e = i32[(k >> 2) + S_ENTRY];
      const owns = i32[e >> 2] === EXPUNGED;
      if (owns) {
        i32[(e >> 2) + E_OWNER] = header;
        owned++;
      }
      i32[(k >> 2) + S_OWNS] = owns ? 1 : 0;
    }
    if (owned >= BULK_KEYS) this.participant.collectSoon();
  }

  /**
   * Go 1.23's Clear: unpublishes both tables and retires them (journaled), then, after the
   * commit, expunges every entry (an intent: #kill).
   */
  clearLocked(): void {
    const a = this.arena;
    const readWord = this.readWord();
    const read = readWord & ~AMENDED;
    const dirty = a.i32[R_DIRTY];
    if (read === 0 && dirty === 0) return;
    noteRemoval(a.buffer); // a compute's fn that clears the map
    // The tables own every key between them: at least as many as the larger holds.
    const keys = Math.max(this.readTable(readWord)?.count ?? 0, this.dirtyTable()?.count ?? 0);
    this.#setRead(0);
    this.tx.set(R_DIRTY, 0);
    this.tx.set(R_MISSES, 0);
    if (read !== 0) this.participant.retireTx(read | K_TABLE, this.tx);
    if (dirty !== 0) this.participant.retireTx(dirty | K_TABLE, this.tx);
    this.#intend(INTENT_CLEAR, read, dirty);
    if (keys >= BULK_KEYS) this.participant.collectSoon();
  }

  /**
   * Clears a map whose read table is its only table and holds no key with a value or a claim
   * (every key deleted since the last promotion), and returns whether it did. A new key there
   * needs a new dirty table, which a full map has no room for while the read table's buckets
   * and its deleted entries hold the memory, and deletes free neither (helper-159: a full map,
   * every key then deleted, refused every new key until `clear()`). A clear needs no memory and
   * retires both, changing no key's value. The deleted entries are expunged first, as a dirty
   * table's copy expunges them, so that a store of one of their keys racing with this step
   * finds its entry expunged and takes the mutex, after this step; one that got in before left
   * a value, and nothing is cleared. A death before the commit leaves the expunged entries to
   * the mutex's recovery, which turns them back to NIL (no dirty table: #expunged), and one
   * after it leaves the clear's intent.
   */
  compactLocked(): boolean {
    const a = this.arena;
    if (a.i32[R_DIRTY] !== 0) return false;
    const read = this.readTable(this.readWord());
    if (read === null) return false;
    const i32 = a.i32;
    const expunged: number[] = [];
    this.#expunged = expunged;
    let empty = true;
    read.forEachKeySlot(0, 0, (k) => {
      if (!empty) return;
      checkAlive(); // as in #dirtyLocked
      const e = i32[(k >> 2) + S_ENTRY];
      const p = Atomics.compareExchange(i32, e >> 2, NIL, EXPUNGED);
      if (p === NIL) expunged.push(e);
      else if (p !== EXPUNGED) empty = false;
    });
    if (!empty) {
      this.#unexpungeRolledBack();
      this.#expunged = NONE_EXPUNGED;
      return false;
    }
    this.clearLocked();
    return true;
  }

  /**
   * Expunges every entry of the cleared tables, so that a store racing with the clear through
   * an entry of the old read table fails its exchange and takes the lock, after the clear. A
   * value taken out is freed with the table (S_OWNS), not retired: a clear allocates nothing.
   * Idempotent, so a recoverer can run it again.
   */
  #kill(readHeader: number, dirtyHeader: number): void {
    const a = this.arena;
    const kill = (table: Table, k: number): void => {
      checkAlive(); // as in #dirtyLocked; the mutex's next holder kills again
      const i32 = a.i32;
      const e = i32[(k >> 2) + S_ENTRY];
      const p = Atomics.exchange(i32, e >> 2, EXPUNGED);
      if (p > EXPUNGED) {
        Atomics.sub(i32, R_COUNT, 1);
        i32[(k >> 2) + S_OWNS] = (p & 1) === 0 ? p | 1 : 1; // an immediate: the entry alone
      } else {
        // A key being computed: its waiters look it up again (_sync_compute.ts).
        if (p < NIL) Atomics.notify(i32, e >> 2);
        if (i32[(k >> 2) + S_OWNS] === 0) i32[(k >> 2) + S_OWNS] = 1;
      }
      i32[(e >> 2) + E_OWNER] = table.h << 2;
    };
    if (readHeader !== 0) {
      const read = new Table(a, readHeader, false, noop, this.tx);
      read.forEachKeySlot(0, 0, (k) => kill(read, k));
    }
    if (dirtyHeader !== 0) {
      const dirty = new Table(a, dirtyHeader, false, noop, this.tx);
      dirty.forEachKeySlot(0, 0, (k) => {
        const e = a.i32[(k >> 2) + S_ENTRY];
        const owner = a.i32[(e >> 2) + E_OWNER];
        // An entry also in the read table is that table's to free.
        if (owner === 0 || owner === dirtyHeader) kill(dirty, k);
        else a.i32[(k >> 2) + S_OWNS] = 0;
      });
    }
  }

  /**
   * Removes a key found only in the dirty table from it, and retires its entry: other
   * operations that found the entry under the lock may still use it outside the lock.
   */
  removeFromDirty(dirty: Table, probe: Probe, e: number): void {
    dirty.remove(probe);
    this.tx.set((e >> 2) + E_OWNER, -1);
    this.participant.retireTx(e | K_ENTRY, this.tx);
  }

  // ---- Records --------------------------------------------------------------------------------

  /**
   * Writes a value record for the encoded value `v`, or returns its immediate when it has one
   * (_sync_layout.ts); throws MapFullError, allocating nothing. `quiescent`: called before the
   * operation read anything shared (see Participant.allocate). The record is this object's in
   * flight until published (see `inflight`). Every method below takes an immediate for a record
   * and does what it needs: nothing to free, retire or reach. `logged`: the caller keeps a hand
   * log of what it takes (Participant.logSwap), opened as the record is taken.
   */
  newRecord(v: Probe, quiescent = false, logged = false): number {
    // The call's first write through its seat, after its encodes: a built-in they ran may be
    // one the user patched (BigInt's toString, String's charCodeAt), in which a zombie may spin
    // past the grace; it stops here, as after any user code (Participant.recheck).
    this.participant.recheck(!logged);
    const a = this.arena;
    if (this.immediates && v.mode === MODE_INLINE && isNumberSlot(v.hi)) {
      const p = immediateOf(numberOf(v.lo, v.hi));
      if (p !== 0) return p; // noted as stored (noteStored), not here
    }
    const bytes = RECORD_HEADER + v.blobBytes();
    const r = logged && quiescent
      ? this.participant.allocateLogged(bytes)
      : this.participant.allocate(bytes, quiescent, logged);
    const i32 = a.i32;
    i32[(r >> 2) + REC_LO] = v.mode === 0
      ? v.lo
      : v.mode === MODE_STRING && !v.hasWords
      ? this.#copyString(v, r, bytes)
      : v.writeBlob(a, r + RECORD_HEADER);
    i32[(r >> 2) + REC_HI] = v.hi;
    noteRecord(a.buffer, r);
    return r;
  }

  /**
   * {@linkcode newRecord}'s copy of a string value into record `r`, which it has in hand and
   * nothing reaches: the copy calls `String.prototype.charCodeAt`, which user code may have
   * replaced, and which may then call this map. So it runs under a hold (Participant.holdBegin):
   * no call nested there makes a quiescent point, reaps, sweeps (a sweep would take `r`, reached
   * by nothing and named by no seat, for leaked, and free it: helper-142, with `verify()` called
   * from there) or lowers the hand word (a store's hand log names `r`: Participant's #readMiss);
   * and another thread's stop of the world either waits for this one or, if a nested call parks,
   * sweeps nothing. Keys and values under the other codecs are copied from words or bytes the
   * probe made before anything was taken, and run no user code. A copy that throws (that code
   * threw) frees `r`, of `bytes`, having raised the hand word first (a log naming `r` as taken
   * would have a settling free it again), and the call throws, having stored nothing.
   */
  #copyString(v: Probe, r: number, bytes: number): number {
    const part = this.participant;
    part.holdBegin();
    try {
      return v.writeBlob(this.arena, r + RECORD_HEADER);
    } catch (error) {
      part.dropLog();
      part.release(r, bytes);
      throw error;
    } finally {
      part.holdEnd();
    }
  }

  /**
   * Ends a step's hold on `record` (0 for none): no longer in flight, and freed unless the
   * step published it (see `published`), which is then cleared. Called in the finally of every
   * step that allocated a record, whether it returned or threw.
   */
  releaseUnpublished(record: number): void {
    this.inflight = 0;
    if (record !== 0 && record !== this.published) {
      // Raised before the free, whatever the caller's catch did: one cut short by a stack
      // overflow before it dropped the log would leave the log naming a block back in the cache,
      // which another call may take and publish, and a settling of a death then would take it
      // for this call's, exchanged, and retire the old value a second time (helper-144). A raise
      // cut short throws before the free: the block leaks, for the sweep the overflow makes due.
      this.participant.dropLog();
      this.freeRecord(record);
    }
    this.published = 0;
  }

  /** Whether record `r` holds the encoded value `v`. */
  recordEquals(r: number, v: Probe): boolean {
    if ((r & 1) !== 0) {
      const words = immediateWords(r);
      return v.mode === MODE_INLINE && v.lo === words[0] && v.hi === words[1];
    }
    const a = this.arena;
    a.reach(r + RECORD_HEADER);
    return v.matches(a, a.i32[(r >> 2) + REC_LO], a.i32[(r >> 2) + REC_HI]);
  }

  freeRecord(r: number): void {
    if ((r & 1) === 0) this.participant.release(r, recordBytes(this.arena, r));
  }

  /**
   * After value `p` was stored into entry `e` by this thread (its exchange): notes an immediate
   * for a compute callback running (_compute_watch.ts). A record was noted as it was made.
   */
  noteStored(e: number, p: number): void {
    if ((p & 1) !== 0 && p > EXPUNGED) noteImmediate(this.arena.buffer, e, p);
  }

  /** Retires record `r`, which a step took out of its entry: an immediate needs nothing. */
  retireRecord(r: number): void {
    if ((r & 1) === 0) this.participant.retire(r | K_RECORD);
  }

  /** Copies the slot words of record `r` into `to` (compute's copy of the value it saw). */
  snapshotRecord(r: number, to: Probe): void {
    const a = this.arena;
    if ((r & 1) !== 0) {
      const words = immediateWords(r);
      to.snapshot(a, words[0], words[1]);
      return;
    }
    a.reach(r + RECORD_HEADER);
    to.snapshot(a, a.i32[(r >> 2) + REC_LO], a.i32[(r >> 2) + REC_HI]);
  }

  #freeEntry(e: number): void {
    const a = this.arena;
    a.reach(e + ENTRY_BYTES);
    // The key's blob, if any (slots.ts freeSlot, without a closure to call back).
    const lo = a.i32[(e >> 2) + E_KEY_LO];
    const hi = a.i32[(e >> 2) + E_KEY_HI];
    if (isBlob(hi)) this.participant.release(lo, blobSize(a, lo, hi));
    this.participant.release(e, ENTRY_BYTES);
  }

  /**
   * Frees a retired block: called by the participant once no one can be reading it. Returns
   * whether the free was a bulk one (a table owning {@linkcode BULK_KEYS} keys or more).
   */
  free(tag: number): boolean {
    const kind = tag & 15;
    const at = tag & ~15;
    if (kind === K_RECORD) {
      this.freeRecord(at);
    } else if (kind === K_ENTRY) {
      this.#freeEntry(at);
    } else {
      const a = this.arena;
      // A retire list adopted with a released seat may name a table past this thread's views.
      a.reach(at + TABLE_HEADER_BYTES);
      const table = new Table(a, at, false, noop, this.tx);
      let owned = 0;
      // Only what this table owns (S_OWNS): the other entries may be gone already.
      table.forEachKeySlot(0, 0, (k) => {
        const owns = a.i32[(k >> 2) + S_OWNS];
        if ((owns & 1) !== 0) this.#freeEntry(a.i32[(k >> 2) + S_ENTRY]);
        if ((owns & ~15) !== 0) this.freeRecord(owns & ~15);
        if (owns !== 0) owned++;
      });
      table.destroy((offset, size) => this.participant.release(offset, size));
      this.participant.release(at, TABLE_HEADER_BYTES);
      return owned >= BULK_KEYS;
    }
    return false;
  }

  /**
   * Counts `delta` keys, in this participant's seat (registry.ts KEYS): a plain write of a word
   * of its own line, which no other thread writes; lock-free paths count too.
   */
  count(delta: number): void {
    this.#keys[0] += delta;
    if (delta < 0) noteRemoval(this.arena.buffer); // a compute's fn that deletes its own key
  }

  /**
   * The keys with a value: R_COUNT, which clears and the sweep's recount write, plus what every
   * seat counted (registry.ts seatsKeys), mod 2^32. For a moment below the truth, even below 0:
   * a lock-free delete of a new key may be counted before the key (see addedRecord).
   */
  keyCount(): number {
    return (Atomics.load(this.arena.i32, R_COUNT) + seatsKeys(this.registry)) | 0;
  }

  /** Bytes in use, less what sits free in participants' caches. */
  bytesUsed(): number {
    return bytesUsed(this.arena) - seatsCachedBytes(this.registry);
  }

  /**
   * Hands record `record`, which its store's hand log holds taken, to this step of its new key
   * (Participant.stepHand): called under the mutex, just before the record is written into the
   * key's entry.
   */
  handToStep(record: number): void {
    this.participant.stepHand(record, this.arena.i32, this.tx.journal.at);
  }

  /** Word index of the mutex journal's intent (for tests). */
  get intentWord(): number {
    return this.tx.journal.at + J_INTENT;
  }

  /** Word index of the mutex journal's first intent argument (for tests). */
  get argsWord(): number {
    return this.tx.journal.at + J_ARGS;
  }
}

/** What SyncCore's read step returns when the miss it would count promotes the dirty table. */
const PROMOTES = -1;

/** Bytes of the record at `r`, as allocated. */
export function recordBytes(arena: Arena, r: number): number {
  arena.reach(r + RECORD_HEADER);
  const hi = arena.i32[(r >> 2) + REC_HI];
  return RECORD_HEADER + (isBlob(hi) ? blobSize(arena, r + RECORD_HEADER, hi) : 0);
}
