// Copyright the shmap authors. MIT license.
// RedisSyncMap on a standalone redis-server started for this file on a free loopback port: the
// conformance suite (fixtures/conformance.ts), then what only Redis has (fixtures/redis_cases.ts).
import { after, before, describe } from "node:test";
import { conformance } from "./fixtures/conformance.ts";
import { redisBackend } from "./fixtures/redis_backend.ts";
import { redisCases } from "./fixtures/redis_cases.ts";
import { RedisServer } from "./fixtures/redis_servers.ts";

describe("RedisSyncMap on a standalone server", () => {
  let server: RedisServer | undefined;
  before(async () => {
    server = await RedisServer.start();
  });
  after(() => server?.stop());

  const target = () => ({ url: server!.url });
  const backend = redisBackend("RedisSyncMap, standalone", target, () => [server!]);
  conformance(backend, { modelRuns: 40, raceKeys: 1000, counterIncrements: 300 });
  redisCases(backend, target, () => [server!]);
});
