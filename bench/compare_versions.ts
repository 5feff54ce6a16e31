// Copyright the shmap authors. MIT license.
/**
 * Two or more versions of this library side by side in one process: the uncontended cost of
 * the locks and of the maps' hot paths, and (with `--workers`) the multi-worker throughput of
 * bench/workers.ts, as ratios measured in the same run.
 *
 * ```
 * deno task bench:compare                      # git:f80971c against the working tree, on Deno
 * deno run -A bench/compare_versions.ts git:f80971c ./mod.ts --old-hash --workers
 * deno run -A tools/bun.ts bench/compare_versions.ts git:f80971c ./mod.ts --old-hash --workers
 * ```
 *
 * A version is a path to a tree's mod.ts, or `git:REF` for the tree of a commit of this
 * repository (extracted with `git archive`). Each version's `src/` and `mod.ts` are copied to a
 * temporary directory, with this tree's `bench/` next to them, so that every version runs the
 * same benchmark code. The first version is the baseline; every other is reported as a ratio
 * to it. f80971c is the last commit before the engine learned to survive dead workers
 * (owner-encoded lock words, journals, the census): issue 8 asks the single-thread costs to
 * stay within 5% of it, and the throughput not to drop.
 *
 * Options:
 * - `--old-hash` adds one more version: the last one with src/_engine/hash.ts swapped for the
 *   MurmurHash3-style hash of tests/fixtures/murmur3_hash.ts, which the baseline used, so that
 *   the last version and the baseline can be compared with the hash taken out of the difference.
 * - `--workers` also runs bench/workers.ts's SyncMap and GoMap groups (read-mostly int and
 *   string, disjoint writers) with 1 and 2 workers, each version's workers loading that
 *   version only; `--workers-only` runs only those; `--worker-rounds=N` (default 5) and
 *   `--worker-ms=N` (default 300, the wall time of one timed loop); `--worker-warmup-ms=N`
 *   (default 2000, the wall time of each group's warm-up, every worker at once).
 * - `--only=TEXT` keeps the cases (and worker groups) whose name contains TEXT.
 * - `--rounds=N` (default 31) and `--sample-ms=N` (default 20) for the single-thread cases;
 *   `--clock=wall` times their samples by wall time instead of the process's CPU time.
 *
 * Method, single thread: each (version, case) gets its own loop, made with the Function
 * constructor so that its call sites see one class only (a loop shared by two versions'
 * classes would measure a polymorphic call). After a warm-up, each round times one sample of
 * every version for every case, rotating which version goes first; the report gives each
 * version's median ns per op over the rounds and its ratio to the baseline's median, and the
 * ratio of the fastest samples too (interference only ever adds time). Workers: each round runs
 * every group once per version, rotating the order, each run on fresh workers (bench/workers.ts:
 * a warm-up, then one timed loop with 1 worker and one with 2); the report gives the median
 * total throughput over the rounds and its ratio to the baseline's (above 1: faster). The
 * machine is shared and noisy: trust ratios from one run, and repeat the run.
 *
 * @module
 */

import { do_not_optimize } from "mitata";
import { execFileSync } from "node:child_process";
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { WorkerBenchOptions, WorkerBenchResult } from "./workers.ts";
import { args, option, positiveInt, runtimeName } from "./fixtures/cli.ts";
import { swapInOldHash } from "./fixtures/old_hash.ts";
import { type Body, calibrate, cpuMs, median, sample, wallMs } from "./fixtures/timing.ts";

// deno-lint-ignore no-explicit-any
type Lib = any;
/** A loop of `n` operations. */

const ROUNDS = positiveInt("rounds", 31);
const SAMPLE_MS = positiveInt("sample-ms", 20);
const WORKER_ROUNDS = positiveInt("worker-rounds", 5);
const WORKER_MS = positiveInt("worker-ms", 300);
const WORKER_WARMUP_MS = positiveInt("worker-warmup-ms", 2000);
const only = option("only");
const workersOnly = args.includes("--workers-only");
const withWorkers = workersOnly || args.includes("--workers");
const specs = args.filter((a) => !a.startsWith("--"));
if (specs.length < 2) {
  console.error(
    "usage: compare_versions.ts BASELINE OTHER [...] [--old-hash] [--workers] [--rounds=N]\n" +
      "  (a version is a path to a tree's mod.ts, or git:REF)",
  );
  throw new Error("compare_versions.ts needs at least two versions");
}

/** Number of keys in every map. */
const N = 1024;

/** This repository's root (the one this script is in). */
const here = fileURLToPath(new URL("..", import.meta.url));
/** Where the versions' trees are copied; removed when the run ends. */
const scratch = mkdtempSync(join(tmpdir(), "shmap-compare-"));

/**
 * Makes the tree of version `spec` in `dir`: its src/ and mod.ts, this tree's bench/, and a
 * link to this tree's node_modules (bench/report.ts imports mitata, which Bun resolves by
 * walking up from the importing file). Returns the path of its mod.ts.
 */
function makeTree(spec: string, dir: string): string {
  mkdirSync(dir, { recursive: true });
  if (spec.startsWith("git:")) {
    const ref = spec.slice(4);
    const tar = execFileSync("git", ["-C", here, "archive", ref, "mod.ts", "src"], {
      maxBuffer: 1 << 28,
    });
    execFileSync("tar", ["-x", "-C", dir], { input: tar });
  } else {
    const mod = resolve(spec);
    if (!existsSync(mod)) throw new Error(`no such module: ${spec}`);
    cpSync(join(dirname(mod), "src"), join(dir, "src"), { recursive: true });
    copyFileSync(mod, join(dir, "mod.ts"));
  }
  cpSync(join(here, "bench"), join(dir, "bench"), { recursive: true });
  if (existsSync(join(here, "node_modules"))) {
    symlinkSync(join(here, "node_modules"), join(dir, "node_modules"), "dir");
  }
  return join(dir, "mod.ts");
}

interface Version {
  name: string;
  /** The tree's mod.ts, imported. */
  lib: Lib;
  /** The tree's copy of bench/workers.ts, imported on first use. */
  dir: string;
}

const versions: Version[] = [];
for (const spec of specs) {
  const dir = join(scratch, `v${versions.length}`);
  const mod = makeTree(spec, dir);
  versions.push({ name: spec, lib: await import(pathToFileURL(mod).href), dir });
}
if (args.includes("--old-hash")) {
  const last = specs[specs.length - 1];
  const dir = join(scratch, `v${versions.length}`);
  const mod = makeTree(last, dir);
  swapInOldHash(dir);
  versions.push({
    name: `${last} with the old hash`,
    lib: await import(pathToFileURL(mod).href),
    dir,
  });
}

let loops = 0;

/**
 * A loop of `n` iterations of `step` (source text over `o` and the key array `keys`, with `i`
 * the iteration), compiled afresh for each call so that every version has call sites of its own.
 * Each source text is made unique by a comment: JavaScriptCore caches code by source text, so
 * two loops of the same text would share their profiles (and their call sites would see both
 * versions' classes).
 */
function loop(step: string, o: unknown, keys: readonly unknown[], mu?: unknown): Body {
  return new Function(
    "o",
    "keys",
    "sink",
    "mu",
    `/* loop ${loops++} */ return (n) => { for (let i = 0; i < n; i++) { ${step} } };`,
  )(o, keys, do_not_optimize, mu) as Body;
}

const intKeys = Array.from({ length: N }, (_, i) => i);
const missKeys = Array.from({ length: N }, (_, i) => N + i);
const manyStrKeys = Array.from({ length: 4 * N }, (_, i) => `user:${String(i).padStart(11, "0")}`);
const strKeys = manyStrKeys.slice(0, N);

function filledSyncMap(lib: Lib, keys: readonly unknown[]): Lib {
  const m = new lib.SyncMap();
  keys.forEach((k, i) => m.store(k, i));
  for (const k of keys) m.load(k); // promote: every key in the read table
  return m;
}

function filledGoMap(lib: Lib, keys: readonly unknown[]): Lib {
  const m = new lib.GoMap();
  keys.forEach((k, i) => m.set(k, i));
  return m;
}

/** A SyncMap holding key 0, as Go's Collision shapes start. */
function oneKey(lib: Lib): Lib {
  const m = new lib.SyncMap();
  m.store(0, 0);
  return m;
}

/** A case: its name and, for a version's library, its loop. */
type Case = [string, (lib: Lib) => Body];

/** The key of iteration `i` in a loop's step: `keys[i & (N - 1)]`. */
const KEY = `keys[i & ${N - 1}]`;

/**
 * The case `name`: `step` on a map that `filled` makes with the keys `filledWith`, the loop's
 * `keys` being `keys`, and its `mu` what `mu` makes, if anything.
 */
function mapCase(
  name: string,
  filled: (lib: Lib, keys: readonly unknown[]) => Lib,
  step: string,
  keys: readonly unknown[] = intKeys,
  filledWith: readonly unknown[] = keys,
  mu?: (lib: Lib) => unknown,
): Case {
  return [name, (lib) => loop(step, filled(lib, filledWith), keys, mu?.(lib))];
}

const newMutex = (lib: Lib): unknown => new lib.Mutex();

/** The cases. */
const cases: Case[] = [
  ["Mutex lock+unlock", (lib) => loop("o.lock(); o.unlock();", new lib.Mutex(), [])],
  ["RWMutex rLock+rUnlock", (lib) => loop("o.rLock(); o.rUnlock();", new lib.RWMutex(), [])],
  ["RWMutex lock+unlock", (lib) => loop("o.lock(); o.unlock();", new lib.RWMutex(), [])],
  mapCase("SyncMap.load hit, int", filledSyncMap, `sink(o.load(${KEY}));`),
  mapCase("SyncMap.load hit, str16", filledSyncMap, `sink(o.load(${KEY}));`, strKeys),
  mapCase("SyncMap.load miss, int", filledSyncMap, `sink(o.load(${KEY}));`, missKeys, intKeys),
  // Each key new to the map and to the handle's memos: the misses of LoadAndDeleteBalanced
  // and AdversarialDelete. The next key lives in `mu`, as a sample's `i` starts at 0 each time.
  mapCase(
    "SyncMap.load miss, unique int",
    filledSyncMap,
    "sink(o.load(mu.next++));",
    intKeys,
    intKeys,
    () => ({ next: 2 ** 31 }),
  ),
  // String keys past the handle's key hash cache (it holds 1,024): each lookup makes a probe.
  mapCase(
    "SyncMap.load hit, str16, 4,096 keys",
    filledSyncMap,
    "sink(o.load(keys[Math.imul(i, 0x9e3779b1) >>> 20]));",
    manyStrKeys,
  ),
  mapCase("SyncMap.store overwrite, int", filledSyncMap, `o.store(${KEY}, i);`),
  mapCase("SyncMap.loadOrStore hit, int", filledSyncMap, `sink(o.loadOrStore(${KEY}, i));`),
  mapCase("SyncMap.has hit, int", filledSyncMap, `sink(o.has(${KEY}));`),
  mapCase("GoMap.get hit, int", filledGoMap, `sink(o.get(${KEY}));`),
  mapCase("GoMap.has hit, int", filledGoMap, `sink(o.has(${KEY}));`),
  mapCase("GoMap.get hit, str16", filledGoMap, `sink(o.get(${KEY}));`, strKeys),
  mapCase("GoMap.get miss, int", filledGoMap, `sink(o.get(${KEY}));`, missKeys, intKeys),
  // As "SyncMap.load miss, unique int": ids checked once, each new to the handle's lookup copy.
  mapCase(
    "GoMap.get miss, unique int",
    filledGoMap,
    "sink(o.get(mu.next++));",
    intKeys,
    intKeys,
    () => ({ next: 2 ** 31 }),
  ),
  mapCase("GoMap.set overwrite, int", filledGoMap, `o.set(${KEY}, i);`),
  // A churn (bench/cases_gomap.ts's "set new / delete"): even calls set an absent key, odd
  // calls delete a present one, 512 of the 1,024 keys present at any time. The call count
  // lives in `mu`, as a sample's `i` starts at 0 each time.
  mapCase(
    "GoMap set new / delete, int",
    filledGoMap,
    `const j = mu.calls++;
    if ((j & 1) === 0) o.set(keys[(j >> 1) & ${N - 1}], j);
    else o.delete(keys[((j >> 1) + ${N / 2}) & ${N - 1}]);`,
    intKeys,
    intKeys.slice(N / 2),
    () => ({ calls: 0 }),
  ),
  mapCase(
    "Mutex+GoMap.get hit, int",
    filledGoMap,
    `mu.lock(); sink(o.get(${KEY})); mu.unlock();`,
    intKeys,
    intKeys,
    newMutex,
  ),
  mapCase(
    "RWMutex+GoMap.get hit, int",
    filledGoMap,
    `mu.rLock(); sink(o.get(${KEY})); mu.rUnlock();`,
    intKeys,
    intKeys,
    (lib) => new lib.RWMutex(),
  ),
  mapCase(
    "RWMutex+GoMap.get hit, int, scattered",
    filledGoMap,
    `const k = keys[Math.imul(i, 0x9e3779b1) >>> 22]; mu.rLock(); sink(o.get(k)); mu.rUnlock();`,
    intKeys,
    intKeys,
    (lib) => new lib.RWMutex(),
  ),
  mapCase(
    "RWMutex+GoMap.get, 1% set, int, scattered",
    filledGoMap,
    `const k = keys[Math.imul(i, 0x9e3779b1) >>> 22]; if (i % 100 === 0) { mu.lock(); ` +
      `o.set(k, i); mu.unlock(); } else { mu.rLock(); sink(o.get(k)); mu.rUnlock(); }`,
    intKeys,
    intKeys,
    (lib) => new lib.RWMutex(),
  ),
  // bench/workers.ts's disjoint writers with a GoMap under a Mutex, in one thread: a get, then a
  // set of another key to a number past int32 (a float64 slot), each under the lock.
  mapCase(
    "Mutex+GoMap get, set, scattered",
    filledGoMap,
    `const k = keys[Math.imul(i, 0x9e3779b1) >>> 22]; mu.lock(); sink(o.get(k)); mu.unlock(); ` +
      `mu.lock(); o.set(keys[(i * 7) & ${N - 1}], i + 2 ** 40); mu.unlock();`,
    intKeys,
    intKeys,
    newMutex,
  ),
  mapCase(
    "Mutex+GoMap.set overwrite, int",
    filledGoMap,
    `mu.lock(); o.set(${KEY}, i); mu.unlock();`,
    intKeys,
    intKeys,
    newMutex,
  ),
  // Go's shapes where SyncMap is furthest behind Go (bench/cases_go_shapes.ts has them all):
  // one key for everyone, and the churn that rebuilds the dirty table.
  // Go's LoadMostlyMisses: one key present, 1,024 looked up, 1,023 of them absent.
  mapCase("SyncMap LoadMostlyMisses, int", (lib) => oneKey(lib), `sink(o.load(${KEY}));`),
  ["SyncMap LoadOrStoreCollision", (lib) => loop("sink(o.loadOrStore(0, 0));", oneKey(lib), [])],
  ["SyncMap DeleteCollision", (lib) => loop("sink(o.delete(0));", oneKey(lib), [])],
  mapCase("SyncMap.swap overwrite, int", filledSyncMap, `sink(o.swap(${KEY}, i));`),
  // A fraction needs a value record (an integer from 0 to 2^30 - 2 is held in the entry itself):
  // the store that allocates one and retires the one it replaces.
  mapCase("SyncMap.store overwrite, fraction", filledSyncMap, `o.store(${KEY}, i + 0.5);`),
  // A string value, copied into a record: the store of a cache of short texts.
  mapCase(
    "SyncMap.store overwrite, string",
    filledSyncMap,
    `o.store(${KEY}, mu[i & 255]);`,
    intKeys,
    intKeys,
    () => Array.from({ length: 256 }, (_, j) => `value ${j}`),
  ),
  mapCase(
    "SyncMap.store overwrite, str16, string",
    filledSyncMap,
    `o.store(${KEY}, mu[i & 255]);`,
    strKeys,
    strKeys,
    () => Array.from({ length: 256 }, (_, j) => `value ${j}`),
  ),
  mapCase(
    "SyncMap.compareAndSwap, int",
    filledSyncMap,
    `sink(o.compareAndSwap(${KEY}, -1, i));`, // never equal: the compare only
  ),
  [
    "SyncMap LoadAndDeleteCollision",
    (lib) => loop("sink(o.loadAndDelete(0));", oneKey(lib), []),
  ],
  [
    "SyncMap LoadAndDelete+Store, one key",
    (lib) => loop("if (o.loadAndDelete(0)[1]) o.store(0, 0);", oneKey(lib), []),
  ],
  // Go's SwapMostlyMisses (one key present, the key swapped in new each call, then deleted): a
  // dirty table made and promoted per round.
  [
    "SyncMap SwapMostlyMisses",
    (lib) =>
      loop("sink(o.m.swap(o.i, o.i)); o.m.delete(o.i); o.i++;", { m: oneKey(lib), i: 1 }, []),
  ],
  [
    "SyncMap AdversarialAlloc",
    (lib) =>
      loop(
        "sink(o.m.load(o.i)); if (++o.since > o.stores) { o.m.loadOrStore(o.i, o.stores); " +
          "o.since = 0; o.stores++; } o.i++;",
        { m: new lib.SyncMap(), i: 0, stores: 0, since: 0 },
        [],
      ),
  ],
  [
    "SyncMap AdversarialDelete",
    (lib) => {
      const o = { m: filledSyncMap(lib, intKeys), i: 0, deleteFirst: (_k: unknown) => false };
      o.deleteFirst = (k) => (o.m.delete(k), false);
      return loop(
        "sink(o.m.load(o.i)); if (o.i % 1024 === 0) { o.m.range(o.deleteFirst); " +
          "o.m.store(o.i, o.i); } o.i++;",
        o,
        [],
      );
    },
  ],
  [
    "SyncMap StoreDeleteChurn, int",
    (lib) => {
      const m = new lib.SyncMap();
      for (let k = N / 2; k < N; k++) m.store(k, k);
      return loop(
        `const k = i >> 1; if ((i & 1) === 0) o.store(k & ${N - 1}, k); ` +
          `else o.delete((k + ${N / 2}) & ${N - 1});`,
        m,
        [],
      );
    },
  ],
  // Iteration, per key: a Range over the 1,024 keys every 1,024 ops, or one next() of an
  // iterator that starts over at its end (Map's, the same in every version, is the yardstick).
  mapCase(
    "SyncMap.range per key, int",
    filledSyncMap,
    `if ((i & ${N - 1}) === 0) o.range(sink);`,
    [],
    intKeys,
  ),
  mapCase(
    "SyncMap.range per key, str16",
    filledSyncMap,
    `if ((i & ${N - 1}) === 0) o.range(sink);`,
    [],
    strKeys,
  ),
  ["SyncMap.entries per key, int", (lib) => iterateLoop(filledSyncMap(lib, intKeys))],
  ["SyncMap.entries per key, str16", (lib) => iterateLoop(filledSyncMap(lib, strKeys))],
  ["GoMap.entries per key, int", (lib) => iterateLoop(filledGoMap(lib, intKeys))],
  ["GoMap.entries per key, str16", (lib) => iterateLoop(filledGoMap(lib, strKeys))],
  ["Map.entries per key, int", () => iterateLoop(new Map(intKeys.map((k, i) => [k, i])))],
  ["Map.entries per key, str16", () => iterateLoop(new Map(strKeys.map((k, i) => [k, i])))],
];

/** One `next()` a op of `m.entries()`, started over at its end. */
function iterateLoop(m: Lib): Body {
  const step = "let r = o.it.next(); if (r.done) { o.it = o.m.entries(); r = o.it.next(); } " +
    "sink(r.value);";
  return loop(step, { m, it: m.entries() }, []);
}

const useCpuClock = option("clock") !== "wall";
if (option("clock") !== undefined && option("clock") !== "cpu" && option("clock") !== "wall") {
  throw new RangeError(`--clock must be cpu or wall, got ${option("clock")}`);
}

/**
 * What the samples are timed by: the process's CPU time, which leaves out the time other
 * processes took the core (the machine is shared) but counts the engine's helper threads, or
 * with `--clock=wall` wall time.
 */
const clock = useCpuClock ? cpuMs : wallMs;

const fmt = (x: number): string => (x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0));

function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const line = (r: string[]) => "| " + r.map((s, c) => s.padEnd(widths[c])).join(" | ") + " |";
  console.log(line(rows[0]));
  console.log("| " + widths.map((w) => "-".repeat(w)).join(" | ") + " |");
  for (const r of rows.slice(1)) console.log(line(r));
}

function listVersions(): void {
  versions.forEach((v, i) => console.log(`- v${i}: ${v.name}`));
  console.log();
}

function singleThread(): void {
  const selected = cases.filter(([name]) => only === undefined || name.includes(only));
  if (selected.length === 0) return;
  const bodies = selected.map(([, make]) => versions.map((v) => make(v.lib)));
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
      `${SAMPLE_MS} ms (${useCpuClock ? "process CPU time" : "wall time"})\n`,
  );
  listVersions();
  // With many versions, no ratio of the fastest samples: two columns each.
  const compact = versions.length > 3;
  const header = ["case", "v0"];
  for (let i = 1; i < versions.length; i++) {
    header.push(...(compact ? [`v${i}`, `v${i}/v0`] : [`v${i}`, `v${i}/v0`, `fastest v${i}/v0`]));
  }
  const rows = [header];
  selected.forEach(([name], c) => {
    const base = median(samples[c][0]);
    const baseMin = Math.min(...samples[c][0]);
    const row = [name, fmt(base)];
    for (let i = 1; i < versions.length; i++) {
      const m = median(samples[c][i]);
      const ratio = (m / base).toFixed(3);
      const fastest = (Math.min(...samples[c][i]) / baseMin).toFixed(3);
      row.push(...(compact ? [fmt(m), ratio] : [fmt(m), ratio, fastest]));
    }
    rows.push(row);
  });
  printTable(rows);
}

/** The groups of bench/workers.ts compared: the ones that use this library. */
const WORKER_GROUPS = [
  "read-mostly int / SyncMap",
  "read-mostly int / GoMap+RWMutex",
  "read-mostly string / SyncMap",
  "read-mostly string / GoMap+RWMutex",
  "disjoint writers / SyncMap",
  "disjoint writers / GoMap+Mutex",
];
const WORKER_COUNTS = [1, 2];

type RunWorkerBench = (options: WorkerBenchOptions) => Promise<WorkerBenchResult[]>;

async function workers(): Promise<void> {
  const groups = WORKER_GROUPS.filter((g) => only === undefined || g.includes(only));
  if (groups.length === 0) return;
  const runs: RunWorkerBench[] = [];
  for (const v of versions) {
    const url = pathToFileURL(join(v.dir, "bench/workers.ts")).href;
    runs.push((await import(url)).runWorkerBench);
  }
  // Mops/s by group, worker count and version: one per round.
  const mops = groups.map(() => WORKER_COUNTS.map(() => versions.map((): number[] => [])));
  for (let r = 0; r < WORKER_ROUNDS; r++) {
    console.error(`workers: round ${r + 1} of ${WORKER_ROUNDS}`);
    for (let g = 0; g < groups.length; g++) {
      for (let j = 0; j < versions.length; j++) {
        const v = (r + j) % versions.length;
        const rows = await runs[v]({
          only: groups[g],
          maxWorkers: Math.max(...WORKER_COUNTS),
          reps: 1,
          durationMs: WORKER_MS,
          warmupMs: WORKER_WARMUP_MS,
          print: false,
          yardsticks: false,
        });
        WORKER_COUNTS.forEach((n, k) => {
          const row = rows.find((x) =>
            `${x.case} / ${x.structure}` === groups[g] && x.workers === n
          );
          if (row === undefined) throw new Error(`workers: no row for ${groups[g]}, ${n}`);
          mops[g][k][v].push(row.mopsPerSec);
        });
      }
    }
  }
  console.log(
    `\n## ${runtimeName}, workers (bench/workers.ts): total Mops/s, medians of ${WORKER_ROUNDS} ` +
      `rounds of ${WORKER_MS} ms, ${navigator.hardwareConcurrency} hardware threads\n`,
  );
  listVersions();
  const header = ["case / structure", "workers", "v0"];
  for (let i = 1; i < versions.length; i++) header.push(`v${i}`, `v${i}/v0`);
  const rows = [header];
  groups.forEach((group, g) => {
    WORKER_COUNTS.forEach((n, k) => {
      const base = median(mops[g][k][0]);
      const row = [group, String(n), fmt(base)];
      for (let i = 1; i < versions.length; i++) {
        const m = median(mops[g][k][i]);
        row.push(fmt(m), (m / base).toFixed(3));
      }
      rows.push(row);
    });
  });
  printTable(rows);
}

try {
  if (!workersOnly) singleThread();
  if (withWorkers) await workers();
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
