/**
 * Internal. What a `compute` callback returns instead of a value, shared by SyncMap and
 * RedisSyncMap (each class exposes them as its static `DELETE` and `CANCEL`), so that a
 * callback written for one works unchanged on the other.
 *
 * @module
 */

/** Returned by a `compute` callback: delete the key. */
export const DELETE: unique symbol = Symbol("shmap.compute.delete");

/** Returned by a `compute` callback: leave the key as it is. */
export const CANCEL: unique symbol = Symbol("shmap.compute.cancel");
