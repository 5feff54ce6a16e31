// Copyright the shmap authors. MIT license.
/**
 * Do writers that add and delete keys scale? Total calls per µs of one worker and of two, each
 * deleting one of its own 1,024 keys and storing it again, over and over: on one SyncMap for all,
 * on a SyncMap each (no shared word at all: the cost of the calls alone), and on a native `Map`
 * each (the machine's ceiling). What the one map adds over a map each is what the workers share:
 * each worker counts keys in a word of its own seat (no shared counter), so what is left is the
 * epoch and the allocator.
 *
 * ```
 * deno run -A bench/churn_scaling.ts [--ms=N] [--reps=N] [--ready-ms=N]
 * deno run -A tools/bun.ts bench/churn_scaling.ts [--ms=N] [--reps=N] [--ready-ms=N]
 * ```
 *
 * Each figure is the median of `--reps` runs of `--ms` each, fresh workers and maps every run.
 * Needs two idle cores: read the 2-worker column against the ceiling's, measured in the same run.
 * A run whose workers are not all ready within `--ready-ms` (default 60,000), or do not report
 * within that much more than `--ms`, fails with an error naming its loop.
 *
 * @module
 */

import { SyncMap } from "../mod.ts";
import { positiveInt, runtimeName } from "./fixtures/cli.ts";
import { printScaling, runWorkers } from "./fixtures/worker_scaling.ts";
import {
  CHURN_MODES,
  type ChurnMode,
  type ChurnScalingTask,
} from "./fixtures/churn_scaling_modes.ts";

const MS = positiveInt("ms", 1000);
const REPS = positiveInt("reps", 3);
const KEYS = 1024;
/** How long the workers of a run may take to load and warm up before the run gives up. */
const READY_MS = positiveInt("ready-ms", 60_000);

/** Total calls per µs of `workers` fresh workers running `mode` together. */
async function run(mode: ChurnMode, workers: number): Promise<number> {
  const shared = new SyncMap<number, number>();
  const maps = Array.from(
    { length: workers },
    (_, i) => i === 0 || mode === "SyncMap, one for all" ? shared : new SyncMap<number, number>(),
  );
  const rate = await runWorkers(
    new URL("./fixtures/churn_scaling_worker.ts", import.meta.url),
    workers,
    (id, ctrl) => ({
      mode,
      ctrl,
      syncMap: maps[id].handle,
      keys: KEYS,
      ms: MS,
      id,
    } satisfies ChurnScalingTask),
    mode,
    MS,
    READY_MS,
  );
  // Every worker's keys are there, each once: nothing lost between the workers.
  for (const map of mode === "Map, one each" ? [] : new Set(maps)) {
    const expected = mode === "SyncMap, one for all" ? workers * KEYS : KEYS;
    if (map.size !== expected) throw new Error(`${mode}: ${map.size} keys, not ${expected}`);
  }
  return rate;
}

console.log(`${runtimeName}: total calls per µs, median of ${REPS} runs of ${MS} ms\n`);
await printScaling(CHURN_MODES, REPS, run);
