/**
 * Internal. Checks an options object: an object (or undefined) whose own enumerable keys are all
 * known, so that a misspelt option (`maxbytes`) is an error instead of silently ignored; and the
 * `hint` option both maps take.
 *
 * @module
 */

import { checkNumber, describe } from "./_describe.ts";

/**
 * Checks that `options` is undefined or an object with no own enumerable keys outside `known`,
 * and returns it as an object. `what` names the options in the message, e.g. "GoMap options".
 * Throws TypeError naming the unknown option and listing the known ones.
 */
export function checkOptions<T extends object>(
  options: T | undefined,
  known: readonly string[],
  what: string,
): Partial<T> {
  if (options === undefined) return {};
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new TypeError(`${what} must be an object, got ${describe(options)}`);
  }
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) {
      throw new TypeError(
        `${what}: unknown option ${JSON.stringify(name)}; the known options are ` +
          known.join(", "),
      );
    }
  }
  return options;
}

/**
 * Checks a map's `hint` option (undefined means 0; null is no number, as for every option) and
 * returns it: a non-negative safe
 * integer. Throws TypeError for a non-number, RangeError for any other bad number. Whether the
 * hint fits the map's `maxBytes` is the caller's check.
 */
export function checkHint(option: number | undefined): number {
  const hint = option === undefined ? 0 : option;
  checkNumber(hint, "hint");
  if (!Number.isSafeInteger(hint) || hint < 0) {
    throw new RangeError(`hint must be a non-negative safe integer, got ${hint}`);
  }
  return hint;
}
