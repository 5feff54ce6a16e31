// Copyright the shmap authors. MIT license.
/**
 * What a stalled participant leaves behind: a worker attaches a SyncMap, stores once, and blocks
 * in one long synchronous task for `--hold-ms` (default 1,000), holding every other
 * participant's frees back, while the main thread overwrites 100 keys in a loop. Then the worker
 * lets go, and the main thread stores on: how many stores until its backlog of retired blocks
 * is below 20,000 (`stats().retired`, looked at every 1,000 stores), and its slowest store
 * meanwhile (a collect of the whole backlog in one call was hundreds of milliseconds).
 *
 * ```
 * deno run -A bench/stall_backlog.ts [--hold-ms=N] [--reps=N] [--after=N]
 * deno run -A tools/bun.ts bench/stall_backlog.ts [same options]
 * deno run -A tools/node.ts bench/stall_backlog.ts [same options]
 * ```
 *
 * `--after` (default 3,000,000) is how many stores the main thread makes after the stall. The
 * main thread stays in one task from before the stall to the end, so that it never goes
 * offline (going offline frees everything it can). Timings are wall time on a shared machine:
 * read them as orders of magnitude.
 *
 * @module
 */

import { SyncMap } from "../mod.ts";
import { Mailbox } from "../tests/fixtures/adapter_harness.ts";
import { spawnWorker } from "../tests/fixtures/spawn.ts";
import { positiveInt, runtimeName } from "./fixtures/cli.ts";

const HOLD_MS = positiveInt("hold-ms", 1000);
const REPS = positiveInt("reps", 3);
const AFTER = positiveInt("after", 3_000_000);
const DRAINED = 20_000;
const READY_MS = 20_000;

/** One run: the stall's backlog, stores until it drained (-1: never), the slowest store. */
async function run(): Promise<{ backlog: number; drained: number; slowest: number }> {
  const map = new SyncMap<number, string>();
  const ctrl = new Int32Array(new SharedArrayBuffer(4));
  const box = new Mailbox();
  // The holder of tests/reclaim_stall_test.ts: it stores once, says "holding", waits on ctrl[0],
  // then makes a quiescent point, stores key -2 and says "let go".
  const url = new URL("../tests/fixtures/stall_worker.ts", import.meta.url);
  const w = spawnWorker(url, { map }, { message: box.put, error: box.fail });
  try {
    await box.next(READY_MS); // "ready"
    w.postMessage(ctrl.buffer);
    await box.next(READY_MS); // "holding"
    let n = 0;
    const end = performance.now() + HOLD_MS;
    while (performance.now() < end) map.store(n % 100, `value ${n++}`);
    const backlog = map.stats().retired;
    Atomics.store(ctrl, 0, 1);
    Atomics.notify(ctrl, 0);
    // It announces anew as it wakes, then stores: wait for the store here, synchronously, since
    // an await would let this thread go offline and free everything at once.
    const seen = performance.now() + 10_000;
    while (map.load(-2) === undefined && performance.now() < seen) {
      // Spin: this thread must stay in its task.
    }
    let drained = -1;
    let slowest = 0;
    for (let i = 0; i < AFTER; i++) {
      const t = performance.now();
      map.store(i % 100, `after ${i}`);
      const took = performance.now() - t;
      if (took > slowest) slowest = took;
      if (drained < 0 && i % 1000 === 0 && map.stats().retired < DRAINED) drained = i;
    }
    await box.next(READY_MS); // "let go"
    return { backlog, drained, slowest };
  } finally {
    w.terminate();
  }
}

console.log(
  `${runtimeName}: a participant stalled for ${HOLD_MS} ms, then let go; ${AFTER} stores after\n`,
);
console.log(`| run | backlog (blocks) | stores until below ${DRAINED} | slowest store, ms |`);
console.log("| ---: | ---: | ---: | ---: |");
for (let rep = 1; rep <= REPS; rep++) {
  const { backlog, drained, slowest } = await run();
  const until = drained < 0 ? "never" : drained.toLocaleString("en-US");
  console.log(
    `| ${rep} | ${backlog.toLocaleString("en-US")} | ${until} | ${slowest.toFixed(1)} |`,
  );
}
