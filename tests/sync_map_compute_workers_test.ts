// Copyright the shmap authors. MIT license.
//
// SyncMap.loadOrCompute and compute across workers, on real shared memory: fn runs exactly
// once per key while four workers race for the same keys; no increment is lost through
// compute; a worker whose fn throws, or that is terminated inside fn, hands the key to a
// waiting worker, and the waiters neither hang nor hold up verify(); a dead worker's claim
// is reclaimed.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { SyncMap } from "../mod.ts";
import { GONE, stateOf } from "../src/_engine/census.ts";
import { type ComputeJob, type ComputeReply, CTRL, raise } from "./fixtures/compute_protocol.ts";
import { sleep, until } from "./fixtures/harness.ts";
import { ReplyQueue } from "./fixtures/reply_queue.ts";
import { spawnWorker, type TestWorker } from "./fixtures/spawn.ts";

const TEST = { timeout: 120_000 };
const WORKER_URL = new URL("./fixtures/compute_worker.ts", import.meta.url);

type Map_ = SyncMap<number, number | string>;

/** A compute_worker.ts worker and the replies it sent, taken in order. */
class Computer {
  readonly worker: TestWorker;
  threadId = -1;
  #replies = new ReplyQueue<ComputeReply>();

  constructor(map: Map_) {
    this.worker = spawnWorker(
      WORKER_URL,
      { map },
      this.#replies.listeners((error) => ({ type: "error", message: error.message })),
    );
  }

  /** The next reply, which must be of `type`. */
  async next<T extends ComputeReply["type"]>(
    type: T,
    ms = 60_000,
  ): Promise<Extract<ComputeReply, { type: T }>> {
    const m = await this.#replies.take(ms, type);
    if (m.type !== type) {
      throw new Error(`worker sent ${m.type} (${JSON.stringify(m)}), expected ${type}`);
    }
    return m as Extract<ComputeReply, { type: T }>;
  }

  /** Whether a reply is waiting to be taken. */
  get replied(): boolean {
    return this.#replies.queued;
  }

  async start(): Promise<this> {
    this.threadId = (await this.next("ready")).threadId;
    return this;
  }

  run(job: ComputeJob): void {
    this.worker.postMessage(job);
  }

  /** Terminates the worker and waits until its end is recorded (the adapters record it). */
  async kill(): Promise<void> {
    const stopped = this.worker.stopped(0);
    this.worker.terminate();
    await stopped;
    await until(() => stateOf(this.threadId) === GONE, `thread ${this.threadId} is gone`, 20_000);
  }
}

const control = (words: number) => new Int32Array(new SharedArrayBuffer(words * 4));

/**
 * Starts 1 + `waiters` workers on `map`: one claims `key` and hangs inside fn, the others (ids
 * 1, 2, ...) wait for that key. Once they all wait (asserted), runs `body` with them, then lets
 * a hanging fn return (a Deno worker that terminate() could not stop, because it waits inside
 * fn, returns then, and throws TerminatedError at its next step instead of writing) and
 * terminates them all, whatever happened.
 */
async function withHangingClaim(
  map: Map_,
  ctrl: Int32Array<SharedArrayBuffer>,
  key: number,
  waiters: number,
  body: (hanging: Computer, waiters: Computer[]) => Promise<void>,
): Promise<void> {
  const [hanging, ...rest] = await Promise.all(
    Array.from({ length: 1 + waiters }, () => new Computer(map).start()),
  );
  try {
    hanging.run({ job: "hang", ctrl, key });
    await hanging.next("computing");
    rest.forEach((w, i) => w.run({ job: "waiter", ctrl, key, id: i + 1 }));
    for (const w of rest) await w.next("waiting");
    if (waiters > 0) {
      await sleep(150);
      assert.equal(rest.some((w) => w.replied), false, "the waiters wait");
    }
    await body(hanging, rest);
  } finally {
    raise(ctrl, CTRL.RELEASE);
    for (const w of [hanging, ...rest]) w.worker.terminate();
  }
}

/**
 * Asserts that exactly one of the two waiters computed `key` (`what` says how), that both got
 * its value, one as computed and one as loaded, and that `map` is consistent.
 */
function checkOneWaiterComputed(
  map: Map_,
  ctrl: Int32Array,
  key: number,
  results: readonly Extract<ComputeReply, { type: "result" }>[],
  what: string,
): void {
  assert.equal(Atomics.load(ctrl, CTRL.WAITER_CALLS), 1, what);
  const value = map.load(key);
  assert.match(String(value), /^computed by waiter [12]$/);
  assert.deepEqual(results.map((r) => r.value), [value, value]);
  assert.deepEqual(results.map((r) => r.loaded).sort(), [false, true]);
  map.verify();
}

describe("SyncMap.loadOrCompute across workers", () => {
  test("fn runs exactly once per key while 4 workers race for the same keys", TEST, async () => {
    const map: Map_ = new SyncMap();
    const keys = 1500;
    const ctrl = control(CTRL.CALLS + keys);
    const workers = await Promise.all(
      Array.from({ length: 4 }, () => new Computer(map).start()),
    );
    try {
      workers.forEach((w, id) => w.run({ job: "once", ctrl, id, keys, spinUs: 20 }));
      raise(ctrl, CTRL.GO);
      const reports = await Promise.all(workers.map((w) => w.next("once")));
      const calls = Array.from(ctrl.subarray(CTRL.CALLS, CTRL.CALLS + keys));
      const twice = calls.flatMap((n, k) => (n === 1 ? [] : [`key ${k}: ${n} calls`]));
      assert.deepEqual(twice, [], "fn ran once per key");
      const computedBy = new Map<number, number>();
      for (const [id, report] of reports.entries()) {
        for (const k of report.computed) {
          assert.ok(
            !computedBy.has(k),
            `key ${k} computed by workers ${computedBy.get(k)} and ${id}`,
          );
          computedBy.set(k, id);
        }
      }
      assert.equal(computedBy.size, keys, "every key computed by exactly one worker");
      for (let k = 0; k < keys; k++) {
        const value = map.load(k);
        assert.equal(value, computedBy.get(k)! * 1e6 + k);
        for (const report of reports) assert.equal(report.values[k], value, `key ${k}`);
      }
      // How the keys were shared out (printed only: it depends on scheduling).
      const shares = reports.map((r) => r.computed.length);
      assert.equal(map.size, keys);
      map.verify();
      console.log(`keys computed by each worker: ${shares.join(", ")}`);
    } finally {
      for (const w of workers) w.worker.terminate();
    }
  });

  test("a worker whose fn throws hands the key to a waiting worker", TEST, async () => {
    const map: Map_ = new SyncMap();
    const ctrl = control(CTRL.CALLS);
    await withHangingClaim(map, ctrl, 7, 2, async (hanging, [a, b]) => {
      Atomics.store(ctrl, CTRL.THROW, 1);
      raise(ctrl, CTRL.RELEASE);
      const thrown = await hanging.next("error");
      assert.match(thrown.message, /fn gave up/);
      const results = [await a.next("result"), await b.next("result")];
      checkOneWaiterComputed(map, ctrl, 7, results, "one waiter computed");
    });
  });

  test(
    "a worker terminated inside fn: the waiters do not hang, and one of them computes",
    TEST,
    async () => {
      const map: Map_ = new SyncMap();
      const ctrl = control(CTRL.CALLS);
      await withHangingClaim(map, ctrl, 3, 2, async (hanging, [a, b]) => {
        // Meanwhile the key is absent, and the map consistent: a claim of a live thread is
        // fine, and neither the computing worker nor the waiters keep verify() waiting.
        assert.equal(map.has(3), false);
        const started = performance.now();
        map.verify();
        assert.ok(performance.now() - started < 2000, "verify() did not wait for the workers");
        await hanging.kill();
        const results = await Promise.all([a.next("result", 20_000), b.next("result", 20_000)]);
        checkOneWaiterComputed(map, ctrl, 3, results, "one waiter took over and computed");
      });
    },
  );

  test("a dead worker's claim nobody waited for is reclaimed", TEST, async () => {
    const map: Map_ = new SyncMap();
    const ctrl = control(CTRL.CALLS);
    await withHangingClaim(map, ctrl, 5, 0, async (hanging) => {
      await hanging.kill();
      // verify() gives its claim up: the worker died inside fn, offline (fn runs holding
      // nothing), so no sweep was due for it.
      map.verify();
      assert.equal(map.has(5), false);
      assert.deepEqual(map.loadOrCompute(5, () => "computed after the death"), [
        "computed after the death",
        false,
      ]);
      map.verify();
    });
  });

  test("a later loadOrCompute takes over a dead worker's claim", TEST, async () => {
    const map: Map_ = new SyncMap();
    const ctrl = control(CTRL.CALLS);
    await withHangingClaim(map, ctrl, 6, 0, async (hanging) => {
      await hanging.kill();
      assert.deepEqual(map.loadOrCompute(6, () => "taken over"), ["taken over", false]);
      map.verify();
    });
  });
});

describe("SyncMap.compute across workers", () => {
  test("no increment is lost: 4 workers x 5,000 increments of one key", TEST, async () => {
    const map: Map_ = new SyncMap();
    const n = 5000;
    const ctrl = control(CTRL.CALLS);
    const workers = await Promise.all(
      Array.from({ length: 4 }, () => new Computer(map).start()),
    );
    try {
      for (const w of workers) w.run({ job: "counter", ctrl, n });
      raise(ctrl, CTRL.GO);
      const reports = await Promise.all(workers.map((w) => w.next("counter")));
      const reruns = reports.reduce((sum, r) => sum + r.reruns, 0);
      assert.equal(map.load(-1), 4 * n, `after ${reruns} reruns of fn`);
      assert.equal(map.size, 1);
      map.verify();
      console.log(`compute reran fn ${reruns} times for ${4 * n} increments`);
    } finally {
      for (const w of workers) w.worker.terminate();
    }
  });
});
