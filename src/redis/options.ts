/**
 * Internal. The options of `RedisSyncMap.open` (redis_sync_map.ts), and their checks:
 * a bad option is a TypeError or RangeError before anything is sent.
 *
 * @module
 */

import type { Codec } from "../codec.ts";
import { checkNumber } from "../_describe.ts";

/** Options for {@linkcode RedisSyncMap.open}: where, which map, codecs, and timeouts. */
export interface RedisSyncMapOptions<K, V> {
  /**
   * A standalone server: `redis://[[user]:password@]host[:port][/db]`, or `rediss://` for TLS;
   * `db`, the database, a non-negative integer (default 0). A URL with another path, or with a
   * query string or fragment (the client reads no parameter from them), is a TypeError. Give
   * either this or {@linkcode cluster}.
   */
  url?: string;
  /**
   * Some nodes of a Redis Cluster, as `redis://` URLs (credentials in the first apply to every
   * node); the client discovers the rest. Give either this or {@linkcode url}.
   */
  cluster?: readonly string[];
  /**
   * The map's name: 1 to 200 characters from `A-Z a-z 0-9 _ . : / -`. Its keys live under the
   * Redis keys `shmap:<name>#...`; every program that opens the same name on the same server,
   * with the same codecs, shares the map.
   */
  name: string;
  /** Codec for keys; defaults to `codecs.auto`, as in SyncMap. */
  keys?: Codec<K>;
  /** Codec for values; defaults to `codecs.auto`, as in SyncMap. */
  values?: Codec<V>;
  /**
   * Most milliseconds a command waits for its reply, and a call for a connection (default
   * 5000), counted from when the command can first be sent: the end of the event-loop turn
   * that made the call. (The client writes the commands of a turn together, once the code that
   * made them and the microtasks queued behind it have run; synchronous work after a call, in
   * the same turn, delays its write and does not count against its timeout.) A call fails for
   * want of a reply or a connection no sooner than that, and soon after unless the event loop
   * is busy; a stall of the event loop that ends half a timeout or more past a deadline gives
   * every command then in flight a new one, `timeout` from then, once per command, so that a
   * reply that came meanwhile is read first (on Deno, a deadline found due expires 50 ms later,
   * for the same reason: Deno may read a socket only after the timers that are due).
   * A call that sends several commands (`range`, `clear`, `size`, a `compute` that retries)
   * bounds each of them.
   */
  timeout?: number;
  /**
   * Most milliseconds {@linkcode RedisSyncMap.open} takes to connect, retrying a refused
   * connection, and to check the servers (default: `timeout`); once they have passed, it
   * rejects.
   */
  connectTimeout?: number;
  /**
   * Longest wait between two attempts to reconnect a dropped connection (default 2000). The
   * client reconnects, backing off exponentially from 50 ms, for as long as the map is open.
   */
  maxReconnectDelay?: number;
  /** The COUNT hint of the SCANs behind `range`, `clear` and `size` (default 1000). */
  scanCount?: number;
}

const DEFAULT_TIMEOUT = 5000;
const DEFAULT_MAX_RECONNECT_DELAY = 2000;
const DEFAULT_SCAN_COUNT = 1000;
const MAX_TIMER = 2 ** 31 - 1;

/** Every option of {@linkcode RedisSyncMapOptions}: any other is a TypeError, as in SyncMap. */
export const OPTION_NAMES: readonly (keyof RedisSyncMapOptions<unknown, unknown>)[] = [
  "url",
  "cluster",
  "name",
  "keys",
  "values",
  "timeout",
  "connectTimeout",
  "maxReconnectDelay",
  "scanCount",
];

/** The connection options and SCAN count of {@linkcode RedisSyncMapOptions}, checked. */
export interface CheckedOptions {
  readonly url: string | undefined;
  readonly cluster: readonly string[] | undefined;
  readonly timeout: number;
  readonly connectTimeout: number;
  readonly maxReconnectDelay: number;
  readonly scanCount: number;
}

/**
 * Checks the options other than the name and the codecs, in this order: the timeouts, the SCAN
 * count, then `url` or `cluster`. Throws a TypeError or RangeError naming the first bad one.
 */
export function checkOptions<K, V>(options: RedisSyncMapOptions<K, V>): CheckedOptions {
  const timeout = checkMs(options.timeout, DEFAULT_TIMEOUT, "timeout");
  const connectTimeout = checkMs(options.connectTimeout, timeout, "connectTimeout");
  const maxReconnectDelay = checkMs(
    options.maxReconnectDelay,
    DEFAULT_MAX_RECONNECT_DELAY,
    "maxReconnectDelay",
  );
  const scanCount = options.scanCount === undefined ? DEFAULT_SCAN_COUNT : options.scanCount;
  checkNumber(scanCount, "scanCount");
  if (!Number.isSafeInteger(scanCount) || scanCount < 1) {
    throw new RangeError(`scanCount must be a positive integer, got ${scanCount}`);
  }
  const { url, cluster } = options;
  if ((url === undefined) === (cluster === undefined)) {
    throw new TypeError("RedisSyncMap.open needs either url (a server) or cluster (nodes)");
  }
  if (url !== undefined) checkUrl(url, "url");
  if (cluster !== undefined) {
    if (!Array.isArray(cluster) || cluster.length === 0) {
      throw new TypeError("cluster must be a non-empty array of redis:// URLs");
    }
    for (const node of cluster) checkUrl(node, "cluster");
  }
  return { url, cluster, timeout, connectTimeout, maxReconnectDelay, scanCount };
}

function checkMs(value: unknown, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  // A value of another type is named as describe() names it, which calls none of its
  // conversions (String() of an object would call its toString).
  checkNumber(value, name);
  if (!Number.isFinite(value) || value <= 0 || value > MAX_TIMER) {
    throw new RangeError(`${name} must be a number of milliseconds in (0, 2^31), got ${value}`);
  }
  return value;
}

/**
 * `url` without its userinfo (user and password), for messages: `redis://u:p@host:6379/1` is
 * `redis://host:6379/1`. All from the scheme to the last `@` goes, so a password holding an
 * unencoded `/` or `@` does too, in a URL that parses or not.
 */
export function redactUrl(url: string): string {
  return url.replace(/^([A-Za-z][A-Za-z0-9+.-]*:(?:\/\/)?)[^]*@/, "$1");
}

/**
 * Checks that `url`, given as `option`, is a URL the client connects to as written: a redis://
 * or rediss:// URL whose path, if any, is a database number, with no query string or fragment
 * (which the client would ignore). Messages show it without its user or password.
 */
function checkUrl(url: unknown, option: string): void {
  let parsed: URL | undefined;
  try {
    parsed = typeof url === "string" ? new URL(url) : undefined;
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:")) {
    throw new TypeError(
      `${option} must be a redis:// or rediss:// URL, got ${
        typeof url === "string" ? JSON.stringify(redactUrl(url)) : typeof url
      }`,
    );
  }
  const redacted = redactUrl(url as string);
  // The client reads no parameter from a query string, and no fragment: each would be ignored.
  // Neither is shown (a query string may hold a password).
  if (parsed.search !== "" || parsed.hash !== "" || /[?#]/.test(redacted)) {
    throw new TypeError(
      `${option} must have no query string (?...) or fragment (#...), which the client ignores: got one after ${
        JSON.stringify(redacted.replace(/[?#][^]*$/, ""))
      }`,
    );
  }
  const shown = JSON.stringify(redacted);
  // The path is the database, a number (the client would fail on any other with its own bare
  // "Invalid pathname", or send a SELECT the server refuses).
  const db = /^\/(\d*)$/.exec(parsed.pathname);
  if (parsed.pathname !== "" && (db === null || !Number.isSafeInteger(Number(db[1])))) {
    throw new TypeError(
      `${option} must name its database, if any, as a non-negative integer (redis://host:port/0), got ${shown}`,
    );
  }
}
