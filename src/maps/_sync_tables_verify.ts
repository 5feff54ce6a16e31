/**
 * Internal. SyncMap.verify's check that the read and the dirty table agree with each other and
 * with their entries, as the lock-free paths and the steps under the mutex rely on (Go's
 * sync.Map invariants, and what recoverMutex's repair restores after a death):
 *
 * - the read word is amended only while there is a dirty table, and a dirty table beside a read
 *   word that is not amended holds no entry the read table lacks (Go's meaning of amended: the
 *   empty dirty table a hint makes, before its first key);
 * - an entry is expunged only while there is a dirty table, and an expunged entry is in no
 *   dirty table; every other entry of the read table is in the dirty table, if there is one;
 * - a live table's slots own nothing (S_OWNS is written only once a table is retired), hold
 *   their entry's key words, and no two share an entry; a live entry is owned by no retired
 *   table (E_OWNER 0).
 *
 * @module
 */

import { BlockMap } from "../_engine/block_map.ts";
import { Table } from "../_engine/table.ts";
import type { SyncCore } from "./_sync_core.ts";
import * as sync_layout from "./_sync_layout.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const {
  AMENDED,
  E_KEY_HI,
  E_KEY_LO,
  E_OWNER,
  ENTRY_BYTES,
  EXPUNGED,
  R_DIRTY,
  S_ENTRY,
  S_KEY_HI,
  S_KEY_LO,
  S_OWNS,
} = sync_layout;

/**
 * Checks the invariants above for read word `readWord`, calling `fail` with the first broken
 * one. Under the mutex, the world stopped, after the marking has checked every table and entry
 * offset.
 */
export function checkTables(core: SyncCore, readWord: number, fail: (what: string) => never): void {
  const a = core.arena;
  const i32 = a.i32;
  const dirtyHeader = i32[R_DIRTY];
  const amended = (readWord & AMENDED) !== 0;
  if (amended && dirtyHeader === 0) fail("the read word is amended, but there is no dirty table");
  const read = entriesOf(core, readWord & ~AMENDED, "read", fail);
  const dirty = dirtyHeader === 0 ? null : entriesOf(core, dirtyHeader, "dirty", fail);
  if (!amended) {
    dirty?.forEach((e) => {
      if (!read.has(e)) {
        fail(`the dirty table's entry at ${e} is not in the read table, which is not amended`);
      }
    });
  }
  dirty?.forEach((e) => {
    if (Atomics.load(i32, e >> 2) === EXPUNGED) fail(`the dirty table's entry at ${e} is expunged`);
  });
  read.forEach((e) => {
    const expunged = Atomics.load(i32, e >> 2) === EXPUNGED;
    if (dirty === null && expunged) {
      fail(`the read table's entry at ${e} is expunged, but there is no dirty table`);
    }
    if (dirty !== null && !expunged && !dirty.has(e)) {
      fail(`the read table's entry at ${e} is missing from the dirty table`);
    }
  });
}

/**
 * The entries of the live table at `header` (0: none). A block map rather than a `Map`: a table
 * may hold more keys than V8's `Map` can (2^24).
 */
function entriesOf(
  core: SyncCore,
  header: number,
  what: string,
  fail: (what: string) => never,
): BlockMap {
  const a = core.arena;
  const entries = BlockMap.ofHeap(a);
  if (header === 0) return entries;
  const i32 = a.i32;
  const table = new Table(a, header, false, () => {}, core.tx);
  table.forEachKeySlot(0, 0, (k) => {
    const e = i32[(k >> 2) + S_ENTRY];
    if (entries.add(e, ENTRY_BYTES) !== undefined) {
      fail(`the ${what} table's slots at ${firstSlotOf(table, e)} and ${k} share an entry`);
    }
    const owns = i32[(k >> 2) + S_OWNS];
    if (owns !== 0) {
      fail(`the ${what} table's slot at ${k} owns ${owns}, as only a retired one may`);
    }
    if (
      i32[(k >> 2) + S_KEY_LO] !== i32[(e >> 2) + E_KEY_LO] ||
      i32[(k >> 2) + S_KEY_HI] !== i32[(e >> 2) + E_KEY_HI]
    ) {
      fail(`the ${what} table's slot at ${k} holds a key other than its entry's (at ${e})`);
    }
    const owner = i32[(e >> 2) + E_OWNER];
    if (owner !== 0) fail(`the ${what} table's entry at ${e} is marked as owned by ${owner}`);
  });
  return entries;
}

/** The first key slot of `table` that names entry `e`, for an error message. */
function firstSlotOf(table: Table, e: number): number {
  const i32 = table.arena.i32;
  let first = -1;
  table.forEachKeySlot(0, 0, (k) => {
    if (first < 0 && i32[(k >> 2) + S_ENTRY] === e) first = k;
  });
  return first;
}
