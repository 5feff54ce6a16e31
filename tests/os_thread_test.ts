// Copyright the shmap authors. MIT license.
// src/_engine/os_thread.ts: a thread's note of its OS thread, and the look-up that says whether
// the thread of such a note has ended, on Linux in every runtime (Deno through its own API, Node
// and Bun through node:fs). Elsewhere there is neither.

import assert from "node:assert/strict";
import { readlinkSync } from "node:fs";
import { test } from "node:test";
import {
  OS_ENDED,
  OS_RUNNING,
  OS_SLEEPING,
  osThreadState,
  ownOsThread,
} from "../src/_engine/os_thread.ts";
import { runtime } from "./fixtures/spawn.ts";

const onLinux = (globalThis as { process?: { platform?: string } }).process?.platform === "linux";

test("os_thread: this thread's note names a running thread; a made-up one an ended one", () => {
  const mine = ownOsThread();
  if (!onLinux) {
    assert.equal(mine, 0, "no note outside Linux");
    assert.equal(osThreadState(12345 * 1024), undefined);
    return;
  }
  // Deno reads /proc through its own API, Node and Bun through node:fs.
  assert.ok(mine !== 0, `a note on ${runtime}`);
  const tid = mine >>> 10;
  const self = readlinkSync("/proc/thread-self");
  assert.equal(self.split("/").pop(), String(tid), "the thread id /proc/thread-self names");
  assert.equal(osThreadState(mine), OS_RUNNING, "this thread runs");
  // The same thread id with another start time: a thread the kernel gave the id to later.
  assert.equal(osThreadState((tid * 1024) | ((mine + 1) & 1023)), OS_ENDED);
  // A thread id no thread of this process has (ids are below pid_max, at most 2^22).
  assert.equal(osThreadState((2 ** 22 - 1) * 1024), OS_ENDED);
  void OS_SLEEPING; // a sleeping thread: tests/zombie_holder_test.ts
});
