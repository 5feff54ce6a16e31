/**
 * Internal. What the worker adapters post and how each side turns it into live objects.
 *
 * The parent calls {@linkcode shareAll} with named structures; it gets a message to post and a
 * `release` to call once the worker is gone. A structure whose workers hold a share of it (a
 * SyncMap participant seat) claims that share here, in the parent, so the parent can release
 * it however the worker ends: normally, by an uncaught error, or by `terminate()`. The worker
 * keeps the message in an {@linkcode Inbox} and calls {@linkcode attachAll} on it when asked.
 *
 * The runtimes' adapters differ only in how a worker gets its messages and how the parent sees
 * a worker end: given those, {@linkcode listenForShare} (worker side) and
 * {@linkcode WorkerAdapter} (parent side) do the rest.
 *
 * @module
 */

import { Arena, KIND_GO_MAP, KIND_SYNC_MAP } from "../_engine/arena.ts";
import { claimThreadId, reserveThreadId } from "../_engine/census.ts";
import { RUNTIME } from "../_engine/runtime.ts";
import { codecs as builtinCodecs } from "../codec.ts";
import { type AttachOptions, GoMap, type GoMapHandle } from "../maps/go_map.ts";
import { describe } from "../_describe.ts";
import { checkOptions } from "../_options.ts";
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

const RECEIVE_OPTIONS = ["codecs", "signal"] as const;

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
function checkSameCodecs(
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
 * Worker side: keeps the first share message that arrives until `receive()` asks for it, and
 * attaches its structures once, on the first `receive()`.
 */
export class Inbox {
  #message: ShareMessage | undefined;
  #attached: Record<string, unknown> | undefined;
  /** The codecs of the `receive()` that attached the structures. */
  #attachedWith: Readonly<Record<string, AttachOptions<unknown, unknown>>> = {};
  #waiters = new Set<() => void>();
  #notInWorker: string | undefined;
  #changed: (() => void) | undefined;

  /**
   * `notInWorker`, when set, is why `receive()` cannot work here: it rejects with it. `changed`
   * is called whenever {@linkcode pending} or {@linkcode message} changes.
   */
  constructor(notInWorker?: string, changed?: () => void) {
    this.#notInWorker = notInWorker;
    this.#changed = changed;
  }

  /** The share message, once one has arrived. */
  get message(): ShareMessage | undefined {
    return this.#message;
  }

  /** How many `receive()` calls wait for the share message. */
  get pending(): number {
    return this.#waiters.size;
  }

  /**
   * Offers a message that reached the worker. Returns whether it is a share message (the first
   * is kept; later ones are ignored), so the caller can keep it from the user's listeners.
   */
  offer(data: unknown): boolean {
    if (!isShareMessage(data)) return false;
    if (this.#message === undefined) {
      this.#message = data;
      for (const wake of this.#waiters) wake();
      this.#waiters.clear();
      this.#changed?.();
    }
    return true;
  }

  /** Resolves with the attached structures once the share message is here. */
  receive<T>(options: ReceiveOptions = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.#notInWorker !== undefined) throw new Error(this.#notInWorker);
      const { signal, codecs } = checkOptions(options, RECEIVE_OPTIONS, "receive: options");
      if (signal !== undefined && !(signal instanceof AbortSignal)) {
        throw new TypeError(`receive: options.signal must be an AbortSignal`);
      }
      const deliver = (): void => {
        signal?.removeEventListener("abort", abort);
        try {
          if (this.#attached === undefined) {
            this.#attached = attachAll(this.#message!, codecs);
            this.#attachedWith = codecs ?? {};
          } else {
            checkSameCodecs(this.#message!, this.#attachedWith, codecs);
          }
          resolve(this.#attached as T);
        } catch (error) {
          reject(error);
        }
      };
      const abort = (): void => {
        this.#waiters.delete(deliver);
        reject(signal!.reason);
        this.#changed?.();
      };
      if (this.#message !== undefined) return deliver();
      signal?.throwIfAborted();
      this.#waiters.add(deliver);
      signal?.addEventListener("abort", abort, { once: true });
      this.#changed?.();
    });
  }
}

/** A message listener, as `addEventListener` takes it. */
type Listener = ((event: Event) => void) | { handleEvent(event: Event): void };

/** Where a worker gets its parent's messages: its global scope, or `parentPort`. */
export interface MessageSource {
  addEventListener(type: "message", listener: Listener, options?: AddEventListenerOptions): void;
  removeEventListener(type: "message", listener: Listener, options?: EventListenerOptions): void;
}

/**
 * How listening for the share message bears on the life of a worker, where it does (see
 * {@linkcode listenForShare}):
 *
 * - `"ref"`: a message listener keeps the worker alive unless `unref()` says otherwise, and
 *   `ref()` lets the listeners decide again; a message that arrives while nobody listens is lost
 *   (Deno's `parentPort`).
 * - `"presence"`: a message listener keeps the worker alive, and nothing turns that off. Where
 *   the runtime keeps a message that arrives while nobody listens until someone does (Node's and
 *   Bun's `parentPort`), nothing more is needed; where it drops it (Bun's web workers), `until`
 *   settles once the worker's main module has run, top-level awaits included: the adapter listens
 *   until then, so that a share that comes while the worker awaits something else is not lost.
 */
export type KeepAlive =
  | { readonly by: "ref"; readonly ref: () => void; readonly unref: () => void }
  | { readonly by: "presence"; readonly until?: Promise<unknown> };

/**
 * The message listeners of the worker's own code on a {@linkcode MessageSource}, as far as the
 * adapter can see them ({@linkcode watchOwnListeners}): those seen added and not seen removed,
 * a `once` one until the next message, one with a `signal` until it aborts; those it had before
 * the adapter looked, where the runtime tells; and its `onmessage` handler. Counting one too many
 * keeps the worker alive as a listener would; one too few could show the share message to it.
 */
class OwnListeners {
  /**
   * Seen added and not removed: each listener with its `capture` flag and the style of method
   * that added it (both part of its identity: `on(f)` and `addEventListener(f)` may be two).
   */
  readonly #added: { listener: Listener; capture: boolean; once: boolean; style: Style }[] = [];
  /** Those the source had before: not seen added, never seen removed. */
  #before = 0;
  /** 1 while an `onmessage` handler is being set. */
  #setting = 0;

  readonly #source: MessageSource;

  constructor(source: MessageSource) {
    this.#source = source;
  }

  /** How many there are: while there are some, the worker is kept alive by them anyway. */
  get count(): number {
    const handler = (this.#source as { onmessage?: unknown }).onmessage;
    const handlers = typeof handler === "function" ? 1 : this.#setting;
    return this.#added.length + this.#before + handlers;
  }

  /** Calls `changed` with an `onmessage` handler counted, as one is about to be set. */
  setting(changed: () => void): void {
    this.#setting = 1;
    try {
      changed();
    } finally {
      this.#setting = 0;
    }
  }

  /** Counts those the source has already, where the runtime can tell (node:events). */
  countBefore(count: number): void {
    this.#before = count;
  }

  /** Notes `listener` added; whether it was not there already (else the add does nothing). */
  add(listener: Listener, capture: boolean, once: boolean, style: Style): boolean {
    if (this.#find(listener, capture, style) >= 0) return false;
    this.#added.push({ listener, capture, once, style });
    return true;
  }

  /** Notes `listener` removed; whether it was there. */
  remove(listener: Listener, capture: boolean, style: Style): boolean {
    const at = this.#find(listener, capture, style);
    if (at < 0) return false;
    this.#added.splice(at, 1);
    return true;
  }

  /** A message is being dispatched: the `once` listeners go. Whether there were some. */
  dispatching(): boolean {
    const before = this.#added.length;
    for (let i = this.#added.length - 1; i >= 0; i--) {
      if (this.#added[i].once) this.#added.splice(i, 1);
    }
    return this.#added.length !== before;
  }

  #find(listener: Listener, capture: boolean, style: Style): number {
    return this.#added.findIndex((e) =>
      e.listener === listener && e.capture === capture && e.style === style
    );
  }
}

/** The `capture`, `once` and `signal` of `addEventListener`'s options (or of its boolean). */
function listenerOptions(
  options: unknown,
): { capture: boolean; once: boolean; signal: AbortSignal | undefined } {
  if (typeof options !== "object" || options === null) {
    return { capture: Boolean(options), once: false, signal: undefined };
  }
  const { capture, once, signal } = options as AddEventListenerOptions;
  return {
    capture: Boolean(capture),
    once: Boolean(once),
    signal: signal instanceof AbortSignal ? signal : undefined,
  };
}

/**
 * Defines `name` on `object` as `descriptor`, unless an own property of that name cannot be
 * redefined (or the object is sealed); whether it did.
 */
function redefine(object: object, name: string, descriptor: PropertyDescriptor): boolean {
  if (Object.getOwnPropertyDescriptor(object, name)?.configurable === false) return false;
  try {
    Object.defineProperty(object, name, descriptor);
    return true;
  } catch {
    return false;
  }
}

/** The accessor `name` has on `object` or its prototypes, if it is one. */
function accessorOf(object: object, name: string): PropertyDescriptor | undefined {
  for (let o: object | null = object; o !== null; o = Object.getPrototypeOf(o)) {
    const found = Object.getOwnPropertyDescriptor(o, name);
    if (found !== undefined) {
      return found.get && found.set && found.configurable ? found : undefined;
    }
  }
  return undefined;
}

/** What a watched method of a {@linkcode MessageSource} does with a listener. */
type Style =
  /** `addEventListener(type, listener, options)`, `removeEventListener(...)`. */
  | "web"
  /** `on` / `addListener` / `off` / `removeListener(type, listener)`. */
  | "node"
  /** `once(type, listener)`. */
  | "once";

/**
 * Worker side: keeps {@linkcode OwnListeners} of `source` up to date and calls `changed` when
 * their count may have changed, wrapping the source's methods that add and remove message
 * listeners (`addEventListener` and `removeEventListener`, and `on`, `addListener`, `once`,
 * `off` and `removeListener` where it has them: Deno's `parentPort` adds theirs by a way of its
 * own) and its `onmessage` accessor where it is one (on Bun's global scope it is not, and is
 * read when it matters). A listener being added is counted before it is, so that the adapter's
 * listener, added then, comes before it.
 */
function watchOwnListeners(
  source: MessageSource,
  ours: Listener,
  changed: () => void,
): OwnListeners {
  const own = new OwnListeners(source);
  // Calls made inside one watched here count as that one (Node's `on` adds through
  // addEventListener, and so does its onmessage setter).
  let depth = 0;
  const counted = (self: unknown, type: unknown, listener: unknown): listener is Listener =>
    depth === 0 && self === source && type === "message" && listener !== ours &&
    (typeof listener === "function" || (typeof listener === "object" && listener !== null));
  /** Replaces method `name`, if the source has one, by `wrapper(original)`. */
  const wrap = (
    name: string,
    wrapper: (original: (...args: unknown[]) => unknown) => (...args: unknown[]) => unknown,
  ): void => {
    const original = (source as unknown as Record<string, unknown>)[name];
    if (typeof original !== "function") return;
    redefine(source, name, {
      configurable: true,
      writable: true,
      value: wrapper(original as (...args: unknown[]) => unknown),
    });
  };
  const call = (original: (...args: unknown[]) => unknown, self: unknown, args: unknown[]) => {
    depth++;
    try {
      return original.apply(self, args);
    } finally {
      depth--;
    }
  };
  const adder = (style: Style) => (original: (...args: unknown[]) => unknown) =>
    function (this: unknown, ...args: unknown[]): unknown {
      // `this` is undefined for a bare `addEventListener(...)` in a worker's global scope.
      const self = this ?? source;
      const [type, listener, options] = args;
      if (counted(self, type, listener)) {
        const { capture, once, signal } = style === "web"
          ? listenerOptions(options)
          : { capture: false, once: style === "once", signal: undefined };
        if (signal?.aborted !== true && own.add(listener, capture, once, style)) {
          changed();
          signal?.addEventListener("abort", () => {
            if (own.remove(listener, capture, style)) changed();
          }, { once: true });
        }
      }
      return call(original, self, args);
    };
  const remover = (style: Style) => (original: (...args: unknown[]) => unknown) =>
    function (this: unknown, ...args: unknown[]): unknown {
      const self = this ?? source;
      const [type, listener, options] = args;
      const result = call(original, self, args);
      if (counted(self, type, listener)) {
        const capture = style === "web" && listenerOptions(options).capture;
        // `off` also removes a `once` listener that has not fired.
        if (own.remove(listener, capture, style) || own.remove(listener, capture, "once")) {
          changed();
        }
      }
      return result;
    };
  wrap("addEventListener", adder("web"));
  wrap("removeEventListener", remover("web"));
  for (const name of ["on", "addListener"]) wrap(name, adder("node"));
  wrap("once", adder("once"));
  for (const name of ["off", "removeListener"]) wrap(name, remover("node"));
  const handler = accessorOf(source, "onmessage");
  if (handler !== undefined) {
    redefine(source, "onmessage", {
      configurable: true,
      enumerable: handler.enumerable,
      get(this: unknown) {
        return handler.get!.call(this);
      },
      set(this: unknown, value: unknown) {
        if (this !== source) return handler.set!.call(this, value);
        // A handler being set is counted before it is (the adapter's listener goes first).
        if (typeof value === "function") own.setting(changed);
        call(handler.set!, this, [value]);
        changed();
      },
    });
  }
  return own;
}

/**
 * Worker side: the {@linkcode Inbox} for this worker, fed from `source`, its share message
 * kept from the worker's own message listeners (the adapter's listener comes first, and stops
 * it there), passed to `onShare`, and held for `receive()`. With `source` null (not in a
 * worker), `receive()` rejects with `notInWorker`.
 *
 * `keepAlive` says how a listener bears on the worker's life here (undefined: it does not, as
 * in a Deno web worker, which lives until it is closed or terminated). The adapter keeps the
 * worker alive only while a `receive()` waits, never by itself: a worker that never calls
 * `receive()`, or whose `receive()` gave up on its signal, ends when its own work is done, as
 * it would without the adapter. And no share is lost meanwhile, nor shown to the worker's own
 * listeners:
 *
 * - `"ref"`: the adapter listens until the share message comes, and keeps the listeners from
 *   holding the worker (`unref()`) while no `receive()` waits and the worker has none of its
 *   own; once the message is here, it stops listening and calls `ref()`.
 * - `"presence"`: the adapter listens only while a `receive()` waits, while the worker has
 *   message listeners of its own (which keep it alive anyway), or until `until` settles; and
 *   until the share message comes. A share that comes while it does not listen is kept by the
 *   runtime for a later `receive()` (Node and Bun's `parentPort`); on a Bun web worker, which
 *   drops it, only one that comes after the main module has run, while no `receive()` waits and
 *   the worker has no message listener, is lost.
 *
 * The worker's own message listeners are seen through the source's methods that add and remove
 * them, and its `onmessage` ({@linkcode watchOwnListeners}, wrapped here, when `keepAlive` is
 * given); `ownBefore`, when given, counts those it had before this call (a worker that imports
 * the adapter late), if the runtime can tell.
 */
export function listenForShare(
  source: MessageSource | null,
  notInWorker: string,
  onShare?: (message: ShareMessage) => void,
  keepAlive?: KeepAlive,
  ownBefore?: () => number,
): Inbox {
  if (source === null) return new Inbox(notInWorker);
  // Capturing, on Bun, which runs capturing listeners first at the target (web and
  // node:worker_threads workers alike): the adapter's comes before the worker's own even when
  // added after them. Not on Deno, whose `parentPort` does not remove a capturing listener.
  const capture = { capture: RUNTIME === "bun" };
  let listening = false;
  let refd = true;
  let until = keepAlive?.by === "presence" && keepAlive.until !== undefined;
  let done = false;
  const update = (): void => {
    if (done) return;
    if (inbox.message !== undefined) {
      done = true;
      if (listening) source.removeEventListener("message", onMessage, capture);
      listening = false;
      if (keepAlive?.by === "ref" && !refd) keepAlive.ref();
      return;
    }
    const wanted = inbox.pending > 0 || (own !== undefined && own.count > 0);
    const listen = keepAlive?.by !== "presence" || wanted || until;
    if (listen !== listening) {
      listening = listen;
      if (listen) source.addEventListener("message", onMessage, capture);
      else source.removeEventListener("message", onMessage, capture);
    }
    if (keepAlive?.by === "ref" && wanted !== refd) {
      refd = wanted;
      if (wanted) keepAlive.ref();
      else keepAlive.unref();
    }
  };
  const inbox = new Inbox(undefined, update);
  const onMessage = (event: Event): void => {
    const data = (event as MessageEvent).data;
    if (inbox.offer(data)) {
      // The share message is the adapter's: the worker's own listeners do not see it.
      event.stopImmediatePropagation();
      onShare?.(data as ShareMessage);
      return;
    }
    // The worker's own `once` listeners are called with this message, and go.
    if (own?.dispatching()) queueMicrotask(update);
  };
  const own = keepAlive === undefined ? undefined : watchOwnListeners(source, onMessage, update);
  if (own !== undefined && ownBefore !== undefined) {
    try {
      own.countBefore(ownBefore());
    } catch {
      // The runtime cannot tell: they are counted as they are seen.
    }
  }
  if (until) {
    const ran = (): void => {
      until = false;
      update();
    };
    (keepAlive as { until: Promise<unknown> }).until.then(ran, ran);
  }
  update();
  return inbox;
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
