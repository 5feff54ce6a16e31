// Copyright the shmap authors. MIT license.
// The census (src/_engine/census.ts) is known by its identity, not by the SharedArrayBuffer
// object that brought it: every postMessage of a handle brings a new object for the same
// memory, and a worker that took them for different censuses would lose the census check's
// fast path on every call for good (it passes only while a thread knows one census).

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  census,
  GONE,
  newCensus,
  ownerId,
  record,
  recordChild,
  stateOf,
  stopHookCount,
  TERMINATING,
} from "../src/_engine/census.ts";
import { until } from "./fixtures/harness.ts";
import { ACQUIRED_POISONED, NOT_ACQUIRED, tryLockWord } from "../src/_engine/futex.ts";
import { threadGone } from "../src/threads.ts";
import { SyncMap } from "../src/maps/sync_map.ts";
import { Mutex } from "../src/sync/mutex.ts";
import type { CensusMessage, CensusReply } from "./fixtures/census_worker.ts";
import { ReplyQueue } from "./fixtures/reply_queue.ts";
import { runtime, startWorker } from "./fixtures/spawn.ts";

/** Made-up thread ids, far from any real one, for threads this test declares gone. */
let ghostIds = 9_000_000;

test("census: handles of one census in separate messages make one census, fast path kept", async () => {
  const mu = new Mutex();
  const map = new SyncMap<number, number>();
  assert.notEqual(structuredClone(mu.handle).census, structuredClone(mu.handle).census);
  const replies = new ReplyQueue<CensusReply>();
  const worker = startWorker(
    new URL("./fixtures/census_worker.ts", import.meta.url),
    replies.listeners(() => ({ censuses: -1, fastPath: false, threadId: -1 })),
  );
  try {
    const messages: CensusMessage[] = [
      { mutex: mu.handle },
      { syncMap: map.handle },
      { mutex: mu.handle },
    ];
    for (const [i, message] of messages.entries()) {
      worker.postMessage(message);
      const reply = await replies.take(30_000, `reply ${i}`);
      assert.deepEqual(
        { censuses: reply.censuses, fastPath: reply.fastPath, error: reply.error },
        { censuses: 1, fastPath: true, error: undefined },
        `after message ${i}`,
      );
    }
  } finally {
    worker.terminate();
  }
});

/** Word indexes of the census layout (src/_engine/census.ts). */
const C_COUNT = 1;
const C_ENTRIES = 8;
/** Words per entry: the thread id and state, then a child's watcher. */
const ENTRY_WORDS = 2;
/** The entry kind of a watched worker (census.ts CHILD). */
const CHILD = 3;

/**
 * Cuts an append short where a dying appender would stop: entry `count` written, the count not
 * yet moved past it. Returns the entry's index.
 */
function writeUncounted(census: SharedArrayBuffer, threadId: number, state: number): number {
  const i32 = new Int32Array(census);
  const count = Atomics.load(i32, C_COUNT);
  const at = C_ENTRIES + count * ENTRY_WORDS;
  assert.ok(at + ENTRY_WORDS <= i32.length, "the entry lies in the census as it is");
  assert.equal(Atomics.compareExchange(i32, at, 0, (threadId << 2) | state), 0);
  return count;
}

// An appender that dies after writing its entry and before moving the count on must lose
// nothing: the next append counts the entry first and writes its own after it. (An append that
// reserved its index before writing would take the written entry's index and overwrite it: the
// worker below would never learn it was terminating.)
test("census: an append cut short after its entry is written is counted by the next", async () => {
  const mu = new Mutex();
  const replies = new ReplyQueue<CensusReply>();
  const worker = startWorker(
    new URL("./fixtures/census_worker.ts", import.meta.url),
    replies.listeners(() => ({ censuses: -1, fastPath: false, threadId: -1 })),
  );
  const ask = (message: CensusMessage, what: string): Promise<CensusReply> => {
    worker.postMessage(message);
    return replies.take(30_000, what);
  };
  try {
    const { threadId, error } = await ask({ mutex: mu.handle }, "the first lock");
    assert.equal(error, undefined);
    const census = mu.handle.census!;
    const at = writeUncounted(census, threadId, TERMINATING);
    // The next appender: another thread declared gone.
    threadGone(ghostIds++);
    const i32 = new Int32Array(census);
    // On Deno threadGone also vouches for the end, a third entry (census.ts, vouchGone).
    const appended = "Deno" in globalThis && !("Bun" in globalThis) ? 2 : 1;
    assert.equal(Atomics.load(i32, C_COUNT), at + 1 + appended, "every entry counted");
    assert.equal(
      Atomics.load(i32, C_ENTRIES + at * ENTRY_WORDS) >>> 2,
      threadId,
      "the cut entry is kept",
    );
    const stopped = await ask({ lock: true }, "the lock after the next append");
    assert.equal(stopped.error, "TerminatedError");
  } finally {
    worker.terminate();
  }
});

// A lock whose owner's GONE entry was written by an appender that died before counting it is
// taken over by the next thread that looks, with no later append: the looker counts the entry.
test("census: a lock's looker counts a dead appender's entry, and takes the lock over", () => {
  const i32 = new Int32Array(new SharedArrayBuffer(4));
  const ghost = ghostIds++;
  i32[0] = (ghost + 1) << 3; // held by a thread this one knows nothing about
  const me = ownerId();
  assert.equal(tryLockWord(i32, 0, me), NOT_ACQUIRED, "a live stranger's lock is not taken");
  const at = writeUncounted(census(), ghost, GONE);
  assert.equal(tryLockWord(i32, 0, me), ACQUIRED_POISONED, "the gone owner's lock is taken");
  assert.equal(Atomics.load(new Int32Array(census()), C_COUNT), at + 1);
  assert.equal(stateOf(ghost), GONE);
});

// Appenders in several threads at once: every entry is counted once, none is lost.
test("census: appends racing from several workers are all counted, none lost", async () => {
  const mu = new Mutex();
  const workers = 3;
  const each = 300;
  const first = ghostIds;
  ghostIds += workers * each;
  const before = Atomics.load(new Int32Array(mu.handle.census!), C_COUNT);
  const replies = new ReplyQueue<CensusReply>();
  const started = Array.from({ length: workers }, () =>
    startWorker(
      new URL("./fixtures/census_worker.ts", import.meta.url),
      replies.listeners(() => ({ censuses: -1, fastPath: false, threadId: -1 })),
    ));
  try {
    for (const w of started) w.postMessage({ mutex: mu.handle } satisfies CensusMessage);
    for (let i = 0; i < workers; i++) await replies.take(30_000, `attach ${i}`);
    started.forEach((w, i) => {
      const from = first + i * each;
      w.postMessage({ gone: [from, from + each] } satisfies CensusMessage);
    });
    for (let i = 0; i < workers; i++) {
      assert.equal((await replies.take(60_000, `appends ${i}`)).error, undefined);
    }
    const i32 = new Int32Array(mu.handle.census!);
    const count = Atomics.load(i32, C_COUNT);
    // Each worker on Deno also writes its OS thread (kind 0) as it takes its owner id: the
    // GONE entries are the appends.
    const ids = new Set<number>();
    let appends = 0;
    for (let i = before; i < count; i++) {
      const entry = Atomics.load(i32, C_ENTRIES + i * ENTRY_WORDS);
      if ((entry & 3) !== GONE) continue;
      appends++;
      ids.add(entry >>> 2);
    }
    assert.equal(appends, workers * each, "one counted entry per append");
    assert.equal(ids.size, workers * each, "every append's own entry");
    for (let id = first; id < first + workers * each; id++) assert.equal(stateOf(id), GONE);
  } finally {
    for (const w of started) w.terminate();
  }
});

/**
 * Appends a child entry as a worker's watch does (census.ts recordChild, which the main thread
 * never does), with the watcher written after the count moved past the entry when `late`: a
 * reader that synced in between finds it at its next sync.
 */
function appendChild(child: number, watcher: number, late = false): void {
  const at = writeUncounted(census(), child, CHILD);
  const i32 = new Int32Array(census());
  const word = C_ENTRIES + at * ENTRY_WORDS + 1;
  if (late) {
    assert.equal(Atomics.compareExchange(i32, C_COUNT, at, at + 1), at);
    assert.equal(stateOf(child), 0, "read before its watcher is known");
  }
  Atomics.store(i32, word, watcher + 1);
  if (!late) assert.equal(Atomics.compareExchange(i32, C_COUNT, at, at + 1), at);
}

// A worker's nested workers end with it (tests/nested_workers_test.ts runs real ones): a
// thread whose watcher, or whose watcher's watcher, is terminating or gone counts as
// terminating itself, and the declaration of a watcher's end goes on down to its children.
test("census: a watched thread is terminating once its watcher is, down the nesting", async () => {
  const mid = ghostIds++, leaf = ghostIds++, grand = ghostIds++, other = ghostIds++;
  appendChild(leaf, mid);
  appendChild(grand, leaf, true);
  appendChild(other, ghostIds++);
  for (const id of [mid, leaf, grand, other]) assert.equal(stateOf(id), 0);
  threadGone(mid);
  assert.equal(stateOf(mid), GONE);
  assert.equal(stateOf(leaf), TERMINATING, "a child of a gone thread");
  assert.equal(stateOf(grand), TERMINATING, "a grandchild, whose watcher came late");
  assert.equal(stateOf(other), 0, "another watcher's child");
  // A watcher only terminating may still be stopping (in a blocking call) while its children run
  // healthy: they count as terminating from then only on Deno, where no event says it stopped.
  const stopping = ghostIds++, child = ghostIds++;
  appendChild(child, stopping);
  record(stopping, TERMINATING);
  assert.equal(stateOf(child), runtime === "deno" ? TERMINATING : 0);
  // Declared gone after the grace, the child first, then its own child.
  await until(() => stateOf(grand) === GONE, "the nested workers are declared gone", 5_000);
  assert.equal(stateOf(leaf), GONE);
  assert.equal(stateOf(other), 0);
});

test("census: the main thread records no children", () => {
  const before = Atomics.load(new Int32Array(census()), C_COUNT);
  recordChild(ghostIds++);
  assert.equal(Atomics.load(new Int32Array(census()), C_COUNT), before);
  assert.throws(() => recordChild(-1), TypeError);
});

// A thread that takes its id from a census it made itself (a Deno web worker that asks for its
// id before attaching anything) must not share it with another such thread: ids are a thread's
// identity in every lock word and census entry. Two censuses' first ids must almost never meet.
test("census: censuses made apart hand out different ids", () => {
  const C_NEXT_ID = 2;
  const firsts = new Set<number>();
  for (let i = 0; i < 2_000; i++) {
    const first = new Int32Array(newCensus())[C_NEXT_ID];
    assert.ok(first >= 2 ** 24 && first + 2 ** 20 <= 2 ** 28, `first id ${first} out of range`);
    firsts.add(first);
  }
  // 2,000 draws from 2^28 - 2^24 - 2^20 values meet about once in 125.
  assert.ok(firsts.size >= 1_998, `${2_000 - firsts.size} ids handed out twice`);
});

test("a closed SyncMap object keeps no stop hook: a thread may attach and close for good", () => {
  const map = new SyncMap<string, number>();
  // Read first: a new map sets its hook as its handle is first read (a map nothing else can
  // reach has no hook: tests/sync_map_churn_test.ts).
  const handle = map.handle;
  const before = stopHookCount();
  for (let i = 0; i < 1_000; i++) {
    const m = SyncMap.attach<string, number>(handle);
    m.store("k", i);
    m.close();
    new SyncMap<string, number>().close();
  }
  // Each kept its hook (about 130 bytes of heap) for the thread's life: 2,000 here.
  assert.equal(stopHookCount(), before);
  map.close();
  assert.equal(stopHookCount(), before - 1);
});
