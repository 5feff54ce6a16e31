/**
 * Worker adapter for `node:worker_threads`, in Node.js and in Deno's and Bun's Node
 * compatibility: hand shmap structures to a worker, attach to them there, and give back the
 * worker's share of them when it ends.
 *
 * In the parent, {@linkcode spawn} starts a worker and shares structures with it (or
 * {@linkcode share} shares with a worker you made). In the worker, {@linkcode receive} resolves
 * with the attached structures.
 *
 * The share is released, exactly once, on the worker's `exit` event, however it ended: it ran
 * out of work, called `process.exit()`, died of an uncaught error or unhandled rejection, or was
 * stopped with `worker.terminate()`. Node and Bun fire `exit` once the worker's thread has
 * stopped; Deno (2.9) fires it as soon as `terminate()` is called, and its `terminate()` stops a
 * worker only when it next returns to its event loop, so a worker busy in a synchronous loop
 * keeps running there after its share is released.
 *
 * Importing this module in a worker starts listening on `parentPort` for the share message at
 * once, so that it is not missed whatever the worker does first. Until the message comes, that
 * listener keeps the worker alive; import this module only in workers you share with. Once a
 * {@linkcode receive} has given up on its signal, with none waiting, the listener goes if the
 * worker has no message listener of its own, so the worker can end (see `receive`).
 *
 * @example Parent: share a map and a lock with a worker
 * ```ts
 * import { Worker } from "node:worker_threads";
 * import { GoMap, Mutex } from "@shmap/shmap";
 * import { spawn } from "@shmap/shmap/node";
 *
 * const hits = new GoMap<string, number>();
 * const lock = new Mutex();
 * const worker: Worker = spawn(new URL("./worker.js", import.meta.url), { hits, lock });
 * worker.on("exit", () => console.log(hits.get("/")));
 * ```
 *
 * @example Worker: receive them (worker.ts, compiled to worker.js)
 * ```ts
 * import type { GoMap, Mutex } from "@shmap/shmap";
 * import { receive } from "@shmap/shmap/node";
 *
 * const { hits, lock } = await receive<{ hits: GoMap<string, number>; lock: Mutex }>();
 * lock.lock();
 * try {
 *   hits.set("/", (hits.get("/") ?? 0) + 1);
 * } finally {
 *   lock.unlock();
 * }
 * // Nothing left to do: the worker exits, and its share is released.
 * ```
 *
 * @module
 */

import process from "node:process";
import { errorMonitor, getEventListeners } from "node:events";
import { parentPort, Worker, type WorkerOptions } from "node:worker_threads";
import { TERMINATE_GRACE_MS } from "../_engine/census.ts";
import { RUNTIME } from "../_engine/runtime.ts";
import { watchEndEvent } from "./_end_event.ts";
import { listenForShare, type Pause } from "./_receive.ts";
import { type ReceiveOptions, type Shareables, WorkerAdapter } from "./_share.ts";
import { declareGone, markEnding, markTerminating } from "./_thread_end.ts";

export type { ReceiveOptions, Shareable, Shareables } from "./_share.ts";

/**
 * The worker's `parentPort` message listeners, as far as the runtime counts them: Node counts
 * every one (`on`, `once`, `addEventListener`, `onmessage`); Bun (1.4) only those added with
 * `on` or `once`; Deno (2.9), whose `parentPort.listenerCount` is always 0, keeps them all on the
 * worker's global scope, where `getEventListeners` counts them. Set `onmessage` handlers are
 * counted besides (each place one can be set), which counts some twice: only changes matter.
 */
function countListeners(port: NonNullable<typeof parentPort>): number {
  const listeners = RUNTIME === "deno"
    ? getEventListeners(globalThis as unknown as EventTarget, "message").length
    : port.listenerCount("message");
  let handlers = 0;
  for (const target of [port, globalThis] as { onmessage?: unknown }[]) {
    if (typeof target.onmessage === "function") handlers++;
  }
  return listeners + handlers;
}

/** `countListeners`, or undefined where it throws or is no number. */
function tryCount(): number | undefined {
  if (parentPort === null) return undefined;
  try {
    const count = countListeners(parentPort);
    return Number.isInteger(count) ? count : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `parentPort.hasRef()` (Node and Bun; Deno has none): whether something holds the port, as a
 * message listener of any kind does on Bun, even one `countListeners` does not see.
 */
function hasRef(): boolean | undefined {
  const port = parentPort as { hasRef?: () => unknown } | null;
  return typeof port?.hasRef === "function" ? port.hasRef() === true : undefined;
}

/**
 * What the adapter's own listener adds to {@linkcode countListeners}: 1 where the runtime counts
 * it (Node, Deno), 0 where it does not (Bun: it is added with addEventListener); undefined
 * where it could not be told (then the adapter never stops listening before the share comes).
 */
let ours: number | undefined;

/**
 * When a receive() gives up on its signal and none waits, the adapter stops listening if the
 * worker has no message listener of its own (which keep it alive anyway), so that it can end.
 * Measured (Node 24.21, Bun 1.4.5, Deno 2.9.6): a `parentPort` with no message listener lets
 * the worker end on all three; Node and Bun keep a message that comes meanwhile until a listener
 * is added, so the next receive() still gets a late share; Deno drops it. On Bun, where
 * `countListeners` sees no addEventListener listener, `hasRef()` still tells, once the adapter's
 * is removed, whether one is left: the adapter then listens again at once, capturing (Bun runs
 * capturing listeners first), so the share still never reaches the worker's own listeners.
 * (`unref()` would not do: on all three it lets the worker end whatever listens.)
 */
const pause: Pause = {
  alone: () => {
    if (ours === 1 || (ours === 0 && hasRef() !== undefined)) return tryCount() === ours;
    return false;
  },
  stillListened: () => hasRef() === true,
  relisten: RUNTIME === "bun" ? { capture: true } : undefined,
};

// Listen from the moment the worker imports this module, so that the share message is not
// missed when the worker's own listeners come later, or (in Deno) when it arrives during a
// top-level await. The listener keeps the worker alive until the share message comes, then
// goes, so the worker can exit by itself; or until a receive() gives up on its signal with none
// waiting, if the worker has no message listener of its own (see pause), and then until the
// next receive().
const before = tryCount();
const inbox = listenForShare(
  parentPort,
  "receive() must be called in a worker started by spawn() or share()",
  undefined,
  pause,
);
const after = tryCount();
if (before !== undefined && after !== undefined) ours = after - before;

/**
 * Deno fires `exit` as soon as `terminate()` is called, and its `terminate()` is lost on a
 * worker blocked in `Atomics.wait`: there the worker is marked terminating first, and declared
 * gone only after this grace (see census.ts). Node and Bun fire `exit` once the thread stopped.
 */
const onDeno = RUNTIME === "deno";
const DENO_GRACE_MS = TERMINATE_GRACE_MS;

/**
 * Workers of this thread that have emitted `exit`, on Deno, which keeps an exited Worker's
 * `threadId` readable (Node and Bun report -1): `share` and `track` refuse them, since a
 * worker that has ended fires no end event, and its share would be claimed for good. Noted
 * from when this module is loaded, through `Worker.prototype.emit` (see noteExits).
 */
const exited = new WeakSet<Worker>();
/** Whether trackAll() has been called. */
let trackingAll = false;
if (onDeno) noteExits();

/**
 * On Deno: wraps `Worker.prototype.emit`, once, to note every Worker's exit ({@linkcode exited})
 * and, once trackAll() has been called, to declare every Worker's end (watchEveryEnd).
 */
function noteExits(): void {
  const proto = Worker.prototype as Worker & {
    emit(event: string | symbol, ...args: unknown[]): boolean;
  };
  const emit = proto.emit;
  Object.defineProperty(proto, "emit", {
    configurable: true,
    writable: true,
    value: function (this: Worker, event: string | symbol, ...args: unknown[]): boolean {
      if (event === "exit") {
        exited.add(this);
        if (trackingAll) declareGone(this.threadId, DENO_GRACE_MS);
      } else if (event === "error" && trackingAll) {
        markEnding(this.threadId);
      }
      return emit.call(this, event, ...args);
    },
  });
}

/** A worker's end is its `exit` event, whatever ended it. */
const adapter = new WorkerAdapter<Worker>({
  expected: "a node:worker_threads Worker",
  methods: ["postMessage", "once", "on", "off", "prependListener"],
  check(worker) {
    if (worker.threadId === -1 || exited.has(worker)) throw new Error("this worker has exited");
  },
  watch(worker, endNow) {
    // Taken now: a worker that has exited reports -1.
    const threadId = worker.threadId;
    return watchEndEvent(worker, threadId, onDeno ? DENO_GRACE_MS : 0, endNow, (end, ending) => {
      // An uncaught error ends the worker: `error`, then `exit`. Through errorMonitor, which
      // sees the error without handling it: with no `error` listener of the user's, it still
      // goes up as uncaught.
      worker.on(errorMonitor, ending);
      // First among the exit listeners: one of the user's that waits for a lock the worker
      // held, added before track(), then finds the worker gone.
      worker.prependListener("exit", end);
      return () => {
        worker.off(errorMonitor, ending);
        worker.off("exit", end);
      };
    });
  },
});

/**
 * Watches a `node:worker_threads` Worker started elsewhere, such as one of a pool's (piscina,
 * poolifier, tinypool), so that shmap learns when it ends: a Mutex or RWMutex it held is taken
 * over by the next thread that locks it (with `OwnerDeadError`), a map's internal lock it held
 * is repaired, and a SyncMap it attached by hand gives back its share. Workers started with
 * {@linkcode spawn} or shared with {@linkcode share} are watched already; tracking one twice
 * does nothing.
 *
 * @example Watching one worker
 * ```ts
 * import { Worker } from "node:worker_threads";
 * import { track } from "@shmap/shmap/node";
 *
 * const worker = new Worker("setTimeout(() => {}, 10)", { eval: true });
 * track(worker); // its end is now declared to shmap, however it comes
 * ```
 *
 * @param worker A `node:worker_threads` Worker that has not exited.
 * @throws {TypeError} if `worker` is not a Worker; Error if it has exited.
 */
export function track(worker: Worker): void {
  adapter.track(worker);
}

/**
 * Tracks every `node:worker_threads` Worker this thread starts from now on, through the
 * process's `worker` event (Node, Deno and Bun all emit it): the recipe for worker pools
 * (piscina, poolifier, tinypool), whose workers you never construct yourself. Call it once,
 * before the pool starts its workers; later calls do nothing. Bun reports its web Workers on
 * that event too; they are left alone here (use `track` from `@shmap/shmap/bun` for those).
 * Deno emits that event late, possibly after the pool has terminated the worker, so there
 * trackAll() also wraps the `terminate` and `emit` methods of `Worker.prototype`, and so sees
 * the end of every Worker of this thread, however soon it comes.
 *
 * @example A piscina pool whose workers may be killed on a task timeout
 * ```ts
 * import { trackAll } from "@shmap/shmap/node";
 *
 * trackAll();
 * // const pool = new Piscina({ filename, ... }); tasks receive map handles and attach by hand.
 * ```
 */
export function trackAll(): void {
  if (trackingAll) return;
  trackingAll = true;
  if (onDeno) watchEveryEnd();
  process.on("worker", (worker: Worker) => {
    // A listener that threw would break whoever started the worker: only node:worker_threads
    // Workers that have not exited are watched. On Deno, whose event comes late, a worker may
    // have exited already while its threadId stays readable: its end was declared through the
    // class (watchEveryEnd), and track() would throw "this worker has exited" here, uncaught.
    if (adapter.isWorker(worker) && worker.threadId !== -1 && !exited.has(worker)) track(worker);
  });
}

/**
 * Deno (2.9) emits the process's `worker` event late, after timers and the worker's own events
 * have run, so a pool may terminate a worker before trackAll() hears of it (piscina does, when a
 * task's abort signal fires early): the worker would be marked terminating too late to stop it
 * running on (Deno's terminate() does not stop a busy worker), and its `exit`, which Deno emits
 * inside terminate(), would come before anyone listened, leaving its end undeclared and a lock it
 * held never taken over. So on Deno, trackAll() also watches every Worker through the class:
 * `terminate()` marks the thread terminating first, and `exit` declares it gone after the grace
 * (through the `emit` wrapper noteExits installs),
 * as the per-worker watch does (the census keeps one entry per state, so the two agree).
 * Deno's `threadId` stays readable after the end, unlike Node's, which the watch reads earlier.
 */
function watchEveryEnd(): void {
  const proto = Worker.prototype;
  const terminate = proto.terminate;
  Object.defineProperty(proto, "terminate", {
    configurable: true,
    writable: true,
    value: function (this: Worker, ...args: unknown[]): unknown {
      markTerminating(this.threadId);
      return (terminate as (...args: unknown[]) => unknown).apply(this, args);
    },
  });
  // The ends themselves: noteExits' wrapper of `emit` declares them once trackingAll is set.
}

/**
 * Shares `values` with `worker`: posts the structures' handles to it, for {@linkcode receive}
 * to attach there, and releases the worker's share of them, exactly once, on the worker's
 * `exit` event, whatever ended it.
 *
 * Throws TypeError, before posting anything, if a value is not a GoMap, SyncMap, Mutex or
 * RWMutex, and Error if `worker` was already shared with or has exited. A worker tracked before
 * (`track()`, `trackAll()`) may be shared with once, as any other.
 *
 * @example
 * ```ts
 * import { Worker } from "node:worker_threads";
 * import { GoMap } from "@shmap/shmap";
 * import { share } from "@shmap/shmap/node";
 *
 * const map = new GoMap<string, number>();
 * const worker = new Worker(new URL("./worker.js", import.meta.url));
 * share(worker, { map });
 * ```
 *
 * @param worker A `node:worker_threads` Worker.
 * @param values The structures, by the names the worker will receive them under.
 */
export function share(worker: Worker, values: Shareables): void {
  adapter.share(worker, values);
}

/**
 * Starts a worker running `url` and shares `values` with it, as {@linkcode share}. Throws
 * TypeError, before starting the worker, if a value is not a shmap structure.
 *
 * @example
 * ```ts
 * import { GoMap } from "@shmap/shmap";
 * import { spawn } from "@shmap/shmap/node";
 *
 * const map = new GoMap<string, number>();
 * const worker = spawn(new URL("./worker.js", import.meta.url), { map });
 * ```
 *
 * @param url The worker's script: a `file:` URL, or a path as `new Worker()` takes it.
 * @param values The structures, by the names the worker will receive them under.
 * @param options Options for `new Worker()`.
 * @returns The started worker.
 */
export function spawn(url: string | URL, values: Shareables, options: WorkerOptions = {}): Worker {
  return adapter.spawn(values, () => new Worker(url, options));
}

/**
 * In a worker: resolves with the structures the parent shared, attached and ready to use, once
 * the share message arrives. Other messages still reach your own `parentPort` listeners; the
 * share message does not reach listeners added after this module was imported.
 *
 * It waits as long as the worker lives; pass `signal` (say `AbortSignal.timeout(5000)`) to
 * stop waiting: it then rejects with the signal's reason. If no other `receive()` waits and the
 * worker has no `parentPort` message listener of its own (which keep it alive anyway), the
 * adapter stops listening then, and the worker ends once its own work is done; the next
 * `receive()` listens again. A share that comes in between goes to that next `receive()` on Node
 * and Bun, which keep a message nobody listens for; on Deno, which drops it, it is lost (and a
 * listener the worker adds in between sees it, on every runtime). It rejects at once outside a
 * worker. Maps made with user codecs need them again: pass them by name in `codecs`. Later calls
 * resolve with the same objects; only the first call's `codecs` are used.
 *
 * @example
 * ```ts
 * import type { Codec, GoMap } from "@shmap/shmap";
 * import { receive } from "@shmap/shmap/node";
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
