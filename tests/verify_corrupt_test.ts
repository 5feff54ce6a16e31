// Copyright the shmap authors. MIT license.
// verify() names each broken invariant the maps' calls rely on, so that a structure it passes is
// one the next call can use. Each case below writes a few words from outside, as corrupt memory
// would, into a state the calls cannot reach themselves; verify() must name it with its clear
// RangeError, and where the case says, the call that would trip on it must throw a RangeError
// rather than write outside the structure.

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Worker } from "node:worker_threads";
import { currentThreadId, GoMap, SyncMap, threadGone } from "../mod.ts";
import {
  A_BITMAP,
  A_LISTS,
  A_SPARE,
  BITMAP_WORDS,
  CHUNK_HEADER,
  sizeClass,
} from "../src/_engine/alloc_layout.ts";
import { Arena, KIND_SYNC_MAP } from "../src/_engine/arena.ts";
import { Table } from "../src/_engine/table.ts";
import {
  BUCKET_SIZE,
  BUCKET_SLOTS,
  EMPTY_ONE,
  KEYS,
  MIN_TOP_HASH,
  SAME_SIZE_GROW,
  T_B,
  T_BUCKETS,
  T_COUNT,
  T_FLAGS,
  T_NEVACUATE,
  T_OLDBUCKETS,
  T_OLDOVERFLOW,
} from "../src/_engine/table_layout.ts";
import { OWNER_SHIFT } from "../src/_engine/futex.ts";
import { Participant } from "../src/_engine/reclaim.ts";
import {
  ANNOUNCE,
  claimSeat,
  OWNER,
  SEAT_WORDS,
  seatBlocks,
  seatHigh,
} from "../src/_engine/registry.ts";
import { listCount, tagAt } from "../src/_engine/retire_list.ts";
import { JOURNAL, TABLE_AT } from "../src/maps/_go_layout.ts";
import { track } from "../src/workers/node.ts";
import { runChild } from "./fixtures/child.ts";
import { start, startLine } from "./fixtures/start_line.ts";
import {
  AMENDED,
  E_KEY_LO,
  E_OWNER,
  EXPUNGED,
  K_RECORD,
  NIL,
  R_DIRTY,
  R_MU,
  R_READ,
  REC_LO,
  RECORD_HEADER,
  registryOf,
  S_ENTRY,
  S_OWNS,
} from "../src/maps/_sync_layout.ts";

/** Asserts that `map.verify()` throws a RangeError whose message matches `message`. */
function named(map: { verify(): void }, message: RegExp): void {
  assert.throws(() => map.verify(), (error: unknown) => {
    assert.ok(error instanceof RangeError, `a RangeError, got ${error}`);
    assert.match((error as Error).message, /^verify: /);
    assert.match((error as Error).message, message);
    return true;
  });
}

/** A SyncMap of keys 0..n-1 (i → i), all in the read table, no dirty table. */
function promoted(n = 20): { map: SyncMap<number, number>; arena: Arena } {
  const map = new SyncMap<number, number>();
  for (let i = 0; i < n; i++) map.store(i, i);
  for (let r = 0; r < 3 * n; r++) map.load(1000 + r); // misses promote the dirty table
  const arena = Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test");
  assert.equal(arena.i32[R_DIRTY], 0);
  return { map, arena };
}

/** The key slots of the table at `header`, by their number key. */
function slots(arena: Arena, header: number): Map<number, number> {
  const out = new Map<number, number>();
  const table = new Table(arena, header & ~AMENDED, false, () => {}, undefined as never);
  table.forEachKeySlot(0, 0, (k) => void out.set(arena.f64[k >> 3], k));
  return out;
}

describe("SyncMap: verify() checks how the tables and entries fit together", () => {
  test("the read word amended with no dirty table; a promotion refuses it", () => {
    const { map, arena } = promoted();
    map.verify();
    Atomics.or(arena.i32, R_READ, AMENDED);
    named(map, /amended, but there is no dirty table/);
    const header = Array.from(arena.i32.subarray(0, 64));
    assert.throws(() => map.range(() => {}), /corrupt SyncMap: amended/);
    assert.deepEqual(Array.from(arena.i32.subarray(0, 64)), header, "nothing written");
  });

  test("a hint's empty dirty table beside a read word not amended passes; a key in it must amend", () => {
    const map = new SyncMap<number, number>({ hint: 64 });
    map.verify(); // the dirty table the hint made, empty, and no read table
    map.store(1, 1);
    map.verify();
    const arena = Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test");
    assert.notEqual(arena.i32[R_DIRTY], 0);
    Atomics.and(arena.i32, R_READ, ~AMENDED); // key 1, in the dirty table only, unannounced
    named(map, /dirty table's entry at \d+ is not in the read table, which is not amended/);
  });

  test("an expunged read entry with no dirty table; a store of its key repairs it", () => {
    const { map, arena } = promoted();
    map.delete(5);
    const k = slots(arena, arena.i32[R_READ]).get(5)!;
    const e = arena.i32[(k >> 2) + S_ENTRY];
    assert.equal(arena.i32[e >> 2], NIL);
    arena.i32[e >> 2] = EXPUNGED;
    named(map, /expunged, but there is no dirty table/);
    map.store(5, 55);
    assert.equal(map.load(5), 55);
    map.verify();
  });

  test("a read entry missing from the dirty table", () => {
    const { map, arena } = promoted();
    map.store(100, 100); // a dirty table: the read keys and 100
    const dirty = arena.i32[R_DIRTY];
    const k = slots(arena, dirty).get(7)!;
    // Key 7's slot in the dirty table marked empty (EMPTY_ONE), its count one less.
    const B = arena.i32[(dirty >> 2) + T_B];
    const buckets = arena.i32[(dirty >> 2) + T_BUCKETS];
    let cleared = false;
    for (let j = 0; j < 1 << B; j++) {
      const b = buckets + j * BUCKET_SIZE;
      for (let i = 0; i < BUCKET_SLOTS; i++) {
        if (b + KEYS + 8 * i === k) {
          arena.u8[b + i] = EMPTY_ONE;
          cleared = true;
        }
      }
    }
    assert.ok(cleared, "key 7's slot is in the bucket array");
    arena.i32[(dirty >> 2) + T_COUNT]--;
    named(map, /entry at \d+ is missing from the dirty table/);
  });

  test("a live slot that owns a record, one whose key is not its entry's, an entry marked owned", () => {
    {
      const { map, arena } = promoted();
      const k = slots(arena, arena.i32[R_READ]).get(5)!;
      arena.i32[(k >> 2) + S_OWNS] = 1;
      named(map, /slot at \d+ owns 1, as only a retired one may/);
    }
    {
      const { map, arena } = promoted();
      const k = slots(arena, arena.i32[R_READ]).get(5)!;
      const e = arena.i32[(k >> 2) + S_ENTRY];
      arena.i32[(e >> 2) + E_KEY_LO] ^= 1;
      named(map, /holds a key other than its entry's/);
    }
    {
      const { map, arena } = promoted();
      const k = slots(arena, arena.i32[R_READ]).get(5)!;
      const e = arena.i32[(k >> 2) + S_ENTRY];
      arena.i32[(e >> 2) + E_OWNER] = 4096;
      named(map, /entry at \d+ is marked as owned by 4096/);
    }
    {
      // The second slot of the walk made to name the first one's entry: the message names both
      // slots (the first found again by a second walk).
      const { map, arena } = promoted();
      const [first, second] = [...slots(arena, arena.i32[R_READ]).values()];
      arena.i32[(second >> 2) + S_ENTRY] = arena.i32[(first >> 2) + S_ENTRY];
      named(map, new RegExp(`slots at ${first} and ${second} share an entry`));
    }
  });

  test("a block owned twice is named with both owners", () => {
    // A retired record (in this thread's retire list, not yet freed) that is also a live entry's
    // value. The message names the second owner with its place in the retire list, and the
    // first, which the marking finds again only for the message, and only up to it: the next
    // entry is broken too (a tag of unknown kind), which the first marking never reached.
    const map = new SyncMap<number, string>();
    for (let i = 0; i < 20; i++) map.store(i, `value ${i}`);
    for (let r = 0; r < 60; r++) map.load(1000 + r); // misses promote the dirty table
    map.store(1, "again"); // retires key 1's record, pending until this thread's next collect
    map.store(2, "again");
    const arena = Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test");
    const registry = registryOf(arena);
    const lists = Array.from({ length: seatHigh(registry) }, (_, i) => seatBlocks(registry, i).list)
      .filter((list) => list !== 0 && listCount(arena, list) > 0);
    assert.equal(lists.length, 1, "this thread's retire list holds the record");
    const k = slots(arena, arena.i32[R_READ]).get(5)!;
    const value = Atomics.load(arena.i32, arena.i32[(k >> 2) + S_ENTRY] >> 2);
    arena.i32[tagAt(lists[0] >> 2, 0)] = value | K_RECORD;
    arena.i32[tagAt(lists[0] >> 2, 1)] = 0x100 | 7;
    named(
      map,
      new RegExp(
        `a retired record \\(seat \\d+, entry 0 of 2\\) at ${value} is owned twice ` +
          `\\(also as a value record\\)`,
      ),
    );
  });

  test("an entry offset past the buffer is named, not read", () => {
    const { map, arena } = promoted();
    const k = slots(arena, arena.i32[R_READ]).get(3)!;
    arena.i32[(k >> 2) + S_ENTRY] = 0x3fff0000;
    named(map, /an entry at 1073676288: not a block of the heap/);
  });
});

describe("GoMap: verify() checks the table for what its writes rely on", () => {
  test("a key stored twice", () => {
    const map = new GoMap<number, number>().set(1, 10).set(2, 20);
    const u8 = new Uint8Array(map.handle.buffer);
    const i32 = new Int32Array(map.handle.buffer);
    const f64 = new Float64Array(map.handle.buffer);
    const b = i32[(TABLE_AT >> 2) + T_BUCKETS];
    const slotOf = (key: number) =>
      [...Array(BUCKET_SLOTS).keys()].find((i) =>
        u8[b + i] >= MIN_TOP_HASH && f64[(b + KEYS + 8 * i) >> 3] === key
      )!;
    const [s1, s2] = [slotOf(1), slotOf(2)];
    f64[(b + KEYS + 8 * s2) >> 3] = 1;
    u8[b + s2] = u8[b + s1];
    named(map, /its key is also in the slot at/);
  });

  test("keys that are not the same pass the check, whatever their words spell", () => {
    // A number whose low word is the string tag, beside a string whose UTF-16 bytes read as
    // that number's high word in decimal; and two keys too large for a text, compared apart.
    const number = new Float64Array(new Int32Array([0xfff60000 | 0, 0x40000000]).buffer)[0];
    const map = new GoMap<unknown, number>();
    map.set(number, 1).set("\u3031\u3337\u3437\u3831\u3432", 2);
    map.set("a".repeat(600_000), 3).set("b".repeat(600_000), 4).set("a".repeat(599_999) + "b", 5);
    map.verify();
    assert.equal(map.get(number), 1);
    assert.equal(map.size, 5);
  });

  test("nevacuate at the end of the old array while it is kept: the next write refuses it", () => {
    const map = new GoMap<number, number>();
    const i32 = () => new Int32Array(map.handle.buffer);
    const h = TABLE_AT >> 2;
    let n = 0;
    while (i32()[h + T_OLDBUCKETS] === 0 || i32()[h + T_B] < 3) map.set(n, n++);
    map.verify();
    const oldBuckets = 1 << (i32()[h + T_B] - 1);
    i32()[h + T_NEVACUATE] = oldBuckets;
    named(map, new RegExp(`nevacuate ${oldBuckets} out of range for ${oldBuckets} old buckets`));
    assert.throws(() => {
      for (let k = n; k < n + 50; k++) map.set(k, k);
    }, /corrupt table: old bucket \d+ of \d+ to evacuate/);
    // The write was rolled back: the same state, every key still there.
    named(map, /nevacuate/);
    for (let k = 0; k < n; k++) assert.equal(map.get(k), k);
  });

  test("an old bucket array past the buffer is named", () => {
    const map = new GoMap<number, number>();
    for (let i = 0; i < 100; i++) map.set(i, i);
    new Int32Array(map.handle.buffer)[(TABLE_AT >> 2) + T_OLDBUCKETS] = 0x3fff0000;
    named(map, /old bucket array at 1073676288 is out of range/);
  });

  test("a spare span that is a table's bucket array: verify names it, an allocation refuses it", () => {
    const map = new GoMap<number, unknown>();
    for (let i = 0; i < 100; i++) map.set(i, i);
    const i32 = new Int32Array(map.handle.buffer);
    const value = "x".repeat(100);
    const c = sizeClass(4 + 2 * value.length);
    assert.equal(i32[A_SPARE + c], 0);
    i32[A_SPARE + c] = i32[(TABLE_AT >> 2) + T_BUCKETS] - CHUNK_HEADER;
    named(map, new RegExp(`class ${c}'s spare span \\d+ is not an empty span of that class`));
    assert.throws(() => map.set(1000, value), /corrupt heap: class \d+'s spare span/);
    for (let i = 0; i < 100; i++) assert.equal(map.get(i), i);
  });
});

describe("verify() names what the later calls would trip on, and never hangs", () => {
  for (
    const [word, name] of [
      ["mutex", "the mutex"],
      ["allocator", "the allocator's lock"],
      ["pause", "the pause of the world"],
    ]
  ) {
    test(`SyncMap: ${name} naming a thread that does not exist fails verify within 5 s`, async () => {
      // In a child: a regression would wait for that thread for good (helper-174 found verify()
      // waiting for good on a corrupt allocator lock or pause word).
      const child = await runChild(
        new URL("./fixtures/verify_stuck_mutex.ts", import.meta.url),
        [word],
        30_000,
      );
      assert.equal(child.timedOut, false, "verify() returned");
      assert.match(
        child.stdout,
        new RegExp(`RangeError: verify: SyncMap: ${name} has been held by thread 60000 for 5 s`),
      );
    });
  }

  test("SyncMap: two threads verifying at once both pass, neither waiting out the other", async () => {
    // Each waits for the mutex the other holds while it stops the world: the waiter must count
    // as parked, or the holder waits for it, and both fail after 5 s.
    // Half the values in records, which each check marks (the integers are immediates).
    const map = new SyncMap<number, number>();
    for (let i = 0; i < 20_000; i++) map.store(i, i % 2 === 0 ? i : i + 0.5);
    const go = startLine();
    const worker = new Worker(new URL("./fixtures/verify_worker.ts", import.meta.url), {
      workerData: { handle: map.handle, times: 4, go },
    });
    // Tracked: after a failure it is terminated in the middle of its checks, maybe holding the
    // map's mutex while it stops the world, and on Bun even after it replied, in the step that
    // ends its task; known dead, its locks are taken over by the next locker (a finalizer of
    // the map's objects in this thread may be that, in a later test).
    track(worker);
    const theirs = new Promise<string[]>((resolve, reject) => {
      worker.once("message", resolve);
      worker.once("error", reject);
    });
    await start(go, 1);
    const ours: string[] = [];
    const started = performance.now();
    for (let i = 0; i < 4; i++) {
      try {
        map.verify();
        ours.push("ok");
      } catch (error) {
        ours.push((error as Error).message);
      }
    }
    const elapsed = performance.now() - started;
    try {
      assert.deepEqual(ours, ["ok", "ok", "ok", "ok"]);
      assert.deepEqual(await theirs, ["ok", "ok", "ok", "ok"]);
      assert.ok(elapsed < 4_000, `${elapsed} ms for four verify() calls`);
    } finally {
      await worker.terminate();
    }
  });

  test("SyncMap: a thread that ends while verify() checks is reaped and checked again", () => {
    // The racing test above, made certain: another thread's seat (offline, so the stop of the
    // world waits for nothing) whose thread is declared gone in the middle of the check, after
    // verify() had looked for dead seats. Its seat is what any death leaves, for a reap: it
    // was reported as an inconsistency.
    const { map, arena } = promoted();
    const registry = registryOf(arena);
    const ghost = 2 ** 28 - 5; // a thread id no thread of this process has
    const ticket = claimSeat(registry);
    Atomics.store(arena.i32, registry.seats + ticket.index * SEAT_WORDS + OWNER, ghost + 1);
    assert.equal(map.stats().participants, 2);
    const verify = Table.prototype.verify;
    let ended = false;
    Table.prototype.verify = function (this: Table, ...args) {
      if (!ended) {
        ended = true;
        threadGone(ghost);
      }
      return verify.apply(this, args);
    };
    try {
      map.verify();
    } finally {
      Table.prototype.verify = verify;
    }
    assert.ok(ended, "the thread ended during the check");
    assert.equal(map.stats().participants, 1, "its seat reaped");
    map.verify();
  });

  test("SyncMap: a mutex word naming this very thread, which holds no step, is corrupt", () => {
    const { map, arena } = promoted();
    const word = Atomics.load(arena.i32, R_MU);
    Atomics.store(arena.i32, R_MU, (currentThreadId() + 1) << OWNER_SHIFT);
    try {
      named(map, /the mutex word \d+ names this thread/);
    } finally {
      Atomics.store(arena.i32, R_MU, word);
    }
    map.verify();
  });

  test("SyncMap: a participant seat announcing an epoch after the map's", () => {
    const { map, arena } = promoted();
    const registry = registryOf(arena);
    const at = registry.seats + ANNOUNCE; // seat 0: this map object's
    const epoch = Atomics.load(arena.i32, registry.epochWord);
    // verify() comes online first, which writes the seat's announcement: so the word is set from
    // inside that, as corrupt memory would have it by then.
    const enterRead = Participant.prototype.enterRead;
    Participant.prototype.enterRead = function (this: Participant) {
      enterRead.call(this);
      Atomics.store(arena.i32, at, epoch + 1000);
    };
    try {
      named(map, new RegExp(`participant seat 0 announces epoch ${epoch + 1000}, after the map's`));
    } finally {
      Participant.prototype.enterRead = enterRead;
      Atomics.store(arena.i32, at, Atomics.load(arena.i32, registry.epochWord));
    }
    map.verify();
  });

  test("SyncMap: a blob record whose header points away from its blob", () => {
    const map = new SyncMap<number, string>();
    map.store(1, "a value long enough to be a blob");
    const arena = Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test");
    const e =
      [...slots(arena, Atomics.load(arena.i32, R_DIRTY)).values()].map((k) =>
        arena.i32[(k >> 2) + S_ENTRY]
      )[0];
    const r = Atomics.load(arena.i32, e >> 2);
    assert.equal(arena.i32[(r >> 2) + REC_LO], r + RECORD_HEADER);
    arena.i32[(r >> 2) + REC_LO] += 16;
    named(
      map,
      new RegExp(`a value record at ${r} points to its blob at ${r + RECORD_HEADER + 16}`),
    );
    arena.i32[(r >> 2) + REC_LO] -= 16;
    map.verify();
  });

  test("a class's span list holding what is not a span, and a bitmap bit past the bins", () => {
    const map = new GoMap<number, string>();
    for (let i = 0; i < 50; i++) map.set(i, `value ${i}`);
    const i32 = new Int32Array(map.handle.buffer);
    const c = 3;
    const head = i32[A_LISTS + c];
    i32[A_LISTS + c] = 16; // into the arena's header
    named(map, new RegExp(`class ${c}'s span list holds 16, which is not a span`));
    i32[A_LISTS + c] = head;
    const last = A_BITMAP + BITMAP_WORDS - 1;
    i32[last] ^= 1 << 30;
    named(map, new RegExp(`bitmap bit ${(BITMAP_WORDS - 1) * 32 + 30} is set`));
    i32[last] ^= 1 << 30;
    map.verify();
  });

  test("GoMap: a table that is not growing but says it is, or counts old overflow buckets", () => {
    const map = new GoMap<number, number>();
    map.set(1, 1);
    const i32 = new Int32Array(map.handle.buffer);
    const h = TABLE_AT >> 2;
    assert.equal(i32[h + T_OLDBUCKETS], 0);
    i32[h + T_FLAGS] |= SAME_SIZE_GROW;
    named(map, /a table that is not growing is flagged SAME_SIZE_GROW/);
    i32[h + T_FLAGS] &= ~SAME_SIZE_GROW;
    i32[h + T_OLDOVERFLOW] = 7;
    named(map, /a table that is not growing counts 7 old overflow buckets/);
    i32[h + T_OLDOVERFLOW] = 0;
    map.verify();
  });

  test("GoMap: a journal whose capacity word or publish word is off", () => {
    const map = new GoMap<number, number>();
    map.set(1, 1);
    const i32 = new Int32Array(map.handle.buffer);
    const journal = i32[JOURNAL] >> 2; // a byte offset
    const capacity = i32[journal + 1];
    i32[journal + 1] = capacity + 1;
    named(map, new RegExp(`journal has capacity word ${capacity + 1}, made with ${capacity}`));
    i32[journal + 1] = capacity;
    i32[journal + 8] = 77;
    named(map, /journal notes word 77 to publish/);
    i32[journal + 8] = 0;
    map.verify();
    assert.equal(map.get(1), 1);
  });
});
