/**
 * Internal. The SCAN walks behind RedisSyncMap's `range`, `entries`, `clear` and `size`
 * (redis_sync_map.ts): a map's keys on one master, and its keys and values on every master.
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import type { Connection, Node, Reply } from "./connection.ts";

/** The map's keys on one master, a SCAN batch at a time; the next SCAN is sent early. */
export async function* scanKeys(
  op: string,
  node: Node,
  pattern: Buffer,
  count: number,
): AsyncGenerator<Buffer[]> {
  const scan = (cursor: string): Promise<Reply> =>
    node.send(op, [
      "SCAN",
      cursor,
      "MATCH",
      pattern,
      "COUNT",
      String(count),
    ]);
  let pending = scan("0");
  for (;;) {
    const [cursor, keys] = (await pending) as [Buffer, Buffer[]];
    const next = cursor.toString("latin1");
    if (next !== "0") {
      pending = scan(next);
      // If the consumer stops early, nobody awaits the prefetched SCAN: keep its failure quiet.
      pending.catch(() => {});
    }
    yield keys;
    if (next === "0") return;
  }
}

/**
 * Every master's keys and values, a batch at a time, each key at most once, read by GET
 * (Cluster) or MGET and decoded by `decode`. A key that holds no string fails the walk with
 * Redis's WRONGTYPE error on either.
 */
export async function* scanEntries<K, V>(
  conn: Connection,
  op: string,
  pattern: Buffer,
  count: number,
  decode: (op: string, key: Buffer, value: Reply) => [K, V],
): AsyncGenerator<[K[], V[]]> {
  const seen = new Set<string>();
  for (const node of conn.masters(op)) {
    for await (const found of scanKeys(op, node, pattern, count)) {
      const fresh: Buffer[] = [];
      for (const k of found) {
        const id = k.toString("latin1");
        if (seen.has(id)) continue;
        seen.add(id);
        fresh.push(k);
      }
      if (fresh.length === 0) continue;
      let replies: Reply[];
      if (conn.isCluster) {
        replies = await Promise.all(fresh.map((k) => conn.send(op, false, k, ["GET", k])));
      } else {
        replies = (await conn.send(op, false, fresh[0], ["MGET", ...fresh])) as Reply[];
        // MGET answers nil for a key deleted since the SCAN, and for a key that holds no string
        // (a hash, a list: another program's), where GET, a Cluster's read, fails with
        // WRONGTYPE. Each such key is read again by GET, so that the two fail alike, as load
        // does, and only a key that is gone is passed over.
        const missing: number[] = [];
        for (let i = 0; i < fresh.length; i++) if (replies[i] === null) missing.push(i);
        if (missing.length !== 0) {
          const again = await Promise.all(
            missing.map((i) => conn.send(op, false, fresh[i], ["GET", fresh[i]])),
          );
          for (let j = 0; j < missing.length; j++) replies[missing[j]] = again[j];
        }
      }
      const keys: K[] = [];
      const values: V[] = [];
      for (let i = 0; i < fresh.length; i++) {
        // Deleted between the SCAN and the read: not present, not visited. (A key stored again
        // between the MGET and the GET is visited: it was present for part of the call.)
        if (replies[i] === null) continue;
        const [key, value] = decode(op, fresh[i], replies[i]);
        keys.push(key);
        values.push(value);
      }
      yield [keys, values];
    }
  }
}
