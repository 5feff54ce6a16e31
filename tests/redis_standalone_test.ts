// Copyright the shmap authors. MIT license.
// RedisSyncMap on a standalone redis-server started for this file on a free loopback port: the
// conformance suite (fixtures/conformance.ts), then what only Redis has (fixtures/redis_cases.ts).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { RedisSyncMap } from "../src/redis/mod.ts";
import { conformance } from "./fixtures/conformance.ts";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { redisBackend, runtimeCommand } from "./fixtures/redis_backend.ts";
import { redisCases } from "./fixtures/redis_cases.ts";
import { RedisServer } from "./fixtures/redis_servers.ts";

describe("RedisSyncMap on a standalone server", () => {
  let server: RedisServer | undefined;
  before(async () => {
    server = await RedisServer.start();
  }, { timeout: 60_000 });
  after(() => server?.stop());

  const target = () => ({ url: server!.url });
  const backend = redisBackend("RedisSyncMap, standalone", target, () => [server!]);
  conformance(backend, { modelRuns: 100, raceKeys: 1000, counterIncrements: 300 });
  redisCases(backend, target, () => [server!]);

  test("a restart shorter than the timeout: calls made meanwhile wait for the reconnect", {
    timeout: 60_000,
  }, async () => {
    const own = await RedisServer.start();
    try {
      const m = await RedisSyncMap.open<string, number>({
        url: own.url,
        name: "restart",
        timeout: 10_000, // room for the restart below on a loaded machine
        maxReconnectDelay: 100,
      });
      await m.store("before", 1);
      own.signal("SIGKILL");
      // Once the process is gone its sockets are closed; the client hears of it as its event
      // loop runs. A call sent before it heard would be written to a dead socket and fail.
      await own.exited();
      await new Promise((r) => setTimeout(r, 200));
      // Sent while there is no server: each waits, unsent, for the client to reconnect.
      const during = [m.store("during", 2), m.loadOrStore("other", 3), m.load("before")];
      await new Promise((r) => setTimeout(r, 300));
      await own.restart();
      assert.deepEqual(await Promise.all(during), [undefined, [3, false], undefined]);
      assert.equal(await m.load("during"), 2, "the new server got the writes");
      await m.close();
    } finally {
      own.stop();
    }
  });

  test("a process exits as soon as its maps are closed: no timer of the map holds it", {
    timeout: 120_000,
  }, () => {
    // The map's timeout is 30 s: a deadline timer left armed would hold the process that long.
    const child = fileURLToPath(new URL("./fixtures/redis_exit_child.ts", import.meta.url));
    const [cmd, args] = runtimeCommand(child, server!.url);
    const start = performance.now();
    const out = spawnSync(cmd, args, {
      cwd: fileURLToPath(new URL("../", import.meta.url)),
      encoding: "utf8",
      timeout: 60_000,
    });
    const ms = performance.now() - start;
    assert.equal(out.status, 0, out.stderr);
    assert.ok(ms < 15_000, `the process took ${Math.round(ms)} ms to exit`);
  });
});
