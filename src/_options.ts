/**
 * Internal. Checks of option bags.
 *
 * @module
 */

/**
 * Throws a TypeError naming the first own key of `options` that is not in `known`, and
 * listing the known ones: a misspelt option (`maxbytes`) must not be ignored silently.
 */
export function rejectUnknown(what: string, options: object, known: readonly string[]): void {
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new TypeError(
        `${what}: unknown option "${key}" (known options: ${known.join(", ") || "none"})`,
      );
    }
  }
}
