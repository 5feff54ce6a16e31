/**
 * Internal. What the worker adapters post and how each side turns it into live objects.
 *
 * The parent calls {@linkcode shareAll} with named structures; it gets a message to post and a
 * `release` to call once the worker is gone. A structure whose workers hold a share of it (a
 * SyncMap participant slot) claims that share here, in the parent, so the parent can release
 * it however the worker ends: normally, by an uncaught error, or by `terminate()`. The worker
 * keeps the message in an {@linkcode Inbox} and calls {@linkcode attachAll} on it when asked.
 *
 * @module
 */

import { type AttachOptions, GoMap, type GoMapHandle } from "../maps/go_map.ts";
import { shareSyncMap, SyncMap, type SyncMapHandle } from "../maps/sync_map.ts";
import { Mutex, type MutexHandle } from "../sync/mutex.ts";
import { RWMutex, type RWMutexHandle } from "../sync/rw_mutex.ts";

/** Marks a message as the adapters' own, so it is not mistaken for the user's. */
export const SHARE_TAG = "@shmap/shmap:share";

/** What a worker posts on {@linkcode ShareMessage.port} when it ends itself (Deno only). */
export const BYE = "@shmap/shmap:bye";

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
}

/** A structure the adapters can share: one of the library's exported classes. */
export type Shareable = GoMap<unknown, unknown> | SyncMap<unknown, unknown> | Mutex | RWMutex;

/**
 * Options for `receive()` in a worker.
 *
 * @example A map made with a user codec for its keys
 * ```ts ignore
 * import { receive } from "@shmap/shmap/deno";
 *
 * const { cache } = await receive({ codecs: { cache: { keys: pointCodec } } });
 * ```
 */
export interface ReceiveOptions {
  /**
   * Attach options by name, for maps made with user codecs: the same codecs again, as
   * `{ name: { keys, values } }`. Built-in codecs are found without help.
   */
  readonly codecs?: Readonly<Record<string, AttachOptions<unknown, unknown>>>;
  /** Stops waiting for the share message: `receive()` then rejects with the signal's reason. */
  readonly signal?: AbortSignal;
}

let releaseHook: ((message: ShareMessage) => void) | undefined;

/**
 * Test-only: `hook` is called with the message on every call of a `release` returned by
 * {@linkcode shareAll}, repeated calls included, so tests can check that the adapters call it
 * exactly once per worker. Pass undefined to remove it.
 */
export function setReleaseHook(hook: ((message: ShareMessage) => void) | undefined): void {
  releaseHook = hook;
}

/**
 * Makes the message for `values` and the function that releases the worker's shares. Throws
 * TypeError, having claimed nothing, if a value is not a shmap structure.
 */
export function shareAll(
  values: Readonly<Record<string, Shareable>>,
): { message: ShareMessage; release: () => void } {
  if (typeof values !== "object" || values === null || Array.isArray(values)) {
    throw new TypeError(
      `share: pass an object of named shmap structures, got ${describe(values)}`,
    );
  }
  const handles: Record<string, AnyHandle> = {};
  // Shares claimed so far (SyncMap participant slots), given back if a later value is bad.
  const releases: (() => void)[] = [];
  try {
    for (const [name, value] of Object.entries(values)) {
      if (value instanceof GoMap || value instanceof Mutex || value instanceof RWMutex) {
        handles[name] = value.handle;
      } else if (value instanceof SyncMap) {
        // The worker's participant slot is reserved here, in the parent, so that the parent can
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
    release: () => {
      releaseHook?.(message);
      if (released) return;
      released = true;
      for (const release of releases) release();
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
  if (typeof codecs !== "object" || codecs === null) {
    throw new TypeError(`receive: options.codecs must be an object, got ${describe(codecs)}`);
  }
  for (const name of Object.keys(codecs)) {
    if (!Object.hasOwn(message.handles, name)) {
      const shared = Object.keys(message.handles).map((n) => `"${n}"`).join(", ") || "nothing";
      throw new TypeError(`receive: codecs given for "${name}", which was not shared (${shared})`);
    }
  }
  const out: Record<string, unknown> = {};
  try {
    attachEach(message, codecs, out);
  } catch (error) {
    // Give back the shares of the SyncMaps attached before the failure.
    for (const value of Object.values(out)) if (value instanceof SyncMap) value.close();
    throw error;
  }
  return out;
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
        out[name] = GoMap.attach(handle, options);
        break;
      case "SyncMap":
        out[name] = SyncMap.attach(handle, options);
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
 * Worker side: keeps the first share message that arrives until `receive()` asks for it, and
 * attaches its structures once, on the first `receive()`.
 */
export class Inbox {
  #message: ShareMessage | undefined;
  #attached: Record<string, unknown> | undefined;
  #waiters = new Set<() => void>();
  #notInWorker: string | undefined;

  /** `notInWorker`, when set, is why `receive()` cannot work here: it rejects with it. */
  constructor(notInWorker?: string) {
    this.#notInWorker = notInWorker;
  }

  /** The share message, once one has arrived. */
  get message(): ShareMessage | undefined {
    return this.#message;
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
    }
    return true;
  }

  /** Resolves with the attached structures once the share message is here. */
  receive<T>(options: ReceiveOptions = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (this.#notInWorker !== undefined) throw new Error(this.#notInWorker);
      if (typeof options !== "object" || options === null) {
        throw new TypeError(`receive: options must be an object, got ${describe(options)}`);
      }
      const { signal, codecs } = options;
      if (signal !== undefined && !(signal instanceof AbortSignal)) {
        throw new TypeError(`receive: options.signal must be an AbortSignal`);
      }
      const deliver = (): void => {
        signal?.removeEventListener("abort", abort);
        try {
          this.#attached ??= attachAll(this.#message!, codecs);
          resolve(this.#attached as T);
        } catch (error) {
          reject(error);
        }
      };
      const abort = (): void => {
        this.#waiters.delete(deliver);
        reject(signal!.reason);
      };
      if (this.#message !== undefined) return deliver();
      signal?.throwIfAborted();
      this.#waiters.add(deliver);
      signal?.addEventListener("abort", abort, { once: true });
    });
  }
}

/** Describes a value in an error message. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "object") {
    const name = Object.getPrototypeOf(value)?.constructor?.name;
    return typeof name === "string" && name !== "" ? `a ${name}` : "an object";
  }
  if (typeof value === "function") return "a function";
  return typeof value === "string" ? `string "${value}"` : `${typeof value} ${String(value)}`;
}
