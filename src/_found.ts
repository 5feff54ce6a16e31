/**
 * Internal. What the calls that tell a value from its absence return (`loadOk`, `getOk`, `swap`,
 * `loadAndDelete`, `compute`): a value and whether there was one, in two shapes, so that `ok`
 * narrows the value's type (`if (ok) value` is a V). Their public signatures spell it out; the
 * engine's functions return the looser `[V | undefined, boolean]`, always in one of the shapes.
 *
 * @module
 */

/** A value and whether there was one; see the module documentation. */
export type Found<V> = [value: V, ok: true] | [value: undefined, ok: false];
