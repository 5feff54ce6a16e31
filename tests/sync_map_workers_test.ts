// Copyright the shmap authors. MIT license.
//
// SyncMap across real workers: Go's TestConcurrentRange, torn reads under heavy overwriting
// (the test that catches use-after-free in memory reclamation), reclamation with idle, busy and
// vanished workers, and the memory-model promise that a store another worker's load observes
// happens-before that load returns. Linearizability has its own file.
//
// The workers are tracked (withTrackedWorkers), so that one a failed test terminates in the middle
// of a job leaves no lock of its map held for good, except in the tests of what an end nobody
// learns leaves behind (withWorkers): a vanished worker, workers terminated as their task ends,
// participants after close and release.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { SyncMap, threadGone } from "../mod.ts";
import { attachOwnSeat, shareSyncMap } from "../src/maps/sync_map.ts";
import {
  checkValue,
  CTRL_WORDS,
  DONE,
  FAILED,
  makeValue,
  type MapWorker,
  PARK,
  PARKED,
  PROGRESS,
  type RangeWriterResult,
  READY,
  rng,
  ROUND,
  runEach,
  shared,
  signal,
  sleep,
  type SpinLoadResult,
  startTogether,
  STOP,
  tornKey,
  type TornReaderResult,
  TornTally,
  type TornWriterResult,
  until,
  withTrackedWorkers,
  withWorkers,
  WORKER_TEST,
} from "./fixtures/sync_map_harness.ts";

/** Whether a worker's job failed (its reply, with the error, is waiting). */
function failed(ctrl: Int32Array): boolean {
  return Atomics.load(ctrl, FAILED) !== 0;
}

/** Sum of the progress counters of workers `ids`. */
function progress(ctrl: Int32Array, ids: number[]): number {
  return ids.reduce((sum, id) => sum + Atomics.load(ctrl, PROGRESS + id), 0);
}

// ---- Concurrent range -------------------------------------------------------------------------

const RANGE_KEYS = 128;
const RANGE_WRITERS = 3;
const RANGES = 400;

/**
 * Go's TestConcurrentRange: writers store key * n for every key 1..N, for n = 1, 2, ..., while
 * the main thread iterates. Every value seen must be a multiple of its key, every key is seen
 * at most once, and every key 1..N, present throughout, is seen. With `churn`, the writers also
 * add and delete keys of their own, so that the tables are rebuilt and promoted meanwhile.
 */
async function concurrentRange(how: "range" | "iterator", churn: boolean): Promise<void> {
  const map = new SyncMap<number, number>();
  for (let k = 1; k <= RANGE_KEYS; k++) map.store(k, k);
  const ctrl = shared(CTRL_WORDS);
  const ids = Array.from({ length: RANGE_WRITERS }, (_, i) => i + 1);
  const problems: string[] = [];
  let ranges = 0;
  let seenTotal = 0;
  let during = 0;
  const results = await withTrackedWorkers(RANGE_WRITERS, async (workers) => {
    const runs = runEach<RangeWriterResult>(workers, map.handle, ctrl, () => ({
      job: "rangeWriter",
      keys: RANGE_KEYS,
      churn,
      maxMs: 20_000,
    }));
    await startTogether(ctrl, RANGE_WRITERS);
    await until(() => ids.every((id) => Atomics.load(ctrl, PROGRESS + id) > 0), "writers run");
    const before = progress(ctrl, ids);
    const deadline = performance.now() + 8_000;
    // At least RANGES iterations, and more until the writers have made progress meanwhile:
    // on a loaded machine RANGES fast iterations can all run while no writer is scheduled.
    const more = (): boolean => ranges < RANGES || progress(ctrl, ids) === before;
    for (; more() && performance.now() < deadline && !failed(ctrl); ranges++) {
      const seen = new Set<number>();
      const visit = (k: number, v: number) => {
        seenTotal++;
        if (seen.has(k)) problems.push(`range ${ranges}: key ${k} seen twice`);
        seen.add(k);
        const own = k >= 10_000 && k < 10_000 + 100 * (RANGE_WRITERS + 1) && k % 100 < 40;
        if (!(k >= 1 && k <= RANGE_KEYS) && !(churn && own)) {
          problems.push(`range ${ranges}: unexpected key ${k}`);
        }
        if (typeof v !== "number" || v % k !== 0 || v === 0) {
          problems.push(`range ${ranges}: key ${k} has value ${v}, not a multiple of it`);
        }
      };
      if (how === "range") {
        map.range((k, v) => {
          visit(k, v);
        });
      } else {
        for (const [k, v] of map) visit(k, v);
      }
      for (let k = 1; k <= RANGE_KEYS; k++) {
        if (!seen.has(k)) problems.push(`range ${ranges}: key ${k}, present throughout, missed`);
      }
      if (problems.length > 20) break;
    }
    during = progress(ctrl, ids) - before;
    signal(ctrl, STOP, 1);
    return await Promise.all(runs);
  });
  assert.equal(map.stats().participants, 1, "every worker closed its SyncMap");
  assert.deepEqual(problems.slice(0, 20), []);
  for (const r of results) assert.equal(r.bad, 0, r.firstBad);
  assert.ok(ranges >= 50, `only ${ranges} ranges ran`);
  assert.ok(seenTotal >= ranges * RANGE_KEYS);
  // The writers really ran while the main thread iterated.
  assert.ok(during > 0, "no writer made progress during the ranges");
  // After the writers stop, a last range sees each key's final value.
  const last = new Map(map);
  for (let k = 1; k <= RANGE_KEYS; k++) assert.equal(last.get(k)! % k, 0);
  console.log(
    `${how}${churn ? " with churn" : ""}: ${ranges} iterations over ${RANGE_KEYS} keys while ` +
      `${RANGE_WRITERS} writers made ${during} passes (${
        results.map((r) => r.rounds).join(", ")
      } in all)`,
  );
}

describe("SyncMap concurrent range (Go's TestConcurrentRange)", () => {
  test(
    "range sees every key once with a multiple of it while workers store",
    WORKER_TEST,
    async () => {
      await concurrentRange("range", false);
    },
  );
  test("[Symbol.iterator] does the same", WORKER_TEST, async () => {
    await concurrentRange("iterator", false);
  });
  test("range, while workers also add and delete keys of their own", WORKER_TEST, async () => {
    await concurrentRange("range", true);
  });
  test(
    "[Symbol.iterator], while workers also add and delete keys of their own",
    WORKER_TEST,
    async () => {
      await concurrentRange("iterator", true);
    },
  );
});

// ---- Torn reads -------------------------------------------------------------------------------

const TORN_KEYS = 8;
const TORN_TRANSIENT = 24;
const TORN_WRITERS = 2;
const TORN_READERS = 2;
/** Loads each reader does at least. */
const TORN_LOADS = 200_000;
/** Writes the writers do at least, between them: some 45 MiB of value records. */
const TORN_WRITES = 450_000;
/**
 * Most bytes in use at any time. Generous: a participant descheduled for a while holds back
 * what the others retire meanwhile. Without reclamation the run would use 45 MiB or more.
 */
const TORN_BOUND = 24 * 2 ** 20;
/**
 * How long the main thread waits for enough loads and writes. The run ends as soon as there are
 * enough (10-18 s on a quiet 2-core machine); the rest is room for a loaded one, so that the
 * floors above stay a statement about coverage, not about the machine's speed.
 */
const TORN_MS = 45_000;

test(
  `SyncMap: ${TORN_READERS} readers and the main thread never see a torn or reused value ` +
    `while ${TORN_WRITERS} writers overwrite`,
  { timeout: TORN_MS + 30_000 },
  async () => {
    const map = new SyncMap<string, unknown>();
    for (let k = 0; k < TORN_KEYS; k++) map.store(tornKey(k), makeValue(k, 8 * k));
    const initial = map.stats().bytesUsed;
    const ctrl = shared(CTRL_WORDS);
    const writerIds = [1, 2, 3].slice(0, TORN_WRITERS);
    const readerIds = [4, 5, 6].slice(0, TORN_READERS);
    let mainLoads = 0;
    const main = new TornTally("main");
    let maxBytes = initial;
    let samples = 0;
    const [writers, readers] = await withTrackedWorkers(
      TORN_WRITERS + TORN_READERS,
      async (workers) => {
        const torn = <R>(job: "tornWriter" | "tornReader", w: MapWorker, id: number) =>
          w.run<R>({
            job,
            handle: map.handle,
            ctrl,
            id,
            keys: TORN_KEYS,
            transient: TORN_TRANSIENT,
            maxMs: TORN_MS + 4_000,
          });
        const writerRuns = writerIds.map((id, i) =>
          torn<TornWriterResult>("tornWriter", workers[i], id)
        );
        const readerRuns = readerIds.map((id, i) =>
          torn<TornReaderResult>("tornReader", workers[TORN_WRITERS + i], id)
        );
        await startTogether(ctrl, TORN_WRITERS + TORN_READERS);
        // The main thread reads too, and watches memory, until everyone has done enough.
        const random = rng(7);
        const check = (k: number, v: unknown) => {
          if (v !== undefined) main.check(k, v);
        };
        const enough = () =>
          readerIds.every((id) => Atomics.load(ctrl, PROGRESS + id) >= TORN_LOADS) &&
          progress(ctrl, writerIds) >= TORN_WRITES;
        const deadline = performance.now() + TORN_MS;
        while (!enough() && performance.now() < deadline && !failed(ctrl)) {
          for (let i = 0; i < 512; i++) {
            const k = random() < 0.85
              ? Math.floor(random() * TORN_KEYS)
              : 1000 + Math.floor(random() * TORN_TRANSIENT);
            check(k, map.load(tornKey(k)));
          }
          mainLoads += 512;
          if (mainLoads % 8192 === 0) {
            samples++;
            maxBytes = Math.max(maxBytes, map.stats().bytesUsed);
            map.range((key, v) => check(Number(key.slice(9)), v));
          }
        }
        maxBytes = Math.max(maxBytes, map.stats().bytesUsed);
        signal(ctrl, STOP, 1);
        return [await Promise.all(writerRuns), await Promise.all(readerRuns)] as const;
      },
      TORN_MS + 15_000,
    );
    assert.equal(Atomics.load(ctrl, DONE), TORN_WRITERS);
    assert.equal(map.stats().participants, 1, "every worker closed its SyncMap");
    // Every value read back, by anyone, was whole and of its key.
    for (const r of readers) assert.equal(r.bad, 0, r.firstBad);
    for (const w of writers) assert.equal(w.bad, 0, w.firstBad);
    assert.equal(main.bad, 0, main.firstBad);
    // The map ends consistent: every key holds a well-formed value or none.
    for (let k = 0; k < TORN_KEYS; k++) {
      const v = map.load(tornKey(k));
      if (v !== undefined) assert.equal(checkValue(k, v), null);
    }
    const writes = writers.reduce((s, w) => s + w.writes, 0);
    const loads = readers.reduce((s, r) => s + r.loads, 0);
    // A few quiescent points of the last participant free what the others left behind.
    for (let i = 0; i < 1000; i++) map.load(tornKey(i % TORN_KEYS));
    const end = map.stats();
    console.log(
      `torn reads: ${writes} writes, ${loads} worker loads (${
        readers.map((r) => r.verified).join(" + ")
      } values verified, ${readers.map((r) => r.ranges).join(" + ")} ranges), main ${mainLoads} ` +
        `loads (${main.verified} verified); bytes in use: ${initial} at start, max ${maxBytes} ` +
        `in ${samples} samples, ${end.bytesUsed} at end`,
    );
    for (const r of readers) {
      assert.ok(r.loads >= TORN_LOADS, `a reader did only ${r.loads} loads`);
      assert.ok(r.verified >= r.loads / 2, "most loads found a value");
    }
    assert.ok(writes >= TORN_WRITES, `the writers did only ${writes} writes`);
    // Memory stayed bounded, and everything retired was freed in the end.
    assert.ok(maxBytes <= TORN_BOUND, `bytes in use reached ${maxBytes}`);
    assert.ok(end.bytesUsed <= initial + 2 ** 20, `bytes in use ended at ${end.bytesUsed}`);
  },
);

// ---- Memory with workers ----------------------------------------------------------------------

const MEMORY_KEYS = 1000;
const OVERWRITES = 1_000_000;
/** Overwriting a number value retires a 16-byte record; held back, 1M of them are 16 MB. */
const MEMORY_SLACK = 2 * 2 ** 20;

/**
 * Overwrites the keys `n` times from `i` = `from`, with `i + 0.5`: a record each (an integer
 * would be an immediate, which retires nothing). Returns the largest bytesUsed sampled on the
 * way.
 */
function overwrite(map: SyncMap<number, number>, n: number, from = 0): number {
  let max = 0;
  for (let i = from; i < from + n; i++) {
    map.store(i % MEMORY_KEYS, i + 0.5);
    if (i % 65_536 === 0) max = Math.max(max, map.stats().bytesUsed);
  }
  return Math.max(max, map.stats().bytesUsed);
}

function memoryMap(): SyncMap<number, number> {
  const map = new SyncMap<number, number>();
  for (let k = 0; k < MEMORY_KEYS; k++) map.store(k, k + 0.5);
  // Promote, so that overwrites go through the read table and retire a record each.
  for (let k = 0; k < MEMORY_KEYS; k++) map.load(k);
  overwrite(map, 10_000);
  return map;
}

describe("SyncMap memory with workers", () => {
  test("an attached worker that idles does not hold reclamation back", WORKER_TEST, async () => {
    const map = memoryMap();
    assert.equal(map.stats().participants, 1);
    await withTrackedWorkers(1, async ([w]) => {
      const r = await w.run<{ participants: number }>({
        job: "attachIdle",
        handle: map.handle,
        ops: 5000,
      });
      assert.equal(r.participants, 2);
      // The worker now awaits its next message: attached, idle, its task over.
      await sleep(20);
      assert.equal(map.stats().participants, 2);
      const initial = map.stats().bytesUsed;
      const max = overwrite(map, OVERWRITES);
      console.log(
        `idle worker: bytes in use ${initial} before ${OVERWRITES} overwrites, max ${max}`,
      );
      assert.ok(max <= initial + MEMORY_SLACK, `bytes in use grew from ${initial} to ${max}`);
      assert.equal(await w.run<boolean>({ job: "close" }), true);
      assert.equal(map.stats().participants, 1, "close gave the seat back");
    });
    assert.equal(map.size, MEMORY_KEYS);
  });

  test(
    "a vanished worker holds reclamation back until its share is released",
    WORKER_TEST,
    async () => {
      const map = memoryMap();
      const ctrl = shared(CTRL_WORDS);
      const { handle, release } = shareSyncMap(map as unknown as SyncMap<never, never>);
      assert.equal(map.stats().participants, 2, "the reserved share counts");
      try {
        await withWorkers(1, async ([w]) => {
          const run = w.run({
            job: "busyLoad",
            handle,
            ctrl,
            id: 1,
            keys: MEMORY_KEYS,
            maxMs: 60_000,
          });
          await until(() => Atomics.load(ctrl, PROGRESS + 1) > 0, "the worker loads");
          assert.equal(map.stats().participants, 2, "the worker attached to its share");
          // While it loads, announcing as it goes, memory is reclaimed. (In chunks, waiting for
          // the worker to move on after each: on a busy machine it may not get a core for a while,
          // and while it has none it rightly holds reclamation back.)
          const initial = map.stats().bytesUsed;
          const before = Atomics.load(ctrl, PROGRESS + 1);
          let busyMax = initial;
          for (let chunk = 0; chunk < 20; chunk++) {
            busyMax = Math.max(busyMax, overwrite(map, 10_000, chunk * 10_000));
            const seen = Atomics.load(ctrl, PROGRESS + 1);
            await until(() => Atomics.load(ctrl, PROGRESS + 1) >= seen + 2048, "the worker loads");
          }
          const busyLoads = Atomics.load(ctrl, PROGRESS + 1) - before;
          assert.ok(
            busyMax <= initial + MEMORY_SLACK,
            `bytes in use grew from ${initial} to ${busyMax} beside a busy worker`,
          );
          // Now it stops for good, online, mid-stream: a worker killed in its loop.
          signal(ctrl, STOP, 1);
          await until(() => Atomics.load(ctrl, PARKED) === 1, "the worker parks");
          w.terminate();
          await assert.rejects(run, /worker terminated/);
          assert.equal(map.stats().participants, 2, "a terminated worker's share stays taken");
          const held = overwrite(map, 200_000, 1_000_000);
          assert.ok(
            held >= busyMax + 200_000 * 16 * 0.9,
            `the vanished worker should hold back 200k records, yet bytes in use went from ` +
              `${busyMax} to ${held} only`,
          );
          release();
          assert.equal(map.stats().participants, 1, "release gave the seat back");
          overwrite(map, OVERWRITES, 2_000_000);
          // Overwrite a little more, so the last batch retired is also freed.
          const after = overwrite(map, 10_000, 3_000_000);
          console.log(
            `vanished worker: bytes in use ${initial} at start, max ${busyMax} beside the busy ` +
              `worker (${busyLoads} loads meanwhile), ${held} while it held reclamation back, ` +
              `${after} after its release and ${OVERWRITES} more overwrites`,
          );
          assert.ok(after < held, "nothing was freed after the release");
          assert.ok(
            after <= initial + MEMORY_SLACK + (held - initial) / 2,
            `bytes in use still ${after} after the release (held back: ${held}, start ${initial})`,
          );
        });
      } finally {
        // Deno's terminate() does not stop a worker blocked in Atomics.wait: let it return.
        signal(ctrl, PARK, 1);
        release();
      }
      assert.equal(map.size, MEMORY_KEYS);
      for (let k = 0; k < MEMORY_KEYS; k += 97) {
        assert.equal(Math.floor(map.load(k)!) % MEMORY_KEYS, k);
      }
    },
  );

  test("once a stalled participant moves on, what waited for it is freed", () => {
    const map = memoryMap();
    const other = attachOwnSeat<number, number>(map.handle);
    try {
      other.load(0); // online now, and silent while this thread overwrites: a stall
      let i = 0;
      for (; i < 100_000; i++) map.store(i % MEMORY_KEYS, i + 0.5); // records, as overwrite's
      const stalled = map.stats();
      assert.ok(stalled.retired >= 90_000, `${stalled.retired} retired blocks wait`);
      for (let j = 0; j < 300_000; j++, i++) {
        map.store(i % MEMORY_KEYS, i + 0.5);
        if (j % 8 === 0) { for (let l = 0; l < 8; l++) other.load(l); // it moves on
         }
      }
      const after = map.stats();
      console.log(
        `stall: ${stalled.retired} retired blocks waited (${stalled.bytesUsed} bytes in use), ` +
          `${after.retired} once the other moved on (${after.bytesUsed} bytes)`,
      );
      // Not merely bounded by the stall's height: back to a batch or two.
      assert.ok(after.retired <= 1000, `${after.retired} retired blocks still wait`);
    } finally {
      other.close();
    }
  });

  test("a share released while its worker still runs: the late end of its task is harmless", async () => {
    // Deno's terminate() lets a worker's synchronous task run on, and the adapters release the
    // share at once. Simulated in this thread: `zombie` is the worker's SyncMap object.
    // Fractions: records, which each overwrite retires (an integer is an immediate, which
    // retires nothing).
    const map = new SyncMap<number, number>();
    for (let k = 0; k < 100; k++) map.store(k, k + 0.5);
    const share = shareSyncMap(map as unknown as SyncMap<never, never>);
    const zombie = SyncMap.attach<number, number>(share.handle);
    for (let i = 0; i < 1000; i++) zombie.store(i % 100, 1000.5 + i); // retires, stays online
    share.release();
    assert.throws(() => zombie.store(0, 0), TypeError, "a released share's object must throw");
    // The freed slot finds a new owner within the same task, with the zombie's leftovers.
    const heir = attachOwnSeat<number, number>(map.handle);
    assert.equal(heir.load(0), 1900.5);
    // The task ends: the zombie's end-of-task step runs, then the heir's.
    await sleep(0);
    for (let i = 0; i < 100_000; i++) map.store(i % 100, 3000.5 + i);
    for (let i = 0; i < 1000; i++) heir.store(i % 100, 200_000.5 + i);
    for (let k = 0; k < 100; k++) assert.equal(map.load(k), 200_900.5 + k);
    assert.equal(map.size, 100);
    assert.ok(map.stats().bytesUsed < 2 ** 20, `bytes in use: ${map.stats().bytesUsed}`);
    heir.close();
    assert.equal(map.stats().participants, 1);
    // The arena's header is intact: attaching checks it.
    attachOwnSeat(map.handle).close();
  });

  test("what a closed object left behind is swept by the others", async () => {
    // Fractions, as in the test above: records to retire.
    const map = new SyncMap<number, number>();
    for (let k = 0; k < 100; k++) map.store(k, k + 0.5);
    const other = attachOwnSeat<number, number>(map.handle);
    for (let i = 0; i < 1000; i++) other.store(i % 100, 1000.5 + i); // retires
    other.close(); // leaves what it could not free yet for others to sweep
    await sleep(0); // this task's end: `map` goes offline and sweeps
    assert.equal(map.load(7), 1907.5);
    await sleep(0);
    // The arena's header is intact (attaching checks it) and the map works.
    attachOwnSeat(map.handle).close();
    for (let i = 0; i < 10_000; i++) map.store(i % 100, i);
    for (let k = 0; k < 100; k++) assert.equal(map.load(k), 9900 + k);
    assert.equal(map.stats().participants, 1);
  });

  test(
    "workers terminated as their task ends, then released, leave the map intact",
    WORKER_TEST,
    async () => {
      // Bun's terminate() stops a worker anywhere, even in the reclamation step that ends its
      // task (Deno's waits for the task to end). Whatever that step had done must leave the slot
      // safe for the others to sweep once the share is released.
      // Deno's terminate() never interrupts a task: a few rounds there suffice.
      const rounds = "Bun" in globalThis ? 60 : 10;
      for (let round = 0; round < rounds; round++) {
        const map = new SyncMap<number, number>();
        const shares = [0, 1].map(() => shareSyncMap(map as unknown as SyncMap<never, never>));
        await withWorkers(2, async (workers) => {
          // Two workers racing on the same new keys retire values and tables.
          const attached = await Promise.all(
            workers.map((w, i) => w.run({ job: "attachIdle", handle: shares[i].handle, ops: 300 })),
          );
          // At once: its end-of-task step may still be running. Released and declared gone once
          // it has stopped, as the adapters do where the runtime tells (Bun's close event): it
          // may have died holding the allocator's lock, which the next locker then takes over.
          const stopped = workers[1].stopped();
          workers[1].terminate();
          await stopped;
          shares[1].release();
          threadGone((attached[1] as { threadId: number }).threadId);
          // The other worker sweeps the released slot. (It, not this thread: had the
          // terminated worker died holding a lock, this thread would block for good, the
          // worker only until the test's timeout.)
          assert.equal(await workers[0].run({ job: "touch", keys: 300 }), true);
          await workers[0].run({ job: "close" });
        });
        await sleep(0);
        // The arena's header is intact (attaching checks it) and the map still works.
        attachOwnSeat(map.handle).close();
        for (let k = 0; k < 300; k++) map.store(k, -k);
        for (let k = 0; k < 300; k++) assert.equal(map.load(k), -k);
        assert.equal(map.stats().participants, 1);
      }
    },
  );

  test("participants go back down after close and release", WORKER_TEST, async () => {
    const map = new SyncMap<number, number>();
    assert.equal(map.stats().participants, 1);
    const shares = [
      shareSyncMap(map as unknown as SyncMap<never, never>),
      shareSyncMap(map as unknown as SyncMap<never, never>),
    ];
    assert.equal(map.stats().participants, 3);
    await withWorkers(2, async (workers) => {
      const attached = await Promise.all(
        workers.map((w, i) => w.run({ job: "attachIdle", handle: shares[i].handle, ops: 100 })),
      );
      assert.equal(map.stats().participants, 3);
      // A handle's share attaches once.
      assert.throws(() => SyncMap.attach(shares[0].handle), TypeError);
      // One worker closes: close gives its share back.
      await workers[0].run({ job: "close" });
      assert.equal(map.stats().participants, 2);
      // The slot is free for the next attach; releasing the closed share afterwards (as a
      // parent does when the worker exits) must not take the slot from its new owner.
      const view = attachOwnSeat<number, number>(map.handle);
      assert.equal(map.stats().participants, 3);
      shares[0].release();
      assert.equal(map.stats().participants, 3, "releasing a closed share freed another's seat");
      view.close();
      assert.equal(map.stats().participants, 2);
      // The other is terminated without closing; its share is taken until its end is known.
      // Its end is declared once it has stopped, as the adapters do: it may have died in its
      // end-of-task step holding a lock of the map, which stats() below then takes over (not
      // declared, that lock would be waited for for good).
      const stopped = workers[1].stopped();
      workers[1].terminate();
      await stopped;
      assert.equal(map.stats().participants, 2, "a share is held while its end is unknown");
      threadGone((attached[1] as { threadId: number }).threadId);
      // The first call of the next task (or the next quiescent point) reaps the gone thread's
      // seat; the parent's release then changes nothing.
      await null;
      assert.equal(map.stats().participants, 1, "the gone thread's seat is reaped");
      shares[1].release();
      assert.equal(map.stats().participants, 1);
    });
    // A plain attach in this thread takes a slot and close gives it back.
    const view = attachOwnSeat<number, number>(map.handle);
    assert.equal(map.stats().participants, 2);
    view.close();
    assert.equal(map.stats().participants, 1);
  });
});

// ---- A spinning load sees the store ----------------------------------------------------------

for (const op of ["load", "loadOk", "has", "delete", "compareAndSwap"] as const) {
  test(
    `SyncMap: a worker spinning on ${op} alone sees another thread's store, on every path`,
    WORKER_TEST,
    async () => {
      // Each key in turn: a number key absent (its store amends the read table: the locked
      // path), a number key of the read table whose value changes (lock-free), and the same two
      // for string keys. The worker's loop holds nothing but the lookup, so a shared word read
      // once for the whole loop would leave it spinning to its cap.
      const map = new SyncMap<number | string, number>();
      map.store(3, 0);
      map.store("s3", 0);
      map.range(() => {}); // promotes: 3 and "s3" are in the read table, which is not amended
      assert.equal(map.stats().amended, false);
      // `has` sees presence only: its keys are the two absent ones. `delete` spins first on
      // keys of the read table with no value (deleted: their stores are lock-free, until the
      // first absent key's store expunges them), then on absent keys. `compareAndSwap` (from
      // the value wanted) spins as `load` does.
      if (op === "delete") map.delete(3), map.delete("s3");
      const keys = op === "has"
        ? [7, "s7"]
        : op === "delete"
        ? [3, "s3", 7, "s7"]
        : [7, 3, "s7", "s3"];
      const want = op === "has" ? [1, 1] : [1, 2, 1, 2];
      const ctrl = shared(CTRL_WORDS);
      await withTrackedWorkers(1, async ([w]) => {
        const run = w.run<SpinLoadResult>({
          job: "spinLoad",
          op,
          handle: map.handle,
          ctrl,
          id: 1,
          keys,
          want,
          cap: 300_000_000,
        });
        await until(() => Atomics.load(ctrl, READY) === 1, "the worker is spinning");
        for (let i = 0; i < keys.length; i++) {
          await sleep(20); // the worker spins on keys[i] meanwhile
          map.store(keys[i], want[i]);
        }
        const { spins, seen } = await run;
        console.log(`spinning ${op}: ${keys.map((k, i) => `${k}: ${spins[i]}`).join(", ")}`);
        assert.deepEqual(seen, keys.map(() => true), `${op} calls spun: ${spins.join(", ")}`);
      });
    },
  );
}

// ---- Happens-before ---------------------------------------------------------------------------

const HB_ROUNDS = 2000;
const HB_WORDS = 64;

test(
  "SyncMap: a store another worker's load observes happens-before that load returns",
  WORKER_TEST,
  async () => {
    const map = new SyncMap<string, number>();
    const ctrl = shared(CTRL_WORDS);
    const data = shared((HB_ROUNDS + 1) * HB_WORDS);
    let rounds = 0;
    let spins = 0;
    const torn: string[] = [];
    // Three keys in four are in the read table, holding 0, before the worker publishes them
    // with store, swap or compareAndSwap: the lock-free paths. The fourth is new (loadOrStore).
    for (let r = 1; r <= HB_ROUNDS; r++) if (r % 4 !== 3) map.store(`hb-${r}`, 0);
    map.range(() => {}); // promotes the dirty table
    assert.equal(map.stats().amended, false);
    await withTrackedWorkers(1, async ([w]) => {
      const run = w.run<number>({
        job: "publish",
        handle: map.handle,
        ctrl,
        data,
        rounds: HB_ROUNDS,
        words: HB_WORDS,
        maxMs: 20_000,
      });
      const deadline = performance.now() + 15_000;
      for (let r = 1; r <= HB_ROUNDS; r++) {
        const key = `hb-${r}`;
        // Watch the key first, then let the worker write: the load races the publication.
        signal(ctrl, ROUND, r);
        let v: number | undefined;
        while ((v = map.load(key)) !== r) {
          if (v !== undefined && v !== 0) assert.fail(`round ${r}: loaded ${v}`);
          if (++spins % 1024 === 0 && (performance.now() > deadline || failed(ctrl))) {
            if (failed(ctrl)) await run; // rejects with the worker's error
            assert.fail(`round ${r}: timed out`);
          }
        }
        // The load saw the store: every plain write before it must be visible now.
        const base = r * HB_WORDS;
        for (let j = 0; j < HB_WORDS; j++) {
          const want = Math.imul(r, 0x01000193) ^ j;
          if (data[base + j] !== want) {
            torn.push(`round ${r}, word ${j}: ${data[base + j]}, want ${want}`);
            break;
          }
        }
        rounds = r;
      }
      assert.equal(await run, HB_ROUNDS);
    });
    console.log(`happens-before: ${rounds} rounds, ${spins} loads spent waiting`);
    assert.deepEqual(torn, []);
    assert.equal(rounds, HB_ROUNDS);
    assert.equal(map.size, HB_ROUNDS);
    assert.equal(map.stats().participants, 1);
  },
);
