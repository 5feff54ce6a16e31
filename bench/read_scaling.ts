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
import { printScaling, runWorkers } from "./fixtures/worker_scaling.ts";
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
function run(mode: ReadMode, workers: number): Promise<number> {
  return runWorkers(
    new URL("./fixtures/read_scaling_worker.ts", import.meta.url),
    workers,
    (id, ctrl) => ({
      mode,
      words,
      ctrl,
      syncMap: syncMap.handle,
      goMap: goMap.handle,
      keys: KEYS,
      ms: MS,
      id: id + 1,
    } satisfies ReadScalingTask),
    mode,
    MS,
    READY_MS,
  );
}

console.log(`${runtimeName}: total loads per µs, median of ${REPS} runs of ${MS} ms\n`);
await printScaling(READ_MODES, REPS, run);
