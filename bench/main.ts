// Copyright the shmap authors. MIT license.
/**
 * The benchmark suite, measured with mitata, on Deno and on Bun:
 *
 * ```sh
 * deno task bench                  # Deno: deno run -A --v8-flags=--expose-gc bench/main.ts
 * deno task bench:bun              # Bun: bun bench/main.ts (the pinned Bun, from tools/)
 * deno task bench:go               # Go's sync.Map, then this suite's Go shapes on both runtimes
 * deno bench                       # the Deno-native subset (bench/*_bench.ts, Deno.bench)
 * ```
 *
 * Options (after `deno task bench`, or after `bun bench/main.ts`):
 * - `--quick`: a smoke run of about a minute: each case measured for 0.1 s of CPU time, without
 *   mitata's per-case lines, and the worker runs 200 ms once each.
 * - `--only=gomap,syncmap,workers`: some parts only (a comma-separated list).
 * - `--filter=TEXT`: only the one-thread cases whose "group / structure" contains TEXT.
 * - `--rounds=N`: measure the one-thread cases N times over, in turn, and keep each one's lowest
 *   median: on a shared machine, the figure least disturbed by other work (no per-case lines).
 * - `--reps=N`: repetitions of each multi-worker measurement (default 3; the median is shown).
 * - `--go=FILE`: Go's figures to print beside the Go shapes, from `go test -bench` output (what
 *   bench/go_baseline.sh writes), so that ratios come from one sitting; with `-count N`, the
 *   lowest of each benchmark's N figures.
 * - `--json=FILE`: also write the figures as JSON (bench/readme_tables.ts makes the README's
 *   tables and charts from those of a Deno and a Bun run).
 * - `--one-process`: measure every one-thread group in this process (see below).
 *
 * Each group of one-thread cases (one shape or operation, on each structure) is measured in a
 * fresh process of the same runtime (on Deno with `run -A --v8-flags=--expose-gc`, as `deno task
 * bench` runs it; elsewhere with this process's flags), as this script run again with
 * `--child-group` (and `--quick`, `--rounds` and `--filter` as given): in one process, what the
 * JIT kept from earlier groups changed later ones up to 3x, on Deno and Node
 * (docs/performance.md: a SyncMap store/delete churn at 386 to 546 ns on Deno after five Go
 * shapes on SyncMap and Map, 146 to 177 in a process of its own; on Node 586 against 200 after
 * any subset of them, and in the slow process functions that the fast one inlines ran as calls
 * of their own). A user's program does not run fifty shapes in turn; a figure that depends on
 * which ran first says nothing of the code measured. Where this process may not start others
 * (Deno without --allow-run), or with `--one-process`, they run here.
 *
 * Parts:
 * 1. `gomap`: GoMap against a native Map in one thread (bench/cases.ts), and bytes per entry.
 * 2. `syncmap`: SyncMap, a GoMap under an RWMutex and a Map in the shapes of Go's
 *    sync/map_bench_test.go (bench/cases.ts); the one-thread read-mostly and disjoint-writer ops.
 * 3. `workers`: throughput of the two cases sync.Map is for across 1..4 workers
 *    (bench/workers.ts), with a chart of throughput against the number of workers.
 *
 * The tables' figures are ns per operation unless they say otherwise: the median of mitata's
 * samples, each the mean time of a batch of calls, one operation a call as Go's benchmarks count
 * them (a Range over 1,024 keys is one). The output starts with the runtime, its version, the
 * date and the machine, so a copied figure keeps its provenance; every line fits 100 columns. The
 * machine may be shared and noisy: compare ratios measured in one run, not times across runs.
 *
 * Without permissions (`deno bench bench/main.ts`, `deno run bench/main.ts`) it runs all but the
 * workers, and prints what it may not read (CPU model, load) as unknown.
 *
 * @module
 */

import { barplot, bench, compact, do_not_optimize, group, measure, run, summary } from "mitata";
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync, writeSync } from "node:fs";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { GoMap } from "../mod.ts";
import { type BenchCase, CASES, type Section } from "./cases.ts";
import { cliArgs, fmt, loadAverage, provenance, table, times, useColors, WIDTH } from "./report.ts";
import { runWorkerBench, type WorkerBenchResult } from "./workers.ts";
import { checkOptions } from "./fixtures/cli.ts";

/** What `--json=FILE` writes: this run's figures, for bench/readme_tables.ts. */
export interface JsonReport {
  /** The provenance lines (runtime, date, machine, load). */
  provenance: string[];
  quick: boolean;
  /** Go's ns/op by benchmark name, from --go=FILE. */
  go?: Record<string, number>;
  goAbout?: string;
  /** The one-thread cases: median ns per op. */
  cases: { section: Section; group: string; name: string; go?: string; ns: number }[];
  /** Bytes per entry: [entries, Map, GoMap, GoMap's B], as printed. */
  bytes: string[][];
  /** The multi-worker rows of bench/workers.ts. */
  workers: WorkerBenchResult[];
}

const args = cliArgs();
checkOptions(
  args,
  ["only", "filter", "rounds", "reps", "go", "json", "child-group"],
  ["quick", "one-process"],
);
const quick = args.includes("--quick");
const option = (name: string) => {
  const a = args.find((a) => a.startsWith(`--${name}=`));
  return a?.slice(a.indexOf("=") + 1);
};
/** The value of `--name=N`, a positive integer, or undefined. */
function count(name: string): number | undefined {
  const v = option(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new RangeError(`--${name} must be 1 or more, got ${v}`);
  }
  return n;
}
const rounds = count("rounds") ?? 1;
const reps = count("reps");
const PARTS = ["gomap", "syncmap", "workers"];
const parts = new Set(option("only")?.split(",") ?? PARTS);
for (const part of parts) {
  if (!PARTS.includes(part)) {
    throw new TypeError(`--only: unknown part ${part}; the parts are ${PARTS.join(", ")}`);
  }
}
const filter = option("filter");
/** Set in a process this script started to measure one group: `section: group`. */
const childGroup = option("child-group");
const goFile = option("go");
const jsonFile = option("json");
const started = performance.now();

// ---------------------------------------------------------------------------------------------
// Measuring the one-thread cases.

/** Calls before mitata sees an op, at most, and the time they may take: see {@linkcode warmed}. */
const WARM_CALLS = 10_000;
const WARM_MS = 50;

/**
 * `c`'s op, set up and called {@linkcode WARM_CALLS} times first (or for {@linkcode WARM_MS}). mitata times an op's first
 * calls, each awaited, to decide whether to measure it in batches; an op whose first calls took
 * more than 65 µs (a new map's first calls: its participant comes online, the JIT has not
 * compiled it yet) was measured one call a sample, the clock's cost included: SyncMap's
 * LoadMostlyHits read 579 to 834 ns on Bun that way, against 31 to 60 batched.
 */
function warmed(c: BenchCase): () => unknown {
  const op = c.setup().op;
  const until = performance.now() + WARM_MS;
  for (let i = 0; i < WARM_CALLS; i++) {
    op();
    if ((i & 63) === 63 && performance.now() > until) break;
  }
  return op;
}

/** `c`'s group, as mitata's groups and `--child-group` name it: `section: group`. */
function groupName(c: BenchCase): string {
  return `${c.section}: ${c.group}`;
}

/** `cases` by group ({@linkcode groupName}), in the order of each group's first case. */
function byGroup(cases: readonly BenchCase[]): Map<string, BenchCase[]> {
  const groups = new Map<string, BenchCase[]>();
  for (const c of cases) {
    const members = groups.get(groupName(c));
    if (members === undefined) groups.set(groupName(c), [c]);
    else members.push(c);
  }
  return groups;
}

/** The line that starts a child process's results on its stdout (see measureIsolated). */
const RESULTS_MARK = "@@shmap-bench-results ";

/** How to run this script again in a fresh process of this runtime, with its flags. */
function selfCommand(): { command: string; args: string[] } | undefined {
  const script = fileURLToPath(import.meta.url);
  const deno = (globalThis as {
    Deno?: {
      execPath(): string;
      permissions: { querySync(d: { name: "run" }): { state: string } };
    };
  }).Deno;
  if (deno !== undefined) {
    if (deno.permissions.querySync({ name: "run" }).state !== "granted") return undefined;
    return { command: deno.execPath(), args: ["run", "-A", "--v8-flags=--expose-gc", script] };
  }
  return { command: process.execPath, args: [...process.execArgv, script] };
}

/**
 * Measures each group of `cases` in a fresh process (see the module doc), in order, passing on
 * --quick, --rounds and --filter; the child's mitata lines are printed as they would be here.
 * Returns undefined where no process can be started.
 */
function measureIsolated(cases: readonly BenchCase[]): Map<BenchCase, number> | undefined {
  const self = selfCommand();
  if (self === undefined) return undefined;
  const out = new Map<BenchCase, number>();
  const passed = args.filter((a) =>
    a === "--quick" || a.startsWith("--rounds=") || a.startsWith("--filter=")
  );
  for (const [name, members] of byGroup(cases)) {
    const child = spawnSync(self.command, [...self.args, ...passed, `--child-group=${name}`], {
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
      stdio: ["ignore", "pipe", "inherit"],
    });
    const lines = (child.stdout ?? "").split("\n");
    const mark = lines.findIndex((l) => l.startsWith(RESULTS_MARK));
    if (child.status !== 0 || mark < 0) {
      const why = child.error?.message ?? `status ${child.status}, signal ${child.signal}`;
      throw new Error(`the process measuring ${name} failed (${why})`);
    }
    const got = JSON.parse(lines[mark].slice(RESULTS_MARK.length)) as Record<string, number>;
    print(lines.slice(0, mark).join("\n").trimEnd());
    for (const c of members) {
      const ns = got[c.name];
      if (typeof ns !== "number") throw new Error(`no figure for ${name} / ${c.name}`);
      out.set(c, ns);
    }
  }
  return out;
}

/**
 * Measures `cases` and returns ns per op of each: the median of mitata's samples (each the mean
 * over a batch of calls), which a shared machine's other work skews less than the mean. Each
 * group in a process of its own unless `--one-process` (see the module doc).
 */
async function measureCases(cases: readonly BenchCase[]): Promise<Map<BenchCase, number>> {
  if (childGroup === undefined && !args.includes("--one-process")) {
    const isolated = measureIsolated(cases);
    if (isolated !== undefined) return isolated;
  }
  const out = new Map<BenchCase, number>();
  if (quick || rounds > 1) {
    // Round after round over all cases; each keeps its lowest median, from the round that the
    // machine's other work disturbed least.
    for (let round = 0; round < rounds; round++) {
      for (const c of cases) {
        const stats = await measure(warmed(c), quick ? { min_cpu_time: 100e6 } : {});
        out.set(c, Math.min(out.get(c) ?? Infinity, stats.p50));
      }
    }
    return out;
  }
  // One mitata group per case group, in the order of `cases`; each case is set up when its turn
  // comes (a generator's code before `yield` runs once, untimed), so earlier cases' structures
  // can be collected.
  // The worker cases' groups get a bar chart too: their three structures differ most.
  const order: BenchCase[] = [];
  for (const [name, members] of byGroup(cases)) {
    const register = () =>
      group(name, () => {
        for (const c of members) {
          order.push(c);
          const b = bench(c.name, function* () {
            yield warmed(c);
          });
          if (c.baseline) b.baseline(true);
        }
      });
    summary(() => compact(() => members[0].section === "workers" ? barplot(register) : register()));
  }
  const result = await run({ colors: useColors() });
  result.benchmarks.forEach((trial, i) => {
    const stats = trial.runs[0]?.stats;
    if (stats === undefined) throw new Error(`${order[i].group} / ${order[i].name} failed`);
    out.set(order[i], stats.p50);
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Tables.

function print(lines: string | string[]): void {
  for (const l of typeof lines === "string" ? [lines] : lines) console.log(l);
}

function find(
  results: Map<BenchCase, number>,
  section: Section,
  group: string,
  name: string,
): number | undefined {
  for (const [c, ns] of results) {
    if (c.section === section && c.group === group && c.name === name) return ns;
  }
  return undefined;
}

function goMapTable(results: Map<BenchCase, number>): void {
  const rows: string[][] = [];
  for (const [c] of results) {
    if (c.section !== "gomap" || c.name === "Map") continue;
    const map = find(results, "gomap", c.group, "Map");
    const ours = results.get(c)!;
    const [op, keys] = c.group.split(", ");
    rows.push([op, keys.replace(" keys", ""), c.name, fmt(map), fmt(ours), times(ours / map!)]);
  }
  if (rows.length === 0) return;
  print(["", "## GoMap against a native Map (one thread, 1,024 keys; ns per op)", ""]);
  print(table(
    ["operation", "keys", "structure", "Map", "GoMap", "GoMap / Map"],
    rows,
    [false, false, false, true, true, true],
  ));
  print([
    "",
    "Keys are numbers or 16-character strings; values are numbers; default codecs unless said.",
    "set new / delete: a churn over the 1,024 keys, 512 present at any time; iterate: per entry.",
  ]);
}

function heapUsed(): number | undefined {
  const g = globalThis as {
    gc?: () => void;
    Bun?: { gc(force: boolean): void };
    Deno?: { memoryUsage(): { heapUsed: number } };
    process?: { memoryUsage(): { heapUsed: number } };
  };
  if (g.Bun !== undefined) g.Bun.gc(true);
  else if (g.gc !== undefined) g.gc();
  else return undefined; // without a forced GC the heap's growth says little
  return (g.Deno ?? g.process)!.memoryUsage().heapUsed;
}

/** Bytes per entry of a number → number map: GoMap's shared memory against Map's heap. */
function bytesPerEntryTable(): string[][] {
  const rows: string[][] = [];
  for (const n of [10_000, 100_000, 1_000_000]) {
    const before = heapUsed();
    const m = new Map<number, number>();
    for (let i = 0; i < n; i++) m.set(i, i + 0.5);
    const after = heapUsed();
    do_not_optimize(m);
    const gm = new GoMap<number, number>();
    const base = gm.stats().bytesUsed;
    for (let i = 0; i < n; i++) gm.set(i, i + 0.5);
    const s = gm.stats();
    const mapBytes = before === undefined || after === undefined ? undefined : (after - before) / n;
    rows.push([n.toLocaleString("en-US"), fmt(mapBytes), fmt((s.bytesUsed - base) / n), `${s.B}`]);
  }
  print(["", "Bytes per entry, number keys and values:", ""]);
  print(table(
    ["entries", "Map (heap growth)", "GoMap (bytesUsed)", "GoMap's B"],
    rows,
    [true, true, true, true],
  ));
  print([
    "",
    "Map: heap growth after a forced GC (needs --expose-gc on Deno). GoMap: shared memory;",
    "B is log2 of its bucket count, so bytes per entry depend on where the count falls.",
  ]);
  return rows;
}

/** Go's ns/op by benchmark name ("LoadMostlyHits/*sync.Map"), and its provenance line. */
function readGo(file: string): { ns: Map<string, number>; about: string } {
  const text = readFileSync(file, "utf8");
  const ns = new Map<string, number>();
  let version = "Go", cpu = "";
  for (const line of text.split("\n")) {
    const m = /^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns\/op/.exec(line);
    if (m !== null) ns.set(m[1], Math.min(ns.get(m[1]) ?? Infinity, Number(m[2]))); // -count N
    const v = /^go version (go\S+)/.exec(line);
    if (v !== null) version = v[1];
    if (line.startsWith("cpu: ")) cpu = line.slice(5);
  }
  return { ns, about: `${version}, GOMAXPROCS=1, ${cpu}` };
}

function goShapesTable(results: Map<BenchCase, number>): void {
  const groups = [
    ...new Set([...results.keys()].filter((c) => c.section === "syncmap").map((c) => c.group)),
  ];
  if (groups.length === 0) return;
  const go = goFile === undefined ? undefined : readGo(goFile);
  const goNs = (g: string, name: string) => {
    const c = [...results.keys()].find((c) => c.group === g && c.name === name);
    return c?.go === undefined ? undefined : go?.ns.get(c.go);
  };
  const rows = groups.map((g) => {
    const sm = find(results, "syncmap", g, "SyncMap");
    const rw = find(results, "syncmap", g, "GoMap+RWMutex");
    const map = find(results, "syncmap", g, "Map");
    if (go === undefined) return [g, fmt(sm), fmt(rw), fmt(map), times(sm! / rw!)];
    const goSm = goNs(g, "SyncMap"), goRw = goNs(g, "GoMap+RWMutex");
    return [
      g,
      fmt(sm),
      fmt(goSm),
      times(sm! / goSm!),
      fmt(rw),
      fmt(goRw),
      times(rw! / goRw!),
      fmt(map),
    ];
  });
  print(["", "## Go's sync/map_bench_test.go shapes, one thread (ns per op)", ""]);
  if (go === undefined) {
    print(table(
      ["shape", "SyncMap", "GoMap+RWMutex", "Map", "SyncMap / GoMap+RWMutex"],
      rows,
      [false, true, true, true, true],
    ));
    print(["", "Go's own figures beside these: deno task bench:go (bench/go_baseline.sh)."]);
  } else {
    print(table(
      ["shape", "SyncMap", "Go", "ratio", "GoMap+RW", "Go RW", "ratio", "Map"],
      rows,
      [false, true, true, true, true, true, true, true],
    ));
    print([
      "",
      "Go: Go's sync.Map; Go RW: Go's RWMutexMap (a map under a sync.RWMutex); measured in",
      `the same sitting: ${go.about}.`,
      "GoMap+RW: a GoMap under an RWMutex, as Go's RWMutexMap.",
      "ratio: ours divided by Go's (below 1: faster than Go). -: this Go has no such benchmark.",
    ]);
  }
  print([
    "Keys are numbers (default codecs) unless str16: 16-character strings. Range: 1,024 keys.",
    "StoreDeleteChurn (not Go's): store and delete over 1,024 keys, 512 present at any time.",
  ]);
}

function workerCasesTable(results: Map<BenchCase, number>): void {
  const groups = [
    ...new Set([...results.keys()].filter((c) => c.section === "workers").map((c) => c.group)),
  ];
  if (groups.length === 0) return;
  const rows = groups.map((g) => {
    const sm = find(results, "workers", g, "SyncMap");
    const lock = find(results, "workers", g, "GoMap+RWMutex") ??
      find(results, "workers", g, "GoMap+Mutex");
    const map = find(results, "workers", g, "Map");
    return [g, fmt(sm), fmt(lock), fmt(map), times(sm! / lock!)];
  });
  print(["", "## The two sync.Map cases in one thread (ns per op)", ""]);
  print(table(
    ["case", "SyncMap", "GoMap+lock", "Map", "SyncMap / GoMap+lock"],
    rows,
    [false, true, true, true, true],
  ));
  print([
    "",
    "read-mostly: 99% loads of 1,024 keys, 1% stores (GoMap under an RWMutex); disjoint",
    "writers: loads and stores of one's own keys, half and half (GoMap under a Mutex).",
    "float64 codecs for number keys and values, string codec for str16 keys.",
  ]);
}

// ---------------------------------------------------------------------------------------------
// Main.

/** Whether this process may start workers (Deno needs read access to their modules). */
function maySpawn(): boolean {
  const d = (globalThis as {
    Deno?: { permissions: { querySync(d: { name: "read"; path: URL }): { state: string } } };
  }).Deno;
  return d === undefined ||
    d.permissions.querySync({ name: "read", path: new URL("./fixtures/", import.meta.url) })
        .state === "granted";
}

if (childGroup !== undefined) {
  // A process measuring one group for its parent (measureIsolated): the figures, and no more.
  const group = CASES.filter((c) =>
    groupName(c) === childGroup &&
    (filter === undefined || `${c.group} / ${c.name}`.includes(filter))
  );
  if (group.length === 0) throw new RangeError(`--child-group: no group ${childGroup}`);
  const figures = await measureCases(group);
  const results = Object.fromEntries([...figures].map(([c, ns]) => [c.name, ns]));
  // Written through, not queued: the process exits next.
  writeSync(1, `${RESULTS_MARK}${JSON.stringify(results)}\n`);
  process.exit(0);
}

const about = provenance("shmap benchmarks (bench/main.ts; median ns per operation unless said)");
print(about);
if (quick) print("  mode     --quick: 0.1 s of CPU time per case, no per-case lines");
if (rounds > 1) {
  print(`  mode     --rounds=${rounds}: each case's lowest median of ${rounds} rounds`);
}
print("");

const cases = CASES.filter((c) =>
  parts.has(c.section === "workers" ? "syncmap" : c.section) &&
  (filter === undefined || `${c.group} / ${c.name}`.includes(filter))
);
const results = await measureCases(cases);
goMapTable(results);
const bytes = parts.has("gomap") && filter === undefined ? bytesPerEntryTable() : [];
goShapesTable(results);
workerCasesTable(results);

let workerRows: WorkerBenchResult[] = [];
if (parts.has("workers")) {
  print("");
  if (maySpawn()) {
    workerRows = await runWorkerBench({ quick, reps });
  } else {print(
      "Skipped the workers: Deno needs read access to bench/fixtures/ to start them (-A).",
    );}
}
if (jsonFile !== undefined) {
  const report: JsonReport = {
    provenance: about.slice(1).map((l) => l.trim()),
    quick,
    go: goFile === undefined ? undefined : Object.fromEntries(readGo(goFile).ns),
    goAbout: goFile === undefined ? undefined : readGo(goFile).about,
    cases: [...results].map(([c, ns]) => ({
      section: c.section,
      group: c.group,
      name: c.name,
      go: c.go,
      ns,
    })),
    bytes,
    workers: workerRows,
  };
  writeFileSync(jsonFile, JSON.stringify(report, null, 1));
  print(`Wrote ${jsonFile}.`);
}
print([
  "",
  `(${((performance.now() - started) / 1000).toFixed(0)} s; load average at the end ` +
  `${loadAverage()}; lines within ${WIDTH} columns)`,
]);
