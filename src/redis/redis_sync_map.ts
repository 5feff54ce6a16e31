/**
 * RedisSyncMap: SyncMap's API and semantics on Redis or a Redis Cluster, every method async.
 *
 * @module
 */

import type { Buffer } from "node:buffer";
import { Wire } from "../_engine/wire.ts";
import { CANCEL, DELETE, SELF_WRITES_MAX, selfWriteError } from "../_computed.ts";
import { slotCodecOf } from "../codec.ts";
import { type Arg, Connection, type Node, type Reply } from "./connection.ts";
import { RedisSyncMapError } from "./errors.ts";
import { allocateBuffer, checkName, KeyLayout } from "./key_layout.ts";
import { checkOptions as checkKnown } from "../_options.ts";
import { checkOptions, OPTION_NAMES, type RedisSyncMapOptions } from "./options.ts";
import { scanEntries, scanKeys } from "./scan.ts";
import {
  callbackKeys,
  computesOf,
  enclosingCalls,
  type Frame,
  noteWrite,
  runCall,
  runCallback,
} from "./_callbacks.ts";
import { COMPARE_AND_DELETE, COMPARE_AND_SWAP, COMPUTE } from "./scripts.ts";
import type { Found } from "../_found.ts";

export type { RedisSyncMapOptions } from "./options.ts";

/**
 * Go's `sync.Map`, as {@linkcode SyncMap} has it, on a standalone Redis or a Redis Cluster, for
 * maps shared by processes and machines. Each method is SyncMap's, returning a promise, so code
 * moves from one to the other by adding `await`. Keys and values use SyncMap's codecs and
 * encoding, byte for byte.
 *
 * Every single-key call is one atomic Redis command: `load` GET, `store` SET, `loadOrStore`
 * `SET NX GET`, `loadAndDelete` GETDEL, `swap` `SET GET`, `delete` DEL, `has` EXISTS; and
 * `compareAndSwap`, `compareAndDelete` and the write of `compute` a one-key Lua script.
 * Redis applies each atomically, so every single-key call is linearizable, across any number
 * of processes. Calls of one map object are pipelined: many may be in flight at once.
 *
 * A call fails (rejects) with a {@linkcode RedisSyncMapError} when Redis does, or gives no
 * reply within `timeout`. It fails before anything is sent with a TypeError for a key or value
 * the codec cannot encode (an error a user codec's `encode` throws rejects it unchanged), and
 * with a RangeError (as SyncMap's MapFullError is one) for a key or value whose encoding is
 * longer than one argument of a command may be (the server's
 * `proto-max-bulk-len`), or whose command, counted whole, is longer than one command may be (the
 * server's `client-query-buffer-limit`, which may be set lower): both read at open (512 MiB and
 * 1 GiB by default, and where CONFIG is refused). Redis would drop the connection on such a
 * command, and every call in flight with it.
 *
 * @example Open, use, close
 * ```ts ignore
 * import { RedisSyncMap } from "@shmap/shmap/redis";
 *
 * const sessions = await RedisSyncMap.open<string, { user: string }>({
 *   url: "redis://127.0.0.1:6379",
 *   name: "sessions",
 * });
 * await sessions.store("s1", { user: "ada" });
 * console.log(await sessions.load("s1")); // { user: "ada" }
 * console.log(await sessions.loadOrStore("s1", { user: "bob" })); // [{ user: "ada" }, true]
 * await sessions.close();
 * ```
 */
export class RedisSyncMap<K = unknown, V = unknown> implements AsyncIterable<[K, V]> {
  /**
   * Returned by a {@linkcode compute} callback: delete the key. The same symbol as
   * `SyncMap.DELETE`, so a callback works with either map.
   *
   * @example
   * ```ts ignore
   * import { RedisSyncMap } from "@shmap/shmap/redis";
   *
   * const leases = await RedisSyncMap.open<string, string>({ url: "redis://127.0.0.1:6379", name: "leases" });
   * // Give up the lease if this process holds it.
   * await leases.compute("job", (holder) => holder === "me" ? RedisSyncMap.DELETE : RedisSyncMap.CANCEL);
   * ```
   */
  static readonly DELETE: typeof DELETE = DELETE;
  /**
   * Returned by a {@linkcode compute} callback: leave the key as it is. The same symbol as
   * `SyncMap.CANCEL`.
   *
   * @example
   * ```ts ignore
   * import { RedisSyncMap } from "@shmap/shmap/redis";
   *
   * const flags = await RedisSyncMap.open<string, boolean>({ url: "redis://127.0.0.1:6379", name: "flags" });
   * await flags.compute("beta", (old, loaded) => loaded ? RedisSyncMap.CANCEL : false);
   * ```
   */
  static readonly CANCEL: typeof CANCEL = CANCEL;

  readonly #connection: Connection;
  readonly #layout: KeyLayout<K>;
  readonly #values: Wire<V>;
  readonly #label: string;
  readonly #scanCount: number;
  // loadOrCompute calls in flight in this object, by Redis key (latin1): one fn at a time.
  readonly #computing = new Map<string, Promise<unknown>>();
  /**
   * For each key whose `loadOrCompute` callback (or a callback running inside it) waits for
   * other keys' computations, those keys, once per wait: the edges a cycle of waits would
   * follow.
   */
  readonly #waitsFor = new Map<string, string[]>();
  /**
   * The calls in progress that send several commands (range, clear, size, compute,
   * loadOrCompute, an iterator's fetch of a batch), each with a promise that resolves once it
   * has settled and left this map: what close() waits for (#run).
   */
  readonly #running = new Map<Frame, Promise<void>>();
  #closing: Promise<void> | undefined;
  /**
   * Ends close()'s wait for the calls in progress at once: called by a close() from inside a
   * callback, which the call it is part of waits for (#drain), when one from outside came first.
   */
  #stopDraining: () => void = nothing;

  private constructor(
    connection: Connection,
    layout: KeyLayout<K>,
    values: Wire<V>,
    scanCount: number,
  ) {
    this.#connection = connection;
    this.#layout = layout;
    this.#values = values;
    this.#label = `RedisSyncMap "${layout.name}"`;
    this.#scanCount = scanCount;
  }

  /**
   * Connects to a standalone Redis (`url`) or a Redis Cluster (`cluster`) and opens the map
   * `name` there. Checks the options first (TypeError or RangeError, nothing sent), then that
   * every server runs Redis 7.0 or later. Rejects with a {@linkcode RedisSyncMapError} if it
   * cannot connect within `connectTimeout`.
   *
   * @example A map on a Redis Cluster, with typed codecs
   * ```ts ignore
   * import { codecs } from "@shmap/shmap";
   * import { RedisSyncMap } from "@shmap/shmap/redis";
   *
   * const scores = await RedisSyncMap.open<string, number>({
   *   cluster: ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"],
   *   name: "game:scores",
   *   keys: codecs.string,
   *   values: codecs.float64,
   *   timeout: 1000,
   * });
   * await scores.store("ada", 1.5);
   * await scores.close();
   * ```
   */
  static async open<K = unknown, V = unknown>(
    options: RedisSyncMapOptions<K, V>,
  ): Promise<RedisSyncMap<K, V>> {
    if (typeof options !== "object" || options === null) {
      throw new TypeError("RedisSyncMap.open needs an options object: { url or cluster, name }");
    }
    checkKnown(options, OPTION_NAMES, "RedisSyncMap options");
    const name = checkName(options.name);
    const layout = new KeyLayout(name, slotCodecOf(options.keys, "keys"));
    const values = new Wire(slotCodecOf(options.values, "values"), allocateBuffer);
    const { url, cluster, timeout, connectTimeout, maxReconnectDelay, scanCount } = checkOptions(
      options,
    );
    const connection = await Connection.open({
      url,
      cluster: cluster === undefined ? undefined : [...cluster],
      timeout,
      connectTimeout,
      maxReconnectDelay,
      label: `RedisSyncMap "${name}"`,
    });
    return new RedisSyncMap(connection, layout, values, scanCount);
  }

  /** The map's name, as given to {@linkcode open}. */
  get name(): string {
    return this.#layout.name;
  }

  /**
   * Returns the value stored for `key`, or undefined (Go's Load): one GET.
   *
   * @example
   * ```ts ignore
   * await map.store(1, "one");
   * console.log(await map.load(1), await map.load(2)); // "one" undefined
   * ```
   */
  load(key: K): Promise<V | undefined> {
    return this.#sendKey("load", false, key, "GET", this.#loadReply);
  }

  /**
   * Resolves to the value stored for `key` and whether there is one, as Go's
   * `value, ok := m.Load(key)` and `SyncMap.loadOk` do: unlike {@linkcode load}, it tells a
   * stored `undefined` from a missing key. One GET.
   *
   * @example
   * ```ts ignore
   * await map.store("set", undefined);
   * console.log(await map.loadOk("set"), await map.loadOk("unset")); // [undefined, true] [undefined, false]
   * ```
   */
  loadOk(key: K): Promise<[value: V, ok: true] | [value: undefined, ok: false]> {
    return this.#sendKey("loadOk", false, key, "GET", this.#loadOkReply) as Promise<Found<V>>;
  }

  /**
   * Stores `value` for `key` (Go's Store): one SET.
   *
   * @example
   * ```ts ignore
   * await map.store("primes", [2, 3, 5]);
   * ```
   */
  store(key: K, value: V): Promise<void> {
    return this.#encoded(
      "store",
      key,
      [value],
      (k, [v]) => this.#connection.send("store", true, k, ["SET", k, v], this.#noting(k, nothing)),
    );
  }

  /**
   * Stores `value` for `key` and returns the previous value and whether there was one (Go's
   * Swap): one `SET ... GET`.
   *
   * @example
   * ```ts ignore
   * console.log(await map.swap("n", 1)); // [undefined, false]
   * console.log(await map.swap("n", 2)); // [1, true]
   * ```
   */
  swap(
    key: K,
    value: V,
  ): Promise<[previous: V, loaded: true] | [previous: undefined, loaded: false]> {
    return this.#encoded(
      "swap",
      key,
      [value],
      (k, [v]) =>
        this.#connection.send(
          "swap",
          true,
          k,
          ["SET", k, v, "GET"],
          this.#noting(k, this.#swapReply),
        ),
    ) as Promise<Found<V>>;
  }

  /**
   * Returns the existing value for `key` if there is one, else stores `value` and returns it;
   * `loaded` says which (Go's LoadOrStore): one `SET ... NX GET`, so of any number of processes
   * racing on a missing key, exactly one stores.
   *
   * @example
   * ```ts ignore
   * console.log(await map.loadOrStore("k", "first")); // ["first", false]
   * console.log(await map.loadOrStore("k", "second")); // ["first", true]
   * ```
   */
  loadOrStore(key: K, value: V): Promise<[actual: V, loaded: boolean]> {
    return this.#encoded("loadOrStore", key, [value], (k, [v]) =>
      this.#connection.send(
        "loadOrStore",
        true,
        k,
        ["SET", k, v, "NX", "GET"],
        this.#noting(
          k,
          (reply): [V, boolean] =>
            reply === null ? [value, false] : [this.#decode("loadOrStore", reply), true],
          isNull,
        ),
      ));
  }

  /**
   * Deletes `key`, returning its previous value and whether there was one (Go's
   * LoadAndDelete): one GETDEL.
   *
   * @example
   * ```ts ignore
   * await map.store("a", 1);
   * console.log(await map.loadAndDelete("a")); // [1, true]
   * console.log(await map.loadAndDelete("a")); // [undefined, false]
   * ```
   */
  loadAndDelete(key: K): Promise<[value: V, loaded: true] | [value: undefined, loaded: false]> {
    return this.#sendKey(
      "loadAndDelete",
      true,
      key,
      "GETDEL",
      this.#loadAndDeleteReply,
      isValue,
    ) as Promise<Found<V>>;
  }

  /**
   * Deletes `key` (Go's Delete); resolves to whether it had a value, like
   * `Map.prototype.delete`: one DEL.
   *
   * @example
   * ```ts ignore
   * await map.store("a", 1);
   * console.log(await map.delete("a"), await map.delete("a")); // true false
   * ```
   */
  delete(key: K): Promise<boolean> {
    return this.#sendKey("delete", true, key, "DEL", isOne, isOne);
  }

  /**
   * Stores `next` for `key` if its current value equals `old`, compared by encoding as
   * SyncMap compares (`NaN` equals `NaN`, `-0` differs from `0`, objects by content); resolves
   * to whether it swapped (Go's CompareAndSwap). One Lua script, atomic in Redis.
   *
   * @example
   * ```ts ignore
   * await map.store("v", 1);
   * console.log(await map.compareAndSwap("v", 1, 2), await map.compareAndSwap("v", 1, 3)); // true false
   * ```
   */
  compareAndSwap(key: K, old: V, next: V): Promise<boolean> {
    return this.#encoded(
      "compareAndSwap",
      key,
      [old, next],
      (k, vs) => this.#connection.script(COMPARE_AND_SWAP, k, vs, this.#noting(k, isOne, isOne)),
    );
  }

  /**
   * Deletes `key` if its value equals `old` (compared by encoding, as in
   * {@linkcode compareAndSwap}); resolves to whether it did (Go's CompareAndDelete). One Lua
   * script, atomic in Redis.
   *
   * @example
   * ```ts ignore
   * await map.store("k", "x");
   * console.log(await map.compareAndDelete("k", "y"), await map.compareAndDelete("k", "x")); // false true
   * ```
   */
  compareAndDelete(key: K, old: V): Promise<boolean> {
    return this.#encoded(
      "compareAndDelete",
      key,
      [old],
      (k, vs) => this.#connection.script(COMPARE_AND_DELETE, k, vs, this.#noting(k, isOne, isOne)),
    );
  }

  /**
   * Atomically replaces the value of `key` with what `fn(old, loaded)` returns, or deletes the
   * key if it returns {@linkcode RedisSyncMap.DELETE}, or leaves it if it returns
   * {@linkcode RedisSyncMap.CANCEL}. Resolves to the value the key then has and whether it has
   * one. `fn` may be async.
   *
   * It reads the key (GET), calls `fn`, and writes with a Lua script only if the key is still
   * as read (compared by encoding); if another process wrote it meanwhile, `fn` runs again on
   * the new value (an optimistic loop: some writer always succeeds). So `fn` may run more than
   * once, and must have no effect but its result; no update is ever lost. A write of the key
   * by `fn` itself makes it run again too; `fn` writing it in 64 rounds in a row, which would
   * loop for good, rejects with an Error (as SyncMap's `compute` throws).
   *
   * @example A counter no process loses an increment of
   * ```ts ignore
   * const hits = await RedisSyncMap.open<string, number>({ url: "redis://127.0.0.1:6379", name: "hits" });
   * await hits.compute("/", (old, loaded) => loaded ? old! + 1 : 1);
   * ```
   */
  compute(
    key: K,
    fn: (old: V | undefined, loaded: boolean) => V | Computed | Promise<V | Computed>,
  ): Promise<[value: V, ok: true] | [value: undefined, ok: false]> {
    return this.#run("compute", () => this.#compute(key, fn)) as Promise<Found<V>>;
  }

  async #compute(
    key: K,
    fn: (old: V | undefined, loaded: boolean) => V | Computed | Promise<V | Computed>,
  ): Promise<[value: V | undefined, ok: boolean]> {
    const k = this.#layout.encode(key);
    if (typeof fn !== "function") throw new TypeError("compute needs a function");
    const id = k.toString("latin1");
    let current = (await this.#connection.send("compute", false, k, ["GET", k])) as Buffer | null;
    let selfWrites = 0;
    for (;;) {
      const loaded = current !== null;
      const old = current === null ? undefined : this.#decode("compute", current);
      // fn's own calls see the frame: a write of this key by one of them is noted in it.
      let [next, frame] = runCallback(this.#computing, id, "compute", () => fn(old, loaded));
      if (isThenable(next)) next = await next;
      if (next === RedisSyncMap.CANCEL) return [old, loaded];
      // A DELETE of a key fn was given as absent goes through the script too, which deletes
      // nothing while the key is absent still, and runs fn again if it was written meanwhile
      // (by fn itself, or another client), as SyncMap.compute does.
      const write: Arg[] = next === RedisSyncMap.DELETE ? ["d"] : ["s", this.#encode(next as V)];
      // A write of the key, maybe inside a compute callback of it (a nested compute).
      const reply = await this.#connection.script(
        COMPUTE,
        k,
        [current === null ? "0" : "1", current ?? "", ...write],
        // A delete over absence writes nothing: no write for an outer compute of the key to see.
        this.#noting(k, same, next === RedisSyncMap.DELETE && current === null ? never : isOne),
      );
      if (reply === 1) return next === RedisSyncMap.DELETE ? [undefined, false] : [next as V, true];
      const now = reply as Reply[];
      current = now.length === 0 ? null : now[0] as Buffer;
      // Lost: to another writer, or to fn's own write of the key, which would go on for good.
      if (!frame.wrote) selfWrites = 0;
      else if (++selfWrites >= SELF_WRITES_MAX) throw selfWriteError(`${this.#label}: compute`);
    }
  }

  /**
   * Returns the value of `key` if it has one; else calls `fn` (which may be async), stores its
   * result unless a value appeared meanwhile, and returns what the key then holds. `loaded`
   * is true when the result was not this call's `fn`'s.
   *
   * Within one RedisSyncMap object, `fn` runs at most once per key at a time: concurrent calls
   * for a missing key wait for the first. Across processes it is optimistic: processes that
   * miss the key at the same time each run their `fn`, exactly one result is stored (SET NX),
   * and every caller gets that one. (A cross-process guarantee would need a lock key with a
   * lease, and a crashed holder would stall every caller for the lease: use
   * {@linkcode loadOrStore} semantics and make `fn` safe to run twice instead.) If `fn` throws,
   * nothing is stored and the call rejects with its error. `fn` calling `loadOrCompute` of its
   * own key (directly, or from anything it calls or schedules) rejects that call with an Error
   * instead of waiting for itself, as SyncMap's throws; so does a call whose wait would close a
   * cycle of `fn`s of this object waiting for each other's keys (SyncMap's would deadlock; a
   * call that a running `fn` starts without awaiting it counts as one of its waits).
   *
   * @example
   * ```ts ignore
   * const [user] = await users.loadOrCompute(id, () => fetchUser(id));
   * ```
   */
  loadOrCompute(
    key: K,
    fn: () => V | Promise<V>,
  ): Promise<[actual: V, loaded: boolean]> {
    return this.#run("loadOrCompute", () => this.#loadOrCompute(key, fn));
  }

  async #loadOrCompute(
    key: K,
    fn: () => V | Promise<V>,
  ): Promise<[actual: V, loaded: boolean]> {
    const k = this.#layout.encode(key);
    if (typeof fn !== "function") throw new TypeError("loadOrCompute needs a function");
    const id = k.toString("latin1");
    for (;;) {
      const reply = await this.#connection.send("loadOrCompute", false, k, ["GET", k]);
      if (reply !== null) return [this.#decode("loadOrCompute", reply), true];
      const running = this.#computing.get(id);
      if (running !== undefined) {
        // The keys whose loadOrCompute callbacks this call runs inside, still running.
        const inside = callbackKeys(this.#computing, "loadOrCompute");
        if (inside.includes(id)) {
          throw new Error(
            `${this.#label}: loadOrCompute: this call's fn is computing this key already (fn ` +
              "called loadOrCompute for its own key, which would wait for itself)",
          );
        }
        // Another call of this object is computing the key: wait for it, then read again;
        // unless that computation waits, through others maybe, for one this call runs inside,
        // which would never end.
        if (inside.length !== 0 && this.#waitsReach(id, inside)) {
          throw new Error(
            `${this.#label}: loadOrCompute: the fn computing this key waits for a key whose ` +
              "computation this call runs inside (fns that wait for each other's keys)",
          );
        }
        for (const waiter of inside) {
          this.#waitsFor.set(waiter, [...(this.#waitsFor.get(waiter) ?? []), id]);
        }
        try {
          await running.catch(() => {});
        } finally {
          for (const waiter of inside) {
            const edges = this.#waitsFor.get(waiter)!;
            edges.splice(edges.indexOf(id), 1);
            if (edges.length === 0) this.#waitsFor.delete(waiter);
          }
        }
        continue;
      }
      const mine = this.#computeAndStore(k, fn);
      this.#computing.set(id, mine);
      try {
        return await mine;
      } finally {
        this.#computing.delete(id);
      }
    }
  }

  /** Whether the computation of key `from` waits, through any chain of waits, for one of `keys`. */
  #waitsReach(from: string, keys: readonly string[]): boolean {
    const seen = new Set<string>();
    const todo = [from];
    for (let k = todo.pop(); k !== undefined; k = todo.pop()) {
      if (keys.includes(k)) return true;
      if (seen.has(k)) continue;
      seen.add(k);
      todo.push(...(this.#waitsFor.get(k) ?? []));
    }
    return false;
  }

  async #computeAndStore(k: Buffer, fn: () => V | Promise<V>): Promise<[V, boolean]> {
    // runCallback marks the frame done itself if fn throws.
    let [value, frame] = runCallback(this.#computing, k.toString("latin1"), "loadOrCompute", fn);
    try {
      if (isThenable(value)) value = await value;
    } finally {
      frame.done = true; // what fn left scheduled waits for nothing of this computation
    }
    const reply = await this.#connection.send(
      "loadOrCompute",
      true,
      k,
      ["SET", k, this.#encode(value as V), "NX", "GET"],
      this.#noting(k, same, isNull), // as in compute
    );
    return reply === null ? [value as V, false] : [this.#decode("loadOrCompute", reply), true];
  }

  /**
   * Calls `f(key, value)` for each key and value, stopping when `f` returns (or resolves to)
   * `false` (Go's Range). `f` may be async: the next key waits for it. Like Go's, no
   * snapshot: each key is visited at most once, a key present for the whole call is visited,
   * and a key stored or deleted meanwhile may or may not be. `f` may call any method of the
   * map.
   *
   * It SCANs every master (MATCH on the map's prefix, COUNT `scanCount`) and fetches each
   * batch's values (MGET on a standalone server, pipelined GETs on a Cluster). SCAN walks the
   * server's whole keyspace, so a range costs time in proportion to all keys on the servers,
   * not only the map's, and remembers the keys it visited (SCAN may return one twice). A key
   * under the map's prefix that holds no string (another program's hash, list...) fails it
   * with a `"server"` error (WRONGTYPE), as it fails {@linkcode load}.
   *
   * @example
   * ```ts ignore
   * let sum = 0;
   * await map.range((_key, value) => {
   *   sum += value;
   * });
   * ```
   */
  range(f: (key: K, value: V) => boolean | void | Promise<boolean | void>): Promise<void> {
    if (typeof f !== "function") return Promise.reject(new TypeError("range needs a function"));
    return this.#run("range", async () => {
      for await (const [keys, values] of this.#batches("range")) {
        for (let i = 0; i < keys.length; i++) {
          let go = f(keys[i], values[i]);
          if (isThenable(go)) go = await go;
          if (go === false) return;
        }
      }
    });
  }

  /**
   * Deletes every key of the map (Go 1.23's Clear): SCANs every master and UNLINKs what it
   * finds (Redis frees the values in the background).
   *
   * Not one atomic step, which a Cluster cannot give across slots: a sequence of atomic
   * one-key deletions. Every key present when `clear` starts, and not stored again during it,
   * is deleted; a store that starts after `clear` resolves is kept; a store racing `clear`
   * may be kept or deleted, its key then holding either the stored value or none. No other
   * map's key is touched. A `clear` that fails after deleting keys rejects with
   * `maybeApplied` true, whatever the error's code.
   *
   * @example
   * ```ts ignore
   * await map.clear();
   * console.log(await map.size()); // 0
   * ```
   */
  clear(): Promise<void> {
    return this.#run("clear", () => this.#clear());
  }

  async #clear(): Promise<void> {
    const conn = this.#connection;
    // Whether a key has been deleted: then a failure later on leaves the map part cleared.
    let deleted = false;
    // A compute callback that clears the map writes its own key (if it was there).
    const computes = computesOf(this.#computing);
    const unlinked = (reply: Reply): void => {
      if (reply === 0) return;
      deleted = true;
      if (computes !== undefined) noteWrite(computes);
    };
    try {
      for (const node of conn.masters("clear")) {
        for await (const keys of this.#scan("clear", node)) {
          if (keys.length === 0) continue;
          if (conn.isCluster) {
            // UNLINK takes keys of one slot at once in a Cluster; one each, pipelined. All
            // settle before a failure is thrown, so `deleted` counts every one that deleted.
            const outcomes = await Promise.allSettled(
              keys.map((k) => conn.send("clear", true, k, ["UNLINK", k], unlinked)),
            );
            for (const o of outcomes) if (o.status === "rejected") throw o.reason;
          } else {
            await conn.send("clear", true, keys[0], ["UNLINK", ...keys], unlinked);
          }
        }
      }
    } catch (error) {
      if (!deleted || !(error instanceof RedisSyncMapError) || error.maybeApplied) throw error;
      throw new RedisSyncMapError(
        error.code,
        "clear",
        `${error.message}; clear had deleted keys of the map before`,
        { cause: error, maybeApplied: true },
      );
    }
  }

  /**
   * Counts the keys of the map. Costs what a {@linkcode range} without values costs: SCAN of
   * every master's whole keyspace, and memory for the keys seen. Keys stored or deleted
   * meanwhile may or may not be counted. (Redis keeps no count per key prefix, and a counter
   * kept in step by every write would need every write to be a script touching a second key,
   * which a Cluster cannot do atomically across slots.)
   *
   * @example
   * ```ts ignore
   * await map.store("a", 1);
   * console.log(await map.size()); // 1
   * ```
   */
  size(): Promise<number> {
    return this.#run("size", async () => {
      const seen = new Set<string>();
      for (const node of this.#connection.masters("size")) {
        for await (const keys of this.#scan("size", node)) {
          for (const k of keys) seen.add(k.toString("latin1"));
        }
      }
      return seen.size;
    });
  }

  /**
   * Same as {@linkcode load}, like `Map.prototype.get`.
   *
   * @example
   * ```ts ignore
   * console.log(await map.get("a"));
   * ```
   */
  get(key: K): Promise<V | undefined> {
    return this.load(key);
  }

  /**
   * Stores `value` for `key` and resolves to the map, like `Map.prototype.set`.
   *
   * @example
   * ```ts ignore
   * await map.set("a", 1);
   * ```
   */
  async set(key: K, value: V): Promise<this> {
    await this.store(key, value);
    return this;
  }

  /**
   * Whether `key` has a value: one EXISTS.
   *
   * @example
   * ```ts ignore
   * console.log(await map.has("a"));
   * ```
   */
  has(key: K): Promise<boolean> {
    return this.#sendKey("has", false, key, "EXISTS", isOne);
  }

  /**
   * Calls `callback(value, key, map)` for each entry, with `thisArg` as its `this`, like
   * `Map.prototype.forEach` and `SyncMap.forEach`, with {@linkcode range}'s guarantees. An
   * async callback is awaited before the next entry.
   *
   * @example
   * ```ts ignore
   * await map.forEach((value, key) => console.log(key, value));
   * const totals = { sum: 0 };
   * await map.forEach(function (this: { sum: number }, value) {
   *   this.sum += value;
   * }, totals);
   * ```
   */
  async forEach(
    callback: (value: V, key: K, map: RedisSyncMap<K, V>) => void | Promise<void>,
    thisArg?: unknown,
  ): Promise<void> {
    if (typeof callback !== "function") throw new TypeError("forEach needs a function");
    await this.range(async (key, value) => {
      await callback.call(thisArg, value, key, this);
    });
  }

  /**
   * The entries, with {@linkcode range}'s guarantees, fetched a SCAN batch at a time.
   *
   * @example
   * ```ts ignore
   * for await (const [key, value] of map.entries()) console.log(key, value);
   * ```
   */
  async *entries(): AsyncIterableIterator<[K, V]> {
    const batches = this.#batches("entries");
    try {
      for (;;) {
        // Only the fetch of a batch is a call in progress: close() does not wait for the
        // consumer of an entry to ask for the next.
        const batch = await this.#run("entries", () => batches.next());
        if (batch.done) return;
        const [keys, values] = batch.value;
        for (let i = 0; i < keys.length; i++) yield [keys[i], values[i]];
      }
    } finally {
      await batches.return(undefined);
    }
  }

  /**
   * The keys, as {@linkcode entries} gives them.
   *
   * @example
   * ```ts ignore
   * for await (const key of map.keys()) console.log(key);
   * ```
   */
  async *keys(): AsyncIterableIterator<K> {
    for await (const [key] of this.entries()) yield key;
  }

  /**
   * The values, as {@linkcode entries} gives them.
   *
   * @example
   * ```ts ignore
   * for await (const value of map.values()) console.log(value);
   * ```
   */
  async *values(): AsyncIterableIterator<V> {
    for await (const [, value] of this.entries()) yield value;
  }

  /**
   * Same as {@linkcode entries}: `for await (const [key, value] of map)`.
   *
   * @example
   * ```ts ignore
   * for await (const [key, value] of map) console.log(key, value);
   * ```
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<[K, V]> {
    return this.entries();
  }

  /**
   * Lets the calls in flight finish (each command within `timeout`), then closes the
   * connection; calls made after it reject with a {@linkcode RedisSyncMapError} of code
   * `"closed"`. A call made before it goes on to its end: a `range`, `clear` or `compute` sends
   * its later commands, and runs its callbacks, whose own calls of the map are part of it. An
   * iterator (`entries`, `for await`) is in flight only while it fetches a batch: a later batch
   * rejects. Commands that wait for a connection (the server is down), or find none meanwhile,
   * are not sent, and reject at once with code `"closed"`. Called from inside a callback of the
   * map's, it waits for no call, only for the commands already sent (the call the callback is
   * part of waits for it, and so may others, through that one); the later commands of every
   * call in progress then reject with `"closed"`. It does so after a close() from outside too,
   * cutting that one's wait for the calls short. Closed while its server is down, the map holds
   * the process up to `maxReconnectDelay` more (the client's sleep before its next reconnect is
   * a timer it cannot cancel). The map's data stays in Redis.
   *
   * @example
   * ```ts ignore
   * const counting = map.size(); // in flight: it finishes
   * await map.close();
   * console.log(await counting);
   * ```
   */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      const stopped = new Promise<void>((resolve) => this.#stopDraining = resolve);
      this.#closing = this.#connection.close(Promise.race([this.#drain(), stopped]));
    }
    // From a callback, after a close() from outside: that one's wait for the calls in progress
    // would wait for the very call this callback is part of, which waits for this close().
    if (enclosingCalls(this.#computing).length !== 0) this.#stopDraining();
    return this.#closing;
  }

  /**
   * Same as {@linkcode close}, for `await using`.
   *
   * @example
   * ```ts ignore
   * await using map = await RedisSyncMap.open({ url: "redis://127.0.0.1:6379", name: "m" });
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** "RedisSyncMap". */
  get [Symbol.toStringTag](): string {
    return "RedisSyncMap";
  }

  /**
   * Runs `body`, the call `op` that sends several commands, as a call in progress: close()
   * waits for it to settle. After close(), rejects with a "closed" error instead, unless made
   * inside a call in progress (by a callback of it, directly or not), which it is part of.
   */
  #run<T>(op: string, body: () => Promise<T>): Promise<T> {
    if (this.#closing !== undefined && this.#refused()) {
      return Promise.reject(this.#connection.closedError(op));
    }
    // Inside a frame of its own: close() called from a callback knows not to wait for it.
    const [result, frame] = runCall(this.#computing, op, body);
    const left = (): void => {
      frame.done = true;
      this.#running.delete(frame);
    };
    this.#running.set(frame, result.then(left, left));
    return result;
  }

  /** Whether a call made now, after close(), is refused: it is part of no call in progress. */
  #refused(): boolean {
    return enclosingCalls(this.#computing).length === 0;
  }

  /**
   * Resolves once every call in progress has settled; calls made meanwhile inside them (by
   * their callbacks) are waited for too. Called from inside a call in progress (from a
   * callback), at once: that call waits for close(), and so may others, through it (a
   * loadOrCompute of the key it computes), so waiting for any of them could wait for ever.
   */
  async #drain(): Promise<void> {
    if (enclosingCalls(this.#computing).length !== 0) return;
    for (;;) {
      const others: Promise<void>[] = [];
      for (const left of this.#running.values()) others.push(left);
      if (others.length === 0) return;
      await Promise.all(others);
    }
  }

  // Reply decoders, made once: the single-key calls pass them to the connection, which settles
  // the call's promise with their result (one promise a call, no async function around it).
  readonly #loadReply = (reply: Reply): V | undefined =>
    reply === null ? undefined : this.#decode("load", reply);
  readonly #loadOkReply = (reply: Reply): [V | undefined, boolean] =>
    reply === null ? [undefined, false] : [this.#decode("loadOk", reply), true];
  // The replies of swap and loadAndDelete are the value their write replaced: a corrupt one
  // says the write took effect.
  readonly #swapReply = (reply: Reply): [V | undefined, boolean] =>
    reply === null ? [undefined, false] : [this.#decode("swap", reply, true), true];
  readonly #loadAndDeleteReply = (reply: Reply): [V | undefined, boolean] =>
    reply === null ? [undefined, false] : [this.#decode("loadAndDelete", reply, true), true];

  #encode(value: V): Buffer {
    return this.#values.value(value) as Buffer;
  }

  /**
   * Sends `command` with `key`'s encoding as its one argument (a bad key rejects); for a write,
   * `wrote` says from the reply whether it changed the key ({@linkcode #noting}).
   */
  #sendKey<T>(
    op: string,
    write: boolean,
    key: K,
    command: string,
    then: (reply: Reply) => T,
    wrote?: (reply: Reply) => boolean,
  ): Promise<T> {
    return this.#encoded(
      op,
      key,
      [],
      (k) =>
        this.#connection.send(
          op,
          write,
          k,
          [command, k],
          wrote === undefined ? then : this.#noting(k, then, wrote),
        ),
    );
  }

  /**
   * `then`, the reply handler of a write of key `k` made now, which also tells the `compute`
   * callbacks of `k` this call runs inside (computesOf) that it wrote, when `wrote(reply)` says
   * so: their round is lost to their own write, which 64 rounds in a row stop. Told as the
   * reply is handled, before any later reply (their script's) is.
   */
  #noting<T>(
    k: Buffer,
    then: (reply: Reply) => T,
    wrote: (reply: Reply) => boolean = always,
  ): (reply: Reply) => T {
    const computes = computesOf(this.#computing, () => k.toString("latin1"));
    if (computes === undefined) return then;
    return (reply) => {
      if (wrote(reply)) noteWrite(computes);
      return then(reply);
    };
  }

  /**
   * Encodes `key`, then `values` in order, and returns what `send` makes of them, for the
   * single-key call `op`. A key or value that cannot be encoded rejects the promise instead of
   * throwing, as every method that returns a promise does; so does a call after close().
   */
  #encoded<T>(
    op: string,
    key: K,
    values: readonly V[],
    send: (k: Buffer, vs: Buffer[]) => Promise<T>,
  ): Promise<T> {
    let k: Buffer, vs: Buffer[];
    try {
      k = this.#layout.encode(key);
      vs = values.map((v) => this.#encode(v));
    } catch (error) {
      return Promise.reject(error);
    }
    // A single-key call needs no record here: close() waits for its command by its deadline.
    if (this.#closing !== undefined && this.#refused()) {
      return Promise.reject(this.#connection.closedError(op));
    }
    return send(k, vs);
  }

  /**
   * Decodes a value read by `op`. `applied` says that the reply is the value a write of `op`
   * replaced (`swap`, `loadAndDelete`): the write took effect whether the value decodes or not.
   */
  #decode(op: string, reply: Reply, applied = false): V {
    try {
      return this.#values.decode(reply as Buffer);
    } catch (error) {
      throw this.#corrupt(op, "a value", error, applied);
    }
  }

  #corrupt(op: string, what: string, error: unknown, applied = false): RedisSyncMapError {
    return new RedisSyncMapError(
      "corrupt",
      op,
      `${this.#label}: ${op} read ${what} that is not in this map's encoding (written by another program, or with other codecs): ${
        error instanceof Error ? error.message : String(error)
      }${applied ? "; the write took effect" : ""}`,
      { cause: error, maybeApplied: applied },
    );
  }

  /** The map's keys on one master, a SCAN batch at a time (scan.ts). */
  #scan(op: string, node: Node): AsyncGenerator<Buffer[]> {
    return scanKeys(op, node, this.#layout.pattern, this.#scanCount);
  }

  /** Every master's keys and values, a batch at a time, each key at most once (scan.ts). */
  #batches(op: string): AsyncGenerator<[K[], V[]]> {
    return scanEntries(this.#connection, op, this.#layout.pattern, this.#scanCount, this.#entry);
  }

  /** Decodes a key and its value read by {@linkcode range} or {@linkcode entries}. */
  readonly #entry = (op: string, k: Buffer, reply: Reply): [K, V] => {
    let key: K;
    try {
      key = this.#layout.decode(k);
    } catch (error) {
      throw this.#corrupt(op, "a key", error);
    }
    return [key, this.#decode(op, reply)];
  };
}

/**
 * What a {@linkcode RedisSyncMap.compute} callback returns instead of a value: delete the key,
 * or leave it as it is.
 */
export type Computed = typeof RedisSyncMap.DELETE | typeof RedisSyncMap.CANCEL;

/** A reply of 1: DEL, EXISTS and the compare scripts succeeded. */
function isOne(reply: Reply): boolean {
  return reply === 1;
}

/** A reply of nil: `SET ... NX GET` stored. */
function isNull(reply: Reply): boolean {
  return reply === null;
}

/** A reply other than nil: GETDEL deleted a value. */
function isValue(reply: Reply): boolean {
  return reply !== null;
}

/** Every reply: SET wrote. */
function always(): boolean {
  return true;
}

/** No reply: the call wrote nothing. */
function never(): boolean {
  return false;
}

/** A reply as it is. */
function same(reply: Reply): Reply {
  return reply;
}

/** What a write resolves to. */
function nothing(): void {}

function isThenable<T>(value: T | Promise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}
