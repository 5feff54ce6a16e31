/**
 * Internal. Describes a value in an error message: `null`, `an Array`, `an object`,
 * `a Uint8Array`, `a string "x"`, `a number 3`.
 *
 * @module
 */

/** `name` with its indefinite article: "a Mutex", "an Array", "an RWMutex". */
export function withArticle(name: string): string {
  return `${/^(?:[AEIOaeio]|[RU][A-Z])/.test(name) ? "an" : "a"} ${name}`;
}

/** A short description of `value` for an error message. */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  if (Array.isArray(value)) return "an Array";
  switch (typeof value) {
    case "object": {
      let name: unknown;
      try {
        name = Object.getPrototypeOf(value)?.constructor?.name;
      } catch {
        name = undefined;
      }
      return typeof name === "string" && name !== "" && name !== "Object"
        ? withArticle(name)
        : "an object";
    }
    case "string":
      return `a string ${JSON.stringify(value.length > 40 ? value.slice(0, 40) + "…" : value)}`;
    case "function":
      return "a function";
    case "symbol":
      return "a symbol";
    default:
      return `${withArticle(typeof value)} ${String(value)}`;
  }
}
