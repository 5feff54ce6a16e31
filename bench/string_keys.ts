// Copyright the shmap authors. MIT license.
/**
 * String keys against int keys, in one process: `SyncMap.load` and `GoMap.get` hits and
 * misses over 1,024 keys (`--keys=N`), for int keys and for strings of 3, 8, 16 and 64 units,
 * reported as ns per op and as the ratio string / int (issue 11 asks at most 1.3 for 16 units).
 *
 * ```
 * deno task bench:strings
 * deno run -A bench/string_keys.ts [MOD.ts ...] [--rounds=N] [--sample-ms=N] [--keys=N]
 * deno run -A tools/bun.ts bench/string_keys.ts [MOD.ts ...]
 * ```
 *
 * Each positional argument is a tree's mod.ts (default: this tree's), so that two trees can be
 * compared in one run (e.g. one checked out with `git worktree add --detach /tmp/old REF`).
 * Method as bench/compare_versions.ts: each (tree, case) gets its own loop, made with the
 * Function constructor so that its call sites see one class; after a warm-up, each round times
 * one sample of every loop (by the process's CPU time), rotating the order; the report gives
 * medians over the rounds. The keys are made by concatenation, as most programs make them (V8
 * keeps such strings as cons strings). The machine is shared and noisy: read the ratios.
 *
 * @module
 */

import { do_not_optimize } from "mitata";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { args, positiveInt, runtimeName } from "./fixtures/cli.ts";
import { type Body, calibrate, cpuMs, median, sample } from "./fixtures/timing.ts";

// deno-lint-ignore no-explicit-any
type Lib = any;

const ROUNDS = positiveInt("rounds", 21);
const SAMPLE_MS = positiveInt("sample-ms", 20);
const trees = args.filter((a) => !a.startsWith("--"));

/** Keys per map, a power of two (`--keys`; past 1,024 the handles' key hash caches are full). */
const N = positiveInt("keys", 1024);
if ((N & (N - 1)) !== 0 || N > 4096) {
  throw new RangeError("--keys must be a power of two, at most 4096");
}
const LENGTHS = [3, 8, 16, 36, 64];

const DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/**
 * Key i of `length` units (the number i, or N + i for a miss, when `length` is 0): a prefix
 * ("user:" or "miss:", cut or padded with "-"), then i in two base-64 digits.
 */
function keysOf(length: number, miss: boolean): unknown[] {
  return Array.from({ length: N }, (_, i) => {
    if (length === 0) return miss ? N + i : i;
    const prefix = (miss ? "miss:" : "user:").padEnd(length - 2, "-").slice(0, length - 2);
    return prefix + DIGITS[i >> 6] + DIGITS[i & 63];
  });
}

let loops = 0;
function loop(step: string, o: unknown, keys: readonly unknown[]): Body {
  return new Function(
    "o",
    "keys",
    "sink",
    `/* loop ${loops++} */ return (n) => { for (let i = 0; i < n; i++) { ${step} } };`,
  )(o, keys, do_not_optimize) as Body;
}

interface Case {
  tree: number;
  op: string;
  length: number;
  body: Body;
}

function casesFor(lib: Lib, tree: number): Case[] {
  const out: Case[] = [];
  for (const length of [0, ...LENGTHS]) {
    const keys = keysOf(length, false);
    const misses = keysOf(length, true);
    if (new Set(keys).size !== N) throw new Error(`keys of ${length} units are not distinct`);
    // A map each: a handle's key hash cache holds 1,024 strings, so hits and misses sharing one
    // handle would measure each other's evictions (a working set of 2,048 strings), not the op.
    const syncMap = () => {
      const s = new lib.SyncMap();
      keys.forEach((k, i) => s.store(k, i));
      for (const k of keys) s.load(k); // promote: every key in the read table
      return s;
    };
    const goMap = () => {
      const g = new lib.GoMap();
      keys.forEach((k, i) => g.set(k, i));
      return g;
    };
    const step = (m: string) => `sink(o.${m}(keys[i & ${N - 1}]));`;
    out.push({ tree, op: "SyncMap.load hit", length, body: loop(step("load"), syncMap(), keys) });
    out.push({
      tree,
      op: "SyncMap.load miss",
      length,
      body: loop(step("load"), syncMap(), misses),
    });
    out.push({ tree, op: "GoMap.get hit", length, body: loop(step("get"), goMap(), keys) });
    out.push({ tree, op: "GoMap.get miss", length, body: loop(step("get"), goMap(), misses) });
  }
  return out;
}

const paths = trees.length === 0 ? [new URL("../mod.ts", import.meta.url).href] : trees;
const libs: Lib[] = [];
for (const p of paths) {
  libs.push(await import(p.startsWith("file:") ? p : pathToFileURL(resolve(p)).href));
}
const cases = libs.flatMap((lib, t) => casesFor(lib, t));
for (let w = 0; w < 5; w++) for (const c of cases) c.body(1 << 14);
const ops = cases.map((c) => calibrate(c.body, SAMPLE_MS, 2 ** 26, cpuMs));
const samples = cases.map((): number[] => []);
for (let r = 0; r < ROUNDS; r++) {
  for (let j = 0; j < cases.length; j++) {
    const c = (j + r) % cases.length;
    samples[c].push(sample(cases[c].body, ops[c], cpuMs));
  }
}

console.log(
  `\n## ${runtimeName}: ns per op (medians of ${ROUNDS} rounds of about ${SAMPLE_MS} ms, ` +
    `process CPU time), and string / int\n`,
);
paths.forEach((p, t) => console.log(`- t${t}: ${p}`));
console.log();
const header = [
  "tree",
  "op",
  "int",
  ...LENGTHS.map((n) => `str${n}`),
  ...LENGTHS.map((n) => `str${n}/int`),
];
const rows = [header];
for (let t = 0; t < libs.length; t++) {
  for (const op of ["SyncMap.load hit", "SyncMap.load miss", "GoMap.get hit", "GoMap.get miss"]) {
    const m = (length: number) =>
      median(samples[cases.findIndex((c) => c.tree === t && c.op === op && c.length === length)]);
    const int = m(0);
    rows.push([
      `t${t}`,
      op,
      int.toFixed(1),
      ...LENGTHS.map((n) => m(n).toFixed(1)),
      ...LENGTHS.map((n) => (m(n) / int).toFixed(2)),
    ]);
  }
}
const widths = header.map((_, c) => Math.max(...rows.map((r) => r[c].length)));
const line = (r: string[]) => "| " + r.map((s, c) => s.padEnd(widths[c])).join(" | ") + " |";
console.log(line(rows[0]));
console.log("| " + widths.map((w) => "-".repeat(w)).join(" | ") + " |");
for (const r of rows.slice(1)) console.log(line(r));
