/**
 * Internal. How a GoMap object comes to be: made new (the constructor's path, which lays the
 * map out in a new arena) or attached from a handle (GoMap.attach's path).
 *
 * @module
 */

import { allocate, footprint, HEADROOM_BYTES } from "../_engine/allocator.ts";
import {
  Arena,
  checkMaxBytes,
  H_ALLOC_JOURNAL,
  HEADER_BYTES,
  KIND_GO_MAP,
} from "../_engine/arena.ts";
import { adoptCensus, census } from "../_engine/census.ts";
import { Journal } from "../_engine/journal.ts";
import type { SlotCodec } from "../_engine/slots.ts";
import { bucketBytesForHint, bucketsForHint, MAX_B, Table } from "../_engine/table.ts";
import { WriterTx } from "../_engine/tx.ts";
import { attachCodec, slotCodecOf } from "../codec.ts";
import { checkHandle } from "../_describe.ts";
import { checkHint, checkOptions } from "../_options.ts";
import { JOURNAL, JOURNAL_BYTES, JOURNAL_ENTRIES, TABLE_AT } from "./_go_layout.ts";
import type { AttachOptions, GoMapHandle, GoMapOptions } from "./go_map.ts";

const OPTIONS = ["hint", "keys", "values", "maxBytes"] as const;
const ATTACH_OPTIONS = ["keys", "values"] as const;

/**
 * A map made or attached, with the codecs an object uses for it. Only {@linkcode createGoMap}
 * and {@linkcode attachGoMap} make one; the GoMap constructor takes one where it would take
 * options, which is how GoMap.attach reaches it.
 */
export class OpenedGoMap<K, V> {
  readonly arena: Arena;
  readonly keys: SlotCodec<K>;
  readonly values: SlotCodec<V>;
  constructor(arena: Arena, keys: SlotCodec<K>, values: SlotCodec<V>) {
    this.arena = arena;
    this.keys = keys;
    this.values = values;
  }
}

/** The create path: checks `options` and lays a new, empty map out in a new arena. */
export function createGoMap<K, V>(options: GoMapOptions<K, V>): OpenedGoMap<K, V> {
  options = checkOptions(options, OPTIONS, "GoMap options");
  const hint = checkHint(options.hint);
  const maxBytes = checkMaxBytes(options.maxBytes);
  const keys = slotCodecOf(options.keys, "keys");
  const values = slotCodecOf(options.values, "values");
  // Multiply, not shift: a shift wraps at 32 bits, so a huge hint (2^26, 2^31, ...) would
  // pass the check below with a wrapped size and make a table whose B its array lacks.
  const initialBytes = bucketBytesForHint(hint);
  const fixedBytes = HEADER_BYTES + footprint(JOURNAL_BYTES) + footprint(initialBytes) +
    HEADROOM_BYTES;
  // The bucket array may take half of maxBytes, leaving the rest for what the keys bring.
  if (bucketsForHint(hint) > MAX_B || initialBytes > maxBytes / 2 || fixedBytes > maxBytes) {
    throw new RangeError(`hint ${hint} needs more memory than maxBytes ${maxBytes} allows`);
  }
  const arena = Arena.create(
    KIND_GO_MAP,
    maxBytes,
    initialBytes + JOURNAL_BYTES,
    keys.name,
    values.name,
    false,
  );
  // The writer's journal. Nothing can die half-way through making a map no one else has
  // seen yet, so these first allocations go through the allocator's idle journal.
  const boot = new Journal(() => arena.i32, H_ALLOC_JOURNAL);
  boot.begin();
  const journal = allocate(arena, JOURNAL_BYTES, false, boot);
  Journal.format(arena.i32, journal >> 2, JOURNAL_ENTRIES);
  arena.i32[JOURNAL] = journal;
  Table.create(new WriterTx(arena, boot), arena, TABLE_AT, hint);
  boot.commit();
  census();
  return new OpenedGoMap(arena, keys, values);
}

/** The attach path: checks `handle` and `options`, and finds the codecs the map recorded. */
export function attachGoMap<K, V>(
  handle: GoMapHandle,
  options: AttachOptions<K, V>,
): OpenedGoMap<K, V> {
  checkHandle(handle, "GoMap");
  options = checkOptions(options, ATTACH_OPTIONS, "GoMap.attach options");
  const arena = Arena.attach(handle.buffer, KIND_GO_MAP, false, "GoMap.attach");
  if (handle.census !== undefined) adoptCensus(handle.census);
  const keys = attachCodec(options.keys, arena.keyCodecName, "keys");
  const values = attachCodec(options.values, arena.valueCodecName, "values");
  return new OpenedGoMap(arena, keys, values);
}
