// Copyright the shmap authors. MIT license.
// RedisSyncMap's limits and failures on standalone redis-servers started for this file
// (fixtures/redis_servers.ts), each on a free loopback port, some with a config of their own:
// when a timeout starts, how long open may take, what error messages show of a URL, values
// over the server's bulk limit, and the codes of the errors that close() and a wrong server
// give.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { codecs } from "../mod.ts";
import { Connection, DEFAULT_MAX_BULK } from "../src/redis/connection.ts";
import { RedisSyncMap, RedisSyncMapError } from "../src/redis/mod.ts";
import { CONNECT_MS, deadPort, LATE_MS, RedisServer } from "./fixtures/redis_servers.ts";

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
        connectTimeout: CONNECT_MS,
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
          connectTimeout: CONNECT_MS,
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
          assert.ok(ms >= timeout - 5 && ms < timeout + LATE_MS, `failed ${ms} ms after its turn`);
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
    const url = `redis://127.0.0.1:${await deadPort()}`;
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
          connectTimeout: 1500, // retried to the end: room for a first WRONGPASS on a loaded machine
        }),
      );
      assert.match(noSecret(wrong.error), new RegExp(`redis://127\\.0\\.0\\.1:${own.port}\\b`));
      assert.match((wrong.error as Error).message, /WRONGPASS/);

      const m = await RedisSyncMap.open<string, number>({
        url: `redis://default:p%40ss%3Aw%2Frd%25x@127.0.0.1:${own.port}`,
        name: uniqueName("secret"),
        timeout: 300,
        connectTimeout: CONNECT_MS,
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

      const dead = await deadPort();
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

  test(
    "a key or value over proto-max-bulk-len is a RangeError, and nothing is sent",
    SLOW,
    async () => {
      const own = await RedisServer.start({ config: ["proto-max-bulk-len 1mb"] });
      const limit = 1024 * 1024;
      try {
        const m = await RedisSyncMap.open<string, Uint8Array>({
          url: own.url,
          name: uniqueName("bulk"),
          values: codecs.bytes,
          keys: codecs.string,
          timeout: 2000,
        });
        try {
          const small = new Uint8Array([1]);
          const fits = new Uint8Array(limit - 1000);
          const big = new Uint8Array(limit + 1);
          await m.store("small", small);
          const tooLarge = (e: unknown) =>
            e instanceof RangeError && /was not sent: its value takes \d+ bytes/.test(e.message) &&
            e.message.includes(`more than the ${limit} bytes`);
          // Calls in flight on the same connection, before and after the big one, are unaffected.
          const before = Array.from({ length: 20 }, () => settled(m.load("small")));
          const refused = settled(m.store("big", big));
          const after = Array.from({ length: 5 }, () => settled(m.load("small")));
          const outcome = await refused;
          assert.ok(tooLarge(outcome.error), String(outcome.error));
          for (const other of await Promise.all([...before, ...after])) {
            assert.ok(other.ok, String(other.error));
            assert.deepEqual(other.value, small);
          }

          await assert.rejects(m.swap("big", big), tooLarge);
          await assert.rejects(m.loadOrStore("big", big), tooLarge);
          await assert.rejects(m.compareAndSwap("small", small, big), tooLarge);
          await assert.rejects(m.compareAndDelete("small", big), tooLarge);
          await assert.rejects(m.compute("small", () => big), tooLarge);
          await assert.rejects(m.loadOrCompute("big", () => big), tooLarge);
          await assert.rejects(
            m.load("k".repeat(limit)),
            (e: unknown) => e instanceof RangeError && /its key takes/.test(e.message),
          );
          assert.equal(await m.has("big"), false);
          assert.deepEqual(await m.load("small"), small);
          // Under the limit, a long value goes through.
          await m.store("fits", fits);
          assert.equal((await m.load("fits"))?.length, fits.length);
        } finally {
          await m.close();
        }
      } finally {
        own.stop();
      }
    },
  );

  test(
    "the bulk limit is read at open, and is Redis's default where CONFIG is refused",
    SLOW,
    async () => {
      const refusing = await RedisServer.start({
        config: ['rename-command CONFIG ""', "proto-max-bulk-len 2mb"],
      });
      const options = { timeout: 2000, connectTimeout: 2000, maxReconnectDelay: 100, label: "t" };
      try {
        const told = await Connection.open({ url: server!.url, ...options });
        const refused = await Connection.open({ url: refusing.url, ...options });
        try {
          assert.equal(told.maxBulk, DEFAULT_MAX_BULK);
          assert.equal(refused.maxBulk, DEFAULT_MAX_BULK);
        } finally {
          await told.close();
          await refused.close();
        }
        await server!.command("CONFIG", "SET", "proto-max-bulk-len", "3mb");
        const lowered = await Connection.open({ url: server!.url, ...options });
        await lowered.close();
        assert.equal(lowered.maxBulk, 3 * 1024 * 1024);
      } finally {
        await server!.command("CONFIG", "SET", "proto-max-bulk-len", String(DEFAULT_MAX_BULK));
        refusing.stop();
      }
    },
  );

  test(
    "close() while calls wait for a connection: they reject as closed, not sent",
    SLOW,
    async () => {
      const own = await RedisServer.start();
      try {
        const m = await RedisSyncMap.open<string, number>({
          url: own.url,
          name: uniqueName("closedown"),
          timeout: 2000,
          maxReconnectDelay: 100,
        });
        await m.store("k", 1);
        own.signal("SIGKILL");
        await own.exited();
        // Once the client has heard the socket close, calls wait for it to reconnect.
        await new Promise((r) => setTimeout(r, 200));
        const waiting = [m.load("k"), m.store("k", 2), m.range(() => {})].map(settled);
        await new Promise((r) => setTimeout(r, 100));
        // And calls made in the turn that closes.
        const closing = [m.compareAndSwap("k", 1, 3), m.has("k")].map(settled);
        const start = performance.now();
        await m.close();
        for (const outcome of await Promise.all([...waiting, ...closing])) {
          const error = outcome.error as RedisSyncMapError;
          assert.ok(error instanceof RedisSyncMapError, String(outcome.error ?? outcome.value));
          assert.equal(error.code, "closed", error.message);
          assert.equal(error.maybeApplied, false);
          assert.match(error.message, /was not sent: the map was closed while it waited/);
          assert.ok(outcome.at - start < LATE_MS, `settled ${outcome.at - start} ms after close()`);
        }
      } finally {
        own.stop();
      }
    },
  );
});
