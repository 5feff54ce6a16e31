/**
 * Internal. The worker side of the adapters: the {@linkcode Inbox} that keeps the share message
 * until `receive()` asks for it, and {@linkcode listenForShare}, which listens for it from the
 * moment an adapter is imported until it comes (a runtime may drop a message nobody listens for),
 * and keeps it from the worker's own listeners. Where the adapter says how ({@linkcode Pause}),
 * it stops listening once a `receive()` gave up on its signal and none waits, if the worker has
 * no message listener of its own, so that the worker can end; the next `receive()` listens again.
 *
 * @module
 */

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
  #idle: IdleHooks | undefined;

  /**
   * `notInWorker`, when set, is why `receive()` cannot work here: it rejects with it. `idle`,
   * when set, is told when a `receive()` that gave up on its signal leaves none waiting with no
   * share message here (`gaveUp`), and when a `receive()` is about to wait (`waiting`).
   */
  constructor(notInWorker?: string, idle?: IdleHooks) {
    this.#notInWorker = notInWorker;
    this.#idle = idle;
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
        if (this.#waiters.size === 0 && this.#message === undefined) this.#idle?.gaveUp();
      };
      if (this.#message !== undefined) return deliver();
      signal?.throwIfAborted();
      this.#idle?.waiting();
      this.#waiters.add(deliver);
      signal?.addEventListener("abort", abort, { once: true });
    });
  }
}

/** What an {@linkcode Inbox} tells its listener about the `receive()` calls that wait. */
interface IdleHooks {
  /** A `receive()` gave up on its signal, and none waits; no share message is here. */
  gaveUp(): void;
  /** A `receive()` is about to wait for the share message. */
  waiting(): void;
}

/** Where a worker gets its parent's messages: its global scope, or `parentPort`. */
export interface MessageSource {
  addEventListener(
    type: "message",
    listener: (event: Event) => void,
    options?: AddEventListenerOptions,
  ): void;
  removeEventListener(
    type: "message",
    listener: (event: Event) => void,
    options?: EventListenerOptions,
  ): void;
}

/**
 * How an adapter's listener may stop listening for the share message once a `receive()` gave up
 * on its signal and none waits (the listener keeps a Node or Bun worker alive, and the worker
 * should be able to end): only while the worker has no message listener of its own on the
 * source, which keep it alive anyway, and would come before the adapter's when it listens again.
 */
export interface Pause {
  /** Whether the worker has no message listener of its own on the source, as far as seen. */
  alone(): boolean;
  /**
   * Called right after the adapter's listener is removed: whether the source still has a
   * message listener that {@linkcode alone} could not see. If so, the adapter listens again at
   * once (with {@linkcode relisten}).
   */
  stillListened?(): boolean;
  /**
   * The options the adapter listens again with: capturing on Bun, which runs a capturing
   * listener before the others at the target, so the share message still never reaches them.
   */
  readonly relisten?: AddEventListenerOptions;
}

/**
 * Worker side: the {@linkcode Inbox} for this worker, fed from `source`. Listens from now on,
 * since a message that arrives while nobody listens can be lost; keeps the share message from
 * listeners added later; and stops listening once it is here, after passing it to `onShare`.
 * With `source` null (not in a worker), `receive()` rejects with `notInWorker`.
 *
 * With `pause`, it also stops listening when a `receive()` gives up on its signal, none waits,
 * no share message is here, and `pause` finds the worker has no message listener of its own;
 * the next `receive()` listens again. A share message that comes meanwhile is kept by the runtime
 * for then, or dropped, as the runtime does with any message nobody listens for; a listener the
 * worker adds meanwhile comes before the adapter's and sees it (on Bun, only until the adapter
 * listens again, capturing).
 */
export function listenForShare(
  source: MessageSource | null,
  notInWorker: string,
  onShare?: (message: ShareMessage) => void,
  pause?: Pause,
): Inbox {
  if (source === null) return new Inbox(notInWorker);
  // Whether the adapter listens now, and whether capturing.
  let listening = false;
  let capturing = false;
  const listen = (options?: AddEventListenerOptions): void => {
    if (options === undefined) source.addEventListener("message", onMessage);
    else source.addEventListener("message", onMessage, options);
    listening = true;
    capturing = options?.capture === true;
  };
  const unlisten = (): void => {
    if (!listening) return;
    if (capturing) source.removeEventListener("message", onMessage, { capture: true });
    else source.removeEventListener("message", onMessage);
    listening = false;
  };
  const idle: IdleHooks | undefined = pause === undefined ? undefined : {
    gaveUp() {
      if (!listening || !isAlone(pause)) return;
      unlisten();
      if (stillListened(pause)) listen(pause.relisten);
    },
    waiting() {
      if (!listening && inbox.message === undefined) listen(pause.relisten);
    },
  };
  const inbox = new Inbox(undefined, idle);
  const onMessage = (event: Event): void => {
    const data = (event as MessageEvent).data;
    if (!inbox.offer(data)) return;
    // The share message is the adapter's: listeners added after this one do not see it.
    event.stopImmediatePropagation();
    onShare?.(data as ShareMessage);
    unlisten();
  };
  listen();
  return inbox;
}

/** `pause.alone()`; false if it throws (the adapter then keeps listening, as it always did). */
function isAlone(pause: Pause): boolean {
  try {
    return pause.alone();
  } catch {
    return false;
  }
}

/** `pause.stillListened()`; true if it throws (the adapter then listens again). */
function stillListened(pause: Pause): boolean {
  try {
    return pause.stillListened?.() ?? false;
  } catch {
    return true;
  }
}
