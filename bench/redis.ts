/**
 * RedisSyncMap against the raw client (node-redis, configured as the map configures it) issuing
 * the same commands with the same bytes, one at a time and many in flight, and against SyncMap:
 * `deno task bench:redis` (or `bun bench/redis.ts`).
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
import { bench, do_not_optimize, group, run } from "mitata";
import { createClient, createCluster, RESP_TYPES } from "@redis/client";
import { SyncMap } from "../mod.ts";
import { slotCodecOf } from "../src/codec.ts";
import { Wire } from "../src/_engine/wire.ts";
import { KeyLayout } from "../src/redis/key_layout.ts";
import { COMPARE_AND_SWAP } from "../src/redis/scripts.ts";
import { RedisSyncMap } from "../src/redis/mod.ts";
import { RedisCluster, RedisServer } from "../tests/fixtures/redis_servers.ts";

const args = process.argv.slice(2);
const useCluster = args.includes("--cluster");
const givenUrl = args.find((a) => a.startsWith("--url="))?.slice(6);
const runtime = "Bun" in globalThis
  ? `Bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`
  : `Deno ${(globalThis as unknown as { Deno: { version: { deno: string } } }).Deno.version.deno}`;

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
  const typeMapping = { [RESP_TYPES.BLOB_STRING]: Buffer };
  // The raw client, set up as the map sets up its own (src/redis/connection.ts).
  type Send = (key: Buffer, args: (string | Buffer)[]) => Promise<unknown>;
  let send: Send;
  let closeRaw: () => Promise<void>;
  if ("cluster" in target) {
    const raw = createCluster({
      rootNodes: target.cluster.map((url) => ({ url })),
      defaults: { disableOfflineQueue: true, maintNotifications: "disabled" },
      RESP: 3,
      commandOptions: { typeMapping, timeout: 0 },
    });
    await raw.connect();
    send = (key, a) => raw.sendCommand(key, false, a);
    closeRaw = () => raw.close();
  } else {
    const raw = createClient({
      url: target.url,
      RESP: 3,
      disableOfflineQueue: true,
      maintNotifications: "disabled",
      commandOptions: { typeMapping, timeout: 0 },
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

  group("one call at a time (a round trip each)", () => {
    bench("raw GET", async () => {
      const k = next();
      do_not_optimize(await send(rkeys[k], ["GET", rkeys[k]]));
    });
    bench("RedisSyncMap.load", async () => {
      do_not_optimize(await map.load(next()));
    });
    bench("raw SET", async () => {
      const k = next();
      do_not_optimize(await send(rkeys[k], ["SET", rkeys[k], rvalues[k]]));
    });
    bench("RedisSyncMap.store", async () => {
      const k = next();
      await map.store(k, k);
    });
    bench("raw SET NX GET", async () => {
      const k = next();
      do_not_optimize(await send(rkeys[k], ["SET", rkeys[k], rvalues[k], "NX", "GET"]));
    });
    bench("RedisSyncMap.loadOrStore", async () => {
      const k = next();
      do_not_optimize(await map.loadOrStore(k, k));
    });
    bench("raw EVALSHA compare-and-swap", async () => {
      const k = next();
      const cas = ["EVALSHA", COMPARE_AND_SWAP.sha, "1", rkeys[k], rvalues[k], rvalues[k]];
      do_not_optimize(await send(rkeys[k], cas));
    });
    bench("RedisSyncMap.compareAndSwap", async () => {
      const k = next();
      do_not_optimize(await map.compareAndSwap(k, k, k));
    });
  });

  group(`${IN_FLIGHT} calls in flight (pipelined), per call`, () => {
    bench(`raw GET ×${IN_FLIGHT}`, async () => {
      const all = [];
      for (let j = 0; j < IN_FLIGHT; j++) {
        const k = next();
        all.push(send(rkeys[k], ["GET", rkeys[k]]));
      }
      do_not_optimize(await Promise.all(all));
    });
    bench(`RedisSyncMap.load ×${IN_FLIGHT}`, async () => {
      const all = [];
      for (let j = 0; j < IN_FLIGHT; j++) all.push(map.load(next()));
      do_not_optimize(await Promise.all(all));
    });
    bench(`raw SET ×${IN_FLIGHT}`, async () => {
      const all = [];
      for (let j = 0; j < IN_FLIGHT; j++) {
        const k = next();
        all.push(send(rkeys[k], ["SET", rkeys[k], rvalues[k]]));
      }
      do_not_optimize(await Promise.all(all));
    });
    bench(`RedisSyncMap.store ×${IN_FLIGHT}`, async () => {
      const all = [];
      for (let j = 0; j < IN_FLIGHT; j++) {
        const k = next();
        all.push(map.store(k, k));
      }
      do_not_optimize(await Promise.all(all));
    });
  });

  group("SyncMap, for scale", () => {
    bench("SyncMap.load", () => do_not_optimize(shm.load(next())));
    bench("SyncMap.load through a promise", async () => do_not_optimize(await shm.load(next())));
  });

  const result = await run({ colors: false });
  const perCall = new Map<string, number>();
  for (const trial of result.benchmarks) {
    for (const r of trial.runs) {
      if (r.stats) {
        perCall.set(r.name, r.stats.avg / (r.name.endsWith(`×${IN_FLIGHT}`) ? IN_FLIGHT : 1));
      }
    }
  }

  console.log(
    `\n${runtime}, ${version}, ${"cluster" in target ? "3-master Cluster" : "standalone"}`,
  );
  console.log("| command | raw client (µs/call) | RedisSyncMap (µs/call) | map / raw throughput |");
  console.log("| --- | --- | --- | --- |");
  const pairs: [string, string, string][] = [
    ["GET / load", "raw GET", "RedisSyncMap.load"],
    ["SET / store", "raw SET", "RedisSyncMap.store"],
    ["SET NX GET / loadOrStore", "raw SET NX GET", "RedisSyncMap.loadOrStore"],
    ["EVALSHA / compareAndSwap", "raw EVALSHA compare-and-swap", "RedisSyncMap.compareAndSwap"],
    [
      `GET / load, ${IN_FLIGHT} in flight`,
      `raw GET ×${IN_FLIGHT}`,
      `RedisSyncMap.load ×${IN_FLIGHT}`,
    ],
    [
      `SET / store, ${IN_FLIGHT} in flight`,
      `raw SET ×${IN_FLIGHT}`,
      `RedisSyncMap.store ×${IN_FLIGHT}`,
    ],
  ];
  for (const [label, raw, ours] of pairs) {
    const a = perCall.get(raw);
    const b = perCall.get(ours);
    if (a === undefined || b === undefined) continue;
    console.log(
      `| ${label} | ${(a / 1e3).toFixed(2)} | ${(b / 1e3).toFixed(2)} | ${(a / b).toFixed(2)}x |`,
    );
  }
  const load = perCall.get("SyncMap.load");
  if (load !== undefined) console.log(`\nSyncMap.load: ${load.toFixed(1)} ns`);

  await map.close();
  await closeRaw();
} finally {
  server?.stop();
  cluster?.stop();
}
