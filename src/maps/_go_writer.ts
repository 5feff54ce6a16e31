/**
 * Internal. GoMap's writer protocol: the seqlock in its SEQ word (see _go_layout.ts) that
 * serializes writers, lets readers detect an overlapping write, and names the writer so that
 * a dead writer's write is rolled back from its journal (or its clear finished) by whoever
 * finds it; and the steps of a clear, which runs as a resumable intent.
 *
 * @module
 */

import {
  checkAlive,
  checkSelf,
  fast,
  liveOwnerIdAtEntry,
  liveOwnerIdSlowAtEntry,
  ownerGone,
  ownerId,
} from "../_engine/census.ts";
import * as census from "../_engine/census.ts";
import * as arena from "../_engine/arena.ts";
import { isBlob, keyNumberWords, type Probe, setNumber } from "../_engine/slots.ts";
import * as slots from "../_engine/slots.ts";
import * as entry_memo from "./_entry_memo.ts";
import * as table_layout from "../_engine/table_layout.ts";
import { ConcurrentMapWriteError, MapFullError } from "../errors.ts";
import { JournalFullError } from "../_engine/journal.ts";
import type { GoAccess } from "./_go_access.ts";
import * as go_layout from "./_go_layout.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { C_COUNT } = census;
const { H_TOP } = arena;
const { MODE_INLINE } = slots;
const { HELD } = entry_memo;
const { MIN_TOP_HASH, T_OLDBUCKETS } = table_layout;
const {
  INTENT_CLEAR,
  LAST_SEQ,
  LAYOUT,
  LAYOUT_WRAPS,
  RECOVERING,
  SEQ,
  SEQ_BEFORE_WRAP,
  VALUE_BYTES,
  VALUE_HI,
  WRAPS,
} = go_layout;

/** Returns `result` once the read that began at `seq` is validated. */
export function validated<K, V, T>(s: GoAccess<K, V>, seq: number, result: T): T {
  if (Atomics.load(s.arena.i32, SEQ) !== seq) throw new ConcurrentMapWriteError("read");
  return result;
}

/** A read threw: blame an overlapping write if there was one, else rethrow as it is. */
export function readFailure<K, V>(s: GoAccess<K, V>, seq: number, error: unknown): unknown {
  return Atomics.load(s.arena.i32, SEQ) !== seq ? new ConcurrentMapWriteError("read") : error;
}

/** Takes the write sequence for this thread; returns the version it started from. */
export function beginWrite<K, V>(s: GoAccess<K, V>): number {
  const a = s.arena;
  const i32 = a.i32;
  const mine = (liveOwnerIdAtEntry() << 1) | 1;
  let seq = i32[SEQ];
  for (;;) {
    if ((seq & 1) !== 0) {
      seq = recoverWriter(s, seq);
      if ((seq & 1) !== 0) throw new ConcurrentMapWriteError("write");
    }
    const found = Atomics.compareExchange(i32, SEQ, seq, mine);
    if (found === seq) break;
    seq = found; // a write finished since our plain read; try again from its value
  }
  i32[LAST_SEQ] = seq;
  if (seq === SEQ_BEFORE_WRAP) {
    // Before any write: see WRAPS. A write that wraps SEQ stamps the layout with the version it
    // will publish, 0, whatever else it does (LAYOUT), so that within one stamp WRAPS is fixed.
    const wraps = (i32[WRAPS] + 1) | 0;
    i32[WRAPS] = wraps;
    i32[LAYOUT_WRAPS] = wraps;
    i32[LAYOUT] = 0;
  }
  try {
    // Cover memory other workers allocated since this worker's views were made: a writer
    // follows offsets without checking each against its views. The previous writer published
    // the heap's top before its release of SEQ, read by the compare-exchange above.
    a.reachTop();
  } catch (error) {
    Atomics.store(i32, SEQ, seq); // nothing written yet: the version it started from
    throw error;
  }
  return seq;
}

/** {@linkcode overwriteNumber}: the write is done. */
export const OVERWRITTEN = 1;
/** {@linkcode overwriteNumber}: SEQ was not taken; the general path begins the write. */
export const NOT_BEGUN = 3;

/**
 * GoMap.set's fast path for number `key` and number `value` under the built-in codecs: the
 * probes `p` (its words, and its hash only if it walked: GoAccess.hashOwed) and `v` made for the
 * general path, SEQ taken, and, when the key is present with a value that is not a blob and the
 * table is not growing, the whole overwrite, SEQ released. Returns {@linkcode OVERWRITTEN}
 * then; otherwise {@linkcode NOT_BEGUN} when it did not take SEQ (a writer inside or dead, SEQ
 * about to wrap, a lost race: beginWrite's cases), or the version the write began from, with SEQ
 * held and nothing written, for the general path to go on from (GoMap.set enters its `try` with
 * no call between).
 *
 * The overwrite is one aligned 8-byte store of the value's float64 over the slot's two words,
 * so it needs no journal: a death before the store leaves the old value, after it the new,
 * and either way SEQ names a dead writer whose journal is idle, so the next thread's
 * recoverWriter publishes the next version and rolls nothing back. What a value's slot word
 * says of its kind lives in those same 8 bytes, so an inline value of any kind is replaced
 * whole; a blob has to be freed, and goes the general way.
 *
 * SEQ is taken before the lookup, as beginWrite takes it: the reads after the
 * compare-exchange see the previous writer's writes, and on Deno a lookup before it cost
 * 1.15x to 1.35x (the compare-exchange waits for the lookup's loads). After the
 * compare-exchange the calls (the lookup's, the blob test's) are in a `try` whose catch (a
 * stack overflow as one is entered, corrupt memory) hands the held SEQ to the general path,
 * which meets the error again inside its own `try`.
 *
 * Against the general path it saves the journal's ten words, the calls, the `try`, and a
 * second lookup: GoMap.set overwrite of number keys took 0.54x to 0.68x on Deno, 0.60x to 0.67x
 * on Bun (docs/design.md, "GoMap `set`"). The key's slot comes from the handle's entry memo
 * when it knows the key at the layout stamp, as a `get`'s does: no hash, no walk.
 */
export function overwriteNumber<K, V>(
  s: GoAccess<K, V>,
  key: number,
  value: number,
  p: Probe,
  v: Probe,
): number {
  const a = s.arena;
  const words = keyNumberWords(key);
  const lo = words[0];
  const hi = words[1];
  // The probe's words; its hash only if the table is walked (else GoMap.set's general path
  // hashes, under its `try`).
  s.hashOwed = true;
  s.walkedAbsent = false;
  p.lo = lo;
  p.hi = hi;
  p.mode = MODE_INLINE;
  setNumber(v, value === value ? value : NaN);
  const seq = a.i32[SEQ];
  // An odd SEQ is a writer inside (or a dead one); SEQ_BEFORE_WRAP moves WRAPS (beginWrite).
  if ((seq & 1) !== 0 || seq === SEQ_BEFORE_WRAP) return NOT_BEGUN;
  // liveOwnerId written out: a thread marked terminating (a Deno zombie) throws here, before it
  // takes anything.
  const f = fast;
  const me = f.head[C_COUNT] === f.liveSeen ? f.owner : liveOwnerIdSlowAtEntry();
  if (Atomics.compareExchange(a.i32, SEQ, seq, (me << 1) | 1) !== seq) return NOT_BEGUN;
  let i32 = a.i32;
  i32[LAST_SEQ] = seq;
  // Memory allocated past this worker's views (the general path reaches it), or a growing
  // table (a write owes an evacuation step). The journal is not looked at: this write needs
  // none, so a corrupt one (which every write that needs it reports) does not stop it.
  const table = s.table;
  if (i32[H_TOP] > a.bytes || i32[table.h + T_OLDBUCKETS] !== 0) return seq;
  let k: number;
  try {
    // The key's slot from the entry memo when it knows it at this layout stamp, which no write
    // moves while this thread holds SEQ, and the slot's mark and key words agree: the stamp is
    // what keeps the memo true, and a write, unlike a read, would do lasting harm through a slot
    // a memo named wrongly (a writer that failed to stamp), so the slot itself is checked too.
    // Else from the table, and the memo told (an overwrite moves no key, so what the walk found
    // holds at the stamp).
    const memo = s.found;
    const stamp = i32[LAYOUT];
    const stampWraps = i32[LAYOUT_WRAPS];
    const j = memo.peekAt(lo, hi, stamp, stampWraps);
    k = j >= 0 ? memo.entryAt(j) & ~HELD : -1; // 0: known absent
    if (k > 0) {
      // Every block lies within the views (H_TOP above), so a slot the memo names rightly is
      // read in bounds; one named wrongly may lie past them, where a read gives undefined.
      const mark = memo.markAt(j);
      const w = k >> 2;
      if (!(mark !== 0 && a.u8[mark] >= MIN_TOP_HASH && i32[w] === lo && i32[w + 1] === hi)) k = -1;
    }
    if (k < 0) {
      p.hash = a.memo.hash(lo, hi);
      s.hashOwed = false;
      k = table.findWords(lo, hi, p.hash);
      // A key absent now is inserted next, under a new stamp: only a slot is worth telling, as
      // a lookup tells it (findAt moves the memo to the stamp, and counts toward its warm-up),
      // over the memo's own slot for the key if the check above refused it.
      if (k >= 0) {
        memo.findAt(lo, hi, stamp, stampWraps, table);
        memo.remember(lo, hi, k, table.foundMark(k));
      }
      // Absent by a walk (never by the memo alone, which a writer that failed to stamp could
      // have left wrong: a key put in twice would be lasting harm).
      s.walkedAbsent = k < 0;
    } else if (k === 0) return seq;
    // Absent (an insert), or a blob value to free. The lookup may have grown this worker's
    // views to reach a bucket.
    if (k < 0 || isBlob(a.i32[(k >> 2) + VALUE_HI])) return seq;
  } catch {
    return seq;
  }
  i32 = a.i32;
  // The whole overwrite: one aligned 8-byte store, which a death cannot split (NaN as
  // setNumber writes it).
  a.f64[(k + VALUE_BYTES) >> 3] = value === value ? value : NaN;
  Atomics.store(i32, SEQ, (seq + 2) | 0);
  return OVERWRITTEN;
}

/**
 * SEQ of a write its live writer abandoned (owner 0, which names no thread): whoever meets it
 * recovers the write as a dead writer's (recoverWriter).
 *
 * A write ends by storing SEQ, written out where each write ends (GoMap.set, delete, clear):
 * `settled ? (seq + 2) | 0 : ABANDONED`, with no call of ours there (a stack overflow is checked
 * for as one is entered, and this store must not fail). `settled`: the write committed, or
 * rolled back, and left no clear to finish; the version after `seq` is published. Otherwise
 * (whatever threw cut the write short and its rollback too) the write is abandoned: published,
 * the map would show readers and the next writer a write half done, and held, it would shut
 * every other thread out for good.
 */
export const ABANDONED = 1;

/**
 * Whether a write whose clear (the intent CLEAR) threw `error` may be published as it stands:
 * only when the error is corrupt memory's (a RangeError whose message begins "corrupt"), which
 * no one could ever finish the clear past. The intent is dropped then, so that no later
 * recovery finishes it by surprise, and the map goes on, cleared up to that bucket. Any other
 * error (a stack overflow) leaves the write to be abandoned, and the clear is finished by
 * whoever comes next.
 */
export function clearBroken<K, V>(s: GoAccess<K, V>, error: unknown): boolean {
  if (!(error instanceof RangeError) || !error.message.startsWith("corrupt")) return false;
  s.tx.journal.setIntent(0);
  return true;
}

/**
 * The write sequence reads `seq`, odd: a writer is inside. If that writer's thread is gone
 * (census.ts), or the write was {@linkcode ABANDONED}, takes the sequence over, rolls the
 * interrupted write back from its journal (or finishes an interrupted clear), and publishes
 * the version after the one the dead writer started from. Returns the sequence word to go on
 * from: even if the map is writable now, odd if a live writer holds it. A recovery that throws
 * (a corrupt journal is a RangeError) gives the sequence back to the dead writer, so that
 * every caller after it tries the recovery again and meets the same error, instead of a
 * sequence this thread holds for good.
 */
function recoverWriter<K, V>(s: GoAccess<K, V>, seq: number): number {
  const owner = seq >>> 1;
  if (owner !== 0 && (owner === ownerId() || !ownerGone(owner))) return seq;
  const a = s.arena;
  const i32 = a.i32;
  const me = ownerId();
  const mine = (me << 1) | 1;
  if (Atomics.compareExchange(i32, SEQ, seq, mine) !== seq) return Atomics.load(i32, SEQ);
  // Readers that meet SEQ held by this thread now wait for the recovery (RECOVERING).
  Atomics.store(i32, RECOVERING, me);
  try {
    a.reach(a.buffer.byteLength);
    const journal = s.tx.journal;
    journal.recover();
    if (journal.intent === INTENT_CLEAR) finishClear(s);
  } catch (error) {
    Atomics.store(i32, RECOVERING, 0);
    Atomics.store(i32, SEQ, seq);
    throw error;
  }
  const next = (i32[LAST_SEQ] + 2) | 0;
  // The dead writer may have died before it moved WRAPS; moving it twice is harmless.
  if (next === 0) i32[WRAPS] = (i32[WRAPS] + 1) | 0;
  // Whatever the dead writer did, a new layout stamp (the rollback or the clear moved keys).
  i32[LAYOUT_WRAPS] = i32[WRAPS];
  i32[LAYOUT] = next;
  Atomics.store(i32, RECOVERING, 0);
  Atomics.store(i32, SEQ, next);
  Atomics.notify(i32, SEQ); // readers waiting for the recovery (readerBlocked)
  return next;
}

/**
 * Rolls back, or finishes, a write that SEQ shows in progress when its writer is gone or
 * abandoned it: for `size` and `stats()`, which read the table's words without validating them
 * against SEQ, so that they never report the count of a write that was never published. A
 * live writer's write is left alone: reading meanwhile is the caller's race, as in Go.
 */
export function settleDeadWrite<K, V>(s: GoAccess<K, V>): void {
  const seq = s.arena.i32[SEQ];
  if ((seq & 1) !== 0) recoverWriter(s, seq);
}

/**
 * Starts a read (`operation` names it in errors): returns the even write sequence to validate
 * the read against, once a writer that is gone has been recovered (see
 * {@linkcode readerBlocked}). GoMap.get writes it out on its number-key path.
 */
export function beginRead<K, V>(s: GoAccess<K, V>, operation: string): number {
  const seq = s.arena.i32[SEQ];
  return (seq & 1) === 0 ? seq : readerBlocked(s, seq, operation);
}

/**
 * A reader found the write sequence odd: throws ConcurrentMapWriteError, unless the writer
 * is gone, in which case the write it left is recovered and the read may start over; or
 * unless another thread is recovering it (RECOVERING names the holder), in which case the read
 * waits for that recovery to end (a recoverer that dies meanwhile is itself a gone writer).
 */
export function readerBlocked<K, V>(s: GoAccess<K, V>, seq: number, operation: string): number {
  const i32 = s.arena.i32;
  for (;;) {
    const next = recoverWriter(s, seq);
    if ((next & 1) === 0) return next;
    const holder = next >>> 1;
    // Not this thread's own recovery (nothing in one reads the map, but a wait would be for
    // ever). The recoverer stores RECOVERING just after it took SEQ: a reader that came
    // between the two looks again, a few times, before it takes the holder for a writer.
    let recovering = holder !== ownerId() && Atomics.load(i32, RECOVERING) === holder;
    for (let k = 0; !recovering && k < 64 && holder !== ownerId(); k++) {
      if (Atomics.load(i32, SEQ) !== next) break;
      recovering = Atomics.load(i32, RECOVERING) === holder;
    }
    if (!recovering) {
      seq = Atomics.load(i32, SEQ);
      if ((seq & 1) === 0) return seq; // released meanwhile
      if (seq !== next) continue; // taken by another meanwhile: look again
      throw new ConcurrentMapWriteError(operation);
    }
    // A recovery, however long (a clear of a large table), ends with a notify: the timeout only
    // bounds each sleep, for a recoverer that dies without one.
    Atomics.wait(i32, SEQ, next, 10);
    checkSelf(); // as after every wait in shmap
    seq = Atomics.load(i32, SEQ);
    if ((seq & 1) === 0) return seq;
  }
}

/**
 * Runs the remaining steps of the clear recorded in the journal's intent. Throws RangeError
 * when the intent's progress word is not a step of this clear (corrupt): a step outside the
 * bucket arrays would clear words that are not buckets.
 */
export function finishClear<K, V>(s: GoAccess<K, V>): void {
  const tx = s.tx;
  const journal = tx.journal;
  const steps = s.table.clearSteps;
  const from = journal.arg(0);
  if (!(from >= 0 && from <= steps)) {
    throw new RangeError(
      `corrupt journal at word ${journal.argWord(0)}: a clear at step ${from} of ${steps}`,
    );
  }
  // Each step is undone if it throws (a corrupt chain is a RangeError), leaving the journal
  // idle and the intent at that step: the writes after this one can begin. A thread marked
  // terminating stops before its next step (a Deno zombie clearing a large map would otherwise
  // run on past the grace, into a clear another writer has taken over); the next writer
  // finishes the clear from the intent.
  // A step frees one overflow bucket's worth at a time (table_clear.ts clearStep): the intent
  // moves on to the next bucket only with the step that empties this one.
  for (let step = from; step < steps;) {
    checkAlive();
    tx.begin();
    try {
      if (s.table.clearStep(step)) tx.set(journal.argWord(0), ++step);
      tx.commit();
    } catch (error) {
      tx.abort();
      throw error;
    }
  }
  tx.begin();
  try {
    s.table.finishClear();
    tx.set(journal.intentWord, 0); // the intent, cleared in the same transaction
    tx.commit();
  } catch (error) {
    tx.abort();
    throw error;
  }
}

/**
 * A write's table work done again, with its evacuation skipped, after its commit found the
 * journal full: `step` (the write's work since `tx.begin()`) is undone and run once more, then
 * committed. The journal has room for the work a write does itself (an insert, an overwrite, a
 * delete, an overflow bucket), but the evacuation it owes a growth under way frees a whole
 * chain at commit, and a chain of keys crafted to share a bucket can be longer than the room
 * left for those frees (the frees wait for the commit: a block freed by the mutation must not
 * be handed out again by it). Without the evacuation, an existing key is overwritten or
 * deleted where it lies and a new key of another old bucket goes in; a new key whose own old
 * bucket is that chain is refused with the MapFullError insert throws. Only this rare path
 * makes a closure.
 */
export function withoutGrowWork<K, V, T>(s: GoAccess<K, V>, step: () => T): T {
  const tx = s.tx;
  tx.abort();
  tx.begin();
  s.table.growWorkOff = true;
  try {
    const result = step();
    tx.commit();
    return result;
  } finally {
    s.table.growWorkOff = false;
  }
}

/**
 * A set refused for memory (its work undone, the transaction idle) while the table is growing:
 * the old bucket array, and the overflow chains of its buckets not yet evacuated, are memory
 * the growth gives back when it ends, and in a small map they can be what keeps the next block
 * from fitting (a growth begun when memory was free, after a clear, holds both arrays).
 * Evacuates the remaining old buckets, one transaction each, until the growth is done or a
 * step finds no room itself (that step alone is undone). Returns whether any step committed:
 * the caller's write is worth trying once more. Keys move (the caller stamps the layout anew).
 * The transaction is idle on return.
 *
 * A death between two steps leaves a growth further along, which is a table like any other; a
 * death inside one leaves its journal, which the next writer rolls back (recoverWriter). A thread
 * marked terminating stops before its next step, as a clear's steps do.
 */
export function growthForRoom<K, V>(s: GoAccess<K, V>): boolean {
  const tx = s.tx;
  const table = s.table;
  let any = false;
  while (table.growing) {
    checkAlive();
    tx.begin();
    try {
      table.evacuateNext();
      tx.commit();
      any = true;
    } catch (error) {
      tx.abort();
      if (error instanceof MapFullError || error instanceof JournalFullError) break;
      throw error;
    }
  }
  return any;
}
