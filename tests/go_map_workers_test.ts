// Copyright the shmap authors. MIT license.
// GoMap across real workers on real shared memory, through the runtime's worker adapter
// (deno.ts under Deno, bun.ts under Bun, node.ts under Node): many readers agree with the main thread; concurrent
// writes, and reads overlapping a write, are reported as ConcurrentMapWriteError and never as
// wrong data; writes serialized by a Mutex or an RWMutex lose nothing. Each test terminates its
// workers and fails instead of hanging; every worker loop is bounded (see go_map_worker.ts).

import { test } from "node:test";
import assert from "node:assert/strict";
import { GoMap } from "../src/maps/go_map.ts";
import { Mutex } from "../src/sync/mutex.ts";
import { RWMutex } from "../src/sync/rw_mutex.ts";
import type { Shareable } from "../src/workers/_share.ts";
import { Mailbox } from "./fixtures/adapter_harness.ts";
import { spawnWorker, type TestWorker } from "./fixtures/spawn.ts";
import { sleep, until, within } from "./fixtures/harness.ts";
import {
  type CountResult,
  CTRL_WORDS,
  digest,
  ERRORS,
  fill,
  GO,
  isStampOf,
  type Key,
  type ReadResult,
  READY,
  type Reply,
  stamp,
  STOP,
  type Task,
  type WriteResult,
} from "./fixtures/go_map_worker.ts";

const WORKER = new URL("./fixtures/go_map_worker.ts", import.meta.url);
const TIMEOUT_MS = 20_000;
/** How long the racing tests run at most, waiting for a ConcurrentMapWriteError. */
const RACE_MS = 6_000;

/** A worker running go_map_worker.ts on the shared structures. */
class MapWorker {
  readonly worker: TestWorker;
  readonly #box = new Mailbox();

  constructor(values: Readonly<Record<string, Shareable>>) {
    this.worker = spawnWorker(WORKER, values, { message: this.#box.put, error: this.#box.fail });
  }

  /** Runs `task` in the worker and resolves with its result. */
  async run<T>(task: Task): Promise<T> {
    this.worker.postMessage(task);
    const reply = (await this.#box.next(TIMEOUT_MS)) as Reply;
    if (!reply.ok) throw new Error(`worker failed: ${reply.error}`);
    return reply.result as T;
  }
}

/** Starts `n` workers sharing `values`, runs `body`, and terminates them whatever happens. */
function withWorkers(
  n: number,
  values: Readonly<Record<string, Shareable>>,
  body: (workers: MapWorker[]) => Promise<void>,
): Promise<void> {
  const workers: MapWorker[] = [];
  return within(TIMEOUT_MS, async () => {
    for (let i = 0; i < n; i++) workers.push(new MapWorker(values));
    await body(workers);
  }, () => workers.forEach((w) => w.worker.terminate()));
}

function newCtrl(): Int32Array<SharedArrayBuffer> {
  return new Int32Array(new SharedArrayBuffer(CTRL_WORDS * 4));
}

/** Waits until `n` workers are at the start line, then lets them all go at once. */
async function startTogether(
  ctrl: Int32Array,
  n: number,
  runs: readonly Promise<unknown>[],
): Promise<void> {
  try {
    await until(
      () => Atomics.load(ctrl, READY) === n,
      `${n} workers are at the start line`,
      10_000,
    );
  } catch (error) {
    // The test fails with this error; the runs, rejected when their workers are stopped, are
    // observed here so that their rejections do not add failures of their own.
    for (const run of runs) run.catch(() => {});
    throw error;
  }
  Atomics.store(ctrl, GO, 1);
  Atomics.notify(ctrl, GO);
}

/**
 * Lets racing workers run until one of them has counted a ConcurrentMapWriteError (and for at
 * least `minMs`), or for RACE_MS, then tells them to stop.
 */
async function raceUntilError(ctrl: Int32Array, minMs: number): Promise<void> {
  const start = performance.now();
  while (performance.now() - start < RACE_MS) {
    if (Atomics.load(ctrl, ERRORS) > 0 && performance.now() - start >= minMs) break;
    await sleep(5);
  }
  Atomics.store(ctrl, STOP, 1);
}

/** Checks that iteration yields each key once and as many keys as size, all values stamped. */
function checkIteration(map: GoMap<string, unknown>): void {
  const seen = new Set<string>();
  let wrong = 0;
  for (const [key, value] of map) {
    assert.ok(!seen.has(key), `iteration yielded ${key} twice`);
    seen.add(key);
    if (!isStampOf(value, key)) wrong++;
  }
  assert.equal(seen.size, map.size, "iteration count differs from size");
  assert.equal(wrong, 0, "values that are not their key's stamp");
}

test("GoMap: four workers reading one map all see what the main thread sees", async () => {
  const n = 10_000;
  const map = new GoMap<Key, unknown>();
  fill(map, n);
  const expected = digest(map, n);
  assert.equal(expected.size, n + 2);
  assert.equal(expected.iterated, n + 2);
  assert.equal(expected.distinct, n + 2);
  assert.equal(expected.has, n + 2);
  await withWorkers(4, { map }, async (workers) => {
    const ctrl = newCtrl();
    const results = workers.map((w) => w.run({ op: "digest", ctrl, n, rounds: 2 }));
    await startTogether(ctrl, workers.length, results);
    for (const result of await Promise.all(results)) assert.deepEqual(result, expected);
  });
  // Reading changed nothing.
  assert.deepEqual(digest(map, n), expected);
});

test("GoMap: two workers writing at once get ConcurrentMapWriteError; the map stays consistent", async () => {
  const keys = 20_000;
  const map = new GoMap<string, unknown>();
  await withWorkers(2, { map }, async (workers) => {
    const ctrl = newCtrl();
    const prefixes = ["a:", "b:"];
    const results = workers.map((w, i) =>
      w.run<WriteResult>({ op: "write", ctrl, prefix: prefixes[i], keys, ms: RACE_MS + 4_000 })
    );
    await startTogether(ctrl, 2, results);
    await raceUntilError(ctrl, 100);
    const [a, b] = await Promise.all(results);
    assert.ok(a.ops > 0 && b.ops > 0, "both workers wrote");
    assert.ok(
      a.errors + b.errors >= 1,
      `no ConcurrentMapWriteError in ${a.ops} + ${b.ops} overlapping writes`,
    );
    // Each write that threw had no effect, and each that returned took: every key holds the
    // stamp of its last successful write, and keys never successfully written are absent.
    let present = 0;
    let wrong = 0;
    let sample = "";
    for (const [prefix, result] of [["a:", a], ["b:", b]] as const) {
      for (let j = 0; j < keys; j++) {
        const key = `${prefix}${j}`;
        const n = result.lastOk[j];
        const got = map.get(key);
        const ok = n < 0 ? !map.has(key) : isStampOf(got, key) && (got as { n: number }).n === n;
        if (n >= 0) present++;
        if (!ok) {
          wrong++;
          sample ||= `${key}: last ok write ${n}, map has ${JSON.stringify(got)}`;
        }
      }
    }
    assert.equal(wrong, 0, `keys not holding their last successful write, e.g. ${sample}`);
    assert.equal(map.size, present);
    checkIteration(map);
  });
});

test("GoMap: a reader overlapping a writer gets ConcurrentMapWriteError, never a wrong value", async () => {
  const keys = 2_000;
  const map = new GoMap<string, unknown>();
  for (let j = 0; j < keys; j++) map.set(`r:${j}`, stamp(`r:${j}`, 0));
  await withWorkers(2, { map }, async ([reader, writer]) => {
    const ctrl = newCtrl();
    const ms = RACE_MS + 4_000;
    const read = reader.run<ReadResult>({ op: "read", ctrl, prefix: "r:", keys, ms });
    const write = writer.run<WriteResult>({ op: "write", ctrl, prefix: "r:", keys, ms });
    await startTogether(ctrl, 2, [read, write]);
    // Only the reader can count errors here: there is one writer.
    await raceUntilError(ctrl, 100);
    const [r, w] = await Promise.all([read, write]);
    assert.equal(r.bad, 0, `wrong values read: ${r.badSample}`);
    assert.equal(r.missing, 0, "a key present all along was read as missing");
    assert.equal(w.errors, 0, "a lone writer got ConcurrentMapWriteError");
    assert.ok(w.ops > 0, "the writer wrote");
    assert.ok(r.errors >= 1, `no ConcurrentMapWriteError in ${r.ops} reads during ${w.ops} writes`);
    for (let j = 0; j < keys; j++) {
      const key = `r:${j}`;
      const n = w.lastOk[j] < 0 ? 0 : w.lastOk[j];
      assert.deepEqual(map.get(key), stamp(key, n));
    }
    assert.equal(map.size, keys);
    checkIteration(map);
  });
});

for (const lock of ["mu", "rw"] as const) {
  const name = lock === "mu" ? "Mutex" : "RWMutex";
  test(`GoMap: counters incremented under a ${name} by four workers add up`, async () => {
    const workers = 4;
    const iterations = 1_000;
    const keys = ["c0", "c1", "c2", "c3"];
    const map = new GoMap<string, number>();
    for (const k of keys) map.set(k, 0);
    const values: Record<string, Shareable> = lock === "mu"
      ? { map, mu: new Mutex() }
      : { map, rw: new RWMutex() };
    await withWorkers(workers, values, async (ws) => {
      const ctrl = newCtrl();
      const results = ws.map((w) =>
        w.run<CountResult>({ op: "count", ctrl, lock, keys, iterations, readEvery: 7 })
      );
      await startTogether(ctrl, workers, results);
      for (const r of await Promise.all(results)) {
        assert.deepEqual(r, { done: iterations, concurrentErrors: 0, readErrors: 0 });
      }
    });
    for (const k of keys) assert.equal(map.get(k), (workers * iterations) / keys.length, k);
    let sum = 0;
    for (const v of map.values()) sum += v;
    assert.equal(sum, workers * iterations);
  });
}
