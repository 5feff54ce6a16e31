/**
 * Internal. What a `compute` callback returns instead of a value, shared by SyncMap and
 * RedisSyncMap (each class exposes them as its static `DELETE` and `CANCEL`), so that a
 * callback written for one works unchanged on the other; and how both end a `compute` whose
 * callback writes its own key in every round.
 *
 * @module
 */

/** Returned by a `compute` callback: delete the key. */
export const DELETE: unique symbol = Symbol("shmap.compute.delete");

/** Returned by a `compute` callback: leave the key as it is. */
export const CANCEL: unique symbol = Symbol("shmap.compute.cancel");

/**
 * Rounds in a row a `compute` may lose to its own callback's writes of its key before it
 * throws: each such write changes the value the callback was given, so it would run for good.
 */
export const SELF_WRITES_MAX = 64;

/** The error of a `compute` that lost {@linkcode SELF_WRITES_MAX} rounds to its own writes. */
export function selfWriteError(compute: string): Error {
  return new Error(
    `${compute}: fn wrote the key it computes in ${SELF_WRITES_MAX} rounds in a row (each ` +
      "write changes the value fn was given, so fn runs again, for good); fn must return the " +
      "new value, not store it",
  );
}
