// Copyright the shmap authors. MIT license.
// RedisSyncMap's limits and failures on standalone redis-servers started for this file
// (fixtures/redis_servers.ts), each on a free loopback port, some with a config of their own:
// when a timeout starts, and what a stall of the event loop does to it, how long open may take,
// what error messages show of a URL, values over the server's bulk limit, what close() lets
// finish, and the codes of the errors that close(), a wrong server and a failing clear give.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Buffer } from "node:buffer";
import { setImmediate } from "node:timers";
import { codecs } from "../mod.ts";
import {
  Connection,
  DEFAULT_MAX_BULK,
  DEFAULT_MAX_QUERY,
  type Node,
} from "../src/redis/connection.ts";
import { RedisSyncMap, RedisSyncMapError, type RedisSyncMapOptions } from "../src/redis/mod.ts";
import { runChild } from "./fixtures/child.ts";
import { busy, deadline, sleep } from "./fixtures/harness.ts";
import {
  CONNECT_MS,
  deadPort,
  getsAndSets,
  LATE_MS,
  RedisServer,
} from "./fixtures/redis_servers.ts";

/** Per test: Bun's default of 5 s is too short for a server stopped or restarted. */
const SLOW = { timeout: 120_000 };

let sequence = 0;
const uniqueName = (what: string) => `failures:${what}:${Date.now().toString(36)}:${++sequence}`;

/**
 * Opens a map with `options`, stores a key, loads it back and deletes it, then closes the map:
 * the map serves.
 */
async function serves(options: RedisSyncMapOptions<string, number>): Promise<void> {
  const m = await RedisSyncMap.open<string, number>(options);
  try {
    await m.store("k", 1);
    assert.equal(await m.load("k"), 1);
    await m.delete("k");
  } finally {
    await m.close();
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

/**
 * Runs `body` with every master a map scans (range, clear, size) wrapped by `wrap`: a test's
 * way to act between the commands of one call, where no caller can. Restores
 * Connection.prototype.masters after.
 */
async function withMasters(wrap: (node: Node) => Node, body: () => Promise<void>): Promise<void> {
  const masters = Connection.prototype.masters;
  Connection.prototype.masters = function (this: Connection, op: string): Node[] {
    return masters.call(this, op).map(wrap);
  };
  try {
    await body();
  } finally {
    Connection.prototype.masters = masters;
  }
}

/** Resolves once the Cluster node `node` reports `cluster_state:ok`, within 10 s. */
async function clusterOk(node: RedisServer): Promise<void> {
  const until = performance.now() + 10_000;
  while (!String(await node.command("CLUSTER", "INFO")).includes("cluster_state:ok")) {
    if (performance.now() > until) throw new Error(`${node.address}: cluster_state not ok`);
    await sleep(20);
  }
}

/** A SCAN reply's keys. */
const scanned = (reply: unknown): Buffer[] => (reply as [Buffer, Buffer[]])[1];

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

  test(
    "a reply that came in time is a reply after a stall of the event loop, not a timeout",
    SLOW,
    async () => {
      const m = await RedisSyncMap.open<string, number>({
        url: server!.url,
        name: uniqueName("stall"),
        timeout: 300,
        connectTimeout: CONNECT_MS,
      });
      try {
        await m.store("a", 1);
        const served = getsAndSets(server!.port);
        const read = settled(m.load("a"));
        const write = settled(m.store("b", 2));
        // Queued behind the client's write of both commands. The stall lasts three timeouts, and
        // past that until the server has answered both (a loaded machine may run it late), so
        // their replies wait unread while their deadlines pass, until the timers have run.
        setImmediate(() => {
          const end = performance.now() + 900;
          while (getsAndSets(server!.port) < served + 2) busy(10);
          busy(Math.max(20, end - performance.now()));
        });
        const [loaded, stored] = await Promise.all([read, write]);
        assert.ok(loaded.ok, `load: ${String(loaded.error)}`);
        assert.equal(loaded.value, 1);
        assert.ok(stored.ok, `store: ${String(stored.error)}`);
        assert.equal(await m.load("b"), 2);
      } finally {
        await m.close();
      }
    },
  );

  test(
    "a reply that came in time is a reply after a stall that ends just past its deadline",
    SLOW,
    async () => {
      // 8 ms past: too little to count as a stall (deadlines.ts STALL_MS), so no renewal; on
      // Deno, without its read grace, the socket was read after the deadline's timer, and a try
      // lost its reply in about half of fresh processes (most often the second try): the loss
      // comes while code is cold, so six fresh processes of four tries each.
      const script = new URL("./fixtures/stall_reply_child.ts", import.meta.url);
      for (let child = 0; child < 6; child++) {
        // One at a time: children side by side would stall each other's loops on two cores.
        const out = await runChild(script, [server!.url, "4", "8"], 60_000);
        assert.equal(out.code, 0, `child ${child}: ${out.stderr}`);
        const { lost, first } = JSON.parse(out.stdout.trim().split("\n").at(-1)!);
        assert.equal(lost, 0, `child ${child}: ${lost} of 4 tries lost their reply: ${first}`);
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
    "a Cluster open retries a refused connection within connectTimeout, as a standalone one does",
    SLOW,
    async () => {
      // The audit's openretry.ts: with the node up 700 ms after open began, a standalone open
      // connected, and a Cluster open rejected in ~50 ms ("All the root nodes are unavailable"):
      // the client's discovery tries each root node once.
      const node = await RedisServer.start({ cluster: true });
      try {
        await node.command("CLUSTER", "ADDSLOTSRANGE", "0", "16383");
        await clusterOk(node);
        // Its nodes.conf holds the slots: a restart on the same port comes back with them.
        node.signal("SIGKILL");
        await node.exited();
        const start = performance.now();
        const opening = settled(
          RedisSyncMap.open<string, number>({
            cluster: [node.url],
            name: uniqueName("late-cluster"),
            timeout: 5000,
            connectTimeout: 15_000,
            maxReconnectDelay: 200,
          }),
        );
        await sleep(700);
        await node.restart();
        const outcome = await opening;
        assert.ok(outcome.ok, String(outcome.error));
        const ms = outcome.at - start;
        assert.ok(ms >= 650, `opened after ${ms} ms, before the node was up`);
        const m = outcome.value as RedisSyncMap<string, number>;
        try {
          // A restarted master serves again (cluster_state:ok) after up to 2 s.
          await clusterOk(node);
          await m.store("k", 1);
          assert.equal(await m.load("k"), 1);
        } finally {
          await m.close();
        }
      } finally {
        node.stop();
      }
    },
  );

  test(
    "a Cluster open fails at once where no retry helps: a refused setup, a standalone server",
    SLOW,
    async () => {
      const node = await RedisServer.start({ cluster: true, config: ["requirepass s3cret"] });
      const connectTimeout = 30_000;
      try {
        const cases: [string[], RegExp, string][] = [
          [[node.url.replace("redis://", "redis://:wrong@")], /WRONGPASS/, "connection"],
          [[node.url], /NOAUTH/, "connection"],
          [[server!.url], /reached a standalone server/, "unsupported"],
        ];
        for (const [cluster, said, code] of cases) {
          const began = performance.now();
          await assert.rejects(
            RedisSyncMap.open({ cluster, name: "m", connectTimeout }),
            (e: unknown) =>
              e instanceof RedisSyncMapError && e.code === code && said.test(e.message) &&
              !e.message.includes("s3cret"),
          );
          const took = performance.now() - began;
          assert.ok(took < connectTimeout / 2, `${said}: open took ${Math.round(took)} ms`);
        }
      } finally {
        node.stop();
      }
    },
  );

  test(
    "a Cluster open of nodes with no slot, or not every slot, assigned fails at once, naming it; once assigned, it opens",
    SLOW,
    async () => {
      // Before, open succeeded with no master, and every call failed as "connection", with
      // maybeApplied, on the client's own TypeError ("reading 'master'"), having sent nothing.
      const node = await RedisServer.start({ cluster: true });
      const connectTimeout = 30_000;
      try {
        const began = performance.now();
        await assert.rejects(
          RedisSyncMap.open({ cluster: [node.url], name: "m", connectTimeout }),
          (e: unknown) =>
            e instanceof RedisSyncMapError && e.code === "server" && e.operation === "open" &&
            /has no hash slot assigned to a master/.test(e.message),
        );
        const took = performance.now() - began;
        assert.ok(took < connectTimeout / 2, `open took ${Math.round(took)} ms`);
        // Some slots (helper-190: the keys of the others failed as "connection", maybeApplied,
        // unsent, for good: the client never learnt their masters).
        await node.command("CLUSTER", "ADDSLOTSRANGE", "0", "8000");
        await assert.rejects(
          RedisSyncMap.open({ cluster: [node.url], name: "m", connectTimeout }),
          (e: unknown) =>
            e instanceof RedisSyncMapError && e.code === "server" &&
            /has 8383 of its 16384 hash slots not assigned to a master/.test(e.message),
        );
        await node.command("CLUSTER", "ADDSLOTSRANGE", "8001", "16383");
        await clusterOk(node);
        await serves({ cluster: [node.url], name: uniqueName("slots"), connectTimeout });
      } finally {
        node.stop();
      }
    },
  );

  test(
    "a URL whose path is not a database, or with a query string or fragment, is a TypeError naming the option",
    SLOW,
    async () => {
      // The audit's opts.ts: /abc passed the check and failed in the client with a bare
      // "TypeError: Invalid pathname"; a query string was silently ignored.
      const at = `127.0.0.1:${server!.port}`;
      const cases: [string, RegExp][] = [
        [`redis://${at}/abc`, /must name its database, if any, as a non-negative integer/],
        [`redis://:s3cret@${at}/abc`, /must name its database/],
        [`redis://${at}/-1`, /must name its database/],
        [`redis://${at}/1.5`, /must name its database/],
        [`redis://${at}//0`, /must name its database/],
        [`redis://${at}?foo=bar`, /must have no query string \(\?\.\.\.\) or fragment/],
        [`redis://${at}/0?password=s3cret`, /must have no query string/],
        [`redis://u:s3cret@${at}/#x`, /must have no query string/],
        [`redis://${at}?`, /must have no query string/],
      ];
      for (const [url, said] of cases) {
        for (const [option, options] of [["url", { url }], ["cluster", { cluster: [url] }]]) {
          await assert.rejects(
            RedisSyncMap.open({ ...options as object, name: "m", connectTimeout: 300 }),
            (e: unknown) =>
              e instanceof TypeError && e.message.startsWith(`${option} must`) &&
              said.test(e.message) && e.message.includes(at) && !e.message.includes("s3cret") &&
              !e.message.includes("foo"),
          );
        }
      }
      for (const url of [`redis://${at}/`, `redis://${at}/0`, `redis://${at}/1`]) {
        await serves({ url, name: uniqueName("db"), connectTimeout: CONNECT_MS });
      }
    },
  );

  test(
    "an error a user codec's encode throws rejects the call unchanged, and nothing is sent",
    SLOW,
    async () => {
      // As the README says: a built-in codec's refusal, or a user codec's return of something
      // other than bytes, is a TypeError; the user's own error comes through as it was thrown.
      const mine = new Error("my encode failed");
      const values = {
        name: "mine",
        encode: (v: string): Uint8Array => {
          if (v === "bad") throw mine;
          if (v === "text") return "text" as unknown as Uint8Array;
          return new TextEncoder().encode(v);
        },
        decode: (b: Uint8Array): string => new TextDecoder().decode(b),
      };
      const m = await RedisSyncMap.open<string, string>({
        url: server!.url,
        name: uniqueName("codec"),
        values,
        connectTimeout: CONNECT_MS,
      });
      const before = getsAndSets(server!.port);
      try {
        for (
          const call of [
            () => m.store("k", "bad"),
            () => m.swap("k", "bad"),
            () => m.loadOrStore("k", "bad"),
            () => m.compareAndSwap("k", "x", "bad"),
            () => m.compute("k", () => "bad"),
            () => m.loadOrCompute("k", () => "bad"),
          ]
        ) {
          await assert.rejects(call(), (e: unknown) => e === mine);
        }
        await assert.rejects(
          m.store("k", "text"),
          (e: unknown) => e instanceof TypeError && /returned a string/.test(e.message),
        );
        const d = await RedisSyncMap.open<unknown, unknown>({
          url: server!.url,
          name: uniqueName("codec-auto"),
          connectTimeout: CONNECT_MS,
        });
        try {
          await assert.rejects(d.store("f", () => 1), TypeError);
          await assert.rejects(d.store({}, 1), TypeError);
        } finally {
          await d.close();
        }
        // compute and loadOrCompute read the key first (GETs); nothing was written.
        assert.equal(getsAndSets(server!.port) - before <= 2, true);
        assert.equal(await m.has("k"), false);
      } finally {
        await m.close();
      }
    },
  );

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
    "a command over client-query-buffer-limit is a RangeError, nothing is sent, and the calls beside it are unaffected",
    SLOW,
    async () => {
      // A legal config: the query buffer limit below the bulk limit. Redis closes the connection
      // of a client whose query buffer outgrows it, failing every call in flight on it (the
      // audit's querybuf.ts: a 1.5 MB value passed the bulk check, and the calls beside it
      // failed with "connection").
      const own = await RedisServer.start({
        config: ["proto-max-bulk-len 2mb", "client-query-buffer-limit 1mb"],
      });
      const limit = 1024 * 1024;
      try {
        const m = await RedisSyncMap.open<string, Uint8Array>({
          url: own.url,
          name: uniqueName("querybuf"),
          values: codecs.bytes,
          keys: codecs.string,
          timeout: 2000,
        });
        try {
          const small = new Uint8Array([1]);
          await m.store("small", small);
          const tooLarge = (e: unknown) =>
            e instanceof RangeError &&
            /was not sent: up to \d+ bytes of its command .* would sit in the server's query buffer at once/
              .test(e.message) &&
            e.message.includes(`more than the ${limit} bytes`) &&
            e.message.includes("(client-query-buffer-limit)");
          const big = new Uint8Array(1_500_000);
          const before = Array.from(
            { length: 10 },
            (_, i) => settled(i % 2 ? m.load("small") : m.store(`s${i}`, small)),
          );
          const refused = settled(m.store("big", big));
          const after = Array.from(
            { length: 10 },
            (_, i) => settled(i % 2 ? m.load("small") : m.store(`t${i}`, small)),
          );
          const outcome = await refused;
          assert.ok(tooLarge(outcome.error), String(outcome.error));
          for (const other of await Promise.all([...before, ...after])) {
            assert.ok(other.ok, String(other.error));
          }
          // Two values each under the limit, together over it: the server reads each into a
          // buffer of its own (helper-190: refused before, though Redis takes them).
          const half = new Uint8Array(600_000);
          await m.store("half", half);
          const other = new Uint8Array(600_000).fill(7);
          assert.equal(await m.compareAndSwap("half", half, other), true);
          assert.deepEqual(await m.load("half"), other);
          await assert.rejects(m.compute("big", () => big), tooLarge);
          await assert.rejects(m.loadOrStore("big", big), tooLarge);
          assert.equal(await m.has("big"), false);
          assert.deepEqual(await m.load("small"), small);
          // Under the limit, with room for the framing, a long value goes through.
          const fits = new Uint8Array(limit - 1000);
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
    "the bulk limit is read at open, and is Redis's default where CONFIG is refused; a server refusing INFO is checked through HELLO",
    SLOW,
    async () => {
      // A user without @dangerous may run neither CONFIG nor INFO (helper-105: open failed).
      const refusing = await RedisServer.start({
        config: ['rename-command CONFIG ""', 'rename-command INFO ""', "proto-max-bulk-len 2mb"],
      });
      const options = { timeout: 2000, connectTimeout: 2000, maxReconnectDelay: 100, label: "t" };
      try {
        const told = await Connection.open({ url: server!.url, ...options });
        const refused = await Connection.open({ url: refusing.url, ...options });
        try {
          assert.equal(told.maxBulk, DEFAULT_MAX_BULK);
          assert.equal(refused.maxBulk, DEFAULT_MAX_BULK);
          assert.equal(told.maxQuery, DEFAULT_MAX_QUERY);
          assert.equal(refused.maxQuery, DEFAULT_MAX_QUERY);
        } finally {
          await told.close();
          await refused.close();
        }
        await serves({ url: refusing.url, name: "hello", timeout: 2000, connectTimeout: 2000 });
        await server!.command("CONFIG", "SET", "proto-max-bulk-len", "3mb");
        await server!.command("CONFIG", "SET", "client-query-buffer-limit", "2mb");
        const lowered = await Connection.open({ url: server!.url, ...options });
        await lowered.close();
        assert.equal(lowered.maxBulk, 3 * 1024 * 1024);
        assert.equal(lowered.maxQuery, 2 * 1024 * 1024);
      } finally {
        await server!.command("CONFIG", "SET", "proto-max-bulk-len", String(DEFAULT_MAX_BULK));
        await server!.command(
          "CONFIG",
          "SET",
          "client-query-buffer-limit",
          String(DEFAULT_MAX_QUERY),
        );
        refusing.stop();
      }
    },
  );

  test(
    "a refused setup (wrong password, none, a database out of range) fails open at once",
    SLOW,
    async () => {
      // helper-105: each was retried until connectTimeout, then reported.
      const own = await RedisServer.start({ config: ["requirepass s3cret"] });
      const connectTimeout = 30_000;
      try {
        const cases: [string, RegExp][] = [
          [own.url.replace("redis://", "redis://:wrong@"), /WRONGPASS/],
          [own.url, /NOAUTH/],
          [own.url.replace("redis://", "redis://:s3cret@") + "/99", /DB index is out of range/],
        ];
        for (const [url, said] of cases) {
          const began = performance.now();
          await assert.rejects(
            RedisSyncMap.open({ url, name: "m", connectTimeout }),
            (e: unknown) =>
              e instanceof RedisSyncMapError && e.code === "connection" && said.test(e.message) &&
              !e.message.includes("s3cret"),
          );
          const took = performance.now() - began;
          assert.ok(took < connectTimeout / 2, `${said}: open took ${Math.round(took)} ms`);
        }
        await serves({
          url: own.url.replace("redis://", "redis://:s3cret@"),
          name: "m",
          connectTimeout,
        });
      } finally {
        own.stop();
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

  test(
    "close() lets the calls in flight finish, with the commands they send after it",
    SLOW,
    async () => {
      const name = uniqueName("drain");
      const options = { url: server!.url, scanCount: 10, connectTimeout: CONNECT_MS };
      const m = await RedisSyncMap.open<string | number, number>({ ...options, name });
      const other = await RedisSyncMap.open<number, number>({
        ...options,
        name: uniqueName("drainclear"),
      });
      const check = await RedisSyncMap.open<string | number, number>({ ...options, name });
      try {
        const keys = Array.from({ length: 50 }, (_, i) => i);
        await Promise.all(keys.map((i) => m.store(i, i)));
        await Promise.all(keys.map((i) => other.store(i, i)));
        // compareAndSwap's EVALSHA finds no script: its EVAL goes out after close().
        await server!.command("SCRIPT", "FLUSH");
        const visited = new Set<unknown>();
        const calls = Promise.allSettled([
          // Several SCAN batches, and a callback that waits for a timer at every key.
          m.range(async (key) => {
            visited.add(key);
            await sleep(1);
          }),
          m.size(),
          m.compareAndSwap(0, 0, 100),
          m.compute("c", async () => {
            await sleep(10);
            return 1;
          }),
          // Its callback's own call, made after close(), is part of it.
          m.loadOrCompute("d", async () => {
            await sleep(10);
            return (await m.load(1))! + 1;
          }),
          other.clear(),
        ]);
        const closing = Promise.all([m.close(), other.close()]);
        const outcomes = await calls;
        await closing;
        for (const [i, o] of outcomes.entries()) {
          assert.equal(
            o.status,
            "fulfilled",
            `call ${i}: ${String((o as PromiseRejectedResult).reason)}`,
          );
        }
        const values = outcomes.map((o) => (o as PromiseFulfilledResult<unknown>).value);
        assert.ok(keys.every((k) => visited.has(k)), `range visited ${visited.size} keys`);
        assert.ok((values[1] as number) >= keys.length, `size ${values[1]}`);
        assert.deepEqual(values.slice(2), [true, [1, true], [2, false], undefined]);
        assert.equal(await check.load(0), 100);
        assert.equal(await check.load("c"), 1);
        assert.equal(await check.load("d"), 2);
        await assert.rejects(
          m.load(0),
          (e: unknown) => e instanceof RedisSyncMapError && e.code === "closed",
        );
        const cleared = await RedisSyncMap.open({ ...options, name: other.name });
        assert.equal(await cleared.size(), 0, "clear went on to the end");
        await cleared.close();
      } finally {
        await check.clear();
        await Promise.all([m.close(), other.close(), check.close()]);
      }
    },
  );

  test(
    "close() called from a callback does not wait for the call the callback is part of",
    SLOW,
    async () => {
      const options = { url: server!.url, scanCount: 10, connectTimeout: CONNECT_MS };
      const open = <K, V>() =>
        RedisSyncMap.open<K, V>({ ...options, name: uniqueName("closeinside") });
      const ranging = await open<number, number>();
      const computing = await open<string, number>();
      const waiting = await open<string, number>();
      const admin = await RedisSyncMap.open({ ...options, name: ranging.name });
      try {
        await Promise.all(Array.from({ length: 50 }, (_, i) => ranging.store(i, i)));
        let closes = 0;
        // The range's later batches, and compute's write, come after the close: refused.
        const outcome = await deadline(
          settled(ranging.range(async () => {
            if (closes++ === 0) await ranging.close();
          })),
          10_000,
          "range",
        );
        const computed = await deadline(
          settled(computing.compute("k", async () => {
            await computing.close();
            return 1;
          })),
          10_000,
          "compute",
        );
        // A loadOrCompute of the same key waits for the one whose callback closes: close()
        // must not wait for it (it waited, through it, for itself).
        const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
        const first = settled(waiting.loadOrCompute("k", async () => {
          await pause(60); // the second call starts waiting meanwhile
          await waiting.close();
          return 1;
        }));
        await pause(10);
        const second = settled(waiting.loadOrCompute("k", () => 2));
        await deadline(first, 10_000, "loadOrCompute whose callback closes");
        await deadline(second, 10_000, "loadOrCompute waiting for it");
        for (const [op, o] of [["range", outcome], ["compute", computed]] as const) {
          const error = o.error as RedisSyncMapError;
          assert.ok(error instanceof RedisSyncMapError, `${op}: ${String(o.error ?? o.value)}`);
          assert.equal(error.code, "closed", error.message);
          assert.equal(error.operation, op);
        }
      } finally {
        await admin.clear();
        // Closed already, unless the test failed first: bounded, should a close hang.
        await deadline(
          Promise.allSettled([ranging, computing, waiting, admin].map((m) => m.close())),
          10_000,
          "close",
        );
      }
    },
  );

  test("a clear that fails after deleting keys says it may have taken effect", SLOW, async () => {
    const m = await RedisSyncMap.open<number, number>({
      url: server!.url,
      name: uniqueName("clearfail"),
      scanCount: 10,
      connectTimeout: CONNECT_MS,
    });
    try {
      await Promise.all(Array.from({ length: 50 }, (_, i) => m.store(i, i)));
      // The SCAN after the first batch that holds keys of the map (clear unlinks them before
      // it reads that SCAN's reply) gets a cursor the server never gave, and an error.
      let found = false;
      let refused = false;
      await withMasters((node) => ({
        address: node.address,
        send: async (op, args) => {
          if (args[0] !== "SCAN") return node.send(op, args);
          if (found && !refused) {
            refused = true;
            return node.send(op, ["SCAN", "no-cursor", ...args.slice(2)]);
          }
          const reply = await node.send(op, args);
          if (scanned(reply).length !== 0) found = true;
          return reply;
        },
      }), async () => {
        await assert.rejects(m.clear(), (e: unknown) => {
          assert.ok(e instanceof RedisSyncMapError, String(e));
          assert.equal(e.code, "server", e.message);
          assert.equal(e.operation, "clear");
          assert.equal(e.maybeApplied, true, e.message);
          assert.match(e.message, /invalid cursor.*; clear had deleted keys of the map before$/);
          return true;
        });
      });
      assert.ok(refused);
      const left = await m.size();
      assert.ok(left > 0 && left < 50, `${left} keys left`);
    } finally {
      await m.clear();
      await m.close();
    }
  });

  test("range passes over a key deleted between its SCAN and its read", SLOW, async () => {
    const m = await RedisSyncMap.open<number, number>({
      url: server!.url,
      name: uniqueName("gone"),
      scanCount: 10,
      connectTimeout: CONNECT_MS,
    });
    try {
      await Promise.all(Array.from({ length: 20 }, (_, i) => m.store(i, i)));
      let gone: string | undefined;
      let visited = 0;
      await withMasters((node) => ({
        address: node.address,
        send: async (op, args) => {
          const reply = await node.send(op, args);
          // Deleted before the range reads its value: MGET and then GET find nothing.
          if (args[0] === "SCAN" && gone === undefined && scanned(reply).length !== 0) {
            gone = scanned(reply)[0].toString("latin1");
            await server!.command("DEL", gone);
          }
          return reply;
        },
      }), () => m.range(() => void visited++));
      assert.ok(gone !== undefined);
      assert.equal(visited, 19);
    } finally {
      await m.clear();
      await m.close();
    }
  });
});
