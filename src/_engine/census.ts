/**
 * Internal. Who this thread is, and which threads of the process are gone.
 *
 * Every lock in shmap records its owner, a thread's *owner id*: its thread id plus one, so that
 * 0 can mean "nobody". The thread id is `node:worker_threads`' `threadId`, which Node, Bun and
 * Deno give every thread (0 for the main thread) and never reuse within a process. One kind of
 * thread lacks its own: a Deno web `Worker`, where `threadId` reads 0 as on the main thread.
 * Such a thread takes an id from the census's counter instead (below), the first time it needs
 * one.
 *
 * The census is a small growable SharedArrayBuffer that every thread of the process can read:
 * an append-only list of what is known about threads that ended. Each entry is a thread id and
 * a state, *terminating* (its parent has asked for it to stop, see below) or *gone* (it will
 * never run again). Whoever learns of a death (a worker adapter seeing its worker end, a
 * `threadGone()` call) appends to it. Nothing is ever guessed: a thread that is only slow is
 * never in the census.
 *
 * A third kind of entry, *child*, records that a worker was started or tracked by a thread
 * other than the main one: its *watcher*, the only thread that learns of its end. The runtimes
 * end a worker's nested workers with it (Node, Bun and Deno all do, on every kind of end), and
 * the watcher's own end events then never run; so a thread whose watcher has ended counts as
 * terminating itself ({@linkcode stateOf}): its next call throws, and a lock it holds is taken
 * over once the grace has passed, as for any terminating thread. "Ended" is *gone* on Node and
 * Bun, whose end events fire once the thread has stopped, its nested workers with it: a worker
 * merely terminating may sit in a blocking call (`execSync`) for seconds before it stops, while
 * the workers it started run on, healthy. On Deno it is *terminating*: no event there says
 * when a thread has stopped (a worker declared gone may still run), so the nested workers of a
 * terminated one are treated as it is, a zombie to be, stopped at its next call. The main
 * thread records no children: its end is the process's.
 *
 * A thread reaches a census through the handles of the structures it attaches (every handle
 * carries the census of the thread that made the structure), so the threads that share a
 * structure share its census. A thread that meets a second census (it made structures before it
 * attached someone else's) remembers both; deaths are written to every census a thread knows and
 * looked up in all of them.
 *
 * Readers of the census are lock slow paths and recovery: a waiter whose lock's owner is gone
 * takes the lock over and repairs what the owner left half-done. Each thread keeps a local copy
 * of the states it has read, so a lookup after the first costs one atomic load (the entry count).
 *
 * *Terminating* exists for Deno, whose `terminate()` does not stop a worker running synchronous
 * code: the worker runs on until its task ends (and one asleep in `Atomics.wait` wakes later and
 * runs on), while a `node:worker_threads` Worker's `exit` event fires at once. Its parent marks
 * it terminating before calling `terminate()`. Every call that may write shared memory begins
 * with {@linkcode checkAlive} (plain reads while nothing changed; a SyncMap read, which writes
 * nothing shared, checks at its quiescent points and before it locks; `Mutex.lock` only in a thread
 * that can run after `terminate()`, {@linkcode mayRunTerminated}), and every wait in shmap is
 * bounded (see futex.ts) and checks this thread's own state when it returns, so such a zombie
 * throws {@linkcode TerminatedError} at its next call, or as its wait returns, instead of
 * running on. The parent records it gone only after a grace period that covers the one call it
 * may be inside (see the Deno adapter).
 *
 * Census layout (32-bit words):
 *
 * | word | meaning                                                                |
 * | ---- | ---------------------------------------------------------------------- |
 * | 0    | magic, {@linkcode CENSUS_MAGIC}                                         |
 * | 1    | entries written and counted (see View.append)                          |
 * | 2    | the next id for threads without one of their own (Deno web workers)     |
 * | 3, 4 | a random 64-bit identity, written before the magic (see adoptCensus)    |
 * | 5..7 | unused                                                                  |
 * | 8..  | entries, two words each (below); 0 past the last written one           |
 *
 * An entry is `(threadId << 2) | state` ({@linkcode TERMINATING}, {@linkcode GONE} or
 * {@linkcode CHILD}), then for a child the owner id of its watcher, written by the appender
 * right after the first word (0 until then, and for good if the appender died between the two).
 * A fourth kind, {@linkcode OS_THREAD} (0, never for thread 0), is a Deno worker's own note of its
 * OS thread (os_thread.ts), in the second word as a child's watcher is: {@linkcode ownerGone}
 * looks that thread up before it lets a lock of a thread recorded ending be taken over.
 *
 * @module
 */

import process from "node:process";
import { parentPort, threadId as runtimeThreadId } from "node:worker_threads";
import { TerminatedError } from "../errors.ts";
import * as runtime from "./runtime.ts";
import { callState, osThreadEnded, osThreadState, ownOsThread } from "./os_thread.ts";
import * as os_thread from "./os_thread.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { RUNTIME } = runtime;
const { CALL_UNKNOWN, IN_CALL, OS_ENDED, OS_RUNNING } = os_thread;

const CENSUS_MAGIC = 0x32534e43; // "CNS2"
const C_MAGIC = 0;
/** Word of a census's entry count, which {@linkcode fast}'s `seen` is compared with. */
export const C_COUNT = 1;
const C_NEXT_ID = 2;
const C_ID_LO = 3;
const C_ID_HI = 4;
const C_ENTRIES = 8;
/** Words per entry: the thread id and state, then the watcher of a child. */
const ENTRY_WORDS = 2;
const INITIAL_BYTES = 4096;
const MAX_BYTES = 64 * 1024 * 1024;

/** Census state: the thread's parent asked it to stop; it may still be running. */
export const TERMINATING = 1;
/** Census state: the thread will never run again. */
export const GONE = 2;
/** Census entry kind: the thread is watched by (and ends with) the thread in its second word. */
const CHILD = 3;
/**
 * Census entry kind: the thread's OS thread is the one in its second word (os_thread.ts), which
 * it writes itself; never the main thread's (id 0, whose entry word would read as unwritten).
 * The second word {@linkcode VOUCHED} (no OS thread's: those are 1,024 and up) says instead that
 * the thread will never run again, whatever its OS thread does (see vouchGone).
 */
const OS_THREAD = 0;
/** An OS_THREAD entry's second word that vouches for the thread's end. */
const VOUCHED = 1;
/**
 * An OS_THREAD entry's second word that says the thread, recorded ending, has been seen out of
 * every shmap call it was in (see ownerMayBeInCall): written by the first thread to see it, so
 * that every other one may release its SyncMap seats, and looks for them as the census changes.
 */
const SEEN_OUT_OF_CALLS = 2;
/** How far {@linkcode stateOf} follows watchers up: deeper nesting counts as the deepest. */
const MAX_NESTING = 64;
/**
 * The state of a watcher from which the threads it watches count as terminating (see CHILD):
 * gone where the end events fire once a thread has stopped, terminating on Deno.
 */
const WATCHER_ENDED = RUNTIME === "deno" ? TERMINATING : GONE;

/** The largest thread id a census can hold (ids ride in 30-bit fields). */
export const MAX_THREAD_ID = 2 ** 28 - 1;
/** The lowest id a census hands out: above every `threadId` a runtime counts up to. */
const MIN_CENSUS_ID = 2 ** 24;
/** Ids a census may hand out before it reaches {@linkcode MAX_THREAD_ID}. */
const CENSUS_IDS = 2 ** 20;

/** One census as this thread sees it: its buffer, and the states read from it so far. */
class View {
  readonly buffer: SharedArrayBuffer;
  /** The census's identity (its words C_ID_LO and C_ID_HI), the same through any buffer object. */
  readonly id: string;
  #i32: Int32Array;
  #seen = 0;
  /** The highest state read for each thread (TERMINATING or GONE). */
  readonly states = new Map<number, number>();
  /** The watcher's thread id of each child read (see CHILD). */
  readonly watchers = new Map<number, number>();
  /** The OS thread of each thread that wrote one, or VOUCHED (see OS_THREAD). */
  readonly osThreads = new Map<number, number>();
  /** The threads seen out of calls (SEEN_OUT_OF_CALLS). */
  readonly outOfCalls = new Set<number>();
  /** The threads with a TERMINATING entry, whatever came after it (see stop). */
  readonly terminating = new Set<number>();
  /**
   * Child and OS thread entries read before their appender wrote the second word: looked at
   * again each sync.
   */
  #unfinished: number[] = [];

  constructor(buffer: SharedArrayBuffer) {
    this.buffer = buffer;
    this.#i32 = new Int32Array(buffer, 0, buffer.byteLength >> 2);
    this.id = censusId(this.#i32);
  }

  get i32(): Int32Array {
    if (this.#i32.length !== this.buffer.byteLength >> 2) {
      this.#i32 = new Int32Array(this.buffer, 0, this.buffer.byteLength >> 2);
    }
    return this.#i32;
  }

  /** Entries read so far: the census's count when this thread last synced. */
  get read(): number {
    return this.#seen;
  }

  /** Reads the entries written since the last call. */
  sync(): void {
    // An appender that died between writing its entry and moving the count on left the entry
    // just past the count: move the count on for it, as the next appender would.
    const count = this.#advance(Atomics.load(this.#i32, C_COUNT));
    if (count === this.#seen && this.#unfinished.length === 0) return;
    const i32 = this.i32;
    for (; this.#seen < count; this.#seen++) {
      const at = C_ENTRIES + this.#seen * ENTRY_WORDS;
      const entry = Atomics.load(i32, at);
      const id = entry >>> 2;
      const state = entry & 3;
      if (state === CHILD || state === OS_THREAD) {
        if (!this.#readSecond(entry, at)) this.#unfinished.push(at);
      } else {
        if (state === TERMINATING) this.terminating.add(id);
        if ((this.states.get(id) ?? 0) < state) this.states.set(id, state);
      }
    }
    if (this.#unfinished.length === 0) return;
    this.#unfinished = this.#unfinished.filter((at) =>
      !this.#readSecond(Atomics.load(i32, at), at)
    );
  }

  /**
   * Reads the second word of the child or OS thread entry `entry` at word `at`; false while it
   * is not written.
   */
  #readSecond(entry: number, at: number): boolean {
    const second = Atomics.load(this.i32, at + 1);
    if (second === 0) return false;
    if ((entry & 3) === CHILD) this.watchers.set(entry >>> 2, second - 1);
    else if (second === SEEN_OUT_OF_CALLS) this.outOfCalls.add(entry >>> 2);
    else this.osThreads.set(entry >>> 2, second);
    return true;
  }

  /**
   * Moves the count on past every written entry from `count`, and returns the count it leaves.
   * Only a written entry is ever counted, so readers never wait behind a reserved one.
   */
  #advance(count: number): number {
    const i32 = this.i32;
    while (
      C_ENTRIES + (count + 1) * ENTRY_WORDS <= i32.length &&
      Atomics.load(i32, C_ENTRIES + count * ENTRY_WORDS) !== 0
    ) {
      const seen = Atomics.compareExchange(i32, C_COUNT, count, count + 1);
      count = seen === count ? count + 1 : seen;
    }
    return count;
  }

  /**
   * Appends an entry. Lock-free, in two steps of which either may be the last a dying appender
   * takes: write the first free entry (the one at the count) with a compare-exchange from 0, then
   * move the count past it. Whoever finds a written entry at the count (the next appender, or a
   * reader's sync) moves the count on, so a death between the steps loses nothing and blocks
   * nobody, and a death before the first changes nothing. A child's watcher or an OS thread
   * (`second`) is written between the two steps; readers that find it still 0 look again at
   * their next sync, and a death before it leaves an entry that says nothing.
   */
  append(id: number, state: number, second = 0): void {
    const value = (id << 2) | state;
    for (;;) {
      const count = Atomics.load(this.#i32, C_COUNT);
      const at = C_ENTRIES + count * ENTRY_WORDS;
      this.#reach((at + ENTRY_WORDS) * 4);
      const won = Atomics.compareExchange(this.i32, at, 0, value) === 0;
      if (won && second !== 0) Atomics.store(this.i32, at + 1, second);
      this.#advance(count);
      if (won) break;
    }
    Atomics.notify(this.#i32, C_COUNT);
  }

  /** Grows the census to at least `need` bytes. */
  #reach(need: number): void {
    while (this.buffer.byteLength < need) {
      const want = Math.min(MAX_BYTES, Math.max(need, this.buffer.byteLength * 2));
      if (want < need) throw new RangeError("the census of ended threads is full");
      try {
        this.buffer.grow(want);
      } catch {
        // Another thread grew it meanwhile (grow refuses to shrink); look again.
      }
    }
  }
}

let views: View[] = [];
let primary: View | undefined;
/** The first words of each census this thread knows, read plainly by {@linkcode checkAlive}. */
let heads: Int32Array[] = [];
/** Entries of every census read when {@linkcode checkAlive} last looked (see View.read). */
let entriesRead = 0;
/** Stands in for a census's first words while this thread knows none: a count of 0. */
const NO_CENSUS = new Int32Array(C_ENTRIES);
/**
 * The fast paths' state, in one object: every field is one load off a constant (module `let`s
 * cost more: each read is a scope lookup and a TDZ check, which JavaScriptCore does not fold).
 *
 * - `head`: the first words of the one census this thread knows (or {@linkcode NO_CENSUS}).
 * - `seen`: {@linkcode checkAlive} passes while `head[C_COUNT] === seen`: the entries this
 *   thread had read when it last looked, or -1, which no count equals, whenever the fast path
 *   must not pass (this thread is stopped, or knows more than one census, or has just met one).
 * - `liveSeen`: {@linkcode liveOwnerId} passes while `head[C_COUNT] === liveSeen`: `seen`, or -1
 *   while this thread's owner id is not known yet.
 * - `owner`: this thread's owner id once known; 0 before.
 * - `stopped`: this thread has learned it was terminated (it threw TerminatedError once), and
 *   must not touch shared memory again. The public locks' write unlocks read it too, so that a zombie's `finally` releases its lock poisoned
 *   rather than hand the data a cut-short section left half-written on clean.
 *
 * Exported for the hottest callers (the public locks, Participant.enter), which write
 * {@linkcode liveOwnerId}'s or {@linkcode checkAlive}'s fast path out: the engines left those
 * calls in place there (JavaScriptCore in the locks, where the call cost about 1 ns of a 5 ns
 * lock+unlock; V8 in the large SyncMap paths). Every other reader goes through the functions.
 */
export const fast = {
  head: NO_CENSUS as Int32Array,
  seen: 0,
  liveSeen: -1,
  owner: 0,
  stopped: false,
};

function know(view: View): void {
  views.push(view);
  heads.push(new Int32Array(view.buffer, 0, C_ENTRIES));
  fast.head = heads[0];
  fast.seen = -1;
  fast.liveSeen = -1;
  if (osThread !== 0) announceOsThread(view);
}

/**
 * This worker's OS thread (os_thread.ts), once it has an owner id, on Deno where /proc can be
 * read; 0 otherwise. Written into every census this thread knows, as it takes its id and as it
 * meets a census after that.
 */
let osThread = 0;

/**
 * Notes this thread's OS thread as it takes owner id `owner` (not the main thread's): on Deno,
 * for every use of os_thread.ts; on Node and Bun, for {@linkcode osEnded}'s alone.
 */
function noteOsThread(owner: number): void {
  if (owner <= 1 || osThread !== 0) return;
  osThread = ownOsThread();
  if (osThread === 0) return;
  for (const view of views) announceOsThread(view);
}

/**
 * Writes this thread's OS thread into census `view`, unless it is there (see OS_THREAD). Never
 * throws: without the entry (a census that cannot take it), others wait out the grace instead.
 */
function announceOsThread(view: View): void {
  const me = fast.owner - 1;
  if (me <= 0) return;
  try {
    writeOsThread(view, me, osThread);
  } catch {
    // See above.
  }
}

/**
 * Appends to census `view` the OS_THREAD entry of `threadId` with second word `second` (its OS
 * thread, VOUCHED or SEEN_OUT_OF_CALLS), unless the census says so already.
 */
function writeOsThread(view: View, threadId: number, second: number): void {
  view.sync();
  const there = second === SEEN_OUT_OF_CALLS
    ? view.outOfCalls.has(threadId)
    : view.osThreads.get(threadId) === second;
  if (!there) view.append(threadId, OS_THREAD, second);
}
/**
 * Whether this thread can run JavaScript after its parent's `terminate()`: a worker on Deno or
 * Bun. Deno's `terminate()` stops neither a worker running synchronous code nor one asleep in
 * `Atomics.wait`. Bun's stops running JavaScript at its next check, but a worker inside a long
 * native call (`Bun.sleepSync`, `crypto.pbkdf2Sync`, a blocking read) returns from it and runs a
 * few statements first: enough for an inlined `lock()` and the start of a critical section
 * (tests/terminated_in_native_call_test.ts). Node's stops a worker in every such case before
 * it runs another statement, and nothing terminates a main thread. The public locks check the
 * census on their fast paths only where this is true (Mutex.lock); every other path checks in
 * every thread, as this file's doc says.
 */
export const mayRunTerminated: boolean = RUNTIME !== "node" &&
  (runtimeThreadId !== 0 || needsOwnId());

/**
 * Whether this thread can ever learn it was terminated: any worker (a main thread is never
 * terminated). A Node worker too: its adapter marks it terminating before `terminate()` stops
 * it, and it may meet the mark at a call in between. The public locks' releases check
 * `fast.stopped` only where this is true (Mutex.unlock), so that a main thread's pays nothing.
 */
export const mayBeTerminated: boolean = mayRunTerminated || runtimeThreadId !== 0;

/**
 * Test-only export: a new census. Its ids start anywhere in [2^24, 2^28 - 2^20): two censuses
 * made apart (by threads that had not met yet, such as Deno web workers that asked for their id
 * before attaching anything) hand out the same id only if their ranges overlap, about once in
 * 2^28 / (the ids both handed out). A thread's id is its identity in every lock word and census
 * entry, so two live threads with one id would each unlock the other's locks, and the end of
 * one would end the other.
 */
export function newCensus(): SharedArrayBuffer {
  const buffer = new SharedArrayBuffer(INITIAL_BYTES, { maxByteLength: MAX_BYTES });
  const i32 = new Int32Array(buffer);
  const word = new Uint32Array(1);
  crypto.getRandomValues(word);
  i32[C_NEXT_ID] = MIN_CENSUS_ID + word[0] % (MAX_THREAD_ID + 1 - CENSUS_IDS - MIN_CENSUS_ID);
  const id = new Int32Array(2);
  crypto.getRandomValues(id);
  i32[C_ID_LO] = id[0];
  i32[C_ID_HI] = id[1];
  Atomics.store(i32, C_MAGIC, CENSUS_MAGIC);
  return buffer;
}

/** A census's identity, from its header words `i32` (read after its magic). */
function censusId(i32: Int32Array): string {
  return `${i32[C_ID_LO]}:${i32[C_ID_HI]}`;
}

/** The census this thread writes new structures' handles with; made on first use. */
export function census(): SharedArrayBuffer {
  if (primary === undefined) {
    primary = new View(newCensus());
    know(primary);
  }
  return primary.buffer;
}

/**
 * Takes note of the census a handle carried. Returns false, changing nothing, when `buffer` is
 * not a census (handles made by an older layout carry none).
 */
export function adoptCensus(buffer: unknown): boolean {
  if (!(buffer instanceof SharedArrayBuffer) || !buffer.growable || buffer.byteLength < 64) {
    return false;
  }
  const head = new Int32Array(buffer, 0, C_ENTRIES);
  if (Atomics.load(head, C_MAGIC) !== CENSUS_MAGIC) return false;
  // Every postMessage of a handle brings a new SharedArrayBuffer object for the same memory:
  // known by its identity, a census met again is not a second census (the fast paths pass only
  // while this thread knows one).
  const id = censusId(head);
  for (const view of views) if (view.buffer === buffer || view.id === id) return true;
  const view = new View(buffer);
  know(view);
  primary ??= view;
  return true;
}

/** Whether `threadId` looks like a thread id this module can record. */
export function isThreadId(threadId: unknown): threadId is number {
  return Number.isSafeInteger(threadId) && (threadId as number) >= 0 &&
    (threadId as number) <= MAX_THREAD_ID;
}

/** Throws TypeError unless {@linkcode isThreadId}: what the census's writers take. */
function checkThreadId(threadId: number): void {
  if (!isThreadId(threadId)) {
    throw new TypeError(
      `expected a thread id (an integer in [0, ${MAX_THREAD_ID}]), got ${threadId}`,
    );
  }
}

/** A Deno web worker: `threadId` is 0 there, as on the main thread. */
function needsOwnId(): boolean {
  return runtimeThreadId === 0 && RUNTIME === "deno" && inWorkerScope();
}

/** Whether this thread runs a web worker's global scope (Deno's and Bun's web workers). */
export function inWorkerScope(): boolean {
  const scope = (globalThis as Record<string, unknown>).WorkerGlobalScope;
  return typeof scope === "function" && globalThis instanceof scope;
}

/** This thread's id: the runtime's `threadId`, or one from the census (Deno web workers). */
export function selfThreadId(): number {
  return ownerId() - 1;
}

/** This thread's owner id: its thread id plus one. Never 0. */
export function ownerId(): number {
  const owner = fast.owner;
  return owner !== 0 ? owner : firstOwnerId();
}

/** {@linkcode ownerId} the first time: small functions inline into the lock paths. */
function firstOwnerId(): number {
  let id = runtimeThreadId;
  if (needsOwnId()) {
    census();
    id = Atomics.add(primary!.i32, C_NEXT_ID, 1);
  }
  if (!isThreadId(id)) throw new RangeError(`thread id ${id} is out of range`);
  // Watched first: should this throw (a stack overflow), the id is not taken yet, and the next
  // call tries again.
  if (id !== 0) watchOwnExit();
  fast.owner = id + 1;
  noteOsThread(id + 1);
  return id + 1;
}

/**
 * Test-only and adapter-only: sets this thread's id before anything used it (the Deno adapter
 * gives a web worker the id its parent reserved for it). Returns the id in force.
 */
export function claimThreadId(threadId: number): number {
  if (fast.owner === 0 && isThreadId(threadId)) {
    if (threadId !== 0) watchOwnExit();
    fast.owner = threadId + 1;
    noteOsThread(threadId + 1);
  }
  return fast.owner - 1;
}

/**
 * Set while this worker's process `exit` event runs, once {@linkcode recordOwnExit} has recorded
 * it terminating: the thread is ending of its own accord, not a zombie, so its own calls from
 * exit handlers (a last `unlock()`, a `close()`) still work.
 */
let exiting = false;

/** Whether {@linkcode watchOwnExit} has added its listener. */
let exitWatched = false;

/**
 * As a worker (not the main thread, whose exit ends the process and every thread with it) takes
 * its owner id: records the worker terminating when it exits by itself (`process.exit()`, an
 * uncaught error, its work done; Node, Bun and Deno fire the worker's process `exit` event for
 * each, Deno's web workers for `process.exit()` and `Deno.exit()` only, the rest being deno.ts's
 * goodbye). Its parent learns the end from an event its event loop delivers, and a parent
 * blocked in `lock()` for a lock the worker held delivers nothing: this entry is what its wait
 * then sees, and it takes the lock over after the grace.
 *
 * The listener is kept the last of the `exit` listeners (moved back to the end whenever one is
 * added through `on`, `addListener` or `once`), so that the worker's own exit handlers, which
 * may still hold and use locks, have all run when the grace begins.
 */
function watchOwnExit(): void {
  if (exitWatched) return;
  const emitter = process as unknown as Record<string, (event: unknown, f: unknown) => unknown>;
  const on = emitter.on;
  const off = emitter.off;
  // Each move adds a fresh copy of the listener before it removes the one in place, and only
  // the latest copy acts: a move cut short (a stack overflow) never loses the watch, and a copy
  // it leaves behind, before exit handlers added since, does nothing. No call of ours between a
  // copy's adding and its becoming the latest.
  let latest: () => void = () => {};
  const copy = (): () => void => {
    const self = (): void => {
      if (latest === self) recordOwnExit();
    };
    return self;
  };
  const first = copy();
  on.call(process, "exit", first);
  latest = first;
  exitWatched = true;
  for (const name of ["on", "addListener", "once"]) {
    const add = emitter[name];
    emitter[name] = function (this: unknown, event: unknown, f: unknown): unknown {
      const result = add.call(this, event, f);
      if (event === "exit" && f !== latest && this === process) {
        const previous = latest;
        const next = copy();
        on.call(process, "exit", next);
        latest = next;
        off.call(process, "exit", previous);
      }
      return result;
    };
  }
}

/** {@linkcode watchOwnExit}'s listener. Never throws: the thread is exiting. */
function recordOwnExit(): void {
  // A thread that knows no census never shared anything; one stopped, or already recorded
  // ending by another thread, keeps the rule that its calls throw.
  if (views.length === 0 || fast.stopped) return;
  try {
    const me = fast.owner - 1;
    // Ending of its own accord, not terminated: its idle SyncMap objects give their seats back
    // now, as close() would (the user's exit handlers, before this listener, are done with them).
    const own = stateOf(me) === 0;
    if (own) {
      exiting = true;
      for (const hook of ownExitHooks) hook();
    }
    // A terminated node:worker_threads worker under Deno that exits keeps its OS thread for
    // good (Deno 2.9: the thread stays in /proc/self/task, its JavaScript over), so its end is
    // vouched for here, by the last of its exit listeners: else its locks would wait for that
    // thread (ownerGone). One that was not terminated ends its thread; the same.
    if (denoNodeWorker) {
      exiting = true;
      vouchGone(me);
      return;
    }
    if (!own) return;
    record(me, TERMINATING);
  } catch {
    // A census that cannot take the entry: the parent's end event still declares the worker.
  }
}

/** What {@linkcode onOwnExit} calls. */
const ownExitHooks = new Set<() => void>();

/**
 * Calls `hook` as this worker exits of its own accord (its work done, `process.exit()`, an
 * uncaught error: its process `exit` event, after the user's listeners), not when it was
 * terminated. A worker that attached a SyncMap by hand, untracked, and never closed it held its
 * seat past its end until some live object of the map made a call: a pool's next worker, with
 * its parent idle, waited and then failed to attach (helper-175: Node 5 of 5, Bun web workers
 * about half). `hook` must not throw.
 */
export function onOwnExit(hook: () => void): void {
  ownExitHooks.add(hook);
}

/** Reserves an id for a thread that has none of its own (a Deno web worker about to start). */
export function reserveThreadId(): number {
  census();
  return Atomics.add(primary!.i32, C_NEXT_ID, 1);
}

/**
 * The state of `threadId` as the censuses this thread knows record it: 0, TERMINATING or GONE;
 * at least TERMINATING when its watcher, or the watcher's watcher, and so on, has ended (see
 * CHILD).
 */
export function stateOf(threadId: number): number {
  for (const view of views) view.sync();
  return stateRead(threadId);
}

/** {@linkcode stateOf} as of the entries this thread has read, without reading new ones. */
function stateRead(threadId: number): number {
  let state = recorded(threadId);
  let id = threadId;
  for (let depth = 0; depth < MAX_NESTING && state === 0; depth++) {
    const watcher = watcherOf(id);
    if (watcher === undefined) break;
    if (recorded(watcher) >= WATCHER_ENDED) state = TERMINATING;
    id = watcher;
  }
  return state;
}

/**
 * Whether thread `threadId`'s OS thread has ended, read from /proc now (os_thread.ts
 * osThreadEnded: no memory of it kept), or someone vouched for its end; false where the censuses
 * this thread knows do not name it or it cannot be seen.
 */
function osEnded(threadId: number): boolean {
  const entry = osEntry(threadId);
  return entry === VOUCHED || (entry !== undefined && osThreadEnded(entry));
}

/** The highest state entered for `threadId` itself in the censuses this thread has read. */
function recorded(threadId: number): number {
  let state = 0;
  for (const view of views) {
    const s = view.states.get(threadId) ?? 0;
    if (s > state) state = s;
  }
  return state;
}

/**
 * The threads that `threadId` watches (see CHILD) and that no census records gone yet: they
 * ended with it, and whoever declares it gone declares them gone too (after a grace, since
 * a Deno worker may run on for a while).
 */
export function childrenOf(threadId: number): number[] {
  const children = new Set<number>();
  for (const view of views) {
    view.sync();
    for (const [child, watcher] of view.watchers) {
      if (watcher === threadId && recorded(child) !== GONE) children.add(child);
    }
  }
  return [...children];
}

/** The watcher of `threadId` (see CHILD) as read so far, if it has one. */
function watcherOf(threadId: number): number | undefined {
  for (const view of views) {
    const watcher = view.watchers.get(threadId);
    if (watcher !== undefined) return watcher;
  }
  return undefined;
}

/**
 * Whether the thread with owner id `owner` is recorded terminating and not yet gone: what it
 * holds is freed once {@linkcode ownerGone} says so, within the grace. Slow paths only.
 */
export function ownerEnding(owner: number): boolean {
  return views.length !== 0 && stateOf(owner - 1) === TERMINATING;
}

/**
 * Whether the thread with owner id `owner` is gone, for taking over a lock it holds: recorded
 * ending (terminating or gone) and, where its OS thread is known (a worker on Linux,
 * os_thread.ts), that thread has ended or someone vouched for its end ({@linkcode vouchGone});
 * while it runs, never on Deno (on Node and Bun, the grace); while it sleeps, or where it cannot
 * be seen, as {@linkcode ownerDeclaredGone} says. Not recorded ending: only once its OS thread
 * has ended ({@linkcode unreportedEnd}). A Deno zombie still running keeps its locks, the engine's
 * and the user's, however long it runs or is descheduled, even once its adapter has declared it
 * gone after the grace: inside a step it may still write what the lock guards, and inside a
 * user's critical section, the user's data. Slow paths only.
 */
export function ownerGone(owner: number): boolean {
  if (views.length === 0) return false;
  const state = stateOf(owner - 1);
  if (state === 0) return unreportedEnd(owner);
  if (RUNTIME !== "deno") {
    // A thread recorded ending that still runs is left to the grace, as before Node's and Bun's
    // workers wrote their OS thread: their end events fire once a thread has stopped.
    return declaredGone(owner, state) || osEnded(owner - 1);
  }
  const os = threadState(owner - 1);
  if (os === OS_ENDED) return true;
  if (os === OS_RUNNING) return false;
  // Asleep in a wait that, for a terminated worker, nothing may ever end (Deno does not wake
  // it), or not known: the grace, as everywhere the thread cannot be seen.
  return declaredGone(owner, state);
}

/** When this thread last looked at the OS thread of each owner not recorded gone. */
const unreportedLooks = new Map<number, number>();
/** How often {@linkcode unreportedEnd} looks at one owner's OS thread, at most: a wait slice. */
const UNREPORTED_LOOK_MS = 50;

/**
 * {@linkcode ownerGone} of an owner not recorded ending, and {@linkcode declaredGone} of one
 * recorded terminating: whether its OS thread (os_thread.ts, where the census names it) has
 * ended, a death nobody reported. A worker that was never tracked, or one its runtime killed
 * for want of memory while the thread its end events go to waits for one of its locks
 * (helper-158), or one that ended by `process.exit()` where its exit event did not run: each
 * holds its locks for good otherwise. An untracked worker that ended by itself records itself
 * terminating (recordOwnExit), and nobody declares it gone: its SyncMap seats waited for a
 * thread to see it terminating twice, the grace apart, and the short-lived workers of a pool
 * each saw it once and ended (helper-164: 256 such workers took every seat). The end is
 * recorded (GONE) once seen, as a declaration would, so that its seats are reaped as any dead
 * thread's. A file read, at most once per {@linkcode UNREPORTED_LOOK_MS} per owner: the callers
 * are the slow paths of waits and scans, which meet live owners all the time.
 */
function unreportedEnd(owner: number): boolean {
  const now = performance.now();
  const last = unreportedLooks.get(owner);
  if (last !== undefined && now - last < UNREPORTED_LOOK_MS) return false;
  // One entry per owner looked at: a process that churns workers starts the memory over now and
  // then (a look sooner than due costs a file read, no more).
  if (unreportedLooks.size >= 4096) unreportedLooks.clear();
  unreportedLooks.set(owner, now);
  if (!osEnded(owner - 1)) return false;
  unreportedLooks.delete(owner);
  try {
    record(owner - 1, GONE);
  } catch {
    // A census that cannot take the entry: the lock is taken over all the same.
  }
  return true;
}

/**
 * Whether the thread with owner id `owner` is recorded gone, or terminating for the grace: for
 * what is not a lock, where a zombie may sit in user code it never leaves (a wait nobody ends),
 * and whose next call into shmap throws instead of writing: a SyncMap claim (loadOrCompute's
 * `fn` runs outside every lock, and its result is never stored), and an RWMutex reader seat that
 * holds no read lock. Not recorded ending: once its OS thread has ended
 * ({@linkcode unreportedEnd}). Slow paths only.
 */
export function ownerDeclaredGone(owner: number): boolean {
  if (views.length === 0) return false;
  const state = stateOf(owner - 1);
  // A death nobody reported, seen as ownerGone sees it: the thread has ended.
  return state === 0 ? unreportedEnd(owner) : declaredGone(owner, state);
}

/**
 * Whether the thread with owner id `owner` is recorded ending ({@linkcode ownerEnding}) or
 * declared gone, or has ended unreported ({@linkcode ownerDeclaredGone}): a seat it holds, a
 * SyncMap participant's or an RWMutex reader's, is on its way back (it is given back once the
 * thread is gone and out of its calls), which a claim that found every seat taken waits for.
 * Slow paths only.
 */
export function ownerEndingOrGone(owner: number): boolean {
  return ownerEnding(owner) || ownerDeclaredGone(owner);
}

/**
 * {@linkcode ownerDeclaredGone}, and in no shmap call ({@linkcode ownerMayBeInCall}): for a
 * SyncMap participant's seat, whose release repairs the allocation cache and retire list the
 * owner's calls write, and clears its announcement, and which a sweep frees the blocks of. A
 * zombie running in user code keeps it only until it has run a little past the grace; one
 * descheduled inside a call keeps it until it runs again. Slow paths only: past the grace, a
 * file read or two for a thread whose OS thread is known.
 */
export function ownerOutOfCalls(owner: number): boolean {
  return ownerDeclaredGone(owner) && !inCall(owner - 1);
}

/**
 * Whether the thread with owner id `owner`, recorded ending, may still be inside a shmap call it
 * was in when its end was learned: its OS thread is known (a Deno worker on Linux) and
 * os_thread.ts `callState` says IN_CALL (it runs and has not yet run on a CPU for RUN_PROOF_MS
 * since this thread first asked, nor been found asleep at every look for ASLEEP_PROOF_MS), and no
 * thread has written it seen out of calls. A zombie descheduled in the middle of a lock-free step
 * (a SyncMap store between taking a block from its seat's cache and publishing it) stays so,
 * however long that lasts; one spinning in user code runs that long at once. False for a live
 * thread, an ended, vouched or sleeping one (the grace decides), and where the thread cannot be
 * seen.
 */
export function ownerMayBeInCall(owner: number): boolean {
  return views.length !== 0 && stateOf(owner - 1) !== 0 && inCall(owner - 1);
}

/**
 * {@linkcode ownerMayBeInCall} of thread `threadId`, recorded ending. What one thread sees, it
 * writes for all (SEEN_OUT_OF_CALLS): a thread asks once where another asks again, and only the
 * thread that learned the end asks until it is so (workers/_thread_end.ts).
 */
function inCall(threadId: number): boolean {
  if (RUNTIME !== "deno") return false; // see ownerGone
  const entry = osEntry(threadId); // syncs every view
  if (entry === undefined || entry === VOUCHED) return false;
  if (views.some((view) => view.outOfCalls.has(threadId))) return false;
  const state = callState(entry);
  if (state === IN_CALL) return true;
  // Not known (this thread cannot see it): the grace decides, and nothing is written for others.
  // Nor for a thread that has ended, which every thread sees at its first look: the census's room
  // goes to what takes looks over time to see (a zombie that ran on, or slept).
  if (state === CALL_UNKNOWN || osThreadState(entry) === OS_ENDED) return false;
  for (const view of views) {
    try {
      writeOsThread(view, threadId, SEEN_OUT_OF_CALLS);
    } catch {
      // A census that cannot take the entry: the others see it for themselves.
    }
  }
  return false;
}

/** {@linkcode ownerDeclaredGone} of a thread in census state `state`. */
function declaredGone(owner: number, state: number): boolean {
  if (state === GONE) return true;
  // Terminating: the end has been learned (terminate() was called, or the worker's end event
  // seen), and the declaration that it is gone comes after the grace, from the event loop of the
  // thread that learned it. That loop may be blocked by this very call (waiting for a lock the
  // worker held), or by a wait for another thread that waits for this one; so every thread
  // counts a terminating one as gone once it has itself seen it terminating for the grace. A
  // worker still running stops at its next call (checkAlive), so only a call in progress (or a
  // SyncMap read, which writes nothing, up to 63 of them) can outlive the grace, as it can the
  // declaration.
  if (state !== TERMINATING) return false;
  const now = performance.now();
  const since = terminatingSince.get(owner);
  if (since === undefined) terminatingSince.set(owner, now);
  else if (now - since >= TERMINATE_GRACE_MS) return true;
  // Its OS thread has ended: gone, grace or not.
  if (unreportedEnd(owner)) return true;
  endsAwaitedAt = now;
  return false;
}

/**
 * When this thread last found a thread recorded terminating and not yet gone
 * ({@linkcode declaredGone}): a SyncMap participant that looked for deaths before then looks
 * again a little later, census change or not (reclaim.ts), since nothing may change the census
 * when that thread's time comes (the end of a worker that ended itself, untracked).
 */
export let endsAwaitedAt = -1;

/**
 * The state of thread `threadId`'s OS thread (os_thread.ts: OS_ENDED, OS_RUNNING or
 * OS_SLEEPING), where the censuses this thread knows name it and /proc can be read; OS_ENDED
 * when its end was vouched for; undefined when not known. Slow paths only: a file read.
 */
export function threadState(threadId: number): number | undefined {
  const entry = osEntry(threadId);
  if (entry === VOUCHED) return OS_ENDED;
  return entry === undefined ? undefined : osThreadState(entry);
}

/**
 * Thread `threadId`'s OS_THREAD entry in the censuses this thread knows: VOUCHED if any vouches
 * for its end, else the first one's note of its OS thread; undefined if none names it.
 */
function osEntry(threadId: number): number | undefined {
  let found: number | undefined;
  for (const view of views) {
    view.sync();
    const entry = view.osThreads.get(threadId);
    if (entry === VOUCHED) return VOUCHED;
    found ??= entry;
  }
  return found;
}

/**
 * Records that thread `threadId` is gone and will never run again, whatever its OS thread does
 * ({@linkcode ownerGone} then takes its locks over at once): for `threadGone()`, whose caller
 * knows, and for a terminated `node:worker_threads` worker under Deno as it exits, whose OS thread
 * outlives its exit (Deno 2.9 leaves it in /proc/self/task for good).
 */
export function vouchGone(threadId: number): void {
  record(threadId, GONE);
  if (RUNTIME !== "deno" || threadId === 0) return;
  for (const view of views) writeOsThread(view, threadId, VOUCHED);
}

/**
 * How long a thread marked terminating may still run, at most, before it counts as gone (see
 * {@linkcode ownerGone}); the worker adapters declare a Deno worker's end after it too.
 */
export const TERMINATE_GRACE_MS = 250;
/** When this thread first saw each terminating owner as such (performance.now()). */
const terminatingSince = new Map<number, number>();
/**
 * Records that thread `threadId` is terminating (it is about to be terminated, or its end was
 * seen and its declaration as gone waits for the grace): its next call into shmap throws, and a
 * wait for a lock it holds ends after the grace (see {@linkcode ownerGone}).
 */
export function markTerminating(threadId: number): void {
  record(threadId, TERMINATING);
}

/** Records `state` for `threadId` in every census this thread knows (making one if none). */
export function record(threadId: number, state: number): void {
  checkThreadId(threadId);
  census();
  for (const view of views) {
    view.sync();
    if ((view.states.get(threadId) ?? 0) >= state) continue;
    view.append(threadId, state);
    view.sync();
  }
  if (state === GONE) queueGoneHooks();
}

/** What {@linkcode onGone} calls. */
const goneHooks = new Set<() => void>();
/** Whether a microtask to call {@linkcode goneHooks} is queued. */
let goneQueued = false;

/**
 * Calls `hook` in a microtask of its own after this thread records a thread gone
 * ({@linkcode record}, `threadGone`), or sees a gone thread out of every call
 * ({@linkcode queueGoneHooks}): where a thread's end is learnt, the SyncMap objects of that thread
 * give back its seats at once (maps/_sync_attached.ts), rather than at their next call, which may
 * never come while a new worker waits for a seat. A microtask runs with no call of this thread's
 * on the stack, wherever the end was recorded (a `threadGone` inside a map's callback included).
 * `hook` must not throw.
 */
export function onGone(hook: () => void): void {
  goneHooks.add(hook);
}

/** Whether {@linkcode queueGoneHooks} queues (tests switch it off: {@linkcode setGoneHooksForTests}). */
let goneHooksOn = true;

/**
 * For tests of what a thread declared gone does itself: switches the {@linkcode onGone} hooks off
 * (`false`), so that no object of this thread reaps the gone thread's seat before the test has
 * looked at it, or on again.
 */
export function setGoneHooksForTests(on: boolean): void {
  goneHooksOn = on;
}

/** Queues the call of every {@linkcode onGone} hook, once until it has run. */
export function queueGoneHooks(): void {
  if (goneQueued || goneHooks.size === 0 || !goneHooksOn) return;
  goneQueued = true;
  queueMicrotask(() => {
    goneQueued = false;
    for (const hook of goneHooks) hook();
  });
}

/**
 * Records that thread `threadId` is watched by this thread, which is not the main thread: it
 * ends when this thread ends, and is then counted terminating (see CHILD). Does nothing on the
 * main thread, or when the census says so already.
 */
export function recordChild(threadId: number): void {
  checkThreadId(threadId);
  const watcher = selfThreadId();
  if (watcher === 0 || watcher === threadId) return;
  census();
  for (const view of views) {
    view.sync();
    if (view.watchers.get(threadId) === watcher) continue;
    view.append(threadId, CHILD, watcher + 1);
    view.sync();
  }
}

/**
 * Called when a wait in shmap returns: if this thread has been marked terminating or gone, it
 * was terminated while it slept (Deno loses terminate() during `Atomics.wait`), so it enters
 * the stopped state and throws {@linkcode TerminatedError}.
 */
export function checkSelf(): void {
  if (fast.stopped) stoppedAgain();
  if (fast.owner === 0 || views.length === 0 || exiting) return;
  if (stateOf(fast.owner - 1) !== 0) stop();
}

/**
 * Called as every call that may write shared memory begins: throws {@linkcode TerminatedError}
 * when this thread has been marked terminating or gone. This is what stops a Deno zombie (a
 * worker whose `terminate()` came while it ran synchronous code: Deno lets it run until its
 * task ends, and fires a `node:worker_threads` Worker's `exit` at once) at its next call. The
 * fast path is plain reads: the stopped flag and each known census's entry count; only when a
 * count moved is this thread's own state looked up.
 */
export function checkAlive(): void {
  // One plain read and a compare, inlined into every caller; the rest is out of line.
  const f = fast;
  if (f.head[C_COUNT] !== f.seen) checkAliveSlow();
}

/**
 * {@linkcode checkAlive}, then {@linkcode ownerId}: how every call that takes a lock begins. One
 * small function with one compare on the fast path, so that it inlines into the lock paths.
 */
export function liveOwnerId(): number {
  const f = fast;
  return f.head[C_COUNT] === f.liveSeen ? f.owner : liveOwnerIdSlow();
}

/** {@linkcode liveOwnerId} when its compare failed (the census moved, or no id yet). */
export function liveOwnerIdSlow(): number {
  const owner = ownerId();
  checkAliveSlow();
  return owner;
}

/**
 * Set while the check at the start of a call runs ({@linkcode checkAliveSlowAtEntry},
 * {@linkcode liveOwnerIdAtEntry}): there this thread holds no lock of the engine's, so
 * {@linkcode stop} may wait for a `terminate()` under way (awaitTerminate). Every other check
 * (inside a locked step, after a wait) throws at once: asleep there holding a map's mutex or
 * write sequence, a thread whose `terminate()` never came would be taken over once the grace
 * had passed, and its unwinding would then write what the lock's new holder owns.
 */
let atEntry = false;

/** {@linkcode checkAliveSlow} at the start of a call (see {@linkcode atEntry}). */
export function checkAliveSlowAtEntry(): void {
  atEntry = true;
  try {
    checkAliveSlow();
  } finally {
    atEntry = false;
  }
}

/** {@linkcode liveOwnerId} at the start of a call (see {@linkcode atEntry}). */
export function liveOwnerIdAtEntry(): number {
  const f = fast;
  return f.head[C_COUNT] === f.liveSeen ? f.owner : liveOwnerIdSlowAtEntry();
}

/** {@linkcode liveOwnerIdSlow} at the start of a call (see {@linkcode atEntry}). */
export function liveOwnerIdSlowAtEntry(): number {
  const owner = ownerId();
  checkAliveSlowAtEntry();
  return owner;
}

/** {@linkcode checkAlive} when its compare failed: looks this thread's state up. */
export function checkAliveSlow(): void {
  if (fast.stopped) stoppedAgain();
  // The counts as this thread synced them: the fast path passes while they stand.
  let read = 0;
  for (const view of views) {
    view.sync();
    read += view.read;
  }
  if (read !== entriesRead) {
    entriesRead = read;
    if (fast.owner !== 0 && !exiting && stateRead(fast.owner - 1) !== 0) stop();
  }
  // The fast path may pass again only while this thread knows one census (see `fast`).
  const seen = views.length === 1 ? read : -1;
  fast.seen = seen;
  fast.liveSeen = fast.owner !== 0 ? seen : -1;
}

/**
 * A number that changes whenever an entry is added to a census this thread knows: watchers
 * compare it with the last value they saw, at every quiescent point. A hint, read plainly as
 * {@linkcode checkAlive} reads the count (an atomic load at each participant's quiescent points
 * took the census's line exclusively on JavaScriptCore, to and fro between readers): a change
 * missed is seen at the next look, and what a watcher does about it reads the census atomically.
 */
export function censusDeaths(): number {
  let n = heads.length;
  // The header views: a census's whole-buffer view checks the growable buffer's length.
  for (let i = 0; i < heads.length; i++) n += heads[i][C_COUNT];
  return n;
}

const stopHooks = new Set<() => void>();

/**
 * Calls `hook` when this thread enters the stopped state (see {@linkcode checkSelf}), or at once
 * if it has. Returns what takes the hook back: a participant's close does, so that a thread that
 * attaches and closes maps for all its life keeps no hook of a closed one (each kept about 130
 * bytes of heap for good: a pool worker's million tasks, 128 MB).
 */
export function onStop(hook: () => void): () => void {
  // A hook set once this thread has stopped (a new map's shared after its stop) runs at once.
  if (fast.stopped) hook();
  stopHooks.add(hook);
  return () => {
    stopHooks.delete(hook);
  };
}

/** How many stop hooks this thread keeps (tests). */
export function stopHookCount(): number {
  return stopHooks.size;
}

/**
 * Whether this thread is a `node:worker_threads` worker under Deno (a Deno web worker has no
 * parent port there), whose `terminate()` does not stop it while it runs synchronous code.
 */
const denoNodeWorker = RUNTIME === "deno" && parentPort !== null;

function stop(): never {
  const mayWait = atEntry;
  atEntry = false;
  fast.stopped = true;
  fast.seen = -1;
  fast.liveSeen = -1;
  for (const hook of stopHooks) hook();
  // A terminated node:worker_threads worker under Deno runs on to the end of its task, and
  // whatever it does then reaches its parent: a pool's worker would post the result of the task
  // it was terminated in (a TerminatedError), which the pool, having ended that task, takes for
  // a protocol error. It ends here instead, as Node's terminate() would have stopped it; it
  // holds nothing of shmap's that a death at this point does not leave to the others to repair.
  // Recorded gone first: its OS thread outlives its end (see recordOwnExit), and its locks
  // would otherwise wait for that thread. A worker only declared gone (threadGone) was never
  // terminated: `process.exit()` ends it, and its parent sees `exit`. One whose terminate() was
  // called (a TERMINATING entry) asks Deno to close it and sleeps until it does: Deno's
  // `process.exit()` asks the same and then spins until the thread is stopped, which never
  // happens once the parent's terminate() has gone through (Deno 2.9: `for (;;) {}` after
  // `reallyExit` in a worker; helper-175: every task a pool aborted before its first step left
  // such a thread spinning on a core for the life of the process, 3 to 7 at once). Stopped, it
  // ends in a wait slice; never stopped, it sleeps, as Deno leaves its terminated workers.
  if (denoNodeWorker) {
    const me = fast.owner - 1;
    const terminated = terminateAsked(me);
    try {
      vouchGone(me);
    } catch {
      // A census that cannot take it: the grace's declaration, or the exit listener's.
    }
    if (terminated) closeForGood();
    process.exit(1);
  }
  if (mayWait && RUNTIME !== "deno" && terminateAsked(fast.owner - 1)) awaitTerminate();
  throw new TerminatedError();
}

/**
 * Node and Bun stop a terminated worker at its next interrupt check, but the adapters mark it
 * terminating just before they ask (`markOnTerminate`), and a call it makes in between sees the
 * mark. Thrown there, TerminatedError would end the worker as an uncaught error, and the runtime
 * still delivers that to the parent as the Worker's `error` event, after `terminate()`: a parent
 * with no `error` listener crashes (a CI run of rw_seat_of_killed_test on Node). So at the start
 * of a call ({@linkcode atEntry}: no lock of the engine's held; a user's lock or a compute's
 * claim may be, which a zombie's end already covers) it sleeps, in slices, for the stop to land
 * inside one or between two, and throws only if it still runs after {@linkcode TERMINATE_WAIT_MS},
 * which is less than the grace after which a terminating thread's locks are taken over.
 */
function awaitTerminate(): void {
  const word = new Int32Array(new SharedArrayBuffer(4));
  const until = performance.now() + TERMINATE_WAIT_MS;
  while (performance.now() < until) Atomics.wait(word, 0, 0, TERMINATE_WAIT_SLICE_MS);
}

/** How long a Node or Bun worker marked terminated waits to be stopped, and in what slices. */
const TERMINATE_WAIT_MS = 200, TERMINATE_WAIT_SLICE_MS = 5;

/**
 * A terminated `node:worker_threads` worker under Deno asks to be closed (`Deno.exit` in a worker
 * closes it and returns) and sleeps: in slices while Deno may still stop it (it does so between
 * two of them), then for good.
 */
function closeForGood(): never {
  (globalThis as { Deno?: { exit(code: number): void } }).Deno?.exit(1);
  const word = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < CLOSE_SLICES; i++) Atomics.wait(word, 0, 0, CLOSE_SLICE_MS);
  for (;;) Atomics.wait(word, 0, 0);
}

/** How long {@linkcode closeForGood} sleeps in slices, each this long, before it sleeps for good. */
const CLOSE_SLICE_MS = 50, CLOSE_SLICES = 40;

/**
 * Whether some census this thread knows has a TERMINATING entry for thread `threadId`: its
 * `terminate()` was called (the adapters record it first), or its end was seen on its way
 * (an error event, its own exit), as against a thread only declared gone.
 */
function terminateAsked(threadId: number): boolean {
  for (const view of views) {
    view.sync();
    if (view.terminating.has(threadId)) return true;
  }
  return false;
}

/**
 * Deno's own `close()` of this thread's global scope when it is a Deno web worker, taken as this
 * module loads (before the Deno adapter wraps it): it ends the worker at once, synchronous code
 * and all, which `terminate()` cannot. Null elsewhere (a main thread's `close()` would end the
 * process, and is never needed: a main thread is never terminated).
 */
const denoWebClose: (() => void) | null = needsOwnId()
  ? (globalThis as unknown as { close: () => void }).close
  : null;

/**
 * Calls a stopped Deno web worker may make, each throwing TerminatedError again, before the
 * next ends it (see {@linkcode stoppedAgain}): far more than code that catches the error and
 * tidies up makes (a close(), a report), far fewer than a loop makes in a millisecond.
 */
export const STOPPED_CALLS_MAX = 1000;
let stoppedCalls = 0;

/**
 * A call of a thread already stopped: it threw TerminatedError, and the code that caught it
 * called shmap again. A Deno web worker that goes on so ends at its
 * {@linkcode STOPPED_CALLS_MAX}th such call, by its own close(): a loop that catches every
 * error (a retry loop, a worker's main loop) would otherwise spin for good after `terminate()`,
 * which does not stop synchronous code, and keep the process alive (helper-166). The errors
 * before it let `finally` blocks run (their unlocks release locks poisoned and do not come here)
 * and code that catches the error tidy up. Elsewhere it throws again.
 */
function stoppedAgain(): never {
  if (denoWebClose !== null && (stoppedCalls = (stoppedCalls + 1) | 0) >= STOPPED_CALLS_MAX) {
    denoWebClose.call(globalThis);
  }
  throw new TerminatedError();
}

/**
 * For tests: notes in every census this thread knows that thread `threadId`'s OS thread is
 * `entry` (os_thread.ts), as that thread does as it takes its owner id.
 */
export function noteOsThreadForTests(threadId: number, entry: number): void {
  census();
  for (const view of views) writeOsThread(view, threadId, entry);
}

/** Test-only: how many censuses this thread knows (one, once it has met any, in a process). */
export function knownCensuses(): number {
  return views.length;
}

/** Test-only: forgets the censuses and the stopped state. */
export function resetForTests(): void {
  views = [];
  heads = [];
  entriesRead = 0;
  fast.head = NO_CENSUS;
  fast.seen = 0;
  fast.liveSeen = -1;
  primary = undefined;
  fast.stopped = false;
}
