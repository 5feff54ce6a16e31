// Copyright the shmap authors. MIT license.
// The termination storm (tests/fixtures/storm_runner.ts): workers do random operations on one
// SyncMap, one GoMap under a Mutex and an RWMutex-guarded pair, in maps of the default maxBytes;
// the runner terminates a random worker at a random moment, then starts a replacement in its
// slot. Half the values written are integers, which a SyncMap holds in the entry word (an
// immediate), half fractions, which take a value record (storm_protocol.ts, numberValue). After each kill it checks that every write the killed worker completed is in the maps
// and the one it had in flight is there wholly or not at all, that SyncMap.verify() and
// GoMap.verify() pass and the RWMutex's pair is whole, and that the replacement's first
// operations on every structure complete within 1 s.
//
// Then this test checks that bytesUsed stays bounded: after the storm it is within a fresh
// map's holding the same data, so the deaths leaked nothing that keeps growing.
//
// STORM_KILLS kills per runtime (default 30); `--long` on the command line (after `--` under
// `deno test`) or SHMAP_STORM=long makes it 1,000: `deno task test:storm`.

import assert from "node:assert/strict";
import { test } from "node:test";
import { GoMap, SyncMap } from "../mod.ts";
import { lockGoMap } from "./fixtures/storm_protocol.ts";
import { Storm, STORM_TIMEOUT_MS, stormKills } from "./fixtures/storm_runner.ts";

const KILLS = stormKills(30);

/** bytesUsed against fresh maps holding the same entries. */
function checkBounded({ s, g, mu }: Storm): void {
  const fresh = new SyncMap<number | string, number | string>();
  s.range((k, v) => {
    fresh.store(k, v);
    return true;
  });
  const freshGo = new GoMap<number, number | string>();
  lockGoMap(mu);
  try {
    for (const [k, v] of g) freshGo.set(k, v);
  } finally {
    mu.unlock();
  }
  const sync = s.stats().bytesUsed;
  const go = g.stats().bytesUsed;
  // Within twice the fresh map's plus a span per size class: spare spans, the main thread's
  // cache, retired blocks not yet freed.
  const slack = 64 * 1024;
  assert.ok(
    sync <= 2 * fresh.stats().bytesUsed + slack,
    `SyncMap bytesUsed ${sync} after the storm; a fresh map with the same entries uses ${fresh.stats().bytesUsed}`,
  );
  assert.ok(
    go <= 2 * freshGo.stats().bytesUsed + slack,
    `GoMap bytesUsed ${go} after the storm; a fresh map with the same entries uses ${freshGo.stats().bytesUsed}`,
  );
}

test(
  `termination storm: ${KILLS} kills of workers in the middle of SyncMap, GoMap and lock calls`,
  { timeout: STORM_TIMEOUT_MS },
  async () => {
    const storm = new Storm({ kills: KILLS });
    await storm.run();
    checkBounded(storm);
    console.log(storm.summary());
  },
);
