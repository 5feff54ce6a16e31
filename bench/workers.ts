// Copyright the shmap authors. MIT license.
/**
 * Multi-worker benchmark: how SyncMap scales across 1..4 workers in the two cases Go's
 * sync.Map is made for, against what a JavaScript user has otherwise.
 *
 * Cases (keys and values are numbers unless said; see fixtures/bench_shared.ts):
 * - read-mostly int / read-mostly string: 1024 keys (0..1023, or the 16-character strings
 *   "key:000000000000".."key:000000001023"), shared by all workers. Each op loads a pseudo-random key (xorshift32); one op in 100 stores a new
 *   value for a random key instead.
 * - disjoint writers: worker w owns keys w*1024 .. w*1024+1023 and alternately loads one of
 *   them and stores a fresh value for one (50/50). The map holds 4 x 1024 keys at every N.
 *
 * Structures:
 * - SyncMap: load / store.
 * - GoMap+RWMutex (read-mostly): rLock/get/rUnlock, lock/set/unlock.
 * - GoMap+Mutex (disjoint writers): lock/get/unlock, lock/set/unlock.
 * - postMessage owner: one more worker holds a native Map; every client worker has its own
 *   MessageChannel to it and one request outstanding at a time, so each op is a round trip
 *   (gets and sets alike: the 1% of read-mostly stores are sent too, and acknowledged).
 * - Map copy per worker: each worker has its own native Map, filled as the shared maps are,
 *   and runs the same loop. Not a shared map (a store is seen only by its own worker): it is
 *   the ceiling, how well the machine itself scales this loop.
 * - SyncMap copy per worker (with `--copies`): each worker has a SyncMap of its own, made and
 *   filled as the shared one is, and runs SyncMap's loop: the same code on memory no other
 *   worker touches. SyncMap's scaling over this copy's is what sharing the map costs; the
 *   copy's scaling over the Map copy's is what the machine makes of SyncMap's code itself.
 *
 * Method: maps are filled in the main thread (a SyncMap is then loaded once per key so that every
 * key is in its read table, as in a warmed-up cache). Each (case, structure) gets fresh workers, so
 * the engine compiles each loop for one structure only; they run one unmeasured warm-up together
 * (2000 ms, `--warmup-ms=N`), then for each repetition and each worker count N the first N workers
 * meet at a start barrier (Atomics.wait/notify) and each runs its loop for a fixed wall time,
 * reading the clock every 1024 ops (every 16 round trips for postMessage). Total throughput is the
 * sum of each worker's ops / its elapsed time; ns/op per worker is N / total throughput, the time
 * one op takes a worker on average; "fairness" is the slowest worker's rate / the fastest's (1 =
 * even; near 0 = a worker starved). Reported figures are medians over the repetitions, and the load
 * average is printed, since other processes skew the numbers. Every load is checked (read-mostly:
 * the value belongs to the key; disjoint writers: exactly the last value the worker stored), and
 * any error in any worker fails the run.
 *
 * Output: per case, a table (total throughput, its spread, ns/op per worker, scaling against one
 * worker, fairness) and a chart of total throughput against the number of workers (mitata's
 * lineplot, one letter per structure); then SyncMap's throughput against each alternative's.
 *
 * Run: `deno run -A bench/workers.ts [--quick] [--only=TEXT] [--warmup-ms=N] [--copies]
 * [--max-workers=N]` or `bun bench/workers.ts [...]` (and as part of bench/main.ts, without the
 * SyncMap copies). With `--copies`, a table of each structure's scaling from one worker follows.
 *
 * @module
 */

import {
  type CaseName,
  CTRL,
  type FromOwner,
  type FromWorker,
  KEYS,
  loadsLoop,
  type LoopResult,
  NATIVE_MAP,
  readMostlyKeys,
  seedFor,
  type StructureName,
  type ToOwner,
  type ToWorker,
} from "./fixtures/bench_shared.ts";
import { DISJOINT_WORKERS, makeShared, verifyShared } from "./fixtures/structures.ts";
import { median } from "./fixtures/timing.ts";
import { args, option, positiveInt } from "./fixtures/cli.ts";
import { fmt, lineChart, loadAverage, provenance, table, times } from "./report.ts";

/** Options for {@linkcode runWorkerBench}. */
export interface WorkerBenchOptions {
  /** Shorter runs (200 ms, one repetition) for a smoke test. */
  quick?: boolean;
  /** Wall time of one worker's loop, in ms (default 500, quick 200). */
  durationMs?: number;
  /**
   * Wall time of the unmeasured warm-up of each group, every worker at once, in ms (default
   * 2000, quick 400).
   */
  warmupMs?: number;
  /** Repetitions; the median is reported (default 3, quick 1). */
  reps?: number;
  /** Largest worker count (default 4, run even where it oversubscribes the cores). */
  maxWorkers?: number;
  /** Run only the groups whose "case / structure" contains this string (yardsticks always run). */
  only?: string;
  /** Print the tables (default true). */
  print?: boolean;
  /** Measure the native Map.get yardsticks on the main thread first (default true). */
  yardsticks?: boolean;
  /** Also run "SyncMap copy per worker", a SyncMap of each worker's own (default false). */
  copies?: boolean;
}

/** One row of the results. */
export interface WorkerBenchResult {
  /** The case, or "single thread" for the native Map.get yardsticks. */
  case: CaseName | "single thread";
  /** What was measured. */
  structure: StructureName | "native Map.get, int keys" | "native Map.get, string keys";
  /** Worker threads running the loop (the yardsticks run on the main thread: 1). */
  workers: number;
  /** Busy threads: the workers, plus the owner for postMessage. */
  threads: number;
  /** Whether there were more busy threads than `navigator.hardwareConcurrency`. */
  oversubscribed: boolean;
  /** Median total throughput, millions of ops per second over all workers. */
  mopsPerSec: number;
  /** ns per op as one worker sees it on average: workers / total throughput (from the median). */
  nsPerOpPerWorker: number;
  /** Median over repetitions of the slowest worker's ops/s divided by the fastest's. */
  fairness: number;
  /** Total Mops/s of each repetition. */
  samples: number[];
}

const TIMEOUT_MS = 30_000;
/** Default wall time of each group's warm-up, and with `quick` (see WorkerBenchOptions). */
const WARMUP_MS = 2000, QUICK_WARMUP_MS = 400;

const PLAN: readonly (readonly [CaseName, readonly StructureName[]])[] = [
  ["read-mostly int", ["SyncMap", "GoMap+RWMutex", "postMessage owner", "Map copy per worker"]],
  ["read-mostly string", [
    "SyncMap",
    "GoMap+RWMutex",
    "postMessage owner",
    "Map copy per worker",
  ]],
  ["disjoint writers", ["SyncMap", "GoMap+Mutex", "postMessage owner", "Map copy per worker"]],
];

/** Runs the benchmark, prints its tables (unless `print: false`) and returns the rows. */
export async function runWorkerBench(
  options: WorkerBenchOptions = {},
): Promise<WorkerBenchResult[]> {
  const quick = options.quick ?? false;
  const durationMs = options.durationMs ?? (quick ? 200 : 500);
  const warmupMs = options.warmupMs ?? (quick ? QUICK_WARMUP_MS : WARMUP_MS);
  const reps = options.reps ?? (quick ? 1 : 3);
  const maxWorkers = options.maxWorkers ?? 4;
  const print = options.print ?? true;
  const cores = navigator.hardwareConcurrency ?? 1;
  const counts = Array.from({ length: maxWorkers }, (_, i) => i + 1);
  const log = print ? (line: string) => console.log(line) : () => {};
  const started = performance.now();
  log(`## Workers: ${durationMs} ms per run, median of ${reps}, 1..${maxWorkers} workers`);
  log(`(${cores} hardware threads; load average ${loadAverage()})`);

  const rows: WorkerBenchResult[] = [];
  if (options.yardsticks ?? true) rows.push(...yardsticks(durationMs, reps));
  for (const [c, planned] of PLAN) {
    const structures = options.copies
      ? [planned[0], "SyncMap copy per worker" as const, ...planned.slice(1)]
      : planned;
    for (const s of structures) {
      if (options.only !== undefined && !`${c} / ${s}`.includes(options.only)) continue;
      log(`  running ${c} / ${s} ...`);
      rows.push(...await runGroup(c, s, counts, reps, durationMs, warmupMs, cores));
    }
  }
  if (print) printTables(rows, cores);
  log(
    `(${((performance.now() - started) / 1000).toFixed(1)} s; load average ${loadAverage()})`,
  );
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Yardsticks: native Map.get on the main thread, same key scheme and loop shape, loads only.
// One loop compiled twice, so that each `map.get` call site sees one key type.

function yardsticks(durationMs: number, reps: number): WorkerBenchResult[] {
  const intKeys = readMostlyKeys("read-mostly int") as number[];
  const strKeys = readMostlyKeys("read-mostly string") as string[];
  const intMap = new Map(intKeys.map((k, i) => [k, i]));
  const strMap = new Map(strKeys.map((k, i) => [k, i]));
  const out: WorkerBenchResult[] = [];
  const seed = seedFor(99);
  const getInt = loadsLoop(NATIVE_MAP, "Map");
  const getString = loadsLoop(NATIVE_MAP, "Map");
  const runs: [WorkerBenchResult["structure"], () => LoopResult][] = [
    ["native Map.get, int keys", () => getInt(intMap, undefined, intKeys, seed, durationMs)],
    ["native Map.get, string keys", () => getString(strMap, undefined, strKeys, seed, durationMs)],
  ];
  for (const [structure, run] of runs) {
    run(); // warm-up
    const samples: LoopResult[][] = [];
    for (let r = 0; r < reps; r++) samples.push([run()]);
    out.push(summarize("single thread", structure, 1, 1, 1, samples));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Workers.

type Message = FromWorker | FromOwner;

/** A worker with a queue of its replies; an error from it fails every wait on it. */
class Peer {
  readonly name: string;
  #worker: Worker;
  #queue: Message[] = [];
  #waiter: { resolve: (m: Message) => void; reject: (e: Error) => void } | undefined;
  #failure: Error | undefined;

  constructor(file: string, name: string) {
    this.name = name;
    this.#worker = new Worker(new URL(file, import.meta.url).href, { type: "module" });
    this.#worker.onmessage = (e: MessageEvent<Message>) => {
      if (e.data.type === "error") this.#fail(new Error(`${name}: ${e.data.message}`));
      else if (this.#waiter !== undefined) this.#take().resolve(e.data);
      else this.#queue.push(e.data);
    };
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault?.();
      this.#fail(new Error(`${name}: uncaught ${e.message}`));
    };
    this.#worker.onmessageerror = () => this.#fail(new Error(`${name}: message error`));
  }

  post(message: ToWorker | ToOwner, transfer: Transferable[] = []): void {
    if (this.#failure !== undefined) throw this.#failure;
    this.#worker.postMessage(message, transfer);
  }

  /** The next reply, which must be of type `type`. */
  async expect(type: Message["type"], timeoutMs: number = TIMEOUT_MS): Promise<Message> {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#waiter !== undefined) throw new Error(`${this.name}: already waiting`);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const m = this.#queue.length > 0 ? this.#queue.shift()! : await new Promise<Message>(
      (resolve, reject) => {
        this.#waiter = { resolve, reject };
        timer = setTimeout(() => {
          this.#take().reject(new Error(`${this.name}: no "${type}" after ${timeoutMs} ms`));
        }, timeoutMs);
      },
    ).finally(() => clearTimeout(timer));
    if (m.type !== type) throw new Error(`${this.name}: expected "${type}", got "${m.type}"`);
    return m;
  }

  terminate(): void {
    this.#worker.terminate();
  }

  #take() {
    const w = this.#waiter!;
    this.#waiter = undefined;
    return w;
  }

  #fail(error: Error): void {
    this.#failure ??= error;
    if (this.#waiter !== undefined) this.#take().reject(error);
  }
}

async function runGroup(
  c: CaseName,
  s: StructureName,
  counts: readonly number[],
  reps: number,
  durationMs: number,
  warmupMs: number,
  cores: number,
): Promise<WorkerBenchResult[]> {
  const pool = Math.max(...counts);
  const shared = makeShared(c, s);
  const ctrl = new Int32Array(new SharedArrayBuffer(4 * CTRL.LENGTH));
  const peers: Peer[] = [];
  let owner: Peer | undefined;
  try {
    const ports: (MessagePort | undefined)[] = [];
    if (s === "postMessage owner") {
      owner = new Peer("./fixtures/owner_worker.ts", "owner");
      owner.post({ type: "init", case: c, keys: DISJOINT_WORKERS * KEYS });
      await owner.expect("ok");
      for (let i = 0; i < pool; i++) {
        const channel = new MessageChannel();
        owner.post({ type: "port", port: channel.port1 }, [channel.port1]);
        await owner.expect("ok");
        ports.push(channel.port2);
      }
    }
    for (let i = 0; i < pool; i++) {
      peers.push(new Peer("./fixtures/bench_worker.ts", `worker ${i}`));
    }
    await Promise.all(peers.map((p, i) => {
      const port = ports[i];
      p.post({
        type: "setup",
        case: c,
        structure: s,
        index: i,
        ctrl,
        syncMap: shared.syncMap?.handle,
        goMap: shared.goMap?.handle,
        mutex: shared.mutex?.handle,
        rwMutex: shared.rwMutex?.handle,
        port,
      }, port === undefined ? [] : [port]);
      return p.expect("ok");
    }));

    let generation = 0;
    const measure = async (n: number, ms: number): Promise<LoopResult[]> => {
      const active = peers.slice(0, n);
      generation++;
      for (const p of active) p.post({ type: "run", generation, durationMs: ms });
      await Promise.all(active.map((p) => p.expect("ready")));
      Atomics.store(ctrl, CTRL.GENERATION, generation);
      Atomics.notify(ctrl, CTRL.GENERATION);
      const results = await Promise.all(active.map((p) => p.expect("result", ms + TIMEOUT_MS)));
      return results.map((m) => {
        const r = m as Extract<FromWorker, { type: "result" }>;
        if (!(r.ops > 0 && r.ms > 0)) throw new Error(`${c} / ${s}: empty result`);
        return { ops: r.ops, ms: r.ms };
      });
    };

    // Warm-up, every worker at once, long enough for the engines' top JIT tiers and for the
    // paths a loop takes only now and then (a writer's refills and spills, a long sweep) to
    // have been compiled. In a harness of the disjoint writers' loop (Deno, one SyncMap), two
    // writers after a 150 ms warm-up did 1.07x to 1.31x one writer's work, code deoptimized at
    // a first refill still recompiling in the timed runs; after 2 s, 1.47x to 1.52x.
    await measure(pool, warmupMs);
    const samples = new Map<number, LoopResult[][]>(counts.map((n) => [n, []]));
    for (let r = 0; r < reps; r++) {
      for (const n of counts) samples.get(n)!.push(await measure(n, durationMs));
    }

    await Promise.all(peers.map((p) => {
      p.post({ type: "close" });
      return p.expect("ok");
    }));
    verifyShared(c, shared);

    return counts.map((n) => {
      const threads = n + (owner === undefined ? 0 : 1);
      return summarize(c, s, n, threads, cores, samples.get(n)!);
    });
  } finally {
    for (const p of peers) p.terminate();
    owner?.terminate();
  }
}

function summarize(
  c: WorkerBenchResult["case"],
  structure: WorkerBenchResult["structure"],
  workers: number,
  threads: number,
  cores: number,
  reps: readonly (readonly LoopResult[])[],
): WorkerBenchResult {
  const totals = reps.map((rs) => rs.reduce((sum, r) => sum + r.ops / r.ms, 0) / 1e3);
  const fairness = reps.map((rs) => {
    const rates = rs.map((r) => r.ops / r.ms);
    return Math.min(...rates) / Math.max(...rates);
  });
  const mops = median(totals);
  return {
    case: c,
    structure,
    workers,
    threads,
    oversubscribed: threads > cores,
    mopsPerSec: mops,
    nsPerOpPerWorker: workers * 1e3 / mops,
    fairness: median(fairness),
    samples: totals,
  };
}

// ---------------------------------------------------------------------------------------------
// Printing.

const MARKS: Record<WorkerBenchResult["structure"], string> = {
  "SyncMap": "S",
  "GoMap+RWMutex": "G",
  "GoMap+Mutex": "G",
  "postMessage owner": "P",
  "Map copy per worker": "C",
  "SyncMap copy per worker": "c",
  "native Map.get, int keys": "-",
  "native Map.get, string keys": "-",
};

function printTables(rows: readonly WorkerBenchResult[], cores: number): void {
  const find = (c: string, s: string, n: number) =>
    rows.find((r) => r.case === c && r.structure === s && r.workers === n);
  const print = (lines: string[]) => lines.forEach((l) => console.log(l));

  print(["", "Yardstick: native Map.get on the main thread, the same loop, loads only:", ""]);
  print(table(
    ["structure", "Mops/s", "ns/op"],
    rows.filter((r) => r.case === "single thread").map((r) => [
      r.structure,
      fmt(r.mopsPerSec),
      fmt(r.nsPerOpPerWorker),
    ]),
    [false, true, true],
  ));

  for (const [c] of PLAN) {
    const caseRows = rows.filter((r) => r.case === c);
    if (caseRows.length === 0) continue;
    print(["", `### ${c}: total throughput against workers`, ""]);
    print(table(
      ["structure", "workers", "Mops/s", "spread", "ns/op", "vs 1", "fairness"],
      caseRows.map((r) => {
        const one = find(r.case, r.structure, 1);
        return [
          r.structure,
          r.oversubscribed ? `${r.workers}*` : String(r.workers),
          fmt(r.mopsPerSec),
          `${fmt(Math.min(...r.samples))}-${fmt(Math.max(...r.samples))}`,
          fmt(r.nsPerOpPerWorker),
          one === undefined ? "-" : times(r.mopsPerSec / one.mopsPerSec),
          r.fairness.toFixed(2),
        ];
      }),
      [false, true, true, true, true, true, true],
    ));
    const structures = [...new Set(caseRows.map((r) => r.structure))];
    const counts = [...new Set(caseRows.map((r) => r.workers))];
    print([""]);
    print(lineChart(
      structures.map((s) => {
        const points = caseRows.filter((r) => r.structure === s);
        return {
          name: s,
          mark: MARKS[s],
          x: points.map((r) => r.workers),
          y: points.map((r) => r.mopsPerSec),
        };
      }),
      {
        xLabels: [`${Math.min(...counts)} worker`, `${Math.max(...counts)} workers`],
        unit: "Mops/s",
      },
    ));
  }
  print([
    "",
    "Mops/s: millions of operations a second, all workers together (median over repetitions);",
    "spread: the lowest and highest total; ns/op: the time one op takes a worker (workers /",
    "throughput); vs 1: throughput against one worker; fairness: slowest worker's rate /",
    `fastest's. *: more busy threads than the ${cores} hardware threads (the postMessage owner`,
    "is a thread too). Keys and values are numbers (float64 codec), or 16-character string keys.",
    "postMessage owner: a worker owning a native Map, one request outstanding per client, every",
    "op (stores too) a round trip. Map copy per worker: a private Map in each worker, stores",
    "not shared: the ceiling, how far this machine scales the same loop. SyncMap copy per",
    "worker: a SyncMap of each worker's own, SyncMap's loop on memory no other worker touches.",
  ]);
  printScaling(rows);

  const ratios: string[][] = [];
  for (const [c] of PLAN) {
    for (const sm of rows.filter((r) => r.case === c && r.structure === "SyncMap")) {
      const ratio = (...others: StructureName[]) => {
        const o = others.map((s) => find(c, s, sm.workers)).find((r) => r !== undefined);
        return o === undefined ? "-" : times(sm.mopsPerSec / o.mopsPerSec);
      };
      ratios.push([
        c,
        String(sm.workers),
        ratio("GoMap+RWMutex", "GoMap+Mutex"),
        ratio("postMessage owner"),
        ratio("Map copy per worker"),
      ]);
    }
  }
  if (ratios.length === 0) return;
  print([
    "",
    "SyncMap's total throughput divided by the alternative's, same case and worker count:",
    "",
  ]);
  print(table(
    ["case", "workers", "vs GoMap+lock", "vs postMessage", "vs Map copy"],
    ratios,
    [false, true, true, true, true],
  ));
}

/**
 * When the SyncMap copies ran: each structure's scaling from one worker to n, and SyncMap's
 * scaling over each copy's (below 1: SyncMap scales worse than that copy).
 */
function printScaling(rows: readonly WorkerBenchResult[]): void {
  if (!rows.some((r) => r.structure === "SyncMap copy per worker")) return;
  const scaling = (c: string, s: string, n: number) => {
    const one = rows.find((r) => r.case === c && r.structure === s && r.workers === 1);
    const at = rows.find((r) => r.case === c && r.structure === s && r.workers === n);
    return one === undefined || at === undefined ? undefined : at.mopsPerSec / one.mopsPerSec;
  };
  const cell = (x: number | undefined) => x === undefined ? "-" : times(x);
  const over = (a: number | undefined, b: number | undefined) =>
    a === undefined || b === undefined ? "-" : (a / b).toFixed(2);
  const out: string[][] = [];
  for (const [c] of PLAN) {
    for (const r of rows.filter((r) => r.case === c && r.structure === "SyncMap")) {
      if (r.workers === 1) continue;
      const sm = scaling(c, "SyncMap", r.workers);
      const copy = scaling(c, "SyncMap copy per worker", r.workers);
      const map = scaling(c, "Map copy per worker", r.workers);
      out.push([
        c,
        `1 → ${r.workers}`,
        cell(sm),
        cell(copy),
        cell(map),
        over(sm, copy),
        over(sm, map),
        over(copy, map),
      ]);
    }
  }
  console.log(["", "Scaling from one worker (throughput with n / with 1):", ""].join("\n"));
  table(
    [
      "case",
      "workers",
      "SyncMap",
      "SyncMap copy",
      "Map copy",
      "SM / SM copy",
      "SM / Map copy",
      "SM copy / Map copy",
    ],
    out,
    [false, true, true, true, true, true, true, true],
  ).forEach((l) => console.log(l));
}

if (import.meta.main) {
  const quick = args.includes("--quick");
  const warmupMs = positiveInt("warmup-ms", quick ? QUICK_WARMUP_MS : WARMUP_MS);
  provenance("shmap multi-worker benchmark (bench/workers.ts)").forEach((l) => console.log(l));
  await runWorkerBench({
    quick,
    only: option("only"),
    warmupMs,
    copies: args.includes("--copies"),
    maxWorkers: positiveInt("max-workers", 4),
  });
}
