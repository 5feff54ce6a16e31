/**
 * The benchmark suite: `deno task bench` (or `bun bench/main.ts`).
 *
 * 1. GoMap against a native Map in one thread: get hit, get miss, set new, set overwrite,
 *    delete, iterate; int and string keys; bytes per entry.
 * 2. SyncMap in the shapes of Go's sync/map_bench_test.go, beside Go's own figures for
 *    sync.Map on this machine (DESIGN.md), and a plain Map for scale.
 * 3. Workers: the two cases sync.Map exists for, across 1..N workers (bench/workers.ts).
 *
 * The machine is shared and noisy: read the ratios, measured in one run, not the absolutes.
 * Pass `--quick` for a shorter run, `--only=gomap|syncmap|workers` for one part.
 *
 * @module
 */

import { bench, do_not_optimize, group, run } from "mitata";
import { codecs, GoMap, SyncMap } from "../mod.ts";
import { runWorkerBench } from "./workers.ts";

const args = typeof Deno !== "undefined"
  ? Deno.args
  : (globalThis as { process?: { argv: string[] } }).process?.argv.slice(2) ?? [];
const quick = args.includes("--quick");
const only = args.find((a) => a.startsWith("--only="))?.slice(7);
const runtime = typeof Deno !== "undefined"
  ? `Deno ${Deno.version.deno}`
  : `Bun ${(globalThis as unknown as { Bun: { version: string } }).Bun.version}`;

/** Operations per benchmark iteration: each bench body runs a batch, reported per op. */
const BATCH = 1024;
const N = 1024;

/** Go's sync.Map on this machine, ns/op (DESIGN.md; go test sync -bench ., Go 1.19). */
const GO_SYNC_MAP: Record<string, [gomaxprocs1: number, gomaxprocs2: number]> = {
  LoadMostlyHits: [39, 26],
  LoadMostlyMisses: [22, 14],
  LoadOrStoreBalanced: [572, 582],
  LoadOrStoreUnique: [1121, 1108],
  LoadOrStoreCollision: [22, 13],
  LoadAndDeleteBalanced: [38, 22],
  "Range (1024 keys)": [12395, 7372],
};

function xorshift(seed: number): () => number {
  let x = seed | 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

function intKeys(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function stringKeys(n: number): string[] {
  return Array.from({ length: n }, (_, i) => `key:${i}`);
}

/** Per-op averages by bench name, from mitata's results. */
async function measure(): Promise<Map<string, number>> {
  const result = await run({ colors: false });
  const out = new Map<string, number>();
  for (const trial of result.benchmarks) {
    for (const r of trial.runs) {
      if (r.stats) out.set(r.name, r.stats.avg / (r.name.includes("×1") ? 1 : BATCH));
    }
  }
  return out;
}

function table(rows: string[][]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) {
    console.log("| " + r.map((cell, c) => cell.padEnd(widths[c])).join(" | ") + " |");
  }
}

function ns(x: number | undefined): string {
  return x === undefined ? "-" : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0);
}

// ---- 1. GoMap against Map -----------------------------------------------------------------

function goMapBenches(): void {
  for (
    const [label, keys, make] of [
      ["int", intKeys(N), () => new GoMap<number, number>()],
      ["string", stringKeys(N), () => new GoMap<string, number>()],
    ] as const
  ) {
    const misses = label === "int"
      ? keys.map((k) => (k as number) + 1e6)
      : keys.map((k) => `${k}!`);
    const gm = (make as () => GoMap<unknown, number>)();
    const m = new Map<unknown, number>();
    keys.forEach((k, i) => {
      gm.set(k, i * 1.5);
      m.set(k, i * 1.5);
    });
    group(`GoMap vs Map, ${label} keys (×${BATCH} ops)`, () => {
      bench(`Map get hit ${label}`, () => {
        for (let i = 0; i < BATCH; i++) do_not_optimize(m.get(keys[i & (N - 1)]));
      });
      bench(`GoMap get hit ${label}`, () => {
        for (let i = 0; i < BATCH; i++) do_not_optimize(gm.get(keys[i & (N - 1)]));
      });
      bench(`Map get miss ${label}`, () => {
        for (let i = 0; i < BATCH; i++) do_not_optimize(m.get(misses[i & (N - 1)]));
      });
      bench(`GoMap get miss ${label}`, () => {
        for (let i = 0; i < BATCH; i++) do_not_optimize(gm.get(misses[i & (N - 1)]));
      });
      bench(`Map set overwrite ${label}`, () => {
        for (let i = 0; i < BATCH; i++) m.set(keys[i & (N - 1)], i);
      });
      bench(`GoMap set overwrite ${label}`, () => {
        for (let i = 0; i < BATCH; i++) gm.set(keys[i & (N - 1)], i);
      });
      // set new + delete: insert BATCH fresh keys, then delete them (both halves timed).
      bench(`Map set new+delete ${label}`, () => {
        for (let i = 0; i < BATCH; i++) m.set(misses[i], i);
        for (let i = 0; i < BATCH; i++) m.delete(misses[i]);
      });
      bench(`GoMap set new+delete ${label}`, () => {
        for (let i = 0; i < BATCH; i++) gm.set(misses[i], i);
        for (let i = 0; i < BATCH; i++) gm.delete(misses[i]);
      });
      bench(`Map iterate ${label}`, () => {
        let s = 0;
        for (const [, v] of m) s += v;
        do_not_optimize(s);
      });
      bench(`GoMap iterate ${label}`, () => {
        let s = 0;
        for (const [, v] of gm) s += v;
        do_not_optimize(s);
      });
    });
  }
  const f = new GoMap<number, number>({ keys: codecs.float64, values: codecs.float64 });
  intKeys(N).forEach((k) => f.set(k, k));
  group(`GoMap float64 codecs (×${BATCH} ops)`, () => {
    bench("GoMap<float64,float64> get hit int", () => {
      for (let i = 0; i < BATCH; i++) do_not_optimize(f.get(i & (N - 1)));
    });
  });
}

function heapUsed(): number {
  const g = globalThis as unknown as { gc?: () => void; Bun?: { gc(force: boolean): void } };
  if (g.Bun) g.Bun.gc(true);
  else g.gc?.();
  if (typeof Deno !== "undefined") return Deno.memoryUsage().heapUsed;
  return (globalThis as unknown as { process: { memoryUsage(): { heapUsed: number } } }).process
    .memoryUsage().heapUsed;
}

/** Bytes per entry of an int → number map: GoMap's shared memory against Map's heap. */
function bytesPerEntry(): string[][] {
  const rows = [["entries", "Map bytes/entry (heap)", "GoMap bytes/entry (bytesUsed)", "GoMap B"]];
  for (const n of [10_000, 100_000, 1_000_000]) {
    const before = heapUsed();
    const m = new Map<number, number>();
    for (let i = 0; i < n; i++) m.set(i, i + 0.5);
    const mapBytes = (heapUsed() - before) / n;
    do_not_optimize(m);
    const gm = new GoMap<number, number>();
    const base = gm.stats().bytesUsed;
    for (let i = 0; i < n; i++) gm.set(i, i + 0.5);
    const s = gm.stats();
    rows.push([String(n), mapBytes.toFixed(1), ((s.bytesUsed - base) / n).toFixed(1), String(s.B)]);
  }
  return rows;
}

// ---- 2. SyncMap in Go's benchmark shapes --------------------------------------------------

function syncMapBenches(): void {
  group(`SyncMap, Go's sync/map_bench_test.go shapes (×${BATCH} ops)`, () => {
    {
      const hits = 1023, misses = 1;
      const m = new SyncMap<number, number>();
      for (let i = 0; i < hits; i++) m.loadOrStore(i, i);
      for (let i = 0; i < hits * 2; i++) m.load(i % hits);
      let i = 0;
      bench("LoadMostlyHits", () => {
        for (let j = 0; j < BATCH; j++, i++) do_not_optimize(m.load(i % (hits + misses)));
      });
    }
    {
      const hits = 1, misses = 1023;
      const m = new SyncMap<number, number>();
      for (let i = 0; i < hits; i++) m.loadOrStore(i, i);
      for (let i = 0; i < hits * 2; i++) m.load(i % hits);
      let i = 0;
      bench("LoadMostlyMisses", () => {
        for (let j = 0; j < BATCH; j++, i++) do_not_optimize(m.load(i % (hits + misses)));
      });
    }
    {
      const hits = 128, misses = 128;
      let m = new SyncMap<number, number>();
      let i = 0;
      bench("LoadOrStoreBalanced", () => {
        // Go's shape stores ever new keys on a miss; start over now and then to bound memory.
        if (i > 2_000_000 || i === 0) {
          m = new SyncMap<number, number>();
          for (let k = 0; k < hits; k++) m.loadOrStore(k, k);
          i = 0;
        }
        for (let j = 0; j < BATCH; j++, i++) {
          const k = i % (hits + misses);
          if (k < hits) do_not_optimize(m.loadOrStore(k, i));
          else do_not_optimize(m.loadOrStore(i + 1_000_000, i));
        }
      });
    }
    {
      let m = new SyncMap<number, number>();
      let i = 0;
      bench("LoadOrStoreUnique", () => {
        if (i > 2_000_000) {
          m = new SyncMap<number, number>();
          i = 0;
        }
        for (let j = 0; j < BATCH; j++, i++) do_not_optimize(m.loadOrStore(i, i));
      });
    }
    {
      const m = new SyncMap<number, number>();
      m.loadOrStore(0, 0);
      bench("LoadOrStoreCollision", () => {
        for (let j = 0; j < BATCH; j++) do_not_optimize(m.loadOrStore(0, 0));
      });
    }
    {
      const hits = 128, misses = 128;
      const m = new SyncMap<number, number>();
      for (let k = 0; k < hits; k++) m.loadOrStore(k, k);
      let i = 0;
      bench("LoadAndDeleteBalanced", () => {
        for (let j = 0; j < BATCH; j++, i++) {
          const k = i % (hits + misses);
          do_not_optimize(k < hits ? m.loadAndDelete(k) : m.loadAndDelete(i));
        }
      });
    }
    {
      const m = new SyncMap<number, number>();
      for (let k = 0; k < 1024; k++) m.store(k, k);
      bench("Range (1024 keys) ×1", () => {
        let n = 0;
        m.range(() => {
          n++;
        });
        do_not_optimize(n);
      });
    }
    {
      const m = new SyncMap<number, number>();
      for (let k = 0; k < N; k++) m.store(k, k);
      for (let k = 0; k < N; k++) m.load(k);
      const next = xorshift(7);
      bench("Store overwrite (read-table key)", () => {
        for (let j = 0; j < BATCH; j++) m.store(next() & (N - 1), j);
      });
    }
    {
      const m = new Map<number, number>();
      for (let k = 0; k < 1023; k++) m.set(k, k);
      let i = 0;
      bench("native Map get, LoadMostlyHits shape", () => {
        for (let j = 0; j < BATCH; j++, i++) do_not_optimize(m.get(i % 1024));
      });
    }
  });
}

// ---- main ---------------------------------------------------------------------------------

if (only === undefined || only === "gomap") goMapBenches();
if (only === undefined || only === "syncmap") syncMapBenches();
const results = await measure();

console.log(`\n## Summary (${runtime}, ${new Date().toISOString().slice(0, 10)}, ns per op)\n`);
if (only === undefined || only === "gomap") {
  const rows = [["operation", "key", "Map", "GoMap", "GoMap / Map"]];
  for (const op of ["get hit", "get miss", "set overwrite", "set new+delete", "iterate"]) {
    for (const key of ["int", "string"]) {
      const per = op === "iterate" ? N : op === "set new+delete" ? 2 : 1;
      const m = results.get(`Map ${op} ${key}`)! * (op === "iterate" ? BATCH : 1) / per;
      const g = results.get(`GoMap ${op} ${key}`)! * (op === "iterate" ? BATCH : 1) / per;
      rows.push([op, key, ns(m), ns(g), (g / m).toFixed(2) + "x"]);
    }
  }
  table(rows);
  console.log();
  table(bytesPerEntry());
  console.log();
}
if (only === undefined || only === "syncmap") {
  const rows = [["benchmark", "SyncMap", "Go sync.Map (1 / 2 procs)", "SyncMap / Go (1 proc)"]];
  for (const [name, [go1, go2]] of Object.entries(GO_SYNC_MAP)) {
    const key = name.startsWith("Range") ? "Range (1024 keys) ×1" : name;
    const ours = results.get(key)!;
    rows.push([name, ns(ours), `${go1} / ${go2}`, (ours / go1).toFixed(2) + "x"]);
  }
  rows.push([
    "Store overwrite (read-table key)",
    ns(results.get("Store overwrite (read-table key)")),
    "-",
    "-",
  ]);
  rows.push([
    "native Map get (LoadMostlyHits shape)",
    ns(results.get("native Map get, LoadMostlyHits shape")),
    "-",
    "-",
  ]);
  table(rows);
  console.log();
}
if (only === undefined || only === "workers") await runWorkerBench({ quick });
