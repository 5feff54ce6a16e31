// Copyright the shmap authors. MIT license.
//
// SyncMap memory on one thread: replaced values, promoted tables, expunged and deleted entries
// are reclaimed, so bytesUsed stays bounded by the data however long the map is churned, and
// drops back after clear(). The bound checked is the one src/_engine/reclaim.ts promises: at
// any time the blocks waiting to be freed are about what participants retired over two of
// their quiescent periods (QUIESCE_EVERY operations each). Other participants attached to the
// map hold reclamation back only while they are inside a task that used the map.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { SyncMap } from "../mod.ts";
import { H_ROOT } from "../src/_engine/arena.ts";
import { QUIESCE_EVERY, RETIRES_PER_OP } from "../src/_engine/reclaim.ts";
import { attachOwnSeat, shareSyncMap } from "../src/maps/sync_map.ts";
import { R_EPOCH, R_ORPHANS } from "../src/maps/_sync_layout.ts";

const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));

/** Blocks one participant may have retired and not yet freed, by reclaim.ts's bound. */
const WAITING = 2 * QUIESCE_EVERY + RETIRES_PER_OP;
/** A retire list big enough for WAITING blocks, twice over (it grows by doubling). */
const RETIRE_LIST_BYTES = 2 * (8 + 8 * 2 * WAITING);

const KEYS = 1000;
const OVERWRITES = 10_000_000;
const SAMPLE_EVERY = 100_000;

interface Churn {
  initial: number;
  max: number;
}

/**
 * Stores KEYS keys, then overwrites them OVERWRITES times in one task, sampling bytesUsed every
 * SAMPLE_EVERY overwrites against `initial + slack`, initial being bytesUsed after the first
 * pass. Returns the initial and the largest sample.
 */
function overwrite<V>(
  m: SyncMap<number, V>,
  value: (n: number) => V,
  slack: number,
  overwrites = OVERWRITES,
): Churn {
  for (let i = 0; i < KEYS; i++) m.store(i, value(i));
  const initial = m.stats().bytesUsed;
  let max = initial;
  for (let n = KEYS; n < overwrites + KEYS;) {
    const end = Math.min(n + SAMPLE_EVERY, overwrites + KEYS);
    for (; n < end; n++) m.store(n % KEYS, value(n));
    const s = m.stats();
    assert.equal(s.count, KEYS);
    if (s.bytesUsed > max) max = s.bytesUsed;
    assert.ok(
      s.bytesUsed <= initial + slack,
      `after ${n - KEYS} overwrites bytesUsed is ${s.bytesUsed}, over ${initial} + ${slack} ` +
        `(${s.retired} blocks retired and waiting)`,
    );
  }
  return { initial, max };
}

describe("SyncMap memory: overwrites", () => {
  test("10 million overwrites of 1,000 keys with number values stay bounded", () => {
    const m = new SyncMap<number, number>();
    // Promote, so that the overwrites take Go's lock-free path: an exchange on the entry.
    for (let i = 0; i < KEYS; i++) m.store(i, i);
    m.range(() => {});
    assert.equal(m.stats().dirtyKeys, -1);
    // A number's value record is 8 bytes, a 16-byte block.
    const { initial, max } = overwrite(m, (n) => n * 0.5, WAITING * 16 + RETIRE_LIST_BYTES);
    assert.ok(max <= initial * 1.5, `max ${max} vs initial ${initial}`);
    // Key i was last written by overwrite number OVERWRITES + i.
    for (let i = 0; i < KEYS; i++) assert.equal(m.load(i), (OVERWRITES + i) * 0.5);
    m.close();
  });

  test("10 million overwrites of 1,000 keys with string values (blobs) stay bounded", () => {
    const m = new SyncMap<number, string>();
    // Left in the dirty table: the first overwrites take the locked path, each counting a miss,
    // until the misses promote the table (after KEYS of them); the rest are lock-free.
    const values = Array.from({ length: 256 }, (_, i) => `value ${i} `.padEnd(24, "~"));
    // A record: 8 bytes, then the blob: 4 + 2 * 24 bytes: a 64-byte block.
    const { initial, max } = overwrite(
      m,
      (n) => values[n & 255],
      WAITING * 64 + RETIRE_LIST_BYTES,
    );
    const s = m.stats();
    assert.deepStrictEqual([s.readKeys, s.dirtyKeys], [KEYS, -1], "promoted by the overwrites");
    assert.ok(max <= initial * 1.5, `max ${max} vs initial ${initial}`);
    for (let i = 0; i < KEYS; i++) assert.equal(m.load(i), values[(OVERWRITES + i) & 255]);
    m.close();
  });
  test("a range whose callback overwrites every key frees the old values as it goes", () => {
    // The callback's stores pass quiescent points as any calls do (range holds nothing while
    // it runs), so the values they replace are freed a few partitions later, not at the end.
    const keys = 4096;
    const m = new SyncMap<number, string>();
    const value = (k: number, round: number) => `${round}:${k}:`.padEnd(200, "~");
    for (let k = 0; k < keys; k++) m.store(k, value(k, 0));
    m.range(() => {}); // promoted: the overwrites take the lock-free path and retire records
    assert.equal(m.stats().dirtyKeys, -1);
    const initial = m.stats().bytesUsed;
    let max = initial;
    let visited = 0;
    m.range((k) => {
      m.store(k, value(k, 1));
      visited++;
      if ((visited & 63) === 0) max = Math.max(max, m.stats().bytesUsed);
    });
    assert.equal(visited, keys);
    // A record and its 200-unit string's blob: over 400 bytes each, 1.6 MB for every key.
    const rewritten = keys * 400;
    assert.ok(max - initial < rewritten / 4, `grew ${max - initial} bytes over ${initial}`);
    for (let k = 0; k < keys; k++) assert.equal(m.load(k), value(k, 1));
    m.verify();
    m.close();
  });
});

describe("SyncMap memory: churn over changing keys", () => {
  test("store/delete churn with promotions and expunging stays bounded", () => {
    const m = new SyncMap<string, string>();
    const live = 400; // keys alive at a time
    const step = 20; // keys added and deleted per round
    const rounds = 6000;
    const key = (i: number) => `key number ${i}`; // a blob per key
    const value = (i: number) => "v".repeat(i % 32);
    let promotions = 0;
    let rebuilds = 0;
    let hadDirty = false;
    let warm = 0;
    let max = 0;
    for (let r = 0; r < rounds; r++) {
      for (let j = 0; j < step; j++) m.store(key(r * step + j), value(r * step + j));
      if (r >= live / step) {
        const old = (r - live / step) * step;
        for (let j = 0; j < step; j++) {
          const k = key(old + j);
          // Alternate the deleting operations: dirty-only keys are taken out of the dirty
          // table, read-table keys are set to nil and expunged by the next rebuild.
          const done = j % 3 === 0
            ? m.loadAndDelete(k)[1]
            : j % 3 === 1
            ? m.delete(k)
            : m.compareAndDelete(k, value(old + j));
          assert.ok(done, `round ${r}: ${k} was deleted`);
        }
      }
      // Misses: the dirty table is promoted about every other round.
      for (let j = 0; j < step * 10; j++) m.load(`missing ${j}`);
      const s = m.stats();
      assert.equal(s.count, Math.min(live, (r + 1) * step));
      if (s.dirtyKeys === -1 && hadDirty) promotions++;
      if (s.dirtyKeys >= 0 && !hadDirty && s.readKeys > s.count) rebuilds++;
      hadDirty = s.dirtyKeys >= 0;
      if (r < 500) warm = Math.max(warm, s.bytesUsed);
      else max = Math.max(max, s.bytesUsed);
    }
    assert.ok(promotions > 1000, `${promotions} promotions`);
    assert.ok(rebuilds > 1000, `${rebuilds} dirty tables rebuilt with expunged entries`);
    // 120,000 keys went through the map; what it uses is what 400 keys need.
    assert.ok(max <= warm * 1.5, `max ${max} after warm-up vs ${warm} during it`);
    assert.equal(m.size, live);
    for (let i = rounds * step - live; i < rounds * step; i++) {
      assert.equal(m.load(key(i)), value(i));
    }
    m.close();
  });

  test("the same churn across tasks, on two attached objects, stays bounded", async () => {
    const a = new SyncMap<number, number[]>();
    const b = attachOwnSeat<number, number[]>(a.handle);
    const live = 300;
    let warm = 0;
    let max = 0;
    for (let r = 0; r < 400; r++) {
      const m = r % 2 === 0 ? a : b;
      for (let j = 0; j < 30; j++) {
        const i = r * 30 + j;
        m.store(i, [i, i]);
        if (i >= live) (j % 2 === 0 ? a : b).delete(i - live);
        m.load(-1 - j);
      }
      if (r % 5 === 0) await tick();
      const used = a.stats().bytesUsed;
      if (r < 100) warm = Math.max(warm, used);
      else max = Math.max(max, used);
    }
    assert.ok(max <= warm * 1.5, `max ${max} after warm-up vs ${warm} during it`);
    assert.equal(a.size, live);
    b.close();
    a.close();
  });
});

describe("SyncMap memory: clear and other participants", () => {
  test("after clear() and a macrotask, bytesUsed drops back to the empty map's", async () => {
    const m = new SyncMap<number, string>();
    m.store(0, "");
    m.delete(0);
    await tick();
    const empty = m.stats().bytesUsed;
    const n = 5000;
    for (let i = 0; i < n; i++) m.store(i, "v".repeat(i % 40));
    m.range(() => {}); // a read table
    for (let i = 0; i < 10; i++) m.delete(i); // nil, then expunged by the next new key
    for (let i = n; i < n + 1000; i++) m.store(i, "w".repeat(i % 40)); // a dirty table
    const s = m.stats();
    assert.ok(s.readKeys > 0 && s.dirtyKeys > 0);
    m.clear();
    await tick();
    const after = m.stats();
    assert.equal(after.retired, 0);
    // clear() makes room in this participant's retire list for every value and both tables
    // (8 bytes each) before it changes anything; the list keeps that size afterwards.
    const retireList = 8 * (s.readKeys + s.dirtyKeys + 2) * 1.125 + 16;
    assert.ok(
      after.bytesUsed <= empty + retireList,
      `${after.bytesUsed} after clear, ${empty} empty, retire list up to ${retireList}`,
    );
    // Filling and clearing again reuses the same memory.
    for (let i = 0; i < n; i++) m.store(i, "v".repeat(i % 40));
    m.clear();
    await tick();
    assert.ok(m.stats().bytesUsed <= after.bytesUsed + 1024);
  });

  test("an attached object that is idle does not hold reclamation back", async () => {
    const m = new SyncMap<number, number>();
    const idle = attachOwnSeat<number, number>(m.handle);
    for (let i = 0; i < KEYS; i++) idle.store(i, i); // it was busy in an earlier task
    idle.range(() => {});
    await tick();
    const { initial, max } = overwrite(
      m,
      (n) => n + 0.5,
      WAITING * 16 + RETIRE_LIST_BYTES,
      1_000_000,
    );
    assert.ok(max <= initial * 1.5);
    assert.equal(idle.load(7), 1_000_000 + 7.5);
    idle.close();
    m.close();
  });

  test("an object busy in the same task holds it back until the task ends (control)", async () => {
    const m = new SyncMap<number, number>();
    const busy = attachOwnSeat<number, number>(m.handle);
    // Records throughout: an integer value is an immediate, which retires nothing.
    for (let i = 0; i < KEYS; i++) m.store(i, i + 0.5);
    m.range(() => {});
    await tick();
    const before = m.stats().bytesUsed;
    busy.load(0); // online, announcing the current epoch, for the rest of this task
    const n = 200_000;
    for (let i = 0; i < n; i++) m.store(i % KEYS, i + 0.5);
    const during = m.stats();
    // Every replaced value waits: 16 bytes each, plus 8 in the retire list.
    assert.ok(during.retired >= n - WAITING, `${during.retired} retired`);
    assert.ok(during.bytesUsed >= before + 16 * (n - WAITING));
    // Each participant frees what it retired at its own quiescent points: m went offline first,
    // while busy still announced its old epoch, so m frees when it next goes offline.
    await tick();
    m.load(0);
    await tick();
    const after = m.stats();
    assert.equal(after.retired, 0);
    // Freed, all but the retire list, which keeps the size it grew to.
    assert.ok(after.bytesUsed <= before + 8 * 2 * n + 16, `${after.bytesUsed} vs ${before}`);
    busy.close();
    m.close();
  });

  test("a closed object does not hold reclamation back, even within its task", () => {
    const m = new SyncMap<number, number>();
    const other = attachOwnSeat<number, number>(m.handle);
    other.load(0); // online in this task...
    other.close(); // ...and withdrawn
    const { initial, max } = overwrite(
      m,
      (n) => n + 0.5,
      WAITING * 16 + RETIRE_LIST_BYTES,
      1_000_000,
    );
    assert.ok(max <= initial * 1.5);
    assert.equal(m.stats().participants, 1);
    m.close();
  });

  test("a reservation released unadopted does not count an orphan's leftovers twice", async () => {
    // While R_ORPHANS is above 0, every quiescent point collects (an epoch increment and two
    // scans of the seats): a count left high for good would cost every call of every worker.
    const m = new SyncMap<number, number>();
    const i32 = new Int32Array(m.handle.buffer);
    const b = attachOwnSeat<number, number>(m.handle);
    // Records (an integer value is an immediate, which retires nothing).
    for (let i = 0; i < 10; i++) b.store(i, i + 0.5);
    for (let i = 0; i < 10; i++) b.store(i, i + 1.5); // retirements: b's list is not empty
    m.load(0); // online: b's retirements cannot all be freed as it closes
    b.close();
    assert.equal(i32[R_ORPHANS], 1, "b's seat is an orphan");
    shareSyncMap(m as SyncMap<never, never>).release(); // reserves that seat, never attached
    assert.equal(i32[R_ORPHANS], 1, "counted once");
    for (let t = 0; t < 3; t++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      for (let i = 0; i < 200; i++) m.store(i, i);
    }
    assert.equal(i32[R_ORPHANS], 0, "swept");
    const epoch = i32[R_EPOCH];
    for (let i = 0; i < 6400; i++) m.load(1);
    assert.ok(i32[R_EPOCH] - epoch <= 2, `${i32[R_EPOCH] - epoch} collects over 6,400 loads`);
    m.verify();
    m.close();
  });

  test("a table freed after a newer one frees only the entries it owns", async () => {
    // Regression: participant A retires read table T1 (promotion); participant B promotes T1's
    // successor T2 and clears it, so B frees T2 and the entries T1 shared with it before A
    // frees T1. Freeing T1 must not read those entries: their blocks may hold new data. Here a
    // value record lands in one of them, with T1's offset where an entry keeps its owner.
    const a = new SyncMap<string, unknown>();
    const b = attachOwnSeat<string, unknown>(a.handle);
    const root = new Int32Array(a.handle.buffer, 0, H_ROOT + 8);
    a.store("k0", 1);
    a.store("k1", 1);
    a.store("k2", 1);
    for (let i = 0; i < 8; i++) a.load("missing"); // promote: read table T1 = {k0, k1, k2}
    const t1 = root[H_ROOT] & ~1; // the read word: T1's offset (the low bit is `amended`)
    assert.ok(t1 > 0);
    b.store("new", 2); // dirty table T2 = {k0, k1, k2, new}
    b.loadAndDelete("new"); // T2 = {k0, k1, k2}; one miss
    for (let i = 0; i < 7; i++) a.load("missing"); // A promotes T2 and retires T1
    assert.equal(a.stats().dirtyKeys, -1);
    b.clear(); // B retires T2, which now owns k0..k2's entries
    await tick(); // A cannot free T1 yet (B was online); B frees T2 and the entries
    const poison = new Uint8Array(new Int32Array([t1]).buffer);
    b.store("x", poison); // a 16-byte record in a freed entry's block
    a.load("q"); // A comes online again: its next collect frees T1
    await tick();
    a.store("y", 7);
    a.store("z", 8);
    assert.deepStrictEqual(b.load("x"), poison);
    assert.equal(a.load("y"), 7);
    assert.equal(a.load("z"), 8);
    assert.equal(a.size, 3);
    b.close();
    a.close();
  });
});

test("a share released with a grace stops its owner at once and frees its seat after", async () => {
  const map = new SyncMap<number, number>();
  map.store(1, 1);
  const share = shareSyncMap(map as SyncMap<never, never>);
  const view = SyncMap.attach<number, number>(share.handle);
  assert.equal(view.load(1), 1);
  assert.equal(map.stats().participants, 2);
  share.release(50);
  // The owner (in real use, a worker its runtime has not stopped yet) cannot make another call.
  assert.throws(() => view.load(1), /released/);
  // Its seat is withdrawn but still counts, protecting whatever call it may be inside...
  assert.equal(map.stats().participants, 2);
  share.release(50); // a second release of the same share does nothing
  // ...until the grace ends.
  await new Promise((resolve) => setTimeout(resolve, 120));
  assert.equal(map.stats().participants, 1);
  // The seat is reusable and the map intact.
  const again = attachOwnSeat<number, number>(map.handle);
  assert.equal(again.load(1), 1);
  again.close();
});
