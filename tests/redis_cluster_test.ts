// Copyright the shmap authors. MIT license.
// RedisSyncMap on a local Redis Cluster of three masters started for this file (redis-cli
// --cluster create, on free loopback ports): the conformance suite (fixtures/conformance.ts),
// then what only Redis has (fixtures/redis_cases.ts), ending with a master killed mid-run.
import { after, before, describe } from "node:test";
import { conformance } from "./fixtures/conformance.ts";
import { redisBackend } from "./fixtures/redis_backend.ts";
import { redisCases } from "./fixtures/redis_cases.ts";
import { RedisCluster } from "./fixtures/redis_servers.ts";

describe("RedisSyncMap on a 3-master Redis Cluster", () => {
  let cluster: RedisCluster | undefined;
  before(async () => {
    cluster = await RedisCluster.start(3);
  }, { timeout: 60_000 });
  after(() => cluster?.stop());

  const target = () => ({ cluster: cluster!.urls });
  const backend = redisBackend("RedisSyncMap, Cluster", target, () => cluster!.nodes);
  conformance(backend, { modelRuns: 100, raceKeys: 1000, counterIncrements: 300 });
  redisCases(backend, target, () => cluster!.nodes);
});
