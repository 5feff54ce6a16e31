// Copyright the shmap authors. MIT license.
// SyncMap.compute tells a round lost to its own callback's write of the key (which it stops
// after SELF_WRITES_MAX rounds in a row) from one lost to another worker (which it retries for
// as long as it takes), with integer values (immediates, held in the entry itself, which another
// writer may store too) as with fractions (records, this thread's own blocks).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SyncMap } from "../mod.ts";
import type { RivalRequest } from "./fixtures/compute_rival_worker.ts";
import { startWorker } from "./fixtures/spawn.ts";

const SELF_WRITE = /fn wrote the key it computes in \d+ rounds in a row/;
/** Rounds the rival wins before it lets the compute store. */
const ROUNDS = 100;

describe("SyncMap.compute: own writes and a rival's", () => {
  for (const [kind, step] of [["integers", 1], ["fractions", 0.5]] as const) {
    test(`fn that compareAndSwaps its own number key throws (${kind})`, () => {
      const m = new SyncMap<number, number>();
      m.store(1, step === 1 ? 0 : 0.25);
      for (const _ of m) { /* promoted: key 1 in the read table, the compare's fast path */ }
      let calls = 0;
      assert.throws(() =>
        m.compute(1, (old) => {
          if (++calls > 5_000) throw new Error("still running");
          m.compareAndSwap(1, old!, old! + step); // fn's own write of its key
          return old! + 1000;
        }), SELF_WRITE);
      assert.ok(calls > 1 && calls < 1_000, `fn ran ${calls} times`);
      m.verify();
    });
  }

  for (const [kind, twice] of [["integers", 2], ["fractions", 1]] as const) {
    const step = twice / 2;
    test(`rounds lost to another worker's equal value are retried (${kind})`, async () => {
      const m = new SyncMap<string, number>();
      const ctrl = new Int32Array(new SharedArrayBuffer(8));
      ctrl[1] = twice;
      const replies: unknown[] = [];
      let wake = () => {};
      let failure: Error | null = null;
      const worker = startWorker(
        new URL("./fixtures/compute_rival_worker.ts", import.meta.url),
        {
          message: (data) => {
            replies.push(data);
            wake();
          },
          error: (error) => {
            failure = error;
            wake();
          },
        },
        { track: true },
      );
      const reply = async (want: string) => {
        while (replies.length === 0 && failure === null) {
          await new Promise<void>((resolve) => (wake = resolve));
        }
        if (failure !== null) throw failure;
        assert.equal(replies.shift(), want);
      };
      let won = 0;
      // The rival adds `step` to key 1 "b" or 2 "a" and waits until it has: a win of the round
      // running now, landed while fn runs. After ROUNDS wins it stops, and the round stores.
      const rival = (key: 1 | 2): void => {
        if (won >= ROUNDS) return;
        won++;
        Atomics.store(ctrl, 0, key);
        Atomics.notify(ctrl, 0);
        const deadline = Date.now() + 10_000;
        while (Atomics.load(ctrl, 0) !== 0) {
          assert.ok(Date.now() < deadline, "the rival answers");
          Atomics.wait(ctrl, 0, key, 10);
        }
      };
      try {
        worker.postMessage({ handle: m.handle, ctrl } satisfies RivalRequest);
        await reply("ready");
        // Nested: the inner compute's own new value is made while the outer fn runs; the rival
        // stores the same value into "b" each round. Not the inner fn's write.
        m.store("a", 0);
        m.store("b", 0);
        m.compute("a", (x) => {
          m.compute("b", (v) => {
            rival(1);
            return v! + step;
          });
          return x! + 1;
        });
        assert.equal(won, ROUNDS);
        assert.equal(m.load("b"), (ROUNDS + 1) * step, "the rival's adds, then the inner one");
        assert.equal(m.load("a"), 1);
        // Mirrored: fn stores into another key the value the rival stores into its own.
        won = 0;
        m.store("a", 0);
        m.compute("a", (v) => {
          rival(2);
          m.store("mirror", v! + step);
          return v! + step;
        });
        assert.equal(won, ROUNDS);
        assert.equal(m.load("a"), (ROUNDS + 1) * step);
        assert.equal(m.load("mirror"), (ROUNDS + 1) * step);
      } finally {
        Atomics.store(ctrl, 0, 3);
        Atomics.notify(ctrl, 0);
        await Promise.race([
          reply("done").catch(() => {}),
          new Promise((r) => setTimeout(r, 10_000)),
        ]);
        worker.terminate();
      }
      m.verify(); // once the rival, inside one long task until it ends, has closed its map
    });
  }
});
