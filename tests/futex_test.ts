// Engine unit tests of mutex words (src/_engine/futex.ts) on their own: the owner id in the
// word, misuse by a non-owner or by the owner itself, a sleeper woken by an unlock, and a lock
// whose owner is gone (census.ts) taken over poisoned, in one thread and across real workers
// (tests/fixtures/futex_worker.ts).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { census, GONE, ownerId, record, selfThreadId } from "../src/_engine/census.ts";
import {
  ACQUIRED,
  ACQUIRED_POISONED,
  clearPoison,
  CONTENDED,
  deadOwnerOf,
  lockWord,
  NOT_ACQUIRED,
  ownerOf,
  POISONED,
  tryLockWord,
  unlockWord,
} from "../src/_engine/futex.ts";
import { LOCK_BASE } from "../src/_engine/lock_block.ts";
import { Mutex } from "../src/sync/mutex.ts";
import { threadGone } from "../src/threads.ts";
import type { FutexReply, FutexRequest } from "./fixtures/futex_worker.ts";
import { sleep } from "./fixtures/harness.ts";
import { ReplyQueue } from "./fixtures/reply_queue.ts";
import { startWorker, type TestWorker } from "./fixtures/spawn.ts";

const TEST = { timeout: 60_000 };
/** Thread ids far from any real one, for owners that are not this thread. */
let ghostIds = 200_000 + Math.floor(Math.random() * 100_000) * 16;

function word(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(64));
}

/** A worker of futex_worker.ts, with its replies queued. */
class Locker {
  readonly worker: TestWorker;
  id = -1;
  owner = 0;
  #replies = new ReplyQueue<FutexReply>();

  constructor() {
    this.worker = startWorker(
      new URL("./fixtures/futex_worker.ts", import.meta.url),
      this.#replies.listeners((error) => ({ op: "error", error: String(error) })),
    );
  }

  /** Sends the census, and learns the worker's thread id and owner id. */
  async init(): Promise<this> {
    const reply = await this.ask({ op: "init", census: census() });
    assert.equal(reply.error, undefined);
    this.id = reply.id!;
    this.owner = reply.owner!;
    assert.equal(this.owner, this.id + 1);
    assert.notEqual(this.owner, ownerId());
    return this;
  }

  send(req: FutexRequest): void {
    this.worker.postMessage(req);
  }

  next(what = "a reply"): Promise<FutexReply> {
    return this.#replies.take(30_000, what);
  }

  ask(req: FutexRequest): Promise<FutexReply> {
    this.send(req);
    return this.next(req.op);
  }

  /** Terminates the worker and, once its thread has stopped, declares it gone. */
  async kill(): Promise<void> {
    const stopped = this.worker.stopped(100);
    this.worker.terminate();
    await stopped;
    threadGone(this.id);
  }
}

/** Starts `n` Lockers, runs `body` with them, and terminates them all, whatever happens. */
async function withLockers(n: number, body: (lockers: Locker[]) => Promise<void>): Promise<void> {
  const lockers: Locker[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const locker = new Locker();
      lockers.push(locker);
      await locker.init();
    }
    await body(lockers);
  } finally {
    for (const locker of lockers) locker.worker.terminate();
  }
}

/** Waits, without blocking this thread, until `i32[0]` satisfies `ok`. */
async function until(i32: Int32Array, ok: (w: number) => boolean, what: string): Promise<void> {
  const end = performance.now() + 20_000;
  while (!ok(Atomics.load(i32, 0))) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/**
 * Runs `round` (an unlock that should wake a sleeping worker) until one of its unlocks woke a
 * thread, at most 10 times, counting the threads each Atomics.notify woke; fails if none did.
 */
async function untilAWakeUp(round: () => Promise<void>): Promise<void> {
  const notify = Atomics.notify;
  const woken: number[] = [];
  try {
    Atomics.notify = (view, index, count) => {
      const n = notify(view as Int32Array, index, count);
      woken.push(n);
      return n;
    };
    for (let rounds = 0; !woken.includes(1) && rounds < 10; rounds++) await round();
  } finally {
    Atomics.notify = notify;
  }
  assert.ok(woken.includes(1), `no unlock woke the sleeper: ${woken}`);
}

describe("futex", () => {
  it("lock writes the owner id into the word; unlock clears it", () => {
    const i32 = word();
    const me = ownerId();
    assert.equal(me, selfThreadId() + 1);
    assert.equal(lockWord(i32, 0, me), ACQUIRED);
    assert.equal(i32[0], me << 3);
    assert.equal(ownerOf(i32[0]), me);
    assert.equal(i32[0] & (CONTENDED | POISONED), 0);
    unlockWord(i32, 0, me);
    assert.equal(i32[0], 0);
    assert.equal(tryLockWord(i32, 0, me), ACQUIRED);
    assert.equal(ownerOf(i32[0]), me);
    unlockWord(i32, 0, me);
    // Any word of a view: the index is honoured, the neighbours untouched.
    assert.equal(lockWord(i32, 5, me), ACQUIRED);
    assert.deepEqual(Array.from(i32.subarray(4, 7)), [0, me << 3, 0]);
    unlockWord(i32, 5, me);
  });

  it("unlock by a non-owner, or of an unlocked word, throws and leaves the word", () => {
    const i32 = word();
    const me = ownerId();
    assert.throws(() => unlockWord(i32, 0, me), /unlock of unlocked mutex/);
    assert.equal(i32[0], 0);
    lockWord(i32, 0, me);
    assert.throws(() => unlockWord(i32, 0, me + 1), /held by another thread/);
    assert.equal(i32[0], me << 3);
    i32[0] |= CONTENDED; // a sleeper's mark does not let a stranger in either
    assert.throws(() => unlockWord(i32, 0, me + 1), /held by another thread/);
    assert.equal(i32[0], (me << 3) | CONTENDED);
    assert.throws(() => clearPoison(i32, 0, me + 1), /needs the lock held/);
    unlockWord(i32, 0, me);
    assert.equal(i32[0], 0);
  });

  it("the owner locking again is a deadlock error, not a hang; a try-lock says no", () => {
    const i32 = word();
    const me = ownerId();
    lockWord(i32, 0, me);
    assert.throws(() => lockWord(i32, 0, me), /deadlock/);
    assert.equal(tryLockWord(i32, 0, me), NOT_ACQUIRED);
    assert.equal(i32[0], me << 3);
    unlockWord(i32, 0, me);
  });

  it("a word held by a live stranger is not taken; once the stranger is gone it is, poisoned", () => {
    const i32 = word();
    const me = ownerId();
    const ghost = ghostIds++;
    i32[0] = (ghost + 1) << 3; // held by a thread this one knows nothing about
    assert.equal(tryLockWord(i32, 0, me), NOT_ACQUIRED);
    assert.equal(i32[0], (ghost + 1) << 3);
    record(ghost, GONE);
    // A try-lock here: a lock() that failed to take over would block this thread for good.
    // (lock()'s takeover is tested with a waiter in a worker, below.)
    assert.equal(tryLockWord(i32, 0, me), ACQUIRED_POISONED);
    assert.equal(deadOwnerOf(i32, 0), ghost);
    assert.equal(ownerOf(i32[0]), me);
    assert.equal(i32[0] & POISONED, POISONED);
    // Poison survives an unlock: the next holder must repair too.
    unlockWord(i32, 0, me);
    assert.equal(i32[0], POISONED);
    assert.equal(lockWord(i32, 0, me), ACQUIRED_POISONED, "free but poisoned");
    clearPoison(i32, 0, me);
    assert.equal(i32[0], me << 3);
    clearPoison(i32, 0, me); // idempotent
    unlockWord(i32, 0, me);
    assert.equal(lockWord(i32, 0, me), ACQUIRED);
    unlockWord(i32, 0, me);
    // A try-lock takes over from a gone owner as well.
    const other = ghostIds++;
    i32[0] = ((other + 1) << 3) | CONTENDED;
    threadGone(other);
    assert.equal(tryLockWord(i32, 0, me), ACQUIRED_POISONED);
    assert.equal(i32[0], (me << 3) | POISONED | CONTENDED);
    assert.equal(deadOwnerOf(i32, 0), other);
  });

  it(
    "a worker's lock carries its owner id; an unlock wakes a worker sleeping on the word",
    TEST,
    async () => {
      await withLockers(1, async ([worker]) => {
        const me = ownerId();
        const i32 = word();
        const buffer = i32.buffer as SharedArrayBuffer;
        // The worker's own lock: its id in the word, and this thread may not unlock it.
        const held = await worker.ask({
          op: "hold",
          buffer,
          index: 0,
        });
        assert.equal(held.status, ACQUIRED);
        assert.equal(held.word, worker.owner << 3);
        assert.equal(tryLockWord(i32, 0, me), NOT_ACQUIRED, "held by a live worker");
        assert.throws(() => unlockWord(i32, 0, me), /held by another thread/);
        // The worker locking again is told of the deadlock, in that worker, instead of sleeping.
        const twice = await worker.ask({ op: "lockUnlock", buffer, index: 0 });
        assert.match(twice.error ?? "", /deadlock/);
        assert.equal(i32[0], worker.owner << 3);
        assert.equal(
          (await worker.ask({ op: "unlock", buffer, index: 0 }))
            .error,
          undefined,
        );
        assert.equal(i32[0], 0);
        // This thread holds the lock; the worker blocks, marks the word and sleeps. The unlock
        // may land between two of the sleeper's bounded sleeps, with nobody to wake: try a few
        // times, needing one unlock that woke it.
        await untilAWakeUp(async () => {
          assert.equal(lockWord(i32, 0, me), ACQUIRED);
          worker.send({ op: "lockUnlock", buffer, index: 0 });
          await until(i32, (w) => (w & CONTENDED) !== 0, "the worker to mark the word contended");
          assert.equal(ownerOf(i32[0]), me);
          await sleep(10); // asleep in Atomics.wait by now
          unlockWord(i32, 0, me);
          const got = await worker.next("the worker's lock");
          assert.equal(got.error, undefined);
          assert.equal(got.status, ACQUIRED);
          // A woken thread keeps CONTENDED: others may sleep still.
          assert.equal(got.word, (worker.owner << 3) | CONTENDED);
          assert.equal(i32[0], 0, "unlocked by the worker");
        });
      });
    },
  );

  it(
    "the public Mutex's unlock (its fast path written out) wakes a worker sleeping on it",
    TEST,
    async () => {
      await withLockers(1, async ([worker]) => {
        const mu = new Mutex();
        const { buffer, byteOffset } = mu.handle;
        const index = byteOffset / 4 + LOCK_BASE;
        const lockWordView = new Int32Array(buffer, index * 4, 1);
        await untilAWakeUp(async () => {
          mu.lock();
          worker.send({ op: "lockUnlock", buffer, index });
          await until(lockWordView, (w) => (w & CONTENDED) !== 0, "the worker to sleep");
          await sleep(10); // asleep in Atomics.wait by now
          mu.unlock();
          const got = await worker.next("the worker's lock");
          assert.equal(got.error, undefined);
          assert.equal(got.word, (worker.owner << 3) | CONTENDED);
        });
        // Unlocked whole: the worker took the lock and released it.
        assert.equal(lockWordView[0], 0);
        assert.equal(mu.tryLock(), true);
        mu.unlock();
      });
    },
  );

  it("a worker sleeping on a lock whose holder dies takes it over, poisoned", TEST, async () => {
    await withLockers(2, async ([holder, waiter]) => {
      const me = ownerId();
      const i32 = word();
      const buffer = i32.buffer as SharedArrayBuffer;
      const held = await holder.ask({ op: "hold", buffer, index: 0 });
      assert.equal(held.word, holder.owner << 3);
      waiter.send({ op: "lockUnlock", buffer, index: 0 });
      await until(i32, (w) => (w & CONTENDED) !== 0, "the waiter to sleep");
      await sleep(100);
      assert.equal(ownerOf(i32[0]), holder.owner, "a slow holder keeps its lock");
      await holder.kill(); // terminated holding the lock, then declared gone
      const got = await waiter.next("the waiter's lock");
      assert.equal(got.error, undefined);
      assert.equal(got.status, ACQUIRED_POISONED);
      assert.equal(ownerOf(got.word!), waiter.owner);
      assert.equal(got.word! & POISONED, POISONED);
      // The waiter unlocked without clearing the poison: this thread gets it poisoned too.
      assert.equal(i32[0], POISONED);
      assert.equal(lockWord(i32, 0, me), ACQUIRED_POISONED);
      clearPoison(i32, 0, me);
      unlockWord(i32, 0, me);
      assert.equal(i32[0], 0);
      const again = await waiter.ask({ op: "lockUnlock", buffer, index: 0 });
      assert.equal(again.status, ACQUIRED, "repaired: no longer poisoned");
      assert.equal(again.word, waiter.owner << 3);
    });
  });
});
