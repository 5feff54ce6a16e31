// Copyright the shmap authors. MIT license.
// Corrupt memory is an error, not a hang (README, Guarantees > Calls). One word written from
// outside (a journal's count, an entry, the participant registry's high-water mark, a retire
// list's count) makes the next call throw a RangeError naming it, at once: a journal is checked
// whole before a rollback writes anything, the lock it belongs to is left free, and work shmap
// does outside any call (going offline at the end of a task, releasing a worker's share) never
// throws into the host, which would end the process: the map's next call throws instead.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { GoMap, SyncMap, threadGone } from "../mod.ts";
import { Arena, H_ALLOC_JOURNAL, H_ALLOC_LOCK, KIND_SYNC_MAP } from "../src/_engine/arena.ts";
import { pauseWorld } from "../src/_engine/registry.ts";
import { OWNER_SHIFT, POISONED } from "../src/_engine/futex.ts";
import { JOURNAL, LAST_SEQ, LAYOUT, LAYOUT_WRAPS, SEQ } from "../src/maps/_go_layout.ts";
import { R_JOURNAL, R_MU, R_PAUSE, R_SEATS_HIGH, registryOf } from "../src/maps/_sync_layout.ts";
import { runChild } from "./fixtures/child.ts";

/** A thread id nothing in this process uses, declared gone: the "dead" holder of a lock. */
const DEAD = 2 ** 28 - 2;
threadGone(DEAD);

// Journal words (src/_engine/journal.ts): count, capacity, state, then entries from word 12.
const J_COUNT = 0, J_CAPACITY = 1, J_STATE = 2, J_ENTRIES = 12;
const ACTIVE = 1;
/** A count far past any journal's capacity: replayed, it took 42 s and wrote garbage. */
const HUGE = 1501647360;

/** Asserts that `f` throws a RangeError matching `message` within a second. */
function throwsSoon(f: () => unknown, message: RegExp): void {
  const start = performance.now();
  assert.throws(f, (error: unknown) => {
    assert.ok(error instanceof RangeError, `a RangeError, got ${error}`);
    assert.match((error as Error).message, message);
    return true;
  });
  const ms = performance.now() - start;
  assert.ok(ms < 1000, `it took ${ms.toFixed(0)} ms`);
}

/** The words of `i32` that differ from `before`, but for `except`. */
function changed(before: Int32Array, i32: Int32Array, except: number[]): number[] {
  const out: number[] = [];
  for (let w = 0; w < before.length; w++) {
    if (before[w] !== i32[w] && !except.includes(w)) out.push(w);
  }
  return out;
}

function goMap(): { map: GoMap<number, unknown>; i32: Int32Array; journal: number } {
  const map = new GoMap<number, unknown>({ maxBytes: 1 << 20 });
  for (let i = 0; i < 300; i++) map.set(i, i % 2 ? "v" + i : i);
  const i32 = new Int32Array(map.handle.buffer);
  return { map, i32, journal: i32[JOURNAL] >> 2 };
}

describe("GoMap: a corrupt writer's journal", () => {
  test("a count past the capacity: every write that needs the journal throws at once, having written nothing", () => {
    const { map, i32, journal } = goMap();
    map.set(3, "a value long enough to be stored as a blob");
    i32[journal + J_COUNT] = HUGE;
    const before = i32.slice();
    const corrupt = new RegExp(`corrupt journal at word ${journal}: count ${HUGE}`);
    throwsSoon(() => map.set(1000, "x"), corrupt); // a new key
    throwsSoon(() => map.set(1, "y"), corrupt); // an overwrite
    throwsSoon(() => map.set(2, true), corrupt); // an inline overwrite: Journal.setPair
    throwsSoon(() => map.set(3, 7), corrupt); // a number over a blob, which is freed
    throwsSoon(() => map.delete(3), corrupt);
    throwsSoon(() => map.clear(), corrupt);
    // The write sequence moved on, and clear() recorded its intent before its first step and
    // stamped the layout (a clear that cannot tell how far it got stamps it anyway).
    const intent = [journal + 3, journal + 4];
    const stamp = [LAYOUT, LAYOUT_WRAPS];
    assert.deepEqual(changed(before, i32, [SEQ, LAST_SEQ, ...intent, ...stamp]), []);
    // Reads take no journal, nor does a number written over an inline value (one 8-byte store,
    // _go_writer.ts overwriteNumber), which the clear's failure left in place.
    assert.equal(map.get(5), "v5");
    map.set(2, 7);
    assert.equal(map.get(2), 7);
    assert.equal(i32[journal + J_COUNT], HUGE);
    assert.throws(() => map.verify(), RangeError);
  });

  test("a negative count, a state of none of the three, a capacity word changed", () => {
    for (const [word, value] of [[J_COUNT, -1], [J_STATE, 9], [J_CAPACITY, 1 << 24]]) {
      const { map, i32, journal } = goMap();
      i32[journal + word] = value;
      const before = i32.slice();
      throwsSoon(() => map.set(1000, "x"), new RegExp(`corrupt journal at word ${journal + word}`));
      assert.deepEqual(changed(before, i32, [SEQ, LAST_SEQ]), []);
    }
  });

  test("a dead writer's journal with a bad entry: its recovery checks it all before it writes", () => {
    const { map, i32, journal } = goMap();
    const target = journal + J_ENTRIES + 2 * 1024 + 40; // a heap word past the journal
    const old = i32[target];
    // The dead writer's journal: entry 0 is sound, entry 1 (undone first) names a word past
    // the arena.
    i32[journal + J_ENTRIES] = target << 2;
    i32[journal + J_ENTRIES + 1] = old + 1;
    i32[journal + J_ENTRIES + 2] = (i32.length + 100) << 2;
    i32[journal + J_ENTRIES + 3] = 0;
    i32[journal + J_STATE] = ACTIVE;
    i32[journal + J_COUNT] = 2;
    const dead = ((DEAD + 1) << 1) | 1;
    i32[SEQ] = dead;
    const entry1 = new RegExp(`corrupt journal at word ${journal + J_ENTRIES + 2}: entry 1`);
    throwsSoon(() => map.get(5), entry1);
    assert.equal(i32[target], old, "entry 0 was not applied");
    // The sequence goes back to the dead writer: whoever comes next meets the same error, not a
    // write sequence held for good by the thread that failed to recover.
    assert.equal(i32[SEQ], dead);
    throwsSoon(() => map.set(1000, 1), entry1);
    throwsSoon(() => map.get(5), entry1);
  });

  test("a clear intent at a step past the clear's end", () => {
    const { map, i32, journal } = goMap();
    i32[journal + 3] = 1; // J_INTENT: INTENT_CLEAR
    i32[journal + 4] = -5; // its progress: the next step
    i32[SEQ] = ((DEAD + 1) << 1) | 1;
    throwsSoon(() => map.get(5), /corrupt journal at word \d+: a clear at step -5/);
  });
});

function syncMap(): { map: SyncMap<number, string>; i32: Int32Array } {
  const map = new SyncMap<number, string>({ maxBytes: 1 << 20 });
  for (let i = 0; i < 300; i++) map.store(i, "v" + i);
  return { map, i32: new Int32Array(map.handle.buffer) };
}

describe("SyncMap: a corrupt journal leaves its lock free", () => {
  test("the mutex's journal: each locked step throws at once, and the mutex is unlocked", () => {
    const { map, i32 } = syncMap();
    const journal = i32[R_JOURNAL] >> 2;
    i32[journal + J_COUNT] = HUGE;
    const corrupt = new RegExp(`corrupt journal at word ${journal}: count ${HUGE}`);
    throwsSoon(() => map.store(1000, "x"), corrupt);
    assert.equal(Atomics.load(i32, R_MU), 0, "the mutex is free");
    throwsSoon(() => map.store(1001, "y"), corrupt);
    throwsSoon(() => map.clear(), corrupt);
    assert.equal(Atomics.load(i32, R_MU), 0);
  });

  test("a dead holder's journal with a bad entry: nothing undone, the mutex free and poisoned", () => {
    const { map, i32 } = syncMap();
    const journal = i32[R_JOURNAL] >> 2;
    const target = journal + J_ENTRIES + 2 * 512 + 40;
    const old = i32[target];
    i32[journal + J_ENTRIES] = target << 2;
    i32[journal + J_ENTRIES + 1] = old + 1;
    i32[journal + J_ENTRIES + 2] = ((i32.length + 7) << 2) | 1; // a ZERO range past the arena
    i32[journal + J_ENTRIES + 3] = i32.length + 9;
    i32[journal + J_STATE] = ACTIVE;
    i32[journal + J_COUNT] = 2;
    Atomics.store(i32, R_MU, (DEAD + 1) << OWNER_SHIFT);
    const entry1 = /corrupt journal at word \d+: entry 1/;
    throwsSoon(() => map.store(1000, "x"), entry1);
    assert.equal(i32[target], old, "entry 0 was not applied");
    assert.equal(Atomics.load(i32, R_MU), POISONED, "unlocked, still poisoned");
    throwsSoon(() => map.store(1000, "x"), entry1); // the next holder tries again
  });

  test("the allocator's journal: an allocation throws at once, and its lock is free", () => {
    const { map, i32 } = syncMap();
    i32[H_ALLOC_JOURNAL + J_COUNT] = HUGE;
    const corrupt = new RegExp(`corrupt journal at word ${H_ALLOC_JOURNAL}: count ${HUGE}`);
    // A new key of more than 1 KiB allocates its blob from the heap under the allocator's lock,
    // inside the mutex (a small block would come from this thread's cache).
    const keys = map as unknown as SyncMap<string, string>;
    throwsSoon(() => keys.store("k".repeat(600), "x"), corrupt);
    assert.equal(Atomics.load(i32, H_ALLOC_LOCK), 0, "the allocator's lock is free");
    // The mutex's step could not be rolled back (its rollback takes the allocator's lock, whose
    // journal is corrupt): it is free, poisoned, for the next holder to try again.
    assert.equal(Atomics.load(i32, R_MU) >>> OWNER_SHIFT, 0, "the mutex is free");
    throwsSoon(() => keys.store("j".repeat(600), "y"), corrupt);
    assert.equal(Atomics.load(i32, R_MU) >>> OWNER_SHIFT, 0, "the mutex is free again");
  });
});

describe("SyncMap: a corrupt participant registry", () => {
  test("a high-water mark past the seats: reaping and verify throw, the world is not left paused", () => {
    const { map, i32 } = syncMap();
    Atomics.store(i32, R_SEATS_HIGH, 1 << 20);
    throwsSoon(() => map.verify(), /corrupt participant registry: high-water mark 1048576/);
    assert.equal(Atomics.load(i32, R_PAUSE), 0, "the pause is lowered");
    assert.equal(Atomics.load(i32, R_MU), 0, "the mutex is free");
    // Corrupted once the pause is up (by another thread, say), the mark stops the world's stop,
    // which lowers the pause as it throws: raised, it would park every other participant.
    const { i32: j32 } = syncMap();
    const registry = registryOf(Arena.attach(j32.buffer, KIND_SYNC_MAP, true, "test"));
    Atomics.store(j32, R_SEATS_HIGH, -1);
    throwsSoon(() => pauseWorld(registry, 10), /high-water mark -1 of/);
    assert.equal(Atomics.load(j32, R_PAUSE), 0, "the pause is lowered");
  });
});

describe("work done outside any call never throws into the host", () => {
  // A child process, since what a microtask or a timer throws ends the process: the fixture
  // corrupts SyncMaps where going offline and a worker's share release meet it, and reports
  // what each map's next call did.
  test("going offline, a share released, an end declared: the next call throws, the host lives", {
    timeout: 60_000,
  }, async () => {
    const script = new URL("./fixtures/corrupt_deferred.ts", import.meta.url);
    const { code, stdout, stderr, timedOut } = await runChild(script, [], 30_000);
    assert.equal(timedOut, false, "the child hung");
    assert.equal(code, 0, `the child died:\n${stderr}`);
    assert.equal(stderr, "");
    const report = JSON.parse(stdout.trim().split("\n").pop()!) as Record<string, string>;
    assert.match(report.offline, /^RangeError: corrupt retire list at byte \d+: count 1000000000/);
    const journal = new RegExp(`^RangeError: corrupt journal at word ${H_ALLOC_JOURNAL}: count`);
    assert.match(report.releaseTimer, journal);
    assert.match(report.releaseEvent, journal);
    assert.equal(report.censusEvent, "released");
    assert.equal(report.alive, "yes");
  });
});
