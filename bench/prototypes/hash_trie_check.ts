// Copyright the shmap authors. MIT license.
/**
 * Self-check of the hash-trie prototype (hash_trie.ts): random operations against a native Map,
 * every answer compared, then the final contents, the tree's invariants (`verify`) and the
 * allocator's count of live blocks against the blocks the tree reaches (nothing leaked, nothing
 * freed twice). Each variant ("cow", "inplace", "inplace" with memos) runs with the full hash and
 * with hashes cut down to a few bits (long chains of equal hashes, deep expansions, prunes).
 *
 * ```
 * deno run -A bench/prototypes/hash_trie_check.ts [--ops=200000] [--seed=N]
 * deno run -A tools/bun.ts bench/prototypes/hash_trie_check.ts
 * ```
 *
 * hash_trie_bench.ts `--check` runs it too.
 *
 * @module
 */

import { HashTrie, type HashTrieOptions } from "./hash_trie.ts";
import { positiveInt } from "../fixtures/cli.ts";

/** A seeded PRNG (mulberry32): [0, 1). */
function rng(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SPECIAL_KEYS = [0, -0, NaN, -1, 0.5, -2.25, 1e300, -1e-300, 2 ** 31, 2 ** 53, Infinity];
const SPECIAL_VALUES = [0, -0, NaN, 0.5, -1, 2 ** 30 - 2, 2 ** 30 - 1, 2 ** 31, 1e300, -Infinity];

function same(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
  }
  return Object.is(a, b);
}

/** Runs `ops` random operations on a trie made with `options`; throws on the first mismatch. */
export function checkOne(options: HashTrieOptions, ops: number, seed: number): void {
  const label = JSON.stringify(options);
  const rand = rng(seed);
  const t = new HashTrie({ ...options, bytes: 16 * 1024 * 1024 });
  const m = new Map<number, number>();
  // A key space of ~700 keys so that keys come and go: ~half present at any time.
  const key = (): number => {
    const r = rand();
    if (r < 0.03) return SPECIAL_KEYS[Math.floor(rand() * SPECIAL_KEYS.length)];
    if (r < 0.08) return Math.floor(rand() * 50) + 0.25;
    return Math.floor(rand() * 640);
  };
  const value = (): number => {
    const r = rand();
    if (r < 0.1) return SPECIAL_VALUES[Math.floor(rand() * SPECIAL_VALUES.length)];
    return Math.floor(rand() * 100000);
  };
  const fail = (op: number, what: string, got: unknown, want: unknown): never => {
    throw new Error(
      `${label} seed ${seed}, op ${op}: ${what}: got ${JSON.stringify(got)}, want ${
        JSON.stringify(want)
      }`,
    );
  };
  for (let i = 0; i < ops; i++) {
    const r = rand();
    const k = key();
    if (r < 0.3) {
      const got = t.load(k);
      const want = m.get(k);
      if (!same(got, want)) fail(i, `load(${k})`, got, want);
    } else if (r < 0.5) {
      const v = value();
      t.store(k, v);
      m.set(k, v);
    } else if (r < 0.65) {
      const v = value();
      const got = t.loadOrStore(k, v);
      const want: [number, boolean] = m.has(k) ? [m.get(k)!, true] : [v, false];
      if (!m.has(k)) m.set(k, v);
      if (!same(got, want)) fail(i, `loadOrStore(${k}, ${v})`, got, want);
    } else if (r < 0.8) {
      const got = t.loadAndDelete(k);
      const want = m.has(k) ? [m.get(k), true] : [undefined, false];
      m.delete(k);
      if (!same(got, want)) fail(i, `loadAndDelete(${k})`, got, want);
    } else if (r < 0.97) {
      const got = t.delete(k);
      const want = m.delete(k);
      if (got !== want) fail(i, `delete(${k})`, got, want);
    } else if (r < 0.995) {
      // AdversarialDelete's step: delete the first key a range meets.
      let first: number | undefined;
      t.range((kk, vv) => {
        first = kk;
        if (!same(m.get(kk), vv)) fail(i, `range value of ${kk}`, vv, m.get(kk));
        t.delete(kk);
        return false;
      });
      if (first === undefined) {
        if (m.size !== 0) fail(i, "range on a non-empty map", undefined, m.size);
      } else if (!m.delete(first)) fail(i, `range met absent ${first}`, first, undefined);
    } else {
      const got = t.count();
      if (got !== m.size) fail(i, "count", got, m.size);
      const seen = t.verify();
      if (seen.entries !== m.size) fail(i, "verify entries", seen.entries, m.size);
    }
  }
  // The final contents, both ways.
  const got = new Map<number, number>();
  t.range((k, v) => {
    if (got.has(k)) fail(ops, `range met ${k} twice`, k, undefined);
    got.set(k, v);
  });
  if (got.size !== m.size) fail(ops, "final size", got.size, m.size);
  for (const [k, v] of m) {
    if (!same(got.get(k), v)) fail(ops, `final range value of ${k}`, got.get(k), v);
    if (!same(t.load(k), v)) fail(ops, `final load(${k})`, t.load(k), v);
  }
  const seen = t.verify();
  for (const kind of ["nodes", "entries", "records"] as const) {
    if (seen[kind] !== t.live[kind]) fail(ops, `live ${kind} (leak?)`, t.live[kind], seen[kind]);
  }
  // Everything deleted: the tree pruned back to its root, no block left.
  for (const k of [...m.keys()]) {
    if (!t.delete(k)) fail(ops, `final delete(${k})`, false, true);
  }
  const empty = t.verify();
  if (t.live.nodes !== 1 || t.live.entries !== 0 || t.live.records !== 0 || empty.nodes !== 1) {
    fail(ops, "after deleting all", t.live, { nodes: 1, entries: 0, records: 0 });
  }
}

/** The variants and hash masks checked. */
export function check(ops: number, seed: number): void {
  const variants: HashTrieOptions[] = [
    { overwrite: "cow" },
    { overwrite: "inplace" },
    { overwrite: "inplace", memo: true },
    { overwrite: "inplace", memo: true, qsbr: true },
  ];
  // Full hashes; 8 bits spread over the levels (chains, deep expansions); 4 bits at the
  // bottom (every key down 8 levels); one hash for all (one chain in the root).
  const masks = [-1, 0xc000c00f | 0, 0x0000000f, 0];
  for (const v of variants) {
    for (const hashMask of masks) {
      const n = hashMask === 0 ? Math.min(ops, 50000) : ops;
      const t0 = performance.now();
      checkOne({ ...v, hashMask }, n, seed);
      console.log(
        `ok ${JSON.stringify({ ...v, hashMask: (hashMask >>> 0).toString(16) })}: ${n} ops, ` +
          `${(performance.now() - t0).toFixed(0)} ms`,
      );
    }
  }
}

if (import.meta.main) {
  const seed = positiveInt("seed", (Math.random() * 2 ** 31) >>> 0 || 1);
  console.log(`seed ${seed}`);
  check(positiveInt("ops", 200000), seed);
}
