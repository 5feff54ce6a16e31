// Copyright the shmap authors. MIT license.
/**
 * Do readers scale? Total loads per µs of one worker and of two, for loops that only read
 * shared memory nobody writes meanwhile: `Atomics.load` of one word and of random words over
 * 16 KiB, plain reads of the same words, `SyncMap.load` and `GoMap.get` hits over 1,024 keys, and
 * a native `Map` copy per worker (the machine's ceiling).
 *
 * ```
 * deno task bench:readers
 * deno run -A tools/bun.ts bench/read_scaling.ts [--ms=N] [--reps=N] [--ready-ms=N]
 * ```
 *
 * JavaScriptCore (Bun) takes a cache line exclusively for an `Atomics.load`, as for a store, so
 * there readers of the same lines slow each other down; V8 (Deno) loads plainly. Each figure is
 * the median of `--reps` runs of `--ms` each, fresh workers every run. Needs two idle cores:
 * read the 2-worker column against the ceiling's, measured in the same run. A run whose workers
 * are not all ready within `--ready-ms` (default 60,000), or do not report within that much more
 * than `--ms`, fails with an error naming its loop instead of waiting for good.
 *
 * @module
 */

import { GoMap, SyncMap } from "../mod.ts";
import { positiveInt, runtimeName } from "./fixtures/cli.ts";
import { median } from "./fixtures/timing.ts";
import { deadline, until } from "../tests/fixtures/harness.ts";
import { READ_MODES, type ReadMode, type ReadScalingTask } from "./fixtures/read_scaling_modes.ts";

const MS = positiveInt("ms", 1000);
const REPS = positiveInt("reps", 3);
const KEYS = 1024;
/** How long the workers of a run may take to load and warm up before the run gives up. */
const READY_MS = positiveInt("ready-ms", 60_000);

const words = new Int32Array(new SharedArrayBuffer(16 * 1024));
for (let i = 0; i < words.length; i++) words[i] = i;
const syncMap = new SyncMap<number, number>();
const goMap = new GoMap<number, number>();
for (let k = 0; k < KEYS; k++) {
  syncMap.store(k, k);
  goMap.set(k, k);
}
for (let k = 0; k < KEYS; k++) syncMap.load(k); // every key in the read table

/** Total loads per µs of `workers` fresh workers running `mode` together. */
async function run(mode: ReadMode, workers: number): Promise<number> {
  const ctrl = new Int32Array(new SharedArrayBuffer(8));
  const url = new URL("./fixtures/read_scaling_worker.ts", import.meta.url);
  const started = Array.from({ length: workers }, () => new Worker(url, { type: "module" }));
  try {
    const rates = started.map((w) =>
      new Promise<number>((resolve, reject) => {
        w.onmessage = (e) => resolve((e.data as { rate: number }).rate);
        w.onerror = (e) => reject(new Error(`a ${mode} worker failed: ${e.message}`));
      })
    );
    started.forEach((w, id) =>
      w.postMessage(
        {
          mode,
          words,
          ctrl,
          syncMap: syncMap.handle,
          goMap: goMap.handle,
          keys: KEYS,
          ms: MS,
          id: id + 1,
        } satisfies ReadScalingTask,
      )
    );
    // A worker that never starts (or fails before it is ready: its error rejects `rates`) must
    // not leave the run waiting for good.
    const ready = () => Atomics.load(ctrl, 0) >= workers;
    await Promise.race([until(ready, `the workers of "${mode}" are ready`, READY_MS), ...rates]);
    Atomics.store(ctrl, 1, 1);
    Atomics.notify(ctrl, 1);
    const reported = await deadline(Promise.all(rates), MS + READY_MS, `the rates of "${mode}"`);
    return reported.reduce((a, b) => a + b, 0);
  } finally {
    for (const w of started) w.terminate();
  }
}

console.log(`${runtimeName}: total loads per µs, median of ${REPS} runs of ${MS} ms\n`);
console.log("| loop | 1 worker | 2 workers | 2 / 1 |");
console.log("| --- | ---: | ---: | ---: |");
for (const mode of READ_MODES) {
  const one: number[] = [];
  const two: number[] = [];
  for (let rep = 0; rep < REPS; rep++) {
    one.push(await run(mode, 1));
    two.push(await run(mode, 2));
  }
  const a = median(one);
  const b = median(two);
  console.log(`| ${mode} | ${a.toFixed(1)} | ${b.toFixed(1)} | ${(b / a).toFixed(2)}x |`);
}
