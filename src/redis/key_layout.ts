/**
 * Internal. Where a {@linkcode RedisSyncMap}'s keys live in Redis.
 *
 * A map named `sessions` keeps the key `k` at the Redis key `shmap:sessions#` followed by the
 * encoding of `k` (src/_engine/wire.ts: the key's slot words, then its blob payload, if any).
 *
 * - Names are 1 to 200 characters from `A-Z a-z 0-9 _ . : / -`, and `#` ends every prefix, so
 *   no map's prefix is a prefix of another's: two maps, or a map and another program that
 *   keeps out of `shmap:`, never share a key.
 * - A name has no `{` or `}`, so the prefix holds no Cluster hash tag: each key hashes to its
 *   own slot (CRC16 of the whole key), and a map spreads over every master. A key whose own
 *   encoding contains `{...}` hashes by that part, as Redis's hash tags do; that changes which
 *   slot it lands in, never whether two keys are equal.
 * - A name has no glob metacharacter (`* ? [ ] \`), so `prefix*` is a literal SCAN pattern.
 * - Keys are equal exactly when their encodings are (SameValueZero, as in the shared-memory
 *   maps), so two processes find a key under the same Redis key.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import type { SlotCodec } from "../_engine/slots.ts";
import { Wire } from "../_engine/wire.ts";

/** The namespace every map's keys live under. */
export const NAMESPACE = "shmap:";
/** Ends a map's prefix; never part of a name. */
const TERMINATOR = "#";
const NAME = /^[A-Za-z0-9_.:/-]{1,200}$/;

/** Allocates from Node's pool: commands take Buffers, and each encoding is kept until sent. */
export const allocateBuffer = (bytes: number): Uint8Array => Buffer.allocUnsafe(bytes);

/** Throws TypeError unless `name` can name a map. */
export function checkName(name: unknown): string {
  if (typeof name !== "string" || !NAME.test(name)) {
    throw new TypeError(
      `name must be 1 to 200 characters from A-Z a-z 0-9 _ . : / -, got ${
        typeof name === "string" ? JSON.stringify(name) : typeof name
      }`,
    );
  }
  return name;
}

/** The Redis keys of one map: its prefix, and its keys encoded behind it. */
export class KeyLayout<K> {
  /** The map's name. */
  readonly name: string;
  /** `shmap:<name>#`, the bytes every key of the map starts with. */
  readonly prefix: Buffer;
  /** The SCAN MATCH pattern for the map's keys: the prefix, then `*`. */
  readonly pattern: Buffer;
  readonly #wire: Wire<K>;

  constructor(name: string, codec: SlotCodec<K>) {
    this.name = checkName(name);
    this.prefix = Buffer.from(NAMESPACE + name + TERMINATOR, "latin1");
    this.pattern = Buffer.from(NAMESPACE + name + TERMINATOR + "*", "latin1");
    this.#wire = new Wire(codec, allocateBuffer);
  }

  /** The Redis key of `key`. Throws TypeError (or the codec's error) for a key it cannot take. */
  encode(key: K): Buffer {
    return this.#wire.key(key, this.prefix) as Buffer;
  }

  /** The map key a Redis key of this map encodes. Throws RangeError for other bytes. */
  decode(redisKey: Uint8Array): K {
    if (!this.owns(redisKey)) throw new RangeError("not a key of this map");
    return this.#wire.decode(redisKey, this.prefix.length);
  }

  /** Whether `redisKey` starts with this map's prefix. */
  owns(redisKey: Uint8Array): boolean {
    const p = this.prefix;
    if (redisKey.length < p.length) return false;
    for (let i = 0; i < p.length; i++) if (redisKey[i] !== p[i]) return false;
    return true;
  }
}
