// A SyncMap shared through the runtime's worker adapter (deno.ts under Deno, bun.ts under Bun,
// node.ts under Node): the worker's writes reach the parent, and its share is given back when
// it is terminated, after a grace on Deno (whose terminate() may leave a busy worker running for
// a while).
import { test } from "node:test";
import assert from "node:assert/strict";
import { type Codec, GoMap, SyncMap } from "../mod.ts";
import { attachOwnSeat, shareSyncMap } from "../src/maps/sync_map.ts";
import { attachAll, SHARE_TAG, type ShareMessage } from "../src/workers/_share.ts";
import { Mailbox } from "./fixtures/adapter_harness.ts";
import { until } from "./fixtures/harness.ts";
import { runtime, spawnWorker } from "./fixtures/spawn.ts";

const WORKER = new URL("./fixtures/sync_map_adapter_worker.ts", import.meta.url);

test("a SyncMap shared by spawn() is written by the worker and released when it ends", {
  timeout: 30_000,
}, async () => {
  const cache = new SyncMap<number, number>();
  const box = new Mailbox();
  const worker = spawnWorker(WORKER, { cache }, { message: box.put, error: box.fail });
  try {
    const report = (await box.next(20_000)) as { stored: boolean; participants: number };
    assert.equal(report.stored, true);
    assert.equal(report.participants, 2, "the parent and the worker");
    assert.equal(cache.load(42), 4242, "the worker's store is visible to the parent");
  } finally {
    worker.terminate();
  }
  if (runtime === "deno") {
    // Released at once for new claims, but still protecting a call the worker may be inside.
    assert.equal(cache.stats().participants, 2, "the share is kept for its grace");
  }
  await until(() => cache.stats().participants === 1, "the worker's share is given back", 5_000);
  // The map is intact and its memory reclaimable.
  assert.equal(cache.load(42), 4242);
  cache.store(42, 1);
  assert.equal(cache.load(42), 1);
});

test("a receive() that failed on a missing codec can be tried again: the reserved seats stay", () => {
  // attachAll is what receive() runs on the share message; here in one thread, on handles whose
  // SyncMap seat is reserved as a parent reserves it for a worker.
  const point: Codec<number> = {
    name: "point",
    encode: (x) => new Uint8Array([x]),
    decode: (bytes) => bytes[0],
  };
  const s = new SyncMap<string, number>();
  s.store("k", 1);
  const g = new GoMap<number, number>({ keys: point });
  g.set(7, 70);
  const share = shareSyncMap(s as SyncMap<never, never>);
  const message: ShareMessage = { [SHARE_TAG]: 1, handles: { s: share.handle, g: g.handle } };
  assert.throws(() => attachAll(message), /use the codec "point"/);
  const out = attachAll(message, { g: { keys: point } }) as {
    s: SyncMap<string, number>;
    g: GoMap<number, number>;
  };
  assert.equal(out.s.load("k"), 1);
  assert.equal(out.g.get(7), 70);
  assert.equal(s.stats().participants, 2, "the reserved seat, adopted once");
  share.release();
  assert.equal(s.stats().participants, 1);
  s.verify();
});

test("a closed SyncMap object cannot be shared: TypeError, and no seat is reserved", () => {
  const map = new SyncMap<string, number>();
  const other = attachOwnSeat<string, number>(map.handle);
  other.close();
  assert.throws(() => shareSyncMap(other as SyncMap<never, never>), {
    name: "TypeError",
    message: /closed/,
  });
  assert.equal(map.stats().participants, 1);
  map.verify();
});
