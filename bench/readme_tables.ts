// Copyright the shmap authors. MIT license.
/**
 * Makes the README's benchmark tables and charts from one Deno run and one Bun run of
 * bench/main.ts with `--json=FILE` (and `--go=FILE` for Go's column), so that every figure in
 * the README comes from those runs and names its runtime and machine:
 *
 * ```sh
 * go version > /tmp/go.txt && GOMAXPROCS=1 go test sync -run NONE -bench \
 *   '/(\*sync\.Map|\*sync_test\.RWMutexMap)$' >> /tmp/go.txt
 * (cd bench/go && GOMAXPROCS=1 go test -run NONE -bench StoreDeleteChurn) >> /tmp/go.txt
 * deno task bench --go=/tmp/go.txt --json=/tmp/deno.json
 * deno task bench:bun --go=/tmp/go.txt --json=/tmp/bun.json
 * deno run -A bench/readme_tables.ts /tmp/deno.json /tmp/bun.json > /tmp/tables.md
 * ```
 *
 * @module
 */

import { readFileSync } from "node:fs";
import type { JsonReport } from "./main.ts";
import { fmt, lineChart, type Series, table, times } from "./report.ts";
import type { WorkerBenchResult } from "./workers.ts";

const [denoFile, bunFile] = Deno.args;
if (denoFile === undefined || bunFile === undefined) {
  throw new Error("usage: deno run -A bench/readme_tables.ts DENO.json BUN.json");
}
const deno = JSON.parse(readFileSync(denoFile, "utf8")) as JsonReport;
const bun = JSON.parse(readFileSync(bunFile, "utf8")) as JsonReport;
const out: string[] = [];
const print = (...lines: string[]) => out.push(...lines);

function ns(r: JsonReport, section: string, group: string, name: string): number | undefined {
  return r.cases.find((c) => c.section === section && c.group === group && c.name === name)?.ns;
}

function groups(section: string): string[] {
  return [...new Set(deno.cases.filter((c) => c.section === section).map((c) => c.group))];
}

print("Deno run:", ...deno.provenance.map((l) => `    ${l}`), "");
print("Bun run:", ...bun.provenance.map((l) => `    ${l}`), "");
if (deno.goAbout !== undefined) print(`Go: ${deno.goAbout}, run just before both.`, "");

// GoMap against Map.
print("**GoMap against a native `Map`**, one thread, 1,024 keys, ns per op (median):", "");
const mapRows: string[][] = [];
for (const g of groups("gomap")) {
  for (const name of ["GoMap", "GoMap, float64 codecs"]) {
    const dg = ns(deno, "gomap", g, name), bg = ns(bun, "gomap", g, name);
    if (dg === undefined) continue;
    const dm = ns(deno, "gomap", g, "Map")!, bm = ns(bun, "gomap", g, "Map")!;
    const label = name === "GoMap" ? g : `${g} (float64 codecs)`;
    mapRows.push([
      label,
      fmt(dm),
      `${fmt(dg)} (${times(dg / dm)})`,
      fmt(bm),
      `${fmt(bg)} (${times(bg! / bm)})`,
    ]);
  }
}
print(
  ...table(
    ["operation", "Deno: Map", "Deno: GoMap", "Bun: Map", "Bun: GoMap"],
    mapRows,
    [false, true, true, true, true],
  ),
  "",
);
if (deno.bytes.length > 0) {
  print("Bytes per entry, number keys and values (Map: heap growth after a forced GC):", "");
  print(
    ...table(
      ["entries", "GoMap", "Deno: Map", "Bun: Map"],
      deno.bytes.map((r, i) => [r[0], r[2], r[1], bun.bytes[i]?.[1] ?? "-"]),
      [true, true, true, true],
    ),
    "",
  );
}

// Go's shapes.
print(
  "**Go's `sync/map_bench_test.go` shapes**, one thread, ns per op (median; Go: mean). Go and Go RW",
  "are Go's `sync.Map` and its reference `RWMutexMap`; RW columns: a GoMap under an `RWMutex`.",
  "",
);
const go = (g: string, name: string) => {
  const c = deno.cases.find((c) => c.section === "syncmap" && c.group === g && c.name === name);
  return c?.go === undefined ? undefined : deno.go?.[c.go];
};
print(
  ...table(
    ["shape", "Go", "Deno", "Bun", "Go RW", "Deno RW", "Bun RW"],
    groups("syncmap").map((g) => [
      g,
      fmt(go(g, "SyncMap")),
      fmt(ns(deno, "syncmap", g, "SyncMap")),
      fmt(ns(bun, "syncmap", g, "SyncMap")),
      fmt(go(g, "GoMap+RWMutex")),
      fmt(ns(deno, "syncmap", g, "GoMap+RWMutex")),
      fmt(ns(bun, "syncmap", g, "GoMap+RWMutex")),
    ]),
    [false, true, true, true, true, true, true],
  ),
  "",
);

// The two cases, one thread.
print("**The two sync.Map cases in one thread**, ns per op (median):", "");
print(
  ...table(
    ["case", "Deno: SyncMap", "GoMap+lock", "Map", "Bun: SyncMap", "GoMap+lock", "Map"],
    groups("workers").map((g) => {
      const lock = (r: JsonReport) =>
        ns(r, "workers", g, "GoMap+RWMutex") ?? ns(r, "workers", g, "GoMap+Mutex");
      return [
        g,
        fmt(ns(deno, "workers", g, "SyncMap")),
        fmt(lock(deno)),
        fmt(ns(deno, "workers", g, "Map")),
        fmt(ns(bun, "workers", g, "SyncMap")),
        fmt(lock(bun)),
        fmt(ns(bun, "workers", g, "Map")),
      ];
    }),
    [false, true, true, true, true, true, true],
  ),
  "",
);

// Across workers.
const CASES = ["read-mostly int", "read-mostly string", "disjoint writers"];
const mops = (r: JsonReport, c: string, s: string, n: number) =>
  r.workers.find((w) => w.case === c && w.structure === s && w.workers === n)?.mopsPerSec;
const lockOf = (c: string) => c === "disjoint writers" ? "GoMap+Mutex" : "GoMap+RWMutex";
print(
  "**Across workers**: total throughput of n workers, millions of ops a second (median of the",
  "repetitions); 3 and 4 workers oversubscribe the 2 cores. Copy: a private `Map` per worker, not",
  "shared: the ceiling, how far the machine scales the same loop.",
  "",
);
const rows: string[][] = [];
for (const c of CASES) {
  for (const n of [1, 2, 3, 4]) {
    const cell = (r: JsonReport, s: string) => fmt(mops(r, c, s, n));
    rows.push([
      c,
      String(n),
      cell(deno, "SyncMap"),
      cell(deno, lockOf(c)),
      cell(deno, "Map copy per worker"),
      cell(bun, "SyncMap"),
      cell(bun, lockOf(c)),
      cell(bun, "Map copy per worker"),
    ]);
  }
}
print(
  ...table(
    [
      "case",
      "n",
      "Deno: SyncMap",
      "GoMap+lock",
      "Copy",
      "Bun: SyncMap",
      "GoMap+lock",
      "Copy",
    ],
    rows,
    [false, true, true, true, true, true, true, true],
  ),
  "",
);
const pm = (r: JsonReport) =>
  r.workers.filter((w) => w.structure === "postMessage owner").map((w) => w.mopsPerSec);
const pmAll = [...pm(deno), ...pm(bun)];
if (pmAll.length > 0) {
  print(
    "The postMessage owner (a worker owning a native `Map`, every op a round trip) did",
    `${fmt(Math.min(...pmAll))} to ${
      fmt(Math.max(...pmAll))
    } Mops/s in every case and worker count.`,
    "",
  );
}
for (const c of CASES) {
  const series: Series[] = [];
  for (const [r, label, marks] of [[deno, "Deno", "SG"], [bun, "Bun", "sg"]] as const) {
    for (const [s, mark] of [["SyncMap", marks[0]], [lockOf(c), marks[1]]] as const) {
      const points = r.workers.filter((w: WorkerBenchResult) => w.case === c && w.structure === s);
      if (points.length === 0) continue;
      series.push({
        name: `${s.replace("RWMutex", "RW")}, ${label}`,
        mark,
        x: points.map((w) => w.workers),
        y: points.map((w) => w.mopsPerSec),
      });
    }
  }
  print(`${c}: total Mops/s against workers`, "", "```text");
  print(...lineChart(series, { xLabels: ["1 worker", "4 workers"], unit: "Mops/s", height: 10 }));
  print("```", "");
}

console.log(out.join("\n"));
