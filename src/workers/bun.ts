/**
 * Worker adapter for Bun's web `Worker`: hand shmap structures to a worker, attach to them
 * there, and give back the worker's share of them when it ends.
 *
 * In the parent, {@linkcode spawn} starts a module worker and shares structures with it (or
 * {@linkcode share} shares with a worker you made). In the worker, {@linkcode receive} resolves
 * with the attached structures.
 *
 * The share is released, exactly once, on the worker's `close` event, which Bun fires once the
 * worker's thread has stopped, however it ended: it ran out of work, called `process.exit()`,
 * died of an uncaught error or unhandled rejection, failed to load, or was terminated with
 * `worker.terminate()`. (Bun's workers have no `self.close()`; use `process.exit()`.)
 *
 * For `node:worker_threads` workers under Bun, use the Node adapter (`@shmap/shmap/node`).
 *
 * Importing this module in a worker starts listening for the share message at once, so that it
 * is not lost while the worker's top-level code awaits something else. Until the message comes,
 * that listener keeps the worker alive; import this module only in workers you share with. Once
 * a {@linkcode receive} has given up on its signal, with none waiting, the listener goes if the
 * worker has no `onmessage` handler, so the worker can end (see `receive`).
 *
 * @example Parent: share a map and a lock with a worker
 * ```ts
 * import { GoMap, Mutex } from "@shmap/shmap";
 * import { spawn } from "@shmap/shmap/bun";
 *
 * const hits = new GoMap<string, number>();
 * const lock = new Mutex();
 * const worker = spawn(new URL("./worker.ts", import.meta.url), { hits, lock });
 * worker.addEventListener("close", () => console.log(hits.get("/")));
 * ```
 *
 * @example Worker: receive them (worker.ts)
 * ```ts
 * import type { GoMap, Mutex } from "@shmap/shmap";
 * import { receive } from "@shmap/shmap/bun";
 *
 * const { hits, lock } = await receive<{ hits: GoMap<string, number>; lock: Mutex }>();
 * lock.lock();
 * try {
 *   hits.set("/", (hits.get("/") ?? 0) + 1);
 * } finally {
 *   lock.unlock();
 * }
 * // Nothing left to do: the worker ends, and its share is released.
 * ```
 *
 * @module
 */

import { watchEndEvent } from "./_end_event.ts";
import { listenForShare, type Pause } from "./_receive.ts";
import { checkWebWorker, type ReceiveOptions, type Shareables, WorkerAdapter } from "./_share.ts";

export type { ReceiveOptions, Shareable, Shareables } from "./_share.ts";

const bun = (globalThis as { Bun?: { isMainThread?: boolean } }).Bun;

/**
 * When a receive() gives up on its signal and none waits, the adapter stops listening if the
 * worker has no `onmessage` handler, so that it can end. Bun (1.4) offers no way to see the
 * listeners a worker added with `addEventListener`: those keep it alive anyway, and a share that
 * comes before the next receive() reaches them (Bun drops a message nobody else listens for, so
 * the next receive() misses it either way). The next receive() listens again, capturing: Bun runs
 * capturing listeners first, so a share that comes then never reaches the worker's own.
 */
const pause: Pause = {
  alone: () => typeof (globalThis as { onmessage?: unknown }).onmessage !== "function",
  relisten: { capture: true },
};

// Listen from the moment the worker imports this module: messages that arrive while nobody
// listens, as they can during the worker's top-level awaits, are dropped. The listener keeps
// the worker alive until the share message comes, then goes, so the worker can end by itself;
// or until a receive() gives up on its signal with none waiting (see pause), and then until the
// next receive().
const inbox = listenForShare(
  bun?.isMainThread === false ? globalThis : null,
  "receive() must be called in a Bun worker started by spawn() or share()",
  undefined,
  pause,
);

/** Bun fires `close` once the worker's thread has stopped, however it ended. */
const adapter = new WorkerAdapter<Worker>({
  expected: "a Worker (a web Worker: a node:worker_threads one goes to @shmap/shmap/node)",
  methods: ["postMessage", "addEventListener"],
  check(worker) {
    // Bun reports -1 once the worker has closed, which then fires no `close` event again.
    if ((worker as { threadId?: number }).threadId === -1) {
      throw new Error("this worker has exited");
    }
  },
  watch(worker, endNow) {
    // Bun gives a web Worker the thread id the worker sees in node:worker_threads. The thread
    // has stopped when `close` fires: no grace is needed.
    const threadId = (worker as { threadId?: number }).threadId;
    return watchEndEvent(worker, threadId, 0, endNow, (end, ending) => {
      // An uncaught error ends a Bun worker: `error` fires, then `close`.
      worker.addEventListener("error", ending);
      worker.addEventListener("close", end);
      return () => {
        worker.removeEventListener("error", ending);
        worker.removeEventListener("close", end);
      };
    });
  },
});

/**
 * Watches a Bun `Worker` started elsewhere, so that shmap learns when it ends: a Mutex or
 * RWMutex it held is taken over by the next thread that locks it (with `OwnerDeadError`), a
 * map's internal lock it held is repaired, and a SyncMap it attached by hand gives back its
 * share. Workers started with {@linkcode spawn} or shared with {@linkcode share} are watched
 * already; tracking one twice does nothing. For `node:worker_threads` workers under Bun (a
 * pool's), use `track` from `@shmap/shmap/node`.
 *
 * @example
 * ```ts
 * import { track } from "@shmap/shmap/bun";
 *
 * const worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
 * track(worker);
 * ```
 *
 * @param worker A web `Worker` that has not closed.
 * @throws {TypeError} if `worker` is not a Worker; Error if it has closed.
 */
export function track(worker: Worker): void {
  adapter.track(worker);
}

/**
 * Shares `values` with `worker`: posts the structures' handles to it, for {@linkcode receive}
 * to attach there, and releases the worker's share of them, exactly once, on the worker's
 * `close` event, whatever ended it.
 *
 * Throws TypeError, before posting anything, if a value is not a GoMap, SyncMap, Mutex or
 * RWMutex, and Error if `worker` was already shared with or has closed (it would fire no
 * `close` event, and its share would stay claimed). A worker tracked before (`track()`) may be
 * shared with once, as any other.
 *
 * @example
 * ```ts
 * import { GoMap } from "@shmap/shmap";
 * import { share } from "@shmap/shmap/bun";
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
 * import { spawn } from "@shmap/shmap/bun";
 *
 * const map = new GoMap<string, number>();
 * const worker = spawn(new URL("./worker.ts", import.meta.url), { map });
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
 * does not reach listeners added after this module was imported. Import this module statically
 * (at the top of the worker's module): it starts listening as it loads, and a share message that
 * arrives before then reaches no listener on Bun, so `receive()` would wait for good (pass a
 * `signal`). A dynamic `import()` of this module misses it so, even as the worker's first
 * statement: the worker's module pauses at that `await`, and the share message comes meanwhile.
 *
 * It waits as long as the worker lives; pass `signal` (say `AbortSignal.timeout(5000)`) to
 * stop waiting: it then rejects with the signal's reason. If no other `receive()` waits and the
 * worker has no `onmessage` handler, the adapter stops listening then, and the worker ends once
 * its own work is done; the next `receive()` listens again. Bun drops a share that comes in
 * between, as any message nobody listens for: the next `receive()` waits for another. A listener
 * the worker added with `addEventListener`, which the adapter cannot see, keeps the worker alive
 * and gets such a share; so does one it adds in between. It rejects at once outside a worker.
 * Maps made with user codecs need them again: pass them by name in `codecs`. Later calls resolve
 * with the same objects; only the first call's `codecs` are used.
 *
 * @example
 * ```ts
 * import type { Codec, GoMap } from "@shmap/shmap";
 * import { receive } from "@shmap/shmap/bun";
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
