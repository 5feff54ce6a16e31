/**
 * RedisSyncMap against the raw client (node-redis, configured as the map configures it) issuing
 * the same commands with the same bytes, one at a time and many in flight, and against SyncMap:
 * `deno task bench:redis` (or `bun bench/redis.ts`).
 *
 * Each comparison runs the two sides in alternating rounds and reports the median per call of
 * each, so that load on this shared machine falls on both; SyncMap's nanoseconds are mitata's.
 *
 * Starts a redis-server of its own on a free loopback port (or a local 3-master Cluster with
 * `--cluster`; or uses `--url=redis://host:port`), and stops it at the end. The machine is
 * shared and noisy: read the ratios, measured in one run, not the absolutes.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { execFileSync } from "node:child_process";
import process from "node:process";
import { bench, do_not_optimize, run } from "mitata";
import { createClient, createCluster } from "@redis/client";
import { SyncMap } from "../mod.ts";
import { slotCodecOf } from "../src/codec.ts";
import { Wire } from "../src/_engine/wire.ts";
import { KeyLayout } from "../src/redis/key_layout.ts";
import { COMPARE_AND_SWAP } from "../src/redis/scripts.ts";
import { RedisSyncMap } from "../src/redis/mod.ts";
import { COMMAND_OPTIONS, NODE_OPTIONS } from "../src/redis/connection.ts";
import { RedisCluster, RedisServer } from "../tests/fixtures/redis_servers.ts";
import { checkOptions } from "./fixtures/cli.ts";

const args = process.argv.slice(2);
checkOptions(args, ["url"], ["cluster"]);
const useCluster = args.includes("--cluster");
const givenUrl = args.find((a) => a.startsWith("--url="))?.slice(6);
const runtime = "Bun" in globalThis
  ? `Bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
  : `Deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`;

/** A comparison: its label, the raw client's round, RedisSyncMap's round, calls per round. */
type Pair = [string, () => Promise<void>, () => Promise<void>, number];

/** Rounds of each side, measured alternately. */
const ROUNDS = 60;

/**
 * Runs `a` and `b` in alternating rounds (b first every other round) and returns the median
 * milliseconds per call of each: on a shared machine, load that comes and goes falls on both.
 */
async function interleaved(
  a: () => Promise<void>,
  b: () => Promise<void>,
  per: number,
): Promise<[number, number]> {
  for (let r = 0; r < 5; r++) {
    await a();
    await b();
  }
  const ta: number[] = [];
  const tb: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    for (const [f, t] of r % 2 === 0 ? [[a, ta], [b, tb]] as const : [[b, tb], [a, ta]] as const) {
      const start = performance.now();
      await f();
      t.push((performance.now() - start) / per);
    }
  }
  const median = (t: number[]) => t.sort((x, y) => x - y)[t.length >> 1];
  return [median(ta), median(tb)];
}

/** Keys the benchmarks cycle through. */
const N = 1024;
/** Calls in flight at once in the "many in flight" benchmarks. */
const IN_FLIGHT = 256;

const server = givenUrl === undefined && !useCluster ? await RedisServer.start() : undefined;
const cluster = useCluster ? await RedisCluster.start(3) : undefined;
const target: { cluster: string[] } | { url: string } = cluster !== undefined
  ? { cluster: cluster.urls }
  : { url: givenUrl ?? server!.url };

try {
  const version = execFileSync("redis-server", ["--version"], { encoding: "utf8" }).trim();
  const map = await RedisSyncMap.open<number, number>({ ...target, name: "bench" });
  // The raw client, set up as the map sets up its own (src/redis/connection.ts).
  type Send = (key: Buffer, args: (string | Buffer)[]) => Promise<unknown>;
  let send: Send;
  let closeRaw: () => Promise<void>;
  if ("cluster" in target) {
    const raw = createCluster({
      rootNodes: target.cluster.map((url) => ({ url })),
      defaults: NODE_OPTIONS,
      RESP: 3,
      commandOptions: COMMAND_OPTIONS,
    });
    await raw.connect();
    send = (key, a) => raw.sendCommand(key, false, a);
    closeRaw = () => raw.close();
  } else {
    const raw = createClient({
      url: target.url,
      RESP: 3,
      ...NODE_OPTIONS,
      commandOptions: COMMAND_OPTIONS,
    });
    await raw.connect();
    send = (_key, a) => raw.sendCommand(a);
    closeRaw = () => raw.close();
  }

  // The same bytes the map sends: its Redis keys and value encodings, made once.
  const layout = new KeyLayout("bench", slotCodecOf<number>(undefined, "keys"));
  const values = new Wire(slotCodecOf<number>(undefined, "values"), (n) => Buffer.allocUnsafe(n));
  const rkeys = Array.from({ length: N }, (_, i) => layout.encode(i));
  const rvalues = Array.from({ length: N }, (_, i) => values.value(i) as Buffer);
  for (let i = 0; i < N; i++) await map.store(i, i);
  // Loads the script on every server (EVAL), so that the raw EVALSHA finds it.
  for (let i = 0; i < N; i++) await map.compareAndSwap(i, i, i);
  const shm = new SyncMap<number, number>();
  for (let i = 0; i < N; i++) shm.store(i, i);

  let i = 0;
  const next = () => (i = (i + 1) & (N - 1));
  /** `n` calls of `one`, each awaited before the next: a round trip each. */
  const sequential = (one: () => Promise<unknown>, n: number) => async () => {
    for (let j = 0; j < n; j++) await one();
  };
  /** `n` calls of `one` at once, then all awaited: pipelined. */
  const inFlight = (one: () => Promise<unknown>, n: number) => async () => {
    const all = [];
    for (let j = 0; j < n; j++) all.push(one());
    await Promise.all(all);
  };
  const rawGet = () => {
    const k = next();
    return send(rkeys[k], ["GET", rkeys[k]]);
  };
  const rawSet = () => {
    const k = next();
    return send(rkeys[k], ["SET", rkeys[k], rvalues[k]]);
  };
  const rawSetNxGet = () => {
    const k = next();
    return send(rkeys[k], ["SET", rkeys[k], rvalues[k], "NX", "GET"]);
  };
  const rawCas = () => {
    const k = next();
    return send(rkeys[k], ["EVALSHA", COMPARE_AND_SWAP.sha, "1", rkeys[k], rvalues[k], rvalues[k]]);
  };
  const SEQ = 50;
  const pairs: Pair[] = [
    ["GET / load", sequential(rawGet, SEQ), sequential(() => map.load(next()), SEQ), SEQ],
    ["SET / store", sequential(rawSet, SEQ), sequential(() => map.store(next(), i), SEQ), SEQ],
    [
      "SET NX GET / loadOrStore",
      sequential(rawSetNxGet, SEQ),
      sequential(() => map.loadOrStore(next(), i), SEQ),
      SEQ,
    ],
    [
      "EVALSHA / compareAndSwap",
      sequential(rawCas, SEQ),
      sequential(() => map.compareAndSwap(next(), i, i), SEQ),
      SEQ,
    ],
    [
      `GET / load, ${IN_FLIGHT} in flight`,
      inFlight(rawGet, IN_FLIGHT),
      inFlight(() => map.load(next()), IN_FLIGHT),
      IN_FLIGHT,
    ],
    [
      `SET / store, ${IN_FLIGHT} in flight`,
      inFlight(rawSet, IN_FLIGHT),
      inFlight(() => map.store(next(), i), IN_FLIGHT),
      IN_FLIGHT,
    ],
    [
      `SET NX GET / loadOrStore, ${IN_FLIGHT} in flight`,
      inFlight(rawSetNxGet, IN_FLIGHT),
      inFlight(() => map.loadOrStore(next(), i), IN_FLIGHT),
      IN_FLIGHT,
    ],
  ];
  const rows: string[] = [];
  for (const [label, raw, ours, per] of pairs) {
    const [a, b] = await interleaved(raw, ours, per);
    rows.push(
      `| ${label} | ${(a * 1e3).toFixed(2)} | ${(b * 1e3).toFixed(2)} | ${(a / b).toFixed(2)}x |`,
    );
  }

  // SyncMap, in nanoseconds: mitata's territory.
  bench("SyncMap.load", () => do_not_optimize(shm.load(next())));
  bench("SyncMap.load through a promise", async () => do_not_optimize(await shm.load(next())));
  const result = await run({ colors: false });
  const ns = new Map<string, number>();
  for (const trial of result.benchmarks) {
    for (const r of trial.runs) if (r.stats) ns.set(r.name, r.stats.avg);
  }

  const where = "cluster" in target ? "a local 3-master Cluster" : "a standalone server";
  console.log(`\n${runtime}, ${version}, ${where} on loopback`);
  console.log("| command | raw client (µs/call) | RedisSyncMap (µs/call) | map / raw throughput |");
  console.log("| --- | --- | --- | --- |");
  for (const row of rows) console.log(row);
  for (const [name, t] of ns) console.log(`${name}: ${t.toFixed(1)} ns`);

  await map.close();
  await closeRaw();
} finally {
  server?.stop();
  cluster?.stop();
}
