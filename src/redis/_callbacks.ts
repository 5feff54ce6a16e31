/**
 * Internal. Which `loadOrCompute` and `compute` callbacks a RedisSyncMap call runs inside, and
 * which of the map's calls in progress.
 *
 * A callback may call the map, and two of its calls would otherwise never end: a
 * `loadOrCompute` of the key its own `loadOrCompute` is computing waits for the computation it
 * is part of, and a `compute` whose callback writes its own key loses every round to that write
 * and runs the callback again, for good. Both need to know the call is made from inside the
 * callback, not beside it (a concurrent call of the same object from elsewhere must wait, or
 * retry, as before): an `AsyncLocalStorage` carries a frame for each running callback into
 * everything the callback calls, awaits and schedules.
 *
 * `close()` needs the same of the calls that send several commands (`range`, `clear`, `size`,
 * `compute`, `loadOrCompute`): it waits for those in progress, but not for one it is called
 * inside (from a callback), which waits for it; and a call made inside one in progress (by its
 * callback) is part of it, allowed after `close()`. Each such call runs inside a frame of kind
 * `"call"`, the parent of its callbacks' frames.
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";

/**
 * One running callback: of which call, for which key of which map object; or one call in
 * progress (kind `"call"`).
 */
export class Frame {
  /** The map object, by a private object of its own. */
  readonly owner: object;
  /** The key's Redis key, as latin1; for a call, its operation. */
  readonly id: string;
  readonly kind: "loadOrCompute" | "compute" | "call";
  /** The callback this one was called in, if any. */
  readonly parent: Frame | undefined;
  /** Set when a call made inside the callback wrote its key (a `compute` round's own loss). */
  wrote = false;
  /**
   * Set once the callback has returned (its promise settled), or the call has settled: what it
   * scheduled and runs later still sees the frame, but is no part of it any more.
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

/**
 * Runs callback `fn` of a `kind` call of `owner` for key `id` inside a new frame. A callback
 * that throws (not one that returns a promise that rejects) is done at once: what it scheduled
 * before it threw is no part of a computation any more.
 */
export function runCallback<R>(
  owner: object,
  id: string,
  kind: "loadOrCompute" | "compute",
  fn: () => R,
): [R, Frame] {
  const frame = new Frame(owner, id, kind, frames.getStore());
  try {
    return [frames.run(frame, fn), frame];
  } catch (error) {
    frame.done = true;
    throw error;
  }
}

/** Runs `fn`, the body of call `op` of `owner`, inside a new frame of kind `"call"`. */
export function runCall<R>(owner: object, op: string, fn: () => R): [R, Frame] {
  const frame = new Frame(owner, op, "call", frames.getStore());
  return [frames.run(frame, fn), frame];
}

/** The calls of `owner` in progress that this code runs inside, innermost first. */
export function enclosingCalls(owner: object): Frame[] {
  const calls: Frame[] = [];
  for (let f = frames.getStore(); f !== undefined; f = f.parent) {
    if (f.owner === owner && f.kind === "call" && !f.done) calls.push(f);
  }
  return calls;
}

/**
 * The keys of the `kind` callbacks of `owner` this call runs inside and that are still running,
 * innermost first.
 */
export function callbackKeys(owner: object, kind: "loadOrCompute" | "compute"): string[] {
  const keys: string[] = [];
  for (let f = frames.getStore(); f !== undefined; f = f.parent) {
    if (f.owner === owner && f.kind === kind && !f.done) keys.push(f.id);
  }
  return keys;
}

/**
 * The `compute` callbacks of `owner` this code runs inside that a write of key `id` made by
 * this call would cost their round (every key: a `clear`), or undefined when there are none:
 * the call tells them with {@linkcode noteWrite} once its reply says it wrote. Taken when the
 * call starts, in the caller's context; a reply comes in the connection's.
 */
export function computesOf(owner: object, id?: () => string): Frame[] | undefined {
  let f = frames.getStore();
  if (f === undefined) return undefined;
  const key = id?.();
  let found: Frame[] | undefined;
  for (; f !== undefined; f = f.parent) {
    if (f.owner === owner && f.kind === "compute" && (key === undefined || f.id === key)) {
      (found ??= []).push(f);
    }
  }
  return found;
}

/**
 * Notes in `computes` ({@linkcode computesOf}) that a call made inside them wrote their key.
 * Only a write that took effect counts: a `loadOrStore` that found a value, or a compare that
 * failed, wrote nothing, and a round lost then was lost to another writer.
 */
export function noteWrite(computes: readonly Frame[]): void {
  for (const f of computes) f.wrote = true;
}
