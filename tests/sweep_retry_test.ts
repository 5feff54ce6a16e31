// Copyright the shmap authors. MIT license.
// Engine unit tests of the backoff of a sweep left due (src/_engine/reclaim.ts, #retrySweep): a
// participant calls its structure's retry at quiescent points while the registry's sweep word is
// set, first after 100 ms, and doubles the delay only after a retry that could not stop the world.
// A retry put off for work the quiescent points do meanwhile (a backlog still being freed) comes
// again after the shortest delay. Participants here are real, on a SyncMap's arena, driven by hand
// in one thread; the retry is a stand-in that records when it was called.

import assert from "node:assert/strict";
import { test } from "node:test";
import { SyncMap } from "../mod.ts";
import { Arena, KIND_SYNC_MAP } from "../src/_engine/arena.ts";
import { Participant, QUIESCE_EVERY } from "../src/_engine/reclaim.ts";
import { claimSeat } from "../src/_engine/registry.ts";
import { registryOf } from "../src/maps/_sync_layout.ts";

/**
 * How much shorter than the participant's delay a gap between two recorded calls may read: the
 * time between the participant's clock read and the stand-in's, which a deschedule stretches.
 * Far below the 100 ms a gap would lose if the delay doubled or were skipped.
 */
const SLACK_MS = 25;

/**
 * The times (ms after the first quiescent point) at which a participant whose sweep word stays
 * set called its retry over `ms` of quiescent points, the retry answering `busy`.
 */
async function retryTimes(busy: boolean, ms: number): Promise<number[]> {
  const map = new SyncMap<number, number>({ maxParticipants: 4 });
  // The map's own participant goes offline at the end of this task.
  await new Promise((resolve) => setTimeout(resolve, 0));
  const registry = registryOf(Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test"));
  const p = new Participant(registry, claimSeat(registry), () => false);
  const calls: number[] = [];
  let start = 0;
  p.onSweepDue = () => {
    calls.push(performance.now() - start);
    return busy;
  };
  const i32 = registry.arena.i32;
  start = performance.now();
  Atomics.store(i32, registry.sweepWord, 1);
  while (performance.now() - start < ms) {
    for (let i = 0; i < QUIESCE_EVERY; i++) p.enter();
  }
  Atomics.store(i32, registry.sweepWord, 0);
  return calls;
}

test("a retry put off for a backlog comes again after the shortest delay, not a doubled one", async () => {
  const calls = await retryTimes(false, 1_000);
  // Every 100 ms: the first at 100 (the participant's first look at the census counts as news,
  // after which a retry waits the shortest delay), then 9 or 10 in the second. Doubling, they
  // came at 100, 200, 400 and 800 ms: 4. The participant reads its clock before the call and the
  // stand-in reads it again inside, so a thread descheduled between the two reads (CI's loaded
  // machine: 4.6 ms once) records a call late and the gap after it short by as much: SLACK_MS.
  assert.ok(calls.length >= 6, `the retry came at ${calls.map(Math.round)} ms`);
  for (let i = 1; i < calls.length; i++) {
    const gap = calls[i] - calls[i - 1];
    assert.ok(gap >= 100 - SLACK_MS, `gap ${i} was ${gap.toFixed(1)} ms`);
  }
});

test("a retry that could not stop the world doubles the delay", async () => {
  const calls = await retryTimes(true, 1_000);
  // At 100, 200, 400 and 800 ms (gaps of 100, 200 and 400); the next would come at 1,600.
  assert.ok(
    calls.length >= 3 && calls.length <= 4,
    `the retry came at ${calls.map(Math.round)} ms`,
  );
  for (let i = 1; i < calls.length; i++) {
    const gap = calls[i] - calls[i - 1];
    assert.ok(gap >= 100 * 2 ** (i - 1) - SLACK_MS, `gap ${i} was ${gap.toFixed(1)} ms`);
  }
});
