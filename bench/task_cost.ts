// Copyright the shmap authors. MIT license.
/**
 * What a map call costs when each task makes only a few: a SyncMap's participant comes online
 * at the first call of a task and goes offline at its end (a microtask), which a GoMap and a
 * native `Map` do not do. Loops of tasks of k calls each (k = 1, 10, 100, 10,000), awaiting
 * between tasks; ns per call, the task switch included.
 *
 * ```
 * deno run -A bench/task_cost.ts
 * deno run -A tools/bun.ts bench/task_cost.ts
 * ```
 *
 * @module
 */

import { GoMap, SyncMap } from "../mod.ts";
import { runtimeName } from "./fixtures/cli.ts";

const KEYS = 1024;
const sync = new SyncMap<number, number>();
const go = new GoMap<number, number>();
const map = new Map<number, number>();
for (let i = 0; i < KEYS; i++) {
  sync.store(i, i);
  go.set(i, i);
  map.set(i, i);
}
for (let pass = 0; pass < 2; pass++) for (let i = 0; i < KEYS; i++) sync.load(i);

let sink = 0;
/** ns per call of `f` over `tasks` tasks of `k` calls each. */
async function perCall(k: number, tasks: number, f: (i: number) => number): Promise<number> {
  let i = 0;
  const t0 = performance.now();
  for (let t = 0; t < tasks; t++) {
    for (let j = 0; j < k; j++) sink += f(i++ & (KEYS - 1));
    await null;
  }
  return (performance.now() - t0) * 1e6 / (tasks * k);
}

const ops: [string, (i: number) => number][] = [
  ["SyncMap.load", (i) => sync.load(i)!],
  ["GoMap.get", (i) => go.get(i)!],
  ["Map.get", (i) => map.get(i)!],
];
console.log(`${runtimeName}: ns per call, tasks of k calls, awaiting between tasks\n`);
console.log("| k | " + ops.map(([name]) => name).join(" | ") + " |");
console.log("| ---: | " + ops.map(() => "---:").join(" | ") + " |");
for (const k of [1, 10, 100, 10_000]) {
  const tasks = Math.max(10, 300_000 / k);
  for (const [, f] of ops) await perCall(k, tasks, f); // warm-up
  const row: string[] = [];
  for (const [, f] of ops) row.push((await perCall(k, tasks, f)).toFixed(0));
  console.log(`| ${k} | ${row.join(" | ")} |`);
}
if (sink < 0) throw new Error("unreachable");
