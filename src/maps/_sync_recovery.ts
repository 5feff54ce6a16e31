/**
 * Internal. What a SyncMap does when a thread that used it is gone, and how it checks itself.
 *
 * A participant whose thread is gone (census.ts) left, at worst: an operation under the mutex
 * cut short (the mutex's recovery in _sync_core.ts rolls it back), an operation of the
 * allocator cut short (its lock's journal rolls it back), and a lock-free operation cut short:
 * a record allocated and not yet published, a record replaced and not yet retired, a block
 * taken off a retire list and not yet freed, a count not yet adjusted. None of these corrupts
 * the map; each leaks a block or leaves the count off by one. {@linkcode reapDead} gives back the
 * dead participant's seat (its announcement no longer holds reclamation back; its retire list
 * and cache are swept by others as orphans), and then, if it can pause the world (every other
 * participant parked at a quiescent point or in a lock), sweeps: it marks every block the map
 * can reach, frees every block handed out that nothing reaches, and recounts the keys. Without
 * a pause of the world within a short wait (a live participant may sit in one long task), the
 * sweep is left for a later quiescent point (R_SWEEP_DUE).
 *
 * {@linkcode verifySyncMap} runs the same marking as a check: every block reached once, of the
 * size it was allocated with, every block handed out reached or cached, the count right, the
 * tables and the allocator consistent.
 *
 * @module
 */

import { cacheBlock, verifyCache } from "../_engine/alloc_cache.ts";
import * as alloc_cache from "../_engine/alloc_cache.ts";
import {
  blockSize,
  checkHanded,
  lockedRelease,
  underLock,
  verifyHeap,
} from "../_engine/allocator.ts";
import { inViews } from "../_engine/arena.ts";
import * as arena from "../_engine/arena.ts";
import { BlockMap } from "../_engine/block_map.ts";
import { checkAlive, checkSelf, ownerDeclaredGone, ownerGone, ownerId } from "../_engine/census.ts";
import { nap } from "../_engine/futex.ts";
import * as futex from "../_engine/futex.ts";
import { journalWords } from "../_engine/journal.ts";
import {
  deadSeats,
  finishRelease,
  lowerSweepWord,
  parkedHolding,
  pauseBlocker,
  pauseWorld,
  releaseOwnSeat,
  resumeWorld,
  seatAnnouncement,
  seatBlocks,
  seatHigh,
  seatInflight,
  seatLogged,
  seatMayHold,
  seatsKeys,
  seatsReleasing,
  settlingSeats,
  stuckReleases,
} from "../_engine/registry.ts";
import * as registry_module from "../_engine/registry.ts";
import { listBytes, listCount, tagAt } from "../_engine/retire_list.ts";
import * as retire_list from "../_engine/retire_list.ts";
import { blobSize, isBlob, isNumberSlot, numberOf } from "../_engine/slots.ts";
import { Table } from "../_engine/table.ts";
import { recordBytes, type SyncCore } from "./_sync_core.ts";
import { forEachHeld, settleHandLog } from "./_sync_hand_log.ts";
import { checkTables } from "./_sync_tables_verify.ts";
import { immediateOf } from "./_sync_layout.ts";
import * as sync_layout from "./_sync_layout.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { CACHE_BLOCK_BYTES } = alloc_cache;
const { H_ALLOC_LOCK } = arena;
const { OWNER_SHIFT } = futex;
const { OWNER, RELEASES_PUT_OFF, SEAT_WORDS, SWEEP_DUE } = registry_module;
const { RL_CAPACITY } = retire_list;
const {
  AMENDED,
  E_KEY_HI,
  E_KEY_LO,
  ENTRY_BYTES,
  EXPUNGED,
  K_ENTRY,
  K_RECORD,
  K_TABLE,
  NIL,
  R_COUNT,
  R_DIRTY,
  R_JOURNAL,
  R_MU,
  R_NSEATS,
  R_PAUSE,
  R_READ,
  R_SEATS_BLOCK,
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

/** The longest verify() sleeps between looks at a word another thread holds (awaitWord). */
const WAIT_SLICE = 10;

/** How long a recovery waits for the other participants to park before it gives up for now. */
const PAUSE_TIMEOUT_MS = 250;
/** The same for a retry of a sweep left due ({@linkcode retrySweep}). */
const RETRY_PAUSE_MS = 10;
/**
 * Gives back the participant seats of gone threads, and sweeps what they left when the world
 * can be stopped. Called at quiescent points and as participants come online, when the census
 * changed or after the mutex was recovered, and by verify: only where the calling thread holds
 * nothing the marking cannot see, since the pause of the world skips its own participants.
 * Does nothing quickly when nothing is dead and no sweep is due.
 */
export function reapDead(core: SyncCore): void {
  const registry = core.registry;
  const i32 = core.arena.i32;
  finishStuck(core);
  const dead = deadSeats(registry);
  if (dead.length === 0 && Atomics.load(i32, R_SWEEP_DUE) === 0) return;
  if (Atomics.load(i32, R_PAUSE) !== 0) return; // another thread is at it
  // A sweep is for deaths that may have left blocks in hand (seatMayHold: inside a call, and not
  // on a read's fast path). An owner that ended between calls (an idle worker a pool retires, a
  // worker that never used the map) or inside a read (a read-mostly worker a pool's timeout
  // kills) left none, and its seat goes back with no sweep: a sweep stops the world to walk the
  // whole map (docs/design.md, "The marking grows with the map"). Due first: a release cut short
  // before its seatReleased leaves the sweep due all the same, so that a retry comes for the
  // seats after it (their deaths are no longer news to the census count this participant
  // watches).
  // A seat with a hand log is settled by its release, which makes a sweep due only if the log
  // cannot say what it held (seatReleased).
  let due = Atomics.load(i32, R_SWEEP_DUE) === SWEEP_DUE;
  for (const { index } of dead) {
    due ||= seatMayHold(registry, index) && !seatLogged(registry, index);
  }
  if (due) Atomics.store(i32, R_SWEEP_DUE, SWEEP_DUE);
  // The seats are given back before anything is marked, so that their announcements stop
  // holding reclamation back. A release takes the mutex (seatReleased: a dead owner's step still
  // in its journal may name words of the seat's retire list, which the release hands to others)
  // and turns what the seat held into orphans (its retire list and cache, marked and drained as
  // any orphan's) or into blocks nothing reaches (a record in flight: PARKED is cleared), which
  // the sweep frees. A release cut short (a stack overflow) is finished as the task ends: this
  // thread, alive, stays its releaser, and no other takes it over.
  for (const { index, generation } of dead) {
    releaseOwnSeat(
      registry,
      index,
      generation,
      (owner, mayHold) => seatReleased(core, owner, mayHold, index),
    );
  }
  const word = Atomics.load(i32, R_SWEEP_DUE);
  if (!due && word !== SWEEP_DUE) {
    // No sweep: at most a hint of releases put off, dropped once they are all finished.
    if (word === RELEASES_PUT_OFF) lowerSweepWord(registry, word);
    return;
  }
  // A seat still RELEASING (its release put off while its owner, a Deno zombie, may be in a
  // call, or at work in another thread: an adapter's release of the same dead worker races this
  // reap) holds back what the others retired since its death: the sweep is left due, for a retry
  // once the seat is free. Swept now, the marking walked that backlog with the world stopped
  // (44,000 to 52,000 blocks, 16 to 29 ms, beside an adapter's release on Bun; 0.4 to 0.5 s
  // behind a put-off seat on Deno), and the pause waited for an owner that may be in a call.
  // Looked at before the collect below, which would keep what such a seat holds back, and after.
  if (seatsReleasing(registry)) return;
  // What the released announcements held back is freed by collects, which stop no one, rather
  // than walked by the marking with the world stopped: marked before the release, the 44,000 to
  // 77,000 records a worker storing in a loop retired while a dead one's seat held them made a
  // reap's stop of the world 14 to 27 ms on Bun (bench/kill_stall.ts). A slice now; while more
  // is left, the sweep is left due, for a retry once the quiescent points have freed the rest.
  if (!core.participant.drainBacklog() || seatsReleasing(registry)) return;
  sweepDue(core, PAUSE_TIMEOUT_MS, true);
}

/**
 * Finishes the releases whose releaser died midway, and this thread's own put off while their
 * owner may have been inside a call (registry.ts stuckReleases): until finished, each seat's
 * announcement holds reclamation back.
 */
function finishStuck(core: SyncCore): void {
  for (const index of stuckReleases(core.registry)) {
    finishRelease(
      core.registry,
      index,
      (deadOwner, mayHold) => seatReleased(core, deadOwner, mayHold, index),
    );
  }
}

/**
 * A participant's retry of a sweep left due (Participant.onSweepDue, with a backoff): the stuck
 * releases (among them this thread's own put off while their owner may have been in a call), then
 * the sweep, the dead seats having been released by the reap that left it due, waiting at most
 * {@linkcode RETRY_PAUSE_MS} for the world to stop, so that a participant still sitting in one
 * long task costs the retrying thread little. Returns true when the world could not be stopped
 * (the participant backs off further), false otherwise: swept, not due, or put off for a release
 * under way or a backlog still being freed, which comes again soon.
 */
export function retrySweep(core: SyncCore): boolean {
  const i32 = core.arena.i32;
  finishStuck(core);
  const word = Atomics.load(i32, R_SWEEP_DUE);
  if (word === 0) return false;
  if (word !== SWEEP_DUE) {
    // Only a hint: the releases put off are what the retries are for (finishStuck above),
    // and their ends make a sweep due if one may have held blocks in hand (seatReleased).
    lowerSweepWord(core.registry, word);
    return false;
  }
  if (Atomics.load(i32, R_PAUSE) !== 0) return true; // another thread stops the world
  // As in reapDead: a seat still being released holds back what the others retired since its
  // death, and its owner may be in a call (a put-off release: the sweep's pause could not go on
  // without it anyway). A later retry finishes or finds it finished (finishStuck above).
  if (seatsReleasing(core.registry)) return false;
  // What this participant retired while a released seat's announcement held it back can go
  // now: freed first, by a collect, which stops no one, rather than walked by the marking with
  // the world stopped (behind a Deno zombie's seat put off for a second, a worker storing in a
  // loop retired 0.5 to 1.3 million blocks, and marking them held it 0.6 to 1.7 s, every other
  // participant parked). A retry is made where this participant holds nothing (at a quiescent
  // point, coming online, or going offline: Participant's #lookForDeaths and #offline), as a
  // collect must be.
  if (!core.participant.drainBacklog()) return false; // more to free first: retried soon
  return !sweepDue(core, RETRY_PAUSE_MS, false);
}

/**
 * Under the mutex, stops the world (waiting at most `timeoutMs`) and sweeps; lowers R_SWEEP_DUE
 * once swept. Unless `always` (a reap, for deaths it has just seen), only if a sweep is still due
 * then. Without a stop of the world, it raises R_SWEEP_DUE again: a sweep that lowered it while
 * this thread waited for the mutex may have begun before the deaths this one is for. Returns
 * false when the world could not be stopped, or a participant parked inside a hold kept the
 * sweep off; true otherwise.
 */
function sweepDue(core: SyncCore, timeoutMs: number, always: boolean): boolean {
  const i32 = core.arena.i32;
  return core.locked(() => {
    if (!always && Atomics.load(i32, R_SWEEP_DUE) !== SWEEP_DUE) return true;
    if (!pauseWorld(core.registry, timeoutMs)) {
      Atomics.store(i32, R_SWEEP_DUE, SWEEP_DUE);
      return false;
    }
    try {
      // Left due for a later retry while a participant parked inside a hold may decode a block
      // the sweep would take for leaked; and while a seat holds a hand log no release has
      // settled (its owner died since the reap, and the pause does not wait for the dead, or its
      // release is under way in a thread that is no participant): a block the log names is
      // reached by nothing, and freed here, it would be put back or retired a second time by
      // the settling (a double free: tests/pool_test.ts on Bun, about two runs in ten). The next
      // reap releases the seat first.
      if (parkedHolding(core.registry) || unsettledLogs(core)) {
        Atomics.store(i32, R_SWEEP_DUE, SWEEP_DUE);
        return false;
      }
      sweep(core);
      // A hint still while a release is put off: the retries are what finish it (finishStuck).
      lowerSweepWord(core.registry, SWEEP_DUE);
      return true;
    } finally {
      resumeWorld(core.registry);
    }
  });
}

/**
 * Whether a seat holds a hand log that no release has settled yet: its owner is gone (or out of
 * calls) and the seat not yet released, or its release is under way (registry.ts deadSeats,
 * seatsReleasing).
 */
function unsettledLogs(core: SyncCore): boolean {
  const registry = core.registry;
  const logged = (index: number): boolean => seatLogged(registry, index);
  for (const { index } of deadSeats(registry)) if (logged(index)) return true;
  return seatsReleasing(registry, false, logged);
}

/**
 * What a SyncMap does as seat `index` is released (releaseSeat's `onReleased`), `deadOwner` its
 * gone owner or 0. The mutex's journal may name words of the dead owner's retire list (retireTx): a
 * step it died in must be rolled back before the list is repaired, and adopted or swept by
 * others, or the rollback would write into a list that may have been freed and reused by then.
 * So the mutex is taken whoever holds it: the dead owner (recovered here), or a thread that took
 * it over and is rolling the step back right now. And a sweep is due if the owner may have left
 * blocks in hand (`mayHold`, registry.ts seatMayHold): stopped inside a call that was not on a
 * read's fast path, mid-operation, with a block taken, an old record not yet retired, or the key
 * count not yet adjusted, unless its hand log says what it held, which is given back here
 * (_sync_hand_log.ts). One that stopped between calls, or in a read, holds nothing a sweep
 * would find: what it owns, its retire list and cache, the release makes orphans, which the
 * others' collects free.
 */
export function seatReleased(
  core: SyncCore,
  deadOwner: number,
  mayHold: boolean,
  index: number,
): void {
  if (deadOwner !== 0) core.locked(() => {});
  if (!mayHold) return;
  // A releaser marked terminating stops before it writes the seat's cache or list (as
  // finishRelease stops before its last stores): its release is left to others.
  checkAlive();
  if (!settleHandLog(core, index)) Atomics.store(core.arena.i32, R_SWEEP_DUE, SWEEP_DUE);
}

/**
 * Thrown by a marking made again for an error message (mark's `find`) at the first owner of the
 * block it looks for: it goes no further, so nothing past the point where the first marking
 * failed is read or written again.
 */
class Found {
  readonly what: string;
  constructor(what: string) {
    this.what = what;
  }
}

/** What the marking found: every block the map reaches. */
interface Marks {
  /**
   * Offset to the bytes the block was allocated with (as the allocator counts them); 16 for a
   * record or a key blob a sweep reached (it reads neither: see `record` in {@linkcode mark}).
   */
  readonly blocks: BlockMap;
  /** Keys with a value in the live tables. */
  readonly count: number;
  /**
   * What the block at an offset is, for an error message: found by marking again, so that no
   * description is made for the blocks that need none (a string for each of 600,000 retired
   * records made a `verify()` about twice as long: 600 to 851 ms against 307 to 346).
   */
  readonly whatOf: (offset: number) => string;
}

/**
 * Marks every block a SyncMap reaches. With `strict` (verify), a block reached twice (two
 * owners) is an error; without (a sweep), it is noted once. Under the mutex, the world stopped.
 *
 * A pending key (_sync_compute.ts) whose computing thread is gone would stay pending, holding
 * its entry in every dirty table to come, until a loadOrCompute of it took it over: the marking
 * gives it up (NIL, its waiters woken), as the dead thread would have had its `fn` thrown. A
 * verify() does too: `fn` runs with its participant offline, so a thread that died in it left
 * no sweep due (seatReleased), and its claim is not an inconsistency but a leftover.
 */
function mark(core: SyncCore, strict: boolean, find = -1): Marks {
  const a = core.arena;
  a.reach(a.buffer.byteLength);
  const i32 = a.i32;
  const blocks = BlockMap.ofHeap(a);
  const whatOf = (offset: number): string => {
    try {
      mark(core, strict, offset);
    } catch (error) {
      if (error instanceof Found) return error.what;
    }
    return "?";
  };
  const fail = (what: string): never => {
    throw new RangeError(`verify: SyncMap: ${what}`);
  };
  // The retire-list entry being marked (seat -1: none), named in messages about its blocks.
  let seat = -1;
  let entry = 0;
  let listed = 0;
  const describe = (what: string): string =>
    seat < 0 ? what : `${what} (seat ${seat}, entry ${entry} of ${listed})`;
  // Every block is 16-byte aligned, in the heap: checked before any of its words is read.
  const start = (offset: number, bytes: number, what: string): number => {
    if (!inViews(a, offset, bytes)) fail(`${describe(what)} at ${offset}: not a block of the heap`);
    return offset;
  };
  // `size` -1: not read (a sweep's record or blob: see `record`), the block's first 16 bytes
  // stand for it.
  const own = (offset: number, size: number, what: string): void => {
    const bytes = size < 0 ? 16 : blockSize(size);
    start(offset, bytes, what);
    if (offset === find) throw new Found(describe(what));
    const had = blocks.add(offset, bytes);
    if (had !== undefined && (strict || (size >= 0 && had !== bytes))) {
      fail(`${describe(what)} at ${offset} is owned twice (also as ${whatOf(offset)})`);
    }
  };
  // A record's and a blob's size is read from their first words, by verify: a sweep needs only
  // their offsets (it frees what the allocator's walk found unreached, at the size the walk
  // found), and reading a million records' first words, each a cache miss, was a third of a
  // sweep's marking.
  const record = (r: number, what: string): void => {
    own(start(r, 16, what), strict ? recordBytes(a, r) : -1, what);
    // A blob value's words follow its record's header, and the header's lo word says so.
    if (strict && isBlob(i32[(r >> 2) + REC_HI]) && i32[(r >> 2) + REC_LO] !== r + RECORD_HEADER) {
      fail(
        `${describe(what)} at ${r} points to its blob at ${i32[(r >> 2) + REC_LO]}, not ${
          r + RECORD_HEADER
        }`,
      );
    }
  };
  const entryKey = (e: number): void => {
    const hi = i32[(e >> 2) + E_KEY_HI];
    const lo = i32[(e >> 2) + E_KEY_LO];
    if (isBlob(hi)) {
      own(start(lo, 16, "a key blob"), strict ? blobSize(a, lo, hi) : -1, "a key blob");
    }
  };
  // Fixed blocks.
  const nseats = i32[R_NSEATS];
  own(i32[R_SEATS_BLOCK], nseats * SEAT_WORDS * 4 + 64, "the participant seats");
  own(i32[R_JOURNAL], journalWords(SYNC_JOURNAL_ENTRIES) * 4, "the mutex's journal");
  // Live tables: entries may be shared by both; records belong to their entry. The tables'
  // slots name the entries, which are then walked in address order, not the tables' order:
  // walked in the tables' order, each entry was a cache miss, and so was its record. Entries and
  // records are allocated in about the order their keys were first stored, from spans, so the
  // walk in address order reads memory mostly in sequence.
  const entries = BlockMap.ofHeap(a);
  const live = (header: number, what: string): void => {
    if (header === 0) return;
    own(header, TABLE_HEADER_BYTES, `the ${what} table's header`);
    const table = new Table(a, header, false, () => {}, core.tx);
    table.verify(
      (offset, bytes) => own(offset, bytes, `a ${what} table block`),
      (k) => void entries.add(i32[(k >> 2) + S_ENTRY], ENTRY_BYTES),
      // The keys are hashed and compared by verify only: a sweep, with the world stopped, needs
      // the blocks, and rehashing each key tripled its marking.
      strict,
    );
  };
  const read = Atomics.load(i32, R_READ) & ~AMENDED;
  live(read, "read");
  live(i32[R_DIRTY], "dirty");
  let count = 0;
  entries.forEach((e) => {
    own(e, ENTRY_BYTES, "an entry");
    entryKey(e);
    const p = Atomics.load(i32, e >> 2);
    if (p > EXPUNGED) {
      // An immediate (odd) is the entry's word alone: no block to own. Only a map whose values
      // use the `auto`, `float64` or `int32` codec makes one.
      if ((p & 1) === 0) {
        record(p, "a value record");
        // A value an immediate can hold is never in a record: compareAndSwap relies on it.
        const hi = i32[(p >> 2) + REC_HI];
        if (strict && core.immediates && isNumberSlot(hi)) {
          const value = numberOf(i32[(p >> 2) + REC_LO], hi);
          if (immediateOf(value) !== 0) {
            fail(`the value record at ${p} holds ${value}, an immediate`);
          }
        }
      } else if (strict && !core.immediates) {
        fail(`an immediate value ${p} in a map whose value codec makes none`);
      }
      count++;
    } else if (p < NIL && ownerDeclaredGone(-p)) {
      if (Atomics.compareExchange(i32, e >> 2, p, NIL) === p) Atomics.notify(i32, e >> 2);
    }
  });
  // Serials: the read table was the last made one (handles' entry memos trust that no two read
  // tables share a serial); a dirty table has none yet.
  // Checked by verify only: a sweep's marking must not stop at a word no block depends on.
  const serial = (h: number) => `${i32[(h >> 2) + T_SERIAL + 1]}:${i32[(h >> 2) + T_SERIAL] >>> 0}`;
  const last = `${i32[R_SERIAL + 1]}:${i32[R_SERIAL] >>> 0}`;
  if (strict && read !== 0 && serial(read) !== last) {
    fail(`the read table's serial ${serial(read)} is not the last one made, ${last}`);
  }
  if (strict && i32[R_DIRTY] !== 0 && serial(i32[R_DIRTY]) !== "0:0") {
    fail(`the dirty table has a serial (${serial(i32[R_DIRTY])}); it was made the read table`);
  }
  if (strict) checkTables(core, Atomics.load(i32, R_READ), fail);
  // Participants: retire lists and what they hold, caches, records in flight.
  const registry = core.registry;
  const high = seatHigh(registry);
  for (let i = 0; i < high; i++) {
    seat = -1;
    const { list, cache } = seatBlocks(registry, i);
    if (cache !== 0) {
      own(cacheBlock(a, cache), CACHE_BLOCK_BYTES, "a cache block");
    }
    // A parked participant's record in flight, unless its owner is gone: a thread that died
    // asleep in the mutex never publishes it (it would have unparked first), so it is garbage,
    // as a dead unparked participant's is.
    const inflight = seatInflight(registry, i);
    const owner = Atomics.load(i32, registry.seats + i * SEAT_WORDS + OWNER);
    if (inflight !== 0 && (owner === 0 || !ownerGone(owner))) {
      record(inflight, "a record in flight");
    }
    if (list === 0) continue;
    const w = list >> 2;
    const n = listCount(a, list);
    own(list, listBytes(a.i32[w + RL_CAPACITY]), "a retire list");
    seat = i;
    listed = n;
    for (let j = 0; j < n; j++) {
      entry = j;
      const tag = i32[tagAt(w, j)];
      const at = tag & ~15;
      switch (tag & 15) {
        case K_RECORD:
          record(at, "a retired record");
          break;
        case K_ENTRY:
          own(at, ENTRY_BYTES, "a retired entry");
          entryKey(at);
          break;
        case K_TABLE: {
          own(at, TABLE_HEADER_BYTES, "a retired table's header");
          const table = new Table(a, at, false, () => {}, core.tx);
          table.verify((offset, bytes) => own(offset, bytes, "a retired table block"), (k) => {
            const owns = i32[(k >> 2) + S_OWNS];
            if ((owns & 1) !== 0) {
              const e = i32[(k >> 2) + S_ENTRY];
              own(e, ENTRY_BYTES, "an entry a retired table owns");
              entryKey(e);
            }
            if ((owns & ~15) !== 0) record(owns & ~15, "a record a retired table owns");
          }, false);
          break;
        }
        default:
          fail(`retire list ${list} holds a tag of unknown kind: ${tag}`);
      }
    }
  }
  seat = -1;
  // What the seats' hand logs hold (see forEachHeld): reached by none of the above.
  for (let i = 0; i < high; i++) {
    forEachHeld(core, i, (b, bytes) => {
      if (blocks.has(b)) return;
      const what = `a block in seat ${i}'s hand log`;
      if (bytes < 0) record(b, what);
      else own(b, bytes, what);
    });
  }
  const inflight = core.inflightBlock;
  if (inflight !== 0 && !blocks.has(inflight)) record(inflight, "this record");
  return { blocks, count, whatOf };
}

/**
 * The blocks the marking of this thread's last sweep reached, and how many sweeps this thread has
 * made (for tests: the marking is what the world waits for).
 */
export const sweepsForTests: { count: number; reached: number } = { count: 0, reached: 0 };

/** A test's stand-in for a death declared while a sweep is under way, before its marking. */
let beforeMarking: (() => void) | undefined;

/** For tests: runs `hook` in every sweep, after its checks and before its marking. */
export function setMarkHookForTests(hook: (() => void) | undefined): void {
  beforeMarking = hook;
}

/** Frees what nothing reaches, and recounts the keys. Under the mutex, the world stopped. */
function sweep(core: SyncCore): void {
  const a = core.arena;
  // The heap first: taking the allocator lock rolls back a step a dead thread cut short, and
  // such a step may have switched a seat's retire list or cache word (Participant.makeRoom,
  // freeCache). Marked before, the word as the dead thread left it would be followed, and the
  // block the rollback makes the seat's again would be freed as unreached.
  const heap = underLock(a, () => verifyHeap(a));
  beforeMarking?.();
  const { blocks: reached, count } = mark(core, false);
  sweepsForTests.count++;
  sweepsForTests.reached = reached.size;
  const cached = new Set<number>();
  for (const [, cache] of caches(core)) {
    for (const b of verifyCache(a, cache, heap)) cached.add(b);
  }
  // The walks above may take longer than the grace after which a thread marked terminating
  // counts as gone: one marked meanwhile stops here, before the frees (each free checks again,
  // in underLock). What the walks wrote is harmless whoever wrote it: a gone computer's claim
  // given up (NIL), as any thread may give it up.
  checkAlive();
  heap.blocks.forEach((offset, bytes) => {
    if (!reached.has(offset) && !cached.has(offset)) lockedRelease(a, offset, bytes);
  });
  // The seats' words are their owners' alone: the base makes the sum the count.
  Atomics.store(a.i32, R_COUNT, (count - seatsKeys(core.registry)) | 0);
}

/** The caches of the participant seats: [seat, cache]. */
function caches(core: SyncCore): [number, number][] {
  const out: [number, number][] = [];
  const high = seatHigh(core.registry);
  for (let i = 0; i < high; i++) {
    const cache = seatBlocks(core.registry, i).cache;
    if (cache !== 0) out.push([i, cache]);
  }
  return out;
}

/**
 * Waits up to `ms` for the lock word at `index` (the map's mutex, the allocator's lock, or the
 * pause word: an owner id shifted left by `shift`) to be free, or its holder gone, before
 * verify() needs it: a holder that never lets it go (a live thread stuck, or a word corrupted to
 * name a thread that does not exist, which no thread can tell from a live one) fails verify()
 * instead of hanging it. It fails only when every look, one each WAIT_SLICE at most, found the
 * same holder for `ms`; a word that changes hands starts the count again. Parked meanwhile, as a
 * waiter in the mutex is (SyncCore's lock): the holder may be stopping the world (its own
 * verify(), a recovery), which must not wait for this thread. A word naming this thread is
 * corrupt: verify() runs in no step of the mutex (user code never runs under it) and holds no
 * allocator step (a pause of the world of its own, as #pause reads it, stops no one).
 */
function awaitWord(
  core: SyncCore,
  index: number,
  shift: number,
  what: string,
  ms: number,
  fail: (what: string) => never,
): void {
  const i32 = core.arena.i32;
  const part = core.participant;
  part.park(core.inflightBlock);
  try {
    let holder = 0;
    let since = 0;
    for (;;) {
      const w = Atomics.load(i32, index);
      const owner = w >>> shift;
      if (owner === 0 || ownerGone(owner)) return;
      if (owner === ownerId()) {
        if (index === core.registry.pauseWord) return; // a pause of its own parks no one here
        fail(`${what} word ${w} names this thread, which holds no step`);
      }
      const now = performance.now(); // monotonic, as every wait's clock in shmap
      if (owner !== holder) {
        holder = owner;
        since = now;
      } else if (now - since >= ms) {
        fail(
          `${what} has been held by thread ${owner - 1} for ${ms / 1000} s (a thread that ` +
            `never lets it go, or a corrupt word)`,
        );
      }
      Atomics.wait(i32, index, w, WAIT_SLICE);
      checkSelf(); // as after every wait in shmap: a thread terminated meanwhile goes no further
    }
  } finally {
    part.unpark();
  }
}

/** How long verify() waits for a word another thread holds before it fails. */
const VERIFY_WAIT_MS = 5000;

/**
 * What verify() waits for before its first step, bounded ({@linkcode awaitWord}): a world
 * stopped by another thread (the pause word), and the allocator's lock, which the reap it
 * begins with takes. A quiescent point, and every allocation, waits for them unbounded, as a
 * lock waits for a live holder; corrupt, they would hang verify(), which must throw.
 */
export function awaitVerifiable(core: SyncCore): void {
  const fail = (what: string): never => {
    throw new RangeError(`verify: SyncMap: ${what}`);
  };
  awaitWord(core, core.registry.pauseWord, 0, "the pause of the world", VERIFY_WAIT_MS, fail);
  awaitWord(core, H_ALLOC_LOCK, OWNER_SHIFT, "the allocator's lock", VERIFY_WAIT_MS, fail);
}

/**
 * Checks every invariant of a SyncMap and throws a RangeError naming the first broken one (see
 * SyncMap.verify). Stops the world for the check; throws if it cannot within a while.
 */
export function verifySyncMap(core: SyncCore): void {
  const fail = (what: string): never => {
    throw new RangeError(`verify: SyncMap: ${what}`);
  };
  // A reap writes (it releases seats, repairs what they held): as every call that may write, it
  // stops a thread recorded ending first (verify enters as a read does).
  checkAlive();
  reapDead(core);
  const deadline = performance.now() + 5000;
  // Until a sweep due could run: a participant parked inside a hold (see parkedHolding) waits
  // for the mutex this holds, so each try lets it go, and naps. Until no seat is a thread's that
  // died since the reap (a worker terminated meanwhile): reaped, and tried again.
  while (!verifyStopped(core, deadline, fail)) {
    nap();
    checkSelf();
    reapDead(core);
  }
}

/**
 * One try of {@linkcode verifySyncMap}'s check under the mutex, with the world stopped (by
 * `deadline`): false, having checked nothing, when a sweep is due and cannot run yet, or when a
 * seat is a thread's that died since the reap.
 */
function verifyStopped(core: SyncCore, deadline: number, fail: (what: string) => never): boolean {
  const a = core.arena;
  const i32 = a.i32;
  awaitWord(core, R_MU, OWNER_SHIFT, "the mutex", VERIFY_WAIT_MS, fail);
  return core.locked(() => {
    // At least a moment for the others to park, however long the tries before took.
    if (!pauseWorld(core.registry, Math.max(100, deadline - performance.now()))) {
      fail(
        `${pauseBlocker} kept using the map for 5 s; verify() needs it quiet for a moment`,
      );
    }
    try {
      // What dead participants left and no recovery could sweep yet is not an inconsistency:
      // sweep it now, with the world stopped.
      if (Atomics.load(i32, R_SWEEP_DUE) !== 0) {
        if (parkedHolding(core.registry)) {
          if (performance.now() > deadline) {
            fail("a participant decoding a record kept a sweep due from running for 5 s");
          }
          return false;
        }
        // Not over a hand log no release has settled (see sweepDue): the next try reaps first.
        if (unsettledLogs(core)) {
          if (performance.now() > deadline) {
            fail("a dead participant's hand log kept a sweep due from running for 5 s");
          }
          return false;
        }
        sweep(core);
        lowerSweepWord(core.registry, Atomics.load(i32, R_SWEEP_DUE));
      }
      // A death recorded since the reap is not a reap that failed: reap it, then check. Nor is
      // a seat of a thread declared gone that may still be in a call (a Deno zombie that has not
      // run since): each try looks at its thread again, until it can be reaped. Nor a seat being
      // released, whose cache and retire list are on their way back to the heap, and whose
      // blocks the check would find handed out and unreachable (helper-158: a verify() just
      // after a Deno worker was terminated, 7 in 12 right after its clear()).
      // A release is waited for a second at most (`deadline` is 5 s from the start), as it may
      // be a live thread's whose event loop is held up: past that the check goes on, as before.
      const now = performance.now();
      if (
        (deadSeats(core.registry).length !== 0 || settlingSeats(core.registry) ||
          (seatsReleasing(core.registry) && now <= deadline - 4000)) && now <= deadline
      ) {
        return false;
      }
      // The heap first, as in sweep: a dead thread's allocator step is rolled back before marking.
      const heap = underLock(a, () => verifyHeap(a));
      const { blocks, count, whatOf } = mark(core, true);
      const cached = new Set<number>();
      for (const [seat, cache] of caches(core)) {
        for (const b of verifyCache(a, cache, heap)) {
          if (blocks.has(b)) {
            fail(`block ${b} is both free in seat ${seat}'s cache and in use as ${whatOf(b)}`);
          }
          cached.add(b);
        }
      }
      checkHanded(blocks, heap.blocks, cached, fail);
      const counted = core.keyCount();
      if (counted !== count) fail(`the count says ${counted} keys but ${count} have a value`);
      if (core.tx.journal.intent !== 0) fail("the mutex's journal holds an unfinished intent");
      // Each step drops its unlisted list at its commit, and a rollback frees it.
      if (i32[R_UNLISTED] !== 0) fail(`R_UNLISTED names a list (${i32[R_UNLISTED]}) between steps`);
      // A thread that ended during the check (the test above passed) left its seat as any
      // death does, for a reap: not an inconsistency. Reaped, and checked again.
      for (const { index } of deadSeats(core.registry)) {
        if (performance.now() <= deadline) return false;
        fail(`participant seat ${index} still belongs to a thread that is gone`);
      }
      // An announcement is an epoch read from the epoch word (or 0: offline), never one after
      // it: a seat announcing the future would let a collect free what a reader still holds.
      const registry = core.registry;
      const epoch = Atomics.load(i32, registry.epochWord);
      for (let index = 0; index < seatHigh(registry); index++) {
        const announced = seatAnnouncement(registry, index);
        if (announced !== 0 && ((epoch - announced) | 0) < 0) {
          fail(`participant seat ${index} announces epoch ${announced}, after the map's ${epoch}`);
        }
      }
      return true;
    } finally {
      resumeWorld(core.registry);
    }
  });
}
