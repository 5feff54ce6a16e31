// Copyright the shmap authors. MIT license.
//
// BlockMap (src/_engine/block_map.ts), the offset-to-size map of verify() and the sweep, against a
// Map: any offsets (aligned or not, below its limit or past it, negative, fractional, past
// 2^31) and any sizes (small, past its byte of 16-byte units, unaligned), in any order, set
// again with another size; and its walk in address order.
import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { BlockMap } from "../src/_engine/block_map.ts";

/** Offsets that turn up often in each of the map's two parts, and at their edges. */
const offsetBelow = (limit: number) =>
  fc.oneof(
    { weight: 6, arbitrary: fc.integer({ min: 1, max: limit / 16 + 4 }).map((u) => u * 16) },
    { weight: 1, arbitrary: fc.integer({ min: -64, max: limit + 64 }) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(0, 16, limit - 16, limit, 65_536, 2 ** 31, 2 ** 32 + 16, 16.5),
    },
  );
const size = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 1, max: 64 }).map((u) => u * 16) },
  { weight: 1, arbitrary: fc.constantFrom(254 * 16, 255 * 16, 256 * 16, 1 << 20, 2 ** 31, 48.5) },
  { weight: 1, arbitrary: fc.integer({ min: -16, max: 5000 }) },
);

// Limits of one page of the map and of several (a page covers 64 KiB of the heap).
for (const limit of [4096, 200_000]) {
  test(`BlockMap: get, has, add, set, size and the walk agree with a Map (limit ${limit})`, () => {
    const offset = offsetBelow(limit);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), offset, size), { maxLength: 200 }),
        fc.array(offset, { maxLength: 20 }),
        (steps, probes) => {
          const map = new BlockMap(limit);
          const model = new Map<number, number>();
          for (const [viaAdd, at, bytes] of steps) {
            if (viaAdd) {
              assert.equal(map.add(at, bytes), model.get(at), `add(${at}, ${bytes})`);
              if (!model.has(at)) model.set(at, bytes);
            } else {
              assert.equal(map.set(at, bytes), map);
              model.set(at, bytes);
            }
            assert.equal(map.size, model.size);
          }
          for (const at of [...probes, ...model.keys()]) {
            assert.equal(map.get(at), model.get(at), `get(${at})`);
            assert.equal(map.has(at), model.has(at), `has(${at})`);
          }
          const sorted = [...model].sort((x, y) => x[0] - y[0]);
          // The compact part (aligned offsets in (0, limit)) first, then the others: each in order.
          const compact = (at: number) => at > 0 && at < limit && at % 16 === 0;
          const expected = [
            ...sorted.filter(([at]) => compact(at)),
            ...sorted.filter(([at]) => !compact(at)),
          ];
          assert.deepEqual([...map], expected);
          const walked: [number, number][] = [];
          map.forEach((at, bytes) => walked.push([at, bytes]));
          assert.deepEqual(walked, expected);
        },
      ),
      { numRuns: 300 },
    );
  });
}

test("BlockMap: a map past 2^24 blocks, which a Map cannot hold", () => {
  // V8's Map (Deno, Node) stops at 2^24 entries: verify() and the sweep of a heap of more blocks
  // threw "Map maximum size exceeded" there.
  const blocks = 2 ** 24 + 100;
  const map = new BlockMap(16 * (blocks + 1));
  for (let b = 1; b <= blocks; b++) map.set(b * 16, 16);
  assert.equal(map.size, blocks);
  let walked = 0;
  let last = 0;
  map.forEach((at, bytes) => {
    assert.ok(at > last && bytes === 16);
    last = at;
    walked++;
  });
  assert.equal(walked, blocks);
});
