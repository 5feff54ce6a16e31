/**
 * Internal. The Lua scripts behind the operations no single Redis command does: compare by
 * encoding, then write. Each touches one key, so it runs on that key's master in a Cluster, and
 * Redis runs a script atomically: no other command sees the key between its read and its write.
 *
 * Values compare as Lua strings, byte for byte, so `compareAndSwap` compares encodings exactly
 * as SyncMap's does (`NaN` equals `NaN`, `-0` differs from `0`, objects by content). A key that
 * is absent reads as `false`, which equals no string.
 *
 * @module
 */

import { createHash } from "node:crypto";

/** A Lua script, run by its SHA-1 (EVALSHA), loaded by EVAL where a server lacks it. */
export class Script {
  /** The map's operation the script does, as errors name it. */
  readonly op: string;
  /** The Lua source. */
  readonly lua: string;
  /** The SHA-1 of the source, hex, as EVALSHA takes it. */
  readonly sha: string;

  constructor(op: string, lua: string) {
    this.op = op;
    this.lua = lua;
    this.sha = createHash("sha1").update(lua).digest("hex");
  }
}

/** KEYS[1]; ARGV: old, new. Sets new if the value is old. Replies 1 if it did, else 0. */
export const COMPARE_AND_SWAP: Script = new Script(
  "compareAndSwap",
  "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2]) return 1 end return 0",
);

/** KEYS[1]; ARGV: old. Deletes the key if its value is old. Replies 1 if it did, else 0. */
export const COMPARE_AND_DELETE: Script = new Script(
  "compareAndDelete",
  "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end return 0",
);

/**
 * The write of a compute: KEYS[1]; ARGV: `present` ("1" if compute read a value, "0" if the key
 * was absent), `old` (the value it read, or ""), `action` ("s" to set, "d" to delete), `new`
 * (for "s"). Writes if the key is still as compute read it. Replies 1 if it wrote; on a
 * conflict, an array holding the value the key has now, or an empty array if it has none, so
 * that compute can run again without another read.
 */
export const COMPUTE: Script = new Script(
  "compute",
  [
    "local v = redis.call('GET', KEYS[1])",
    "if (ARGV[1] == '1' and v ~= ARGV[2]) or (ARGV[1] == '0' and v) then",
    "  if v then return {v} end",
    "  return {}",
    "end",
    "if ARGV[3] == 's' then redis.call('SET', KEYS[1], ARGV[4]) else redis.call('DEL', KEYS[1]) end",
    "return 1",
  ].join("\n"),
);

/** Whether `error` is a server's reply that it lacks the script (EVALSHA before any EVAL). */
export function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith("NOSCRIPT");
}
