// Copyright the shmap authors. MIT license.
// Deno: a node:worker_threads worker whose terminate() went through while it ran code of its own
// stops at its next shmap call without spinning on a core for the rest of the process. It used
// to call process.exit(1), which in a Deno worker asks to be closed and then loops until the
// thread is stopped, which, once terminate() has gone through, never happens: every task a pool
// aborted so left a core spinning (helper-175: 3 to 7 at once after a piscina run).

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { Worker } from "node:worker_threads";
import { SyncMap } from "../mod.ts";
import { track } from "../src/workers/node.ts";

const onDeno = (globalThis as { Deno?: unknown }).Deno !== undefined &&
  (globalThis as { Bun?: unknown }).Bun === undefined;

/** The CPU time of this process's OS thread `tid` so far, in seconds (Linux's /proc): 0 once ended. */
function threadCpu(tid: number): number {
  try {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return 0;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test(
  "Deno: a terminated node:worker_threads worker that calls shmap later stops without spinning",
  { skip: !onDeno ? "Deno only: Node's and Bun's terminate() stop a worker" : false },
  async () => {
    const map = new SyncMap<number, number>();
    const ctrl = new Int32Array(new SharedArrayBuffer(12));
    const worker = new Worker(new URL("./fixtures/late_call_worker.ts", import.meta.url), {
      workerData: { handle: map.handle, ctrl },
    });
    track(worker);
    while (Atomics.load(ctrl, 1) === 0) await sleep(2);
    await worker.terminate(); // it runs on, in its own loop (Deno does not stop it)
    await sleep(100);
    Atomics.store(ctrl, 0, 1); // its next call, into shmap, finds it terminated
    await sleep(500);
    assert.equal(Atomics.load(ctrl, 1), 1, "the terminated worker stored nothing more");
    const tid = Atomics.load(ctrl, 2);
    if (tid !== 0) {
      // Its thread, ended or asleep; spinning, it would take a whole core: about 1 s in 1 s.
      const before = threadCpu(tid);
      await sleep(1000);
      const used = threadCpu(tid) - before;
      assert.ok(
        used < 0.5,
        `the terminated worker's thread used ${used.toFixed(2)} s of CPU in 1 s`,
      );
    }
    assert.equal(map.load(2), undefined);
    map.verify();
    map.close();
  },
);
