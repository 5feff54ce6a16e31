/**
 * Internal. What the worker adapters post and how each side turns it into live objects.
 *
 * The parent calls {@linkcode shareAll} with named structures; it gets a message to post and a
 * `release` to call once the worker is gone. A structure whose workers hold a share of it (a
 * SyncMap participant slot) claims that share here, in the parent, so the parent can release
 * it however the worker ends: normally, by an uncaught error, or by `terminate()`. The worker
 * calls {@linkcode attachAll} on the message.
 *
 * @module
 */

import { GoMap, type GoMapHandle } from "../maps/go_map.ts";
import { Mutex, type MutexHandle } from "../sync/mutex.ts";
import { RWMutex, type RWMutexHandle } from "../sync/rw_mutex.ts";

/** Marks a message as the adapters' own, so it is not mistaken for the user's. */
export const SHARE_TAG = "@shmap/shmap:share";

/** A handle as posted. */
export type AnyHandle = GoMapHandle | MutexHandle | RWMutexHandle;

/** The message a parent posts to a worker. */
export interface ShareMessage {
  readonly [SHARE_TAG]: 1;
  readonly handles: Readonly<Record<string, AnyHandle>>;
}

/** A structure the adapters can share: one of the library's exported classes. */
export type Shareable = GoMap<never, never> | Mutex | RWMutex;

/**
 * Makes the message for `values` and the function that releases the worker's shares. Throws
 * TypeError, having claimed nothing, if a value is not a shmap structure.
 */
export function shareAll(
  values: Readonly<Record<string, Shareable>>,
): { message: ShareMessage; release: () => void } {
  if (typeof values !== "object" || values === null) {
    throw new TypeError("share: pass an object of named shmap structures");
  }
  const handles: Record<string, AnyHandle> = {};
  for (const [name, value] of Object.entries(values)) {
    if (value instanceof GoMap || value instanceof Mutex || value instanceof RWMutex) {
      handles[name] = value.handle;
    } else {
      throw new TypeError(
        `share: "${name}" is not a GoMap, SyncMap, Mutex or RWMutex (got ${typeof value})`,
      );
    }
  }
  let released = false;
  return {
    message: { [SHARE_TAG]: 1, handles },
    release: () => {
      if (released) return;
      released = true;
    },
  };
}

/** Whether `data` is a {@linkcode ShareMessage}. */
export function isShareMessage(data: unknown): data is ShareMessage {
  return typeof data === "object" && data !== null &&
    (data as Record<string, unknown>)[SHARE_TAG] === 1;
}

/** Attaches every handle of `message`, by its kind. Throws TypeError for a bad handle. */
export function attachAll(message: ShareMessage): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, handle] of Object.entries(message.handles)) {
    switch (handle?.kind) {
      case "GoMap":
        out[name] = GoMap.attach(handle);
        break;
      case "Mutex":
        out[name] = Mutex.attach(handle);
        break;
      case "RWMutex":
        out[name] = RWMutex.attach(handle);
        break;
      default:
        throw new TypeError(`receive: "${name}" has an unknown handle kind`);
    }
  }
  return out;
}
