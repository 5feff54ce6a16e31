/**
 * Internal. The memory layout of a GoMap's arena beyond the common header (arena.ts): its root
 * words, and the words of a table slot it reads (docs/design.md, "GoMap root", tabulates them).
 *
 * @module
 */

import * as arena from "../_engine/arena.ts";
import { journalWords } from "../_engine/journal.ts";
import * as table from "../_engine/table.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { H_ROOT } = arena;
const { VALUE_WORDS } = table;

// SEQ is a seqlock that also names the writer. Idle, it holds an even version. A writer moves
// it to `(owner << 1) | 1` with a compare-exchange (failing if it is already odd: another
// writer is inside), writes through its journal, then stores the next even version. A reader
// notes the word before reading (odd: a writer is inside) and checks with an atomic load
// afterwards that it has not moved; if it has, a write overlapped the read, which might have
// seen torn data, and the read throws instead of returning it. LAST_SEQ keeps the version the
// writer started from (a plain write after the compare-exchange: the owner id replaced it in
// SEQ), so that whoever recovers from a dead writer can publish the version after it.
// _go_writer.ts runs the protocol.
export const SEQ = H_ROOT;
export const LAST_SEQ = H_ROOT + 1;
/** Root word holding the byte offset of the writer's journal. */
export const JOURNAL = H_ROOT + 2;
// WRAPS counts the times SEQ came round: a writer that starts from the version before 0 (-2)
// adds one to it before it writes anything, and so does whoever recovers such a write (the
// writer may have died before it did). A version of SEQ comes again after 2^31 writes; the
// pair (SEQ, WRAPS) never does.
// Written under the write sequence, read by readers under it as the table is.
export const WRAPS = H_ROOT + 3;
// LAYOUT and LAYOUT_WRAPS stamp the table's layout, where its keys are: the (SEQ, WRAPS) that the
// last write which may have moved a key published. A write that only replaced values, in place,
// in a table that was not growing, and did not move WRAPS, leaves the stamp; every other write
// (an insert, a delete, a growth step, a clear, a wrap, a recovered write) stamps its own version
// before it publishes it. The stamp is the serial of a handle's entry memo (_entry_memo.ts):
// where a key's slot is, and whether the key is there at all, holds for as long as the stamp
// stands, so a read-mostly map's lookups keep their memo across overwrites. Written under the
// write sequence, LAYOUT_WRAPS first, both plain, before the release of SEQ; read plainly by
// readers after their read of SEQ, as WRAPS is. Like SEQ's versions, no stamp comes again.
export const LAYOUT = H_ROOT + 4;
export const LAYOUT_WRAPS = H_ROOT + 5;
// RECOVERING names the thread (owner id) recovering a dead or abandoned writer's write while it
// holds SEQ for that, and is 0 otherwise: a reader that finds SEQ odd, held by a live thread,
// waits for a recovery to end rather than take it for a write overlapping its read (two
// readers that meet a dead writer's write at once: one recovers it, the other waits). Stored
// atomically by the recoverer once it holds SEQ and again (0) before it releases SEQ; loaded
// atomically by such a reader.
export const RECOVERING = H_ROOT + 6;
/** The version of SEQ whose next version is 0: a writer starting from it moves WRAPS. */
export const SEQ_BEFORE_WRAP = -2;
/** The byte offset of the table header in a GoMap's arena. */
export const TABLE_AT = (H_ROOT + 8) * 4;

/**
 * Entries in a GoMap writer's journal (8 KiB). A write touches a few dozen words; the most, an
 * insert that evacuates two old buckets, about 20 per bucket of their overflow chains.
 */
export const JOURNAL_ENTRIES = 1024;
/** Bytes of the writer's journal block. */
export const JOURNAL_BYTES: number = journalWords(JOURNAL_ENTRIES) * 4;
/** Journal intent: a clear is under way; argument 0 is the next step (table.ts clearStep). */
export const INTENT_CLEAR = 1;

// A table slot at byte offset k: the key's slot words (lo, hi) at words k/4 + KEY_LO and + KEY_HI,
// the value's VALUE_WORDS further on (table.ts lays buckets out).
export const KEY_LO = 0;
export const KEY_HI = 1;
export const VALUE_LO: number = VALUE_WORDS;
export const VALUE_HI: number = VALUE_WORDS + 1;
/** Byte distance from a key slot to its value slot, for reading a number value as a float64. */
export const VALUE_BYTES: number = VALUE_WORDS * 4;
