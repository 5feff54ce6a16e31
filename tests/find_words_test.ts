// Engine unit tests of Table.findWords (src/_engine/table.ts), the lookup of a key stored inline
// as two words: its home bucket is matched four tophash marks at a time, the rest of a chain a
// mark at a time. Both are checked against a reference walk (one mark at a time, stopping at the
// first EMPTY_REST) on buckets whose marks and keys are written directly: marks equal to the
// probe's, one off it (the borrows a four-at-a-time match may take for a match), empty, and
// evacuated, and chains of one or two buckets.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import {
  ALLOC_JOURNAL_ENTRIES,
  Arena,
  H_ALLOC_JOURNAL,
  H_ROOT,
  KIND_GO_MAP,
} from "../src/_engine/arena.ts";
import { Journal } from "../src/_engine/journal.ts";
import { BUCKET_SIZE, Table } from "../src/_engine/table.ts";
import { WriterTx } from "../src/_engine/tx.ts";

const KiB = 1024;
/** Where the table header lives: in the root area, as GoMap puts it. */
const TABLE_AT = (H_ROOT + 8) * 4;
/** Header words (table_layout.ts). */
const T_B = 2;
const T_BUCKETS = 4;
/** Byte offset of a bucket's overflow link (table_layout.ts). */
const OVERFLOW = 136;

/** A table of two buckets (B = 1) in a fresh arena, nothing in it. */
function twoBuckets(): { arena: Arena; table: Table; buckets: number } {
  const arena = Arena.create(KIND_GO_MAP, 256 * KiB, 0, "float64", "float64", false);
  const boot = new Journal(arena, H_ALLOC_JOURNAL, ALLOC_JOURNAL_ENTRIES);
  boot.begin();
  const tx = new WriterTx(arena, boot);
  Table.create(tx, arena, TABLE_AT, 13);
  boot.commit();
  const table = new Table(arena, TABLE_AT, true, () => {}, tx);
  const h = TABLE_AT >> 2;
  assert.equal(arena.i32[h + T_B], 1);
  return { arena, table, buckets: arena.i32[h + T_BUCKETS] };
}

/** The lookup findWords must agree with: Go's mapaccess, one mark at a time. */
function reference(arena: Arena, head: number, lo: number, hi: number, top: number): number {
  for (let b = head, hops = 0; b !== 0 && hops < 4; b = arena.i32[(b + OVERFLOW) >> 2], hops++) {
    for (let i = 0; i < 8; i++) {
      const t = arena.u8[b + i];
      const w = (b >> 2) + 2 + 2 * i;
      if (t === top && arena.i32[w] === lo && arena.i32[w + 1] === hi) return w << 2;
      if (t === 0) return -1;
    }
  }
  return -1;
}

/** A bucket's contents: eight marks and eight keys, each key one of a few (lo, hi) pairs. */
const bucket = (top: number) =>
  fc.record({
    marks: fc.array(
      fc.oneof(
        fc.constantFrom(0, 1, 2, 3, 4, top, top, top - 1, top + 1, top ^ 0x80),
        fc.integer({ min: 0, max: 255 }),
      ),
      { minLength: 8, maxLength: 8 },
    ),
    keys: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: 8, maxLength: 8 }),
  });

/** Key number `n` of the few a bucket holds: words that differ in lo, in hi, or in both. */
const KEY_WORDS: readonly [number, number][] = [[7, 0], [7, 1], [8, 0], [-1, -1]];

describe("Table.findWords", () => {
  it("finds what a walk a mark at a time finds, in a bucket and along a chain", () => {
    fc.assert(
      fc.property(
        // A live key's mark is at least 5 (MIN_TOP_HASH): tops near it and near 255 included.
        fc.oneof(fc.constantFrom(5, 6, 128, 254, 255), fc.integer({ min: 5, max: 255 })),
        fc.integer({ min: 0, max: 3 }),
        fc.boolean(),
        fc.integer({ min: 0, max: 0xffffff }),
        fc.context(),
        (top, probe, chained, low, ctx) => {
          const { arena, table, buckets } = twoBuckets();
          // Home bucket 0 (the hash's low bit is 0), chained to bucket 1 when `chained`.
          const home = buckets;
          const second = buckets + BUCKET_SIZE;
          const fill = (b: number, c: { marks: number[]; keys: number[] }) => {
            for (let i = 0; i < 8; i++) {
              arena.u8[b + i] = c.marks[i];
              const w = (b >> 2) + 2 + 2 * i;
              [arena.i32[w], arena.i32[w + 1]] = KEY_WORDS[c.keys[i]];
            }
          };
          const first = fc.sample(bucket(top), { numRuns: 1, seed: low })[0];
          const next = fc.sample(bucket(top), { numRuns: 1, seed: low + 1 })[0];
          fill(home, first);
          fill(second, next);
          arena.i32[(home + OVERFLOW) >> 2] = chained ? second : 0;
          arena.i32[(second + OVERFLOW) >> 2] = 0;
          ctx.log(JSON.stringify({ first, next }));
          const hash = ((top << 24) | ((low << 1) & 0xfffffe)) | 0;
          const [lo, hi] = KEY_WORDS[probe];
          const expected = reference(arena, home, lo, hi, top);
          assert.equal(table.findWords(lo, hi, hash), expected);
          if (expected >= 0) {
            assert.equal(table.foundHead, home);
            assert.equal(table.foundBucket, expected < second ? home : second);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("maps a hash's top byte below 5 to the mark a live key gets", () => {
    const { arena, table, buckets } = twoBuckets();
    // Top byte 2 is stored as 2 + MIN_TOP_HASH = 7. The other slots are empty (EMPTY_ONE).
    arena.u8.fill(1, buckets, buckets + 8);
    arena.u8[buckets + 5] = 7;
    const w = (buckets >> 2) + 2 + 2 * 5;
    arena.i32[w] = 11;
    arena.i32[w + 1] = 12;
    assert.equal(table.findWords(11, 12, (2 << 24) | 0), w << 2);
    arena.u8[buckets + 5] = 2;
    assert.equal(table.findWords(11, 12, (2 << 24) | 0), -1);
  });

  it("stops at an EMPTY_REST mark even when a matching key lies after it", () => {
    const { arena, table, buckets } = twoBuckets();
    for (const rest of [0, 3, 4, 6]) {
      arena.u8.fill(9, buckets, buckets + 8);
      arena.u8[buckets + rest] = 0;
      for (let i = 0; i < 8; i++) {
        const w = (buckets >> 2) + 2 + 2 * i;
        arena.i32[w] = 100 + i;
        arena.i32[w + 1] = 0;
      }
      for (let i = 0; i < 8; i++) {
        const found = table.findWords(100 + i, 0, (9 << 24) | 0);
        assert.equal(found, i < rest ? ((buckets >> 2) + 2 + 2 * i) << 2 : -1, `${rest} ${i}`);
      }
    }
  });
});
