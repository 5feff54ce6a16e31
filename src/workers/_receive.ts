/**
 * Internal. The worker side of the adapters: the {@linkcode Inbox} that keeps the share message
 * until `receive()` asks for it, and {@linkcode listenForShare}, which listens for it without
 * keeping the worker alive longer than a waiting `receive()` needs (per runtime: how each keeps a
 * worker alive for a listener, and keeps or drops a message nobody listens for), watching the
 * worker's own message listeners so that the share message never reaches them.
 *
 * @module
 */

import { RUNTIME } from "../_engine/runtime.ts";
import type { AttachOptions } from "../maps/go_map.ts";
import { checkOptions } from "../_options.ts";
import {
  attachAll,
  checkSameCodecs,
  isShareMessage,
  RECEIVE_OPTIONS,
  type ReceiveOptions,
  type ShareMessage,
} from "./_share.ts";

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
