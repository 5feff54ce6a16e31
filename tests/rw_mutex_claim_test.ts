// Copyright the shmap authors. MIT license.
// RWMutex: a thread's first read lock claims a reader seat, which a writer already at work did
// not flag; the first read lock's handshake (rw_lock.ts's header) must keep it out all the same.
// Many locks, taken in turn: the writers stay at a lock, writing it over and over, until every
// reader has taken its first read lock of it (after a random pause, so the claim lands anywhere
// in a writer's cycle) and a few more; then all sweep every lock a few times. Readers check the
// pair each lock guards, which is unequal inside a write. A stall (readers turned away by a seat
// left flagged, say) fails the test within STALL_MS, naming the stuck locks.

import assert from "node:assert/strict";
import { test } from "node:test";
import { LOCK_BASE } from "../src/_engine/lock_block.ts";
import { rwSeats, seatCountWord } from "../src/_engine/rw_lock.ts";
import { RWMutex } from "../src/sync/rw_mutex.ts";
import { shared, signal, withWorkers } from "./fixtures/lock_harness.ts";
import { sleep, until } from "./fixtures/harness.ts";

/** Locks in the test; each reader's first read lock of each one claims a new seat. */
const LOCKS = 128;
const WRITERS = 2;
const READERS = 3;
/** Atomic loads inside a writer's critical section (the pair unequal) and a reader's. */
const HOLD = 30;
/** Atomic loads a writer spends between its write locks, so turned-away readers get in. */
const GAP = 30;
/** Read locks a reader takes of a lock after its first, while the writers are still at it. */
const AGAIN = 8;
/** Sweeps over every lock once all have been claimed: writers and readers on any seat. */
const PASSES = 4;
/** The workers' own bound; the test's is a little longer, for a worker stuck in a lock call. */
const WORKER_TIMEOUT_MS = 15_000;
const TEST_TIMEOUT_MS = 20_000;

// Control words shared with the workers.
const READY = 0;
const GO = 1;
const DONE = 2; // readers done with their reads of the lock they are at, summed over the locks
const PROGRESS = 3; // reads done in the readers' sweeps over all the locks

/** No reader's count moving for this long fails the test (a correct run takes a few seconds). */
const STALL_MS = 5_000;

/** The state word and the flagged or held seats of `rw`, for a stall's message; "" if none. */
function lockState(rw: RWMutex): string {
  const { buffer, byteOffset } = rw.handle;
  const words = new Int32Array(buffer, byteOffset);
  const state = Atomics.load(words, LOCK_BASE);
  const seats = [];
  for (let i = 0; i < state >>> 2; i++) {
    const count = Atomics.load(words, seatCountWord(LOCK_BASE, i));
    if (count !== 0) seats.push(`seat ${i} 0x${count.toString(16)}`);
  }
  if ((state & 1) === 0 && seats.length === 0) return "";
  return `state 0x${state.toString(16)}${seats.map((s) => `, ${s}`).join("")}`;
}

/** The locks that are held, waited for or flagged, with their words. */
function stuck(locks: RWMutex[]): string[] {
  return locks.flatMap((rw, k) => {
    const s = lockState(rw);
    return s === "" ? [] : [`lock ${k}: ${s}`];
  });
}

test(
  `RWMutex: ${READERS} readers each claim a seat in ${LOCKS} locks while ${WRITERS} writers write them`,
  async () => {
    const locks = Array.from({ length: LOCKS }, () => new RWMutex());
    const ctrl = shared(4);
    const data = shared(2 * LOCKS);
    const shm = { ctrl, data, rws: locks.map((l) => l.handle) };
    const results = await withWorkers(WRITERS + READERS, async (workers) => {
      const start = [
        { op: "add", word: READY, value: 1 },
        { op: "waitFor", word: GO, atLeast: 1, timeoutMs: WORKER_TIMEOUT_MS },
      ] as const;
      const runs = workers.map((w, i) =>
        w.run([
          ...start,
          i < WRITERS
            ? {
              op: "writeSweep",
              done: DONE,
              readers: READERS,
              hold: HOLD,
              gap: GAP,
              passes: PASSES,
              timeoutMs: WORKER_TIMEOUT_MS,
            }
            : {
              op: "readSweep",
              done: DONE,
              progress: PROGRESS,
              hold: HOLD,
              again: AGAIN,
              passes: PASSES,
              timeoutMs: WORKER_TIMEOUT_MS,
            },
        ], shm)
      );
      await until(
        () => Atomics.load(ctrl, READY) === WRITERS + READERS,
        "all workers are ready",
      );
      signal(ctrl, GO, 1);
      // A reader stuck in a lock call cannot report; the main thread watches for progress, so
      // that a stall fails soon and says where the locks are stuck.
      const all = Promise.all(runs);
      let settled = false;
      all.then(() => settled = true, () => settled = true);
      let seen = -1;
      let since = performance.now();
      while (!settled) {
        const now = Atomics.load(ctrl, DONE) + Atomics.load(ctrl, PROGRESS);
        if (now !== seen) [seen, since] = [now, performance.now()];
        else if (performance.now() - since > STALL_MS) {
          throw new Error(
            `no reader got on for ${STALL_MS} ms (${Atomics.load(ctrl, DONE)} first-phase ` +
              `reads done); stuck: ${stuck(locks).join("; ") || "no lock"}`,
          );
        }
        await sleep(20);
      }
      // Each result list starts with the READY count from "add".
      return (await all).map((r) => r[1]);
    }, TEST_TIMEOUT_MS);

    const writes = results.slice(0, WRITERS) as number[][];
    const torn = results.slice(WRITERS) as number[];
    assert.deepEqual(torn, Array(READERS).fill(0), "a reader saw a writer's half-done update");
    for (let k = 0; k < LOCKS; k++) {
      const n = writes.reduce((sum, w) => sum + w[k], 0);
      assert.deepEqual([data[2 * k], data[2 * k + 1]], [n, n], `lock ${k}: writes lost or torn`);
    }

    for (const [k, rw] of locks.entries()) {
      // Every reader claimed a seat of its own, and no seat is left with read locks or a flag.
      const { buffer, byteOffset } = rw.handle;
      const words = new Int32Array(buffer, byteOffset);
      assert.equal(Atomics.load(words, LOCK_BASE) & 1, 0, `lock ${k}: WRITER is left set`);
      assert.equal(Atomics.load(words, LOCK_BASE) >>> 2, READERS, `lock ${k}: seats claimed`);
      for (let i = 0; i < rwSeats(words, LOCK_BASE); i++) {
        const count = Atomics.load(words, seatCountWord(LOCK_BASE, i));
        assert.equal(count, 0, `lock ${k}, seat ${i}: count word 0x${count.toString(16)}`);
      }
      // And the lock is free, for a writer and for a new reader.
      assert.equal(rw.tryLock(), true, `lock ${k}: a writer is kept out`);
      rw.unlock();
      assert.equal(rw.tryRLock(), true, `lock ${k}: a reader is kept out`);
      rw.rUnlock();
      rw.rLock();
      rw.rUnlock();
    }
  },
);
