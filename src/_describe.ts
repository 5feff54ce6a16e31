/**
 * Internal. Names a value for an error message: `null`, `undefined`, `a string "x"`,
 * `a number 42`, `an Array`, `an object`, `a Uint8Array`, `a Thing` (a class instance).
 *
 * It reads the value's prototype and its constructor's name, which a Proxy or a getter can
 * intercept: it is meant for the paths that throw, and a throwing trap falls back to a generic
 * description instead of replacing the error being reported.
 *
 * @module
 */

/** The longest string shown in full; longer ones are cut with an ellipsis. */
const MAX_SHOWN = 40;

/** Describes `value` for an error message, with the right article. */
export function describe(value: unknown): string {
  switch (typeof value) {
    case "undefined":
      return "undefined";
    case "string": {
      const shown = value.length > MAX_SHOWN ? `${value.slice(0, MAX_SHOWN)}...` : value;
      return `a string ${JSON.stringify(shown)}`;
    }
    case "number":
    case "boolean":
      return `a ${typeof value} ${String(value)}`;
    case "bigint":
      return `a bigint ${String(value)}n`;
    case "symbol":
      return `a symbol ${value.description === undefined ? "" : JSON.stringify(value.description)}`
        .trimEnd();
    case "function":
      return "a function";
  }
  if (value === null) return "null";
  if (Array.isArray(value)) return "an Array";
  let name: unknown;
  try {
    name = Object.getPrototypeOf(value)?.constructor?.name;
  } catch {
    name = undefined;
  }
  if (typeof name !== "string" || name === "" || name === "Object") return "an object";
  return withArticle(name);
}

/**
 * `name` with "a" or "an" before it, as it is read aloud: "an Array", "a Uint8Array" (a "you"),
 * "an RWMutex" (an "ar").
 */
export function withArticle(name: string): string {
  return `${/^(?:[AEIOaeio]|R[A-Z])/.test(name) ? "an" : "a"} ${name}`;
}

const KINDS = ["GoMap", "SyncMap", "Mutex", "RWMutex"];

/**
 * Throws the TypeError `${where}: ${name} must be a function, got …` unless `value` is one
 * (`name` is the parameter's, as the documentation calls it).
 */
export function checkFunction(value: unknown, where: string, name: string): void {
  if (typeof value !== "function") {
    throw new TypeError(`${where}: ${name} must be a function, got ${describe(value)}`);
  }
}

/**
 * Throws the TypeError `${name} must be a number, got …` unless `value` is one (`name` is the
 * option's): the type check of every numeric option, before its range is checked.
 */
export function checkNumber(value: unknown, name: string): asserts value is number {
  if (typeof value !== "number") {
    throw new TypeError(`${name} must be a number, got ${describe(value)}`);
  }
}

/**
 * Checks the handle passed to `GoMap.attach` or `SyncMap.attach` (`kind` names the map): an
 * object of that kind, else a TypeError that says what it is instead.
 */
export function checkHandle(handle: unknown, kind: "GoMap" | "SyncMap"): void {
  const where = `${kind}.attach`;
  if (typeof handle !== "object" || handle === null) {
    throw new TypeError(
      `${where}: the handle must be the object ${kind}#handle returns, got ${describe(handle)}`,
    );
  }
  const found: unknown = (handle as { kind?: unknown }).kind;
  if (found !== kind) throw wrongKind(where, kind, found, handle);
}

/**
 * What to add to the message for a handle with no kind: when it is an empty object, the likely
 * cause. A structure posted to a worker whole (`postMessage(map)`) arrives as `{}`, its state
 * being private fields, which a structured clone leaves out.
 */
export function emptyHandleHint(handle: object): string {
  return Object.keys(handle).length === 0
    ? " (an empty object: a structure posted to a worker whole arrives so; post its .handle)"
    : "";
}

/**
 * The TypeError for a handle, passed to `where` (e.g. "GoMap.attach"), whose `kind` is not
 * `expected`.
 */
function wrongKind(where: string, expected: string, kind: unknown, handle: object): TypeError {
  if (typeof kind === "string" && KINDS.includes(kind)) {
    return new TypeError(
      `${where}: the handle is for ${withArticle(kind)}, not ${withArticle(expected)}`,
    );
  }
  return new TypeError(
    `${where}: the handle is not ${withArticle(expected)} handle: its kind is ${describe(kind)}, ` +
      `not "${expected}"${emptyHandleHint(handle)}`,
  );
}
