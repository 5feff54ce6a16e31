/**
 * The error a {@linkcode RedisSyncMap} call rejects with when Redis, not the caller, is at fault.
 *
 * @module
 */

/**
 * What went wrong, and so whether the call may have taken effect:
 *
 * - `"timeout"`: the command was sent and no reply came within the map's `timeout`. It may or
 *   may not have taken effect.
 * - `"connection"`: the connection dropped while the command was in flight, or the map closed
 *   it because it went silent (its server answered on a new connection, not on it): the
 *   command may or may not have taken effect. Or there was no connection for the whole
 *   `timeout` (it was not sent).
 * - `"server"`: Redis answered with an error (a key under the map's prefix holding another
 *   type, out of memory, a cluster that is down...), or a Cluster has slots the client knows no
 *   master of (at `open`: not all assigned yet; later, a call about a key of such a slot, not
 *   sent). The command did not take effect.
 * - `"corrupt"`: a key or value under the map's prefix is not in shmap's encoding, or is of a
 *   kind the map's codec does not write (a number where strings are stored: another program
 *   wrote it, or the map was opened with other codecs), or a user codec's `decode` threw on it.
 *   (The `bytes` codec and user codecs all store bytes: one reads the other's values, as the
 *   user's `decode` does.) A `swap` or `loadAndDelete` that read it as the value it replaced
 *   took effect all the same.
 * - `"unsupported"`: the server is older than Redis 7.0, or is a Cluster node opened with
 *   `url`, or a standalone server opened with `cluster`.
 * - `"closed"`: the map was closed before the command was sent: the call came after
 *   `close()`, or was waiting for a connection when `close()` was called, or found none
 *   after, or a later command of a call in progress came after a `close()` called from a
 *   callback. That command did not take effect (a `clear` that had deleted keys before says so
 *   with `maybeApplied`).
 *
 * {@linkcode RedisSyncMapError.maybeApplied} says whether a call that changes the map may have
 * taken effect, whatever the code: a `clear` that fails after deleting keys has, in part.
 */
export type RedisSyncMapErrorCode =
  | "timeout"
  | "connection"
  | "server"
  | "corrupt"
  | "unsupported"
  | "closed";

/**
 * A {@linkcode RedisSyncMap} call failed because of Redis or the connection to it. Bad input
 * is a `TypeError` (a key or value the codec cannot encode, a bad option; an error a user
 * codec's `encode` throws comes through unchanged) or a `RangeError` (a
 * bad option, or a key or value whose encoding is longer than the server's
 * `proto-max-bulk-len`, or whose command is longer than its `client-query-buffer-limit`)
 * instead, and nothing is sent.
 *
 * @example Telling a timeout from a server error
 * ```ts
 * import { RedisSyncMapError } from "@shmap/shmap/redis";
 *
 * function describe(error: unknown): string {
 *   if (!(error instanceof RedisSyncMapError)) return "not from Redis";
 *   return error.maybeApplied ? `${error.code}: may have taken effect` : `${error.code}: no effect`;
 * }
 * console.log(describe(new Error("x"))); // "not from Redis"
 * ```
 */
export class RedisSyncMapError extends Error {
  /** What went wrong; see {@linkcode RedisSyncMapErrorCode}. */
  readonly code: RedisSyncMapErrorCode;
  /** The map operation that failed, like `"load"` or `"range"`. */
  readonly operation: string;
  /**
   * Whether the call changes the map and may have taken effect: its command may have reached
   * the server (then it may or may not have), or did and took effect (a `swap` or
   * `loadAndDelete` whose old value is corrupt), or a `clear` deleted keys before it failed.
   * False for reads, and for calls whose command was not sent or was refused.
   */
  readonly maybeApplied: boolean;

  /**
   * Makes an error of `code` for `operation`; `options.cause` is the client's or server's
   * error, if any.
   */
  constructor(
    code: RedisSyncMapErrorCode,
    operation: string,
    message: string,
    options: { maybeApplied?: boolean; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "RedisSyncMapError";
    this.code = code;
    this.operation = operation;
    this.maybeApplied = options.maybeApplied ?? false;
  }
}
