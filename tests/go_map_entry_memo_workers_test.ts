// Copyright the shmap authors. MIT license.
// GoMap's entry memo across workers: readers whose memos are warm keep giving the right
// answers while a writer in another worker changes the map all the time (new values, deletes,
// re-inserts, clears, and enough new keys that the table keeps growing). A memo that answered
// for a version of the map no longer current would give a deleted key's slot, or a moved key's
// old one. A reader under the RWMutex's read lock must read exactly what the writer published
// under its write lock; a reader without the lock, as a GoMap allows, must either read a value
// consistent with the writer's protocol or get a ConcurrentMapWriteError, never a wrong value
// (tests/fixtures/go_entry_memo_worker.ts has the protocol). The workers run for RUN_MS, longer
// only if they have not done ENOUGH by then (a loaded machine), and never past MAX_MS (they
// bound themselves too); the test fails rather than hangs.

import assert from "node:assert/strict";
import { test } from "node:test";
import { GoMap, RWMutex } from "../mod.ts";
import {
  CTRL_WORDS,
  type GoEntryMemoReply,
  type GoEntryMemoRequest,
  type Key,
  keyOf,
  L_READS,
  N,
  STOP,
  U_EXACT,
  U_READS,
  type Value,
  valueOf,
  VER,
  W_CLEARS,
  W_GROWS,
  W_OPS,
} from "./fixtures/go_entry_memo_worker.ts";
import { deadline, sleep, until } from "./fixtures/harness.ts";
import { startWorker } from "./fixtures/spawn.ts";

const RUN_MS = 1500;
/** The least each worker does before it is stopped (ctrl words of progress). */
const ENOUGH: ReadonlyArray<[word: number, least: number, what: string]> = [
  [W_OPS, 5000, "the writer's changes"],
  [W_GROWS, 3, "the table's growths"],
  [W_CLEARS, 1, "the writer's clears"],
  [L_READS, 5000, "the locked reader's reads"],
  [U_READS, 5000, "the unlocked reader's reads"],
  [U_EXACT, 1000, "the unlocked reader's exact reads"],
];
/** How long the test waits for ENOUGH after RUN_MS, and for the workers' replies after. */
const ENOUGH_MS = 25_000, REPLY_MS = 15_000;
/** How long a worker runs at most, whether or not it is told to stop. */
const MAX_MS = RUN_MS + ENOUGH_MS + 5_000;

test(
  "readers' entry memos follow a writer's changes to a GoMap, with and without the lock",
  { timeout: 60_000 },
  async () => {
    const map = new GoMap<Key, Value>();
    const rw = new RWMutex();
    const ctrl = new Int32Array(new SharedArrayBuffer(CTRL_WORDS * 4));
    for (let i = 0; i < N; i++) {
      map.set(keyOf(i), valueOf(i, 1));
      Atomics.store(ctrl, VER + i, 1);
    }
    const roles = ["writer", "locked", "unlocked"] as const;
    const workers = roles.map((role, n) => {
      const { promise, resolve, reject } = Promise.withResolvers<GoEntryMemoReply>();
      const worker = startWorker(new URL("./fixtures/go_entry_memo_worker.ts", import.meta.url), {
        message: (data) => resolve(data as GoEntryMemoReply),
        error: reject,
      });
      worker.postMessage(
        {
          role,
          map: map.handle,
          rw: rw.handle,
          ctrl,
          seed: 0x9e37 * (n + 1),
          maxMs: MAX_MS,
        } satisfies GoEntryMemoRequest,
      );
      return { worker, promise };
    });
    const progress = () => ENOUGH.map(([word, , what]) => `${what} ${Atomics.load(ctrl, word)}`);
    try {
      await sleep(RUN_MS);
      // A worker that failed stops early: its reply tells why, below.
      const replied = Promise.race(workers.map((w) => w.promise.then(() => true, () => true)));
      let ended = false;
      void replied.then(() => ended = true);
      await until(
        () => ended || ENOUGH.every(([word, least]) => Atomics.load(ctrl, word) >= least),
        () => `the workers did enough: ${progress().join(", ")}`,
        ENOUGH_MS,
      );
      Atomics.store(ctrl, STOP, 1);
      const [writer, locked, unlocked] = await deadline(
        Promise.all(workers.map((w) => w.promise)),
        REPLY_MS,
        "the workers' replies",
      );
      // Every worker's problems at once: a broken memo shows in both readers.
      const problems = (r: GoEntryMemoReply) => r.error !== undefined ? [r.error] : r.failures;
      assert.deepEqual(
        { writer: problems(writer), locked: problems(locked), unlocked: problems(unlocked) },
        { writer: [], locked: [], unlocked: [] },
      );
      for (const [word, least, what] of ENOUGH) {
        assert.ok(Atomics.load(ctrl, word) >= least, `${what}: ${progress().join(", ")}`);
      }
      // Here too, as the writer left it.
      for (let i = 0; i < N; i++) {
        const v = Atomics.load(ctrl, VER + i);
        assert.deepEqual(
          map.getOk(keyOf(i)),
          v > 0 ? [valueOf(i, v), true] : [undefined, false],
          `key #${i}`,
        );
      }
      map.verify();
      console.log(`${progress().join(", ")}, ConcurrentMapWriteErrors ${unlocked.conflicts}`);
    } finally {
      Atomics.store(ctrl, STOP, 1);
      for (const { worker } of workers) worker.terminate();
    }
  },
);
