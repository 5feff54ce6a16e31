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
 * (Cluster) or MGET and decoded by `decode`.
 */
export async function* scanEntries<K, V>(
  conn: Connection,
  op: string,
  pattern: Buffer,
  count: number,
  decode: (op: string, key: Buffer, value: Reply) => [K, V],
): AsyncGenerator<[K[], V[]]> {
  const seen = new Set<string>();
  for (const node of conn.masters()) {
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
      }
      const keys: K[] = [];
      const values: V[] = [];
      for (let i = 0; i < fresh.length; i++) {
        // Deleted between the SCAN and the read: not present, not visited.
        if (replies[i] === null) continue;
        const [key, value] = decode(op, fresh[i], replies[i]);
        keys.push(key);
        values.push(value);
      }
      yield [keys, values];
    }
  }
}
