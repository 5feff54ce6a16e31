// Copyright the shmap authors. MIT license.
// src/_engine/os_thread.ts: a Deno thread's note of its OS thread, and the look-up that says
// whether the thread of such a note has ended. Elsewhere (Bun, Node) there is neither.

import assert from "node:assert/strict";
import { test } from "node:test";
import { osThreadEnded, ownOsThread } from "../src/_engine/os_thread.ts";
import { runtime } from "./fixtures/spawn.ts";

const onLinuxDeno = runtime === "deno" &&
  (globalThis as { Deno?: { build: { os: string } } }).Deno!.build.os === "linux";

test("os_thread: this thread's note names a running thread; a made-up one an ended one", () => {
  const mine = ownOsThread();
  if (!onLinuxDeno) {
    assert.equal(mine, 0, "no note outside Deno on Linux");
    assert.equal(osThreadEnded(12345 * 1024), undefined);
    return;
  }
  assert.ok(mine !== 0, "a note");
  const tid = mine >>> 10;
  const self = Deno.readLinkSync("/proc/thread-self");
  assert.equal(self.split("/").pop(), String(tid), "the thread id /proc/thread-self names");
  assert.equal(osThreadEnded(mine), false, "this thread runs");
  // The same thread id with another start time: a thread the kernel gave the id to later.
  assert.equal(osThreadEnded((tid * 1024) | ((mine + 1) & 1023)), true);
  // A thread id no thread of this process has (ids are below pid_max, at most 2^22).
  assert.equal(osThreadEnded((2 ** 22 - 1) * 1024), true);
});
