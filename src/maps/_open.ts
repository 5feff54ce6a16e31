/**
 * Internal. What GoMap's and SyncMap's ways to a map (_go_open.ts, _sync_open.ts) share: the
 * object opening gives, the start of a new map's arena, and the attach of one from a handle.
 *
 * @module
 */

import { allocate } from "../_engine/allocator.ts";
import { Arena } from "../_engine/arena.ts";
import * as arena_module from "../_engine/arena.ts";
import { adoptCensus } from "../_engine/census.ts";
import { Journal } from "../_engine/journal.ts";
import type { SlotCodec } from "../_engine/slots.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { ALLOC_JOURNAL_ENTRIES, H_ALLOC_JOURNAL } = arena_module;

/** A map made or attached: its arena, and the codecs an object uses for it. */
export class OpenedMap<K, V> {
  readonly arena: Arena;
  readonly keys: SlotCodec<K>;
  readonly values: SlotCodec<V>;
  constructor(arena: Arena, keys: SlotCodec<K>, values: SlotCodec<V>) {
    this.arena = arena;
    this.keys = keys;
    this.values = values;
  }
}

/**
 * A new map's arena of `kind` (with the allocator's lock when `locking`), recording the codecs'
 * names, and the journal its first allocations go through: the allocator's idle journal, begun.
 * Nothing can die half-way through making a map no one else has seen yet, so they need neither
 * the allocator's lock nor a journal of their own. Commit it once the map is laid out.
 */
export function newArena(
  kind: number,
  maxBytes: number,
  initialBytes: number,
  codecs: { readonly keys: SlotCodec<unknown>; readonly values: SlotCodec<unknown> },
  locking: boolean,
): { arena: Arena; boot: Journal } {
  const { keys, values } = codecs;
  const arena = Arena.create(kind, maxBytes, initialBytes, keys.name, values.name, locking);
  const boot = new Journal(arena, H_ALLOC_JOURNAL, ALLOC_JOURNAL_ENTRIES);
  boot.begin();
  return { arena, boot };
}

/**
 * Allocates a map's own journal (`bytes`, for `entries` entries) through `boot`, formats it and
 * records its offset in word `at` of the arena.
 */
export function bootJournal(
  arena: Arena,
  boot: Journal,
  bytes: number,
  entries: number,
  at: number,
): void {
  const journal = allocate(arena, bytes, false, boot);
  Journal.format(arena.i32, journal >> 2, entries);
  arena.i32[at] = journal;
}

/**
 * The arena of `kind` that `handle` (checked already) names, `what` naming the caller in
 * errors; adopts the census the handle carries, so this thread learns of the others' deaths.
 */
export function attachArena(
  handle: { readonly buffer: unknown; readonly census?: SharedArrayBuffer },
  kind: number,
  locking: boolean,
  what: string,
): Arena {
  const arena = Arena.attach(handle.buffer, kind, locking, what);
  if (handle.census !== undefined) adoptCensus(handle.census);
  return arena;
}
