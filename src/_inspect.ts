/**
 * Internal. What `console.log` and the runtimes' inspect functions show for shmap's
 * structures: Deno calls `[Symbol.for("Deno.customInspect")](inspect, options)`, Node and Bun
 * `[Symbol.for("nodejs.util.inspect.custom")](depth, options, inspect)`. Each structure gets
 * both from {@linkcode defineInspect} and formats itself with the functions here, so that all
 * four print alike on every runtime:
 *
 * - a map as a `Map` prints, `SyncMap(2) { "a" => 1, "b" => 2 }`: the entries read are handed
 *   to the runtime's own inspect as a native `Map` (its quotes, colors and line breaking), at
 *   most `maxArrayLength` (Node, Bun) or `iterableLimit` (Deno) of them, 100 by default, then
 *   `... N more items`;
 * - a lock as `Mutex { unlocked }`;
 * - either as `[SyncMap]` past the inspect depth, as a nested `Map` is.
 *
 * Nothing here throws: a structure that cannot be read (a closed SyncMap object, a GoMap
 * being written) says so in place of its entries.
 *
 * @module
 */

/** Entries shown when the caller's options do not say. */
export const INSPECT_LIMIT = 100;

/** How one runtime asked for a structure to be shown. */
export interface InspectRequest {
  /** Shows a key or value as the runtime would, one level deeper. */
  show(value: unknown): string;
  /** Shows a native Map at this level as the runtime would; absent without its inspect. */
  showMap?: (map: Map<unknown, unknown>) => string;
  /** Most entries to show. */
  limit: number;
  /** The depth is used up: show the name only. */
  tooDeep: boolean;
  /** Width past which entries go one a line. */
  breakLength: number;
}

type InspectFn = (value: unknown, options?: Record<string, unknown>) => string;

/** Falls back to JSON-ish text where no inspect function was passed. */
function plain(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value !== "object" || value === null) return String(value);
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return Object.prototype.toString.call(value);
  }
}

function limitOf(...candidates: unknown[]): number {
  for (const c of candidates) {
    if (c === null || c === Infinity) return Infinity;
    if (typeof c === "number" && c >= 0) return Math.floor(c);
  }
  return INSPECT_LIMIT;
}

function breakLengthOf(options: Record<string, unknown>): number {
  const b = options.breakLength;
  return typeof b === "number" && b > 0 ? b : 80;
}

/** Reads Deno's arguments: `inspect` is Deno.inspect, `options` Deno's inspect options. */
export function denoRequest(inspect: unknown, options: unknown): InspectRequest {
  const o = (typeof options === "object" && options !== null ? options : {}) as Record<
    string,
    unknown
  >;
  const depth = typeof o.depth === "number" ? o.depth : 4;
  const at = typeof o.currentDepth === "number" ? o.currentDepth : 0;
  const fn = typeof inspect === "function" ? inspect as InspectFn : undefined;
  // Deno.inspect starts from depth 0: hand it what is left, as a fresh call.
  const nested: Record<string, unknown> = {
    depth: depth - at - 1,
    colors: o.colors === true,
    iterableLimit: o.iterableLimit,
    strAbbreviateSize: o.strAbbreviateSize,
    breakLength: o.breakLength,
    compact: o.compact,
    sorted: o.sorted,
    getters: o.getters,
  };
  for (const key of Object.keys(nested)) if (nested[key] === undefined) delete nested[key];
  const here = { ...nested, depth: depth - at, iterableLimit: Infinity };
  return {
    show: fn === undefined ? plain : (value) => fn(value, nested),
    showMap: fn === undefined ? undefined : (map) => fn(map, here),
    limit: limitOf(o.iterableLimit, o.maxArrayLength),
    tooDeep: at > depth,
    breakLength: breakLengthOf(o),
  };
}

/** Reads Node's and Bun's arguments: `depth` is what is left of the depth (-1: none). */
export function nodeRequest(depth: unknown, options: unknown, inspect: unknown): InspectRequest {
  const o = (typeof options === "object" && options !== null ? options : {}) as Record<
    string,
    unknown
  >;
  const fn = typeof inspect === "function" ? inspect as InspectFn : undefined;
  const left = typeof depth === "number" ? depth : 2;
  const nested = { ...o, depth: o.depth === null ? null : left - 1 };
  const here = { ...o, depth: o.depth === null ? null : left, maxArrayLength: Infinity };
  return {
    show: fn === undefined ? plain : (value) => fn(value, nested),
    showMap: fn === undefined ? undefined : (map) => fn(map, here),
    limit: limitOf(o.maxArrayLength),
    tooDeep: left < 0,
    breakLength: breakLengthOf(o),
  };
}

/**
 * Gives the instances of the class whose prototype is `proto` both runtimes' inspect hooks:
 * each reads its runtime's arguments and returns `show(instance, request)`. Like methods of a
 * class body, the hooks are not enumerable.
 */
export function defineInspect<T>(
  proto: T,
  show: (self: T, request: InspectRequest) => string,
): void {
  Object.defineProperties(proto, {
    [Symbol.for("Deno.customInspect")]: {
      configurable: true,
      writable: true,
      value(this: T, inspect?: unknown, options?: unknown): string {
        return show(this, denoRequest(inspect, options));
      },
    },
    [Symbol.for("nodejs.util.inspect.custom")]: {
      configurable: true,
      writable: true,
      value(this: T, depth?: unknown, options?: unknown, inspect?: unknown): string {
        return show(this, nodeRequest(depth, options, inspect));
      },
    },
  });
}

/** Indents the lines after the first of `text` by two spaces. */
function indent(text: string): string {
  return text.replaceAll("\n", "\n  ");
}

/** The first `limit` entries of `iterate()`; `iterate` is not called when `limit` is 0. */
function firstEntries(
  iterate: () => Iterable<[unknown, unknown]>,
  limit: number,
): [unknown, unknown][] {
  const entries: [unknown, unknown][] = [];
  if (limit <= 0) return entries;
  for (const entry of iterate()) {
    entries.push(entry);
    if (entries.length >= limit) break;
  }
  return entries;
}

/**
 * Formats a map: `name(size) { key => value, ... }`. `iterate()` gives its entries (the first
 * ones are read, as many as the request shows), or throws; `unreadable(error)` says why they
 * could not be read (in place of the entries). Never throws.
 */
export function inspectMap(
  request: InspectRequest,
  name: string,
  size: () => number,
  iterate: () => Iterable<[unknown, unknown]>,
  unreadable: (error: unknown) => string,
): string {
  try {
    if (request.tooDeep) return `[${name}]`;
    let n: number;
    try {
      n = size();
    } catch (error) {
      return `${name} { <${unreadable(error)}> }`;
    }
    let entries: [unknown, unknown][];
    try {
      entries = firstEntries(iterate, request.limit);
    } catch (error) {
      return `${name}(${n}) { <${unreadable(error)}> }`;
    }
    // The count may have moved since it was read: never claim fewer entries than shown.
    let more = Math.max(0, n - entries.length);
    if (entries.length < request.limit) more = 0;
    const tail = more > 0 ? `... ${more} more item${more === 1 ? "" : "s"}` : "";
    const head = `${name}(${Math.max(n, entries.length)})`;
    if (request.showMap !== undefined && entries.length > 0) {
      // The runtime lays the entries out as it would a Map's; only the name, the count and
      // the entries not read are this map's.
      const text = request.showMap(new Map(entries));
      const open = text.indexOf(" {");
      if (text.startsWith("Map(") && open > 0 && text.endsWith("}")) {
        const body = text.slice(open);
        if (tail === "") return head + body;
        if (body.includes("\n")) return `${head}${body.slice(0, -2)},\n  ${tail}\n}`;
        const line = `${head}${body.slice(0, -2)}, ${tail} }`;
        if (line.length <= request.breakLength) return line;
      }
    }
    const parts = entries.map(([k, v]) => `${request.show(k)} => ${request.show(v)}`);
    if (tail !== "") parts.push(tail);
    if (parts.length === 0) return `${head} {}`;
    const line = `${head} { ${parts.join(", ")} }`;
    if (line.length <= request.breakLength && !line.includes("\n")) return line;
    return `${head} {\n  ${parts.map(indent).join(",\n  ")}\n}`;
  } catch (error) {
    return `${name} { <${describeError(error)}> }`;
  }
}

/** Formats a lock: `name { state }`. Never throws. */
export function inspectLock(request: InspectRequest, name: string, state: () => string): string {
  try {
    if (request.tooDeep) return `[${name}]`;
    return `${name} { ${state()} }`;
  } catch (error) {
    return `${name} { <${describeError(error)}> }`;
  }
}

/** An error's name and message, for a one-line note. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  return `thrown: ${plain(error)}`;
}
