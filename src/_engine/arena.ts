/**
 * Internal. The arena: one growable SharedArrayBuffer per structure, with a header that names
 * what lives in it, and typed-array views over it.
 *
 * Layout of the header (32-bit words):
 *
 * | word      | meaning                                                        |
 * | --------- | -------------------------------------------------------------- |
 * | 0         | magic number, {@linkcode MAGIC}                                |
 * | 1         | layout version, {@linkcode LAYOUT_VERSION}                     |
 * | 2         | kind of structure ({@linkcode KIND_GO_MAP}, ...)               |
 * | 3         | maxBytes: the buffer never grows past it                       |
 * | 4         | allocator lock (a mutex word, futex.ts; SyncMap only)          |
 * | 5         | heap top: the end of the last heap chunk (allocator.ts)        |
 * | 6         | bytes in use: handed out and not yet freed                     |
 * | 7         | hash key, low word (secret, random per arena; see hash.ts)     |
 * | 8..24     | key codec name (length word, then up to 32 UTF-16 units)       |
 * | 25..41    | value codec name                                               |
 * | 42..233   | allocator state (allocator.ts: span lists, heap bins)          |
 * | 234       | hash key, high word                                            |
 * | 235       | alias probe: a random word, written to tell whether two views  |
 * |           | are of one memory ({@linkcode sameMemory})                     |
 * | 236..255  | unused                                                         |
 * | 256..319  | root: the structure's own header (a table, sync.Map fields)    |
 * | 320..1351 | the allocator's journal (journal.ts), for locking arenas       |
 *
 * Every word's writers, readers and protection are tabulated in docs/design.md.
 *
 * The views are fixed-length, not length-tracking: on V8 a length-tracking view over a growable
 * buffer makes every element access several times slower, while a fixed-length view over the
 * same buffer is as fast as one over a plain SharedArrayBuffer. The buffer grows in place, so a
 * view made before a growth still shows the same bytes; it merely ends early. Any offset read
 * from shared memory is therefore checked against {@linkcode Arena.bytes} before it is used,
 * and {@linkcode Arena.reach} remakes the views when another worker has grown the buffer.
 *
 * @module
 */

import { HashMemo } from "./hash_memo.ts";
import { checkNumber, describe, withArticle } from "../_describe.ts";
import * as errors from "../errors.ts";
import { Journal, journalWords } from "./journal.ts";
import { memoryMappings } from "./os_thread.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { MAX_MAP_BYTES } = errors;

/** "SMAP" read as a little-endian 32-bit word. */
const MAGIC = 0x50414d53;
/** Bumped whenever the shared layout changes incompatibly. */
const LAYOUT_VERSION = 11;

/** Kind word for a GoMap arena. */
export const KIND_GO_MAP = 1;
/** Kind word for a SyncMap arena. */
export const KIND_SYNC_MAP = 2;

// The header's words, as the table above lays them out; H_ALLOC is the first word of the
// allocator's state (allocator.ts).
const H_MAGIC = 0;
export const H_VERSION = 1, H_KIND = 2, H_MAX_BYTES = 3, H_ALLOC_LOCK = 4, H_TOP = 5;
export const H_BYTES_USED = 6, H_SEED0 = 7;
const H_KEY_CODEC = 8, H_VALUE_CODEC = 25;
export const H_ALLOC = 42, H_SEED1 = 234;
const H_ALIAS = 235;
/** UTF-16 units a codec name may have. */
const CODEC_NAME_UNITS = 32;
/** First word of the structure's root area. */
export const H_ROOT = 256;
/** Words available in the root area. */
const ROOT_WORDS = 64;
/** First word of the allocator's journal. */
export const H_ALLOC_JOURNAL = H_ROOT + ROOT_WORDS;
/** Entries in the allocator's journal. */
export const ALLOC_JOURNAL_ENTRIES = 512;
/** Bytes of header; the allocator's heap starts after it. */
export const HEADER_BYTES = roundUp(
  (H_ALLOC_JOURNAL + journalWords(ALLOC_JOURNAL_ENTRIES)) * 4,
  64,
);

/**
 * The largest maxBytes accepted: offsets stay positive 32-bit integers with room to spare
 * (MapFullError's message says so of a map this large).
 */
const MAX_BYTES_LIMIT = MAX_MAP_BYTES;
/** The default maxBytes: generous, since a growable buffer only reserves address space. */
const DEFAULT_MAX_BYTES = 2 ** 30;

/**
 * The memory mappings (Linux's vm.max_map_count, 65,530 by default) left to the runtime when a
 * growable map is refused: its heap grows by mappings too, and one it cannot make ends the
 * process (V8 "Fatal JavaScript out of memory", Bun "mprotect failed").
 */
const MAPPINGS_RESERVE = 4096;
/** Growable arenas this thread may make before it counts the process's mappings again. */
let untilMappingsCheck = 0;
/** The mappings counted after this thread's last {@linkcode collectRefused}; 0 before. */
let mappingsAfterCollect = 0;

/**
 * Has the engine collect its garbage, as it does before it gives up on a reservation: a growable
 * SharedArrayBuffer of 4 PiB, which no 64-bit process can map, is refused, and V8 refuses it only
 * after full collections under critical memory pressure (about 50 ms with 20,000 dead maps
 * waiting: their mappings went from 9,209 to 116 on Node and Deno). V8 does not count a
 * SharedArrayBuffer's memory against its heap, so the maps a loop drops or closes wait for a
 * collection the rest of the program's garbage brings about: 100,000 made and dropped in one
 * loop on Node peaked at 59,482 mappings, near the limit. JavaScriptCore counts them (Bun's peak:
 * 1,092), and refuses at once.
 */
function collectRefused(): void {
  try {
    new SharedArrayBuffer(0, { maxByteLength: 2 ** 52 });
  } catch {
    // Refused, as meant.
  }
}

/** Test-only: counts the mappings again at the next growable arena. */
export function recheckMappingsForTests(): void {
  untilMappingsCheck = 0;
  mappingsAfterCollect = 0;
}

/**
 * Throws a RangeError when the process is near its limit of memory mappings, before a growable
 * arena takes two more (its reserved range, split where it is committed): past the limit the
 * runtime ends the process wherever its next mapping fails, with no error to catch (about
 * 30,000 maps alive with the default maxBytes; a 64 KiB map does not grow, and takes none).
 * Counted every so many arenas, more often as the limit nears: at most 1,024 arenas apart (a
 * count reads all of /proc/self/maps). Dead maps' mappings are collected first
 * ({@linkcode collectRefused}). Where they cannot be counted (not Linux, Deno without
 * read permission for /proc), nothing is checked.
 */
function checkMappings(): void {
  if (--untilMappingsCheck > 0) return;
  let mappings = memoryMappings();
  if (mappings === undefined) {
    untilMappingsCheck = Infinity;
    return;
  }
  const budget = mappings.max - MAPPINGS_RESERVE;
  // Past half of what was left after the last collection, dead maps are collected first: a
  // handful of collections (each halves what is left) before live maps meet the limit.
  if (mappings.used >= mappingsAfterCollect + (budget - mappingsAfterCollect) / 2) {
    collectRefused();
    mappings = memoryMappings() ?? mappings;
    mappingsAfterCollect = mappings.used;
  }
  const left = budget - mappings.used;
  // A map takes two: a count every left / 8 maps leaves half the margin to other threads.
  untilMappingsCheck = Math.max(1, Math.min(1024, Math.floor(left / 8)));
  if (left < 2) {
    throw new RangeError(
      `cannot make another map: the process uses ${mappings.used} of its ${mappings.max} ` +
        `memory mappings (vm.max_map_count), and a map whose maxBytes exceeds 65536 takes two; ` +
        `close maps (a closed map's are freed by the next garbage collection), make them with ` +
        `maxBytes 65536, or raise vm.max_map_count`,
    );
  }
}

const INITIAL_BYTES = 64 * 1024;

const KIND_NAMES: Record<number, string> = { [KIND_GO_MAP]: "GoMap", [KIND_SYNC_MAP]: "SyncMap" };

/** A growable shared buffer with a validated header and fixed-length views over it. */
export class Arena {
  /** The shared buffer; every worker attached to the structure holds the same one. */
  readonly buffer: SharedArrayBuffer;
  /** Whether allocation takes the allocator lock (false when the owner serializes writers). */
  readonly locking: boolean;
  /** Views over bytes [0, bytes). Remade by {@linkcode reach} when the buffer has grown. */
  i32: Int32Array;
  u8: Uint8Array;
  u16: Uint16Array;
  f64: Float64Array;
  /** Length of the current views in bytes. */
  bytes: number;
  /** Copy of header word 3, immutable after creation. */
  readonly maxBytes: number;
  /** Copies of the hash key's two words, immutable after creation. */
  readonly seed0: number;
  readonly seed1: number;
  /** This thread's memo of number keys' hashes under that key (hash_memo.ts). */
  readonly memo: HashMemo;

  private constructor(buffer: SharedArrayBuffer, locking: boolean) {
    this.buffer = buffer;
    this.locking = locking;
    this.bytes = buffer.byteLength;
    this.i32 = new Int32Array(buffer, 0, this.bytes >> 2);
    this.u8 = new Uint8Array(buffer, 0, this.bytes);
    this.u16 = new Uint16Array(buffer, 0, this.bytes >> 1);
    this.f64 = new Float64Array(buffer, 0, this.bytes >> 3);
    this.maxBytes = this.i32[H_MAX_BYTES];
    this.seed0 = this.i32[H_SEED0];
    this.seed1 = this.i32[H_SEED1];
    this.memo = new HashMemo(this.seed0, this.seed1);
  }

  /** Makes a new arena for a structure of `kind`, recording the codec names in the header. */
  static create(
    kind: number,
    maxBytes: number,
    initialBytes: number,
    keyCodec: string,
    valueCodec: string,
    locking: boolean,
  ): Arena {
    const initial = Math.min(
      maxBytes,
      Math.max(INITIAL_BYTES, roundUp(HEADER_BYTES + initialBytes, 4096)),
    );
    if (initial < HEADER_BYTES + 4096) {
      throw new RangeError(`maxBytes must be at least ${HEADER_BYTES + 4096}, got ${maxBytes}`);
    }
    if (initial < maxBytes) checkMappings();
    const buffer = new SharedArrayBuffer(initial, { maxByteLength: maxBytes });
    const i32 = new Int32Array(buffer, 0, HEADER_BYTES >> 2);
    i32[H_VERSION] = LAYOUT_VERSION;
    i32[H_KIND] = kind;
    i32[H_MAX_BYTES] = maxBytes;
    i32[H_TOP] = HEADER_BYTES;
    Journal.format(i32, H_ALLOC_JOURNAL, ALLOC_JOURNAL_ENTRIES);
    i32[H_SEED0] = randomWord();
    i32[H_SEED1] = randomWord();
    writeName(i32, H_KEY_CODEC, keyCodec);
    writeName(i32, H_VALUE_CODEC, valueCodec);
    // The magic goes last: a header with the magic is a complete header.
    Atomics.store(i32, H_MAGIC, MAGIC);
    return new Arena(buffer, locking);
  }

  /**
   * Attaches to an arena made elsewhere, checking that `buffer` really holds a structure of
   * `kind`. Throws a TypeError naming what is wrong otherwise.
   */
  static attach(buffer: unknown, kind: number, locking: boolean, what: string): Arena {
    if (!(buffer instanceof SharedArrayBuffer)) {
      throw new TypeError(
        `${what}: the handle's buffer is not a SharedArrayBuffer, got ${describe(buffer)}`,
      );
    }
    if (!buffer.growable || buffer.byteLength < HEADER_BYTES) {
      throw new TypeError(`${what}: the handle's buffer is not a shmap arena`);
    }
    const i32 = new Int32Array(buffer, 0, H_ROOT);
    if (Atomics.load(i32, H_MAGIC) !== MAGIC) {
      throw new TypeError(`${what}: the handle's buffer is not a shmap arena (bad magic number)`);
    }
    if (i32[H_VERSION] !== LAYOUT_VERSION) {
      throw new TypeError(
        `${what}: the arena has layout version ${i32[H_VERSION]}, this library reads ` +
          `version ${LAYOUT_VERSION}`,
      );
    }
    if (i32[H_KIND] !== kind) {
      const name = KIND_NAMES[i32[H_KIND]];
      const found = name !== undefined ? withArticle(name) : `an unknown kind ${i32[H_KIND]}`;
      throw new TypeError(
        `${what}: the handle is for ${found}, not ${withArticle(KIND_NAMES[kind])}`,
      );
    }
    const max = i32[H_MAX_BYTES];
    const top = i32[H_TOP];
    if (
      max !== buffer.maxByteLength || top < HEADER_BYTES || top > buffer.byteLength ||
      (top & 15) !== 0
    ) {
      throw new TypeError(`${what}: the arena header is corrupt`);
    }
    return new Arena(buffer, locking);
  }

  /** The codec names recorded when the arena was made. */
  get keyCodecName(): string {
    return readName(this.i32, H_KEY_CODEC);
  }

  /** See {@linkcode keyCodecName}. */
  get valueCodecName(): string {
    return readName(this.i32, H_VALUE_CODEC);
  }

  /**
   * Ensures the views cover byte `end` (exclusive). Offsets come from shared memory, written by
   * whichever worker allocated them, possibly after growing the buffer; this worker's views may
   * predate that growth. Throws RangeError when `end` lies beyond the buffer, which only a
   * corrupt offset (or a racing misuse, caught by the caller) can cause.
   */
  reach(end: number): void {
    if (end <= this.bytes) return;
    const length = this.buffer.byteLength;
    if (end > length) throw new RangeError(`corrupt offset ${end} past the arena end ${length}`);
    this.#remakeViews(length);
  }

  /**
   * Ensures the views cover every block in use, all of which lie below the heap's top (header
   * word H_TOP), for a caller that has just taken a lock ordered after the allocations it will
   * follow: the allocator lock itself, or a structure's lock whose earlier holders allocated
   * what it references. The top those allocations raised is then visible to a plain read, and
   * the buffer's length (a call into the runtime for a growable buffer) is read only when the
   * top lies past the views.
   */
  reachTop(): void {
    if (this.i32[H_TOP] > this.bytes) this.reach(this.buffer.byteLength);
  }

  /**
   * Grows the buffer to hold at least `end` bytes. The caller holds the allocator lock, or has
   * exclusive access to the arena. Returns false when maxBytes forbids it.
   */
  grow(end: number): boolean {
    let length = this.buffer.byteLength;
    if (end > length) {
      if (end > this.maxBytes) return false;
      const doubled = Math.min(this.maxBytes, Math.max(length * 2, roundUp(end, 4096)));
      this.buffer.grow(doubled);
      length = doubled;
    }
    if (length > this.bytes) this.#remakeViews(length);
    return true;
  }

  /**
   * Makes the views cover `length` bytes. `bytes` is set last: every check of an offset against
   * the views (reach, inViews, a journal's checks) trusts it, and a remake cut short (a stack
   * overflow can throw from each constructor) must leave it at what every view still covers, so
   * that the next reach makes them again. Were it set first, a view left short under a larger
   * `bytes` would stay short for good: a journal entry past it would read as corrupt, and the
   * lock's recovery would refuse every later write.
   */
  #remakeViews(length: number): void {
    this.i32 = new Int32Array(this.buffer, 0, length >> 2);
    this.u8 = new Uint8Array(this.buffer, 0, length);
    this.u16 = new Uint16Array(this.buffer, 0, length >> 1);
    this.f64 = new Float64Array(this.buffer, 0, length >> 3);
    this.bytes = length;
  }
}

/** Checks a user's maxBytes option and returns the value to use. */
export function checkMaxBytes(maxBytes: number | undefined): number {
  if (maxBytes === undefined) return DEFAULT_MAX_BYTES;
  checkNumber(maxBytes, "maxBytes");
  if (!Number.isInteger(maxBytes)) {
    throw new RangeError(`maxBytes must be an integer, got ${maxBytes}`);
  }
  if (maxBytes < 64 * 1024 || maxBytes > MAX_BYTES_LIMIT) {
    throw new RangeError(`maxBytes must be between 65536 and ${MAX_BYTES_LIMIT}, got ${maxBytes}`);
  }
  return maxBytes;
}

/**
 * Whether `bytes` at byte `at` lie where a block of the heap can: 16-byte aligned (as every
 * block is), above the arena's header, inside this thread's views. A check made before an
 * offset read from shared memory is followed.
 */
export function inViews(arena: Arena, at: number, bytes: number): boolean {
  return at >= HEADER_BYTES && at % 16 === 0 && at + bytes <= arena.bytes;
}

/** Rounds `n` up to a multiple of the power of two `to`. */
export function roundUp(n: number, to: number): number {
  // Arithmetic on doubles, not `& -to`: sizes may pass 2^31 before they are rejected.
  return Math.ceil(n / to) * to;
}

function randomWord(): number {
  const word = new Uint32Array(1);
  crypto.getRandomValues(word);
  return word[0] | 0;
}

function writeName(i32: Int32Array, at: number, name: string): void {
  if (name.length > CODEC_NAME_UNITS) {
    throw new TypeError(`codec name "${name}" is longer than ${CODEC_NAME_UNITS} characters`);
  }
  i32[at] = name.length;
  for (let i = 0; i < name.length; i += 2) {
    i32[at + 1 + (i >> 1)] = name.charCodeAt(i) | (name.charCodeAt(i + 1) || 0) << 16;
  }
}

function readName(i32: Int32Array, at: number): string {
  const length = Math.min(i32[at] >>> 0, CODEC_NAME_UNITS);
  let name = "";
  for (let i = 0; i < length; i++) {
    const word = i32[at + 1 + (i >> 1)];
    name += String.fromCharCode(i & 1 ? word >>> 16 : word & 0xffff);
  }
  return name;
}

/**
 * Whether arenas `a` and `b` view one memory: a random word is stored through `a`'s view and
 * read back through `b`'s; it must come back twice. A buffer copied from another holds its
 * bytes, seeds and claim words included, but not its memory. When `b` does not show the word,
 * `a` is read again: if it still holds it, the memories differ; if not, another thread probed
 * meanwhile, and the probe is made again (a bounded number of times, after which the answer
 * is false: a new seat, never a wrong map).
 */
export function sameMemory(a: Arena, b: Arena): boolean {
  let matched = 0;
  for (let tries = 0; tries < 64 && matched < 2; tries++) {
    const r = (Math.random() * 2 ** 32) | 0;
    Atomics.store(a.i32, H_ALIAS, r);
    if (Atomics.load(b.i32, H_ALIAS) === r) matched++;
    else if (Atomics.load(a.i32, H_ALIAS) === r) return false;
  }
  return matched >= 2;
}
