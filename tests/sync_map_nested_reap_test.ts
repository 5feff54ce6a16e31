// A user codec's decode, run by one SyncMap object's call that holds a record in flight,
// calls a second object of the same map in the same thread. That call must not reap or sweep:
// the stop of the world skips every participant of this thread, and the sweep's marking sees
// only its own object's record in flight, so the outer call's unpublished record would be freed
// as unreached, then freed again by the outer call (a double free the allocator check finds).
// The census change and R_SWEEP_DUE stored inside the decode stand for another thread releasing
// a terminated worker's share at that moment, as sync_map_dead_owner_test.ts simulates them.

import assert from "node:assert/strict";
import { test } from "node:test";
import { type Codec, SyncMap } from "../mod.ts";
import { GONE, record } from "../src/_engine/census.ts";
import { ANNOUNCE, OWNER, SEAT_WORDS } from "../src/_engine/registry.ts";
import { R_MU, R_SEATS, R_SWEEP_DUE } from "../src/maps/_sync_layout.ts";
import { shareSyncMap } from "../src/maps/sync_map.ts";
import {
  ATTACHED,
  CTRL_WORDS,
  IN_DECODE,
  type SweepSignalledReply,
  type SweepSignalledRequest,
} from "./fixtures/sweep_signalled_worker.ts";
import { startWorker } from "./fixtures/spawn.ts";
import { deadline, until } from "./fixtures/harness.ts";
import {
  ATTACHED as U_ATTACHED,
  CTL_WORDS,
  DECODING,
  NESTING,
  REPLACED,
  REUSED,
  STEP,
  type UnretiredReply,
  type UnretiredRequest,
} from "./fixtures/unretired_decode_worker.ts";

const FIRST = "a value long enough to live in a record of its own";
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A string codec whose decode calls `onDecode` first: user code run inside the map's calls. */
function hookedCodec(name: string, onDecode: () => void): Codec<string> {
  return {
    name,
    encode: (v) => new TextEncoder().encode(v),
    decode: (b) => {
      onDecode();
      return new TextDecoder().decode(b);
    },
  };
}

/**
 * `loadOrStore` of "k", stored in the dirty table only: it allocates its record, finds "k" under
 * the mutex, and decodes the value found (running the codec's hook) with its own record still in
 * flight. Then the map must be whole.
 */
async function loadOrStoreInFlight(map: SyncMap<string, string>): Promise<void> {
  const [v, loaded] = map.loadOrStore("k", "another value, also in a record of its own");
  assert.equal(loaded, true);
  assert.equal(v, FIRST);
  await null;
  map.verify();
}

test("SyncMap: a second object called from a decode does not reap over the outer call's record", async () => {
  const late: { second?: SyncMap<string, string>; i32?: Int32Array } = {};
  let armed = false;
  const codec = hookedCodec("nested-reap", () => {
    if (!armed || late.second === undefined) return;
    armed = false;
    // Another thread releases a terminated worker's share now.
    record(2 ** 27 + 3000 + Math.floor(Math.random() * 1000), GONE);
    Atomics.store(late.i32!, R_SWEEP_DUE, 1);
    late.second.load("other"); // its first call this task
  });
  const map = new SyncMap<string, string>({ values: codec });
  late.i32 = new Int32Array(map.handle.buffer);
  const { handle } = shareSyncMap(map as SyncMap<never, never>);
  const second = late.second = SyncMap.attach<string, string>(handle, { values: codec });
  second.load("nothing"); // looks at the census once
  map.store("k", FIRST);
  await null; // both go offline
  armed = true;
  await loadOrStoreInFlight(map);
  assert.equal(armed, false, "the nested call ran");
  for (let n = 0; n < 500; n++) map.store(`n${n}`, `value number ${n} `.repeat(3));
  for (let n = 0; n < 500; n++) {
    assert.equal(map.load(`n${n}`), `value number ${n} `.repeat(3));
  }
  map.verify();
  second.close();
  map.close();
});

// The same, with nothing stored during the decode: a sweep left due (a participant of another
// thread was busy), the first object's retry held off by its backoff, the second's not. The
// second object's first call of the task, from inside the first's decode, retries the sweep.
test("SyncMap: a second object called from a decode does not retry a sweep over it", async () => {
  const late: { second?: SyncMap<string, string> } = {};
  let armed = false;
  const codec = hookedCodec("nested-retry", () => {
    if (!armed || late.second === undefined) return;
    armed = false;
    late.second.load("other"); // its first call this task
  });
  const map = new SyncMap<string, string>({ values: codec });
  const i32 = new Int32Array(map.handle.buffer);
  const one = shareSyncMap(map as SyncMap<never, never>);
  const two = shareSyncMap(map as SyncMap<never, never>);
  const busy = SyncMap.attach<string, string>(one.handle, { values: codec });
  const second = late.second = SyncMap.attach<string, string>(two.handle, { values: codec });
  second.load("nothing"); // looks at the census; its backoff runs out 100 ms from now
  map.store("k", FIRST);
  await new Promise((r) => setTimeout(r, 150));
  // A participant of "another thread" is busy: the first object's retry cannot stop the world.
  busy.stats(); // online, announced, until this task ends
  const seat = i32[R_SEATS] + one.handle.participant! * SEAT_WORDS;
  const mine = Atomics.load(i32, seat + OWNER);
  Atomics.store(i32, seat + OWNER, 2 ** 27 + 4000 + Math.floor(Math.random() * 1000) + 1);
  Atomics.store(i32, R_SWEEP_DUE, 1); // left due by an earlier recovery
  map.stats(); // comes online: retries (10 ms, in vain), and backs off for 100 ms
  assert.equal(Atomics.load(i32, R_SWEEP_DUE), 1, "still due");
  Atomics.store(i32, seat + OWNER, mine);
  await null; // the busy task ends
  assert.equal(Atomics.load(i32, seat + ANNOUNCE), 0);
  assert.equal(Atomics.load(i32, R_SWEEP_DUE), 1, "still due as the task starts");
  armed = true;
  await loadOrStoreInFlight(map);
  assert.equal(armed, false, "the nested call ran");
  busy.close();
  second.close();
  map.close();
});

// A record in flight across a user codec's decode, and a stop of the world by another thread:
// the decode's nested call sleeps in the mutex (parked) while a worker stops the world and
// sweeps (a sweep left due), then verifies. What the parked participant shows as in flight must
// be exactly what is: a loadOrStore's own record, unpublished, must not be in flight by then
// (the nested store shows its own, so the sweep would free the outer one as unreached, and the
// outer call would free it again); a swap's record, published, must not still show as in flight
// (the nested load shows none of its own, and verify, with no sweep due, would find the record
// owned twice).
for (
  const [op, nested] of [
    ["loadOrStore", "store"],
    ["swap", "load"],
  ] as const
) {
  test(`SyncMap: a stop of the world by another thread while a ${op}'s decode's nested ${nested} is parked`, async () => {
    const ctrl = new Int32Array(new SharedArrayBuffer(CTRL_WORDS * 4));
    let late: SyncMap<string, string> | undefined;
    const name = `nested-parked-${op}`;
    const codec = hookedCodec(name, () => {
      if (late === undefined) return;
      const map = late;
      late = undefined;
      Atomics.store(ctrl, IN_DECODE, 1);
      Atomics.notify(ctrl, IN_DECODE);
      // The worker's verify() holds the mutex while it waits for this thread to park. A worker
      // that fails before it locks has its reply wait for this task to end: the wait has an end,
      // so that the test fails (with the worker's reply) rather than spin for good.
      const i32 = new Int32Array(map.handle.buffer);
      const end = performance.now() + 20_000;
      while (Atomics.load(i32, R_MU) === 0) {
        if (performance.now() > end) throw new Error("the worker's verify() took no mutex in 20 s");
        Atomics.wait(ctrl, ATTACHED, 1, 1);
      }
      if (nested === "store") map.store("nested new key", "y");
      else assert.equal(map.load("a missing key: the map is amended"), undefined);
    });
    const map = new SyncMap<string, string>({ values: codec });
    const { promise, resolve, reject } = Promise.withResolvers<SweepSignalledReply>();
    const worker = startWorker(new URL("./fixtures/sweep_signalled_worker.ts", import.meta.url), {
      message: (data) => resolve(data as SweepSignalledReply),
      error: reject,
    });
    try {
      worker.postMessage(
        {
          handle: map.handle,
          ctrl,
          codec: name,
          sweep: op === "loadOrStore",
        } satisfies SweepSignalledRequest,
      );
      await until(() => Atomics.load(ctrl, ATTACHED) === 1, "the worker attached", 30_000);
      map.store("k", FIRST); // in the dirty table only: the call finds it under the mutex
      late = map;
      try {
        if (op === "loadOrStore") {
          await loadOrStoreInFlight(map);
        } else {
          assert.deepEqual(map.swap("k", "a second value, also in a record of its own"), [
            FIRST,
            true,
          ]);
        }
      } catch (error) {
        const reply = await Promise.race([promise, sleep(5_000).then(() => "none in 5 s")]);
        throw new Error(`${error}; the worker's reply: ${JSON.stringify(reply)}`);
      }
      assert.equal(late, undefined, "the nested call ran");
      // Bounded: a reply that never comes fails the test, where it hung a Node run for good once.
      assert.deepEqual(await deadline(promise, 60_000, "the worker's verify"), {}, "its reply");
      if (nested === "store") assert.equal(map.load("nested new key"), "y");
      for (let n = 0; n < 50; n++) map.store(`n${n}`, `value number ${n} `.repeat(3));
      for (let n = 0; n < 50; n++) {
        assert.equal(map.load(`n${n}`), `value number ${n} `.repeat(3));
      }
      map.verify();
    } finally {
      worker.terminate();
    }
    map.close();
  });
}

test("SyncMap: verify() inside a user codec's decode is a TypeError", () => {
  const late: { map?: SyncMap<string, string> } = {};
  let seen: unknown;
  const codec = hookedCodec("nested-verify", () => {
    try {
      late.map!.verify();
    } catch (error) {
      seen = error;
    }
  });
  const map = late.map = new SyncMap<string, string>({ values: codec });
  map.store("k", "v");
  assert.equal(map.load("k"), "v");
  assert.ok(seen instanceof TypeError, `verify() inside a decode threw ${seen}`);
  map.verify();
  map.close();
});

// A record replaced and never retired (a worker's store cut short by a stack overflow, or a
// worker that died, between its exchange and the retirement) is reachable from nowhere but the
// decode of a reader that read it before: a sweep must not free it under that decode. Here the
// reader's decode (the built-in one of a structured value, under a hold) runs a setter on
// Array.prototype that makes nested stores, which park in the mutex while the worker's verify()
// holds it and sweeps. Parked so (inside a hold), the parent lets the world stop but no sweep
// run until its decode is over; parked as any other, the sweep freed the record, the worker's
// next stores reused its block, and the decode returned their value (helper-106, Deno and Bun).
test("SyncMap: a record replaced and never retired is not swept under a reader's decode", async () => {
  const map = new SyncMap<number, unknown>();
  const value = [1, "x".repeat(60)];
  map.store(1, value);
  for (let i = 2; i < 20; i++) map.store(i, i);
  for (let r = 0; r < 50; r++) for (let i = 2; i < 20; i++) map.load(i); // promoted
  const ctl = new Int32Array(new SharedArrayBuffer(CTL_WORDS * 4));
  const { promise, resolve, reject } = Promise.withResolvers<UnretiredReply>();
  const worker = startWorker(new URL("./fixtures/unretired_decode_worker.ts", import.meta.url), {
    message: (data) => resolve(data as UnretiredReply),
    error: reject,
  });
  const proto = Array.prototype as unknown as Record<string, unknown>;
  try {
    worker.postMessage({ handle: map.handle, ctl } satisfies UnretiredRequest);
    await until(() => Atomics.load(ctl, U_ATTACHED) === 1, "the worker attached", 30_000);
    let armed = true;
    Object.defineProperty(proto, "0", {
      configurable: true,
      set(this: unknown[], v: unknown) {
        Object.defineProperty(this, "0", {
          value: v,
          writable: true,
          enumerable: true,
          configurable: true,
        });
        if (!armed) return;
        armed = false;
        Atomics.store(ctl, STEP, DECODING);
        Atomics.notify(ctl, STEP);
        Atomics.wait(ctl, STEP, DECODING, 30_000); // the worker replaced key 1's record
        Atomics.store(ctl, STEP, NESTING);
        Atomics.notify(ctl, STEP);
        // Nested stores for 300 ms, or until the worker has reused what its sweep freed.
        const end = performance.now() + 300;
        for (let j = 0; Atomics.load(ctl, STEP) !== REUSED && performance.now() < end; j++) {
          // Fractions on odd rounds: a nested store parks with its record in flight.
          map.store(1000 + (j % 100), j % 2 === 0 ? j : j + 0.5);
        }
      },
    });
    const got = map.load(1);
    delete proto["0"];
    assert.equal(armed, false, "the decode ran the setter");
    assert.equal(Atomics.load(ctl, STEP) >= REPLACED, true);
    assert.deepEqual(got, value, "the decode read the record it began with");
    assert.deepEqual(
      await deadline(promise, 60_000, "the worker's store and verify"),
      {},
      "its reply",
    );
    assert.deepEqual(map.load(1), [2, "w".repeat(60)]);
    map.verify();
  } finally {
    delete proto["0"];
    worker.terminate();
  }
  map.close();
});
