// Copyright the shmap authors. MIT license.
/**
 * How steady `SyncMap.load` is from process to process (issue 11 asks a spread of at most 15%
 * over 10 processes): runs itself in `--processes=N` child processes of the same runtime, one
 * after another; each fills 4 maps (4 hash seeds) with 1,024 int keys, as Go's LoadMostlyHits
 * does, and times hits on each, interleaved, `--rounds=N` times. A child reports the median ns
 * per load of each map, and of a native `Map` timed between them; the parent reports every
 * process's mean over its maps, and the spread (slowest / fastest - 1) across processes, of the
 * means and of their ratio to `Map.get` (which the machine's own ups and downs cancel out of), and
 * within processes across seeds. The ratio is also taken per round, each map's sample against the
 * native samples just before and after it, which a change of the machine's speed within the
 * process moves less.
 *
 * ```
 * deno run -A bench/load_spread.ts [--processes=10] [--rounds=7] [--sync-compile]
 * deno run -A tools/bun.ts bench/load_spread.ts [--processes=10] [--rounds=7] [--sync-compile]
 * ```
 *
 * `--sync-compile` runs each child with its engine's optimizing compiler in the foreground (V8's
 * `--no-concurrent-recompilation`, JavaScriptCore's `useConcurrentJIT=0`): what a background
 * compile decides by its timing is then decided alike in every process, so a slow mode that
 * hangs on when `load` was optimized shows in all of them. On 2026-12-06 it did: 24.4 ns a hit on
 * Deno in every process, where the default ran 1 process in 3 or 4 so; 21.3 ns once the entry
 * memo's lookup was called on every path (docs/design.md, "The plain reads of a lookup").
 *
 * Timing is by the process's CPU time (bench/fixtures/timing.ts). The machine is shared: a
 * process that met a neighbour's burst reads slow, so run it twice before believing a spread.
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { SyncMap } from "../mod.ts";
import { type Body, cpuMs, median, sample } from "./fixtures/timing.ts";
import { args, positiveInt } from "./fixtures/cli.ts";

const KEYS = 1024;
const LOADS = 1_000_000;
const MAPS = 4;

/** Loads of `n` keys present in `map` (SyncMap's `load`), for {@linkcode sample}. */
function syncLoads(map: SyncMap<number, number>): Body {
  return (n) => {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += map.load(i & (KEYS - 1))!;
    if (sum < 0) throw new Error("unreachable");
  };
}

/** The same on a native `Map` of the same keys: the machine's speed right now. */
function nativeLoads(map: Map<number, number>): Body {
  return (n) => {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += map.get(i & (KEYS - 1))!;
    if (sum < 0) throw new Error("unreachable");
  };
}

/** ns per load of one sample of `body`, by this process's CPU time. */
const time = (body: Body): number => sample(body, LOADS, cpuMs);

/**
 * A child: the median ns per load of each of its maps, then of a native `Map` timed between
 * them (a process slowed by the machine is slow on both; one slowed by its own code, on the
 * SyncMaps only), as one JSON line.
 */
function child(rounds: number): void {
  const nativeMap = new Map<number, number>();
  for (let i = 0; i < KEYS; i++) nativeMap.set(i, i);
  const maps = Array.from({ length: MAPS }, () => {
    const map = new SyncMap<number, number>();
    for (let i = 0; i < KEYS; i++) map.store(i, i);
    // Two passes of loads promote the dirty table, as a warmed-up LoadMostlyHits has it.
    for (let pass = 0; pass < 2; pass++) for (let i = 0; i < KEYS; i++) map.load(i);
    return map;
  });
  const bodies = maps.map(syncLoads);
  const native = nativeLoads(nativeMap);
  for (let r = 0; r < 3; r++) [...bodies, native].forEach(time); // warm-up
  const times: number[][] = maps.map(() => []);
  const nativeTimes: number[] = [];
  // Each map's time over the mean of the native loop's timed just before and just after the
  // round's maps: a ratio from one moment, which the machine's speed changes within a process
  // (minutes-long states, a neighbour's burst) move less than a ratio of two medians.
  const roundRatios: number[][] = maps.map(() => []);
  let before = time(native);
  for (let r = 0; r < rounds; r++) {
    const round = bodies.map(time);
    const after = time(native);
    round.forEach((t, k) => {
      times[k].push(t);
      roundRatios[k].push(t / ((before + after) / 2));
    });
    nativeTimes.push(after);
    before = after;
  }
  console.log(JSON.stringify({
    maps: times.map(median),
    native: median(nativeTimes),
    ratio: median(roundRatios.map(median)),
  }));
}

const spread = (xs: readonly number[]): number => Math.max(...xs) / Math.min(...xs) - 1;

if (args.includes("--child")) {
  child(positiveInt("rounds", 7));
} else {
  const processes = positiveInt("processes", 10);
  const rounds = positiveInt("rounds", 7);
  const runtime = "Deno" in globalThis ? "Deno" : "Bun" in globalThis ? "Bun" : "Node";
  const self = fileURLToPath(import.meta.url);
  const sync = args.includes("--sync-compile");
  const childArgs = runtime === "Deno"
    ? ["run", "-A", ...(sync ? ["--v8-flags=--no-concurrent-recompilation"] : []), self]
    : runtime === "Node" && sync
    ? ["--no-concurrent-recompilation", self]
    : [self];
  const env = runtime === "Bun" && sync
    ? { ...process.env, BUN_JSC_useConcurrentJIT: "0" }
    : process.env;
  const perProcess: number[][] = [];
  const natives: number[] = [];
  const roundRatios: number[] = [];
  for (let p = 0; p < processes; p++) {
    const out = execFileSync(process.execPath, [...childArgs, "--child", `--rounds=${rounds}`], {
      encoding: "utf8",
      env,
    });
    const report = JSON.parse(out.trim().split("\n").at(-1)!) as {
      maps: number[];
      native: number;
      ratio: number;
    };
    perProcess.push(report.maps);
    natives.push(report.native);
    roundRatios.push(report.ratio);
  }
  const means = perProcess.map((xs) => xs.reduce((a, b) => a + b, 0) / xs.length);
  const ratios = means.map((m, p) => m / natives[p]);
  console.log(
    `${runtime}: SyncMap.load hit, ${KEYS} int keys, ns per load, ${processes} processes${
      sync ? ", compiling in the foreground" : ""
    }`,
  );
  for (const [p, xs] of perProcess.entries()) {
    const each = xs.map((x) => x.toFixed(1)).join(" ");
    const mean = means[p].toFixed(1);
    console.log(
      `  process ${p + 1}: ${each} (mean ${mean}; Map.get ${natives[p].toFixed(2)}, ratio ${
        ratios[p].toFixed(1)
      }, per round ${roundRatios[p].toFixed(1)})`,
    );
  }
  console.log(`spread across processes: ${(100 * spread(means)).toFixed(1)}%`);
  console.log(`spread of the ratio to Map.get: ${(100 * spread(ratios)).toFixed(1)}%`);
  console.log(
    `spread of the ratio to Map.get, per round: ${(100 * spread(roundRatios)).toFixed(1)}%`,
  );
  console.log(
    `spread across seeds within a process (largest): ${
      (100 * Math.max(...perProcess.map(spread))).toFixed(1)
    }%`,
  );
}
