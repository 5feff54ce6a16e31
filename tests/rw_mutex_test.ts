// Copyright the shmap authors. MIT license.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { Worker } from "node:worker_threads";
import { Mutex } from "../src/sync/mutex.ts";
import { LOCK_BASE } from "../src/_engine/lock_block.ts";
import {
  D_DRAINING,
  DRAIN_NOTE,
  DRAINER_SHIFT,
  SEAT_WRITER,
  seatCountWord,
  STATE,
  WRITER,
  WRITER_MU,
} from "../src/_engine/rw_lock.ts";
import { OWNER_SHIFT } from "../src/_engine/futex.ts";
import { RWMutex, type RWMutexHandle } from "../src/sync/rw_mutex.ts";
import {
  assertRefusesBadHandles,
  countingTests,
  heldOffUntilUnlock,
  lockWords,
  shared,
  signal,
  TEST_TIMEOUT_MS,
  withWorkers,
} from "./fixtures/lock_harness.ts";
import { sleep, until } from "./fixtures/harness.ts";

// Control words shared with the workers.
const READY = 0;
const GO = 1;
const INSIDE = 2; // readers currently inside
const FLAG = 3;
const SEQ = 4; // ticket dispenser
const WRITER_TICKET = 5;
const READER_TICKET = 6;

/**
 * Resolves once a writer's `lock()` drains `rw`'s readers for good: from then on a new read lock
 * is refused until it has had its turn. A refused `tryRLock` alone would not do: `lock()`'s fast
 * path sets WRITER, finds readers and backs out before the long way sets it again, and a reader
 * in that window gets in.
 */
function writerWaits(rw: RWMutex): Promise<void> {
  return until(
    () => (Atomics.load(lockWords(rw), LOCK_BASE + DRAIN_NOTE) & D_DRAINING) !== 0,
    "the writer waits",
  );
}

test("RWMutex: try-lock semantics on one thread", () => {
  const rw = new RWMutex();
  // Readers share.
  assert.equal(rw.tryRLock(), true);
  assert.equal(rw.tryRLock(), true);
  assert.equal(rw.tryLock(), false, "a writer got in with readers inside");
  rw.rUnlock();
  assert.equal(rw.tryLock(), false, "a writer got in with a reader inside");
  rw.rUnlock();
  // A writer excludes everyone.
  assert.equal(rw.tryLock(), true);
  assert.equal(rw.tryLock(), false);
  assert.equal(rw.tryRLock(), false);
  rw.unlock();
  // Blocking calls on a free lock.
  rw.rLock();
  rw.rUnlock();
  rw.lock();
  rw.unlock();
  assert.equal(rw.tryLock(), true);
  rw.unlock();
});

test("RWMutex: unbalanced unlocks throw Go's messages and leave the lock usable", () => {
  const rw = new RWMutex();
  const unlockMsg = { name: "Error", message: "sync: Unlock of unlocked RWMutex" };
  const rUnlockMsg = { name: "Error", message: "sync: RUnlock of unlocked RWMutex" };
  assert.throws(() => rw.unlock(), unlockMsg);
  assert.throws(() => rw.rUnlock(), rUnlockMsg);
  // Held for reading: Unlock is wrong and changes nothing.
  rw.rLock();
  assert.throws(() => rw.unlock(), unlockMsg);
  assert.equal(rw.tryLock(), false);
  rw.rUnlock();
  assert.throws(() => rw.rUnlock(), rUnlockMsg);
  // Held for writing: RUnlock is wrong and changes nothing.
  rw.lock();
  assert.throws(() => rw.rUnlock(), rUnlockMsg);
  assert.equal(rw.tryRLock(), false);
  rw.unlock();
  assert.throws(() => rw.unlock(), unlockMsg);
  // Still fully usable.
  assert.equal(rw.tryRLock(), true);
  rw.rUnlock();
  assert.equal(rw.tryLock(), true);
  rw.unlock();
});

test("RWMutex: maxReaderThreads that is not a number is a TypeError, out of range a RangeError", () => {
  for (const bad of ["4", [], {}, 4n, null] as unknown[]) {
    assert.throws(
      () => new RWMutex({ maxReaderThreads: bad as number }),
      (e: unknown) =>
        e instanceof TypeError && /maxReaderThreads must be a number, got (a|null)/.test(String(e)),
      String(bad),
    );
  }
  for (const bad of [0, -1, 1.5, NaN, Infinity, 65537]) {
    assert.throws(
      () => new RWMutex({ maxReaderThreads: bad }),
      (e: unknown) => e instanceof RangeError && e.message.endsWith(`got ${bad}`),
      String(bad),
    );
  }
  // Only undefined takes the default, as for the maps' options.
  assert.equal(new RWMutex({ maxReaderThreads: undefined }).tryRLock(), true);
});

test("RWMutex.attach rejects bad handles with a TypeError", () => {
  const good = new RWMutex().handle;
  assertRefusesBadHandles(good, new Mutex().handle, (h) => RWMutex.attach(h as RWMutexHandle));
  // A Mutex's memory padded out to RWMutex size still has the wrong kind word.
  const mu = new Mutex();
  const big = new SharedArrayBuffer(64);
  new Int32Array(big).set(new Int32Array(mu.handle.buffer, mu.handle.byteOffset, 3));
  assert.throws(
    () => RWMutex.attach({ kind: "RWMutex", buffer: big, byteOffset: 0 }),
    { name: "TypeError", message: /is a Mutex, not an RWMutex/ },
  );
});

test("RWMutex: a high-water mark past the seats is refused by attach, and bounded by the lock", () => {
  const rw = new RWMutex({ maxReaderThreads: 1 });
  const { buffer, byteOffset } = rw.handle;
  const state = new Int32Array(buffer, byteOffset)[LOCK_BASE]; // the state word
  new Int32Array(buffer, byteOffset)[LOCK_BASE] = state | (1000 << 2); // 1,000 seats claimed
  assert.throws(() => RWMutex.attach(rw.handle), {
    name: "TypeError",
    message: /more seats claimed than it has/,
  });
  // Written under an object attached before: its scans stop at the lock's one seat, so the
  // write lock works and is released, rather than throw holding the writer mutex.
  rw.lock();
  rw.unlock();
  rw.rLock();
  assert.equal(rw.tryLock(), false);
  rw.rUnlock();
  assert.equal(rw.tryLock(), true);
  rw.unlock();
  // The count of seats a writer flagged, written past them while it holds the lock: its unlock
  // clears only the lock's seats, and releases the lock.
  rw.lock();
  new Int32Array(buffer, byteOffset)[LOCK_BASE + 3] = 1000; // FLAGGED
  rw.unlock();
  assert.equal(rw.tryLock(), true);
  rw.unlock();
});

test("RWMutex: handle round-trips through structuredClone", () => {
  const rw = new RWMutex();
  const other = RWMutex.attach(structuredClone(rw.handle));
  rw.rLock();
  assert.equal(other.tryRLock(), true);
  assert.equal(other.tryLock(), false);
  other.rUnlock();
  rw.rUnlock();
  assert.equal(other.tryLock(), true);
  assert.equal(rw.tryRLock(), false);
  other.unlock();
});

countingTests("RWMutex", "rw", "writers");

test("RWMutex: readers never see a writer's half-done update", async () => {
  // Writers bump data[0] then data[1] under the write lock; readers check under the read
  // lock that the two are equal. Readers and writers run at the same time.
  const rw = new RWMutex();
  const ctrl = shared(8);
  const data = shared(2);
  const writes = 5_000;
  await withWorkers(4, async (workers) => {
    const shm = { ctrl, data, rw: rw.handle };
    const start = [
      { op: "add", word: READY, value: 1 },
      { op: "waitFor", word: GO, atLeast: 1, timeoutMs: TEST_TIMEOUT_MS },
    ] as const;
    const runs = [
      workers[0].run([...start, { op: "writePairs", word: 0, iterations: writes }], shm),
      workers[1].run([...start, { op: "writePairs", word: 0, iterations: writes }], shm),
      workers[2].run([...start, { op: "readPairs", word: 0, iterations: 20_000 }], shm),
      workers[3].run([...start, { op: "readPairs", word: 0, iterations: 20_000 }], shm),
    ];
    await until(() => Atomics.load(ctrl, READY) === 4, "all workers are ready");
    signal(ctrl, GO, 1);
    // Each result list starts with the READY count from "add"; readPairs appends its count.
    const torn = (await Promise.all(runs)).map((r) => r.slice(1));
    assert.deepEqual(torn, [[], [], [0], [0]], "a reader saw a torn pair");
  });
  assert.deepEqual([...data], [2 * writes, 2 * writes]);
});

test("RWMutex: readers hold the lock at the same time", async () => {
  const rw = new RWMutex();
  const ctrl = shared(8);
  await withWorkers(2, async (workers) => {
    // Each reader enters, then waits inside until both are inside: only possible if
    // the two read locks are held at once.
    const script = [
      { op: "rw.rLock" },
      { op: "add", word: INSIDE, value: 1 },
      { op: "waitFor", word: INSIDE, atLeast: 2, timeoutMs: 10_000 },
      { op: "rw.rUnlock" },
    ] as const;
    const results = await Promise.all(
      workers.map((w) => w.run([...script], { ctrl, rw: rw.handle })),
    );
    assert.deepEqual(results.map((r) => r[0]).sort(), [1, 2]);
  });
  assert.equal(Atomics.load(ctrl, INSIDE), 2);
  assert.equal(rw.tryLock(), true);
  rw.unlock();
});

test("RWMutex: a writer excludes readers until it unlocks", async () => {
  const rw = new RWMutex();
  await heldOffUntilUnlock(
    "rw",
    rw,
    [{ op: "rw.tryRLock" }, { op: "rw.tryLock" }, { op: "rw.rLock" }],
    [{ op: "rw.rUnlock" }],
    [false, false],
    "a reader got in while the writer held the lock",
  );
});

test("RWMutex: a reader on its fast path (its seat read through before) is held off by a writer", async () => {
  const rw = new RWMutex();
  const ctrl = shared(8);
  await withWorkers(1, async ([w]) => {
    // The worker's first read lock makes its seat's handshake; the second, after the main
    // thread has write-locked, takes the fast path: one add on its seat, which the writer flagged.
    const run = w.run([
      { op: "rw.rLock" },
      { op: "rw.rUnlock" },
      { op: "store", word: READY, value: 1 },
      { op: "waitFor", word: GO, atLeast: 1, timeoutMs: TEST_TIMEOUT_MS },
      { op: "rw.rLock" },
      { op: "store", word: INSIDE, value: 1 },
      { op: "rw.rUnlock" },
    ], { ctrl, rw: rw.handle });
    await until(() => Atomics.load(ctrl, READY) === 1, "the worker's first read lock");
    rw.lock();
    signal(ctrl, GO, 1);
    await sleep(100);
    assert.equal(Atomics.load(ctrl, INSIDE), 0, "a reader got in while the writer held the lock");
    rw.unlock();
    await run;
    assert.equal(Atomics.load(ctrl, INSIDE), 1);
  });
  assert.equal(rw.tryLock(), true);
  rw.unlock();
});

test("RWMutex: a thread's read locks are bounded; going past the bound throws and changes nothing", () => {
  const rw = new RWMutex();
  rw.rLock(); // claims this thread's seat
  const { buffer, byteOffset } = rw.handle;
  const words = new Int32Array(buffer, byteOffset);
  const seat = seatCountWord(LOCK_BASE, 0); // the first seat claimed on a fresh lock
  assert.equal(words[seat], 1);
  const bound = 2 ** 29;
  words[seat] = bound; // as if this thread held that many read locks
  assert.throws(() => rw.rLock(), { name: "RangeError", message: /at most 536870912 read locks/ });
  assert.throws(() => rw.tryRLock(), RangeError);
  assert.equal(words[seat], bound);
  words[seat] = 1;
  rw.rUnlock();
  assert.equal(rw.tryLock(), true);
  rw.unlock();
});

test("RWMutex: readers exclude a writer until the last one leaves", async () => {
  const rw = new RWMutex();
  const ctrl = shared(8);
  await withWorkers(1, async ([w]) => {
    rw.rLock();
    rw.rLock(); // two read locks, as if from two readers
    const run = w.run([
      { op: "rw.tryLock" },
      { op: "rw.lock" },
      { op: "store", word: FLAG, value: 1 },
      { op: "rw.unlock" },
    ], { ctrl, rw: rw.handle });
    // Wait until the writer is pending (a new read lock is refused), so that its tryLock
    // above ran while both read locks were held.
    await writerWaits(rw);
    rw.rUnlock();
    await sleep(50);
    assert.equal(Atomics.load(ctrl, FLAG), 0, "the writer got in with a reader inside");
    rw.rUnlock();
    assert.deepEqual(await run, [false]);
    assert.equal(Atomics.load(ctrl, FLAG), 1);
  });
});

test("RWMutex: a waiting writer holds back new readers (writer preference)", async () => {
  const rw = new RWMutex();
  const ctrl = shared(8);
  await withWorkers(2, async ([writer, reader]) => {
    rw.rLock(); // the main thread is a reader
    const wrote = writer.run([
      { op: "rw.lock" },
      { op: "ticket", word: WRITER_TICKET, seq: SEQ },
      { op: "rw.unlock" },
    ], { ctrl, rw: rw.handle });
    // Wait until the writer is pending: from then on a new read lock is refused even
    // though only readers hold the lock.
    await writerWaits(rw);
    assert.deepEqual(await reader.run([{ op: "rw.tryRLock" }], { ctrl, rw: rw.handle }), [false]);
    const read = reader.run([
      { op: "rw.rLock" },
      { op: "ticket", word: READER_TICKET, seq: SEQ },
      { op: "rw.rUnlock" },
    ], { ctrl, rw: rw.handle });
    await sleep(100);
    assert.equal(Atomics.load(ctrl, WRITER_TICKET), 0, "the writer got in with a reader inside");
    assert.equal(Atomics.load(ctrl, READER_TICKET), 0, "a new reader passed a waiting writer");
    rw.rUnlock(); // the writer goes first, then the reader
    await Promise.all([wrote, read]);
    assert.equal(Atomics.load(ctrl, WRITER_TICKET), 1);
    assert.equal(Atomics.load(ctrl, READER_TICKET), 2);
  });
  assert.equal(rw.tryLock(), true);
  rw.unlock();
});

/**
 * Plays another thread's writer on `rw`, which this thread read-locked once: owner id `holder`
 * holds the writer mutex, WRITER is set, seat 0 (this thread's) flagged, and the drain note is
 * `note`. Returns the undo, which a worker may run instead (see {@linkcode letGoLater}).
 */
function heldByAnotherWriter(rw: RWMutex, holder: number, note: number): () => void {
  const words = lockWords(rw);
  const seat = seatCountWord(LOCK_BASE, 0);
  Atomics.store(words, LOCK_BASE + WRITER_MU, holder << OWNER_SHIFT);
  Atomics.or(words, LOCK_BASE + STATE, WRITER);
  Atomics.or(words, seat, SEAT_WRITER);
  Atomics.store(words, LOCK_BASE + DRAIN_NOTE, note);
  return () => {
    Atomics.store(words, LOCK_BASE + DRAIN_NOTE, 0);
    Atomics.and(words, seat, ~SEAT_WRITER);
    Atomics.and(words, LOCK_BASE + STATE, ~WRITER);
    Atomics.store(words, LOCK_BASE + WRITER_MU, 0);
  };
}

/**
 * The undo of {@linkcode heldByAnotherWriter}, run by a worker 100 ms from now (with a notify
 * of the readers that wait), while this thread waits in rLock. Resolves once the worker exits.
 */
function letGoLater(rw: RWMutex): Promise<unknown> {
  const worker = new Worker(
    `const { workerData: { buffer, offset, base, seat, note } } = require("node:worker_threads");
     const w = new Int32Array(buffer, offset);
     Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
     Atomics.store(w, base + note, 0);
     Atomics.and(w, seat, ~(1 << 30));
     Atomics.and(w, base, ~1);
     Atomics.store(w, base + 1, 0);
     Atomics.notify(w, base);`,
    {
      eval: true,
      workerData: {
        buffer: rw.handle.buffer,
        offset: rw.handle.byteOffset,
        base: LOCK_BASE,
        seat: seatCountWord(LOCK_BASE, 0),
        note: DRAIN_NOTE,
      },
    },
  );
  return new Promise((resolve) => worker.once("exit", resolve));
}

describe("RWMutex waits that could never end throw instead", () => {
  // Go's RWMutex deadlocks in each of these; this one would too, holding every other thread
  // up with it (WRITER set, or the writer mutex held).
  test("lock() by a thread that holds a read lock", () => {
    const rw = new RWMutex();
    rw.rLock();
    assert.throws(() => rw.lock(), /holds a read lock of it \(deadlock\)/);
    rw.rUnlock();
    rw.lock(); // backed out: nothing left held or flagged
    rw.unlock();
    assert.equal(rw.tryRLock(), true);
    rw.rUnlock();
  });

  test("rLock() by the thread that holds the write lock", () => {
    const rw = new RWMutex();
    rw.lock();
    assert.throws(() => rw.rLock(), /holds its write lock \(deadlock\)/);
    rw.unlock();
    rw.rLock();
    rw.rUnlock();
  });

  test("rLock() again by a reader while a writer waits for it", () => {
    const rw = new RWMutex();
    rw.rLock();
    // Another thread's lock(), draining for this reader: it holds the writer mutex, WRITER is
    // set, the seats flagged, and its note says it drains for good (D_WAITING too, and the
    // drainer's owner id).
    const other = 8_000_001; // an owner id no thread has, not recorded gone: live
    const undo = heldByAnotherWriter(rw, other, 1 | D_DRAINING | (other << DRAINER_SHIFT));
    try {
      assert.throws(() => rw.rLock(), /again by a reader while a writer waits/);
    } finally {
      undo();
    }
    rw.rUnlock(); // the first read lock, still held
    rw.lock();
    rw.unlock();
  });

  test("rLock() again does not throw for a drain note the writer mutex's holder did not write", async () => {
    // A thread that took a dead drainer over clears the note a moment later: meanwhile the note
    // is the dead writer's, and the new holder (only releasing it) drains for nobody.
    const rw = new RWMutex();
    rw.rLock();
    const taker = 8_000_003;
    const deadDrainer = 8_000_004;
    heldByAnotherWriter(rw, taker, 1 | D_DRAINING | (deadDrainer << DRAINER_SHIFT));
    const exited = letGoLater(rw);
    try {
      rw.rLock(); // waits for the taker to let go, then gets in
      rw.rUnlock();
    } finally {
      await exited;
    }
    rw.rUnlock();
  });

  test("rLock() again while a writer only tries (tryLock) waits for it to back out", async () => {
    // The flags of a tryLock, or of lock()'s fast path backing out: no D_DRAINING. A nested
    // read lock waits (as Go's does for TryLock, which never blocks readers for long).
    const rw = new RWMutex();
    rw.rLock();
    heldByAnotherWriter(rw, 8_000_002, 1 | 2); // D_WAITING | D_CLEAN: lockFast's
    // The back-out, 100 ms later, from a worker: this thread waits in rLock meanwhile.
    const exited = letGoLater(rw);
    try {
      rw.rLock(); // nested: waits for the back-out, then gets in
      rw.rUnlock();
    } finally {
      await exited;
    }
    rw.rUnlock();
    rw.lock();
    rw.unlock();
  });
});
