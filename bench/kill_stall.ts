// Copyright the shmap authors. MIT license.
/**
 * What a worker's death costs the others: two workers store into one SyncMap in tight loops;
 * the parent terminates one of them in the middle of its loop, and reports the longest gap the
 * other saw between two batches of 64 stores in the `--ms` after the kill (default 2,000): its
 * stall while the dead worker's seat is reaped and what it left is swept, with the world stopped.
 * Then a new worker takes the dead one's place, for the next of `--kills` rounds (default 5).
 * `--keys=N` first stores N other keys in the map (default none): the sweep marks every block
 * the map reaches, so the stall grows with the map. Each round also reports when the sweep the
 * kill made due was done (the map's sweep word read every millisecond from the kill on): the
 * blocks the dead worker held in hand are freed then, and not before. `--idle`: the worker killed
 * stores 1,000 times and ends its task first, as an idle worker a pool retires. `--reads`: the
 * worker killed stores 1,000 times and then loads in its loop, as a read-mostly worker a pool's
 * timeout kills. Neither holds anything in hand as it dies: no sweep. `--deletes`: the worker
 * killed stores and deletes its keys in turn, as a churn of keys the read table keeps (a
 * session cache). `--fresh`: the worker killed stores a key new to the map each time (the
 * mutex's step, whose record the journal names). `--fractions`: the worker killed stores
 * fractions (a record each, whose log is written as its block is taken:
 * Participant.allocateSwap) rather than strings.
 *
 * ```
 * deno run -A bench/kill_stall.ts [--kills=N] [--ms=N] [--keys=N] [--idle] [--reads] [--deletes]
 *   [--fresh] [--fractions]
 * deno run -A tools/bun.ts bench/kill_stall.ts [same options]
 * deno run -A tools/node.ts bench/kill_stall.ts [same options]
 * ```
 *
 * Workers are spawned through the runtime's adapter (src/workers/), which learns each one's end
 * as `terminate()` is called. Wall time on a shared machine: read the figures as orders of
 * magnitude, and a gap of a few ms as a time slice lost to another process.
 *
 * @module
 */

import { SyncMap } from "../mod.ts";
import { SWEEP_DUE } from "../src/_engine/registry.ts";
import { R_SWEEP_DUE } from "../src/maps/_sync_layout.ts";
import { Mailbox } from "../tests/fixtures/adapter_harness.ts";
import { spawnWorker, type TestWorker } from "../tests/fixtures/spawn.ts";
import { args, positiveInt, runtimeName } from "./fixtures/cli.ts";
import { median } from "./fixtures/timing.ts";
import type { KillStallTask } from "./fixtures/kill_stall_worker.ts";

const KILLS = positiveInt("kills", 5);
const MS = positiveInt("ms", 2000);
const KEYS = positiveInt("keys", 0);
const IDLE = args.includes("--idle");
const READS = args.includes("--reads");
const DELETES = args.includes("--deletes");
const FRESH = args.includes("--fresh");
const FRACTIONS = args.includes("--fractions");
const PREFILL_FROM = 100_000; // past the workers' keys (id * 1,000 plus 0 to 99)
const READY_MS = 20_000;

const map = new SyncMap<number, string>();
for (let i = 0; i < KEYS; i++) map.store(PREFILL_FROM + i, `prefill ${i}`);
const ctrl = new SharedArrayBuffer(3 * 8);
const words = new Float64Array(ctrl);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A worker storing in its loop as `id` (1 or 2), idle after 1,000 stores, loading or deleting. */
async function start(
  id: number,
  idle = false,
  reads = false,
  deletes = false,
): Promise<TestWorker> {
  const box = new Mailbox();
  const url = new URL("./fixtures/kill_stall_worker.ts", import.meta.url);
  const w = spawnWorker(url, { map }, { message: box.put, error: box.fail });
  try {
    await box.next(READY_MS);
    w.postMessage(
      {
        ctrl,
        id,
        idle,
        reads,
        deletes,
        fresh: FRESH && id === 2,
        fractions: FRACTIONS && id === 2,
      } satisfies KillStallTask,
    );
    await box.next(READY_MS);
  } catch (error) {
    w.terminate();
    throw error;
  }
  return w;
}

console.log(
  `${runtimeName}: the live worker's longest stall in the ${MS} ms after a kill${
    IDLE
      ? " (of an idle worker)"
      : READS
      ? " (of a worker loading in its loop)"
      : DELETES
      ? " (of a worker storing and deleting)"
      : ""
  }${KEYS > 0 ? `, ${KEYS} other keys` : ""}\n`,
);
const live = await start(1);
let victim = await start(2, IDLE, READS, DELETES);
const stalls: number[] = [];
const swept: number[] = [];
const mapWords = new Int32Array(map.handle.buffer);
try {
  for (let k = 1; k <= KILLS; k++) {
    await sleep(500);
    words[1] = 0;
    const killed = performance.now();
    victim.terminate();
    let done = -1;
    while (performance.now() - killed < MS) {
      await sleep(1);
      if (done < 0 && Atomics.load(mapWords, R_SWEEP_DUE) !== SWEEP_DUE) {
        done = performance.now() - killed;
      }
      if (done >= 0 && Atomics.load(mapWords, R_SWEEP_DUE) === SWEEP_DUE) done = -1; // due again
    }
    stalls.push(words[1]);
    if (done >= 0) swept.push(done);
    console.log(
      `kill ${k}: ${words[1].toFixed(1)} ms; no sweep due ${
        done < 0 ? `within ${MS} ms` : `after ${done.toFixed(0)} ms`
      }`,
    );
    victim = await start(2, IDLE, READS, DELETES);
  }
} finally {
  words[0] = 1;
  live.terminate();
  victim.terminate();
}
console.log(
  `\nmedian ${median(stalls).toFixed(1)} ms, longest ${Math.max(...stalls).toFixed(1)} ms; ` +
    `no sweep due after a median ${swept.length === 0 ? "-" : median(swept).toFixed(0)} ms ` +
    `(${swept.length} of ${KILLS} within ${MS} ms)`,
);
