// Copyright the shmap authors. MIT license.
//
// Model-based property tests for a GoMap that keeps running out of memory: a small maxBytes
// (64 to 256 KiB), keys from a pool of hundreds to thousands (small ints, short strings, long
// strings whose key blobs take kilobytes) plus fresh keys by the hundred, values from numbers
// and a few bytes to several kilobytes, and random sequences of every operation, compared with
// a native Map at every step.
//
// GoMap.set throws MapFullError when maxBytes is reached, and the table's rule
// (src/_engine/table.ts) is that the failed write leaves it as it was, or one complete
// evacuation further, which changes no contents. So a set that throws MapFullError is a set that
// did nothing: the key's value is the model's, the size is the model's, the contents are the
// model's (in full for the first failures of a run and every few after that), and verify()
// passes, which finds a block handed out and reachable from nowhere. No other error is allowed.
// Reads, deletes and clear() must never throw (Table.remove: "Never throws MapFullError"), nor
// may an existing key's overwrite with a number, which allocates nothing (table.ts insert: "an
// overwrite needs no memory"). Iterations interleave writes (deletes of keys visited and not
// yet visited, overwrites, new keys by the hundred, growths, clear()) between next() calls and
// inside forEach's callback, and are checked by Go's rule (GoMap's JSDoc): every key present at
// the start and not deleted since is yielded exactly once, no key twice, each with its value at
// the time it is yielded.
//
// A GoMap keeps its bucket array through deletes and clear(), as Go's does: "empty" is the
// figure of a fresh map with as many buckets (made with a hint of 6.5 keys a bucket), measured
// by stats().bytesUsed (exactly 144 bytes a bucket). Every clear() of a sequence, and the end of
// a run (after, in half the runs, a delete of every key), must bring bytesUsed back to exactly
// that figure for the map's B, with no overflow bucket and no growth under way: a block leaked
// by a failed write stays.
//
// The sequences fill the map with new keys of small values, so that the table is due to grow
// when memory runs out: a growth whose array cannot be had is skipped, and the keys go on into
// overflow buckets. They crowd the table that way (chains past the load factor) and then give
// memory back a little at a time, so that a growth's array fits with little to spare and the
// evacuations of long chains need overflow buckets that do not: the growth is undone (its
// first evacuation failed), or the evacuation alone (one a later write owes). Writes are also
// made "starved", while the allocator's test hook refuses overflow buckets (or everything), as
// an arena full to the last byte would, mostly in a growing table. The same hook, refusing
// nothing the rest of the time, watches what each write allocates, which tells a growth undone
// from one never begun. A second test checks that the runs reached those paths: new keys
// refused while a growth was under way and while one was due, overwrites refused, sets refused
// in the middle of an iteration, iterations that overlapped a growth, growths undone, and
// evacuations undone.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { poolKey } from "./fixtures/full_map_keys.ts";
import { GoMap, type GoMapStats, MapFullError } from "../mod.ts";
import { failAllocationsForTests } from "../src/_engine/allocator.ts";
import { H_BYTES_USED } from "../src/_engine/arena.ts";
import { BUCKET_BYTES } from "./fixtures/go_map_helpers.ts";

const KiB = 1024;

type Key = number | string;
type Value = number | string;

// ---------------------------------------------------------------------------------------------
// Keys and values

/** Key `i` of the pool (small ints, short and long strings). */
const keyOf = poolKey;

/**
 * Fresh key `n`, in none of the pools, of kind `kind`: a number (with a number value, set's
 * path for two numbers), a short string, or a string of 40 to 2,000 characters.
 */
function freshKey(n: number, kind: number): Key {
  switch (kind) {
    case 0:
      return 1_000_000 + n;
    case 1:
      return `f${n}`;
    default:
      return `${n}#`.padEnd(40 + ((n * 53) % 1960), "N");
  }
}

/** A value: length 0 is a number (inline); else a tagged string padded to `len` characters. */
interface ValueSpec {
  len: number;
  tag: number;
}
const valueOf = (v: ValueSpec): Value =>
  v.len === 0 ? v.tag + 0.5 : `${v.tag}:`.padEnd(v.len, "abcdefgh"[v.tag & 7]);

const valueArb: fc.Arbitrary<ValueSpec> = fc.record({
  len: fc.oneof(
    { weight: 2, arbitrary: fc.constant(0) },
    { weight: 3, arbitrary: fc.integer({ min: 1, max: 32 }) },
    { weight: 3, arbitrary: fc.integer({ min: 33, max: 600 }) },
    { weight: 2, arbitrary: fc.integer({ min: 601, max: 8000 }) },
  ),
  tag: fc.nat(5),
});

/** Values of new keys by the hundred: mostly small, so that the table grows before it fills. */
const fillValueArb: fc.Arbitrary<ValueSpec> = fc.record({
  len: fc.oneof(
    { weight: 3, arbitrary: fc.constant(0) },
    { weight: 2, arbitrary: fc.integer({ min: 1, max: 24 }) },
    { weight: 1, arbitrary: fc.integer({ min: 25, max: 2000 }) },
  ),
  tag: fc.nat(5),
});

/** A write to an existing key (a number or a short string), a new number key, or a delete. */
interface StarvedWrite {
  w: "number" | "string" | "new" | "delete";
  pick: number;
  len: number;
}

type Action =
  | { a: "deleteVisited" | "deleteUnvisited"; at: number; pick: number }
  | { a: "overwrite"; at: number; pick: number; value: ValueSpec }
  | { a: "set"; at: number; key: number; value: ValueSpec }
  | { a: "fill"; at: number; n: number; kind: number; value: ValueSpec }
  | { a: "growThenAdd"; at: number; len: number; value: ValueSpec }
  | {
    a: "crowdThenGrow";
    at: number;
    ballast: number;
    rounds: number;
    per: number;
    starve: boolean;
  }
  | { a: "starved"; at: number; all: boolean; grow: boolean; writes: StarvedWrite[] }
  | { a: "clear"; at: number };

type Cmd =
  | { op: "get" | "has" | "getOk" | "delete"; key: number }
  | { op: "set"; key: number; value: ValueSpec }
  | { op: "overwrite"; pick: number; value: ValueSpec }
  | { op: "fill"; n: number; kind: number; value: ValueSpec }
  | { op: "growThenAdd"; len: number; value: ValueSpec }
  | { op: "crowdThenGrow"; ballast: number; rounds: number; per: number; starve: boolean }
  | { op: "starved"; all: boolean; grow: boolean; writes: StarvedWrite[] }
  | { op: "iterate"; how: number }
  | { op: "iterateMutating"; how: number; actions: Action[] }
  | { op: "clear" };

const fillArb = {
  n: fc.integer({ min: 1, max: 400 }),
  kind: fc.oneof(fc.constant(0), fc.constant(0), fc.constant(1), fc.constant(2)),
  value: fillValueArb,
};

/** growThenAdd's new keys: short, or key blobs of up to 4,000 characters. */
const growThenAddArb = {
  len: fc.oneof(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 41, max: 4000 })),
  value: valueArb,
};

/** starved's writes, and whether a growth is begun first. */
const starvedArb = {
  all: fc.boolean(),
  grow: fc.oneof(fc.constant(true), fc.constant(true), fc.constant(false)),
  writes: fc.array(
    fc.record({
      w: fc.constantFrom("number" as const, "string" as const, "new" as const, "delete" as const),
      pick: fc.nat(),
      len: fc.integer({ min: 1, max: 200 }),
    }),
    { minLength: 1, maxLength: 16 },
  ),
};

/**
 * crowdThenGrow's ballast values (a fraction of maxBytes each, 1/16 to 1/40: 48 of them fill
 * the map), rounds of crowding, and new keys after each release.
 */
const crowdArb = {
  ballast: fc.integer({ min: 16, max: 40 }),
  rounds: fc.integer({ min: 1, max: 3 }),
  per: fc.integer({ min: 1, max: 24 }),
  starve: fc.boolean(),
};

function actionArb(key: fc.Arbitrary<number>): fc.Arbitrary<Action> {
  const at = fc.nat(40);
  return fc.oneof(
    {
      weight: 2,
      arbitrary: fc.record({
        a: fc.constantFrom("deleteVisited" as const, "deleteUnvisited" as const),
        at,
        pick: fc.nat(),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        a: fc.constant("overwrite" as const),
        at,
        pick: fc.nat(),
        value: valueArb,
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ a: fc.constant("set" as const), at, key, value: valueArb }),
    },
    { weight: 2, arbitrary: fc.record({ a: fc.constant("fill" as const), at, ...fillArb }) },
    {
      weight: 1,
      arbitrary: fc.record({ a: fc.constant("growThenAdd" as const), at, ...growThenAddArb }),
    },
    {
      weight: 1,
      arbitrary: fc.record({ a: fc.constant("crowdThenGrow" as const), at, ...crowdArb }),
    },
    { weight: 1, arbitrary: fc.record({ a: fc.constant("starved" as const), at, ...starvedArb }) },
    { weight: 1, arbitrary: fc.record({ a: fc.constant("clear" as const), at }) },
  );
}

/** Commands over a pool of `poolSize` keys; indices favour the pool's first 64 keys. */
function cmdArb(poolSize: number): fc.Arbitrary<Cmd> {
  const key = fc.oneof(fc.nat(poolSize - 1), fc.nat(Math.min(poolSize, 64) - 1));
  return fc.oneof(
    { weight: 10, arbitrary: fc.record({ op: fc.constant("set" as const), key, value: valueArb }) },
    // An existing key, with a value of another size class (or the same).
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant("overwrite" as const),
        pick: fc.nat(),
        value: valueArb,
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constantFrom("get" as const, "has" as const, "getOk" as const),
        key,
      }),
    },
    { weight: 3, arbitrary: fc.record({ op: fc.constant("delete" as const), key }) },
    // New keys until the map is full: growth, skipped growth, overflow buckets.
    { weight: 3, arbitrary: fc.record({ op: fc.constant("fill" as const), ...fillArb }) },
    // New keys until a growth starts, then new keys with blobs while it is under way.
    {
      weight: 2,
      arbitrary: fc.record({ op: fc.constant("growThenAdd" as const), ...growThenAddArb }),
    },
    // Chains past the load factor, then memory back a little at a time: growths whose
    // evacuations find no overflow bucket.
    {
      weight: 1,
      arbitrary: fc.record({ op: fc.constant("crowdThenGrow" as const), ...crowdArb }),
    },
    // Writes while blocks of some sizes cannot be had, most during a growth.
    { weight: 2, arbitrary: fc.record({ op: fc.constant("starved" as const), ...starvedArb }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("iterate" as const), how: fc.nat(4) }) },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constant("iterateMutating" as const),
        how: fc.nat(2),
        actions: fc.array(actionArb(key), { maxLength: 12, size: "max" }),
      }),
    },
    { weight: 1, arbitrary: fc.constant({ op: "clear" } as const) },
  );
}

// ---------------------------------------------------------------------------------------------
// The run

interface Run {
  m: GoMap<Key, Value>;
  maxBytes: number;
  model: Map<Key, Value>;
  step: number;
  fresh: number;
  /** MapFullErrors in this run. */
  fulls: number;
  /** Whether an iteration is under way (its writes are counted apart). */
  iterating: boolean;
  /** Whether a write of the iteration under way found or left the table growing. */
  grewDuringIteration: boolean;
  /** During an iteration, the keys deleted since it began. */
  deleted: Set<Key> | null;
  /** While set, the sizes of allocation a write is refused (see starved). */
  starve: ((size: number) => boolean) | null;
}

/** How often the runs reached the paths this test is for (the second test checks them). */
const totals = {
  fulls: 0,
  /** A new key refused while a growth was under way (an evacuation owed, then the insert). */
  fullNewKeyWhileGrowing: 0,
  /** A new key refused while the table was due to grow (a growth tried, then the insert). */
  fullNewKeyGrowthDue: 0,
  /** An existing key's overwrite refused (its new value's blob). */
  fullOverwrite: 0,
  /** A set refused between two steps of an iteration. */
  fullDuringIteration: 0,
  /** A new key stored past the load factor, the table not growing: a growth skipped. */
  pastLoadFactor: 0,
  /** Iterations during which the table was growing. */
  growingDuringIteration: 0,
  /** Writes (not starved) that began a growth, its array allocated, and undid it. */
  growthUndone: 0,
  /** Writes (not starved) to a growing table that undid an evacuation: no progress made. */
  evacuationUndone: 0,
  /** The same in starved writes. */
  starvedEvacuationUndone: 0,
  /** Runs that ended with more than one bucket (the end's figure is not the start's). */
  grewBeyondOneBucket: 0,
  runs: 0,
};

/** Go's load factor (table_layout.ts overLoadFactor): more than 8 keys, more than 6.5 a bucket. */
const overLoadFactor = (count: number, B: number) => count > 8 && count > 6.5 * 2 ** B;

/** Whether an insert into a table of shape `s` tries a growth first (table.ts insert). */
const growthDue = (s: GoMapStats) =>
  !s.growing && (overLoadFactor(s.count + 1, s.B) || s.overflowBuckets >= 2 ** Math.min(s.B, 30));

const emptyFigures = new Map<number, number>();

/**
 * bytesUsed of a fresh, empty GoMap with 2^B buckets (made with a hint of 6.5 keys a bucket, in
 * the default maxBytes, since a hint may take only half of a small one): the figure an emptied
 * map of that B must come back to.
 */
function emptyBytes(B: number): number {
  let bytes = emptyFigures.get(B);
  if (bytes === undefined) {
    const fresh = new GoMap({ hint: B === 0 ? 0 : Math.floor(6.5 * 2 ** B) });
    assert.equal(fresh.stats().B, B, `a hint for 2^${B} buckets`);
    bytes = fresh.stats().bytesUsed;
    emptyFigures.set(B, bytes);
  }
  return bytes;
}

/** An emptied map uses what a fresh one with as many buckets does, and nothing more. */
function checkEmptied(run: Run, where: string): void {
  const s = run.m.stats();
  assert.equal(s.count, 0, `count ${where}`);
  assert.equal(s.growing, false, `growing ${where}`);
  assert.equal(s.overflowBuckets, 0, `overflow buckets ${where}`);
  const empty = emptyBytes(s.B);
  assert.equal(
    s.bytesUsed,
    empty,
    `bytesUsed ${s.bytesUsed} ${where}, ${empty} for an empty map of 2^${s.B} buckets ` +
      `(${run.fulls} MapFullErrors)`,
  );
}

/** A printable form of a key or value, for failure messages. */
function show(x: unknown): string {
  return typeof x === "string"
    ? JSON.stringify(x.length > 24 ? `${x.slice(0, 24)}...` : x)
    : String(x);
}

const order = (x: unknown) =>
  typeof x === "number" ? `n${String(x).padStart(12, "0")}` : `s${String(x)}`;
const compare = (x: unknown, y: unknown) => {
  const a = order(x);
  const b = order(y);
  return a < b ? -1 : a > b ? 1 : 0;
};
const sorted = (pairs: Iterable<[Key, Value]>) => [...pairs].sort((a, b) => compare(a[0], b[0]));

/** The map's contents, by entries(), against the model's. */
function checkContents(run: Run, where: string): void {
  assert.deepStrictEqual(sorted(run.m.entries()), sorted(run.model), `contents ${where}`);
}

/** After a MapFullError from `set(key, ...)`: nothing changed, and the map is sound. */
function checkUnchanged(run: Run, where: string, key: Key): void {
  const { m, model } = run;
  run.fulls++;
  totals.fulls++;
  m.verify();
  assert.equal(m.size, model.size, `size ${where}`);
  const expected = model.has(key) ? [model.get(key), true] : [undefined, false];
  assert.deepStrictEqual(m.getOk(key), expected, `the key's value ${where}`);
  if (run.fulls <= 4 || run.fulls % 8 === 0) checkContents(run, where);
}

/**
 * The allocations the current write asked for, as pairs of the size and bytesUsed at that
 * moment: the allocator's test hook watches them, and refuses those `refuse` says (none but in
 * starved writes).
 */
const requests: number[] = [];
/** The header words of the map under test (bytesUsed is one). */
let header: Int32Array<ArrayBufferLike> = new Int32Array(0);
let refuse: ((size: number) => boolean) | null = null;
const watch = (size: number): boolean => {
  requests.push(size, header[H_BYTES_USED]);
  return refuse !== null && refuse(size);
};

/** `f()`, a write: its allocations watched, and refused as `run.starve` says. */
function write<T>(run: Run, f: () => T): T {
  requests.length = 0;
  refuse = run.starve;
  try {
    return f();
  } finally {
    refuse = null;
  }
}

/**
 * Whether the write that found the table `before` allocated the bucket array of the growth it
 * was due (an array larger than any size class, so no overflow bucket's request is taken for
 * it): the array was asked for, and a later request of the same write found bytesUsed risen by
 * its size.
 */
function growthArrayAllocated(before: GoMapStats): boolean {
  const B = overLoadFactor(before.count + 1, before.B) ? before.B + 1 : before.B;
  const size = BUCKET_BYTES * 2 ** B;
  if (size <= 1024) return false;
  for (let i = 0; i < requests.length; i += 2) {
    if (requests[i] !== size) continue;
    for (let j = i + 2; j < requests.length; j += 2) {
      if (requests[j + 1] >= requests[i + 1] + size) return true;
    }
  }
  return false;
}

/**
 * Counts the growth work a write that found the table `before` and left it `after` undid;
 * `done`: the write was done (not refused, which undoes everything).
 */
function countGrowthWork(run: Run, before: GoMapStats, after: GoMapStats, done: boolean): void {
  const starved = run.starve !== null;
  // A growth begun, its array allocated, and undone (its first evacuation found no memory).
  if (
    !starved && growthDue(before) && !after.growing && after.B === before.B &&
    growthArrayAllocated(before)
  ) totals.growthUndone++;
  // A write to a growing table owes an evacuation, and makes one more for progress: one that
  // stays growing with no progress had an evacuation undone (or, for a chain too long for the
  // journal's room, not tried: keys crafted to collide, which this test has none of).
  if (done && before.growing && after.growing && after.nevacuate === before.nevacuate) {
    if (starved) totals.starvedEvacuationUndone++;
    else totals.evacuationUndone++;
  }
}

/**
 * `m.set(key, value)`, and the model's, unless it threw MapFullError: then checks that it
 * changed nothing. Returns whether it stored the value.
 */
function put(run: Run, where: string, key: Key, value: Value): boolean {
  const { m, model } = run;
  const before = m.stats();
  const had = model.has(key);
  if (run.iterating && before.growing) run.grewDuringIteration = true;
  try {
    assert.equal(write(run, () => m.set(key, value)), m, where);
  } catch (error) {
    if (!(error instanceof MapFullError)) throw error;
    // A number is stored inline: its overwrite allocates nothing, in place wherever the key
    // lives, even when the evacuation the write owes cannot be made (table.ts insert).
    if (had && typeof value === "number") {
      assert.fail(`${where}: overwriting ${show(key)} with a number threw ${error}`);
    }
    if (had) totals.fullOverwrite++;
    else if (before.growing) totals.fullNewKeyWhileGrowing++;
    else if (growthDue(before)) totals.fullNewKeyGrowthDue++;
    if (run.iterating) totals.fullDuringIteration++;
    countGrowthWork(run, before, m.stats(), false);
    checkUnchanged(run, `after a MapFullError ${where} (set ${show(key)})`, key);
    return false;
  }
  model.set(key, value);
  const after = m.stats();
  countGrowthWork(run, before, after, true);
  if (!had && !after.growing && overLoadFactor(after.count, after.B)) totals.pastLoadFactor++;
  if (run.iterating && after.growing) run.grewDuringIteration = true;
  return true;
}

/**
 * `m.delete(key)`, and the model's; an iteration under way records the key as deleted. A
 * delete never throws MapFullError.
 */
function del(run: Run, where: string, key: Key): void {
  const { m, model } = run;
  const before = m.stats();
  const deleted = write(run, () => m.delete(key));
  assert.equal(deleted, model.delete(key), `${where}: delete ${show(key)}`);
  run.deleted?.add(key);
  countGrowthWork(run, before, m.stats(), true);
}

/** New keys of `kind` with `spec`'s values until `n` are in or the map is full. */
function fill(run: Run, where: string, n: number, kind: number, spec: ValueSpec): void {
  for (let i = 0; i < n; i++) {
    const key = freshKey(run.fresh++, kind);
    const value = kind === 0 && spec.len === 0 ? i : valueOf({ len: spec.len, tag: i % 6 });
    if (!put(run, where, key, value)) return;
  }
}

/**
 * New number keys (of number values) until a growth is under way, the map is full, or a growth
 * due was skipped.
 */
function beginGrowth(run: Run, where: string): void {
  const { m } = run;
  for (let i = 0; i < 2000 && !m.stats().growing; i++) {
    if (!put(run, where, freshKey(run.fresh++, 0), i)) return;
    const s = m.stats();
    if (!s.growing && overLoadFactor(s.count, s.B)) return;
  }
}

/**
 * New number keys (of number values) until a growth starts, or the map is full; then, while
 * the growth is under way, new keys of `len` characters with `spec`'s value until one is
 * refused: each such write owes an evacuation, and finds what memory the new array left.
 */
function growThenAdd(run: Run, where: string, len: number, spec: ValueSpec): void {
  const { m } = run;
  beginGrowth(run, where);
  while (m.stats().growing) {
    if (!put(run, where, `${run.fresh++}#`.padEnd(len, "G"), valueOf(spec))) return;
  }
}

/**
 * Crowds the table and then gives memory back a little at a time. First ballast: values of
 * 1/`ballast` of maxBytes (at most 48, or until the map is full); then, `rounds` times, one of
 * them deleted and number keys (of number values) stored until the map is full again: once the
 * doubled array does not fit in what one value freed, growths are skipped and the keys go on
 * into overflow buckets, past the load factor. Then the ballast is deleted one value at a
 * time, each followed by `per` new number keys: once the doubled array fits, the growth starts
 * with little to spare, and evacuating long chains needs overflow buckets that may not fit (the
 * growth is undone, or the evacuation alone). While a growth is under way, crowded keys are
 * overwritten (with numbers: no memory needed, wherever the key lives) between new keys, whose
 * evacuations take what memory is left, until one is refused; with `starve`, the overwrites
 * are made with no overflow bucket to be had (see starved), so that the evacuations of long
 * chains they owe are undone. Three growths seen, it stops.
 */
function crowdThenGrow(
  run: Run,
  where: string,
  ballast: number,
  rounds: number,
  per: number,
  starve: boolean,
): void {
  const { m } = run;
  const len = Math.floor(run.maxBytes / ballast);
  const reserve: Key[] = [];
  for (let i = 0; i < 48; i++) {
    const key = freshKey(run.fresh++, 1);
    if (!put(run, where, key, valueOf({ len, tag: i % 6 }))) break;
    reserve.push(key);
  }
  const crowd: Key[] = [];
  const add = (i: number): boolean => {
    const key = freshKey(run.fresh++, 0);
    if (!put(run, where, key, i)) return false;
    crowd.push(key);
    return true;
  };
  const overwrite = (i: number): void => {
    const key = crowd[(i * 7919 + run.fresh) % crowd.length];
    if (!run.model.has(key)) return;
    run.starve = starve ? refuseBuckets : null;
    try {
      put(run, where, key, -1 - i);
    } finally {
      run.starve = null;
    }
  };
  for (let r = 0; r < rounds && reserve.length > 0; r++) {
    del(run, where, reserve.pop()!);
    for (let i = 0; i < 1000; i++) if (!add(i)) break;
  }
  for (let growths = 0; growths < 3 && reserve.length > 0;) {
    del(run, where, reserve.pop()!);
    for (let i = 0; i < per; i++) if (!add(i)) break;
    if (m.stats().growing) growths++;
    for (let i = 0; i < 64 && m.stats().growing; i++) {
      overwrite(i);
      if (!add(i)) {
        for (let j = 1; j <= 8 && m.stats().growing; j++) overwrite(i + j);
        break;
      }
    }
  }
}

/** Refuses an overflow bucket, and the size classes a full arena would serve one from. */
const refuseBuckets = (size: number): boolean => size >= BUCKET_BYTES && size <= 1024;

/**
 * `writes` while the arena has no block of some sizes to give, as one full to the last byte:
 * the allocator's test hook refuses every allocation (`all`), or only overflow buckets and the
 * size classes above them up to 1 KiB (from which a full arena serves one), so that a growth's
 * array, larger, is had and its evacuations are not. With `grow`, new number keys first, until
 * a growth is under way. An overwrite with a number must succeed all the same (put); so must a
 * delete.
 */
function starved(
  run: Run,
  where: string,
  all: boolean,
  grow: boolean,
  writes: readonly StarvedWrite[],
): void {
  if (grow) beginGrowth(run, where);
  const starve = all ? () => true : refuseBuckets;
  for (const [i, w] of writes.entries()) {
    const key = w.w === "new" ? freshKey(run.fresh++, 0) : pickKey(run.model.keys(), w.pick);
    if (key === undefined) continue;
    const at = `${where} (starved write ${i})`;
    run.starve = starve;
    try {
      if (w.w === "delete") del(run, at, key);
      else put(run, at, key, w.w === "string" ? valueOf({ len: w.len, tag: i % 6 }) : -1 - i);
    } finally {
      run.starve = null;
    }
  }
}

/** The model's key number `pick` (modulo its size), or undefined when it is empty. */
function pickKey(keys: Iterable<Key>, pick: number): Key | undefined {
  const all = [...keys];
  return all.length === 0 ? undefined : all[pick % all.length];
}

/** `m.clear()`, and the model's, and the map's memory is what an empty one's is. */
function clear(run: Run, where: string): void {
  for (const key of run.model.keys()) run.deleted?.add(key);
  run.m.clear();
  run.model.clear();
  checkEmptied(run, `after clear() ${where}`);
}

/** A full iteration, one of five ways, compared with the model. */
function iterate(run: Run, how: number, where: string): void {
  const { m, model } = run;
  let pairs: [Key, Value][] = [];
  switch (how) {
    case 0:
      pairs = [...m];
      break;
    case 1:
      m.forEach((v, k, map) => {
        assert.equal(map, m);
        pairs.push([k, v]);
      });
      break;
    case 2:
      for (const k of m.keys()) pairs.push([k, m.get(k)!]);
      break;
    case 3: {
      const values = [...m.values()].sort(compare);
      assert.deepStrictEqual(values, [...model.values()].sort(compare), `values() ${where}`);
      return;
    }
    default:
      pairs = [...m.entries()];
  }
  assert.deepStrictEqual(sorted(pairs), sorted(model), where);
}

const NO_VALUE = Symbol("keys() yields no value");

/**
 * An iteration (entries() with writes between next() calls, forEach with writes inside the
 * callback, or keys()) with `actions` applied after the step each names, checked by Go's rule.
 */
function iterateMutating(run: Run, how: number, actions: readonly Action[], where: string): void {
  const { m, model } = run;
  const atStart = new Set(model.keys());
  // Keys deleted since the start (del and clear record them), which may or may not be yielded.
  const deletedDuring = new Set<Key>();
  const visited = new Set<Key>();
  const todo = [...actions].sort((x, y) => x.at - y.at);
  let next = 0;
  let step = 0;
  const act = (action: Action): void => {
    const w = `${where}, ${action.a} after ${step + 1} keys`;
    switch (action.a) {
      case "deleteVisited":
      case "deleteUnvisited": {
        const from = action.a === "deleteVisited"
          ? [...visited].filter((k) => model.has(k))
          : [...atStart].filter((k) => !visited.has(k) && model.has(k));
        const key = pickKey(from, action.pick);
        if (key === undefined) return;
        del(run, w, key);
        return;
      }
      case "overwrite": {
        const key = pickKey(model.keys(), action.pick);
        if (key !== undefined) put(run, w, key, valueOf(action.value));
        return;
      }
      case "set":
        // A key deleted earlier in this iteration and set again may or may not be yielded.
        put(run, w, keyOf(action.key), valueOf(action.value));
        return;
      case "fill":
        fill(run, w, action.n, action.kind, action.value);
        return;
      case "growThenAdd":
        growThenAdd(run, w, action.len, action.value);
        return;
      case "crowdThenGrow":
        crowdThenGrow(run, w, action.ballast, action.rounds, action.per, action.starve);
        return;
      case "starved":
        starved(run, w, action.all, action.grow, action.writes);
        return;
      case "clear":
        clear(run, w);
        return;
    }
  };
  const visit = (key: Key, value: Value | typeof NO_VALUE): void => {
    if (!model.has(key)) assert.fail(`${where}: yielded ${show(key)}, which is not in the map`);
    if (value !== NO_VALUE) {
      assert.equal(value, model.get(key), `${where}: the value yielded for ${show(key)}`);
    }
    if (visited.has(key)) assert.fail(`${where}: yielded ${show(key)} twice`);
    visited.add(key);
    while (next < todo.length && todo[next].at <= step) act(todo[next++]);
    assert.equal(m.size, model.size, `${where}: size after ${step + 1} keys`);
    step++;
  };
  run.iterating = true;
  run.grewDuringIteration = false;
  run.deleted = deletedDuring;
  try {
    if (how === 0) {
      const iterator = m.entries();
      for (let r = iterator.next(); !r.done; r = iterator.next()) visit(r.value[0], r.value[1]);
      assert.equal(iterator.next().done, true, `${where}: the iterator stays done`);
    } else if (how === 1) m.forEach((v, k) => visit(k, v));
    else for (const k of m.keys()) visit(k, NO_VALUE);
  } finally {
    run.iterating = false;
    run.deleted = null;
  }
  if (run.grewDuringIteration) totals.growingDuringIteration++;
  for (const key of atStart) {
    if (!deletedDuring.has(key) && !visited.has(key)) {
      assert.fail(`${where}: missed ${show(key)}, present from the start`);
    }
  }
}

function apply(run: Run, cmd: Cmd): void {
  const { m, model } = run;
  const where = `at step ${run.step}: ${cmd.op}`;
  switch (cmd.op) {
    case "get": {
      const key = keyOf(cmd.key);
      assert.equal(m.get(key), model.get(key), `${where} ${show(key)}`);
      return;
    }
    case "has": {
      const key = keyOf(cmd.key);
      assert.equal(m.has(key), model.has(key), `${where} ${show(key)}`);
      return;
    }
    case "getOk": {
      const key = keyOf(cmd.key);
      const expected = model.has(key) ? [model.get(key), true] : [undefined, false];
      assert.deepStrictEqual(m.getOk(key), expected, `${where} ${show(key)}`);
      return;
    }
    case "delete":
      del(run, where, keyOf(cmd.key));
      return;
    case "set":
      put(run, where, keyOf(cmd.key), valueOf(cmd.value));
      return;
    case "overwrite": {
      const key = pickKey(model.keys(), cmd.pick);
      if (key !== undefined) put(run, where, key, valueOf(cmd.value));
      return;
    }
    case "fill":
      fill(run, where, cmd.n, cmd.kind, cmd.value);
      return;
    case "growThenAdd":
      growThenAdd(run, where, cmd.len, cmd.value);
      return;
    case "crowdThenGrow":
      crowdThenGrow(run, where, cmd.ballast, cmd.rounds, cmd.per, cmd.starve);
      return;
    case "starved":
      starved(run, where, cmd.all, cmd.grow, cmd.writes);
      return;
    case "iterate":
      iterate(run, cmd.how, where);
      return;
    case "iterateMutating":
      iterateMutating(run, cmd.how, cmd.actions, where);
      return;
    case "clear":
      clear(run, where);
      return;
  }
}

/** The states every batch of runs must reach; not evacuationUndone, see the test below. */
const REQUIRED = [
  "fullNewKeyWhileGrowing",
  "fullNewKeyGrowthDue",
  "fullOverwrite",
  "fullDuringIteration",
  "pastLoadFactor",
  "growingDuringIteration",
  "growthUndone",
  "starvedEvacuationUndone",
  "grewBeyondOneBucket",
] as const;

/** Batches of 100 runs at most: a batch now and then misses a rare state (growthUndone). */
const BATCHES = 4;

describe("GoMap in a small maxBytes matches a model through MapFullErrors", () => {
  // Up to BATCHES batches of up to 15 s each: past Bun's 60 s default per test in the suite.
  test("random operation sequences that fill the map", { timeout: 120_000 }, () => {
    failAllocationsForTests(watch);
    try {
      // Another batch while a state is still unreached: 1 in about 20 batches of 100 missed one.
      for (let b = 0; b < BATCHES && REQUIRED.some((name) => totals[name] === 0); b++) batch();
    } finally {
      failAllocationsForTests(undefined);
    }
  });

  function batch(): void {
    fc.assert(
      fc.property(
        fc.constantFrom(64 * KiB, 128 * KiB, 256 * KiB),
        fc.integer({ min: 200, max: 3000 }).chain((poolSize) =>
          fc.array(cmdArb(poolSize), { minLength: 20, maxLength: 120, size: "max" })
        ),
        fc.boolean(),
        (maxBytes, cmds, deleteFirst) => {
          const m = new GoMap<Key, Value>({ maxBytes });
          header = new Int32Array(m.handle.buffer);
          const run: Run = {
            m,
            maxBytes,
            model: new Map(),
            step: 0,
            fresh: 0,
            fulls: 0,
            iterating: false,
            grewDuringIteration: false,
            deleted: null,
            starve: null,
          };
          totals.runs++;
          checkEmptied(run, "new");
          for (const cmd of cmds) {
            run.step++;
            apply(run, cmd);
            assert.equal(m.size, run.model.size, `size after step ${run.step} (${cmd.op})`);
          }
          m.verify();
          checkContents(run, "at the end");
          if (m.stats().B > 0) totals.grewBeyondOneBucket++;
          if (deleteFirst) {
            for (const key of [...run.model.keys()]) {
              assert.equal(m.delete(key), run.model.delete(key), `delete ${show(key)}`);
            }
            // The last key gone gives back the overflow buckets and an old array (GoMap.delete).
            checkEmptied(run, "after deleting every key");
            m.verify();
          }
          m.clear();
          checkEmptied(run, "after the last clear()");
          m.verify();
        },
      ),
      // At most 15 s in all, shrinking included: a failure found by then is still reported, with
      // the smallest counterexample found so far (a failing run shrinks for a minute or more).
      { numRuns: 100, interruptAfterTimeLimit: 15_000 },
    );
  }

  test("the runs found the map full while it grew, was due to grow, and was iterated", () => {
    // Runs after the property above (tests in a file run in order). Not evacuationUndone,
    // which the crowded growths reach only a few times in 100 runs.
    const missed = REQUIRED.filter((name) => totals[name] === 0);
    assert.deepStrictEqual(missed, [], `not reached: ${JSON.stringify(totals)}`);
  });
});
