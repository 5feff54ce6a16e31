/**
 * Internal. Which `loadOrCompute` and `compute` callbacks a RedisSyncMap call runs inside.
 *
 * A callback may call the map, and two of its calls would otherwise never end: a
 * `loadOrCompute` of the key its own `loadOrCompute` is computing waits for the computation it
 * is part of, and a `compute` whose callback writes its own key loses every round to that write
 * and runs the callback again, for good. Both need to know the call is made from inside the
 * callback, not beside it (a concurrent call of the same object from elsewhere must wait, or
 * retry, as before): an `AsyncLocalStorage` carries a frame for each running callback into
 * everything the callback calls, awaits and schedules.
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";

/** One running callback: of which call, for which key of which map object. */
export class Frame {
  /** The map object, by a private object of its own. */
  readonly owner: object;
  /** The key's Redis key, as latin1. */
  readonly id: string;
  readonly kind: "loadOrCompute" | "compute";
  /** The callback this one was called in, if any. */
  readonly parent: Frame | undefined;
  /** Set when a call made inside the callback wrote its key (a `compute` round's own loss). */
  wrote = false;
  /**
   * Set once the callback has returned (its promise settled): what it scheduled and runs later
   * still sees the frame, but is no part of the computation any more.
   */
  done = false;

  constructor(owner: object, id: string, kind: Frame["kind"], parent: Frame | undefined) {
    this.owner = owner;
    this.id = id;
    this.kind = kind;
    this.parent = parent;
  }
}

const frames = new AsyncLocalStorage<Frame>();

/** Runs callback `fn` of a `kind` call of `owner` for key `id` inside a new frame. */
export function runCallback<R>(
  owner: object,
  id: string,
  kind: Frame["kind"],
  fn: () => R,
): [R, Frame] {
  const frame = new Frame(owner, id, kind, frames.getStore());
  return [frames.run(frame, fn), frame];
}

/**
 * The keys of the `kind` callbacks of `owner` this call runs inside and that are still running,
 * innermost first.
 */
export function callbackKeys(owner: object, kind: Frame["kind"]): string[] {
  const keys: string[] = [];
  for (let f = frames.getStore(); f !== undefined; f = f.parent) {
    if (f.owner === owner && f.kind === kind && !f.done) keys.push(f.id);
  }
  return keys;
}

/** Notes a write of key `id` of `owner` made now, for the `compute` callbacks it runs inside. */
export function noteWrite(owner: object, id: () => string): void {
  let f = frames.getStore();
  if (f === undefined) return;
  const key = id();
  for (; f !== undefined; f = f.parent) {
    if (f.owner === owner && f.id === key && f.kind === "compute") f.wrote = true;
  }
}
