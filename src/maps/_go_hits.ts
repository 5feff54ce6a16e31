/**
 * Internal. A GoMap handle's lookup copy: the answers its `get` and `getOk` calls found
 * for number and string keys, in a native `Map` in this thread's own memory, for one version of
 * the map.
 *
 * Every write moves the write sequence, and the pair (SEQ, WRAPS) never comes again
 * (_go_layout.ts). So what a validated lookup found at version (SEQ, WRAPS), a value or the key's
 * absence, is what the map holds for as long as SEQ and WRAPS still read that version: a lookup
 * that reads them and finds the copy's version answers from the copy, with one native `Map.get`,
 * no hash of ours, no walk and no atomic operation. The copy was validated as it was made. (A
 * thread that waits for another's write must synchronize with it, as Go's rules require of every
 * GoMap reader; _go_read.ts lookupNumber says the same of the entry memo.)
 *
 * A native `Map` compares keys by SameValueZero, as a GoMap does. Kept only for:
 * - number keys under a codec that stores them as float64 (auto, float64), and string keys under
 *   auto or string: every such key encodes, so a key the copy holds is one the map's codec took,
 *   and a key it lacks goes the usual way (to be refused there, if it must);
 * - values that decode to primitives other than undefined (undefined is `Map.get`'s "not held"):
 *   an object, an array or a `Uint8Array` is a fresh copy for each caller, which may change it;
 * - built-in value codecs: a user codec's decode runs user code and may return anything;
 * - at most {@linkcode MAX_HELD} keys, found or absent, string keys of at most 256 units, and
 *   `MAX_UNITS` string units in all, as the batch copy (a string counts its length, anything
 *   else 4): a lookup past a limit goes the usual way. (On JavaScriptCore a key sliced from a
 *   longer string keeps that string alive while the copy holds it, as the key hash cache does.)
 *
 * Filled once a number of lookups (the warmup, 32 to 8,192, learnt from what past copies paid)
 * have been validated at one version, so that a map written between lookups does not pay for a
 * copy it would not use; dropped, without a clear, when a lookup is validated at another
 * version, and when it has taken {@linkcode MAX_ABSENT} absent keys without having paid for the
 * keys it holds: lookups of keys that are each new (ids checked once against a map that lacks
 * them) would otherwise fill it with keys never asked again, each fill a native `Map.set`, and
 * then make every lookup pay a `Map.get` that misses in a large `Map` (a miss of a new key cost a
 * `get` 1.8x to 1.9x the same lookup with no copy on Deno, 1.1x to 1.3x on Bun). A copy so
 * dropped takes no absent key again until the map is written.
 *
 * @module
 */

import { unitsOf } from "./_iteration_keys.ts";
import * as iteration_keys from "./_iteration_keys.ts";
import * as go_layout from "./_go_layout.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { MAX_UNITS } = iteration_keys;
const { SEQ, WRAPS } = go_layout;

/** What the copy holds for a key known absent at its version. */
export const NOT_HELD: unique symbol = Symbol("not held");

/**
 * Lookups validated at one version before the copy takes their answers: the first warmup and
 * the least, then the most (see GoHits's warmup).
 */
export const MIN_WARMUP = 32;
export const MAX_WARMUP = 8192;

/** The most keys the copy holds: past it, lookups of other keys go the usual way. */
export const MAX_HELD = 16384;

/**
 * The most keys the copy holds as absent ({@linkcode NOT_HELD}); the offer of one more judges the
 * copy, and drops it unless it has paid (see {@linkcode GoHits.offer}).
 */
export const MAX_ABSENT = 1024;

/** The longest string key the copy holds, in UTF-16 units (as the key hash cache's). */
const MAX_KEY_UNITS = 256;

/**
 * A native `Map` whose `get`, `set` and `size` are `Map.prototype`'s as this module loaded: user
 * code that replaces them later (a patched built-in) must not run inside `offer`, where it could
 * write the map and look keys up again between the version named and the key put in.
 */
class Held extends Map<unknown, unknown> {}
const mapPrototype = Map.prototype;
Object.defineProperties(Held.prototype, {
  get: { value: mapPrototype.get },
  set: { value: mapPrototype.set },
  size: { get: Object.getOwnPropertyDescriptor(mapPrototype, "size")!.get },
});

/** Whether the copies made from now on fill: see {@linkcode setLookupCopies}. */
let filling = true;

/**
 * Internal, for tests of what lies behind the copy (the entry memo, its faults): switches the
 * filling of copies made from now on off (`false`) or on again. A copy made while off never
 * fills, so each lookup of its handle goes the usual way.
 */
export function setLookupCopies(on: boolean): void {
  filling = on;
}

/** See the module doc. */
export class GoHits {
  /**
   * The version (SEQ, WRAPS) of {@linkcode held}, once it fills. Plain fields, read on every
   * lookup. `seq` is 1 until the copy fills, and again from each new version: no idle SEQ is
   * odd, so a lookup then pays no `Map.get` for nothing; and whenever `seq` is 1 the copy is
   * empty, so that a lookup that reads SEQ 1 (a write abandoned) is not answered from it.
   */
  seq = 1;
  wraps = 0;
  /** Keys to what the map held for them at the version: a value, or {@linkcode NOT_HELD}. */
  held: Held = new Held();
  /** String units the copy's keys and values count (_iteration_keys.ts unitsOf). */
  #units = 0;
  /** Keys the copy holds as absent. */
  #absent = 0;
  /**
   * The copy takes no absent key until the next version: set when one was dropped for holding
   * {@linkcode MAX_ABSENT} absent keys it had not paid for. Without it, a map nobody writes,
   * asked keys that are each new to it, filled a copy with absent keys and dropped it once every
   * warmup (MAX_WARMUP lookups, then MAX_ABSENT fills): a lookup took 1.3x what it takes with no
   * copy on Deno. A write (a new version) clears it: the copy's judgment starts again.
   */
  #absentOff = false;
  /**
   * Lookups the copy answered at the version (the caller counts them, `(answered + 1) | 0`: see
   * hash_memo.ts `#hits`). Past 2^31 it wraps, and the copy is judged not to have paid once.
   */
  answered = 0;
  /**
   * The SEQ of the version the last validated lookup was at, filled or not, and how many
   * lookups at it are still to be validated before the copy fills. Plain fields that a lookup
   * reads and counts down itself, so that one in the warmup makes no call.
   */
  noted = 1;
  countdown = 0;
  /** The WRAPS of the noted version. */
  #wraps = 0;
  /**
   * Lookups validated at a version before the copy fills. A copy pays when it answers more
   * lookups than it took keys: each fill costs a native `Map.set` and is lost at the next
   * write. A map written every hundred lookups over a thousand keys would fill the copy and
   * drop it unused, at three times the cost of a lookup; so a copy that did not pay for itself
   * makes the next wait four times as long, and one that did halves it.
   */
  #warmup = filling ? MIN_WARMUP : Infinity;

  /**
   * The copy's answer for `key` when the map is at its version (SEQ read as `seq`, WRAPS in
   * `i32`): a value, or {@linkcode NOT_HELD} for a key absent then; undefined when the copy
   * cannot answer (another version, or a key it does not hold).
   */
  answer(i32: Int32Array, seq: number, key: unknown): unknown {
    if (this.seq !== seq || this.wraps !== i32[WRAPS]) return undefined;
    const held = this.held.get(key);
    if (held !== undefined) this.answered = (this.answered + 1) | 0;
    return held;
  }

  /**
   * Takes the answer of a lookup of `key` made at SEQ `seq` of the map whose header words are
   * `i32`: `value`, or {@linkcode NOT_HELD} for an absent key. The caller checked the key's kind
   * and the codecs, and read `seq` before the lookup, which was validated at it. An odd `seq`
   * (a writer was in) names no version. WRAPS is read after the validated SEQ, so SEQ is read
   * once more: a write that began since (its compare-exchange of SEQ comes before it moves
   * WRAPS) would stamp the answer with another version's WRAPS.
   */
  offer(i32: Int32Array, seq: number, key: unknown, value: unknown): void {
    if ((seq & 1) !== 0) return;
    const wraps = i32[WRAPS];
    if (i32[SEQ] !== seq) return;
    if (seq !== this.noted || wraps !== this.#wraps) {
      this.#newVersion(seq, wraps);
      return;
    }
    if (this.countdown > 0) {
      this.countdown--;
      return;
    }
    // After the countdown, which counts every lookup as getNumber's inline one does.
    if (value === NOT_HELD && this.#absentOff) return;
    const held = this.held;
    if (held.size >= MAX_HELD || value === undefined) return;
    if (value === NOT_HELD && this.#absent >= MAX_ABSENT) {
      // Absent keys enough: a copy that has not paid for what it holds is dropped (the judgment
      // of a new version, which makes the next wait longer), and takes no absent key again at
      // this version; one that has paid keeps what it holds.
      if (this.answered < 2 * held.size) {
        this.#newVersion(seq, wraps);
        this.#absentOff = true;
      }
      return;
    }
    const keyUnits = unitsOf(key);
    const units = unitsOf(value);
    if (units < 0 || keyUnits > MAX_KEY_UNITS) return;
    if (this.#units + units + keyUnits > MAX_UNITS) return; // refused: others may still fit
    this.#units += units + keyUnits;
    if (value === NOT_HELD) this.#absent++;
    // The copy is of this version from now. Named before the first key goes in: until then it
    // is empty, so a call cut short between the two writes (a stack overflow) names no version
    // with keys of another; and an empty copy answers nothing, even with SEQ reading 1 (a write
    // abandoned), which the version before the first fill is.
    this.seq = seq;
    this.wraps = wraps;
    held.set(key, value);
  }

  /** Notes version (`seq`, `wraps`), dropping the copy of the last, and judges what it paid. */
  #newVersion(seq: number, wraps: number): void {
    const size = this.held.size;
    if (size !== 0) {
      // Compared here, not through Math.max and Math.min, which user code may have replaced.
      const warmup = this.answered >= 2 * size ? this.#warmup / 2 : this.#warmup * 4;
      this.#warmup = warmup < MIN_WARMUP ? MIN_WARMUP : warmup > MAX_WARMUP ? MAX_WARMUP : warmup;
      this.held = new Held(); // the old one is collected whole
    }
    this.seq = 1;
    this.answered = 0;
    this.#units = 0;
    this.#absent = 0;
    this.#absentOff = false;
    this.noted = seq;
    this.#wraps = wraps;
    this.countdown = this.#warmup;
  }

  /** Forgets the copy (clear(): its keys are gone, so let it be collected now). */
  drop(): void {
    this.#newVersion(1, 0);
  }
}
