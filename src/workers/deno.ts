/**
 * Worker adapter for Deno's web `Worker`: hand shmap structures to a worker, attach to them
 * there, and give back the worker's share of them when it ends.
 *
 * In the parent, {@linkcode spawn} starts a module worker and shares structures with it (or
 * {@linkcode share} shares with a worker you made). In the worker, {@linkcode receive} resolves
 * with the attached structures.
 *
 * A Deno worker has no exit event, so the adapter watches the ways a worker ends. The share is
 * released, exactly once, when:
 *
 * - the parent calls `worker.terminate()` (the adapter wraps the instance's `terminate`);
 * - the worker dies of an uncaught error or unhandled rejection, or fails to load (its `error`
 *   event in the parent; the worker is gone whether or not a listener calls `preventDefault`);
 * - the worker calls `self.close()` (importing this module in the worker wraps `close`: the
 *   worker ends from a microtask, after the rest of the calling code and the microtasks queued
 *   before, and before any other task (message or timer), telling the parent first and recording
 *   itself ending; shmap calls in between work. A second `close()` before then ends it at once.
 *   Deno's own `close()`, which ends it at once, leaked in Deno 2.9.6: see `soon`);
 * - the worker calls `Deno.exit()` or `process.exit()` (its `unload` event tells the parent).
 *
 * A Deno worker does not end by itself when it runs out of work: it lives, and keeps the
 * process alive, until one of the above happens.
 *
 * Caveat (Deno 2.9): `terminate()` stops a worker only when it next returns to its event loop.
 * A worker running a long synchronous loop keeps running after `terminate()` returns, and its
 * share is released then, not when it stops. Let such loops check a stop flag in shared memory.
 *
 * Importing this module in a worker starts listening for the share message at once (Deno drops
 * messages that arrive while nobody listens, as during top-level awaits), wraps `self.close`,
 * listens for `unload`, and keeps a listener of its own last on `error` and
 * `unhandledrejection` (it wraps `self.addEventListener` for that): an uncaught error that no
 * listener cancels ends the worker, which then records itself ending, so that a parent blocked
 * in `lock()` for a lock it held gets the lock.
 *
 * @example Parent: share a map and a lock with a worker
 * ```ts
 * import { GoMap, Mutex } from "@shmap/shmap";
 * import { spawn } from "@shmap/shmap/deno";
 *
 * const hits = new GoMap<string, number>();
 * const lock = new Mutex();
 * const worker = spawn(new URL("./worker.ts", import.meta.url), { hits, lock });
 * worker.onmessage = () => {
 *   console.log(hits.get("/"));
 *   worker.terminate(); // releases the worker's share
 * };
 * ```
 *
 * @example Worker: receive them (worker.ts)
 * ```ts
 * /// <reference lib="deno.worker" />
 * import type { GoMap, Mutex } from "@shmap/shmap";
 * import { receive } from "@shmap/shmap/deno";
 *
 * const { hits, lock } = await receive<{ hits: GoMap<string, number>; lock: Mutex }>();
 * lock.lock();
 * try {
 *   hits.set("/", (hits.get("/") ?? 0) + 1);
 * } finally {
 *   lock.unlock();
 * }
 * self.postMessage("done");
 * ```
 *
 * @module
 */

import process from "node:process";
import { fast, inWorkerScope, TERMINATE_GRACE_MS } from "../_engine/census.ts";
import { answerParent, takeByePort } from "./_deno_worker.ts";
import { listenForShare } from "./_receive.ts";
import {
  BYE,
  checkWebWorker,
  type ReceiveOptions,
  reserveId,
  type Shareables,
  TRACK_TAG,
  type TrackMessage,
  WorkerAdapter,
} from "./_share.ts";
import { endOfThread, markEnding, markOnTerminate, noteWatched } from "./_thread_end.ts";

export type { ReceiveOptions, Shareable, Shareables } from "./_share.ts";

interface WorkerScope {
  addEventListener(type: string, listener: (event: Event) => void, options?: unknown): void;
  removeEventListener(type: string, listener: (event: Event) => void): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;
const inWorker = inWorkerScope();

// Listen from the moment the worker imports this module: Deno drops messages that arrive while
// nobody listens, as they can during the worker's top-level awaits.
const inbox = listenForShare(
  inWorker ? scope : null,
  "receive() must be called in a worker started by spawn() or share()",
  (message) => answerParent(message.port, message.threadId),
);

// track()'s message is answered by _deno_worker.ts, which mod.ts imports, so that a worker that
// does not import this module answers it too.

function sayBye(): void {
  // Terminating, from now: a parent that waits for a lock this worker holds may be blocking the
  // very event loop that would read the goodbye below, and takes the lock over after the grace
  // all the same (census.ts ownerGone). This worker's own calls from here on throw. A worker
  // that never took an id never used shmap, and holds nothing.
  if (fast.owner !== 0) markEnding(fast.owner - 1);
  const port = takeByePort();
  try {
    port?.postMessage(BYE);
  } catch {
    // The parent's end is gone already; nobody to tell.
  }
}

/**
 * Why the adapter's `close()` ends the worker from a microtask. Deno (2.9.6) leaks two file
 * descriptors (the worker's event loop: an epoll and an eventfd) and its module graph's memory
 * (3 MB for shmap's) for the life of the process when a worker ends before the runtime has seen
 * its main module's evaluation settle (deno_core frees them in its reaction to the evaluation's
 * promise, which never runs if the worker ends first). Seen (helper-167): a module that still
 * awaits (`await new Promise(() => {})`), then terminated or closed from a message handler; one
 * that ends in the task where it finishes with a microtask queued behind the ending one
 * (`await 0; queueMicrotask(() => {}); self.close();`, or `Deno.exit()` there). Every SyncMap
 * call queues one (its participant goes offline there), so `const maps = await receive(); ...;
 * self.close()` with a SyncMap leaked on every worker: 225 descriptors and 392 MB for 100
 * (helper-164). Ended from a microtask queued by close(), the worker ends after the microtasks
 * queued before it, the SyncMap's among them, and before any other task runs (no message, no
 * timer), as close() ends a browser's worker. A second close() before then (a loop that closes
 * until it stops) ends it at once, as Deno's own would: a worker spinning on close() must not
 * spin for good.
 */
const soon = globalThis.queueMicrotask;

if (inWorker) {
  // self.close() ends the worker once the microtasks queued before it have run, and no event
  // says so: tell the parent first. Deno.exit() and process.exit() fire unload.
  const close = scope.close;
  let closing = false;
  const end = () => {
    sayBye();
    close.call(scope);
  };
  scope.close = function (): void {
    if (closing) return end();
    closing = true;
    soon(end);
  };
  scope.addEventListener("unload", sayBye);
  keepLast(["error", "unhandledrejection"], dying);
}

/**
 * Worker side: an uncaught error or unhandled rejection that no listener cancels ends a Deno
 * worker as its event is dispatched (nothing of it runs afterwards, not even a microtask), and
 * the parent learns it from an `error` event its own event loop delivers: a parent blocked in
 * `lock()` for a lock this worker holds would wait for good. So the worker records itself
 * ending here, once every other listener has had its say; a cancelled event (the worker lives
 * on) records nothing. Deno marks neither its own events nor ones a program dispatches as
 * trusted, and dispatches its own through `dispatchEvent` too: a worker that dispatches an
 * uncancelled `error` or `unhandledrejection` event on its own scope is taken at its word, and
 * its shmap calls throw `TerminatedError` from then on (SyncMap reads within 64 calls).
 */
function dying(event: Event): void {
  if (event.defaultPrevented || fast.owner === 0) return;
  // An error of a worker this one started, which went uncancelled there, comes here too, with a
  // null `error` (the error itself stays in the thread it was thrown in): it ends this worker
  // only through the rejection Deno raises next, which comes here in turn.
  if (event.type === "error" && (event as ErrorEvent).error === null) return;
  // Deno's `process` cancels the event itself when it has listeners of its own for it, from a
  // listener of its own added as they come, so after this one: a worker with such listeners
  // lives on.
  const nodeName = event.type === "error" ? "uncaughtException" : "unhandledRejection";
  if (process.listenerCount(nodeName) > 0) return;
  markEnding(fast.owner - 1);
}

/**
 * Keeps `listener` the last listener of each of `types` on the worker's scope: it is added
 * now, and moved back to the end whenever another is added through `addEventListener` (which
 * the `on...` handler properties use too).
 */
function keepLast(types: string[], listener: (event: Event) => void): void {
  const add = scope.addEventListener;
  // Each move adds a fresh copy of the listener before it removes the one in place, and only
  // the latest copy acts: a move cut short (a stack overflow) never loses the listener, and a
  // copy it leaves behind, before a listener added since, does nothing. No call of ours between
  // a copy's adding and its becoming the latest.
  const latest: Record<string, (event: Event) => void> = {};
  const moveLast = (type: string) => {
    const next = (event: Event) => {
      if (latest[type] === next) listener(event);
    };
    add.call(scope, type, next);
    const previous = latest[type];
    latest[type] = next;
    if (previous !== undefined) scope.removeEventListener(type, previous);
  };
  for (const type of types) moveLast(type);
  scope.addEventListener = function (this: unknown, type, other, options): void {
    add.call(this, type, other, options);
    // `this` is undefined for a bare `addEventListener(...)`, which adds to the scope.
    if (
      (this === scope || this === undefined) && types.includes(type) && other !== latest[type]
    ) {
      moveLast(type);
    }
  };
}

/**
 * How long a share released at one of these endings stays protected: a Deno worker may still be
 * running then (terminate() takes effect when it returns to its event loop; after an error or a
 * goodbye, the rest of its task runs). Its next call into a SyncMap throws at once; the call it
 * is inside, if any, keeps its protection this long.
 */
const RELEASE_GRACE_MS = TERMINATE_GRACE_MS;

/**
 * The Workers of this thread terminated since this module was loaded, noted through
 * `Worker.prototype.terminate` (wrapped once, here): `share()` and `track()` refuse them, since
 * a terminated worker fires no error, exit or goodbye that would release what it was given.
 */
const terminated = new WeakSet<Worker>();
if (typeof Worker === "function" && typeof Worker.prototype.terminate === "function") {
  const terminate = Worker.prototype.terminate;
  Worker.prototype.terminate = function (this: Worker): void {
    terminated.add(this);
    return terminate.call(this);
  };
}

/**
 * A Deno worker has no exit event: its end is its `error` event, the `terminate()` that the
 * adapter wraps, or the goodbye it posts on the share message's port when it closes itself.
 */
const adapter = new WorkerAdapter<Worker>({
  expected: "a Worker (a web Worker: a node:worker_threads one goes to @shmap/shmap/node)",
  methods: ["postMessage", "terminate", "addEventListener"],
  check(worker) {
    // A terminated worker fires nothing more: its share would be held for good.
    if (terminated.has(worker)) throw new Error("this worker has been terminated");
  },
  watch(worker, endNow) {
    // A Deno web worker has no thread id of its own: it takes the one reserved here, or tells
    // the one it already uses on the port.
    const reserved = reserveId();
    let threadId = reserved;
    noteWatched(threadId);
    const end = endOfThread(() => threadId, RELEASE_GRACE_MS, endNow);
    const { port1, port2 } = new MessageChannel();
    // The port says goodbye and tells the worker's thread id: it must not keep the parent alive.
    port1.onmessage = (event) => {
      if (event.data === BYE) end();
      else if (typeof event.data?.threadId === "number" && event.data.threadId !== threadId) {
        threadId = event.data.threadId;
        noteWatched(threadId);
      }
    };
    (port1 as { unref?: () => void }).unref?.();
    worker.addEventListener("error", end);
    markOnTerminate(worker, () => threadId, end);
    // The port goes over once: with the track message, or the share's. A share after a track
    // goes without it (the worker keeps the first port it got).
    let portSent = false;
    return {
      post: (message) => {
        if (portSent) {
          worker.postMessage({ ...message, threadId: reserved });
          return;
        }
        worker.postMessage({ ...message, port: port2, threadId: reserved }, [port2]);
        portSent = true;
      },
      track: () => {
        const message: TrackMessage = { [TRACK_TAG]: 1, port: port2, threadId: reserved };
        worker.postMessage(message, [port2]);
        portSent = true;
      },
      stop: () => {
        worker.removeEventListener("error", end);
        port1.onmessage = null;
        port1.close();
      },
    };
  },
});

/**
 * Watches a Deno `Worker` started elsewhere, so that shmap learns when it ends (terminated,
 * dead of an uncaught error, or closed): a Mutex or RWMutex it held is taken over by the next
 * thread that locks it (with `OwnerDeadError`), a map's internal lock it held is repaired, and a
 * SyncMap it attached by hand gives back its share. The worker answers `track()` with its
 * thread id (a Deno web worker has none of its own) as it imports shmap: `@shmap/shmap` alone
 * is enough, and the message never reaches the worker's own listeners.
 *
 * Track a worker before it first uses shmap (right after `new Worker`, or before it is given
 * any handle). A worker that took an id already (it attached a map or a lock before) is known
 * by that id only once it has answered track's message; terminated before it answers, its end
 * is declared under the id reserved for it, not its own, and a lock it holds is not taken over.
 * The same holds for {@linkcode share} to a worker that used shmap before.
 * Workers started with {@linkcode spawn} or shared with {@linkcode share} are watched already;
 * tracking one twice does nothing.
 *
 * As with every Deno worker, the end is declared 250 ms after `terminate()` (or the error or
 * close): Deno's terminate() does not stop a worker busy in synchronous code, and the grace
 * covers the one shmap call it may be inside. Such a worker throws `TerminatedError` at its
 * next shmap call, or as a shmap wait returns, instead of touching shared memory again. A lock
 * it holds is taken over only once its thread has ended, where Linux's /proc shows that and may
 * be read (otherwise after the same grace).
 *
 * @example
 * ```ts
 * import { track } from "@shmap/shmap/deno";
 *
 * const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
 * track(worker);
 * ```
 *
 * @param worker A web `Worker`.
 * @throws {TypeError} if `worker` is not a Worker; Error if it has been terminated.
 */
export function track(worker: Worker): void {
  adapter.track(worker)?.track?.();
}

/**
 * Shares `values` with `worker`: posts the structures' handles to it, for {@linkcode receive}
 * to attach there, and releases the worker's share of them, exactly once, when the worker is
 * terminated, dies of an uncaught error, or closes itself (see the module documentation).
 *
 * Throws TypeError, before posting anything, if a value is not a GoMap, SyncMap, Mutex or
 * RWMutex, and Error if `worker` was already shared with, or has been terminated. A worker
 * tracked before (`track()`) may be shared with once, as any other.
 *
 * @example
 * ```ts
 * import { GoMap } from "@shmap/shmap";
 * import { share } from "@shmap/shmap/deno";
 *
 * const map = new GoMap<string, number>();
 * const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
 * share(worker, { map });
 * ```
 *
 * @param worker A web `Worker`.
 * @param values The structures, by the names the worker will receive them under.
 */
export function share(worker: Worker, values: Shareables): void {
  adapter.share(worker, values);
}

/**
 * Starts a module worker running `url` and shares `values` with it, as {@linkcode share}.
 * Throws TypeError, before starting the worker, if a value is not a shmap structure.
 *
 * @example
 * ```ts
 * import { GoMap } from "@shmap/shmap";
 * import { spawn } from "@shmap/shmap/deno";
 *
 * const map = new GoMap<string, number>();
 * const worker = spawn(new URL("./worker.ts", import.meta.url), { map });
 * // ... later: worker.terminate() releases the worker's share of map.
 * ```
 *
 * @param url The worker's module.
 * @param values The structures, by the names the worker will receive them under.
 * @param options Worker options; `type` is always "module".
 * @returns The started worker.
 */
export function spawn(url: string | URL, values: Shareables, options: WorkerOptions = {}): Worker {
  checkWebWorker("spawn");
  return adapter.spawn(values, () => new Worker(url, { ...options, type: "module" }));
}

/**
 * In a worker: resolves with the structures the parent shared, attached and ready to use, once
 * the share message arrives. Other messages still reach your own listeners; the share message
 * does not reach listeners added after this module was imported.
 *
 * It waits as long as the worker lives; pass `signal` (say `AbortSignal.timeout(5000)`) to
 * stop waiting. It rejects at once outside a worker. Maps made with user codecs need them again:
 * pass them by name in `codecs`. Later calls resolve with the same objects; only the first
 * call's `codecs` are used.
 *
 * @example
 * ```ts
 * import type { Codec, GoMap } from "@shmap/shmap";
 * import { receive } from "@shmap/shmap/deno";
 *
 * type Point = { x: number; y: number };
 * // The codec the parent made the map with.
 * const pointCodec: Codec<Point> = {
 *   name: "point",
 *   encode: (p) => new Uint8Array(new Float64Array([p.x, p.y]).buffer),
 *   decode: (bytes) => {
 *     const [x, y] = new Float64Array(bytes.slice().buffer);
 *     return { x, y };
 *   },
 * };
 *
 * const { cache } = await receive<{ cache: GoMap<Point, string> }>({
 *   codecs: { cache: { keys: pointCodec } },
 *   signal: AbortSignal.timeout(5_000),
 * });
 * ```
 *
 * @typeParam T The shared structures by name, as the parent shared them.
 * @param options User codecs by name, and a signal to stop waiting.
 * @returns The attached structures.
 */
export function receive<T extends object = Record<string, unknown>>(
  options: ReceiveOptions = {},
): Promise<T> {
  return inbox.receive<T>(options);
}
