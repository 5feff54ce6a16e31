// Copyright the shmap authors. MIT license.
// The deadlines of a Redis connection (src/redis/deadlines.ts) with no server: a stall of the
// event loop renews what it finds due once, so that a reply read late after the stall still
// counts (Deno 2.9 reads sockets tens of milliseconds after the late timer), and a deadline
// still passes when every timer comes late.
import { test } from "node:test";
import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import { Deadline, Deadlines, STALL_MS } from "../src/redis/deadlines.ts";
import { busy } from "./fixtures/harness.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const turn = () => new Promise((resolve) => setImmediate(resolve));

/**
 * `deadlines.idle()`, with the event loop kept alive meanwhile: the deadlines' timer is unref'd,
 * and Deno ends a test whose only timers are.
 */
async function idle(deadlines: Deadlines): Promise<void> {
  const keep = setInterval(() => {}, 1000);
  try {
    await deadlines.idle();
  } finally {
    clearInterval(keep);
  }
}

/** A deadline that records when it expired. */
class Probe extends Deadline {
  expiredAt: number | undefined;
  expired(): void {
    this.expiredAt = performance.now();
  }
}

test("a reply read after a stall, later than the timer, is no timeout", async () => {
  const timeout = 300;
  const deadlines = new Deadlines(timeout);
  const d = new Probe();
  deadlines.track(d);
  await turn(); // stamped
  busy(2 * timeout); // the stall: the deadline passes with the reply unread
  // The late timer runs first; the reply is read later, here 50 ms of timers later.
  await sleep(50);
  assert.equal(d.expiredAt, undefined, "expired after the stall, before its reply was read");
  assert.ok(d.renewed, "the stall renewed it");
  deadlines.settle(d);
  await sleep(2 * timeout);
  assert.equal(d.expiredAt, undefined);
  assert.equal(deadlines.pending, 0);
  deadlines.stop();
});

test("a stall renews a deadline once: a second stall lets it pass", async () => {
  // Long enough that a loaded machine's late sleep(10) does not outlast the renewed deadline.
  const timeout = 300;
  const deadlines = new Deadlines(timeout);
  const d = new Probe();
  deadlines.track(d);
  await turn();
  busy(2 * timeout);
  await sleep(10);
  assert.ok(d.renewed && d.expiredAt === undefined, "renewed by the first stall");
  busy(2 * timeout);
  await idle(deadlines);
  assert.notEqual(d.expiredAt, undefined, "passed at the second");
  deadlines.stop();
});

test("renewed deadlines keep the order they were taken in", async () => {
  const timeout = 100;
  const deadlines = new Deadlines(timeout);
  const first = new Probe();
  deadlines.track(first);
  await turn();
  await sleep(timeout / 2);
  const second = new Probe();
  deadlines.track(second);
  await turn();
  busy(2 * timeout); // both due
  await sleep(10);
  assert.ok(first.renewed && second.renewed);
  assert.ok(first.at <= second.at, `${first.at} > ${second.at}`);
  // Taken after the stall: not renewed, and not earlier than what was.
  const third = new Probe();
  deadlines.track(third);
  await turn();
  assert.ok(!third.renewed && third.at >= second.at);
  await idle(deadlines);
  const order = [first, second, third].map((d) => d.expiredAt!);
  assert.ok(order.every((at, i) => at !== undefined && (i === 0 || at >= order[i - 1])));
  deadlines.stop();
});

test("a deadline passes though every timer comes late", async () => {
  const timeout = 50;
  const deadlines = new Deadlines(timeout);
  const d = new Probe();
  const start = performance.now();
  deadlines.track(d);
  // Work that stalls the loop for longer than a stall's mark every few milliseconds.
  const work = setInterval(() => busy(STALL_MS * 2), 5);
  try {
    await idle(deadlines);
  } finally {
    clearInterval(work);
  }
  assert.notEqual(d.expiredAt, undefined);
  const ms = d.expiredAt! - start;
  // Without the once-only rule it never passed; with it, at most one renewal late.
  assert.ok(ms >= timeout - 5 && ms < 10 * timeout + 1000, `passed after ${ms} ms`);
  deadlines.stop();
});

test("a deadline on time with its reply never read passes without renewal", async () => {
  const timeout = 100;
  const deadlines = new Deadlines(timeout);
  const d = new Probe();
  const start = performance.now();
  deadlines.track(d);
  await idle(deadlines);
  const ms = d.expiredAt! - start;
  assert.ok(ms >= timeout - 5, `passed after ${ms} ms`);
  // A loaded machine may run the timer late enough to renew it: then one timeout more.
  assert.ok(ms < (d.renewed ? 2 : 1) * timeout + 1000, `passed after ${ms} ms`);
  deadlines.stop();
});
