/**
 * Internal. The worker side of the adapters: the {@linkcode Inbox} that keeps the share message
 * until `receive()` asks for it, and {@linkcode listenForShare}, which listens for it from the
 * moment an adapter is imported until it comes (a runtime may drop a message nobody listens for),
 * and keeps it from the worker's own listeners.
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
      };
      if (this.#message !== undefined) return deliver();
      signal?.throwIfAborted();
      this.#waiters.add(deliver);
      signal?.addEventListener("abort", abort, { once: true });
    });
  }
}

/** Where a worker gets its parent's messages: its global scope, or `parentPort`. */
export interface MessageSource {
  addEventListener(type: "message", listener: (event: Event) => void): void;
  removeEventListener(type: "message", listener: (event: Event) => void): void;
}

/**
 * Worker side: the {@linkcode Inbox} for this worker, fed from `source`. Listens from now on,
 * since a message that arrives while nobody listens can be lost; keeps the share message from
 * listeners added later; and stops listening once it is here, after passing it to `onShare`.
 * With `source` null (not in a worker), `receive()` rejects with `notInWorker`.
 */
export function listenForShare(
  source: MessageSource | null,
  notInWorker: string,
  onShare?: (message: ShareMessage) => void,
): Inbox {
  if (source === null) return new Inbox(notInWorker);
  const inbox = new Inbox();
  const onMessage = (event: Event): void => {
    const data = (event as MessageEvent).data;
    if (!inbox.offer(data)) return;
    // The share message is the adapter's: listeners added after this one do not see it.
    event.stopImmediatePropagation();
    onShare?.(data as ShareMessage);
    source.removeEventListener("message", onMessage);
  };
  source.addEventListener("message", onMessage);
  return inbox;
}
