// Copyright the shmap authors. MIT license.
// The calls that tell a value from its absence narrow the value by `ok` in TypeScript
// (helper-166: `if (ok) value.a` was TS18048, "possibly undefined"). `deno task check` type-checks
// this file: a regression fails the check (the @ts-expect-error lines fail it if the error they
// expect goes away, the others if narrowing does). At run time it checks the shapes.

import assert from "node:assert/strict";
import { test } from "node:test";
import { GoMap, SyncMap } from "../mod.ts";
import type { RedisSyncMap } from "../src/redis/mod.ts";

interface Point {
  a: number;
}

test("loadOk, getOk, swap, loadAndDelete, compute: ok narrows the value", () => {
  const s = new SyncMap<string, Point>();
  s.store("p", { a: 1 });
  const [value, ok] = s.loadOk("p");
  // @ts-expect-error: before the check, value may be undefined
  assert.equal(value.a, 1);
  assert.equal(ok ? value.a : -1, 1);
  const [previous, loaded] = s.swap("p", { a: 2 });
  assert.equal(loaded ? previous.a : -1, 1);
  const [gone, had] = s.loadAndDelete("p");
  assert.equal(had ? gone.a : -1, 2);
  const [missing, found] = s.loadAndDelete("p");
  // Not found: the value's type is undefined.
  const none: undefined = found ? undefined : missing;
  assert.equal(none, undefined);
  const [computed, stored] = s.compute("q", () => ({ a: 3 }));
  assert.equal(stored ? computed.a : -1, 3);

  const g = new GoMap<string, Point>();
  g.set("p", { a: 4 });
  const [got, present] = g.getOk("p");
  assert.equal(present ? got.a : -1, 4);
  s.close();
});

// RedisSyncMap's promises resolve to the same shapes: checked by type alone (no server here).
async function redisNarrows(map: RedisSyncMap<string, Point>): Promise<number> {
  const [value, ok] = await map.loadOk("p");
  const [previous, loaded] = await map.swap("p", { a: 1 });
  const [gone, had] = await map.loadAndDelete("p");
  const [computed, stored] = await map.compute("p", () => ({ a: 2 }));
  return (ok ? value.a : 0) + (loaded ? previous.a : 0) + (had ? gone.a : 0) +
    (stored ? computed.a : 0);
}
void redisNarrows;
