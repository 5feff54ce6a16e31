/**
 * Internal. How a parent tells the census (src/_engine/census.ts) that a worker's thread is
 * ending: marked terminating as `terminate()` is called, then gone, then its share released.
 * The adapters differ only in when they see the end; what they do then is here.
 *
 * @module
 */

import {
  childrenOf,
  GONE,
  markTerminating as markCensus,
  ownerMayBeInCall,
  queueGoneHooks,
  record,
  recordChild,
  TERMINATE_GRACE_MS,
  TERMINATING,
} from "../_engine/census.ts";
import { unrefTimer } from "../_engine/unref_timer.ts";

/**
 * Records that thread `threadId` is being terminated, before `terminate()` is called: a Deno
 * worker blocked in a wait that terminate() cannot interrupt stops touching shared memory
 * when it wakes (census.ts).
 *
 * Never throws, as {@linkcode declareGone}: it runs inside the user's or a pool's
 * `terminate()`, which must stop the worker whatever the census can take. A census that is full
 * leaves the thread unmarked (a worker terminated and left running, its `terminate()` throwing,
 * was what it did before).
 */
export function markTerminating(threadId: number | undefined): void {
  if (threadId === undefined || threadId < 0) return;
  try {
    markCensus(threadId);
  } catch {
    // See declareGone.
  }
}

/**
 * Makes `worker.terminate()` (this instance's, whoever calls it: the user, or a pool on a task
 * timeout) record the thread as terminating before it asks the runtime to stop it. From then
 * on the thread's next call into shmap throws, and a thread waiting for a lock the worker holds
 * takes it over once the grace has passed (census.ts), without waiting for the end event: the
 * waiter may be the very thread whose event loop would deliver that event.
 */
export function markOnTerminate(
  worker: { terminate(): unknown },
  threadId: () => number | undefined,
  after?: () => void,
): void {
  const terminate = worker.terminate;
  Object.defineProperty(worker, "terminate", {
    configurable: true,
    writable: true,
    value: function (this: unknown): unknown {
      // Marked first: if terminate() cannot stop the worker (Deno's, while it sleeps in
      // Atomics.wait), it stops touching shared memory when it wakes (census.ts).
      markTerminating(threadId());
      try {
        return terminate.call(this);
      } finally {
        after?.();
      }
    },
  });
}

/**
 * Records that thread `threadId` is gone, now or after `graceMs` (when the runtime gives no
 * event once the thread has stopped: Deno). Its locks are then taken over, and what it held
 * in a SyncMap reclaimed.
 *
 * Never throws: it runs in a worker's end event or a timer, where no caller could catch it. A
 * census that cannot take the entry (full, or corrupt: a RangeError) leaves the thread
 * undeclared, as one nobody watches is; there is no call to hand the error to, and a corrupt
 * census throws from every shmap call that reads it (checkAlive) anyway.
 */
export function declareGone(threadId: number | undefined, graceMs = 0): void {
  if (threadId === undefined || threadId < 0) return;
  if (graceMs <= 0) {
    recordGone(threadId);
    return;
  }
  // Terminating until then: a thread that blocks meanwhile waiting for a lock the worker held
  // (this one, whose loop runs the timer, included) takes it over after the grace (census.ts).
  recordQuietly(threadId, TERMINATING);
  const timer = setTimeout(() => recordGone(threadId), graceMs);
  // The declaration must not keep the process alive once everything else is done.
  unrefTimer(timer);
}

function recordGone(threadId: number): void {
  recordQuietly(threadId, GONE);
  declareChildrenGone(threadId);
  awaitOutOfCalls(threadId);
}

/** How often {@linkcode awaitOutOfCalls} looks again. */
const OUT_OF_CALLS_POLL_MS = 20;

/**
 * Looks, every {@linkcode OUT_OF_CALLS_POLL_MS}, until thread `threadId`, gone, is seen out of
 * every shmap call it was in (census.ts ownerMayBeInCall: a Deno zombie whose OS thread runs).
 * Seeing it so writes it in the census, which every SyncMap participant then reads as a change:
 * they release its seats, which they leave alone until then. Elsewhere, or where the thread cannot
 * be seen, the first look says so and nothing more is done. Never throws, as declareGone.
 */
function awaitOutOfCalls(threadId: number, looked = false): void {
  try {
    if (!ownerMayBeInCall(threadId + 1)) {
      // Out of calls only now: its seats may be given back from now (census.ts onGone).
      if (looked) queueGoneHooks();
      return;
    }
  } catch {
    return; // See declareGone.
  }
  unrefTimer(setTimeout(() => awaitOutOfCalls(threadId, true), OUT_OF_CALLS_POLL_MS));
}

/**
 * Declares gone, after the grace, the workers that thread `threadId`, now gone, watched (census.ts,
 * CHILD): the runtime ended them with it. They count as terminating from the moment it did;
 * the declaration is what makes every participant of a SyncMap look for their seats (it
 * looks when the census changes), and it goes on down to the workers they watched. Never
 * throws, as {@linkcode declareGone}.
 */
export function declareChildrenGone(threadId: number): void {
  let children: number[];
  try {
    children = childrenOf(threadId);
  } catch {
    return; // See declareGone.
  }
  for (const child of children) declareGone(child, TERMINATE_GRACE_MS);
}

/** Records `state` for `threadId` in the census, dropping an error (see declareGone). */
function recordQuietly(threadId: number, state: number): void {
  try {
    record(threadId, state);
  } catch {
    // See declareGone.
  }
}

/**
 * Records that this thread watches the worker on thread `threadId`, as every watch begins: if
 * this thread is a worker itself, the runtime ends that worker with it, and the census then
 * counts it terminating (census.ts, CHILD), since this thread's watch will never see the end.
 * Never throws, as {@linkcode declareGone}: a census that cannot take the entry leaves the
 * worker as one nobody watches.
 */
export function noteWatched(threadId: number | undefined): void {
  if (threadId === undefined || threadId < 0) return;
  try {
    recordChild(threadId);
  } catch {
    // See above.
  }
}

/**
 * Marks thread `threadId` terminating from a worker's `error` event, whose end event follows
 * (see _end_event.ts): never throws, as {@linkcode declareGone}.
 */
export function markEnding(threadId: number | undefined): void {
  if (threadId !== undefined && threadId >= 0) recordQuietly(threadId, TERMINATING);
}

/**
 * The end of the worker on thread `threadId()`, for an adapter to call wherever it sees it:
 * declares the thread gone, then releases the worker's share with `release`, both after
 * `graceMs` (0 where the end is seen once the thread has stopped). Calls after the first do
 * nothing: the census is append-only, and each declaration would add an entry.
 */
export function endOfThread(
  threadId: () => number | undefined,
  graceMs: number,
  release: (graceMs?: number) => void,
): () => void {
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    // Gone first (timers of one delay fire in order): the seat's release then rolls back a
    // lock the thread died holding.
    declareGone(threadId(), graceMs);
    release(graceMs);
  };
}
