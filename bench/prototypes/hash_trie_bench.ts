// Copyright the shmap authors. MIT license.
/**
 * The hash-trie prototype (hash_trie.ts) against the library's SyncMap, one thread, in one
 * process: issue 11's churn shapes and the hits and overwrites a trie might cost more, as
 * bench/cases_go_shapes.ts shapes them, to tell whether a trie over shared memory would beat
 * SyncMap in JavaScript (docs/design.md, "The read/dirty design against a hash-trie", has the Go
 * side).
 *
 * ```
 * deno run -A bench/prototypes/hash_trie_bench.ts
 * deno run -A tools/bun.ts bench/prototypes/hash_trie_bench.ts
 * deno run -A bench/prototypes/hash_trie_bench.ts --check   # the self-check only
 * ```
 *
 * Options: `--rounds=N` (default 31), `--sample-ms=N` (default 20), `--only=TEXT` (cases whose
 * name contains TEXT), `--clock=wall` (default: the process's CPU time).
 *
 * Structures: SyncMap (default options, number keys and values), and three variants of the trie:
 * "trie cow" (Go 1.24's: copy-on-write entries, the plain keyed hash), "trie inplace" (the value
 * word swapped in place with one compare-and-swap, no lock; the plain keyed hash), and "trie
 * inplace+memo" (that, with a per-handle memo of key -> entry and the library's hash memo, as
 * SyncMap has). Ratios are the trie's median over SyncMap's: below 1, the trie is faster.
 *
 * Method, as bench/compare_versions.ts: each (structure, case) has its own loop, made with the
 * Function constructor (and a unique comment, for JavaScriptCore's cache of code by source text)
 * so that its call sites see one class; a warm-up; then rounds of one sample of about
 * `--sample-ms` each of every structure for every case, rotating which goes first; the report
 * gives medians of ns per op, and the ratio of the fastest samples too.
 *
 * @module
 */

import { do_not_optimize } from "mitata";
import { SyncMap } from "../../mod.ts";
import type { HashTrie, HashTrieOptions } from "./hash_trie.ts";
import { check } from "./hash_trie_check.ts";
import { args, option, positiveInt, runtimeName } from "../fixtures/cli.ts";
import { type Body, calibrate, cpuMs, median, sample, wallMs } from "../fixtures/timing.ts";

if (args.includes("--check")) {
  const seed = positiveInt("seed", (Math.random() * 2 ** 31) >>> 0 || 1);
  console.log(`seed ${seed}`);
  check(positiveInt("ops", 200000), seed);
  // deno-lint-ignore no-explicit-any
  (globalThis as any).Deno?.exit(0);
  // deno-lint-ignore no-explicit-any
  (globalThis as any).process?.exit(0);
}

const ROUNDS = positiveInt("rounds", 31);
const SAMPLE_MS = positiveInt("sample-ms", 20);
const only = option("only");
if (option("clock") !== undefined && option("clock") !== "cpu" && option("clock") !== "wall") {
  throw new RangeError(`--clock must be cpu or wall, got ${option("clock")}`);
}
const useCpuClock = option("clock") !== "wall";
const clock = useCpuClock ? cpuMs : wallMs;

/** The methods the loops call: Go's mapInterface, numbers only. */
interface Shaped {
  load(key: number): number | undefined;
  store(key: number, value: number): void;
  loadOrStore(key: number, value: number): [number, boolean];
  loadAndDelete(key: number): [number | undefined, boolean];
  delete(key: number): boolean;
  range(f: (key: number, value: number) => boolean | void): void;
}

const VARIANTS: [string, HashTrieOptions][] = [
  ["trie cow", { overwrite: "cow" }],
  ["trie inplace", { overwrite: "inplace" }],
  ["trie inplace+memo", { overwrite: "inplace", memo: true }],
  ["trie inplace+memo+qsbr", { overwrite: "inplace", memo: true, qsbr: true }],
];

/**
 * Each variant's HashTrie class from a module instance of its own (hash_trie.ts imported under a
 * query of its own), so that one variant's branches and field types are not in another's
 * profile: each class's methods are as monomorphic as a dedicated build's would be.
 */
const classes: (typeof HashTrie)[] = [];
for (const [, options] of VARIANTS) {
  const url = new URL(
    `./hash_trie.ts?variant=${options.overwrite}${options.memo ? "+memo" : ""}${
      options.qsbr ? "+qsbr" : ""
    }`,
    import.meta.url,
  );
  classes.push((await import(url.href)).HashTrie);
}

/** The structures compared; the first is the baseline. */
const STRUCTURES: { name: string; make(): Shaped }[] = [
  { name: "SyncMap", make: () => new SyncMap<number, number>() as unknown as Shaped },
  ...VARIANTS.map(([name, options], v) => ({
    name,
    make: () => new classes[v](options) as Shaped,
  })),
];

const N = 1024;
const intKeys = Array.from({ length: N }, (_, i) => i);

let loops = 0;

/**
 * A loop of `n` iterations of `step` (source text over `o`, the key array `keys` and `sink`, with
 * `i` the iteration), compiled afresh for each (structure, case), as compare_versions.ts's.
 */
function loop(step: string, o: unknown, keys: readonly unknown[] = []): Body {
  return new Function(
    "o",
    "keys",
    "sink",
    `/* loop ${loops++} */ return (n) => { for (let i = 0; i < n; i++) { ${step} } };`,
  )(o, keys, do_not_optimize) as Body;
}

/** Go's setup for the hits/misses shapes: the hit keys, each loaded twice to promote them. */
function fillHits(m: Shaped, hits: number): Shaped {
  for (let i = 0; i < hits; i++) m.loadOrStore(intKeys[i], i);
  for (let i = 0; i < hits * 2; i++) m.load(intKeys[i % hits]);
  return m;
}

/** Keys 0..1023 stored, then each loaded (promoted into SyncMap's read table). */
function fillAll(m: Shaped): Shaped {
  for (let k = 0; k < N; k++) m.store(k, k);
  for (let k = 0; k < N; k++) m.load(k);
  return m;
}

/** Key 0, as Go's Collision shapes start. */
function oneKey(m: Shaped): Shaped {
  m.loadOrStore(0, 0);
  return m;
}

/** A case: its name, and its loop on a new structure that `make` makes. */
type Case = [string, (make: () => Shaped) => Body];

const KEY = `keys[i & ${N - 1}]`;

const CASES: Case[] = [
  // Go's LoadMostlyHits: 1,023 keys present, 1,024 looked up in turn.
  ["LoadMostlyHits", (make) => loop(`sink(o.load(${KEY}));`, fillHits(make(), 1023), intKeys)],
  // Go's LoadMostlyMisses: one key present, 1,024 looked up, 1,023 of them absent.
  ["LoadMostlyMisses", (make) => loop(`sink(o.load(${KEY}));`, fillHits(make(), 1), intKeys)],
  // compare_versions.ts's "SyncMap.store overwrite, int": 1,024 keys present, stored again.
  ["store overwrite, 1,024 keys", (make) => loop(`o.store(${KEY}, i);`, fillAll(make()), intKeys)],
  ["LoadOrStoreCollision", (make) => loop("sink(o.loadOrStore(0, 0));", oneKey(make()))],
  ["LoadAndDeleteCollision", (make) => loop("sink(o.loadAndDelete(0));", oneKey(make()))],
  ["DeleteCollision", (make) => loop("sink(o.delete(0));", oneKey(make()))],
  // The three churn shapes, as compare_versions.ts writes them (state kept across samples in o).
  [
    "AdversarialAlloc",
    (make) =>
      loop(
        "sink(o.m.load(o.i)); if (++o.since > o.stores) { o.m.loadOrStore(o.i, o.stores); " +
          "o.since = 0; o.stores++; } o.i++;",
        { m: make(), i: 0, stores: 0, since: 0 },
      ),
  ],
  [
    "AdversarialDelete",
    (make) => {
      const o = { m: fillAll(make()), i: 0, deleteFirst: (_k: number) => false };
      o.deleteFirst = (k) => (o.m.delete(k), false);
      return loop(
        "sink(o.m.load(o.i)); if (o.i % 1024 === 0) { o.m.range(o.deleteFirst); " +
          "o.m.store(o.i, o.i); } o.i++;",
        o,
      );
    },
  ],
  [
    "StoreDeleteChurn",
    (make) => {
      const m = make();
      for (let k = N / 2; k < N; k++) m.store(k, k);
      return loop(
        `const k = i >> 1; if ((i & 1) === 0) o.store(k & ${N - 1}, k); ` +
          `else o.delete((k + ${N / 2}) & ${N - 1});`,
        m,
      );
    },
  ],
];

const fmt = (x: number): string => (x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0));

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => "| " + r.map((s, c) => s.padEnd(widths[c])).join(" | ") + " |";
  console.log(line(rows[0]));
  console.log("| " + widths.map((w) => "-".repeat(w)).join(" | ") + " |");
  for (const r of rows.slice(1)) console.log(line(r));
}

function run(): void {
  const selected = CASES.filter(([name]) => only === undefined || name.includes(only));
  const bodies = selected.map(([, make]) => STRUCTURES.map((s) => make(s.make)));
  for (const row of bodies) for (let w = 0; w < 5; w++) for (const body of row) body(1 << 14);
  const ops = bodies.map((row) => calibrate(row[0], SAMPLE_MS, 2 ** 28, clock));
  const samples = bodies.map((row) => row.map((): number[] => []));
  for (let r = 0; r < ROUNDS; r++) {
    for (let c = 0; c < bodies.length; c++) {
      const row = bodies[c];
      for (let j = 0; j < row.length; j++) {
        const v = (r + j) % row.length;
        samples[c][v].push(sample(row[v], ops[c], clock));
      }
    }
  }
  console.log(
    `\n## ${runtimeName}, one thread: ns per op, medians of ${ROUNDS} rounds of about ` +
      `${SAMPLE_MS} ms (${useCpuClock ? "process CPU time" : "wall time"}), ` +
      `${new Date().toISOString()}\n`,
  );
  console.log("Ratios: the trie's median over SyncMap's (fastest: of the fastest samples).\n");
  const header = ["case", STRUCTURES[0].name];
  for (const s of STRUCTURES.slice(1)) header.push(s.name, "ratio", "fastest");
  const rows = [header];
  selected.forEach(([name], c) => {
    const base = median(samples[c][0]);
    const baseMin = Math.min(...samples[c][0]);
    const row = [name, fmt(base)];
    for (let i = 1; i < STRUCTURES.length; i++) {
      const m = median(samples[c][i]);
      row.push(
        fmt(m),
        (m / base).toFixed(2),
        (Math.min(...samples[c][i]) / baseMin).toFixed(2),
      );
    }
    rows.push(row);
  });
  printTable(rows);
}

run();
