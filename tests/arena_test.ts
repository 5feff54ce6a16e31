// Engine unit tests of the arena (src/_engine/arena.ts) on its own: the header create writes,
// attach's validation of foreign buffers, two views of one buffer after a growth, growth up to
// maxBytes and no further, and the header's room for the allocator's journal.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  ALLOC_JOURNAL_ENTRIES,
  Arena,
  checkMaxBytes,
  H_ALLOC,
  H_ALLOC_JOURNAL,
  H_KIND,
  H_MAX_BYTES,
  H_ROOT,
  H_SEED0,
  H_SEED1,
  H_TOP,
  H_VERSION,
  HEADER_BYTES,
  KIND_GO_MAP,
  KIND_SYNC_MAP,
  roundUp,
} from "../src/_engine/arena.ts";
import { allocate, bytesUsed, verifyHeap } from "../src/_engine/allocator.ts";
import { Journal, JournalFullError, journalWords } from "../src/_engine/journal.ts";
import { MapFullError } from "../src/errors.ts";

const KiB = 1024;
/** "SMAP", little-endian: the magic word 0. */
const MAGIC = 0x50414d53;

function make(maxBytes = 64 * KiB, initial = 0, kind = KIND_GO_MAP): Arena {
  return Arena.create(kind, maxBytes, initial, "auto", "auto", false);
}

/** The bytes of a buffer, to show that a refused attach changed nothing. */
function bytesOf(buffer: SharedArrayBuffer): Uint8Array {
  return new Uint8Array(buffer).slice();
}

/** Codec names of any UTF-16 code units, lone surrogates and NULs included. */
const units = fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 32 })
  .map((codes) => String.fromCharCode(...codes));

describe("arena", () => {
  it("create writes a complete header", () => {
    const arena = make(256 * KiB, 0, KIND_SYNC_MAP);
    const i32 = arena.i32;
    assert.equal(i32[0], MAGIC);
    assert.equal(i32[H_VERSION] > 0, true);
    assert.equal(i32[H_KIND], KIND_SYNC_MAP);
    assert.equal(i32[H_MAX_BYTES], 256 * KiB);
    assert.equal(arena.maxBytes, 256 * KiB);
    assert.equal(arena.buffer.maxByteLength, 256 * KiB);
    assert.ok(arena.buffer.growable);
    assert.equal(i32[H_TOP], HEADER_BYTES, "the heap starts right after the header");
    assert.equal(bytesUsed(arena), 0);
    assert.equal(arena.seed0, i32[H_SEED0]);
    assert.equal(arena.seed1, i32[H_SEED1]);
    // The root area is handed to the structure zeroed.
    assert.ok(i32.subarray(H_ROOT, H_ALLOC_JOURNAL).every((w) => w === 0));
    // The views cover the whole buffer, and the buffer starts at the initial size.
    assert.equal(arena.bytes, arena.buffer.byteLength);
    assert.equal(arena.i32.length, arena.bytes >> 2);
    assert.equal(arena.u16.length, arena.bytes >> 1);
    assert.equal(arena.f64.length, arena.bytes >> 3);
    assert.equal(arena.bytes, 64 * KiB);
    verifyHeap(arena);
  });

  it("every arena gets its own random hash key", () => {
    // Both words random: 20 draws of 32 bits collide with probability about 5e-8.
    const low = new Set<number>();
    const high = new Set<number>();
    for (let i = 0; i < 20; i++) {
      const a = make();
      low.add(a.seed0);
      high.add(a.seed1);
    }
    assert.equal(low.size, 20);
    assert.equal(high.size, 20);
  });

  it("create sizes the buffer for initialBytes, within maxBytes", () => {
    const a = make(1024 * KiB, 200 * KiB);
    assert.equal(a.bytes, roundUp(HEADER_BYTES + 200 * KiB, 4096));
    const capped = make(128 * KiB, 500 * KiB);
    assert.equal(capped.bytes, 128 * KiB);
  });

  it("create refuses a maxBytes below the header and a page", () => {
    assert.throws(() => make(HEADER_BYTES + 4095), RangeError);
    assert.throws(() => make(4 * KiB), /maxBytes must be at least/);
    make(HEADER_BYTES + 4096); // the smallest accepted
  });

  it("codec names round-trip, up to 32 UTF-16 units", () => {
    fc.assert(
      fc.property(
        units,
        units,
        (keys, values) => {
          const a = Arena.create(KIND_GO_MAP, 64 * KiB, 0, keys, values, false);
          assert.equal(a.keyCodecName, keys);
          assert.equal(a.valueCodecName, values);
          const b = Arena.attach(a.buffer, KIND_GO_MAP, false, "test");
          assert.equal(b.keyCodecName, keys);
          assert.equal(b.valueCodecName, values);
        },
      ),
      { numRuns: 100 },
    );
    const long = "x".repeat(33);
    assert.throws(
      () => Arena.create(KIND_GO_MAP, 64 * KiB, 0, long, "auto", false),
      (e: unknown) => e instanceof TypeError && /longer than 32/.test(e.message),
    );
    assert.throws(() => Arena.create(KIND_GO_MAP, 64 * KiB, 0, "auto", long, false), TypeError);
  });

  it("attach refuses what is not a shmap arena, naming the caller, and changes nothing", () => {
    const cases: [unknown, RegExp][] = [
      [undefined, /^X\.attach: the handle's buffer is not a SharedArrayBuffer, got undefined/],
      [null, /not a SharedArrayBuffer, got null/],
      [new ArrayBuffer(HEADER_BYTES), /not a SharedArrayBuffer, got an ArrayBuffer/],
      [{ byteLength: HEADER_BYTES }, /not a SharedArrayBuffer/],
      [new SharedArrayBuffer(64 * KiB), /^X\.attach: the handle's buffer is not a shmap arena$/],
      [new SharedArrayBuffer(16, { maxByteLength: 64 * KiB }), /not a shmap arena$/],
      [new SharedArrayBuffer(HEADER_BYTES, { maxByteLength: 64 * KiB }), /bad magic number/],
    ];
    for (const [buffer, message] of cases) {
      assert.throws(
        () => Arena.attach(buffer, KIND_GO_MAP, false, "X.attach"),
        (e: unknown) => e instanceof TypeError && message.test(e.message),
        String(message),
      );
    }
    // A copy of a real arena's bytes in a plain (not growable) buffer is refused too.
    const a = make();
    const plain = new SharedArrayBuffer(a.bytes);
    new Uint8Array(plain).set(a.u8);
    assert.throws(() => Arena.attach(plain, KIND_GO_MAP, false, "X"), /not a shmap arena$/);
  });

  it("attach refuses a wrong kind, layout version or corrupt header, and changes nothing", () => {
    const corrupt = (edit: (i32: Int32Array) => void): SharedArrayBuffer => {
      const a = make(128 * KiB);
      edit(a.i32);
      return a.buffer;
    };
    const cases: [SharedArrayBuffer, number, RegExp][] = [
      [make(64 * KiB, 0, KIND_SYNC_MAP).buffer, KIND_GO_MAP, /is for a SyncMap, not a GoMap/],
      [make().buffer, KIND_SYNC_MAP, /is for a GoMap, not a SyncMap/],
      [corrupt((i) => i[H_KIND] = 9), KIND_GO_MAP, /is for an? unknown kind 9, not a GoMap/],
      [corrupt((i) => i[0] ^= 1), KIND_GO_MAP, /bad magic number/],
      [
        corrupt((i) => i[H_VERSION] += 1),
        KIND_GO_MAP,
        /the arena has layout version \d+, this library reads version \d+/,
      ],
      [corrupt((i) => i[H_MAX_BYTES] = 64 * KiB), KIND_GO_MAP, /the arena header is corrupt/],
      [corrupt((i) => i[H_TOP] = HEADER_BYTES - 16), KIND_GO_MAP, /header is corrupt/],
      [corrupt((i) => i[H_TOP] = HEADER_BYTES + 8), KIND_GO_MAP, /header is corrupt/],
      [corrupt((i) => i[H_TOP] = 64 * KiB + 16), KIND_GO_MAP, /header is corrupt/],
    ];
    for (const [buffer, kind, message] of cases) {
      const before = bytesOf(buffer);
      assert.throws(
        () => Arena.attach(buffer, kind, false, "Y.attach"),
        (e: unknown) =>
          e instanceof TypeError && /^Y\.attach: /.test(e.message) &&
          message.test(e.message),
        String(message),
      );
      assert.deepEqual(bytesOf(buffer), before);
    }
  });

  it("attach accepts a live arena and sees the same header", () => {
    const a = make(128 * KiB);
    allocate(a, 100, true, new Journal(a, H_ALLOC_JOURNAL, ALLOC_JOURNAL_ENTRIES)); // moves the top
    const b = Arena.attach(a.buffer, KIND_GO_MAP, true, "Z");
    assert.equal(b.buffer, a.buffer);
    assert.equal(b.maxBytes, a.maxBytes);
    assert.equal(b.seed0, a.seed0);
    assert.equal(b.seed1, a.seed1);
    assert.equal(b.locking, true);
    assert.equal(a.locking, false);
  });

  it("reach remakes a view that predates another view's growth, and refuses offsets past the end", () => {
    const a = make(1024 * KiB);
    const b = Arena.attach(a.buffer, KIND_GO_MAP, false, "test");
    const before = b.bytes;
    assert.equal(before, 64 * KiB);
    assert.ok(a.grow(300 * KiB));
    assert.ok(a.bytes >= 300 * KiB);
    // a writes past b's views: b's fixed-length views end early, and reach() extends them.
    a.i32[(a.bytes >> 2) - 1] = 0x1234;
    a.f64[(200 * KiB) >> 3] = 2.5;
    assert.equal(b.bytes, before, "b's views are as they were");
    assert.equal(b.i32[(a.bytes >> 2) - 1], undefined);
    b.reach(before); // within its views: nothing to do
    assert.equal(b.bytes, before);
    b.reach(200 * KiB + 8);
    assert.equal(b.bytes, a.buffer.byteLength, "remade over the whole buffer");
    assert.equal(b.i32.length, b.bytes >> 2);
    assert.equal(b.u8.length, b.bytes);
    assert.equal(b.u16.length, b.bytes >> 1);
    assert.equal(b.f64.length, b.bytes >> 3);
    assert.equal(b.i32[(b.bytes >> 2) - 1], 0x1234);
    assert.equal(b.f64[(200 * KiB) >> 3], 2.5);
    // Past the buffer's end is a corrupt offset.
    assert.throws(() => b.reach(a.buffer.byteLength + 1), RangeError);
    assert.throws(() => b.reach(2 ** 31), /corrupt offset/);
    assert.equal(b.bytes, a.buffer.byteLength);
  });

  it("grow doubles up to maxBytes, then refuses with the buffer unchanged", () => {
    const a = make(200 * KiB);
    assert.equal(a.bytes, 64 * KiB);
    assert.ok(a.grow(64 * KiB), "within the buffer: nothing to do");
    assert.equal(a.buffer.byteLength, 64 * KiB);
    assert.ok(a.grow(64 * KiB + 1));
    assert.equal(a.buffer.byteLength, 128 * KiB, "doubled");
    assert.equal(a.bytes, 128 * KiB);
    assert.ok(a.grow(129 * KiB));
    assert.equal(a.buffer.byteLength, 200 * KiB, "capped at maxBytes");
    assert.equal(a.grow(200 * KiB + 1), false);
    assert.equal(a.grow(2 ** 31), false);
    assert.equal(a.buffer.byteLength, 200 * KiB);
    assert.equal(a.bytes, 200 * KiB);
    // A request larger than double grows to it, rounded to a page.
    const b = make(1024 * KiB);
    assert.ok(b.grow(500 * KiB + 1));
    assert.equal(b.buffer.byteLength, roundUp(500 * KiB + 1, 4096));
    // grow also remakes views another view's growth left short.
    const c = Arena.attach(b.buffer, KIND_GO_MAP, false, "test");
    assert.ok(b.grow(900 * KiB));
    assert.ok(c.bytes < b.bytes);
    assert.ok(c.grow(10));
    assert.equal(c.bytes, b.buffer.byteLength);
  });

  it("an allocation past maxBytes is a MapFullError, and the arena stops growing there", () => {
    const a = make(64 * KiB);
    const j = new Journal(a, H_ALLOC_JOURNAL, ALLOC_JOURNAL_ENTRIES);
    let n = 0;
    for (;;) {
      j.begin();
      try {
        allocate(a, 2000, false, j);
        j.commit();
        n++;
      } catch (error) {
        j.recover();
        assert.ok(error instanceof MapFullError);
        break;
      }
    }
    assert.ok(n >= 20, `only ${n} blocks of 2000 bytes fit 64 KiB`);
    assert.equal(a.buffer.byteLength, 64 * KiB);
    verifyHeap(a);
  });

  it("the header holds the allocator's journal: a full journal stays below HEADER_BYTES", () => {
    assert.equal(HEADER_BYTES % 64, 0);
    assert.ok(HEADER_BYTES >= (H_ALLOC_JOURNAL + journalWords(ALLOC_JOURNAL_ENTRIES)) * 4);
    // The layout's regions are in order and do not overlap.
    assert.ok(H_ALLOC < H_SEED1 && H_SEED1 < H_ROOT && H_ROOT < H_ALLOC_JOURNAL);
    const a = make();
    assert.equal(a.i32[H_ALLOC_JOURNAL + 1], ALLOC_JOURNAL_ENTRIES, "formatted, with capacity");
    const j = new Journal(a, H_ALLOC_JOURNAL, ALLOC_JOURNAL_ENTRIES);
    // A block right at the start of the heap, filled with a pattern.
    j.begin();
    const first = allocate(a, 64, false, j);
    j.commit();
    assert.ok(first >= HEADER_BYTES);
    a.u8.fill(0x5a, HEADER_BYTES, a.i32[H_TOP]);
    const heap = a.u8.slice(HEADER_BYTES, a.i32[H_TOP]);
    // Fill every entry of the allocator's journal.
    j.begin();
    for (let i = 0; i < ALLOC_JOURNAL_ENTRIES; i++) j.set(H_ROOT + (i % 64), i);
    assert.equal(j.room, 0);
    assert.throws(() => j.set(H_ROOT, 1), JournalFullError);
    assert.deepEqual(a.u8.slice(HEADER_BYTES, a.i32[H_TOP]), heap, "the heap is untouched");
    j.recover();
    assert.ok(a.i32.subarray(H_ROOT, H_ALLOC_JOURNAL).every((w) => w === 0));
  });

  it("checkMaxBytes takes integers in [64 KiB, 1 GiB] and defaults to 1 GiB", () => {
    assert.equal(checkMaxBytes(undefined), 2 ** 30);
    assert.equal(checkMaxBytes(64 * KiB), 64 * KiB);
    assert.equal(checkMaxBytes(2 ** 30), 2 ** 30);
    assert.throws(() => checkMaxBytes("1" as unknown as number), TypeError);
    assert.throws(() => checkMaxBytes(10n as unknown as number), TypeError);
    for (const bad of [64 * KiB - 1, 2 ** 30 + 1, 0, -1, 1.5, NaN, Infinity]) {
      assert.throws(() => checkMaxBytes(bad), RangeError, String(bad));
    }
  });
});
