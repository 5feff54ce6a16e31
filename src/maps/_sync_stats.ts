/**
 * Internal. What SyncMap reports about itself: its stats, and what `console.log` shows.
 *
 * @module
 */

import { seatsInUse } from "../_engine/registry.ts";
import { describeError, inspectMap, type InspectRequest } from "../_inspect.ts";
import type { SyncAccess } from "./_sync_access.ts";
import { AMENDED, R_COUNT, R_MISSES, R_READ } from "./_sync_layout.ts";
import type { SyncMapStats } from "./sync_map.ts";

/** SyncMap.stats: the state of the two tables and of memory, read under the mutex. */
export function syncMapStats<K, V>(s: SyncAccess<K, V>): SyncMapStats {
  const part = s.participant;
  part.enter();
  const a = s.arena;
  const core = s.core;
  return core.locked(() => {
    const readWord = Atomics.load(a.i32, R_READ);
    const dirty = core.dirtyTable();
    return {
      count: Atomics.load(a.i32, R_COUNT),
      readKeys: core.readTable(readWord)?.count ?? 0,
      dirtyKeys: dirty?.count ?? -1,
      amended: (readWord & AMENDED) !== 0,
      misses: a.i32[R_MISSES],
      participants: seatsInUse(core.registry),
      retired: part.pending,
      bytesUsed: core.bytesUsed(),
      bytesReserved: a.buffer.byteLength,
    };
  });
}

/** What a SyncMap shows for `request`: its entries as a `Map`'s, read with `range`. */
export function inspectSyncMap(
  request: InspectRequest,
  map: { readonly size: number; range(f: (key: unknown, value: unknown) => boolean): void },
): string {
  return inspectMap(
    request,
    "SyncMap",
    () => map.size,
    (limit) => {
      const entries: [unknown, unknown][] = [];
      if (limit > 0) {
        map.range((key, value) => {
          entries.push([key, value]);
          return entries.length < limit;
        });
      }
      return entries;
    },
    (error) =>
      error instanceof TypeError && /closed|released/.test(error.message)
        ? "closed"
        : describeError(error),
  );
}
