// Copyright the shmap authors. MIT license.
// Locks whose holders die: a worker terminated while it holds a Mutex, an RWMutex's write
// lock, or read locks. The next acquirer takes the lock over and is told (OwnerDeadError,
// holding it); read locks of dead readers are released; a sleeping waiter is woken; a thread
// that is only slow keeps its lock.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { Mutex, OwnerDeadError, RWMutex, threadGone } from "../mod.ts";
import { LOCK_BASE } from "../src/_engine/lock_block.ts";
import { OWNER_SHIFT, POISONED } from "../src/_engine/futex.ts";
import { DRAIN_NOTE, seatCountWord, WRITER_MU } from "../src/_engine/rw_lock.ts";
import type { DeathRequest } from "./fixtures/death_worker.ts";
import { runChild } from "./fixtures/child.ts";
import { sleep } from "./fixtures/harness.ts";
import { ReplyQueue } from "./fixtures/reply_queue.ts";
import { startWorker, type TestWorker } from "./fixtures/spawn.ts";
import { lockWords } from "./fixtures/lock_harness.ts";

const TEST = { timeout: 60_000 };

class Subject {
  readonly worker: TestWorker;
  #replies = new ReplyQueue<Record<string, unknown>>();

  constructor() {
    this.worker = startWorker(
      new URL("./fixtures/death_worker.ts", import.meta.url),
      this.#replies.listeners((error) => ({ error: String(error) })),
    );
  }

  next(what: string): Promise<Record<string, unknown>> {
    return this.#replies.take(30_000, what);
  }

  async ask(req: DeathRequest, what: string): Promise<Record<string, unknown>> {
    this.worker.postMessage(req);
    return await this.next(what);
  }

  /** Whether a reply is waiting to be taken. */
  get replied(): boolean {
    return this.#replies.queued;
  }

  async id(): Promise<number> {
    return (await this.ask({ op: "id" }, "the worker's thread id")).id as number;
  }

  /** Terminates the worker and, once it has stopped, declares it gone. */
  async kill(id: number): Promise<void> {
    const stopped = this.worker.stopped(100);
    this.worker.terminate();
    await stopped;
    threadGone(id);
  }
}

/**
 * A worker takes a lock with `hold` (`locked` names that, for the timeout) and, once
 * `whileAlive` has checked it holds the lock, is killed. Returns the dead worker's thread id.
 */
async function diesHolding(
  hold: DeathRequest,
  locked: string,
  whileAlive: () => void | Promise<void>,
): Promise<number> {
  const holder = new Subject();
  const id = await holder.id();
  await holder.ask(hold, "started");
  assert.deepEqual(await holder.next(locked), { result: "ok" });
  await whileAlive();
  await holder.kill(id);
  return id;
}

/**
 * A holder takes a lock with `hold`, a waiter then asks for it with `wait` and is asleep in it
 * 200 ms later; the holder dies. Asserts that the waiter is woken and told the owner died, and
 * returns how long that took after the kill began. `what` names the holder's lock, the waiter's
 * start and the waiter's call, for the timeouts.
 */
async function wokenWhenHolderDies(
  hold: DeathRequest,
  wait: DeathRequest,
  what: [locked: string, waiting: string, woken: string],
): Promise<number> {
  const holder = new Subject();
  const waiter = new Subject();
  try {
    const id = await holder.id();
    await holder.ask(hold, "started");
    await holder.next(what[0]);
    await waiter.ask(wait, what[1]);
    await sleep(200); // the waiter is asleep in its call by now
    const killed = performance.now();
    await holder.kill(id);
    assert.deepEqual(await waiter.next(what[2]), { result: "ownerDead" });
    return performance.now() - killed;
  } finally {
    holder.worker.terminate();
    waiter.worker.terminate();
  }
}

test("Mutex: a holder that dies hands the lock to the next lock(), poisoned", TEST, async () => {
  const mu = new Mutex();
  const id = await diesHolding({ op: "lock", mu: mu.handle, then: "hold" }, "locked", async () => {
    assert.equal(mu.tryLock(), false, "held by a live worker");
    await sleep(100);
    assert.equal(mu.tryLock(), false, "a slow holder keeps its lock");
  });
  assert.throws(() => mu.lock(), (error: unknown) => {
    assert.ok(error instanceof OwnerDeadError);
    assert.equal(error.threadId, id);
    return true;
  });
  assert.equal(mu.poisoned, true);
  // Still poisoned until marked consistent: unlocking keeps the mark.
  mu.unlock();
  assert.throws(() => mu.tryLock(), OwnerDeadError);
  mu.markConsistent();
  assert.equal(mu.poisoned, false);
  mu.unlock();
  mu.lock();
  mu.unlock();
});

test("Mutex: a waiter sleeping on a dead holder's lock is woken", TEST, async () => {
  const mu = new Mutex();
  const wokenMs = await wokenWhenHolderDies(
    { op: "lock", mu: mu.handle, then: "hold" },
    { op: "lock", mu: mu.handle, then: "release" },
    ["locked", "waiter started", "the waiter's lock()"],
  );
  // Woken, not left asleep: the bound leaves room for a loaded machine.
  assert.ok(wokenMs < 5000, `woken after ${wokenMs} ms`);
  // The waiter marked it consistent and unlocked.
  assert.equal(mu.tryLock(), true);
  mu.unlock();
});

test("RWMutex: a dead reader's read lock is released for a waiting writer", TEST, async () => {
  const rw = new RWMutex();
  await diesHolding({ op: "rLock", rw: rw.handle, then: "hold" }, "read-locked", () => {
    assert.equal(rw.tryLock(), false);
  });
  const started = performance.now();
  rw.lock(); // drains: the dead reader's count is taken out
  assert.ok(performance.now() - started < 1000);
  assert.equal(rw.poisoned, false, "a dead reader does not poison the lock");
  rw.unlock();
  rw.rLock();
  rw.rUnlock();
});

test("RWMutex: a dead writer poisons the lock for readers and writers", TEST, async () => {
  const rw = new RWMutex();
  // Another object of this thread, past its first read lock: its read locks take rLock's fast
  // path, where `rw`'s first one takes the first lock's.
  const warm = RWMutex.attach(rw.handle);
  warm.rLock();
  warm.rUnlock();
  await diesHolding({ op: "rwLock", rw: rw.handle, then: "hold" }, "write-locked", () => {
    assert.equal(rw.tryRLock(), false);
  });
  // Readers get in, each holding a read lock, and are told, on every read lock.
  for (const reader of [rw, warm, warm]) {
    assert.throws(() => reader.rLock(), OwnerDeadError);
    assert.equal(rw.tryLock(), false, "the read lock is held");
    reader.rUnlock();
  }
  // A writer gets in, is told, repairs and marks the lock consistent.
  assert.throws(() => rw.lock(), OwnerDeadError);
  rw.markConsistent();
  rw.unlock();
  rw.rLock();
  rw.rUnlock();
  rw.lock();
  rw.unlock();
});

test("RWMutex: a writer that dies waiting for readers to leave poisons nothing", TEST, async () => {
  for (const next of ["rLock", "lock", "tryLock"] as const) {
    const rw = new RWMutex();
    rw.rLock(); // the writer will wait for this read lock
    const writer = new Subject();
    try {
      const id = await writer.id();
      await writer.ask({ op: "rwLock", rw: rw.handle, then: "hold" }, "writer started");
      await sleep(200); // asleep in its drain, holding the writer mutex
      assert.equal(writer.replied, false, "the writer is still waiting");
      await writer.kill(id);
    } finally {
      writer.worker.terminate();
    }
    rw.rUnlock();
    // Whoever comes next takes the writer mutex over from the dead waiter, unpoisoned: the
    // data was never in its hands.
    if (next === "rLock") {
      rw.rLock();
      rw.rUnlock();
    } else if (next === "lock") {
      rw.lock();
      rw.unlock();
    } else {
      assert.equal(rw.tryLock(), true);
      rw.unlock();
    }
    assert.equal(rw.poisoned, false, `after ${next}`);
    rw.lock();
    rw.unlock();
  }
  // A writer that was poisoned already when it began to wait leaves the lock poisoned.
  const rw = new RWMutex();
  await diesHolding({ op: "rwLock", rw: rw.handle, then: "hold" }, "write-locked", () => {});
  assert.throws(() => rw.rLock(), OwnerDeadError); // poisoned, and a read lock held
  const writer = new Subject();
  try {
    const id = await writer.id();
    await writer.ask({ op: "rwLock", rw: rw.handle, then: "hold" }, "writer started");
    await sleep(200);
    await writer.kill(id);
  } finally {
    writer.worker.terminate();
  }
  rw.rUnlock();
  assert.throws(() => rw.lock(), OwnerDeadError);
  rw.markConsistent();
  rw.unlock();
});

test(
  "RWMutex: a reader on its fast path gets in after the writer that flagged its seat died",
  TEST,
  async () => {
    const rw = new RWMutex();
    const go = new Int32Array(new SharedArrayBuffer(4));
    const reader = new Subject();
    try {
      await reader.ask({ op: "rLockAgain", rw: rw.handle, go }, "the reader's first read lock");
      // The writer flags every seat, the reader's included, and dies holding the lock.
      await diesHolding({ op: "rwLock", rw: rw.handle, then: "hold" }, "write-locked", () => {});
      Atomics.store(go, 0, 1);
      Atomics.notify(go, 0);
      // The flag must go with the dead writer: the reader gets in, told the writer died.
      assert.deepEqual(await reader.next("the reader's fast-path read lock"), {
        result: "ownerDead",
      });
    } finally {
      reader.worker.terminate();
    }
    assert.throws(() => rw.lock(), OwnerDeadError);
    rw.markConsistent();
    rw.unlock();
  },
);

test("RWMutex: readers waiting behind a dead writer are woken", TEST, async () => {
  const rw = new RWMutex();
  const wokenMs = await wokenWhenHolderDies(
    { op: "rwLock", rw: rw.handle, then: "hold" },
    { op: "rLock", rw: rw.handle, then: "release" },
    ["write-locked", "reader started", "the reader's rLock()"],
  );
  // As the Mutex waiter's: the sleeper learns of the death at once, not at a timed look.
  assert.ok(wokenMs < 5000, `woken after ${wokenMs} ms`);
});

test(
  "unlock() by a thread that does not hold the lock throws and changes nothing",
  TEST,
  async () => {
    const mu = new Mutex();
    const rw = new RWMutex();
    const holder = new Subject();
    try {
      await holder.ask({ op: "lock", mu: mu.handle, then: "hold" }, "started");
      await holder.next("locked");
      assert.throws(() => mu.unlock(), /held by another thread/);
      assert.equal(mu.tryLock(), false);
      await holder.ask({ op: "rwLock", rw: rw.handle, then: "hold" }, "started");
      await holder.next("write-locked");
      assert.throws(() => rw.unlock(), /write-locked by another thread/);
      assert.equal(rw.tryRLock(), false);
    } finally {
      holder.worker.terminate();
    }
  },
);

test(
  "a worker that ends by itself holding a Mutex: a lock() from its end handler, or one blocked before its end, takes it over",
  TEST,
  async () => {
    // The handler blocks the event loop that would declare the worker gone (after the grace,
    // on Deno): the lock must come all the same. In a "-blocked" case the parent blocks in
    // lock() as soon as the worker holds the Mutex, before it ends: only what the worker
    // recorded as it exited can let the lock come. Run in a child, so a hang fails the test.
    const web = "Bun" in globalThis || "Deno" in globalThis;
    const hows = ["throw", "throw-error-handler", "exit", "throw-blocked", "exit-blocked"].concat(
      web ? ["web-throw", "web-close"] : [],
      "Deno" in globalThis ? ["web-throw-blocked"] : [],
      "Bun" in globalThis ? ["web-throw-blocked", "web-exit-blocked"] : [],
    );
    const script = new URL("./fixtures/lock_at_end.ts", import.meta.url);
    for (const how of hows) {
      const { code, stdout, stderr, timedOut } = await runChild(script, [how], 20_000);
      assert.equal(timedOut, false, `${how}: the lock() never returned`);
      assert.equal(code, 0, `${how}: the child failed:\n${stderr}`);
      const report = JSON.parse(stdout.trim().split("\n").pop()!) as { poisoned: boolean };
      assert.equal(report.poisoned, true, `${how}: the lock was taken over, poisoned`);
    }
  },
);

test("a worker's shmap calls from its own exit handlers still work", TEST, async () => {
  // The worker records itself terminating as its process `exit` event runs (census.ts); that
  // must not make it stop itself: it is ending, not a zombie.
  const { spawn } = await import("../src/workers/node.ts");
  const { SyncMap } = await import("../mod.ts");
  for (const how of ["exit", "natural"]) {
    const mu = new Mutex();
    const results = new SyncMap<string, string>();
    const w = spawn(new URL("./fixtures/exit_hook_worker.ts", import.meta.url), { mu, results }, {
      workerData: how,
    });
    await new Promise((resolve) => w.once("exit", resolve));
    assert.equal(results.load("outcome"), "ok", how);
    assert.equal(results.load("stored"), "in the exit handler", how);
    assert.equal(mu.tryLock(), true, `${how}: the handler unlocked`);
    mu.unlock();
    results.close();
  }
});

test("a worker's exit handlers keep the locks it holds until they are done", TEST, async () => {
  // The worker records itself ending from the last of its exit listeners (census.ts
  // watchOwnExit): a parent blocked in lock() for a lock the worker exits holding, and uses in
  // an exit handler of its own, gets it from that handler's unlock, not poisoned 250 ms in.
  const { spawn } = await import("../src/workers/node.ts");
  const { SyncMap } = await import("../mod.ts");
  const mu = new Mutex();
  const results = new SyncMap<string, string>();
  const w = spawn(new URL("./fixtures/exit_hook_worker.ts", import.meta.url), { mu, results }, {
    workerData: "slow-exit",
  });
  const exited = new Promise((resolve) => w.once("exit", resolve));
  const nap = new Int32Array(new SharedArrayBuffer(4));
  const deadline = performance.now() + 10_000;
  while (results.load("locked") !== "yes" && performance.now() < deadline) {
    Atomics.wait(nap, 0, 0, 1);
  }
  const t0 = performance.now();
  mu.lock(); // blocking this thread: the worker's end event cannot be delivered meanwhile
  const waited = performance.now() - t0;
  mu.unlock();
  await exited;
  assert.equal(results.load("busy"), "yes", "the exit handler ran");
  assert.ok(waited >= 400, `the lock came after ${waited.toFixed(0)} ms, the handler still busy`);
});

test(
  "Deno: a web worker that cancels its own uncaught error lives on, and is not recorded ending",
  { ...TEST, skip: !("Deno" in globalThis) && "Deno web workers only" },
  async () => {
    // The Deno adapter records a worker ending when an uncaught error's event goes uncancelled
    // (deno.ts `dying`): a listener or `onerror` of the worker's own that cancels it must keep
    // the worker's calls working, past the grace in which its locks would be taken over.
    const { spawn } = await import("../src/workers/deno.ts");
    const { SyncMap } = await import("../mod.ts");
    for (const how of ["listener", "onerror", "bare", "process", "child", "cut"]) {
      const mu = new Mutex();
      const results = new SyncMap<string, string>().set("how", how);
      const url = new URL("./fixtures/error_survivor_deno_worker.ts", import.meta.url);
      const w = spawn(url, { mu, results });
      try {
        const deadline = performance.now() + 10_000;
        while (results.load("outcome") === undefined && performance.now() < deadline) {
          await sleep(20);
        }
        assert.equal(results.load("outcome"), "ok", how);
      } finally {
        w.terminate();
      }
    }
  },
);

test("threadGone() rejects what is not a thread id, and the caller's own", () => {
  for (const bad of [-1, 1.5, NaN, "3", 2 ** 40]) {
    assert.throws(() => threadGone(bad as number), TypeError);
  }
  assert.throws(() => threadGone(0), RangeError, "the main thread is thread 0");
  assert.throws(() => threadGone(2 ** 28), /an integer from 0 to 268435455/);
});

test("threadGone(0) from a worker is refused: no worker outlives the main thread", async () => {
  // It was accepted, and every lock the main thread held counted as a dead holder's.
  const worker = new Worker(new URL("./fixtures/thread_gone_zero_worker.ts", import.meta.url));
  try {
    const answer = await new Promise((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
    });
    assert.match(String(answer), /^RangeError: threadGone: thread 0 is the main thread/);
  } finally {
    await worker.terminate();
  }
  const mu = new Mutex();
  mu.lock(); // the main thread is not gone
  mu.unlock();
});

/**
 * The lock word of a holder `dead`, a thread id no live thread has, declared gone here (owner
 * ids are thread ids + 1).
 */
function heldByGone(dead: number): number {
  threadGone(dead);
  return (dead + 1) << OWNER_SHIFT;
}

test("poisoned is true while a dead holder has not been taken over yet", () => {
  const dead = 900_003;
  const held = heldByGone(dead);
  const mu = new Mutex();
  const words = lockWords(mu);
  words[LOCK_BASE] = held;
  assert.equal(mu.poisoned, true);
  assert.throws(() => mu.lock(), OwnerDeadError);
  assert.equal(mu.poisoned, true);
  mu.markConsistent();
  assert.equal(mu.poisoned, false);
  mu.unlock();
  const rw = new RWMutex();
  const rwWords = lockWords(rw);
  rwWords[LOCK_BASE + WRITER_MU] = held;
  assert.equal(rw.poisoned, true);
  assert.throws(() => rw.lock(), OwnerDeadError);
  rw.markConsistent();
  rw.unlock();
  assert.equal(rw.poisoned, false);
});

/** Each reader seat claimed so far in `rw`: its count word (read locks, and bit 30: flagged). */
function seatWords(rw: RWMutex): number[] {
  const { buffer, byteOffset } = rw.handle;
  const words = new Int32Array(buffer, byteOffset);
  const claimed = Atomics.load(words, LOCK_BASE) >>> 2; // the state word's high-water mark
  return Array.from(
    { length: claimed },
    (_, i) => Atomics.load(words, seatCountWord(LOCK_BASE, i)),
  );
}

const FLAG = 1 << 30; // SEAT_WRITER

/**
 * Three reader workers, then the main thread, each claim a reader seat of `rw` and read through it
 * once; a writer worker write-locks it, flagging every seat, runs `whileHeld` and dies holding
 * it. Then `recover` runs with the readers, each waiting on `go` to take a read lock through its
 * seat again (on its fast path) and report it. The readers are terminated afterwards.
 */
async function writerDiesWithSeatsFlagged(
  rw: RWMutex,
  recover: (readers: Subject[], go: Int32Array<SharedArrayBuffer>) => Promise<void>,
  whileHeld: () => Promise<void> = async () => {},
): Promise<void> {
  const go = new Int32Array(new SharedArrayBuffer(4));
  const readers = Array.from({ length: 3 }, () => new Subject());
  try {
    for (const r of readers) {
      await r.ask({ op: "rLockAgain", rw: rw.handle, go }, "a reader's first read lock");
    }
    rw.rLock();
    rw.rUnlock();
    assert.deepEqual(seatWords(rw), [0, 0, 0, 0], "four seats claimed, none held");
    await diesHolding({ op: "rwLock", rw: rw.handle, then: "hold" }, "write-locked", async () => {
      assert.deepEqual(seatWords(rw), [FLAG, FLAG, FLAG, FLAG], "the writer flagged every seat");
      await whileHeld();
    });
    await recover(readers, go);
  } finally {
    for (const r of readers) r.worker.terminate();
  }
}

/** Lets the readers of writerDiesWithSeatsFlagged read and asserts what each reports. */
async function readersRead(
  readers: Subject[],
  go: Int32Array<SharedArrayBuffer>,
  result: string,
): Promise<void> {
  Atomics.store(go, 0, 1);
  Atomics.notify(go, 0);
  for (const r of readers) {
    assert.deepEqual(await r.next("a reader's read lock through its flagged seat"), { result });
  }
}

/**
 * After a reader took over the lock of writerDiesWithSeatsFlagged (`seats` claimed): no seat is
 * flagged; the lock stays poisoned for the main thread's reader and writer; once the writer
 * repairs it, every seat reads again, unpoisoned.
 */
async function repairedAfterReaders(
  rw: RWMutex,
  readers: Subject[],
  go: Int32Array<SharedArrayBuffer>,
  seats: number,
): Promise<void> {
  const free = Array(seats).fill(0);
  assert.deepEqual(seatWords(rw), free, "no flag outlives the dead writer");
  assert.throws(() => rw.rLock(), OwnerDeadError);
  rw.rUnlock();
  assert.throws(() => rw.lock(), OwnerDeadError);
  rw.markConsistent();
  rw.unlock();
  assert.deepEqual(seatWords(rw), free, "the writer's unlock cleared its flags");
  // Each reader finds its seat again by its owner word, and reads through it twice.
  for (const r of readers) {
    await r.ask({ op: "rLockAgain", rw: rw.handle, go }, "a reader's read lock");
    assert.deepEqual(await r.next("a reader's second read lock"), { result: "ok" });
  }
  rw.rLock();
  rw.rUnlock();
}

test(
  "RWMutex: a writer dies with every seat flagged; readers take it over, then a writer",
  TEST,
  async () => {
    const rw = new RWMutex();
    await writerDiesWithSeatsFlagged(rw, async (readers, go) => {
      await readersRead(readers, go, "ownerDead");
      await repairedAfterReaders(rw, readers, go, 4);
    });
  },
);

test(
  "RWMutex: a reader that claims a seat while a writer holds the lock is kept out, and takes it over when the writer dies",
  TEST,
  async () => {
    const rw = new RWMutex();
    const late = new Subject();
    try {
      await writerDiesWithSeatsFlagged(
        rw,
        async (readers, go) => {
          assert.deepEqual(await late.next("the late reader's read lock"), {
            result: "ownerDead",
          });
          await readersRead(readers, go, "ownerDead");
          await repairedAfterReaders(rw, readers, go, 5);
        },
        async () => {
          // A fifth seat, claimed after the writer flagged the others: the first read lock
          // through it sees WRITER and waits.
          await late.ask({ op: "rLock", rw: rw.handle, then: "release" }, "the late reader");
          await sleep(200);
          assert.equal(
            late.replied,
            false,
            "a reader on a seat claimed late got in past the writer",
          );
          assert.deepEqual(seatWords(rw), [FLAG, FLAG, FLAG, FLAG, 0], "five seats, four flagged");
        },
      );
    } finally {
      late.worker.terminate();
    }
  },
);

test(
  "RWMutex: a writer dies with every seat flagged; a writer takes it over, then the readers",
  TEST,
  async () => {
    const rw = new RWMutex();
    await writerDiesWithSeatsFlagged(rw, async (readers, go) => {
      assert.throws(() => rw.lock(), OwnerDeadError);
      assert.deepEqual(seatWords(rw), [FLAG, FLAG, FLAG, FLAG], "held: every seat flagged");
      rw.markConsistent();
      rw.unlock();
      assert.deepEqual(seatWords(rw), [0, 0, 0, 0], "the writer's unlock cleared every flag");
      await readersRead(readers, go, "ok");
      rw.rLock();
      rw.rUnlock();
      assert.equal(rw.tryLock(), true);
      rw.unlock();
    });
  },
);

test("OwnerDeadError names the dead holder only for a lock this thread took over from it", () => {
  const dead = 900_001;
  const mu = new Mutex();
  const words = lockWords(mu);
  words[LOCK_BASE] = heldByGone(dead);
  assert.throws(
    () => mu.tryLock(),
    (e: unknown) =>
      e instanceof OwnerDeadError && e.threadId === dead &&
      e.message.startsWith(`the previous holder of this Mutex (thread ${dead}) died holding it:`),
  );
  mu.unlock(); // still poisoned
  // Taken again by the thread that saw the death: no death of its taking, but still marked
  // inconsistent, and the message says so rather than a death again.
  assert.throws(
    () => mu.lock(),
    (e: unknown) =>
      e instanceof OwnerDeadError && e.threadId === -1 &&
      /^this Mutex is marked inconsistent: a holder died holding it, and nobody has called markConsistent\(\) since: .*call markConsistent\(\) before unlocking$/
        .test(e.message),
  );
  mu.unlock();
  // A lock poisoned by a take-over this thread did not make: the holder is unknown here.
  const rw = new RWMutex();
  const rwWords = lockWords(rw);
  rwWords[LOCK_BASE + WRITER_MU] = POISONED; // its writer mutex: free, and poisoned
  assert.throws(() => rw.rLock(), (e: unknown) => e instanceof OwnerDeadError && e.threadId === -1);
  rw.rUnlock();
  assert.throws(
    () => rw.tryLock(),
    (e: unknown) => e instanceof OwnerDeadError && e.threadId === -1,
  );
  rw.markConsistent();
  rw.unlock();
  // The Mutex, taken again free and poisoned: the take-over was reported once, by the error
  // above. Since, another thread may have repaired that death and unlocked, and a second holder
  // died, taken over by a third: naming `dead` again would name the wrong death (it did).
  words[LOCK_BASE] = 0; // another thread marked it consistent and unlocked
  const second = 900_002;
  threadGone(second);
  words[LOCK_BASE] = POISONED; // `second` died holding it; a third thread took it over, unlocked
  assert.throws(() => mu.lock(), (e: unknown) => e instanceof OwnerDeadError && e.threadId === -1);
  mu.markConsistent();
  mu.unlock();
  // Once marked consistent, a new poisoning (another thread's take-over) is not that holder's.
  words[LOCK_BASE] = POISONED;
  assert.throws(() => mu.lock(), (e: unknown) => e instanceof OwnerDeadError && e.threadId === -1);
  mu.markConsistent();
  mu.unlock();
});

test("an RWMutex whose writer died only waiting for readers is not poisoned", () => {
  // Its take-over clears the poison (the lock was clean, and the writer never got in): poisoned
  // read true until then, and lock() got in with no OwnerDeadError.
  const rw = new RWMutex();
  const words = lockWords(rw);
  words[LOCK_BASE + WRITER_MU] = heldByGone(900_004);
  words[LOCK_BASE + DRAIN_NOTE] = 1 | 2; // D_WAITING | D_CLEAN
  assert.equal(rw.poisoned, false);
  rw.lock(); // no OwnerDeadError
  assert.equal(rw.poisoned, false);
  rw.unlock();
});
