// Copyright the shmap authors. MIT license.
// RedisSyncMap's limits and failures on standalone redis-servers started for this file
// (fixtures/redis_servers.ts), each on a free loopback port, some with a config of their own:
// when a timeout starts, how long open may take, what error messages show of a URL, values
// over the server's bulk limit, and the codes of the errors that close() and a wrong server
// give.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { RedisSyncMap, RedisSyncMapError } from "../src/redis/mod.ts";
import { freePort, RedisServer } from "./fixtures/redis_servers.ts";

/** Per test: Bun's default of 5 s is too short for a server stopped or restarted. */
const SLOW = { timeout: 120_000 };

let sequence = 0;
const uniqueName = (what: string) => `failures:${what}:${Date.now().toString(36)}:${++sequence}`;

/** Keeps the thread busy for `ms` milliseconds: synchronous work, no turn of the event loop. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // Spin.
  }
}

/** Allowed lateness of a timer on a loaded machine. */
const LATE_MS = 250;

/** How `promise` settled, and when (performance.now()). */
async function settled(
  promise: Promise<unknown>,
): Promise<{ ok: boolean; value?: unknown; error?: unknown; at: number }> {
  try {
    const value = await promise;
    return { ok: true, value, at: performance.now() };
  } catch (error) {
    return { ok: false, error, at: performance.now() };
  }
}

describe("RedisSyncMap: limits and failures", () => {
  let server: RedisServer | undefined;
  before(async () => {
    server = await RedisServer.start();
  }, { timeout: 60_000 });
  after(() => server?.stop());

  test(
    "synchronous work after a call, in the same turn, does not count against its timeout",
    SLOW,
    async () => {
      const m = await RedisSyncMap.open<number, number>({
        url: server!.url,
        name: uniqueName("turn"),
        timeout: 300,
      });
      try {
        // Issued, then the turn goes on for twice the timeout before the client can write it.
        const first = m.load(1);
        busy(600);
        // Issued after that work, in the same turn.
        const second = m.store(2, 2);
        busy(600);
        assert.deepEqual(await Promise.all([first, second]), [undefined, undefined]);
        assert.equal(await m.load(2), 2);
      } finally {
        await m.close();
      }
    },
  );

  test(
    "a call to a server that stopped answering times out timeout after its turn ended",
    SLOW,
    async () => {
      const own = await RedisServer.start();
      const timeout = 400;
      try {
        const m = await RedisSyncMap.open<number, number>({
          url: own.url,
          name: uniqueName("late"),
          timeout,
        });
        try {
          own.signal("SIGSTOP");
          const call = settled(m.store(1, 1));
          busy(500);
          const turnEnded = performance.now();
          const outcome = await call;
          own.signal("SIGCONT");
          assert.equal(outcome.ok, false);
          const error = outcome.error as RedisSyncMapError;
          assert.ok(error instanceof RedisSyncMapError && error.code === "timeout", String(error));
          assert.equal(error.maybeApplied, true);
          const ms = outcome.at - turnEnded;
          assert.ok(ms >= timeout - 5 && ms < timeout + 300, `failed ${ms} ms after its turn`);
        } finally {
          own.signal("SIGCONT");
          await m.close();
        }
      } finally {
        own.stop();
      }
    },
  );

  test("open gives up within connectTimeout, whatever the backoff", SLOW, async () => {
    const connectTimeout = 1000;
    const url = `redis://127.0.0.1:${await freePort()}`;
    const start = performance.now();
    // A backoff of up to 5 s must not carry a retry past the deadline.
    const outcome = await settled(
      RedisSyncMap.open({ url, name: "m", connectTimeout, maxReconnectDelay: 5000 }),
    );
    const ms = outcome.at - start;
    const error = outcome.error as RedisSyncMapError;
    assert.ok(error instanceof RedisSyncMapError && error.code === "connection", String(error));
    assert.ok(ms >= connectTimeout - 5 && ms < connectTimeout + LATE_MS, `rejected after ${ms} ms`);
    assert.match(error.message, /within connectTimeout \(1000 ms\): connect ECONNREFUSED/);
  });

  test(
    "open of a server that accepts but does not answer gives up at connectTimeout",
    SLOW,
    async () => {
      const own = await RedisServer.start();
      try {
        own.signal("SIGSTOP");
        const connectTimeout = 300;
        const start = performance.now();
        const outcome = await settled(
          RedisSyncMap.open({ url: own.url, name: "m", timeout: 5000, connectTimeout }),
        );
        const ms = outcome.at - start;
        const error = outcome.error as RedisSyncMapError;
        assert.ok(error instanceof RedisSyncMapError && error.code === "connection", String(error));
        assert.ok(
          ms >= connectTimeout - 5 && ms < connectTimeout + LATE_MS,
          `rejected after ${ms} ms`,
        );
        assert.match(error.message, /within connectTimeout \(300 ms\): no answer from the server/);
      } finally {
        own.stop();
      }
    },
  );

  test("no message shows the user or password of a URL", SLOW, async () => {
    // In redis.conf's quoting: the password is p@ss:w/rd%x, percent-encoded in URLs.
    const own = await RedisServer.start({ config: ['requirepass "p@ss:w/rd%x"'] });
    const secrets = /s3cret|p%40ss|p@ss|default:/;
    const noSecret = (error: unknown): string => {
      assert.ok(error instanceof Error, String(error));
      assert.doesNotMatch(error.message, secrets);
      return error.message;
    };
    try {
      const wrong = await settled(
        RedisSyncMap.open({
          url: `redis://default:s3cret@127.0.0.1:${own.port}`,
          name: "m",
          connectTimeout: 300,
        }),
      );
      assert.match(noSecret(wrong.error), new RegExp(`redis://127\\.0\\.0\\.1:${own.port}\\b`));
      assert.match((wrong.error as Error).message, /WRONGPASS/);

      const m = await RedisSyncMap.open<string, number>({
        url: `redis://default:p%40ss%3Aw%2Frd%25x@127.0.0.1:${own.port}`,
        name: uniqueName("secret"),
        timeout: 300,
      });
      try {
        await m.store("k", 1);
        own.signal("SIGSTOP");
        const late = await settled(m.load("k"));
        own.signal("SIGCONT");
        assert.match(noSecret(late.error), /got no reply within 300 ms/);
      } finally {
        own.signal("SIGCONT");
        await m.close();
      }

      const dead = await freePort();
      const cluster = await settled(
        RedisSyncMap.open({
          cluster: [
            `redis://default:s3cret@127.0.0.1:${dead}`,
            `redis://:s3cret@127.0.0.1:${dead}`,
          ],
          name: "m",
          connectTimeout: 300,
        }),
      );
      assert.match(
        noSecret(cluster.error),
        new RegExp(
          `Redis Cluster \\(redis://127\\.0\\.0\\.1:${dead}, redis://127\\.0\\.0\\.1:${dead}\\)`,
        ),
      );

      for (
        const url of ["http://default:s3cret@127.0.0.1:1", "redis://default:s3/cret@127.0.0.1:x"]
      ) {
        const bad = await settled(RedisSyncMap.open({ url, name: "m" }));
        assert.ok(bad.error instanceof TypeError);
        noSecret(bad.error);
      }
    } finally {
      own.stop();
    }
  });
});
