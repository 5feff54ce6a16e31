/**
 * Internal. What SyncMap reports about itself: its stats, and what `console.log` shows.
 *
 * @module
 */

import { seatsInUse } from "../_engine/registry.ts";
import { describeError, inspectMap, type InspectRequest } from "../_inspect.ts";
import type { SyncAccess } from "./_sync_access.ts";
import * as sync_layout from "./_sync_layout.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { AMENDED, R_MISSES, R_READ } = sync_layout;

/** What `SyncMap.stats()` reports. */
export interface SyncMapStats {
  /** Keys with a value. */
  count: number;
  /** Keys in the read table, deleted ones included. */
  readKeys: number;
  /** Keys in the dirty table, or -1 when there is none. */
  dirtyKeys: number;
  /** Whether the dirty table holds keys the read table lacks. */
  amended: boolean;
  /** Calls that looked for a key past the read table, under the lock, since the last promotion. */
  misses: number;
  /** Participant seats in use (attached SyncMap objects, and shares reserved for workers). */
  participants: number;
  /** Blocks this object retired that are not yet freed. */
  retired: number;
  /** Bytes of shared memory allocated and not freed. */
  bytesUsed: number;
  /** Bytes of shared memory the buffer currently spans. */
  bytesReserved: number;
}

/** SyncMap.stats: the state of the two tables and of memory, read under the mutex. */
export function syncMapStats<K, V>(s: SyncAccess<K, V>): SyncMapStats {
  const part = s.participant;
  // It retires nothing: a read's entry, so that a full map with no room to retire in still
  // answers (its mutex stops a thread marked terminating, as a load's does).
  part.enterRead();
  const a = s.arena;
  const core = s.core;
  return core.locked(() => {
    const readWord = Atomics.load(a.i32, R_READ);
    const dirty = core.dirtyTable();
    return {
      count: core.keyCount(),
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

/** What a SyncMap shows for `request`: its entries as a `Map`'s, read as `range` reads. */
export function inspectSyncMap(
  request: InspectRequest,
  map: { readonly size: number; entries(): Iterable<[unknown, unknown]> },
): string {
  return inspectMap(
    request,
    "SyncMap",
    () => map.size,
    () => map.entries(),
    (error) =>
      error instanceof TypeError && /closed|released/.test(error.message)
        ? "closed"
        : describeError(error),
  );
}
