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

/** Runs callback `fn` of a `kind` call of `owner` for key `id` inside a new frame. */
export function runCallback<R>(
  owner: object,
  id: string,
  kind: "loadOrCompute" | "compute",
  fn: () => R,
): [R, Frame] {
  const frame = new Frame(owner, id, kind, frames.getStore());
  return [frames.run(frame, fn), frame];
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

/** Notes a write of key `id` of `owner` made now, for the `compute` callbacks it runs inside. */
export function noteWrite(owner: object, id: () => string): void {
  let f = frames.getStore();
  if (f === undefined) return;
  const key = id();
  for (; f !== undefined; f = f.parent) {
    if (f.owner === owner && f.id === key && f.kind === "compute") f.wrote = true;
  }
}
