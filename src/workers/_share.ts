/**
 * Internal. What the worker adapters post and how each side turns it into live objects.
 *
 * The parent calls {@linkcode shareAll} with named structures; it gets a message to post and a
 * `release` to call once the worker is gone. A structure whose workers hold a share of it (a
 * SyncMap participant seat) claims that share here, in the parent, so the parent can release
 * it however the worker ends: normally, by an uncaught error, or by `terminate()`. The worker
 * keeps the message in an Inbox (_receive.ts) and calls {@linkcode attachAll} on it when asked.
 *
 * The runtimes' adapters differ only in how a worker gets its messages and how the parent sees
 * a worker end: given those, `listenForShare` (_receive.ts, worker side) and
 * {@linkcode WorkerAdapter} (parent side) do the rest.
 *
 * @module
 */

import { Arena, KIND_GO_MAP, KIND_SYNC_MAP } from "../_engine/arena.ts";
import { claimThreadId, reserveThreadId } from "../_engine/census.ts";
import { codecs as builtinCodecs } from "../codec.ts";
import { type AttachOptions, GoMap, type GoMapHandle } from "../maps/go_map.ts";
import { describe } from "../_describe.ts";
import { shareSyncMap, SyncMap, type SyncMapHandle } from "../maps/sync_map.ts";
import { Mutex, type MutexHandle } from "../sync/mutex.ts";
import { RWMutex, type RWMutexHandle } from "../sync/rw_mutex.ts";

/** Marks a message as the adapters' own, so it is not mistaken for the user's. */
export const SHARE_TAG = "@shmap/shmap:share";

/** What a worker posts on {@linkcode ShareMessage.port} when it ends itself (Deno only). */
export const BYE = "@shmap/shmap:bye";

/** Marks a message that only asks a worker for its thread id (`track()` on Deno). */
export const TRACK_TAG = "@shmap/shmap:track";

/**
 * Checks that this runtime has the web `Worker` the Deno and Bun adapters start (`where` names
 * the call): Node.js has none, and `new Worker` there failed with a ReferenceError from inside
 * the adapter (helper-166).
 */
export function checkWebWorker(where: string): void {
  if (typeof (globalThis as { Worker?: unknown }).Worker !== "function") {
    throw new TypeError(
      `${where}: this runtime has no web Worker; on Node.js, use the Node adapter ` +
        `(@shmap/shmap/node)`,
    );
  }
}

/** A handle as posted. */
export type AnyHandle = GoMapHandle | SyncMapHandle | MutexHandle | RWMutexHandle;

/** The message a parent posts to a worker. */
export interface ShareMessage {
  readonly [SHARE_TAG]: 1;
  readonly handles: Readonly<Record<string, AnyHandle>>;
  /**
   * Set by the Deno adapter, whose workers have no exit event: the worker posts {@linkcode BYE}
   * on it when it closes itself, so the parent can release.
   */
  readonly port?: MessagePort;
  /**
   * Set by the Deno adapter: the thread id reserved for the worker (a Deno web worker has none
   * of its own). The worker takes it, or answers on `port` with the one it already uses.
   */
  readonly threadId?: number;
}

/** What `track()` posts to a Deno worker: a port to answer with its thread id on. */
export interface TrackMessage {
  readonly [TRACK_TAG]: 1;
  readonly port: MessagePort;
  readonly threadId: number;
}

/** Whether `data` is a {@linkcode TrackMessage}. */
export function isTrackMessage(data: unknown): data is TrackMessage {
  return typeof data === "object" && data !== null &&
    (data as Record<string, unknown>)[TRACK_TAG] === 1;
}

/**
 * Worker side, Deno: takes the thread id the parent reserved (unless this thread already has
 * one) and tells the parent the id in force on `port`.
 */
export function answerThreadId(port: MessagePort | undefined, reserved: number | undefined): void {
  if (port === undefined || reserved === undefined) return;
  try {
    port.postMessage({ threadId: claimThreadId(reserved) });
  } catch {
    // The parent's end is gone already.
  }
}

/** Parent side, Deno: reserves a thread id for a web worker that has none of its own. */
export function reserveId(): number {
  return reserveThreadId();
}

/** A structure the adapters can share: one of the library's exported classes. */
export type Shareable = GoMap<unknown, unknown> | SyncMap<unknown, unknown> | Mutex | RWMutex;

/**
 * What `share()` and `spawn()` take: the structures, by the names the worker receives them
 * under.
 *
 * @example
 * ```ts
 * import { GoMap, Mutex } from "@shmap/shmap";
 * import type { Shareables } from "@shmap/shmap/deno";
 *
 * const values: Shareables = { hits: new GoMap<string, number>(), lock: new Mutex() };
 * ```
 */
export type Shareables = Readonly<Record<string, Shareable>>;

/**
 * Options for `receive()` in a worker.
 *
 * @example A map made with a user codec for its keys
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
 * });
 * ```
 */
export interface ReceiveOptions {
  /**
   * Attach options by name, for maps made with user codecs: the same codecs again, as
   * `{ name: { keys, values } }`. Built-in codecs are found without help. The first
   * `receive()` attaches the structures, and every later one returns those same objects: a
   * later call may leave `codecs` out, and one that gives codecs must give the first call's
   * (the same objects), else it rejects with a TypeError.
   */
  readonly codecs?: Readonly<Record<string, AttachOptions<unknown, unknown>>>;
  /** Stops waiting for the share message: `receive()` then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

export const RECEIVE_OPTIONS = ["codecs", "signal"] as const;

let releaseHook: ((message: ShareMessage) => void) | undefined;

/**
 * Test-only: `hook` is called with the message on every call of a `release` returned by
 * {@linkcode shareAll}, repeated calls included, so tests can check that the adapters call it
 * exactly once per worker. Pass undefined to remove it.
 */
export function setReleaseHook(hook: ((message: ShareMessage) => void) | undefined): void {
  releaseHook = hook;
}

/** Whether `value` is one of shmap's structures, which `share` hands to a worker. */
function isStructure(value: unknown): value is Shareable {
  return value instanceof GoMap || value instanceof SyncMap || value instanceof Mutex ||
    value instanceof RWMutex;
}

/**
 * Makes the message for `values` and the function that releases the worker's shares. Throws
 * TypeError, having claimed nothing, if a value is not a shmap structure.
 */
export function shareAll(values: Shareables): Grant {
  if (typeof values !== "object" || values === null || Array.isArray(values)) {
    throw new TypeError(
      `share: pass an object of named shmap structures, got ${describe(values)}`,
    );
  }
  // A structure passed bare (`spawn(url, cache)` for `spawn(url, { cache })`) has no enumerable
  // fields of its own: it would share nothing, and the worker's receive() get an empty object.
  const proto = Object.getPrototypeOf(values);
  if (proto !== Object.prototype && proto !== null) {
    throw new TypeError(
      isStructure(values)
        ? `share: pass the structures in an object that names them, as { map } (not map), ` +
          `not ${describe(values)} itself`
        : `share: pass a plain object of named shmap structures, got ${describe(values)}`,
    );
  }
  const handles: Record<string, AnyHandle> = {};
  // Shares claimed so far (SyncMap participant seats), given back if a later value is bad.
  const releases: ((graceMs?: number) => void)[] = [];
  try {
    for (const [name, value] of Object.entries(values)) {
      if (value instanceof GoMap || value instanceof Mutex || value instanceof RWMutex) {
        handles[name] = value.handle;
      } else if (value instanceof SyncMap) {
        // The worker's participant seat is reserved here, in the parent, so that the parent can
        // give it back however the worker ends.
        const share = shareSyncMap(value as SyncMap<never, never>);
        releases.push(share.release);
        handles[name] = share.handle;
      } else {
        throw new TypeError(
          `share: "${name}" is not a GoMap, SyncMap, Mutex or RWMutex (got ${describe(value)})`,
        );
      }
    }
  } catch (error) {
    for (const release of releases) release();
    throw error;
  }
  let released = false;
  const message: ShareMessage = { [SHARE_TAG]: 1, handles };
  return {
    message,
    release: (graceMs = 0) => {
      releaseHook?.(message);
      if (released) return;
      released = true;
      for (const release of releases) release(graceMs);
    },
  };
}

/** Whether `data` is a {@linkcode ShareMessage}. */
export function isShareMessage(data: unknown): data is ShareMessage {
  return typeof data === "object" && data !== null &&
    (data as Record<string, unknown>)[SHARE_TAG] === 1;
}

/**
 * Attaches every handle of `message`, by its kind, with the attach options `codecs` gives by
 * name. Throws TypeError for a bad handle, and for codecs given for a name that was not shared
 * or that names a lock.
 */
export function attachAll(
  message: ShareMessage,
  codecs: Readonly<Record<string, AttachOptions<unknown, unknown>>> = {},
): Record<string, unknown> {
  checkCodecNames(message, codecs);
  const out: Record<string, unknown> = {};
  // A failure (a codec missing or wrong) leaves the SyncMaps attached before it open: each holds
  // the seat its parent reserved, which can be adopted once only, so a receive() tried again
  // with the right codecs gets them back (SyncMap.attach finds this thread's object for a
  // seat). Closed, they would give their seats back for good, and the retry would fail. Not
  // retried, they are released with the worker's share when it ends.
  attachEach(message, codecs, out);
  return out;
}

/** Throws TypeError unless `codecs` is an object whose every key names a shared structure. */
function checkCodecNames(
  message: ShareMessage,
  codecs: Readonly<Record<string, AttachOptions<unknown, unknown>>>,
): void {
  if (typeof codecs !== "object" || codecs === null) {
    throw new TypeError(`receive: options.codecs must be an object, got ${describe(codecs)}`);
  }
  for (const name of Object.keys(codecs)) {
    if (!Object.hasOwn(message.handles, name)) {
      const shared = Object.keys(message.handles).map((n) => `"${n}"`).join(", ") || "nothing";
      throw new TypeError(`receive: codecs given for "${name}", which was not shared (${shared})`);
    }
  }
}

/**
 * A later `receive()`'s check: it returns the structures the first one attached, so `codecs`
 * must name shared structures and give each the codecs the first gave it (the same objects), or
 * none at all. Throws TypeError otherwise: codecs ignored would decode with others than the
 * caller asked for.
 */
export function checkSameCodecs(
  message: ShareMessage,
  first: Readonly<Record<string, AttachOptions<unknown, unknown>>>,
  codecs: Readonly<Record<string, AttachOptions<unknown, unknown>>> | undefined,
): void {
  if (codecs === undefined) return;
  checkCodecNames(message, codecs);
  for (const name of new Set([...Object.keys(first), ...Object.keys(codecs)])) {
    const a = first[name], b = codecs[name];
    if ((a === undefined) !== (b === undefined) || a?.keys !== b?.keys || a?.values !== b?.values) {
      throw new TypeError(
        `receive: codecs for "${name}" differ from those of the first receive(), which attached ` +
          `the structures every call returns`,
      );
    }
  }
}

function attachEach(
  message: ShareMessage,
  codecs: Readonly<Record<string, AttachOptions<unknown, unknown>>>,
  out: Record<string, unknown>,
): void {
  for (const [name, handle] of Object.entries(message.handles)) {
    const options = codecs[name];
    switch (handle?.kind) {
      case "GoMap":
      case "SyncMap":
        try {
          out[name] = handle.kind === "GoMap"
            ? GoMap.attach(handle, options)
            : SyncMap.attach(handle, options);
        } catch (error) {
          throw (error instanceof TypeError && missingCodecError(name, handle, options)) || error;
        }
        break;
      case "Mutex":
      case "RWMutex":
        if (options !== undefined) {
          throw new TypeError(`receive: "${name}" is a ${handle.kind}, which takes no codecs`);
        }
        out[name] = handle.kind === "Mutex" ? Mutex.attach(handle) : RWMutex.attach(handle);
        break;
      default:
        throw new TypeError(`receive: "${name}" has an unknown handle kind`);
    }
  }
}

/**
 * The TypeError for a map whose attach failed because `options` (what `codecs` gave under
 * `name`) leaves out a user codec the map was made with: it names the codecs, and shows the
 * `receive()` option that gives them, with the share's name filled in (the attach's own error
 * says "pass it as values", which names no option of receive()). Undefined when no user codec
 * is missing: the attach failed for another reason, whose error stands.
 */
function missingCodecError(
  name: string,
  handle: GoMapHandle | SyncMapHandle,
  options: AttachOptions<unknown, unknown> | undefined,
): TypeError | undefined {
  // Options that are not an object failed on their own account.
  if (options !== undefined && (typeof options !== "object" || options === null)) return undefined;
  let recorded: { keys: string; values: string };
  try {
    const kind = handle.kind === "GoMap" ? KIND_GO_MAP : KIND_SYNC_MAP;
    const arena = Arena.attach(handle.buffer, kind, false, "receive");
    recorded = { keys: arena.keyCodecName, values: arena.valueCodecName };
  } catch {
    return undefined;
  }
  const roles = (["keys", "values"] as const).filter((role) =>
    !Object.hasOwn(builtinCodecs, recorded[role])
  );
  const missing = roles.filter((role) => options?.[role] === undefined);
  if (missing.length === 0) return undefined;
  const quoted = (role: "keys" | "values") => JSON.stringify(recorded[role]);
  const uses = missing.map((role) => `${role} use the codec ${quoted(role)}`).join(" and whose ");
  const one = missing.length === 1;
  // The option as the caller writes it: every user codec of the map, those given too.
  const key = /^[A-Za-z_$][\w$]*$/.test(name) ? name : JSON.stringify(name);
  const shape = roles.map((role) => `${role}: <the ${quoted(role)} codec>`).join(", ");
  return new TypeError(
    `receive: "${name}" is a ${handle.kind} whose ${uses}, ${one ? "which is" : "which are"} ` +
      `not built in: give receive() the parent's ${one ? "codec" : "codecs"}, as ` +
      `receive({ codecs: { ${key}: { ${shape} } } })`,
  );
}

/**
 * What {@linkcode shareAll} gives: the message to post, and the release of the worker's share
 * (with a grace in milliseconds when the worker may still be running its last task).
 */
export interface Grant {
  readonly message: ShareMessage;
  readonly release: (graceMs?: number) => void;
}

/** Parent side: the watch of one worker's end, as an {@linkcode AdapterSpec} starts it. */
export interface Watch {
  /** Posts the share message to the worker. */
  post(message: ShareMessage): void;
  /** Stops watching, once the worker has ended. */
  stop(): void;
  /** Asks the worker for its thread id, where the runtime does not tell it (Deno). */
  track?(): void;
}

/** Parent side: what sharing with a worker takes in one runtime. */
export interface AdapterSpec<W extends object> {
  /** What `share()` expected, for its TypeError: "a Worker". */
  readonly expected: string;
  /** The methods `share()` checks that a worker has. */
  readonly methods: readonly (keyof W & string)[];
  /** Throws if `worker`, not shared with before, cannot be shared with in this runtime. */
  readonly check?: (worker: W) => void;
  /**
   * Starts watching for the end of `worker`, to call `end` then (calling it again is harmless;
   * pass a grace when the worker may still be running), and says how to post the share message
   * to it and how to stop watching once it has ended.
   */
  readonly watch: (worker: W, end: (graceMs?: number) => void) => Watch;
}

/** A worker watched for its end: by `track()`, a share, or both. */
interface Watched {
  readonly watch: Watch;
  /** The worker's end, seen (or declared by the caller): stops the watch, runs `releases`. */
  readonly end: (graceMs?: number) => void;
  /** What to give back at the end: each share's grant. */
  readonly releases: ((graceMs?: number) => void)[];
  /** Whether something was shared with it (a second share is refused). */
  shared: boolean;
  ended: boolean;
}

/** Parent side: `track()`, `share()` and `spawn()` for the workers of one runtime. */
export class WorkerAdapter<W extends object> {
  readonly #spec: AdapterSpec<W>;
  /** The workers watched so far: tracked, shared with, or both. */
  readonly #watched = new WeakMap<W, Watched>();

  constructor(spec: AdapterSpec<W>) {
    this.#spec = spec;
  }

  /** Whether `worker` is an object with every method the runtime needs of a worker. */
  isWorker(worker: unknown): worker is W {
    return typeof worker === "object" && worker !== null &&
      this.#spec.methods.every((method) => typeof (worker as W)[method] === "function");
  }

  /**
   * `track()`. Watches `worker` so that its end is declared to shmap (its locks taken over,
   * what it held in a SyncMap reclaimed), for workers started elsewhere, such as a pool's.
   * Returns the watch, or undefined for a worker already shared with or tracked.
   */
  track(worker: W): Watch | undefined {
    this.#checkWorker(worker, "track");
    this.#spec.check?.(worker);
    if (this.#watched.has(worker)) return undefined;
    return this.#watch(worker).watch;
  }

  /**
   * `share()`. Checks `worker`, then shares `values` with it. A worker tracked before (by
   * `track()` or `trackAll()`) is shared with through the watch it has.
   */
  share(worker: W, values: Shareables): void {
    this.#checkWorker(worker, "share");
    this.#spec.check?.(worker);
    const watched = this.#watched.get(worker);
    if (watched?.shared) throw new Error("share: this worker was already shared with");
    if (watched?.ended) throw new Error("share: this worker has ended");
    this.#connect(worker, shareAll(values), watched);
  }

  /**
   * `spawn()`. Claims the shares of `values`, then starts the worker with `create` and shares
   * them with it; gives them back if `create` throws.
   */
  spawn(values: Shareables, create: () => W): W {
    const grant = shareAll(values);
    let worker: W;
    try {
      worker = create();
    } catch (error) {
      grant.release();
      throw error;
    }
    this.#connect(worker, grant, this.#watched.get(worker));
    return worker;
  }

  /** Throws TypeError, in the words of `caller`, unless {@linkcode isWorker}. */
  #checkWorker(worker: W, caller: string): void {
    if (!this.isWorker(worker)) {
      throw new TypeError(`${caller}: expected ${this.#spec.expected}, got ${describe(worker)}`);
    }
  }

  /**
   * Posts the share message to `worker`, watched already or now, and releases the grant once
   * it has ended. A post that fails gives the grant back at once; a worker watched only for
   * this share stops being watched then, one tracked before stays tracked.
   */
  #connect(worker: W, grant: Grant, watched: Watched | undefined): void {
    const entry = watched ?? this.#watch(worker);
    entry.shared = true;
    entry.releases.push(grant.release);
    try {
      entry.watch.post(grant.message);
    } catch (error) {
      entry.releases.pop();
      entry.shared = false;
      if (watched === undefined) entry.end();
      grant.release();
      throw error;
    }
  }

  /**
   * Starts watching `worker`. Its end, however often it is seen, stops the watch and runs the
   * releases once.
   */
  #watch(worker: W): Watched {
    const entry: Watched = {
      watch: undefined as unknown as Watch,
      end: (graceMs?: number): void => {
        if (entry.ended) return;
        entry.ended = true;
        entry.watch.stop();
        for (const release of entry.releases) release(graceMs);
      },
      releases: [],
      shared: false,
      ended: false,
    };
    (entry as { watch: Watch }).watch = this.#spec.watch(worker, entry.end);
    this.#watched.set(worker, entry);
    return entry;
  }
}
