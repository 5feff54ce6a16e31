/**
 * Internal. Safe memory reclamation across workers: quiescent-state-based reclamation (QSBR)
 * with participant seats. The seats themselves (claiming, releasing, orphans, stopping the
 * world) are the registry's (registry.ts); a seat's retire list is laid out in retire_list.ts.
 *
 * The problem: a SyncMap reader loads a pointer (the read table, an entry's value record) and
 * then reads the block behind it with plain reads, taking no lock. A writer that replaces the
 * block must not free it while any reader may still be between that load and its last read of
 * the block, or the reader would decode memory that has been reused.
 *
 * The scheme:
 *
 * - A global epoch counter lives in the arena (word {@linkcode epochWord}).
 * - Every attached SyncMap object owns a participant seat: a claim word, an announcement word,
 *   and a retire list. The announcement is 0 while the participant is offline (between tasks:
 *   it holds no reference into shared memory) and otherwise the epoch it read at its last
 *   quiescent point, a moment between two operations when it held no reference either.
 * - A block unlinked from every shared structure is retired: appended to its retirer's own list,
 *   and stamped with an epoch loaded after the unlink, at the retirer's next quiescent point or
 *   collect (#stamp: the load made there anyway dates every retirement since). It may be freed
 *   once every online participant has announced a later epoch: such an announcement was made
 *   after the block became unreachable, so nothing that participant reads afterwards can lead
 *   to it.
 * - Participants announce at the start of one operation in {@linkcode QUIESCE_EVERY} (a local
 *   countdown, no atomics in between), and go offline in a microtask queued when they come
 *   online, that is when the current task ends. A worker that stops calling the map therefore
 *   goes offline at once and never holds reclamation back; a worker that is gone holds it back
 *   only until its seat is released (the worker adapters do that when the worker exits).
 *
 * Cost on the hot path: no atomic operation. An operation checks its thread's census state
 * (checkAlive; a read leaves it to its quiescent points, see enterRead) and its own seat's
 * claim word with plain reads, and counts down a local field;
 * one in {@linkcode QUIESCE_EVERY} also loads the epoch and stores its announcement, and, when
 * it has retired blocks waiting, advances the epoch, scans the announcements and frees what is
 * safe.
 *
 * Bound: a participant frees its retired blocks at its quiescent points once every other online
 * participant has announced since, so the blocks waiting at any time are about what the
 * participants retired over three of their quiescent periods (one more while its retirements
 * wait to be stamped), {@linkcode QUIESCE_EVERY} operations each, plus anything retired while
 * some participant was inside one long synchronous task without calling the map.
 *
 * Epochs are 32-bit and compared with serial-number arithmetic, so they may wrap.
 *
 * @module
 */

import {
  cacheAllocate,
  cachedBytes,
  CacheLimits,
  cacheNext,
  cacheReady,
  cacheRelease,
  cacheTake,
  flushCache,
  freeCache,
  newCache,
  reachCache,
  repairCache,
} from "./alloc_cache.ts";
import { sizeClass } from "./alloc_layout.ts";
import * as alloc_layout from "./alloc_layout.ts";
import {
  allocate,
  bytesUsed,
  lockedRelease,
  lockedReleaseSpares,
  release,
  underLock,
} from "./allocator.ts";
import type { Arena } from "./arena.ts";
import {
  censusDeaths,
  checkAlive,
  checkAliveSlowAtEntry,
  checkSelf,
  endsAwaitedAt,
  fast,
  onStop,
  ownerDeclaredGone,
  ownerGone,
  ownerId,
} from "./census.ts";
import * as census from "./census.ts";
import { nap } from "./futex.ts";
import * as futex from "./futex.ts";
import * as journal_module from "./journal.ts";
import { MapFullError, TerminatedError } from "../errors.ts";
import {
  claimFree,
  generationOf,
  type Registry,
  releaseOwnSeat,
  releasingOf,
  seatAnnouncement,
  seatHigh,
  type Ticket,
} from "./registry.ts";
import * as registry_module from "./registry.ts";
import { epochAt, listBytes, listCount, moveEntry, tagAt } from "./retire_list.ts";
import * as retire_list from "./retire_list.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { SMALL_MAX } = alloc_layout;
const { C_COUNT } = census;
const { WAIT_SLICE_MS } = futex;
const { J_HAND, J_HAND_SEAT } = journal_module;
const {
  ANNOUNCE,
  CACHE,
  CLAIM,
  HAND,
  HAND_COUNTED,
  HAND_ENTRY,
  HAND_NEW,
  HAND_OLD,
  HAND_STEP,
  HAND_SWAP,
  HAND_TAKEN,
  INFLIGHT,
  LIST,
  OWNER,
  PARKED,
  PARKED_CLEAN,
  PARKED_HOLDING,
  SEAT_FREE,
  SEAT_IN_USE,
  SEAT_WORDS,
} = registry_module;
const { RL_CAPACITY, RL_COUNT, UNSTAMPED } = retire_list;

/** Operations between two quiescent points of a participant. */
export const QUIESCE_EVERY = 64;
/** Retired blocks a participant lets accumulate before it tries to free them early. */
const RETIRE_BATCH = 64;
/** Entries of a sweep between two of its announcements (a power of two). */
const SWEEP_ANNOUNCE_EVERY = 256;
/**
 * How many participants of a thread may wait for the end of the task to go offline before a
 * new SyncMap takes the oldest offline early (Participant.shedOnline).
 */
const ONLINE_MAX = 64;
/**
 * Most blocks a collect at a quiescent point ({@linkcode Participant}'s #quiesce, and
 * collectSoon's) frees from each list it sweeps: about a millisecond of frees here. A backlog
 * that a stalled participant held back (two million blocks after a second's stall,
 * bench/stall_backlog.ts) is freed in slices, one at each quiescent point, rather than in one
 * call that stalls its caller for hundreds of milliseconds; so is the backlog a reap or a
 * sweep's retry frees before it sweeps (drainBacklog). The collects made because room ran short
 * (memory, or the retire list's: makeRoom, even at a quiescent point) and the one made as a
 * participant goes offline free all they can. The budget is per list: a collect also frees up to
 * as many from each orphan's list.
 */
export const COLLECT_BUDGET = 8192;
/**
 * A collect that had to keep this many blocks or more (a participant held them back) notes the
 * latest epoch among them; every quiescent point after it looks whether every other
 * participant has announced a later one, and collects at once when so. Fewer wait for the
 * pending count to reach #collectAt, as before.
 */
const DRAIN_MIN = 1024;
/**
 * Most blocks one operation retires. {@linkcode Participant.enter} makes room for them before
 * the operation changes anything, so that retiring never allocates and never fails.
 */
export const RETIRES_PER_OP = 4;
/**
 * Blocks a SyncMap clear retires: its two tables. A clear, the way out of a full map, needs no
 * more room than that ({@linkcode Participant.enterClear}); the calls before it are stopped by a
 * quiescent point that cannot grow the list (the map full, a laggard holding the retired
 * blocks back) with room usually left, since their budget counts {@linkcode RETIRES_PER_OP} a
 * call and most retire one or two. Where it is short, the clear grows the list first.
 */
export const CLEAR_RETIRES = 2;
/**
 * The capacity a retire list starts with, and keeps between bursts: room for a whole quiescent
 * period's retirements, so that the countdown to the next quiescent point (which stops where
 * the room could run out) is not cut short for calls that retire nothing, such as loads.
 */
const LIST_MIN = QUIESCE_EVERY * RETIRES_PER_OP;

/** What Participant.#moveList did: moved the list; found the seat not its own; found LIST moved. */
const LIST_MOVED = 0, SEAT_LOST = 1, LIST_CHANGED = 2;

/**
 * How long one back-pressure wait is meant to last (Participant's #awaitLaggards): an
 * allocation that found the map full, with retired blocks waiting, waits about this long for the
 * participants that hold them back before it throws MapFullError: {@linkcode WAIT_NAPS} sleeps
 * of a millisecond, ending {@linkcode WAIT_CAP} times this past its deadline at the latest.
 */
export const BACKLOG_WAIT_MS = 20;
/** Sleeps of a millisecond one call's back-pressure waits make at most (#awaitLaggards). */
const WAIT_NAPS = 20;
/**
 * Times one call's back-pressure waits send it to try again at most: memory freed by others
 * that one try after another still finds short means a map full of live data, which must
 * answer MapFullError promptly.
 */
const WAIT_RETRIES = 2;
/**
 * One call's back-pressure waits end at the latest this many times {@linkcode BACKLOG_WAIT_MS}
 * past its deadline, however few sleeps they made (a thread descheduled between them, or a
 * collect after each sleep that walks a long list: with a laggard busy in a task of its own
 * holding a 256 MiB map's backlog, twenty sleeps and their collects took 1.4 s).
 */
const WAIT_CAP = 2;

/**
 * The first retry of a deferred sweep comes this long after the attempt that could not stop
 * the world; each retry that fails to stop it doubles the delay, up to
 * {@linkcode SWEEP_RETRY_MAX_MS}. A retry that did not try (a backlog still being freed, a
 * release still under way) comes again after this shortest delay.
 */
const SWEEP_RETRY_MIN_MS = 100;
/** How long after a look that found a thread terminating, not yet gone, the next one comes. */
const ENDS_LOOK_MS = 100;
const SWEEP_RETRY_MAX_MS = 10_000;

/** The message of V8's RangeError for a stack overflow (Deno, Node). */
const V8_OVERFLOW = "Maximum call stack size exceeded";
/** The same for JavaScriptCore (Bun). */
const JSC_OVERFLOW = "Maximum call stack size exceeded.";

/**
 * Holds under way in this thread, over all its participants ({@linkcode Participant.hold}).
 * While one is, no participant of this thread reaps or sweeps: a stop of the world skips every
 * participant of the calling thread, and the sweep's marking sees only its own structure's
 * record in flight, so a sweep run from user code nested in one participant's call (a second
 * SyncMap object of the same map, called from a user codec's decode) would free a record the
 * outer call still holds unpublished.
 */
let threadHolds = 0;

/** Whether some participant of this thread is inside a {@linkcode Participant.hold}. */
export function holding(): boolean {
  return threadHolds !== 0;
}

/**
 * Frees a retired block; `tag` is what {@linkcode Participant.retire} was given. Returns true
 * when the free was a bulk one, many blocks at once (a table with the many keys it owns), after
 * which the collect gives its cache and the spare spans back (Participant's #giveBack).
 */
export type Free = (tag: number) => boolean;
/** Serial-number comparison of epochs: whether `a` comes before `b`. */
function before(a: number, b: number): boolean {
  return ((a - b) | 0) < 0;
}

/**
 * One attached SyncMap object's share in reclamation. Its methods run on the owning thread
 * only (releaseSeat, in registry.ts, runs on any).
 */
export class Participant {
  readonly arena: Arena;
  readonly registry: Registry;
  /** Index of this participant's seat. */
  readonly index: number;
  /**
   * The word index of this seat's PARKED, for callers that must clear it written out, with no
   * call, in a `catch` where a stack overflow cut the unpark short (SyncCore's mutex).
   */
  readonly parkedAt: number;
  #free: Free;
  #online = false;
  /**
   * Calls {@linkcode enter} may take on its fast path before it must do more: 0 while offline,
   * else at most {@linkcode QUIESCE_EVERY} and never more than the retire list's room covers
   * at {@linkcode RETIRES_PER_OP} a call. One counter stands for all three conditions.
   */
  #countdown = 0;
  /**
   * Calls into user code (a user codec's decode) under way while this participant holds
   * references into shared memory. That code may call the map; while it runs, no quiescent
   * point may be made, since the caller still holds its references.
   */
  #holds = 0;
  #closed = false;
  /** Word index of this seat. */
  #seat: number;
  /** Retired blocks waiting, as a local copy of the shared list's length. */
  #pending = 0;
  /**
   * Entries of the retire list below this index carry their epoch; those from it to
   * {@linkcode #pending} are {@linkcode UNSTAMPED} until {@linkcode #stamp} gives them one.
   */
  #stamped = 0;
  /** Free places in the retire list, a local copy. */
  #room = 0;
  /**
   * Pending count at which a quiescent point tries to free: half as much again as the last try
   * had to keep, so that while some participant stalls, trying costs amortized O(1) per
   * retirement, and once it moves on, the pending count shrinks back.
   */
  #collectAt = RETIRE_BATCH;
  /**
   * The latest epoch among the blocks the last collect had to keep, when they were
   * {@linkcode DRAIN_MIN} or more; else 0. Once every other participant has announced a later
   * epoch, all of them can be freed: the backlog of a stall is then collected at the next
   * quiescent point, not once half as many again have been retired (which held up to one and a
   * half times the stall's backlog for as long again). After slices that went on from where the
   * last stopped ({@linkcode #resumeAt}), the blocks retired meanwhile, above it, are not
   * counted: at worst one collect comes early, and it counts them.
   */
  #keptNewest = 0;
  /** The latest epoch of an entry the last {@linkcode #sweep} kept (0: none). */
  #sweptNewest = 0;
  /** The same for the last sweep of this participant's own list. */
  #ownNewest = 0;
  /**
   * Where the last {@linkcode #sweep} stopped at its budget, with blocks left it could free: the
   * index of the entry it would have freed next; -1 when it walked to the end.
   */
  #sweptStop = -1;
  /**
   * Whether the last collect's sweep of the orphans' lists ({@linkcode #sweepReleased}) stopped
   * at its budget in one of them, with more of it to walk.
   */
  #orphansLeft = false;
  /**
   * The index of this participant's list at which its next collect goes on, after one stopped
   * at its budget; -1: from the top. Below it nothing has changed since (a list only grows at
   * its top between collects, and a move copies it in order), and above it lie the entries that
   * collect kept and those retired since, which the next full walk looks at again: going on from
   * here, each slice walks what it frees, not again what an earlier one kept.
   */
  #resumeAt = -1;
  /** This participant's allocation cache block (allocator.ts), or 0; a local copy. */
  #cache = 0;
  /** When the cache spills, class by class: this participant's own (alloc_cache.ts). */
  #limits: CacheLimits;
  /** The claim word of this participant's seat while it owns it. */
  #token: number;
  /** The claim word this participant's seat had as it was claimed: {@linkcode #token} until then. */
  readonly #claim: number;
  /**
   * This participant's seat, as a view of its own (16 words, fixed): the hot paths' reads and
   * writes of it (the claim checks, the hand word and log, the retire list's word) then index at
   * constants, which the engines check against a constant length. Measured with the hand log on
   * a store of a fraction: 1.10x to 1.25x the code before the log through the arena's view, 1.04x
   * to 1.16x through this one (medians, separate processes, Deno and Bun). The seats lie in the
   * buffer's first bytes, and a growable buffer grows in place, so the view is good for life.
   */
  readonly #own: Int32Array;
  /**
   * What a read compares the claim word with ({@linkcode enterRead}): {@linkcode #token} while
   * the seat's hand word is 0, and -1 (no claim word) while it is raised, so that the one
   * compare a read makes anyway sends it, the first time after a write, to lower the word
   * ({@linkcode #readMiss}). Invariant: the word is raised whenever this is -1 (-2 once the
   * thread is found terminated: the constructor's stop hook).
   */
  #readToken = -1;
  /**
   * Free what can be freed at the start of the next call, at most this many blocks (0: no
   * collect due): all after an allocation failed, {@linkcode COLLECT_BUDGET} after a step
   * retired much memory at once ({@linkcode collectSoon}).
   */
  #collectDue = 0;
  /** A free of the collect under way was a bulk one (see {@linkcode Free}). */
  #bulkFreed = false;
  /**
   * Set when a whole back-pressure wait (#awaitLaggards, {@linkcode BACKLOG_WAIT_MS}) freed
   * nothing: its laggard is not waiting for a core but busy elsewhere (a long task of its own).
   * So is a call whose waits were all spent, each followed by a try that failed again. No wait
   * is made again until a collect frees this participant's blocks.
   */
  #waitedInVain = false;
  /** The deadline of the call whose waits {@linkcode #napsLeft} counts. */
  #waitDeadline = 0;
  /** Naps the current call's back-pressure waits may still make. */
  #napsLeft = 0;
  /** Tries again the current call's back-pressure waits may still send it to. */
  #retriesLeft = 0;
  /**
   * Set when a list move (#moveList) threw other than MapFullError: its allocator step may have
   * been left unsettled (a stack overflow in its commit and again in its rollback releases the
   * lock poisoned), with LIST naming the new list until the lock's next holder rolls the step
   * back and frees that list. LIST is not trusted again until the lock has been taken
   * ({@linkcode #settle}).
   */
  #moveUnsettled = false;
  /** The census's change count when this participant last looked (census.ts). */
  #deaths = -1;
  /**
   * When this participant last looked for deaths: it looks again {@linkcode ENDS_LOOK_MS} later
   * if that look (or a later one of this thread's) found a thread terminating and not yet gone
   * (census.ts endsAwaitedAt).
   */
  #deathsLookedAt = 0;
  /**
   * Called at a quiescent point, or as this participant comes online, when the census has
   * changed since the last look: some thread of the process ended, and the structure may need
   * to reclaim what it held.
   */
  onDeaths: (() => void) | undefined;
  /**
   * Called at a quiescent point, or as this participant comes online, while the registry's
   * sweep word says a sweep is due and the backoff allows: the structure tries again the sweep
   * that an earlier recovery could not run (a live participant sat in one long task and could
   * not be stopped). Without it, the blocks a dead participant held stay allocated until the
   * census changes again. Returns true when it tried to stop the world and could not, which
   * doubles the delay to the next call; false when it swept, found no sweep due, or put the
   * sweep off for work the quiescent points do meanwhile (a slice of backlog left to free, a
   * release under way), after which the next call comes after the shortest delay.
   */
  onSweepDue: (() => boolean) | undefined;
  /** When, by `performance.now()`, this participant may next call {@linkcode onSweepDue}. */
  #sweepRetryAt = 0;
  #sweepDelay = SWEEP_RETRY_MIN_MS;
  /** A call was cut short by a stack overflow since the last look ({@linkcode noteThrown}). */
  #sweepOwed = false;
  /**
   * The microtask queued on coming online. It must not throw: no caller of the map can catch
   * what a microtask throws, and the host ends the process for it. What going offline throws
   * (a RangeError for corrupt memory, TerminatedError for a thread found terminated in a pause)
   * is kept for this participant's next call ({@linkcode defer}), and the participant goes
   * offline all the same, since it holds nothing between tasks: left announced, it would hold
   * reclamation back, and every stop of the world, for good.
   */
  #goOffline = (): void => {
    this.#offlineQueued = false;
    try {
      this.#offline();
    } catch (error) {
      if (this.#ours()) this.#withdraw();
      else this.#leave();
      this.defer(error);
    }
  };
  /**
   * This thread's participants that came online in this task, each to go offline as it ends
   * ({@linkcode #flush}), in the order they came; null where one left (closed) before the end.
   * An array with each participant's index ({@linkcode #dueAt}), never truncated, not a Set:
   * bench/task_cost.ts on Deno, a task of one SyncMap call, took 171 to 177 ns with a microtask
   * a participant, 232 to 355 with a Set, 182 to 187 so.
   */
  static readonly #due: (Participant | null)[] = [];
  /** How many of {@linkcode #due}'s slots are in use (those past it are null): never truncated. */
  static #dueLength = 0;
  /** Nulls in {@linkcode #due} below {@linkcode #dueLength}. */
  static #dueHoles = 0;
  /** {@linkcode #flush} is queued. */
  static #flushQueued = false;
  /** The microtask that takes this thread's participants offline as the task ends. */
  static #flush = (): void => {
    Participant.#flushQueued = false;
    const due = Participant.#due;
    // One that comes online again meanwhile (a pause's wait does not run user code; a
    // participant is listed once per coming online) is pushed, and visited.
    for (let i = 0; i < Participant.#dueLength; i++) {
      const participant = due[i];
      if (participant === null) continue;
      due[i] = null;
      participant.#dueAt = -1;
      participant.#goOffline();
    }
    Participant.#dueLength = 0;
    Participant.#dueHoles = 0;
  };
  /** This participant's index in {@linkcode #due}, or -1. */
  #dueAt = -1;

  /** Lists this participant to go offline as the task ends, and queues the microtask. */
  #queueOffline(): void {
    const due = Participant.#due;
    if (this.#dueAt < 0) {
      const at = Participant.#dueLength;
      if (at < due.length) due[at] = this;
      else due.push(this);
      Participant.#dueLength = at + 1;
      this.#dueAt = at;
    }
    if (!Participant.#flushQueued) {
      queueMicrotask(Participant.#flush);
      Participant.#flushQueued = true;
    }
  }

  /** Takes this participant, offline, off {@linkcode #due}: nothing of the thread's holds it. */
  #unqueueOffline(): void {
    const at = this.#dueAt;
    const due = Participant.#due;
    if (at < 0 || due[at] !== this) return;
    this.#dueAt = -1;
    due[at] = null;
    if (at === Participant.#dueLength - 1) Participant.#dueLength = at;
    else Participant.#dueHoles++;
  }

  /**
   * Takes the participants of this thread that came online in this task and are not in a call
   * offline early, oldest first, when more than {@linkcode ONLINE_MAX} are: as the microtask
   * would at the task's end, which the next call undoes. Called as a SyncMap is made, where no
   * map's call is on the stack but one that runs user code (`busy`): a loop that makes, uses and
   * drops maps in one task then keeps at most {@linkcode ONLINE_MAX} of them (and their memory)
   * alive for their going offline, not every one. O(1) amortized: a pass takes half, and packs
   * the list.
   */
  static shedOnline(): void {
    const due = Participant.#due;
    const length = Participant.#dueLength;
    let listed = length - Participant.#dueHoles;
    if (listed <= ONLINE_MAX) return;
    for (let i = 0; i < length && listed > ONLINE_MAX >> 1; i++) {
      const participant = due[i];
      if (participant === null || participant.#holds !== 0 || participant.busy?.() === true) {
        continue;
      }
      due[i] = null;
      participant.#dueAt = -1;
      listed--;
      participant.#goOffline();
    }
    let n = 0;
    for (let i = 0; i < length; i++) {
      const participant = due[i];
      if (participant === null) continue;
      due[i] = null;
      participant.#dueAt = n;
      due[n++] = participant;
    }
    Participant.#dueLength = n;
    Participant.#dueHoles = 0;
  }

  /** How many participants of this thread are due to go offline (tests). */
  static dueOfflineCount(): number {
    return Participant.#dueLength - Participant.#dueHoles;
  }

  /**
   * Whether a call of this participant's object is running user code (SyncAccess.nested): the
   * call is on the stack, and {@linkcode shedOnline} leaves the participant online.
   */
  busy: (() => boolean) | undefined;

  /**
   * An error of work done for this participant outside its calls, thrown by the next call's
   * {@linkcode enter} (see {@linkcode defer}); null when none.
   */
  #deferred: { readonly error: unknown } | null = null;
  /** The microtask that goes offline is queued: one is enough, however often this comes online. */
  #offlineQueued = false;
  /** Takes back the stop hook {@linkcode watchStop} set (census.ts onStop); null before. */
  #offStop: (() => void) | null = null;

  /**
   * Becomes the owner of the seat `ticket` claimed. `watch`: whether to watch for this thread's
   * stop at once ({@linkcode watchStop}); a new map's participant, whose memory nothing else
   * reaches yet, is watched only once its memory is shared.
   */
  constructor(registry: Registry, ticket: Ticket, free: Free, watch = true) {
    const arena = registry.arena;
    this.arena = arena;
    this.registry = registry;
    this.index = ticket.index;
    this.#token = ticket.word;
    this.#claim = ticket.word;
    this.#free = free;
    this.#limits = new CacheLimits(arena.maxBytes);
    this.#seat = registry.seats + ticket.index * SEAT_WORDS;
    this.#own = new Int32Array(arena.buffer, this.#seat * 4, SEAT_WORDS);
    this.parkedAt = this.#seat + PARKED;
    // Raised, as #readToken says: the first write then need not, and the first read lowers it.
    arena.i32[this.#seat + HAND] = 1;
    const list = arena.i32[this.#seat + LIST];
    // A released seat's list may lie past this thread's views (listCount reaches it).
    this.#pending = list === 0 ? 0 : listCount(arena, list);
    // An entry of a released seat's list that its owner left unstamped is stamped by the sweep
    // that meets it (#sweep).
    this.#stamped = this.#pending;
    this.#room = list === 0 ? 0 : arena.i32[(list >> 2) + RL_CAPACITY] - this.#pending;
    this.#cache = arena.i32[this.#seat + CACHE];
    // So may its cache: the cache's reads and writes do not reach it block by block.
    if (this.#cache !== 0) reachCache(arena, this.#cache);
    if (watch) this.watchStop();
  }

  /**
   * Has this participant stop using shared memory at its next call once this thread is found
   * terminated (census.ts onStop), or at once if it was. Once; not after {@linkcode close}.
   *
   * The hook holds this participant strongly, until its close takes the hook back: a WeakRef
   * made here kept the participant, and with it the map's memory, alive to the end of the task
   * that made it (ECMAScript AddToKeptObjects), so a loop that made and closed maps kept every
   * one (helper-170). A participant whose object is collected unclosed is closed by the
   * object's finalizer (maps/_sync_attached.ts), which holds it as strongly; one whose memory
   * nothing else can reach (a new map whose handle was never read) sets no hook, and goes with
   * its object.
   */
  watchStop(): void {
    if (this.#offStop !== null || this.#closed) return;
    // Both tokens made to match no claim word, written out: no call between the hook's entry
    // and them, where a stack overflow would leave the tokens valid. The read token is -2, not
    // -1 (which says the hand word is raised): a write under way may go on to its step's end
    // (SyncCore.locked lets a step that committed finish) and on to unlink a record, and its
    // raiseHand must still raise the word (helper-139). Not raised here: a Deno zombie stopped
    // at a read's quiescent point holds nothing, and its death needs no sweep.
    this.#offStop = onStop(() => {
      this.#token = -1;
      this.#readToken = -2;
    });
  }

  /**
   * Keeps `error`, thrown by work done for this participant where no caller could catch it (a
   * microtask, a timer, a worker's end event), for this participant's next call on this
   * thread to throw as it begins, before it touches shared memory. The first such error is
   * kept until then; later ones are dropped, and so is any when no call comes. Costs the fast
   * path nothing: the countdown set to 0 sends the next call down the slow path, which throws.
   */
  defer(error: unknown): void {
    this.#deferred ??= { error };
    this.#countdown = 0;
  }

  /**
   * Called with what a call of this participant's structure threw, in the `catch` of its
   * outermost frame, before the error goes on to the caller. A stack overflow can throw from
   * any call (user code that recursed deeply called the map near the stack's limit), also from
   * the steps without a lock: between a block's allocation and its publication or free, or
   * between the exchange that replaced a record and its retirement. Such a block is handed out
   * and reachable from nowhere: a sweep, which frees every block nothing reaches as for a dead
   * thread's leftovers, is owed. The map's sweep word is raised at once, so that other threads'
   * quiescent points and any thread's verify() sweep; this participant runs the sweep itself as
   * it goes offline at the end of the task, where the stack is short, and not at its next calls,
   * which may be as near the limit (code that retries writes as its stack unwinds) as this one.
   * Owed first, then raised: an overflow in the raise leaves it owed, and going offline, closing
   * and verify() raise what is owed.
   *
   * Other errors leave nothing behind (every step frees or publishes what it holds as it
   * unwinds), so only the engines' own overflow error counts: V8's and JavaScriptCore's
   * RangeError messages, compared as strings, so that nothing here calls a function while the
   * stack is near its limit. The caller's frame is at least one call above the one that
   * overflowed, so this call's small frame fits where anything was left owed.
   */
  noteThrown(error: unknown): void {
    // The test first: it may run user code (the error may be the user's, a Proxy's trap or a
    // getter of its message), for as long as that code likes, in a zombie.
    const overflow = error instanceof RangeError &&
      (error.message === V8_OVERFLOW || error.message === JSC_OVERFLOW);
    if (!overflow) return;
    this.#sweepOwed = !this.#closed;
    const i32 = this.arena.i32;
    // A hand log the call could not drop (an overflow in the catch that drops it) must not say
    // what the call held once what it names moves on: raised instead.
    if (Atomics.load(i32, this.#seat + CLAIM) === this.#token) this.dropLog();
    // Not parked, whatever was cut short: an unpark cut short as it was entered would leave
    // this participant taken for parked by the sweep raised next, while it runs on. Only on a
    // seat still this participant's: one released while that code ran (a zombie's, after the
    // grace) may be another owner's, parked with a record in flight that a sweep must keep.
    if (
      !this.#closed && i32[this.parkedAt] !== 0 &&
      Atomics.load(i32, this.#seat + CLAIM) === this.#token
    ) {
      Atomics.store(i32, this.parkedAt, 0);
    }
    Atomics.store(i32, this.registry.sweepWord, 1);
  }

  /**
   * Marks the sweep that {@linkcode noteThrown} left owed due in the map now (the sweep word),
   * for a caller about to sweep what is due (verify), or about to go for good (close).
   */
  raiseOwedSweep(): void {
    if (!this.#sweepOwed) return;
    Atomics.store(this.arena.i32, this.registry.sweepWord, 1);
    this.#sweepOwed = false;
  }

  /**
   * Makes the next quiescent point call {@linkcode onDeaths} whether or not the census changed
   * since the last, and makes the next {@linkcode enter} take the slow path toward it.
   */
  deathsDue(): void {
    this.#deaths = -1;
    this.#countdown = 0;
  }

  /**
   * Looks for the seats of gone threads now, as the next call would: a read's entry with the
   * deaths due, whose quiescent point reaps them ({@linkcode onDeaths}) where this thread holds
   * nothing a reap must not sweep, and leaves them for a later point otherwise.
   */
  reapNow(): void {
    this.deathsDue();
    this.enterRead();
  }

  /**
   * Marks this participant parked, in a lock of the map, holding no shared reference but
   * `inflight`, a record it allocated and has not published (0: none). Lets a stop of the world
   * go on without it.
   */
  park(inflight: number): void {
    // A closed participant's seat may be another's by now (a share's release that rolls a
    // dead worker's step back runs on the object that shared it, closed or not).
    if (this.#closed) return;
    const i32 = this.arena.i32;
    i32[this.#seat + INFLIGHT] = inflight;
    // Inside a hold (a call nested in user code that an outer call of this participant runs
    // while it decodes a record), this participant holds that record too, which the seat does
    // not name: parked so, it lets the world stop (a verify checks around it) but no sweep run.
    Atomics.store(i32, this.#seat + PARKED, this.#holds !== 0 ? PARKED_HOLDING : PARKED_CLEAN);
  }

  /** Ends {@linkcode park}. */
  unpark(): void {
    if (this.#closed) return; // as park
    Atomics.store(this.arena.i32, this.#seat + PARKED, 0);
  }

  /**
   * Called at the start of every operation, before it reads shared memory: comes online if
   * offline, and makes a quiescent point once in {@linkcode QUIESCE_EVERY} calls. Makes room
   * for {@linkcode RETIRES_PER_OP} retirements, so it may throw MapFullError.
   */
  enter(): void {
    // checkAlive written out (census.ts, `fast`): V8 left the call in large callers.
    const f = fast;
    if (f.head[C_COUNT] !== f.seen) checkAliveSlowAtEntry();
    // One plain read of this participant's own seat line: has the share been released?
    if (this.#own[CLAIM] !== this.#token) this.#releasedError();
    const c = (this.#countdown - 1) | 0;
    this.#countdown = c;
    if (c <= 0) this.#slowEnter();
  }

  /**
   * Raises this participant's hand word (registry.ts HAND) unless it is raised: called by a
   * write before it takes a block in hand (allocates one, or unlinks one it will retire), so
   * that a death from then on is swept; the next read lowers it ({@linkcode #readMiss}). A
   * field's test in a loop of writes: the word is written by the first write after a read.
   * Not in {@linkcode enter}, which every write calls: there it cost `compareAndSwap` of
   * immediates, which takes nothing in hand, 1.11x to 1.15x on Deno (same run).
   */
  raiseHand(): void {
    if (this.#readToken !== -1) this.#setHand();
  }

  /** {@linkcode raiseHand}'s write: the word raised, and the read token made to miss. */
  #setHand(): void {
    this.#readToken = -1;
    this.#own[HAND] = 1;
  }

  /**
   * The hand log of a `swap` about to exchange `old`, a value (a record or an immediate), in entry
   * `e` for `record`, one of them a record (registry.ts HAND_SWAP), called before each
   * compare-exchange it tries: a death from here until {@linkcode endLog} is settled from the log
   * by the seat's release, with no sweep (maps/_sync_hand_log.ts). Returns whether it logged: a
   * record not taken under this call's log (a large one, or one taken before the cache was made)
   * raises the word instead, and its death is swept.
   */
  logSwap(e: number, old: number, record: number): boolean {
    const own = this.#own;
    const hand = own[HAND];
    if ((record & 1) === 0) {
      // Taken under this call's log: HAND_TAKEN (or HAND_SWAP from its earlier try) naming it.
      if ((hand & HAND_TAKEN) === 0 || own[HAND_NEW] !== record) {
        this.dropLog();
        return false;
      }
      own[HAND_ENTRY] = e;
      own[HAND_OLD] = old;
      own[HAND] = hand | HAND_SWAP;
    } else {
      // The word is 0 or 1 here (a call opens a log from either), or this call's HAND_SWAP of an
      // earlier try, whose words name the same entry and new value; or HAND_TAKEN of the call
      // this one is nested in (a built-in the user patched, calling this map from the outer
      // call's record copy), whose log must not be written over: raised, which the outer call's
      // logSwap finds. Under a hold, raised whatever the word says (see allocateLogged).
      if ((hand & 3) === HAND_TAKEN || this.#holds !== 0) {
        this.dropLog();
        return false;
      }
      own[HAND_ENTRY] = e;
      own[HAND_OLD] = old;
      own[HAND_NEW] = record;
      own[HAND] = HAND_SWAP;
      this.#logged();
    }
    return true;
  }

  /**
   * The hand log of a delete about to exchange record `old` in entry `e` for nil (HAND_SWAP, with
   * HAND_NEW nil), called before each compare-exchange it tries; `open`: this call's log is open
   * from the try before. Returns whether it logged: an immediate takes nothing in hand, but its
   * key count does, so the word is raised (a death before the count is swept), as it is when a
   * log of the call this one is nested in is open (a built-in the user patched, calling this map
   * from a store's record copy), whose log must not be written over, or under a hold (see
   * {@linkcode allocateLogged}).
   */
  logDelete(e: number, old: number, open: boolean): boolean {
    const own = this.#own;
    if ((old & 1) !== 0 || this.#holds !== 0 || (!open && (own[HAND] & HAND_TAKEN) !== 0)) {
      this.dropLog();
      return false;
    }
    own[HAND_ENTRY] = e;
    own[HAND_OLD] = old;
    own[HAND_NEW] = 0;
    own[HAND] = HAND_SWAP;
    this.#logged();
    return true;
  }

  /** A delete's exchange made and its key counted out ({@linkcode logDelete}): said so. */
  logCounted(): void {
    this.#own[HAND] = HAND_SWAP | HAND_COUNTED;
  }

  /**
   * Ends the hand log of the calling `swap`: the call holds nothing in hand any more (its
   * exchange published the new value and retired the old, or a later try of it exchanges two
   * immediates), and the word is lowered. So every call leaves the word 0 or 1, and the next log
   * is written over no other: a log's words written over another's, a death between them would
   * leave the settling a mix of the two (helper-141).
   */
  endLog(): void {
    // Nested in a call that holds a block nothing reaches (a store's record copy, whose built-in
    // the user patched to call this map): that call's log is gone, written over or raised, and
    // the word must say so until it ends (raised), not that nothing is in hand.
    if (this.#holds !== 0) {
      this.#setHand();
      return;
    }
    this.#own[HAND] = 0;
    if (this.#readToken === -1) this.#readToken = this.#token;
  }

  /**
   * Closes a hand log that no longer says what the call holds (it goes on to an exchange that
   * changes the key count, or under the mutex with a value the log cannot hand to the step, or it
   * threw): the word is raised, and a death from here on is swept, as for any write.
   */
  dropLog(): void {
    this.#setHand();
  }

  /**
   * Keeps the hand log of a `swap` whose record `record` goes on to the mutex's step (the read
   * table lacks its key, or has it expunged): the log says again that the record is taken and
   * not published (HAND_TAKEN, from the HAND_SWAP of a try whose entry was expunged since), so
   * that a death before the step, or while waiting for the mutex, is settled by putting the
   * record back. When the log does not name `record` (an immediate, a record taken unlogged, or
   * a log a nested call raised), the word is raised instead.
   */
  keepTaken(record: number): void {
    const own = this.#own;
    const hand = own[HAND];
    if ((hand & HAND_TAKEN) === 0 || (record & 1) !== 0 || own[HAND_NEW] !== record) {
      this.dropLog();
      return;
    }
    own[HAND] = (hand & ~3) | HAND_TAKEN;
  }

  /**
   * The catch of a write that took record `record` under its hand log (`swap`, `loadOrStore`):
   * returns true, leaving the record to the log, when `error` stopped this thread for good (a
   * Deno worker's `terminate()`, met at a census check) with the log saying the record is taken
   * and unpublished (HAND_TAKEN, not handed to a step), so that its seat's release puts it back
   * with no sweep; otherwise raises the word, before the caller frees the record (a log naming it
   * as taken would have a settling free it again), and returns false.
   */
  leftToLog(error: unknown, record: number): boolean {
    const own = this.#own;
    if (
      error instanceof TerminatedError && (own[HAND] & (HAND_STEP | 3)) === HAND_TAKEN &&
      own[HAND_NEW] === record
    ) return true;
    this.dropLog();
    return false;
  }

  /**
   * Hands record `record`, which this participant's log holds taken ({@linkcode keepTaken}), to
   * the mutex's step that adds its key, whose journal begins at word `journal` of `i32`: the
   * journal names the record and this seat (journal.ts J_HAND, J_HAND_SEAT), then the log says
   * so (registry.ts HAND_STEP). Called under the mutex, just before the step writes the record
   * into the key's new entry. A log that names no such record (raised by a collect before the
   * step ran again) hands nothing, and a death in the step is swept.
   */
  stepHand(record: number, i32: Int32Array, journal: number): void {
    const own = this.#own;
    const hand = own[HAND];
    if ((hand & 3) !== HAND_TAKEN || own[HAND_NEW] !== record) return;
    i32[journal + J_HAND_SEAT] = this.#seat;
    i32[journal + J_HAND] = record;
    own[HAND] = hand | HAND_STEP;
  }

  /**
   * The step this participant's record was handed to ({@linkcode stepHand}) is being rolled back
   * by this thread (SyncCore.locked): the record is in hand again, and the log says so before the
   * rollback writes anything, so that a death from here on puts it back.
   */
  unstepHand(): void {
    const own = this.#own;
    const hand = own[HAND];
    // Not on a seat released meanwhile (a Deno zombie woken in a step taken over past the grace,
    // its seat claimed again): its new owner's log is not this call's (helper-143). Compared with
    // the claim this participant made, not its token: a thread stopped in the step (a zombie at
    // an allocator step's census check) has its token made stale, and its log must still say
    // the record is in hand (a release under way, its grace running, is of that claim too).
    if ((hand & HAND_STEP) !== 0 && this.#claimed(own[CLAIM])) own[HAND] = hand & ~HAND_STEP;
  }

  /**
   * A log opened: the word holds it, which is not raised, so the read token must not say raised
   * (see {@linkcode #readToken}'s invariant): a write that takes blocks in hand while it is open
   * (a call nested in user code) raises the word over it, and the log's owner then finds its log
   * gone (logSwap) and goes on raised. A thread found terminated keeps its -2.
   */
  #logged(): void {
    if (this.#readToken === -1) this.#readToken = this.#token;
  }

  /**
   * {@linkcode enter}'s two checks again, for a call that ran user code (a codec's encode, a
   * getter of the value encoded) after it entered and before it writes anything: the census
   * (a thread recorded terminating stops here) and the claim (a share released, or closed, by
   * that code or meanwhile). A Deno zombie may run in such code for as long as it likes, and
   * its seat is released once it has run past the grace (census.ts ownerOutOfCalls): its end was
   * recorded before the grace began, so the census check throws here, before the call takes a
   * block from the seat's cache or retires into its list.
   */
  recheck(raise = true): void {
    this.#enterChecks();
    // And that code may have run a read of this participant, which lowered the hand word: the
    // write raises it (again) before it takes anything (registry.ts HAND). SyncCore.newRecord
    // calls this before it allocates; a write that logs what it takes (`raise` false) need not,
    // since the log is written before the block is taken (allocate).
    if (raise) this.raiseHand();
    // That code may also have left this participant offline: a nested loadOrCompute withdraws
    // while its `fn` runs, and one that throws before it comes online again (an error deferred
    // to its next call, thrown by that call's enter) returns with it withdrawn. This call
    // holds nothing yet, and comes online again before it writes: a call that went on withdrawn
    // would be protected from no collect, waited for by no stop of the world, and, dying there,
    // leave what it held in hand to no sweep (registry.ts seatMayHold).
    if (!this.#online) this.#comeOnline();
  }

  /** {@linkcode enter}'s two checks, called: the census, then the claim. */
  #enterChecks(): void {
    const f = fast;
    if (f.head[C_COUNT] !== f.seen) checkAliveSlowAtEntry();
    if (this.#own[CLAIM] !== this.#token) this.#releasedError();
  }

  /**
   * {@linkcode enter} for an operation that writes no shared memory unless it takes the mutex
   * (SyncMap `load`, `loadOk`, `has`), without the census check: a thread marked terminating
   * (a Deno zombie) may go on reading, which harms no one, and it is still stopped
   *
   * - at the mutex: SyncCore.entryLocked checks the census before it locks;
   * - at its next quiescent point, one call in {@linkcode QUIESCE_EVERY} (#slowEnter checks),
   *   before it writes its announcement;
   * - at the claim check below once its seat is released (after the grace), where
   *   #releasedError stops it as the census check would have: from then on its announcement
   *   no longer holds back the blocks it could read.
   *
   * Until its seat is released, what it reads is protected as any participant's reads are.
   */
  enterRead(): void {
    // The claim check, against the read token: a mismatch is also how the first read after a
    // write learns that the hand word is raised (#readMiss lowers it), at no cost to the rest.
    if (this.#own[CLAIM] !== this.#readToken) this.#readMiss();
    // (n - 1) | 0, not --n: JavaScriptCore checks -- for overflow past int32 (hash_memo.ts
    // #hits); as in enter, 0.95x a SyncMap call on Bun, V8 alike.
    const c = (this.#countdown - 1) | 0;
    this.#countdown = c;
    if (c <= 0) this.#slowEnter(true);
  }

  /**
   * {@linkcode enterRead}'s claim word did not match the read token: the share was released,
   * or the hand word is raised. A read's fast path holds nothing in hand, so a death in it needs
   * no sweep (registry.ts HAND): the word is lowered, with a plain write of this participant's
   * own line, once per run of reads. A read nested in user code that a write runs lowers it too:
   * a write runs such code before it takes a block (and raises the word again after it:
   * recheck), or after it has published, retired or freed every block it took.
   */
  #readMiss(): void {
    const own = this.#own;
    if (own[CLAIM] !== this.#token) this.#releasedError();
    // A read nested in a call of this participant that holds (a decode, or a record's copy with
    // the record in hand: SyncCore's #copyString) leaves the word as it is, raised or a log.
    if (this.#holds !== 0) return;
    own[HAND] = 0;
    this.#readToken = this.#token;
  }

  /**
   * A quiescent point, and room for the calls up to the next. `read`: for a call that retires
   * nothing (enterRead), which a full map must not fail: room it cannot make is left for the
   * next call that needs it (the countdown counts only the room there is), and it waits for no
   * laggard.
   */
  #slowEnter(read = false): void {
    // What a quiescent point does that takes blocks in hand raises the hand word (collect,
    // makeRoom: the frees, a list moved; a reap's sweep is under the mutex, whose recovery
    // sweeps); lowered again only as the point returns, since one that throws may have stopped
    // with a block in hand. A quiescent point that only announces leaves it 0: in a loop of
    // reads, a death there needs no sweep either. The read token says what the call left: a
    // raise changes it only from #token (the word lowered), never from -1 (raised already).
    const readToken = this.#readToken;
    // A step cut short by a stack overflow here (a collect, between a block taken off a retire
    // list and its free) leaves the block unfreed: loads, which have no catch of their own, note
    // it here (noteThrown), as collect and makeRoom do for their other callers.
    try {
      this.#quiescentPoint(read);
    } catch (error) {
      this.noteThrown(error);
      throw error;
    }
    // Only on a seat still its own, by a thread not stopped: a zombie's point may have outlived
    // its grace (a pause, a reap), and the seat have a new owner, whose word is not this one's
    // to lower; and a stopped thread's read token must stay one no claim word matches.
    const i32 = this.arena.i32;
    if (this.#readToken !== readToken && Atomics.load(i32, this.#seat + CLAIM) === this.#token) {
      i32[this.#seat + HAND] = 0; // as the call left it: see #readMiss
      this.#readToken = readToken;
    }
  }

  /** {@linkcode #slowEnter}'s work. */
  #quiescentPoint(read: boolean): void {
    this.#clearStaleParked();
    // enterRead does not check the census: a quiescent point writes this seat's announcement.
    const f = fast;
    if (f.head[C_COUNT] !== f.seen) checkAliveSlowAtEntry();
    const deferred = this.#deferred;
    if (deferred !== null) {
      this.#deferred = null;
      throw deferred.error;
    }
    if (!this.#online) {
      this.#comeOnline();
      // Also here, not only at quiescent points: a participant that makes a few calls a task
      // never reaches one inside a task, and would never reap the dead.
      if (this.#holds === 0) this.#lookForDeaths();
    } else if (this.#holds === 0) this.#quiesce();
    if (this.#collectDue !== 0 && this.#holds === 0) {
      const budget = this.#collectDue;
      this.#collectDue = 0;
      this.collect(budget);
    }
    if (this.#room < 2 * RETIRES_PER_OP) {
      try {
        this.makeRoom(2 * RETIRES_PER_OP, !read);
      } catch (error) {
        if (!read || !(error instanceof MapFullError)) throw error;
      }
    }
    this.#countdown = Math.min(QUIESCE_EVERY, Math.floor(this.#room / RETIRES_PER_OP));
  }

  /**
   * Makes the next call collect as it begins, where this participant holds nothing: for after
   * a step that retired much memory in a few blocks (a table that owns many keys: a clear(), or
   * a promotion after many deletes). Left to the usual quiescent points, a retirement or two
   * never reaches the threshold, and the memory waits until the task ends or an allocation
   * fails; the calls made meanwhile place their blocks in the room left around it, and pin the
   * spans it will free: a full map cleared and refilled in one task holds fewer keys than
   * before. Freed first (at once, when no other participant is online), it is carved anew.
   */
  collectSoon(): void {
    this.#collectDue = Math.max(this.#collectDue, COLLECT_BUDGET);
    this.#resumeAt = -1; // what it retired is at the top of the list
    this.#countdown = 0;
  }

  /**
   * Runs `f`, user code, while the caller holds shared references: no quiescent point is made
   * until it returns. Retire what the operation must retire before calling this, since calls
   * `f` makes may use up the room made for the operation.
   */
  hold<T>(f: () => T): T {
    this.holdBegin();
    try {
      return f();
    } finally {
      this.holdEnd();
    }
  }

  /**
   * {@linkcode hold} in two halves, for a hot caller that would otherwise make a closure: each
   * holdBegin is paired with one holdEnd in a `finally`.
   */
  holdBegin(): void {
    this.#holds++;
    threadHolds++;
  }

  /** See {@linkcode holdBegin}. */
  holdEnd(): void {
    this.#holds--;
    threadHolds--;
  }

  /**
   * Frees what is safe to free now, for a call that ran out of memory part-way and holds no
   * shared reference (its locked step was rolled back), and gives the cache's blocks back.
   * Returns false when there is nothing to free or give back, having announced the epoch of now
   * (others' retired blocks may wait on this participant's announcement alone: see
   * #awaitLaggards); retired blocks wait while a caller up the stack holds references (user
   * code run by a call).
   */
  reclaimNow(): boolean {
    let freed = false;
    if (this.#holds === 0 && this.#pending !== 0) {
      this.#collectDue = 0;
      this.collect();
      freed = true;
    } else if (this.#holds === 0) {
      // Nothing of its own to free, but its announcement may be what holds the others' retired
      // blocks back (no quiescent point is made while a step fails and runs again): the caller
      // holds nothing, so announce the epoch of now, as a quiescent point would.
      this.#announceNow();
    }
    // Blocks cached for this participant's own allocations keep their spans from going back to
    // the heap, where a table's buckets or another size class could use them.
    if (this.#cache !== 0 && cachedBytes(this.arena, this.#cache) > 0) {
      flushCache(this.arena, this.#cache, this.#limits);
      freed = true;
    }
    return freed;
  }

  /**
   * After {@linkcode reclaimNow}, for the same caller (out of memory part-way, holding no shared
   * reference, its locked step rolled back): waits, as an allocation at a quiescent point does
   * (#awaitLaggards, from `deadline`, a `performance.now()` time), for the participants whose
   * announcements hold this one's retired blocks back, or whose blocks this one's announcement
   * held back. Returns whether it freed something, or saw the bytes in use fall, after which
   * the step is worth running again. Without it, a locked step that found
   * the map full (a dirty table's buckets, under the mutex) failed while the backlog it needed
   * waited on a worker descheduled for a few milliseconds: two workers adding and deleting keys
   * in a 256 KiB map, three keys live, filled it within 2,400 to 6,500 rounds.
   */
  awaitBacklog(deadline: number): boolean {
    return this.#holds === 0 && this.#awaitLaggards(deadline);
  }

  /**
   * Goes offline before the task ends, as the microtask {@linkcode enter} queued does at its
   * end: the caller holds no reference into shared memory and is about to run code that may
   * take long without calling the map (a loadOrCompute's `fn`, or a wait for another thread's).
   * Until the next {@linkcode enter}, this participant holds reclamation back no longer, and a
   * stop of the world goes on without it (an offline participant touches nothing; coming back
   * online, it waits out a pause). Does nothing inside a {@linkcode hold}, whose caller holds
   * references. Returns whether it went offline.
   */
  idle(): boolean {
    if (!this.#online || this.#holds !== 0) return false;
    // A share released meanwhile is no longer this participant's to write (see #offline).
    if (Atomics.load(this.arena.i32, this.#seat + CLAIM) !== this.#token) {
      this.#online = false;
      this.#countdown = 0;
      return false;
    }
    this.#withdraw();
    return true;
  }

  /**
   * Makes room in the retire list for `n` more blocks, first by freeing what is safe, then by
   * growing the list. Call it only where {@linkcode enter} may be called: before the operation
   * has changed anything, since it throws MapFullError when the arena is full. `wait`: whether,
   * the arena full, it may first wait for the participants that hold its retired blocks back
   * (#awaitLaggards).
   */
  makeRoom(n: number, wait = true): void {
    if (this.#room >= n) return;
    this.raiseHand(); // collects, and may move the list (registry.ts HAND)
    try {
      this.#growRoom(n, wait);
    } catch (error) {
      // A list grown and not yet published, or the old one not yet freed: see noteThrown.
      this.noteThrown(error);
      throw error;
    }
  }

  /** {@linkcode makeRoom} once the room is short. */
  #growRoom(n: number, wait: boolean): void {
    // A seat released under a call still in progress (a worker's last call, past the grace) may
    // be another participant's now, with the list it adopted: neither collected nor counted as
    // room here, nor retired into by this call.
    if (Atomics.load(this.arena.i32, this.#seat + CLAIM) !== this.#token) this.#releasedError();
    this.#settle();
    if (this.#pending > 0 && this.#holds === 0) this.collect();
    const a = this.arena;
    for (let deadline = 0;;) {
      // Sized by the list itself, never by a #pending left above its count (a rollback that
      // threw before resync) or by one whose list is gone (resync).
      this.resync();
      const list = a.i32[this.#seat + LIST];
      const capacity = list === 0 ? 0 : a.i32[(list >> 2) + RL_CAPACITY];
      if (capacity - this.#pending >= n) {
        this.#room = capacity - this.#pending;
        return;
      }
      const grown = Math.max(LIST_MIN, capacity * 2, this.#pending + n);
      let moved: number;
      try {
        moved = this.#moveList(list, capacity, grown);
      } catch (error) {
        if (!(error instanceof MapFullError)) {
          // Plain assignments: the stack may be at its limit.
          this.#moveUnsettled = true;
          this.#room = 0;
          throw error;
        }
        // The map is full: wait for what others hold back (#awaitLaggards), which may make
        // room in the list itself, and try again.
        if (this.#holds !== 0 || !wait) throw error;
        if (deadline === 0) deadline = performance.now() + BACKLOG_WAIT_MS;
        if (!this.#awaitLaggards(deadline)) throw error;
        if (this.#room >= n) return;
        continue;
      }
      if (moved === LIST_MOVED) {
        this.#room = grown - this.#pending;
        return;
      }
      if (moved === SEAT_LOST) this.#releasedError();
      // LIST_CHANGED: the step's lock, taken over from this thread's own step that a stack
      // overflow cut short, rolled that step back first: look again.
    }
  }

  /**
   * Takes the allocator lock once after a list move that may have been left unsettled
   * ({@linkcode #moveUnsettled}), which rolls its step back (or forward, had its commit begun),
   * before LIST is read again: a collect of the unsettled list's copies would free blocks the
   * rollback lists again, and a retirement into it would be lost with it.
   */
  #settle(): void {
    if (!this.#moveUnsettled) return;
    underLock(this.arena, () => {});
    this.#moveUnsettled = false;
    this.resync();
    const list = this.arena.i32[this.#seat + LIST];
    this.#room = list === 0 ? 0 : this.arena.i32[(list >> 2) + RL_CAPACITY] - this.#pending;
  }

  /**
   * Moves the retire list (`list`, 0 for none, of `capacity` entries) to a new block of `grown`
   * entries, its entries copied, in one step under the allocator lock that allocates the block,
   * frees the old list and switches the seat's LIST word: a death anywhere leaves the old list
   * or the new one, never a block reachable from nowhere. The step first checks, under the lock,
   * that the seat is still this participant's and LIST still `list`. A sweep of a released seat
   * (#sweepReleased) frees its list and clears LIST under the same lock, so a participant whose
   * seat was released in the middle of its call (a terminated worker's last call, past the
   * grace) finds it here and moves nothing, rather than hand a new list to a seat that is no
   * longer its own, or to nobody. Returns {@linkcode LIST_MOVED}, {@linkcode SEAT_LOST}, or
   * {@linkcode LIST_CHANGED}; throws MapFullError, having changed nothing.
   */
  #moveList(list: number, capacity: number, grown: number): number {
    const a = this.arena;
    const seat = this.#seat;
    const token = this.#token;
    const pending = this.#pending;
    return underLock(a, (j) => {
      if (Atomics.load(a.i32, seat + CLAIM) !== token) return SEAT_LOST;
      if (a.i32[seat + LIST] !== list) return LIST_CHANGED;
      const block = allocate(a, listBytes(grown), false, j);
      // The new block's words need no journal: a rollback of the step frees the block.
      const i32 = a.i32;
      if (pending > 0) {
        i32.copyWithin(tagAt(block >> 2, 0), tagAt(list >> 2, 0), tagAt(list >> 2, pending));
      }
      i32[(block >> 2) + RL_COUNT] = pending;
      i32[(block >> 2) + RL_CAPACITY] = grown;
      if (list !== 0) release(a, list, listBytes(capacity), j);
      j.set(seat + LIST, block);
      return LIST_MOVED;
    });
  }

  /**
   * Back-pressure, for an allocation at a quiescent point that found the map full while retired
   * blocks wait, its own or another participant's: sleeps a millisecond at a time, collecting
   * after each sleep (or, with nothing of its own or of orphans' to free, announcing the epoch of
   * now), until its own pending blocks or the bytes in use fall (returns true: the caller tries
   * again). Returns false, having given up, after {@linkcode WAIT_NAPS} sleeps in all for the
   * call whose `deadline` (a `performance.now()` time) it was given, or once
   * {@linkcode WAIT_CAP} times {@linkcode BACKLOG_WAIT_MS} past that deadline (and, if this wait
   * freed nothing, makes no wait again until a collect frees its blocks: #waitedInVain); or at
   * once when waiting cannot help: no retire list holds a block, this thread holds references,
   * another thread stops the world (the participants it parks keep their announcements), or
   * #worthWaiting says no.
   *
   * Another participant's blocks count because this one's announcement may be what holds them
   * back: a call whose step runs again and again for want of memory makes no quiescent point.
   * Two workers storing and deleting keys in a 128 KiB map, three keys live, filled it so: the
   * failing worker's own list was empty, its announcement 17 to 23 epochs old, and the other's
   * list held about 69 KB waiting on it alone. Sleeps are counted rather than timed: a thread
   * descheduled in its retries had spent a 20 ms deadline before it slept once.
   *
   * Such a laggard is most often a worker the system descheduled in the middle of a call, with
   * more busy workers than cores: it needs a core to reach its next quiescent point, and a
   * writer that retires on meanwhile holds ever more memory in its list until the map is full
   * (a 1 MiB map with 40 keys, overwritten by 4 workers on 2 cores, was full in 10 runs of 10).
   * Sleeping gives the laggard that core. Only where an allocation failed: a call in a map with
   * room never waits. The caller is at a quiescent point and holds nothing; it stays online with
   * the announcement of its last collect, so a stop of the world waits for it at most one sleep
   * (it then gives up, and its call throws MapFullError). After each sleep, as after every wait
   * in shmap, a thread terminated meanwhile stops.
   */
  #awaitLaggards(deadline: number): boolean {
    if (this.#waitedInVain || threadHolds !== 0) return false;
    // Its own retired blocks, or the others' (which its own announcement may hold back).
    if (this.#pending === 0 && !this.#othersRetired()) return false;
    const pause = this.registry.pauseWord;
    const i32 = this.arena.i32;
    // A call's sleeps are counted from its first wait (see the doc above).
    if (deadline !== this.#waitDeadline) {
      this.#waitDeadline = deadline;
      this.#napsLeft = WAIT_NAPS;
      this.#retriesLeft = WAIT_RETRIES;
    }
    const end = deadline + WAIT_CAP * BACKLOG_WAIT_MS;
    if (Atomics.load(i32, pause) !== 0) return false;
    if (this.#napsLeft <= 0 || this.#retriesLeft <= 0 || performance.now() > end) {
      // The call's waits are spent, each followed by a try that failed again: a map full of live
      // data while the others free what they retire. In vain, as a wait that freed nothing: a
      // full map must answer MapFullError promptly. (Without this, each failing call of two
      // workers keeping a full 256 KiB map as an evicting cache waited its 20 sleeps, and they
      // made 0.63 times the calls of the code before the wait counted others' blocks.)
      this.#waitedInVain = true;
      return false;
    }
    if (!this.#worthWaiting()) return false;
    const used = bytesUsed(this.arena);
    const had = this.#pending;
    // The callers have collected, or announced, just before: the first sleep needs neither again.
    if (had === 0) this.#announceNow();
    for (;;) {
      nap();
      this.#napsLeft--;
      checkSelf();
      // A collect frees this participant's blocks and orphans' lists; with neither, the
      // announcement is all this participant can move.
      if (this.#pending !== 0 || Atomics.load(i32, this.registry.orphanWord) > 0) this.collect();
      else this.#announceNow();
      if (this.#pending < had || bytesUsed(this.arena) < used) {
        this.#retriesLeft--;
        return true;
      }
      if (Atomics.load(i32, pause) !== 0) return false;
      if (this.#napsLeft <= 0 || performance.now() > end) break;
    }
    this.#waitedInVain = true;
    return false;
  }

  /** A hint: whether another seat's retire list holds blocks (counts read racily, checked). */
  #othersRetired(): boolean {
    const a = this.arena;
    const i32 = a.i32;
    const count = seatHigh(this.registry);
    for (let i = 0; i < count; i++) {
      const at = this.registry.seats + i * SEAT_WORDS;
      if (at === this.#seat) continue;
      const list = Atomics.load(i32, at + LIST);
      if (list > 0 && (list & 15) === 0 && list + 8 <= a.bytes && i32[(list >> 2) + RL_COUNT] > 0) {
        return true;
      }
    }
    return false;
  }

  /**
   * Announces the epoch of now, as a quiescent point does ({@linkcode #announce}): only where
   * the caller holds no shared reference (a step rolled back for want of memory, a wait).
   */
  #announceNow(): void {
    if (!this.#online || this.#holds !== 0) return;
    const i32 = this.arena.i32;
    // A seat released meanwhile (a Deno zombie past its grace) is no longer this one's to write.
    if (Atomics.load(i32, this.#seat + CLAIM) !== this.#token) return;
    this.#announce(Atomics.load(i32, this.registry.epochWord));
  }

  /**
   * Whether a sleep can let this participant's retired blocks go: a participant of another
   * thread, not gone, is online (one whose announcement can move while this thread sleeps;
   * parked ones count: asleep in the map's mutex, each moves on when it gets it, and with more
   * busy workers than cores all the others may be asleep there whenever this thread looks), and
   * none of this thread's other participants is (its announcement cannot move while this thread
   * sleeps: a map attached twice with different codec objects).
   */
  #worthWaiting(): boolean {
    const i32 = this.arena.i32;
    const me = ownerId();
    const count = seatHigh(this.registry);
    let online = false;
    for (let i = 0; i < count; i++) {
      const at = this.registry.seats + i * SEAT_WORDS;
      if (at === this.#seat || seatAnnouncement(this.registry, i) === 0) continue;
      const owner = Atomics.load(i32, at + OWNER);
      if (owner === me) return false;
      if (owner !== 0 && !ownerDeclaredGone(owner)) online = true;
    }
    return online;
  }

  /**
   * Retires the block `tag` (an offset, 16-byte aligned, with a kind in its low four bits)
   * that the caller has just made unreachable. It will be passed to `free` once safe.
   *
   * The entry's epoch is not loaded here but at this participant's next quiescent point or
   * collect ({@linkcode #stamp}): an atomic load that comes after the unlink as surely as one
   * made here would, and one this participant makes there anyway. On Bun, a load here made two
   * workers storing disjoint keys 1.24x slower: JavaScriptCore's `Atomics.load` takes the
   * epoch's cache line exclusively, so every store passed the line to the other worker.
   */
  retire(tag: number): void {
    if (this.#room <= 0) throw new Error("internal error: retire without room made for it");
    const a = this.arena;
    const list = this.#own[LIST];
    const n = listCount(a, list, 1);
    const w = list >> 2;
    a.i32[tagAt(w, n)] = tag;
    a.i32[epochAt(w, n)] = UNSTAMPED;
    a.i32[w + RL_COUNT] = n + 1;
    this.#pending = n + 1;
    this.#room--;
  }

  /** Whether a retirement can be made now without making room first (a full map may lack it). */
  get canRetire(): boolean {
    return this.#room > 0;
  }

  /**
   * {@linkcode enter} for a SyncMap clear, which retires at most its two tables
   * ({@linkcode CLEAR_RETIRES}): a quiescent point that cannot make room for other calls (the
   * map full) lets it go on, as a read's does. A clear that has tables to retire then makes room
   * for them alone ({@linkcode makeRoom}), growing the list only for a participant that never
   * had one.
   */
  enterClear(): void {
    this.#enterChecks(); // called: a clear is no hot path
    this.#setHand(); // a clear retires tables
    if (--this.#countdown <= 0) this.#slowEnter(true);
  }

  /**
   * {@linkcode retire}, as part of the locked step `tx`: the list's words are journaled, so a
   * rollback of the step takes the retirement back too (call {@linkcode resync} after a rollback
   * in this thread). The entry must not be dated before the step commits: the step's unlink is
   * R_READ's publication, made at the commit (Journal.publishAtCommit), and an epoch loaded
   * before it would let a reader that announced after that load, and then read the old R_READ,
   * lose the block under it. Left unstamped, it is stamped at the next quiescent point or
   * collect, after the commit: no locked step makes either.
   */
  retireTx(tag: number, tx: { set(index: number, value: number): void }): void {
    if (this.#room <= 0) throw new Error("internal error: retire without room made for it");
    const a = this.arena;
    const list = a.i32[this.#seat + LIST];
    const n = listCount(a, list, 1);
    const w = list >> 2;
    tx.set(tagAt(w, n), tag);
    tx.set(epochAt(w, n), UNSTAMPED);
    tx.set(w + RL_COUNT, n + 1);
    this.#pending = n + 1;
    this.#room--;
  }

  /** Rereads the retire list's length after a locked step was rolled back in this thread. */
  resync(): void {
    const a = this.arena;
    const list = a.i32[this.#seat + LIST];
    if (list === 0) {
      // No list, so nothing retired: entries #pending counts were in a list that a sweep of
      // this seat, released under a call still in progress, freed with their blocks (#moveList).
      this.#pending = 0;
      this.#stamped = 0;
      this.#room = 0;
      return;
    }
    const n = listCount(a, list);
    this.#room += this.#pending - n;
    this.#pending = n;
    if (this.#stamped > n) this.#stamped = n;
  }

  /**
   * {@linkcode allocate} of a `quiescent` call that keeps a hand log, opened as the block is taken
   * (registry.ts HAND_TAKEN): the fast path, a block of a small class whose list in the cache is
   * not empty, written out, as a `store` takes one per call; the rest through allocate.
   */
  allocateLogged(size: number): number {
    const cache = this.#cache;
    // A log open here is the log of the call this one is nested in (a built-in the user
    // patched, calling this map from the outer call's record copy: every call ends its log):
    // raised over it, and this record taken unlogged. So under a hold, whatever the word says:
    // a first nested call raised the outer's log, and a second one's log, written over that
    // raise, would have the settling of its death leave the outer's record to no one
    // (helper-144).
    if (!this.#mayLog()) {
      this.dropLog();
      return this.allocate(size, true);
    }
    if (cache !== 0 && size <= SMALL_MAX) {
      const c = sizeClass(size);
      const head = cacheReady(this.arena, cache, c);
      if (head !== 0) return this.#takeLogged(c, head);
    }
    return this.allocate(size, true, true);
  }

  /**
   * {@linkcode allocateLogged} for a `swap` that knows what it will exchange first, record `old`
   * in entry `e` (a number key's store, found before its value is written): the hand log is
   * written once, HAND_SWAP naming the block before the pop takes it (registry.ts HAND_SWAP), so
   * that no second write of the phase word and no {@linkcode logSwap} come between the take and
   * the exchange. A death before the pop leaves the block the head of its list (the settling's
   * test, as for HAND_TAKEN); after it, as after logSwap. Returns 0, taking nothing, when the fast
   * path cannot serve it (no cache yet, the list empty, or its head past this thread's views, or
   * a log open or a hold: the call this one is nested in, for allocateLogged to raise the word)
   * or `size` is not a small class: the caller then takes its
   * block through allocateLogged, which may make a quiescent point, and looks the key up again.
   */
  allocateSwap(size: number, e: number, old: number): number {
    const cache = this.#cache;
    const own = this.#own;
    if (cache === 0 || size > SMALL_MAX || !this.#mayLog()) return 0;
    const c = sizeClass(size);
    const head = cacheReady(this.arena, cache, c);
    if (head === 0) return 0;
    own[HAND_ENTRY] = e;
    own[HAND_OLD] = old;
    return this.#takeLogged(c, head, HAND_SWAP);
  }

  /**
   * Whether a call may open a hand log as it takes a block: not over a log open already (the log
   * of the call this one is nested in), and not under a hold (see {@linkcode allocateLogged}).
   */
  #mayLog(): boolean {
    return (this.#own[HAND] & HAND_TAKEN) === 0 && this.#holds === 0;
  }

  /**
   * Takes `head`, the checked head of size class `c`'s list in this participant's cache
   * (cacheReady, cacheNext), off the cache under a hand log of `phase` (registry.ts HAND_TAKEN,
   * or HAND_SWAP with its entry and old value written already): the log names the block before
   * the pop takes it, so a death before the pop leaves it the head of its list, after it, taken.
   */
  #takeLogged(c: number, head: number, phase = HAND_TAKEN): number {
    const own = this.#own;
    own[HAND_NEW] = head;
    own[HAND] = (c << 2) | phase;
    this.#logged();
    cacheTake(this.arena, this.#cache, c, head);
    return head;
  }

  /**
   * Allocates a block through this participant's cache (see allocator.ts). `quiescent` says
   * the caller holds no shared reference yet (it is at the start of its operation), so that on
   * running out of memory this may free what is safe to free and try again. `logged`: the
   * caller keeps a hand log (see {@linkcode logSwap}), opened here as the block is taken.
   */
  allocate(size: number, quiescent = false, logged = false): number {
    if (quiescent) {
      try {
        return this.allocate(size, false, logged);
      } catch (error) {
        if (this.#holds !== 0 || !(error instanceof MapFullError)) throw error;
        if (this.#pending === 0 && !this.#othersRetired()) throw error;
        this.#collectDue = 0;
        if (this.#pending !== 0) this.collect();
        else this.#announceNow();
        const deadline = performance.now() + BACKLOG_WAIT_MS;
        for (;;) {
          try {
            return this.allocate(size, false, logged);
          } catch (again) {
            // Still full: wait for what others hold back (#awaitLaggards), then try again.
            if (!(again instanceof MapFullError) || !this.#awaitLaggards(deadline)) throw again;
          }
        }
      }
    }
    try {
      if (this.#cache === 0) {
        // Raised: the cache block is in hand until the seat names it.
        this.#setHand();
        this.#cache = newCache(this.arena);
        this.arena.i32[this.#seat + CACHE] = this.#cache;
      }
      // Not over a log open already: the log of the call this one is nested in (see
      // allocateLogged).
      if (logged && size <= SMALL_MAX && this.#mayLog()) {
        const c = sizeClass(size);
        // Refilled, checked.
        return this.#takeLogged(c, cacheNext(this.arena, this.#cache, c, this.#limits));
      }
      // A block the log cannot name (one from the heap, under the allocator's lock): raised.
      if (logged) this.dropLog();
      return cacheAllocate(this.arena, this.#cache, size, this.#limits);
    } catch (error) {
      // The blocks this cache holds may be what keeps their spans from going back to the heap
      // for another size: give them back and try once more.
      // (No cache yet: its own block could not be had, and 0 names the arena's header.)
      if (
        error instanceof MapFullError && this.#cache !== 0 &&
        cachedBytes(this.arena, this.#cache) > 0
      ) {
        if (logged) this.dropLog(); // the block taken below is not logged
        flushCache(this.arena, this.#cache, this.#limits);
        try {
          return cacheAllocate(this.arena, this.#cache, size, this.#limits);
        } catch (again) {
          if (!(again instanceof MapFullError)) throw again;
        }
      }
      // Out of memory, perhaps only because retired blocks are waiting: free them at the start
      // of the next call, so that a delete followed by a store can succeed in the same task.
      this.#collectDue = Infinity;
      this.#countdown = 0;
      throw error;
    }
  }

  /** Frees a block through this participant's cache. */
  release(offset: number, size: number): void {
    if (this.#cache === 0) lockedRelease(this.arena, offset, size);
    else cacheRelease(this.arena, this.#cache, offset, size, this.#limits);
  }

  /**
   * Withdraws this participant and gives its seat back; {@linkcode enter} throws from then on.
   */
  close(): void {
    if (this.#closed) return;
    if (this.#holds > 0) throw new TypeError("cannot close a SyncMap inside one of its calls");
    try {
      this.#close();
    } catch (error) {
      // Closed by then, the sweep is marked due in the map for others; else owed (noteThrown).
      this.noteThrown(error);
      throw error;
    }
  }

  /** {@linkcode close}'s work. */
  #close(): void {
    try {
      this.#closeSeat();
    } finally {
      // Closed, it touches shared memory no more: nothing to stop. Not before: a thread found
      // terminated in the middle of the close stops this participant through the hook. Nor,
      // withdrawn, to take offline: nothing of this thread's holds it from then on. (A close
      // cut short while announced leaves it to the microtask, which finds the seat released.)
      this.#offStop?.();
      if (!this.#online) this.#unqueueOffline();
    }
  }

  /** {@linkcode #close}'s work on the seat. */
  #closeSeat(): void {
    // A sweep owed goes to the others: this participant will not go offline again to run it.
    this.raiseOwedSweep();
    if (!this.#ours()) {
      // Released already (the worker's share), or this thread is terminated: the seat and what
      // is in it are not ours to touch.
      this.#leave();
      this.#closed = true;
      return;
    }
    // The cache and list go while this participant is announced, so that a pause of the world
    // waits for them (see #offline).
    if (!this.#online) this.#comeOnline();
    this.#tidy();
    if (this.#cache !== 0) {
      freeCache(this.arena, this.#cache, this.#seat + CACHE);
      this.#cache = 0;
    }
    this.#closed = true;
    try {
      // The owner can free its empty retire list itself; anything left is swept by others.
      const list = this.arena.i32[this.#seat + LIST];
      if (list !== 0 && this.#pending === 0) {
        lockedRelease(this.arena, list, listBytes(this.arena.i32[(list >> 2) + RL_CAPACITY]), [
          this.#seat + LIST,
          0,
        ]);
      }
      this.#withdraw();
    } finally {
      // Whatever threw (a stack overflow), the seat goes back: closed, this participant will
      // not come again to give it back, and a list left in it is an orphan others sweep.
      this.#releaseOwnSeat();
    }
  }

  /** Gives the seat back ({@linkcode close}; registry.ts releaseOwnSeat). */
  #releaseOwnSeat(): void {
    releaseOwnSeat(this.registry, this.index, generationOf(this.#token));
  }

  /**
   * Whether this participant is in no call of its thread's: offline (it comes online at each
   * call and goes offline in a microtask after it), and holding nothing for user code.
   */
  get inNoCall(): boolean {
    return !this.#online && this.#holds === 0;
  }

  /** Whether this participant is not closed and its seat is still its own. */
  get holdsSeat(): boolean {
    return !this.#closed && Atomics.load(this.arena.i32, this.#seat + CLAIM) === this.#token;
  }

  /** The generation of the seat claim this participant holds. */
  get generation(): number {
    return generationOf(this.#token);
  }

  /** Throws the closed error when this participant was closed (for calls that read only). */
  checkOpen(): void {
    if (this.#closed) this.#closedError();
  }

  #releasedError(): never {
    if (this.#closed) this.#closedError();
    // A terminated worker's seat is released after the grace: stop it as checkAlive would
    // (a node:worker_threads zombie on Deno exits), rather than with a TypeError. The claim
    // loaded atomically first: the census entry was written before the release, so it is seen.
    Atomics.load(this.arena.i32, this.#seat + CLAIM);
    checkSelf();
    throw new TypeError(
      "this SyncMap object's share was released (its worker was terminated); it cannot be used",
    );
  }

  #closedError(): never {
    throw new TypeError("this SyncMap object is closed; attach again to use the map");
  }

  /** Retired blocks waiting to be freed. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * Frees what can be freed now, at most `budget` blocks of this participant's own list and as
   * many of each released seat's (see {@linkcode COLLECT_BUDGET}); `Infinity`, all it can,
   * walking the whole list. Only at a quiescent point: this participant holds nothing.
   */
  collect(budget = Infinity): void {
    // Frees: a block taken off the retire list is in hand until it is freed (registry.ts HAND).
    this.raiseHand();
    try {
      this.#collect(budget);
    } catch (error) {
      // A block taken off the retire list and not yet freed: see noteThrown.
      this.noteThrown(error);
      throw error;
    }
  }

  /** {@linkcode collect}'s work. */
  #collect(budget: number): void {
    this.#orphansLeft = false;
    this.#settle();
    const a = this.arena;
    const i32 = a.i32;
    if (this.#pending === 0 && Atomics.load(i32, this.registry.orphanWord) <= 0) {
      this.#keptNewest = 0;
      return;
    }
    const had = this.#pending;
    // Advance the epoch so that announcements made from now on postdate every retirement so far.
    const epochWord = this.registry.epochWord;
    const previous = Atomics.add(i32, epochWord, 1);
    this.#stamp(previous); // the value of its day, loaded after every unlink so far
    let now = (previous + 1) | 0;
    if (now === 0) now = (Atomics.add(i32, epochWord, 1) + 1) | 0; // 0 means offline
    if (this.#online) Atomics.store(i32, this.#seat + ANNOUNCE, now);
    let oldest = now;
    const orphans = Atomics.load(i32, this.registry.orphanWord) > 0;
    const count = seatHigh(this.registry);
    for (let i = 0; i < count; i++) {
      const e = seatAnnouncement(this.registry, i);
      if (e !== 0 && before(e, oldest)) oldest = e;
    }
    // A collect that frees all it can walks the whole list: above #resumeAt lie what an earlier
    // slice kept and what was retired since.
    const resumeAt = budget === Infinity ? -1 : this.#resumeAt;
    this.#resumeAt = -1;
    try {
      const list = a.i32[this.#seat + LIST];
      this.#sweep(list, oldest, budget, resumeAt, resumeAt >= 0 ? this.#ownNewest : 0);
    } finally {
      // From the list itself, however the sweep ended: a free that threw left it shorter than
      // #pending says, and makeRoom, a retirement, or the next stamp must not go by #pending.
      this.resync();
      this.#stamped = this.#pending; // stamped before the sweep moved them
    }
    const kept = this.#pending;
    if (kept < had) this.#waitedInVain = false;
    // Try again once half as many more have been retired. A collect can free only what was
    // retired before the previous one (the others' announcements must postdate it), so in a
    // steady state `kept` is what came in since the last try: with `2 * kept` here it never
    // shrank, and one long stall of another participant left the pending count (and memory)
    // at its stalled height for good. With `kept / 2` it halves at every try that frees, and
    // grows by half at every try that does not: amortized O(1) per retirement either way.
    this.#collectAt = kept + Math.max(RETIRE_BATCH, kept >> 1);
    this.#ownNewest = this.#sweptNewest;
    this.#keptNewest = kept >= DRAIN_MIN ? this.#sweptNewest : 0;
    // Stopped at its budget: the next quiescent point goes on with the rest, from there.
    if (this.#sweptStop >= 0) {
      this.#collectAt = kept;
      this.#resumeAt = this.#sweptStop;
    }
    if (orphans) this.#sweepReleased(oldest, budget);
    if (this.#bulkFreed) {
      this.#bulkFreed = false;
      this.#giveBack();
    }
  }

  /**
   * After a bulk free (a retired table, with the entries, keys and values it owns: see
   * {@linkcode Free}), gives back what would keep that memory from serving anything but more
   * blocks of the same sizes: the blocks the free left in this participant's cache, which count
   * as in use for their spans (so no span they sit in can empty) and which the next allocations
   * would hand out scattered over all those spans, and the empty spans kept for reuse (see
   * lockedReleaseSpares). Then the spans the free emptied go back to the heap and merge, and a
   * table's regrowth finds the large and aligned chunks it needs: after a clear(), as many keys
   * fit as before. Once per collect, however many tables it freed.
   *
   * Each step is one the allocator already takes, journaled, under its lock: a spill
   * (flushCache) or a spare's release. A death between two leaves blocks in the cache, a
   * consistent one (each spill moves its list head in its own step), which its seat's next
   * owner adopts or a borrower flushes and frees once the seat is released; or a spare kept,
   * which goes back whenever the heap cannot grow. Either is as if the give-back had stopped
   * there. A death inside a step is rolled back by the lock's next holder. Nothing is left for
   * the sweep.
   */
  #giveBack(): void {
    const a = this.arena;
    if (this.#cache !== 0 && cachedBytes(a, this.#cache) > 0) {
      flushCache(a, this.#cache, this.#limits);
    }
    lockedReleaseSpares(a);
  }

  /**
   * Frees the entries of retire list `list` older than `oldest`; returns how many remain. An
   * {@linkcode UNSTAMPED} entry is stamped instead, with an epoch loaded after reading it, and
   * kept: one of a list whose owner is gone or was released (a list changes hands without its
   * entries being stamped; the release and the claim that handed it over come after the owner's
   * unlinks), or, defensively, one its owner left below {@linkcode #stamped}.
   *
   * Frees at most `budget` blocks, and walks from index `from` down (-1: from the top; see
   * {@linkcode #resumeAt}); `newest`, the latest epoch kept so far by the walk this one goes on
   * with (0: none), is counted in {@linkcode #sweptNewest}.
   */
  #sweep(list: number, oldest: number, budget = Infinity, from = -1, newest = 0): number {
    this.#sweptNewest = 0;
    this.#sweptStop = -1;
    if (list === 0) return 0; // defensive: word 0 is the arena's magic number, not a count
    const a = this.arena;
    const w = list >> 2;
    const epochWord = this.registry.epochWord;
    let n = listCount(a, list);
    let freed = 0;
    // An entry leaves the list (the last one takes its place) before its block is freed, so a
    // thread stopped anywhere in here (Bun's terminate() stops a worker anywhere) leaves each
    // block either listed or freed, never both: at worst one block leaks, for the sweep. The
    // move writes the epoch before the tag, so that a stop between the two leaves the entry's
    // own block with a later epoch (freed later: harmless); a stop after the tag, before the
    // count, leaves the last entry listed twice, which repairList (registry.ts) undoes before
    // anyone frees the list's blocks.
    for (let j = from >= 0 && from < n ? from : n - 1; j >= 0; j--) {
      // A thread marked terminating stops between two frees: a backlog of thousands takes
      // longer than the grace after which its seat is released to others (census.ts).
      this.#aliveBetweenFrees();
      // A collect holds nothing, so its participant may announce the epoch of now at any point
      // of it; it does so every SWEEP_ANNOUNCE_EVERY entries. A sweep of a large backlog takes
      // milliseconds, and other writers' retirements stamped meanwhile would wait for it to end:
      // their collects would free nothing, their backlogs (and next sweeps) would grow, and
      // each writer's long sweep held the other's frees back in turn (docs/design.md, "Long
      // sweeps announce"). After checkAlive: a thread whose seat may be released stops first.
      if ((j & (SWEEP_ANNOUNCE_EVERY - 1)) === 0 && this.#online) {
        Atomics.store(a.i32, this.#seat + ANNOUNCE, Atomics.load(a.i32, epochWord) || 1);
      }
      const tag = a.i32[tagAt(w, j)];
      let e = a.i32[epochAt(w, j)];
      if (e !== UNSTAMPED && before(e, oldest)) {
        if (freed === budget) {
          this.#sweptStop = j;
          break;
        }
        freed++;
        n--;
        moveEntry(a.i32, w, n, j);
        a.i32[w + RL_COUNT] = n;
        if (this.#free(tag)) this.#bulkFreed = true;
        continue;
      }
      // Kept: an unstamped entry is stamped now.
      if (e === UNSTAMPED) a.i32[epochAt(w, j)] = e = Atomics.load(a.i32, epochWord) || 1;
      if (newest === 0 || before(newest, e)) newest = e;
    }
    this.#sweptNewest = newest;
    return n;
  }

  /**
   * Whether claim word `claim`, read from this participant's seat, is still the claim it made, or
   * that claim's release under way (registry.ts releasingOf): either way nobody else owns the
   * seat, whose own words a stopped thread (its token made stale) may still write.
   */
  #claimed(claim: number): boolean {
    return claim === this.#claim || claim === releasingOf(this.#claim);
  }

  /**
   * {@linkcode #sweep}'s census check, between two frees. A thread stopped there holds nothing in
   * hand: the collect has freed or kept every block it looked at, and its callers hold nothing
   * (a quiescent point, a write's allocation before it takes anything, going offline, a reap). So
   * the hand word, raised for the collect, is lowered as the error goes, on a seat still this
   * participant's (the stop made the token -1): a Deno zombie, which stops at such checks and
   * often in a collect, then needs no sweep (bench/kill_stall.ts: two of six kills in a loop of
   * stores were swept before, each a stop of the world of about 190 ms with a million keys).
   */
  #aliveBetweenFrees(): void {
    try {
      checkAlive();
    } catch (error) {
      // From 1 only, and on a seat still of this claim, or of its release under way (a Deno
      // zombie's seat is often released, its grace running, before the zombie reaches this
      // check; nobody claims it until the release finishes, and the release settles the word it
      // reads then): a compare-exchange, so that a stopped thread's write can lower only a raise
      // of its own, never a log or a new owner's word.
      const i32 = this.arena.i32;
      if (this.#claimed(Atomics.load(i32, this.#seat + CLAIM))) {
        Atomics.compareExchange(i32, this.#seat + HAND, 1, 0);
      }
      throw error;
    }
  }

  /**
   * Sweeps the retire lists left in released seats, so that what a closed or departed
   * participant retired is freed without waiting for the seat's next owner. A seat is borrowed
   * for the sweep by claiming it, so no new owner can take it meanwhile; an empty list is freed
   * with it. At most `budget` blocks of each list: what is left stays an orphan, and the next
   * quiescent point, seeing the orphan count, goes on.
   */
  #sweepReleased(oldest: number, budget: number): void {
    const a = this.arena;
    const { seats, orphanWord } = this.registry;
    const count = seatHigh(this.registry);
    for (let i = 0; i < count; i++) {
      const at = seats + i * SEAT_WORDS;
      if (a.i32[at + LIST] === 0 && a.i32[at + CACHE] === 0) continue;
      // Borrow the seat: a claim in this generation keeps new owners out meanwhile, and the
      // borrower's id in OWNER lets others reclaim the seat if the borrower dies meanwhile.
      const me = ownerId();
      const claim = claimFree(a.i32, at, SEAT_IN_USE);
      if (claim === -1) continue;
      // Given back in the next generation, as a release gives a seat back: in the same one, the
      // next claim's word would be the borrow's, and a reap that read CLAIM during the borrow,
      // and OWNER after it (0, so RESERVER: a parent that once reserved the seat, gone since),
      // released that live claim as the dead seat it found (helper-169).
      const free = (((claim >>> 2) + 1) << 2) | SEAT_FREE;
      let swept = false;
      try {
        // Its list and cache may lie past this thread's views.
        a.reach(a.buffer.byteLength);
        const cache = a.i32[at + CACHE];
        if (cache !== 0) {
          // Its owner may have died between a list write and the advisory counts.
          repairCache(a, cache);
          freeCache(a, cache, at + CACHE);
        }
        const list = a.i32[at + LIST];
        if (list !== 0 && this.#sweep(list, oldest, budget) === 0) {
          lockedRelease(a, list, listBytes(a.i32[(list >> 2) + RL_CAPACITY]), [at + LIST, 0]);
        }
        if (list !== 0 && this.#sweptStop >= 0) this.#orphansLeft = true;
        swept = a.i32[at + LIST] === 0 && (cache !== 0 || list !== 0);
      } finally {
        // Given back whatever threw (a stack overflow): this thread is alive, so nobody else
        // would, and what is left in the seat stays an orphan for the next sweep. Free first,
        // then OWNER (see claimFree); builtins alone, as a release must not fail.
        // From the borrow's claim only: a borrower that outlived the grace (a zombie) may find
        // the seat reaped from it and claimed by a new owner since.
        Atomics.compareExchange(a.i32, at + CLAIM, claim, free);
        Atomics.compareExchange(a.i32, at + OWNER, me, 0);
      }
      // No longer an orphan, counted down only now that the seat is free: a claim that found
      // every seat taken, this one borrowed, waits while the count is up (seatsComingFree).
      // Counted down first, a claimer that looked in between saw the seat held by a live
      // thread and nothing coming free, and threw: a pool's new worker, whose attach came as
      // its parent swept the seat of the worker it replaced (a CI run, Deno).
      if (swept) Atomics.sub(a.i32, orphanWord, 1);
    }
  }

  #comeOnline(): void {
    if (this.#closed) this.#closedError();
    if (!this.#offlineQueued) {
      // The going offline first, queued and then noted, before anything is announced: a
      // queueMicrotask cut short by a stack overflow (JavaScript on Deno and Node) leaves this
      // participant offline and the note down, and the next call comes online and queues it.
      // Queued after the announcement, or noted first, it left this participant announced
      // while idle, for good, holding reclamation and every stop of the world back
      // (helper-109). Queued and not yet online, the microtask finds nothing to do. One
      // microtask for the thread's participants (#flush), not one each: what a microtask holds
      // stays alive until it runs, and a loop that used and dropped maps in one task kept every
      // one, its memory with it (helper-170); the list lets go of them (#close, shedOnline).
      this.#queueOffline();
      this.#offlineQueued = true;
    }
    const i32 = this.arena.i32;
    let now = Atomics.load(i32, this.registry.epochWord);
    // Entries left unstamped while offline (idle(), or a going offline that threw).
    this.#stamp(now);
    if (now === 0) now = 1;
    Atomics.store(i32, this.#seat + ANNOUNCE, now);
    this.#online = true; // no call between: announced and online together
    // After the announcement: a pauser that saw this seat offline sees it online now, or this
    // load sees its pause (both are sequentially consistent). It also keeps a SyncMap's plain
    // read of R_READ after the announcement, on every CPU: a plain read may pass a store, not an
    // atomic load (docs/design.md, "The plain reads of a lookup").
    if (Atomics.load(i32, this.registry.pauseWord) !== 0) this.#pause();
  }

  /**
   * Parks while another thread stops the world for a recovery (see pauseWorld). At a quiescent
   * point: this participant holds nothing. A pause left by a recoverer that died is lowered.
   */
  #pause(): void {
    const i32 = this.arena.i32;
    const word = this.registry.pauseWord;
    const me = ownerId();
    let holder = Atomics.load(i32, word);
    while (holder !== 0 && holder !== me) {
      this.park(0);
      try {
        while (holder !== 0 && holder !== me) {
          if (ownerGone(holder)) {
            Atomics.compareExchange(i32, word, holder, 0);
          } else {
            Atomics.wait(i32, word, holder, WAIT_SLICE_MS);
            checkSelf();
          }
          holder = Atomics.load(i32, word);
        }
      } finally {
        this.unpark();
      }
      // Invariant: this participant goes on only after it has read no pause *after* clearing
      // PARKED. Between this thread's read of 0 above and its unpark, another thread may have
      // raised a new pause and read PARKED still 1, taking this participant for paused: it is
      // sweeping now, and an operation run beside its sweep would have its records freed and
      // the count recounted under it. Both sides are sequentially consistent (the pauser
      // raises the word, then reads PARKED; this thread clears PARKED, then reads the word),
      // so this read sees such a pause, and parks again.
      holder = Atomics.load(i32, word);
    }
  }

  /**
   * A quiescent point of an online participant: parks for a pause, reaps, collects when due, and
   * announces. The words every participant reads here (the pause, the census count, the orphan
   * count, the epoch) are read plainly unless an answer must be current: on JavaScriptCore an
   * `Atomics.load` takes its cache line exclusively, so two readers that each loaded those words
   * atomically at every quiescent point passed their lines to and fro (Bun's read-mostly
   * SyncMap with two workers: 1.065x to 1.134x the throughput with the plain reads, same run),
   * and on V8 each is a call to a builtin. A stale read here only puts something off:
   *
   * - the pause: a pauser waits for this participant, online, to park (PARKED, stored
   *   atomically), so a pause missed here is seen at the next quiescent point (the check whose
   *   order matters is the one after unparking, in #pause, and as a participant comes online);
   * - the census count and the orphan count: hints, acted on through atomic loads;
   * - the epoch, for the announcement only: an older epoch announced holds more back, never less
   *   (a collect frees a block only once every announcement is past its stamp). Retirements not
   *   yet stamped are stamped from an atomic load: a stamp older than the retirement could let a
   *   reader that announced in between lose the block under it.
   *
   * The epoch's read must still come before every read of the map this participant makes after
   * the announcement (docs/design.md, "Never a freed table or record": the epoch announced was
   * read after an increment that followed the unlink). An atomic load gave that order; a plain
   * one does not on a CPU that reorders loads (ARM64: a later plain load may be served before
   * it). So the announcement's store is followed by an atomic load of the seat's own ANNOUNCE:
   * the store, sequentially consistent, comes after the read of the epoch (a release), and the
   * load comes after the store and before every later read (ARM64's `stlr` then `ldar`; on x86
   * loads keep their order anyway). The line is this seat's own, which no other reader loads at
   * every quiescent point, so the load passes no line between readers.
   */
  #quiesce(): void {
    const i32 = this.arena.i32;
    if (i32[this.registry.pauseWord] !== 0) this.#pause();
    this.#lookForDeaths();
    if (this.#pending >= this.#collectAt || this.#drainable(false)) {
      this.collect(COLLECT_BUDGET);
      return;
    }
    this.#announce(
      this.#stamped < this.#pending
        ? Atomics.load(i32, this.registry.epochWord)
        : i32[this.registry.epochWord],
    );
  }

  /**
   * Announces epoch `now`, read just before (see {@linkcode #quiesce} on how): stamps the
   * retirements not yet stamped with it, then stores it (0, which means offline, as 1), then loads
   * the word back, which orders the epoch's read before every later read of the map.
   */
  #announce(now: number): void {
    this.#stamp(now);
    const i32 = this.arena.i32;
    Atomics.store(i32, this.#seat + ANNOUNCE, now === 0 ? 1 : now);
    Atomics.load(i32, this.#seat + ANNOUNCE);
  }

  /**
   * Frees a slice of a backlog before a sweep (a reap's, or a sweep's retry), so that the
   * marking, with the world stopped, does not walk blocks that a collect, which stops no one,
   * can free first: the backlog a stall left ({@linkcode #keptNewest}) once every other
   * participant has announced past it, the orphans' lists, and a list of {@linkcode DRAIN_MIN}
   * entries or more retired since the last collect (a dead worker's seat, until released, held
   * back what the others retired after their last collect, and no collect may have kept any of
   * it yet). At most {@linkcode COLLECT_BUDGET} blocks, as at a quiescent point: freed in one
   * call, the 0.8 million records a Deno zombie's put-off seat had held back stalled the reaping
   * worker 70 ms. Returns whether the sweep may go on: false while a slice stopped at its
   * budget with more to walk, of this participant's list or an orphan's (the marking would walk
   * it with the world stopped; the quiescent points go on from where it stopped, and a retry
   * sweeps). Walks nothing when none of these waits. Only where {@linkcode collect} may be
   * called.
   */
  drainBacklog(): boolean {
    if (this.#pending < DRAIN_MIN && this.#resumeAt < 0 && !this.#drainable(true)) return true;
    this.collect(COLLECT_BUDGET);
    return this.#resumeAt < 0 && !this.#orphansLeft;
  }

  /**
   * Whether a collect now would free what waits beyond the usual threshold: orphans' lists, or
   * the backlog of a stall ({@linkcode #keptNewest}) that every other participant has passed.
   * The orphan count is loaded atomically when `current`, else read plainly (a hint: see
   * {@linkcode #quiesce}).
   */
  #drainable(current: boolean): boolean {
    const i32 = this.arena.i32;
    const orphans = current
      ? Atomics.load(i32, this.registry.orphanWord)
      : i32[this.registry.orphanWord];
    return orphans > 0 ||
      (this.#keptNewest !== 0 && this.#othersPassed(this.#keptNewest));
  }

  /**
   * Whether every other online participant has announced an epoch later than `epoch`: then a
   * block of this participant's stamped `epoch` or earlier can be freed. One atomic load or two
   * a seat, made only while a backlog of {@linkcode DRAIN_MIN} or more waits.
   */
  #othersPassed(epoch: number): boolean {
    const count = seatHigh(this.registry);
    for (let i = 0; i < count; i++) {
      if (i === this.index) continue;
      const e = seatAnnouncement(this.registry, i);
      if (e !== 0 && !before(epoch, e)) return false;
    }
    return true;
  }

  /**
   * Gives the entries retired since the last stamp (from {@linkcode #stamped} to the list's end)
   * the epoch `epoch`, which the caller loaded atomically after their unlinks, as retire would
   * have: every unlink is an atomic write (an entry's compare-exchange or exchange, R_READ's
   * publication at a commit) or a plain write under the mutex that its release, an atomic
   * compare-exchange, publishes (a dirty-only entry's removal), all before this load in the
   * same thread, which therefore reads an epoch at least as late as one read right after the
   * unlink. A later epoch only makes a block wait longer. An epoch of 0 is stamped 1, as it is
   * announced: 0 marks an entry {@linkcode UNSTAMPED}, and 1 is the later of the two.
   */
  #stamp(epoch: number): void {
    if (epoch === 0) epoch = 1;
    const n = this.#pending;
    if (this.#stamped >= n) return;
    const a = this.arena;
    const list = a.i32[this.#seat + LIST];
    if (list === 0) return; // defensive: word 0 is the arena's magic number, not a list
    const w = list >> 2;
    for (let j = this.#stamped; j < n; j++) a.i32[epochAt(w, j)] = epoch;
    this.#stamped = n;
  }

  /**
   * Calls {@linkcode onDeaths} when the census changed since the last look, else
   * {@linkcode onSweepDue} when a sweep is due and the backoff allows. Only where this
   * participant holds nothing (at a quiescent point, or coming online), and no other
   * participant of this thread is inside a hold.
   */
  #lookForDeaths(): void {
    // Left for the next look, the census count unrecorded (see threadHolds).
    if (threadHolds !== 0) return;
    const deaths = censusDeaths();
    if (
      deaths !== this.#deaths ||
      (endsAwaitedAt >= this.#deathsLookedAt &&
        performance.now() - this.#deathsLookedAt >= ENDS_LOOK_MS)
    ) {
      this.#deaths = deaths;
      this.#deathsLookedAt = performance.now();
      this.onDeaths?.();
      // A sweep this left due is retried after the shortest delay.
      this.#sweepDelay = SWEEP_RETRY_MIN_MS;
      this.#sweepRetryAt = performance.now() + SWEEP_RETRY_MIN_MS;
    } else if (this.arena.i32[this.registry.sweepWord] !== 0 && !this.#sweepOwed) {
      // A plain read: the word is a hint, which the retry reads again atomically. Not while
      // this participant owes the sweep: its calls may be near the stack's limit still (see
      // noteThrown), and it sweeps as it goes offline.
      this.#retrySweep();
    }
  }

  /**
   * Calls {@linkcode onSweepDue} when the backoff allows, and doubles the backoff when it could
   * not stop the world. A retry put off for a backlog still being freed comes again after the
   * shortest delay: doubled, the sweep that backlog stood before waited up to twice as long as
   * the quiescent points took to free it (100 + 200 + 400 ms and so on).
   */
  #retrySweep(): void {
    const now = performance.now();
    if (now < this.#sweepRetryAt) return;
    // Backed off before the call, so that one that throws is not made again at every point.
    this.#sweepRetryAt = now + this.#sweepDelay;
    this.#sweepDelay = Math.min(this.#sweepDelay * 2, SWEEP_RETRY_MAX_MS);
    if (this.onSweepDue?.() === true) return;
    this.#sweepRetryAt = now + SWEEP_RETRY_MIN_MS;
    this.#sweepDelay = SWEEP_RETRY_MIN_MS;
  }

  #offline(): void {
    if (!this.#online) return;
    // A share released while its worker still ran (Deno's terminate() lets a synchronous task
    // finish, and the adapters release at once) is no longer this participant's: the seat, and
    // the retire list and cache in it, may have a new owner or be swept by others. Touch
    // nothing. (Found by the cross-worker tests: without this check, this microtask wiped the
    // announcement of the seat's next owner and swept the retire list and cache it had adopted,
    // corrupting the arena.) Nor does a thread marked terminating or gone, whose last calls may
    // have been reads (enterRead does not check the census): the others may be reaping its seat.
    if (!this.#ours()) {
      this.#leave();
      return;
    }
    // Holding nothing now: a good moment to free what this participant retired, and what
    // departed participants left behind. Done while still announced: a stop of the world
    // (pauseWorld) takes an unannounced participant for one that touches nothing, and a sweep
    // running beside these frees would take a block between a retire list and a cache for a
    // leak. A pause raised meanwhile is waited out first.
    if (Atomics.load(this.arena.i32, this.registry.pauseWord) !== 0) this.#pause();
    this.raiseHand(); // collects, as a quiescent point may (registry.ts HAND)
    this.#tidy();
    if (this.#sweepOwed) {
      // What a call cut short by a stack overflow left (noteThrown), swept here, on a short
      // stack, where this thread holds nothing (a microtask runs between tasks). Due first, so
      // that a sweep that cannot stop the world now is retried by every participant.
      this.raiseOwedSweep();
      this.onSweepDue?.();
    }
    this.#withdraw();
  }

  /** Frees what can be freed, and gives back a retire list that grew for a burst. Announced. */
  #tidy(): void {
    this.collect();
    // A retire list that grew for a burst (a clear() of many keys) and is empty again goes back.
    const list = this.arena.i32[this.#seat + LIST];
    if (this.#pending === 0 && list !== 0 && this.#room > LIST_MIN) {
      lockedRelease(this.arena, list, listBytes(this.#room), [this.#seat + LIST, 0]);
      this.#room = 0;
    }
  }

  /**
   * Whether the seat is still this participant's to write: its claim still holds this
   * participant's token, and the census does not mark this thread terminating or gone (checked
   * here, for work done outside a call or after reads only: a marked thread is stopped, which
   * also invalidates the token, so the claim compare then fails and this says no).
   */
  #ours(): boolean {
    try {
      checkAlive();
    } catch {
      // Stopped: every later call throws TerminatedError as it begins.
    }
    return Atomics.load(this.arena.i32, this.#seat + CLAIM) === this.#token;
  }

  /** Goes offline without touching the seat, which is no longer this participant's. */
  #leave(): void {
    this.#online = false;
    this.#countdown = 0;
  }

  /** Withdraws the announcement: from here until the next call, this holds nothing. */
  #withdraw(): void {
    this.#online = false;
    this.#countdown = 0;
    Atomics.store(this.arena.i32, this.#seat + ANNOUNCE, 0);
    this.#clearStaleParked();
  }

  /**
   * Clears PARKED where this participant waits nowhere (a quiescent point, going offline): an
   * unpark cut short by a stack overflow as it was entered (futex.ts lockWordWatched gives the
   * lock back, but not the mark) would leave it parked while it runs, and PARKED_HOLDING would
   * hold back every sweep.
   */
  #clearStaleParked(): void {
    const i32 = this.arena.i32;
    if (i32[this.parkedAt] !== 0) Atomics.store(i32, this.parkedAt, 0);
  }
}
