/**
 * Internal. How a GoMap object comes to be: made new (the constructor's path, which lays the
 * map out in a new arena) or attached from a handle (GoMap.attach's path).
 *
 * @module
 */

import { footprint } from "../_engine/allocator.ts";
import * as allocator from "../_engine/allocator.ts";
import { checkMaxBytes } from "../_engine/arena.ts";
import * as arena_module from "../_engine/arena.ts";
import { census } from "../_engine/census.ts";
import { bucketBytesForHint, bucketsForHint, Table } from "../_engine/table.ts";
import * as table from "../_engine/table.ts";
import { WriterTx } from "../_engine/tx.ts";
import { attachCodec, slotCodecOf } from "../codec.ts";
import { checkHandle } from "../_describe.ts";
import { checkHint, checkOptions } from "../_options.ts";
import * as go_layout from "./_go_layout.ts";
import { attachArena, bootJournal, newArena, OpenedMap } from "./_open.ts";
import type { AttachOptions, GoMapHandle, GoMapOptions } from "./go_map.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { HEADROOM_BYTES } = allocator;
const { HEADER_BYTES, KIND_GO_MAP } = arena_module;
const { MAX_B } = table;
const { JOURNAL, JOURNAL_BYTES, JOURNAL_ENTRIES, TABLE_AT } = go_layout;

const OPTIONS = ["hint", "keys", "values", "maxBytes"] as const;
const ATTACH_OPTIONS = ["keys", "values"] as const;

/**
 * A map made or attached, with the codecs an object uses for it. Only {@linkcode createGoMap}
 * and {@linkcode attachGoMap} make one; the GoMap constructor takes one where it would take
 * options, which is how GoMap.attach reaches it.
 */
export class OpenedGoMap<K, V> extends OpenedMap<K, V> {}

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
  const bytes = initialBytes + JOURNAL_BYTES;
  const { arena, boot } = newArena(KIND_GO_MAP, maxBytes, bytes, { keys, values }, false);
  // The writer's journal.
  bootJournal(arena, boot, JOURNAL_BYTES, JOURNAL_ENTRIES, JOURNAL);
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
  const arena = attachArena(handle, KIND_GO_MAP, false, "GoMap.attach");
  const keys = attachCodec(options.keys, arena.keyCodecName, "keys");
  const values = attachCodec(options.values, arena.valueCodecName, "values");
  return new OpenedGoMap(arena, keys, values);
}
