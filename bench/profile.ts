// Copyright the shmap authors. MIT license.
/**
 * Where the nanoseconds of `SyncMap.load`, `store` and `range` go (issue 11's profile): runs
 * each workload in a child process of the same runtime with its CPU profiler on, then prints
 * the workload's top functions by self time, from the `.cpuprofile` the child wrote.
 *
 * ```
 * deno task bench:profile
 * deno run -A bench/profile.ts [--only=load,strings,store,range] [--top=12] [--keep=DIR]
 *   [--ms=2000] [--no-inline]
 * deno run -A tools/bun.ts bench/profile.ts [same options]
 * ```
 *
 * The workloads, each over 1,024 keys stored in a fresh map and loaded twice (so that they are in
 * the read table, as in a warmed-up Go LoadMostlyHits): `load`, hits on int keys; `strings`,
 * hits on 16-unit string keys (made by concatenation, as bench/string_keys.ts makes them);
 * `store`, overwrites of the int keys; `range`, one `range` over all the int keys an
 * operation; `churn`, `recreate`, `adversarialDelete`, `get`, `getStrings` and `iterate` as
 * WORKLOADS says. A child warms its loop up for about 300 ms, then runs it in `measuredLoop` for `--ms` of
 * wall time, and reports the operations and the time; only the samples with `measuredLoop` on
 * the stack count as the workload's (bench/fixtures/cpu_profile.ts). Ticks of the loop's window outside
 * JavaScript (garbage collection, V8's "(program)", idle) are counted apart, as a share of the
 * window.
 *
 * The profilers: Deno's and Bun's (1.4.5) `--cpu-prof --cpu-prof-dir=DIR --cpu-prof-name=NAME
 * --cpu-prof-interval=µs`, a sample every 250 µs; both write Chrome's `.cpuprofile` with each
 * function's line in the TypeScript source (Node's flags are the same, and the script runs under
 * Node 24 too). They differ on inlined code. Deno's charges it to the inlined function. Node's
 * charges it to the function it was inlined into. Bun's charges a compiled function's ticks to
 * the inlined frames of the last call it made: when `f` inlines `g`, then `h`, which calls `k`,
 * the ticks of `g` go to `h`; so a Bun row can hold the work of functions inlined beside it.
 * `--no-inline` turns inlining off in the child (V8's `--no-turbo-inlining
 * --no-maglev-inlining`, JavaScriptCore's `BUN_JSC_maximumInliningDepth=0`): every function is
 * then charged its own ticks, but the code profiled is slower, so compare shares within a run.
 *
 * The ns per op is of the profiled run, by wall time: sampling adds to it, and the machine is
 * shared, so read the percentages. "other" in the window is JavaScript whose stack the profiler
 * did not walk down to `measuredLoop` (V8 now and then cuts a stack short).
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { GoMap, SyncMap } from "../mod.ts";
import { args, option, positiveInt, runtimeName } from "./fixtures/cli.ts";
import { type CpuProfile, location, selfTime } from "./fixtures/cpu_profile.ts";
import { type Body, sample, wallMs } from "./fixtures/timing.ts";

const KEYS = 1024;
const KEYS_TEXT = KEYS.toLocaleString("en-US");
const WARMUP_MS = 300;
const INTERVAL_US = 250;

/** The workloads, by the name `--only` takes. */
const WORKLOADS = {
  load: `SyncMap.load hit, ${KEYS_TEXT} int keys`,
  strings: `SyncMap.load hit, ${KEYS_TEXT} 16-unit string keys`,
  misses: `SyncMap.load miss, ${KEYS_TEXT} int keys looked up, ${KEYS_TEXT} others held`,
  stringMisses:
    `SyncMap.load miss, ${KEYS_TEXT} 16-unit string keys looked up, ${KEYS_TEXT} others held`,
  store: `SyncMap.store overwrite, ${KEYS_TEXT} int keys`,
  range: `SyncMap.range over ${KEYS_TEXT} int keys (one op: the whole range)`,
  churn: `SyncMap store of an absent int key, then delete of a present one (StoreDeleteChurn)`,
  adversarialDelete:
    `SyncMap load misses, a range-delete-store every ${KEYS_TEXT} (AdversarialDelete)`,
  recreate: `SyncMap loadAndDelete of its one key, then a store of it again`,
  swapMisses:
    `SyncMap swap of a key new to the map, then its delete; one other key held (SwapMostlyMisses)`,
  loadOrStoreCollision: `SyncMap loadOrStore of its one key, present (LoadOrStoreCollision)`,
  missUnique: `SyncMap.load of a key never stored, a new one each call, ${KEYS_TEXT} int keys held`,
  deleteCollision: `SyncMap loadAndDelete of its one key, deleted (LoadAndDeleteCollision)`,
  get: `GoMap.get hit, ${KEYS_TEXT} int keys`,
  getMissUnique: `GoMap.get of a key never stored, a new one each call, ${KEYS_TEXT} int keys held`,
  getStrings: `GoMap.get hit, ${KEYS_TEXT} 16-unit string keys`,
  iterate: `GoMap entries over ${KEYS_TEXT} int keys (one op: one entry)`,
  goChurn: `GoMap set of an absent int key, then delete of a present one`,
} as const;
type Workload = keyof typeof WORKLOADS;

const DIGITS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/** A map of `keys`, each key i mapped to i, every key in the read table. */
function filled<K>(keys: readonly K[]): SyncMap<K, number> {
  const map = new SyncMap<K, number>();
  keys.forEach((k, i) => map.store(k, i));
  for (let pass = 0; pass < 2; pass++) for (const k of keys) map.load(k);
  return map;
}

/** 16-unit string keys: `start` ("user:") padded with "-" to 14, then i in two base-64 digits. */
function stringKeys(ints: readonly number[], start = "user:"): string[] {
  const prefix = start.padEnd(14, "-");
  return ints.map((i) => prefix + DIGITS[i >> 6] + DIGITS[i & 63]);
}

/** A GoMap of `keys`, each key i mapped to i. */
function goFilled<K>(keys: readonly K[]): GoMap<K, number> {
  const map = new GoMap<K, number>();
  keys.forEach((k, i) => map.set(k, i));
  return map;
}

/** The loop body of `workload`, on a map of its own. */
function bodyOf(workload: Workload): Body {
  const ints = Array.from({ length: KEYS }, (_, i) => i);
  switch (workload) {
    case "get": {
      const map = goFilled(ints);
      return function getHits(n) {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += map.get(i & (KEYS - 1))!;
        if (sum < 0) throw new Error("unreachable");
      };
    }
    case "getMissUnique": {
      const map = goFilled(ints);
      let k = KEYS;
      return function getMissesUnique(n) {
        let found = 0;
        for (let i = 0; i < n; i++) if (map.get(k++) !== undefined) found++;
        if (found !== 0) throw new Error("unreachable");
      };
    }
    case "getStrings": {
      const keys = stringKeys(ints);
      const map = goFilled(keys);
      return function getStringHits(n) {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += map.get(keys[i & (KEYS - 1)])!;
        if (sum < 0) throw new Error("unreachable");
      };
    }
    case "iterate": {
      const map = goFilled(ints);
      return function iterateEntries(n) {
        let sum = 0;
        for (let done = 0; done < n; done += KEYS) for (const [k, v] of map) sum += k + v;
        if (sum < 0) throw new Error("unreachable");
      };
    }
    case "load": {
      const map = filled(ints);
      return function loadHits(n) {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += map.load(i & (KEYS - 1))!;
        if (sum < 0) throw new Error("unreachable");
      };
    }
    case "strings": {
      const keys = stringKeys(ints);
      const map = filled(keys);
      return function loadStringHits(n) {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += map.load(keys[i & (KEYS - 1)])!;
        if (sum < 0) throw new Error("unreachable");
      };
    }
    case "misses": {
      const map = filled(ints);
      return function loadMisses(n) {
        let found = 0;
        for (let i = 0; i < n; i++) if (map.load(KEYS + (i & (KEYS - 1))) !== undefined) found++;
        if (found !== 0) throw new Error("unreachable");
      };
    }
    case "stringMisses": {
      // As bench/string_keys.ts's misses: the keys looked up share no prefix with those held.
      const map = filled(stringKeys(ints));
      const keys = stringKeys(ints, "miss:");
      return function loadStringMisses(n) {
        let found = 0;
        for (let i = 0; i < n; i++) if (map.load(keys[i & (KEYS - 1)]) !== undefined) found++;
        if (found !== 0) throw new Error("unreachable");
      };
    }
    case "store": {
      const map = filled(ints);
      return function storeOverwrites(n) {
        for (let i = 0; i < n; i++) map.store(i & (KEYS - 1), i);
      };
    }
    case "range": {
      const map = filled(ints);
      let sum = 0;
      const visit = (_key: number, value: number) => {
        sum += value;
      };
      return function ranges(n) {
        for (let i = 0; i < n; i++) map.range(visit);
        if (sum < 0) throw new Error("unreachable");
      };
    }
    case "adversarialDelete": {
      // Go's AdversarialDelete: each load misses but one in KEYS; every KEYS calls, a range
      // deletes the first key it meets and a new key is stored, so the dirty table is rebuilt.
      const map = filled(ints);
      let i = 0;
      const deleteFirst = (key: number) => (map.delete(key), false);
      return function adversarialDelete(n) {
        let sum = 0;
        for (let j = 0; j < n; j++, i++) {
          sum += map.load(i) ?? 0;
          if (i % KEYS === 0) {
            map.range(deleteFirst);
            map.store(i, i);
          }
        }
        if (sum < 0) throw new Error("unreachable");
      };
    }
    case "recreate": {
      // One key, deleted and stored again: every call rebuilds or promotes a table.
      const map = new SyncMap<number, number>();
      map.store(0, 0);
      return function recreate(n) {
        for (let i = 0; i < n; i++) if (map.loadAndDelete(0)[1]) map.store(0, i);
      };
    }
    case "swapMisses": {
      // A key added and taken out again, as a map of requests in flight: every call takes the
      // mutex twice, and the dirty table is rebuilt and promoted every few calls.
      const map = new SyncMap<number, number>();
      map.store(0, 0);
      let k = 1;
      return function swapMisses(n) {
        for (let i = 0; i < n; i++, k++) {
          map.swap(k, k);
          map.delete(k);
        }
      };
    }
    case "missUnique": {
      // The misses of LoadAndDeleteBalanced and AdversarialDelete: every key is new to the map
      // and to the handle's memos.
      const map = filled(ints);
      let k = KEYS;
      return function loadMissesUnique(n) {
        let found = 0;
        for (let i = 0; i < n; i++) if (map.load(k++) !== undefined) found++;
        if (found !== 0) throw new Error("unreachable");
      };
    }
    case "loadOrStoreCollision": {
      const map = filled([0]);
      return function loadOrStoreCollision(n) {
        let sum = 0;
        for (let i = 0; i < n; i++) sum += map.loadOrStore(0, 0)[0];
        if (sum < 0) throw new Error("unreachable");
      };
    }
    case "deleteCollision": {
      // Go 1.19's LoadAndDeleteCollision: the first call deletes, every later one finds the
      // key's entry in the read table with no value.
      const map = filled([0]);
      return function loadAndDeleteCollision(n) {
        let loaded = 0;
        for (let i = 0; i < n; i++) if (map.loadAndDelete(0)[1]) loaded++;
        if (loaded > 1) throw new Error("unreachable");
      };
    }
    case "goChurn": {
      // As churn, on a GoMap: each set inserts, each delete removes; no growth once warm.
      const map = new GoMap<number, number>();
      for (let k = KEYS / 2; k < KEYS; k++) map.set(k, k);
      let k = 0;
      return function goSetDeleteChurn(n) {
        for (let i = 0; i < n; i++, k++) {
          map.set(k & (KEYS - 1), k);
          map.delete((k + KEYS / 2) & (KEYS - 1));
        }
      };
    }
    case "churn": {
      // Half the keys present at any time: each store adds the key deleted 512 calls ago.
      const map = new SyncMap<number, number>();
      for (let k = KEYS / 2; k < KEYS; k++) map.store(k, k);
      let k = 0;
      return function storeDeleteChurn(n) {
        for (let i = 0; i < n; i++, k++) {
          map.store(k & (KEYS - 1), k);
          map.delete((k + KEYS / 2) & (KEYS - 1));
        }
      };
    }
  }
}

/**
 * Runs `body` in batches of `batch` until `ms` of wall time have passed: the profile's
 * workload is what runs under this function (its name is looked for in the profile).
 */
function measuredLoop(body: Body, batch: number, ms: number): { ops: number; ms: number } {
  let ops = 0;
  const t0 = wallMs();
  let t = t0;
  do {
    body(batch);
    ops += batch;
    t = wallMs();
  } while (t - t0 < ms);
  return { ops, ms: t - t0 };
}

/** A child: warms `workload` up, runs it under `measuredLoop`, prints one JSON line. */
function child(workload: Workload, ms: number): void {
  const body = bodyOf(workload);
  const t0 = wallMs();
  // Batches of about 10 ms, so that the clock is read rarely against the loop's work.
  let batch = 1;
  while (sample(body, batch, wallMs) * batch < 10e6) batch *= 2;
  while (wallMs() - t0 < WARMUP_MS) body(batch);
  console.log(JSON.stringify(measuredLoop(body, batch, ms)));
}

/**
 * The executable and arguments that run this script as a child under the runtime running it,
 * profiler on (inlining off if `noInline`), and the environment to run it in.
 */
function childCommand(
  dir: string,
  name: string,
  noInline: boolean,
): [string, string[], Record<string, string | undefined>] {
  const self = fileURLToPath(import.meta.url);
  const prof = [
    "--cpu-prof",
    `--cpu-prof-dir=${dir}`,
    `--cpu-prof-name=${name}`,
    `--cpu-prof-interval=${INTERVAL_US}`,
  ];
  const env = { ...process.env };
  if (noInline) {
    if ("Bun" in globalThis) env.BUN_JSC_maximumInliningDepth = "0";
    else if (typeof Deno !== "undefined") {
      prof.push("--v8-flags=--no-turbo-inlining,--no-maglev-inlining");
    } else prof.push("--no-turbo-inlining", "--no-maglev-inlining");
  }
  const runtime = typeof Deno !== "undefined" ? ["run", "-A", ...prof] : prof;
  return [process.execPath, [...runtime, self], env];
}

/** The workloads `--only=a,b` names, in its order (all of them when it is absent). */
function workloadsOption(): Workload[] {
  const text = option("only");
  if (text === undefined) return Object.keys(WORKLOADS) as Workload[];
  const names = text.split(",");
  for (const name of names) {
    if (!(name in WORKLOADS)) {
      throw new RangeError(
        `--only takes ${Object.keys(WORKLOADS).join(", ")} (comma-separated), got ${name}`,
      );
    }
  }
  return names as Workload[];
}

const pct = (part: number, whole: number): string =>
  whole === 0 ? "0.0" : (100 * part / whole).toFixed(1);

for (const a of args) {
  if (!a.startsWith("--")) throw new RangeError(`bench/profile.ts takes only --options, got ${a}`);
}
const ms = positiveInt("ms", 2000);
const childWorkload = option("child");
if (childWorkload !== undefined) {
  if (!(childWorkload in WORKLOADS)) throw new RangeError(`unknown workload ${childWorkload}`);
  child(childWorkload as Workload, ms);
} else {
  const workloads = workloadsOption();
  const top = positiveInt("top", 12);
  const keep = option("keep");
  const noInline = args.includes("--no-inline");
  const dir = keep ?? mkdtempSync(join(tmpdir(), "shmap-profile-"));
  mkdirSync(dir, { recursive: true });
  const repo = new URL("../", import.meta.url).href;
  console.log(
    `${runtimeName}: CPU profiles (a sample every ${INTERVAL_US} µs), ${ms} ms of each loop ` +
      `after ${WARMUP_MS} ms of warm-up${noInline ? ", inlining off" : ""}; self time as a ` +
      "share of the loop's samples",
  );
  try {
    for (const workload of workloads) {
      const name = `${workload}.cpuprofile`;
      const [exe, argv, env] = childCommand(dir, name, noInline);
      const out = execFileSync(exe, [...argv, `--child=${workload}`, `--ms=${ms}`], {
        encoding: "utf8",
        env,
      });
      const run = JSON.parse(out.trim().split("\n").at(-1)!) as { ops: number; ms: number };
      const profile = JSON.parse(readFileSync(join(dir, name), "utf8")) as CpuProfile;
      const report = selfTime(profile, { within: measuredLoop.name });
      if (report.samples === 0) throw new Error(`${name} has no samples under measuredLoop`);
      const nsPerOp = run.ms * 1e6 / run.ops;
      console.log(`\n## ${WORKLOADS[workload]}: ${nsPerOp.toFixed(1)} ns/op (profiled, wall)\n`);
      console.log(
        `${run.ops.toLocaleString("en-US")} ops in ${run.ms.toFixed(0)} ms; ${report.samples} ` +
          `samples in the loop; of the loop's window of ${report.window}: GC ` +
          `${pct(report.gc, report.window)}%, (program) ${pct(report.program, report.window)}%, ` +
          `idle ${pct(report.idle, report.window)}%, other ${pct(report.other, report.window)}%\n`,
      );
      console.log("| self % | function | where |");
      console.log("| ---: | --- | --- |");
      for (const row of report.rows.slice(0, top)) {
        console.log(
          `| ${row.percent.toFixed(1)} | ${row.functionName} | ${location(row, repo)} |`,
        );
      }
    }
    if (keep !== undefined) console.log(`\nprofiles kept in ${dir}`);
  } finally {
    if (keep === undefined) rmSync(dir, { recursive: true, force: true });
  }
}
