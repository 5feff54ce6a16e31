/**
 * `@shmap/shmap/redis`: {@linkcode RedisSyncMap}, Go's `sync.Map` as {@linkcode SyncMap} has it,
 * on a standalone Redis or a Redis Cluster, for a map shared by processes and machines. Every
 * method is SyncMap's, returning a promise: code moves from a SyncMap to a RedisSyncMap by
 * adding `await`.
 *
 * ```ts ignore
 * import { RedisSyncMap } from "@shmap/shmap/redis";
 *
 * const cache = await RedisSyncMap.open<string, { size: number }>({
 *   url: "redis://127.0.0.1:6379", // or cluster: ["redis://127.0.0.1:7000", ...]
 *   name: "files",
 * });
 * await cache.store("a.txt", { size: 12 });
 * const [actual, loaded] = await cache.loadOrStore("a.txt", { size: 99 }); // [{ size: 12 }, true]
 * await cache.range((key, value) => console.log(key, value.size));
 * await cache.close();
 * ```
 *
 * **When to use it.** A SyncMap answers in tens of nanoseconds, for the workers of one
 * process. A RedisSyncMap answers in a network round trip (about 50 µs to a server on the same
 * machine; many calls in flight share round trips), for every process that reaches the
 * server, and its data outlives them.
 *
 * **Semantics.** Go's, as SyncMap has them. Each single-key call is one atomic Redis command
 * (GET, SET, `SET NX GET`, GETDEL, `SET GET`, DEL, EXISTS) or one single-key Lua script
 * (compareAndSwap, compareAndDelete, the write of compute; by EVALSHA, loaded by EVAL where a
 * server lacks it), so it is linearizable across processes. Values compare by encoding, as in
 * SyncMap. `range` visits every key present throughout, on every master of a Cluster, each
 * at most once. `clear` and `size` scan; see their docs for what they cost and guarantee.
 * Needs Redis 7.0 or later (`SET` with both `NX` and `GET`).
 *
 * **Keys and values** use SyncMap's codecs and its encoding, byte for byte: a map's key `k`
 * is the Redis key `shmap:<name>#` followed by `k`'s 8-byte slot and blob payload, so a
 * map's keys never mix with another map's or another program's (outside `shmap:`), and spread
 * over every Cluster slot. A value round-trips exactly as it does through a SyncMap.
 *
 * **Failure.** A call rejects with a {@linkcode RedisSyncMapError} (`code` says what, and
 * `maybeApplied` whether a write may have taken effect) when Redis reports an error, when
 * the connection drops under it, or when no reply comes within `timeout`: never a hang. The
 * `timeout` of a call counts from the end of the event-loop turn that made it, when the client
 * writes the turn's commands together, so work done after a call in the same turn never makes
 * it time out. While the connection is down, calls wait for the client to reconnect, unsent,
 * until their `timeout`. A key or value the codec cannot encode is a TypeError (an error a user
 * codec's `encode` throws comes through unchanged); one whose
 * encoding is longer than the server takes in one argument (`proto-max-bulk-len`, read at open;
 * 512 MiB by default), or whose command is longer than the server takes in one command
 * (`client-query-buffer-limit`, read at open; 1 GiB by default), is a RangeError; either way
 * nothing is sent.
 *
 * **The client** is node-redis (`@redis/client`, pinned), chosen over ioredis and Bun's
 * built-in client after trying all three on Deno 2.9 and Bun 1.4 against Redis 7.0:
 *
 * - Bun's `RedisClient` runs on Bun only and has no Cluster support (a key on another node
 *   fails with MOVED), and its `send` takes string arguments only.
 * - ioredis 6.0.0 runs on both, but with auto-pipelining on a Cluster it routes by the key
 *   decoded as UTF-8, so binary keys (ours) land in the wrong slot group and whole pipelines
 *   fail ("All keys in the pipeline should belong to the same slots allocation group"), and its
 *   generic `call`/`callBuffer` with auto-pipelining throws an uncaught TypeError (the command
 *   name is shifted off twice). It also brings six dependencies.
 * - node-redis runs on both with no dependencies, routes binary keys to the right Cluster node,
 *   pipelines every command issued in the same tick (so many calls in flight share round
 *   trips), returns bulk strings as Buffers, and speaks RESP3 with client-side caching
 *   (CLIENT TRACKING), which a near cache needs.
 *
 * Its command timeout only bounds a command's wait to be written, so the map keeps its own
 * deadline on every command.
 *
 * **A near cache, later.** A per-process SyncMap in front of a RedisSyncMap, invalidated by
 * Redis client-side caching, fits at one seam: every single-key read goes through
 * `Connection.send` with the Redis key's bytes, and every reply is decoded from the stored
 * bytes (src/_engine/wire.ts). A near cache can keep those bytes in a
 * `SyncMap<Uint8Array, Uint8Array>` (`codecs.bytes`) keyed by the Redis key, answer GETs from
 * it, and drop an entry on the RESP3 invalidation push (the connection already speaks RESP3;
 * node-redis's `emitInvalidate` or `clientSideCache` delivers the pushes). Writes need no
 * change: the server invalidates every tracking client, the writer included.
 *
 * @module
 */

export { type Computed, RedisSyncMap, type RedisSyncMapOptions } from "./redis_sync_map.ts";
export { RedisSyncMapError, type RedisSyncMapErrorCode } from "./errors.ts";
