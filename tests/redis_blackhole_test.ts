// Copyright the shmap authors. MIT license.
// RedisSyncMap after a silent connection loss: a connection that stays open while nothing comes
// through it (a lost NAT or load-balancer flow), made by a TCP proxy in this process
// (fixtures/redis_blackhole_proxy.ts) in front of a redis-server started for this file. Calls
// time out, the map finds the server alive on a new connection and replaces the dead one, and
// calls succeed again within a few timeouts. A server that is stopped (SIGSTOP) is not taken for
// one: its connection is kept, and no write is reported done that was not. And a map closed
// while it checks a connection leaves nothing behind (a child process that must exit).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { probeMs } from "../src/redis/connection.ts";
import { RedisSyncMap, RedisSyncMapError } from "../src/redis/mod.ts";
import { runChild } from "./fixtures/child.ts";
import { eventually, sleep } from "./fixtures/harness.ts";
import { BlackholeProxy } from "./fixtures/redis_blackhole_proxy.ts";
import { CONNECT_MS, LATE_MS, RedisCluster, RedisServer } from "./fixtures/redis_servers.ts";

/** Per test: Bun's default of 5 s is too short for a server stopped and resumed. */
const SLOW = { timeout: 60_000 };
const TIMEOUT = 300;

let sequence = 0;
const uniqueName = (what: string) => `blackhole:${what}:${Date.now().toString(36)}:${++sequence}`;

/** How `promise` settled, and when (performance.now()). */
async function settled<T>(
  promise: Promise<T>,
): Promise<{ ok: boolean; value?: T; error?: RedisSyncMapError; at: number }> {
  try {
    const value = await promise;
    return { ok: true, value, at: performance.now() };
  } catch (error) {
    assert.ok(error instanceof RedisSyncMapError, String(error));
    return { ok: false, error, at: performance.now() };
  }
}

describe("RedisSyncMap: a silent connection loss", () => {
  let server: RedisServer | undefined;
  before(async () => {
    server = await RedisServer.start();
  }, { timeout: 60_000 });
  after(() => server?.stop());

  test(
    "a black-holed connection is replaced: calls succeed again within 3 timeouts",
    SLOW,
    async () => {
      const proxy = await BlackholeProxy.start(server!.port);
      const name = uniqueName("replaced");
      const m = await RedisSyncMap.open<string, number>({
        url: proxy.url,
        name,
        timeout: TIMEOUT,
        connectTimeout: CONNECT_MS,
      });
      const direct = await RedisSyncMap.open<string, number>({ url: server!.url, name });
      try {
        await m.store("k", 0);
        assert.equal(proxy.connections.length, 1);
        const first = proxy.connections[0];
        proxy.blackhole();
        const lost = Date.now();
        const start = performance.now();
        // Nothing reaches the server: the write times out, and may have been applied.
        const stuck = await settled(m.store("k", 1));
        assert.equal(stuck.ok, false);
        assert.equal(stuck.error!.code, "timeout");
        assert.equal(stuck.error!.maybeApplied, true);
        assert.ok(stuck.at - start >= TIMEOUT - 5, `failed after ${stuck.at - start} ms`);
        // Calls fail (timeout, or connection for those in flight on the old connection when it
        // is dropped) until one succeeds, on a new connection.
        let value = 1;
        let done: Awaited<ReturnType<typeof settled>> | undefined;
        while (performance.now() - start < 3 * TIMEOUT + LATE_MS) {
          value++;
          const outcome = await settled(m.store("k", value));
          if (outcome.ok) {
            done = outcome;
            break;
          }
          assert.ok(
            ["timeout", "connection"].includes(outcome.error!.code),
            String(outcome.error),
          );
          assert.equal(outcome.error!.maybeApplied, true);
          await sleep(10);
        }
        assert.ok(done !== undefined, `no call succeeded within ${3 * TIMEOUT + LATE_MS} ms`);
        const ms = done.at - start;
        assert.ok(ms < 3 * TIMEOUT + LATE_MS, `recovered after ${ms} ms`);
        // The write that succeeded is what the server holds, read past the proxy and through it.
        assert.equal(await direct.load("k"), value);
        assert.equal(await m.load("k"), value);
        // The old connection was closed by the client; a new one carries the calls.
        assert.equal(first.closed, true);
        assert.ok(proxy.live.length >= 1);
        assert.ok(proxy.connections.indexOf(proxy.live[0]) > 0);
        assert.ok(Date.now() - lost < 60_000);
      } finally {
        await m.close();
        await direct.close();
        await proxy.close();
      }
    },
  );

  test(
    "a black-holed connection in a loop of calls in flight recovers, and again",
    SLOW,
    async () => {
      const proxy = await BlackholeProxy.start(server!.port);
      const name = uniqueName("again");
      const m = await RedisSyncMap.open<string, number>({
        url: proxy.url,
        name,
        timeout: TIMEOUT,
        connectTimeout: CONNECT_MS,
      });
      const direct = await RedisSyncMap.open<string, number>({ url: server!.url, name });
      try {
        for (let round = 0; round < 2; round++) {
          await m.store("k", -1);
          proxy.blackhole();
          const start = performance.now();
          // Writers of their own keys, each a store at a time, until each has had one succeed.
          const succeeded = new Map<string, number>();
          await Promise.all(Array.from({ length: 8 }, async (_, w) => {
            const key = `w${w}`;
            for (let i = 0; performance.now() - start < 3 * TIMEOUT + LATE_MS; i++) {
              const outcome = await settled(m.store(key, i));
              if (outcome.ok) {
                succeeded.set(key, i);
                return;
              }
              assert.equal(outcome.error!.maybeApplied, true);
            }
          }));
          assert.equal(succeeded.size, 8, `round ${round}: ${[...succeeded.keys()]} recovered`);
          for (const [key, i] of succeeded) assert.equal(await direct.load(key), i);
        }
      } finally {
        await m.close();
        await direct.close();
        await proxy.close();
      }
    },
  );

  test(
    "a stopped server's connection is kept: no write is reported done that was not",
    SLOW,
    async () => {
      const own = await RedisServer.start();
      const proxy = await BlackholeProxy.start(own.port);
      const name = uniqueName("stopped");
      const m = await RedisSyncMap.open<string, number>({
        url: proxy.url,
        name,
        timeout: TIMEOUT,
        connectTimeout: CONNECT_MS,
      });
      try {
        await m.store("k", 0);
        const first = proxy.connections[0];
        own.signal("SIGSTOP");
        const start = performance.now();
        const writes: Promise<Awaited<ReturnType<typeof settled<unknown>>>>[] = [];
        // Writes in flight, and more every 50 ms for three timeouts: several checks run, and
        // each finds the server silent on a new connection too.
        let i = 0;
        while (performance.now() - start < 3 * TIMEOUT + probeMs(TIMEOUT)) {
          const key = `p${i}`;
          writes.push(settled(m.store(key, i)));
          writes.push(settled(m.swap("k", i)));
          i++;
          await sleep(50);
        }
        const during = await Promise.all(writes);
        own.signal("SIGCONT");
        for (const outcome of during) {
          assert.equal(outcome.ok, false, "a write succeeded on a stopped server");
          assert.equal(outcome.error!.code, "timeout", String(outcome.error));
          assert.equal(outcome.error!.maybeApplied, true);
        }
        // The map works after the resume, on the connection it had.
        const resumed = performance.now();
        let back = false;
        while (!back && performance.now() - resumed < TIMEOUT + LATE_MS) {
          back = (await settled(m.store("after", 1))).ok;
        }
        assert.ok(back, "no call succeeded after the server resumed");
        assert.equal(await m.load("after"), 1);
        assert.equal(first.closed, false, "the connection to the stopped server was dropped");
        // The checks' side connections are all closed.
        assert.ok(proxy.connections.length > 1, "no check opened a side connection");
        await eventually(1000, () => proxy.live.length === 1);
        assert.deepEqual(
          proxy.connections.filter((c) => !c.closed).map((c) => proxy.connections.indexOf(c)),
          [0],
        );
        // The writes that timed out reached the server, which ran them once resumed.
        assert.equal(await m.load(`p${i - 1}`), i - 1);
        assert.equal(await m.load("k"), i - 1);
      } finally {
        own.signal("SIGCONT");
        await m.close();
        await proxy.close();
        own.stop();
      }
    },
  );

  test(
    "a map closed while it checks a connection leaves the process free to exit",
    SLOW,
    async () => {
      const script = new URL("./fixtures/redis_blackhole_child.ts", import.meta.url);
      const child = await runChild(script, [String(server!.port)], 20_000);
      assert.equal(child.timedOut, false, `the child did not exit: ${child.stdout}${child.stderr}`);
      assert.match(child.stdout, /recovered after \d+ ms\nthen: timeout\nclosed/);
    },
  );

  test("a Cluster node's black-holed connection is replaced", SLOW, async () => {
    const cluster = await RedisCluster.start();
    const proxies: BlackholeProxy[] = [];
    try {
      // Each node announces its proxy's port: the client reaches every node through one.
      for (const node of cluster.nodes) {
        const proxy = await BlackholeProxy.start(node.port);
        proxies.push(proxy);
        await node.command("CONFIG", "SET", "cluster-announce-port", String(proxy.port));
      }
      const ports = new Set(proxies.map((p) => p.port));
      const announced = async () => {
        for (const node of cluster.nodes) {
          const text = String(await node.command("CLUSTER", "NODES"));
          for (const m of text.matchAll(/:(\d+)@/g)) if (!ports.has(Number(m[1]))) return false;
        }
        return true;
      };
      const until = performance.now() + 10_000;
      while (!(await announced())) {
        assert.ok(performance.now() < until, "the nodes did not announce their proxies' ports");
        await sleep(50);
      }
      const name = uniqueName("cluster");
      const m = await RedisSyncMap.open<string, number>({
        cluster: proxies.map((p) => p.url),
        name,
        timeout: TIMEOUT,
        connectTimeout: CONNECT_MS,
      });
      try {
        // Keys on every node.
        const keys = Array.from({ length: 24 }, (_, i) => `k${i}`);
        await Promise.all(keys.map((k) => m.store(k, -1)));
        const before = proxies.map((p) => p.connections.length);
        assert.ok(before.every((n) => n >= 1));
        // One node's connection goes silent; the others' keep working.
        proxies[0].blackhole();
        const start = performance.now();
        const succeeded = new Map<string, number>();
        await Promise.all(keys.map(async (key) => {
          for (let i = 0; performance.now() - start < 3 * TIMEOUT + LATE_MS; i++) {
            const outcome = await settled(m.store(key, i));
            if (outcome.ok) {
              succeeded.set(key, i);
              return;
            }
            assert.equal(outcome.error!.maybeApplied, true);
          }
        }));
        assert.equal(succeeded.size, keys.length, `${[...succeeded.keys()]} recovered`);
        const ms = performance.now() - start;
        assert.ok(ms < 3 * TIMEOUT + LATE_MS, `recovered after ${ms} ms`);
        // Read by a map opened now (its connections go through the proxies too, and are new).
        const other = await RedisSyncMap.open<string, number>({ cluster: cluster.urls, name });
        try {
          for (const [key, i] of succeeded) assert.equal(await other.load(key), i);
        } finally {
          await other.close();
        }
        // The silent connection was closed, and a new one made to that node only.
        assert.ok(proxies[0].connections.some((c) => c.dead && c.closed));
        assert.ok(proxies[0].live.length >= 1);
        assert.equal(await m.size(), keys.length);
      } finally {
        await m.close();
      }
    } finally {
      for (const proxy of proxies) await proxy.close();
      cluster.stop();
    }
  });
});
