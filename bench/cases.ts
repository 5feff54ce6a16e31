// Copyright the shmap authors. MIT license.
/**
 * The one-thread benchmark cases, defined once for both harnesses: the mitata driver
 * (bench/main.ts, `deno task bench` and `bun bench/main.ts`) and the Deno-native bench files
 * (bench/*_bench.ts, `deno bench`). tests/bench_cases_test.ts checks that each case does what its
 * name says.
 *
 * A case is a section, a group (the cases one table row or chart compares), a name (the
 * structure) and a setup, which builds the structure and returns the op. One call of the op is
 * one operation as Go's benchmarks count them (a Range over 1,024 keys is one), so a harness's
 * time per iteration is the time per operation.
 *
 * Sections:
 * - `gomap`: GoMap against a native Map, 1,024 keys, numbers or 16-character strings, with the
 *   default codecs (and one GoMap with float64 codecs).
 * - `syncmap`: the shapes of Go's sync/map_bench_test.go (Go 1.19 to 1.23) on a SyncMap, on a
 *   GoMap under an RWMutex (Go's RWMutexMap from map_reference_test.go, the map those benchmarks
 *   compare sync.Map with) and on a native Map; a store/delete churn of a fixed key set; and
 *   16-character string-key variants. `go test -bench` with GOMAXPROCS=1 runs Go's in one
 *   goroutine, as here (bench/go_baseline.sh).
 * - `workers`: one thread of the two cases sync.Map is for (bench/workers.ts runs them across
 *   workers): read-mostly (99% loads of 1,024 keys, 1% stores) and disjoint writers (load and
 *   store one's own keys, half and half), with the structures and codecs workers.ts shares.
 *
 * Not here yet: a `compute`-style read-modify-write shape (the library has no such method).
 *
 * @module
 */

import { codecs, GoMap, type Mutex, RWMutex, SyncMap } from "../mod.ts";
import {
  type CaseName,
  checkedLoad,
  compile,
  DISJOINT_STATE,
  disjointLoad,
  DisjointState,
  disjointStore,
  KEYS,
  LOAD_STORE,
  READ_MOSTLY_STATE,
  readMostlyKeys,
  readMostlyOp,
  seedFor,
  stringKey,
  type StructureName,
  WRITE_EVERY,
} from "./fixtures/bench_shared.ts";
import { makeShared, type Shared } from "./fixtures/structures.ts";

/** The part of the suite a case belongs to. */
export type Section = "gomap" | "syncmap" | "workers";

/** One benchmark: a structure doing one operation in one shape. */
export interface BenchCase {
  /** The part of the suite. */
  readonly section: Section;
  /** The cases compared with one another, e.g. "LoadMostlyHits" or "get hit, int keys". */
  readonly group: string;
  /** The structure, e.g. "SyncMap"; unique within the group. */
  readonly name: string;
  /** The case the others in the group are compared with. */
  readonly baseline?: boolean;
  /** Go's benchmark of the same shape and map (a `go test -bench` name without "Benchmark"). */
  readonly go?: string;
  /** Builds the structure and returns the op. Each call makes a structure of its own. */
  setup(): CaseRun;
}

/** A case, set up. */
export interface CaseRun {
  /** One operation. Returns its result, which the harness may ignore. */
  readonly op: () => unknown;
  /**
   * Throws unless the op did what the case's name says: `results` are the op's return values
   * from its first call after setup, in order.
   */
  check(results: readonly unknown[]): void;
}

// ---------------------------------------------------------------------------------------------
// Helpers.

const sink = { value: undefined as unknown };

/** Stores `v` where no engine can prove it unused, so the work that made it is kept. */
function keep<T>(v: T): T {
  sink.value = v;
  return v;
}

/**
 * Compiles `template` again, apart from every other use of it, tagged with `tag`. Engines share
 * type feedback and optimized code between the closures of one function literal: an op made
 * from one template for a SyncMap and then for a Map would see both classes at its call sites
 * and run slower than either alone. So a template may use only its parameters and globals.
 */
export function fresh<A extends unknown[], R>(
  template: (...args: A) => R,
  tag: string,
): (...args: A) => R {
  return compile(template.toString(), tag) as (...args: A) => R;
}

/** Throws unless `got` equals `want`: same primitive, or arrays of the same primitives. */
function expectEqual(what: string, got: unknown, want: unknown): void {
  const same = Array.isArray(want)
    ? Array.isArray(got) && got.length === want.length && want.every((w, i) => Object.is(got[i], w))
    : Object.is(got, want);
  if (!same) throw new Error(`${what}: got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
}

/** Checks every result against `want(j)`, the result the j-th call must return. */
function expectEach(results: readonly unknown[], want: (j: number) => unknown): void {
  results.forEach((r, j) => expectEqual(`call ${j}`, r, want(j)));
}

function intKeys(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function strKeys(n: number, prefix?: string): string[] {
  return Array.from({ length: n }, (_, i) => stringKey(i, prefix));
}

// ---------------------------------------------------------------------------------------------
// The structures of Go's shapes: Go's mapInterface (sync/map_reference_test.go) in camelCase.

/** The methods of Go's mapInterface. Values are never undefined. */
export interface MapInterface<K, V> {
  readonly size: number;
  load(key: K): V | undefined;
  store(key: K, value: V): void;
  loadOrStore(key: K, value: V): [actual: V, loaded: boolean];
  loadAndDelete(key: K): [value: V | undefined, loaded: boolean];
  delete(key: K): boolean;
  swap(key: K, value: V): [previous: V | undefined, loaded: boolean];
  compareAndSwap(key: K, old: V, next: V): boolean;
  compareAndDelete(key: K, old: V): boolean;
  range(f: (key: K, value: V) => boolean | void): void;
  clear(): void;
}

/**
 * Go's RWMutexMap: a GoMap under an RWMutex, loads under the read lock, every other method
 * under the lock; range copies the keys under the read lock, then loads each.
 */
export class RWMutexGoMap<K, V> implements MapInterface<K, V> {
  readonly map: GoMap<K, V>;
  readonly mu: RWMutex;

  constructor(map: GoMap<K, V> = new GoMap<K, V>(), mu: RWMutex = new RWMutex()) {
    this.map = map;
    this.mu = mu;
  }

  get size(): number {
    return this.map.size;
  }

  load(key: K): V | undefined {
    this.mu.rLock();
    try {
      return this.map.get(key);
    } finally {
      this.mu.rUnlock();
    }
  }

  store(key: K, value: V): void {
    this.mu.lock();
    try {
      this.map.set(key, value);
    } finally {
      this.mu.unlock();
    }
  }

  loadOrStore(key: K, value: V): [V, boolean] {
    this.mu.lock();
    try {
      const v = this.map.get(key);
      if (v !== undefined) return [v, true];
      this.map.set(key, value);
      return [value, false];
    } finally {
      this.mu.unlock();
    }
  }

  loadAndDelete(key: K): [V | undefined, boolean] {
    this.mu.lock();
    try {
      const v = this.map.get(key);
      if (v === undefined) return [undefined, false];
      this.map.delete(key);
      return [v, true];
    } finally {
      this.mu.unlock();
    }
  }

  delete(key: K): boolean {
    this.mu.lock();
    try {
      return this.map.delete(key);
    } finally {
      this.mu.unlock();
    }
  }

  swap(key: K, value: V): [V | undefined, boolean] {
    this.mu.lock();
    try {
      const v = this.map.get(key);
      this.map.set(key, value);
      return [v, v !== undefined];
    } finally {
      this.mu.unlock();
    }
  }

  compareAndSwap(key: K, old: V, next: V): boolean {
    this.mu.lock();
    try {
      const v = this.map.get(key);
      if (v === undefined || v !== old) return false;
      this.map.set(key, next);
      return true;
    } finally {
      this.mu.unlock();
    }
  }

  compareAndDelete(key: K, old: V): boolean {
    this.mu.lock();
    try {
      const v = this.map.get(key);
      if (v === undefined || v !== old) return false;
      this.map.delete(key);
      return true;
    } finally {
      this.mu.unlock();
    }
  }

  range(f: (key: K, value: V) => boolean | void): void {
    this.mu.rLock();
    let keys: K[];
    try {
      keys = [...this.map.keys()];
    } finally {
      this.mu.rUnlock();
    }
    for (const k of keys) {
      const v = this.load(k);
      if (v !== undefined && f(k, v) === false) break;
    }
  }

  clear(): void {
    this.mu.lock();
    try {
      this.map.clear();
    } finally {
      this.mu.unlock();
    }
  }
}

/** A GoMap under a Mutex, for disjoint writers: load and store each take the lock. */
export class MutexGoMap<K, V> {
  readonly map: GoMap<K, V>;
  readonly mu: Mutex;

  constructor(map: GoMap<K, V>, mu: Mutex) {
    this.map = map;
    this.mu = mu;
  }

  load(key: K): V | undefined {
    this.mu.lock();
    try {
      return this.map.get(key);
    } finally {
      this.mu.unlock();
    }
  }

  store(key: K, value: V): void {
    this.mu.lock();
    try {
      this.map.set(key, value);
    } finally {
      this.mu.unlock();
    }
  }
}

/** A native Map with Go's mapInterface: one thread, no lock, the floor a JavaScript map sets. */
export class NativeMap<K, V> implements MapInterface<K, V> {
  readonly map: Map<K, V> = new Map<K, V>();

  get size(): number {
    return this.map.size;
  }

  load(key: K): V | undefined {
    return this.map.get(key);
  }

  store(key: K, value: V): void {
    this.map.set(key, value);
  }

  loadOrStore(key: K, value: V): [V, boolean] {
    const v = this.map.get(key);
    if (v !== undefined) return [v, true];
    this.map.set(key, value);
    return [value, false];
  }

  loadAndDelete(key: K): [V | undefined, boolean] {
    const v = this.map.get(key);
    if (v === undefined) return [undefined, false];
    this.map.delete(key);
    return [v, true];
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  swap(key: K, value: V): [V | undefined, boolean] {
    const v = this.map.get(key);
    this.map.set(key, value);
    return [v, v !== undefined];
  }

  compareAndSwap(key: K, old: V, next: V): boolean {
    const v = this.map.get(key);
    if (v === undefined || v !== old) return false;
    this.map.set(key, next);
    return true;
  }

  compareAndDelete(key: K, old: V): boolean {
    const v = this.map.get(key);
    if (v === undefined || v !== old) return false;
    this.map.delete(key);
    return true;
  }

  range(f: (key: K, value: V) => boolean | void): void {
    for (const [k, v] of this.map) if (f(k, v) === false) break;
  }

  clear(): void {
    this.map.clear();
  }
}

// ---------------------------------------------------------------------------------------------
// Section "syncmap": Go's shapes. The templates follow Go's perG loops, one iteration per call.
// `i` is Go's loop variable (0 for the only goroutine); `keys` holds the fixed key set of the
// hits/misses shapes (1,024 numbers 0..1023, or 16-character strings), so the string variants
// run the same code. Values are numbers. Shapes whose map grows without bound start over with a
// fresh map from `fill` every 2^20 calls (Go's map reaches b.N keys, about a million).

type Key = number | string;
type GoShapeMap = MapInterface<Key, number>;
type Keep = <T>(v: T) => T;

/** A shape of Go's benchmark: its setup, its loop body and what each call returns. */
interface Shape {
  /** Go's benchmark name (BenchmarkLoadMostlyHits → "LoadMostlyHits"). */
  readonly name: string;
  /** Whether a 16-character string-key variant runs too. */
  readonly strings?: boolean;
  /** For the hits/misses shapes: how many of each 1,024 calls hit (the template's `hits`). */
  readonly hits?: number;
  /** Go's setup: fills a new map. `keys` are the fixed key set. */
  fill(m: GoShapeMap, keys: readonly Key[]): void;
  /** The loop body as a template (see {@linkcode fresh}). */
  template(
    m: GoShapeMap,
    keys: readonly Key[],
    keep: Keep,
    refill: () => GoShapeMap,
    hits: number,
  ): () => unknown;
  /** Throws unless `results` (and the map after them) are what the shape does. */
  check(results: readonly unknown[], m: GoShapeMap, keys: readonly Key[]): void;
}

/** Go's setup for the hits/misses shapes: the hit keys, each loaded twice to promote them. */
function fillHits(hits: number) {
  return (m: GoShapeMap, keys: readonly Key[]) => {
    for (let i = 0; i < hits; i++) m.loadOrStore(keys[i], i);
    for (let i = 0; i < hits * 2; i++) m.load(keys[i % hits]);
  };
}

/**
 * Go's XMostlyHits and XMostlyMisses (const hits, misses = 1023, 1 and 1, 1023), in that order:
 * one shape `of(hits)` at the two hit counts, filled with the hit keys.
 */
function mostly(
  name: string,
  of: (hits: number) => Omit<Shape, "name" | "hits" | "fill">,
): Shape[] {
  return [1023, 1].map((hits) => ({
    name: `${name}${hits === 1 ? "MostlyMisses" : "MostlyHits"}`,
    hits,
    fill: fillHits(hits),
    ...of(hits),
  }));
}

const fillNone = () => {};

function fillZero(m: GoShapeMap): void {
  m.loadOrStore(0, 0);
}

function fillAll(m: GoShapeMap): void {
  for (let i = 0; i < 1024; i++) m.store(i, i);
}

/** Go's shapes, in the order of map_bench_test.go. */
const SHAPES: readonly Shape[] = [
  ...mostly("Load", (hits) => ({
    strings: true,
    template: (m, keys, keep) => {
      let i = 0;
      return () => keep(m.load(keys[i++ & 1023]));
    },
    check: (rs) => expectEach(rs, (j) => j % 1024 < hits ? j % 1024 : undefined),
  })),
  {
    name: "LoadOrStoreBalanced",
    fill: fillHits(128),
    template: (m, _keys, keep, refill) => {
      let i = 0;
      return () => {
        if (i === 1 << 20) {
          m = refill();
          i = 0;
        }
        const j = i % 256;
        const r = j < 128 ? m.loadOrStore(j, i) : m.loadOrStore(i, i);
        if (r[1] !== j < 128) throw new Error(`loadOrStore(${j < 128 ? j : i}): ${r}`);
        i++;
        return keep(r);
      };
    },
    check: (rs) => expectEach(rs, (j) => j % 256 < 128 ? [j % 256, true] : [j, false]),
  },
  {
    name: "LoadOrStoreUnique",
    fill: fillNone,
    template: (m, _keys, keep, refill) => {
      let i = 0;
      return () => {
        if (i === 1 << 20) {
          m = refill();
          i = 0;
        }
        const r = m.loadOrStore(i, i);
        i++;
        return keep(r);
      };
    },
    check: (rs, m) => {
      expectEach(rs, (j) => [j, false]);
      expectEqual("size", m.size, rs.length);
    },
  },
  {
    name: "LoadOrStoreCollision",
    fill: fillZero,
    template: (m, _keys, keep) => () => keep(m.loadOrStore(0, 0)),
    check: (rs) => expectEach(rs, () => [0, true]),
  },
  {
    name: "LoadAndDeleteBalanced",
    fill: fillHits(128),
    template: (m, _keys, keep) => {
      let i = 0;
      return () => {
        const j = i % 256;
        const r = j < 128 ? m.loadAndDelete(j) : m.loadAndDelete(i);
        i++;
        return keep(r);
      };
    },
    // A hit key is gone once deleted: after the first 128 calls every call misses, as in Go.
    check: (rs) => expectEach(rs, (j) => j < 128 ? [j, true] : [undefined, false]),
  },
  {
    name: "LoadAndDeleteUnique",
    fill: fillNone,
    template: (m, _keys, keep) => {
      let i = 0;
      return () => keep(m.loadAndDelete(i++));
    },
    check: (rs) => expectEach(rs, () => [undefined, false]),
  },
  {
    name: "LoadAndDeleteCollision",
    fill: fillZero,
    template: (m, _keys, keep) => () => keep(m.loadAndDelete(0)),
    check: (rs) => expectEach(rs, (j) => j === 0 ? [0, true] : [undefined, false]),
  },
  {
    name: "Range",
    fill: fillAll,
    template: (m, _keys, keep) => {
      let n = 0;
      const visit = () => {
        n++;
        return true;
      };
      return () => {
        n = 0;
        m.range(visit);
        return keep(n);
      };
    },
    check: (rs) => expectEach(rs, () => 1024),
  },
  {
    // Stores a new key whenever the loads since the last store outnumber the stores, and else
    // loads a missing key: in Go every load then takes the map's mutex.
    name: "AdversarialAlloc",
    fill: fillNone,
    template: (m, _keys, keep) => {
      let i = 0, stores = 0, loadsSinceStore = 0;
      return () => {
        const r = m.load(i);
        if (++loadsSinceStore > stores) {
          m.loadOrStore(i, stores);
          loadsSinceStore = 0;
          stores++;
        }
        i++;
        return keep(r);
      };
    },
    check: (rs, m) => {
      expectEach(rs, () => undefined);
      let stores = 0, since = 0;
      for (let j = 0; j < rs.length; j++) if (++since > stores) (since = 0, stores++);
      expectEqual("size", m.size, stores);
    },
  },
  {
    // Deletes one key and adds another every 1,024 calls, in a map of 1,024 keys: in Go the
    // loads then take the mutex, and the map is copied over and over.
    name: "AdversarialDelete",
    fill: fillAll,
    template: (m, _keys, keep) => {
      let i = 0;
      const deleteFirst = (k: Key) => {
        m.delete(k);
        return false;
      };
      return () => {
        const r = m.load(i);
        if (i % 1024 === 0) {
          m.range(deleteFirst);
          m.store(i, i);
        }
        i++;
        return keep(r);
      };
    },
    check: (rs, m) => {
      // The first 1,024 loads find their key but the one deleted at i = 0 (if not key 0);
      // after that, key i is stored (if at all) only after its load.
      const hits = rs.slice(0, 1024).filter((r, j) => r === j).length;
      if (hits < 1023) throw new Error(`${hits} of the first 1024 loads hit, want 1023 or more`);
      expectEach(rs.slice(1024), () => undefined);
      if (m.size < 1023 || m.size > 1024) throw new Error(`size ${m.size}, want 1023 or 1024`);
      // Each 1,024th call stored its own key (and deleted another).
      for (let j = 1024; j < rs.length; j += 1024) expectEqual(`load(${j})`, m.load(j), j);
    },
  },
  {
    name: "DeleteCollision",
    fill: fillZero,
    template: (m, _keys, keep) => () => keep(m.delete(0)),
    check: (rs) => expectEach(rs, (j) => j === 0),
  },
  {
    name: "SwapCollision",
    fill: fillZero,
    template: (m, _keys, keep) => () => keep(m.swap(0, 0)),
    check: (rs) => expectEach(rs, () => [0, true]),
  },
  ...mostly("Swap", (hits) => ({
    template: (m, _keys, keep, _refill, hits) => {
      let i = 0;
      return () => {
        let r;
        if (i % 1024 < hits) {
          const v = i % 1024;
          r = m.swap(v, v);
        } else {
          r = m.swap(i, i);
          m.delete(i);
        }
        i++;
        return keep(r);
      };
    },
    check: (rs, m) => {
      expectEach(rs, (j) => j % 1024 < hits ? [j % 1024, true] : [undefined, false]);
      expectEqual("size", m.size, hits);
    },
  })),
  {
    name: "CompareAndSwapCollision",
    fill: fillZero,
    template: (m, _keys, keep) => () => {
      const r = m.compareAndSwap(0, 0, 42);
      if (r) m.compareAndSwap(0, 42, 0);
      return keep(r);
    },
    check: (rs, m) => {
      expectEach(rs, () => true);
      expectEqual("load(0)", m.load(0), 0);
    },
  },
  {
    name: "CompareAndSwapNoExistingKey",
    fill: fillNone,
    template: (m, _keys, keep) => {
      let i = 0;
      return () => {
        const r = m.compareAndSwap(i, 0, 0);
        if (r) m.delete(i);
        i++;
        return keep(r);
      };
    },
    check: (rs, m) => {
      expectEach(rs, () => false);
      expectEqual("size", m.size, 0);
    },
  },
  {
    name: "CompareAndSwapValueNotEqual",
    fill: (m) => m.store(0, 0),
    template: (m, _keys, keep) => () => keep(m.compareAndSwap(0, 1, 2)),
    check: (rs, m) => {
      expectEach(rs, () => false);
      expectEqual("load(0)", m.load(0), 0);
    },
  },
  ...mostly("CompareAndSwap", (hits) => ({
    template: (m, _keys, keep, _refill, hits) => {
      let i = 0;
      return () => {
        const v = i % 1024 < hits ? i % 1024 : i;
        i++;
        return keep(m.compareAndSwap(v, v, v));
      };
    },
    check: (rs) => expectEach(rs, (j) => j % 1024 < hits),
  })),
  {
    name: "CompareAndDeleteCollision",
    fill: fillZero,
    template: (m, _keys, keep) => () => {
      const r = m.compareAndDelete(0, 0);
      if (r) m.store(0, 0);
      return keep(r);
    },
    check: (rs) => expectEach(rs, () => true),
  },
  ...mostly("CompareAndDelete", (hits) => ({
    template: (m, _keys, keep, _refill, hits) => {
      let i = 0;
      return () => {
        const v = i % 1024 < hits ? i % 1024 : i;
        i++;
        const r = m.compareAndDelete(v, v);
        if (r) m.store(v, v);
        return keep(r);
      };
    },
    check: (rs, m) => {
      expectEach(rs, (j) => j % 1024 < hits);
      expectEqual("size", m.size, hits);
    },
  })),
  {
    name: "Clear",
    fill: fillNone,
    template: (m, _keys, keep) => {
      let i = 0;
      return () => {
        const k = i % 256;
        m.clear();
        m.store(k, k);
        i++;
        return keep(k);
      };
    },
    check: (rs, m) => {
      const last = (rs.length - 1) % 256;
      expectEqual("size", m.size, 1);
      expectEqual(`load(${last})`, m.load(last), last);
    },
  },
  {
    // Not Go's: stores and deletes over a fixed set of 1,024 keys, 512 of them present at any
    // time. Even calls store a key that is absent; odd calls delete one that is present.
    name: "StoreDeleteChurn",
    strings: true,
    fill: (m, keys) => {
      for (let k = 512; k < 1024; k++) m.store(keys[k], k);
    },
    template: (m, keys, keep) => {
      let i = 0;
      return () => {
        const k = i >> 1;
        let r;
        if ((i & 1) === 0) m.store(keys[k & 1023], k & 1023);
        else r = m.delete(keys[(k + 512) & 1023]);
        i++;
        return keep(r);
      };
    },
    check: (rs, m) => {
      expectEach(rs, (j) => (j & 1) === 0 ? undefined : true);
      expectEqual("size", m.size, 512 + (rs.length & 1));
    },
  },
];

/** The structures Go's shapes run on, and the Go map each compares with. */
const GO_STRUCTURES: readonly {
  name: string;
  go?: string;
  make(): GoShapeMap;
}[] = [
  { name: "SyncMap", go: "*sync.Map", make: () => new SyncMap<Key, number>() },
  {
    name: "GoMap+RWMutex",
    go: "*sync_test.RWMutexMap",
    make: () => new RWMutexGoMap<Key, number>(),
  },
  { name: "Map", make: () => new NativeMap<Key, number>() },
];

function goShapeCases(): BenchCase[] {
  const out: BenchCase[] = [];
  for (const shape of SHAPES) {
    for (const strings of shape.strings ? [false, true] : [false]) {
      const group = strings ? `${shape.name}, str16` : shape.name;
      for (const s of GO_STRUCTURES) {
        out.push({
          section: "syncmap",
          group,
          name: s.name,
          baseline: s.name === "SyncMap",
          go: s.go === undefined || strings ? undefined : `${shape.name}/${s.go}`,
          setup() {
            const keys: readonly Key[] = strings ? strKeys(1024) : intKeys(1024);
            const refill = () => {
              const m = s.make();
              shape.fill(m, keys);
              return m;
            };
            const m = refill();
            const op = fresh(shape.template, `${group} / ${s.name}`)(
              m,
              keys,
              keep,
              refill,
              shape.hits ?? 0,
            );
            return { op, check: (results) => shape.check(results, m, keys) };
          },
        });
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Section "gomap": GoMap against a native Map, 1,024 keys, value = the key's index.

/** What GoMap and Map have in common, for the templates. */
interface MapLike {
  get(key: Key): number | undefined;
  set(key: Key, value: number): unknown;
  delete(key: Key): boolean;
  entries(): IterableIterator<[Key, number]>;
  readonly size: number;
}

interface MapOp {
  /** The operation, e.g. "get hit". */
  readonly name: string;
  readonly template: (
    m: MapLike,
    keys: readonly Key[],
    misses: readonly Key[],
    keep: Keep,
  ) => () => unknown;
  check(results: readonly unknown[], m: MapLike, keys: readonly Key[]): void;
}

const MAP_OPS: readonly MapOp[] = [
  {
    name: "get hit",
    template: (m, keys, _misses, keep) => {
      let i = 0;
      return () => keep(m.get(keys[i++ & 1023]));
    },
    check: (rs) => expectEach(rs, (j) => j & 1023),
  },
  {
    name: "get miss",
    template: (m, _keys, misses, keep) => {
      let i = 0;
      return () => keep(m.get(misses[i++ & 1023]));
    },
    check: (rs) => expectEach(rs, () => undefined),
  },
  {
    name: "set (overwrite)",
    template: (m, keys, _misses, keep) => {
      let i = 0;
      return () => {
        const r = m.set(keys[i & 1023], i);
        i++;
        return keep(r);
      };
    },
    check: (rs, m, keys) => {
      expectEqual("size", m.size, 1024);
      const last = rs.length - 1;
      keys.forEach((k, i) => {
        const j = last - ((last - i) & 1023); // the last call that set key i, if any
        expectEqual(`get(${k})`, m.get(k), j >= 0 ? j : i);
      });
    },
  },
  {
    // A store/delete churn over the 1,024 keys, 512 present at any time: even calls set an
    // absent key, odd calls delete a present one (as StoreDeleteChurn in the Go shapes).
    name: "set new / delete",
    template: (m, keys, _misses, keep) => {
      let i = 0;
      return () => {
        const k = i >> 1;
        let r;
        if ((i & 1) === 0) m.set(keys[k & 1023], k & 1023);
        else r = m.delete(keys[(k + 512) & 1023]);
        i++;
        return keep(r);
      };
    },
    check: (rs, m) => {
      expectEach(rs, (j) => (j & 1) === 0 ? undefined : true);
      expectEqual("size", m.size, 512 + (rs.length & 1));
    },
  },
  {
    // One entry per call, from an iterator that starts over at the end.
    name: "iterate",
    template: (m, _keys, _misses, keep) => {
      let it = m.entries();
      return () => {
        let r = it.next();
        if (r.done) {
          it = m.entries();
          r = it.next();
        }
        return keep(r.value);
      };
    },
    check: (rs, _m, keys) => {
      const seen = new Set(rs.slice(0, 1024).map((r) => (r as [Key, number])[0]));
      expectEqual("distinct keys in the first 1024 calls", seen.size, 1024);
      for (const k of keys) if (!seen.has(k)) throw new Error(`iteration missed ${k}`);
    },
  },
];

function goMapCases(): BenchCase[] {
  const out: BenchCase[] = [];
  for (const op of MAP_OPS) {
    for (const strings of [false, true]) {
      const group = `${op.name}, ${strings ? "str16" : "int"} keys`;
      const structures: [string, () => MapLike][] = [
        ["Map", () => new Map<Key, number>()],
        ["GoMap", () => new GoMap<Key, number>()],
      ];
      if (op.name === "get hit" && !strings) {
        structures.push([
          "GoMap, float64 codecs",
          () =>
            new GoMap<number, number>({
              keys: codecs.float64,
              values: codecs.float64,
            }) as unknown as MapLike,
        ]);
      }
      for (const [name, make] of structures) {
        out.push({
          section: "gomap",
          group,
          name,
          baseline: name === "Map",
          setup() {
            const keys: readonly Key[] = strings ? strKeys(1024) : intKeys(1024);
            const misses: readonly Key[] = strings
              ? strKeys(1024, "miss")
              : intKeys(1024).map((k) => k + 1_000_000);
            const m = make();
            const fill = op.name === "set new / delete" ? 512 : 0;
            for (let i = fill; i < 1024; i++) m.set(keys[i], i);
            const run = fresh(op.template, `${group} / ${name}`)(m, keys, misses, keep);
            return { op: run, check: (results) => op.check(results, m, keys) };
          },
        });
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Section "workers": one thread of the multi-worker cases (bench/fixtures/bench_shared.ts has
// the key and value scheme). The ops check every load, as the workers' loops do.

/** A structure's load and store, as the read-mostly and disjoint-writers ops call them. */
export interface LoadStore {
  load(key: Key): number | undefined;
  store(key: Key, value: number): void;
}

/** Source: `load`, which loads into `v`, then returns `keep(v)`. */
function keptLoad(load: string): string {
  return `${load}
        return keep(v);`;
}

/**
 * read-mostly, one op per call (bench/fixtures/bench_shared.ts's op): load a pseudo-random key
 * (xorshift32) and check its value; one call in WRITE_EVERY stores a new value for the key
 * instead.
 */
const READ_MOSTLY_STEP = readMostlyOp(
  LOAD_STORE.store,
  "return undefined;",
  (k) => keptLoad(checkedLoad(LOAD_STORE, k)),
);
const READ_MOSTLY_OP = `function (map, keys, seed, keep) {
  ${READ_MOSTLY_STATE}
  return () => {
    ${READ_MOSTLY_STEP}
  };
}`;

/**
 * disjoint writers, one op per call, as the worker of {@linkcode DisjointState} `s`: even calls
 * load one of its keys and check the value is the last it stored; odd calls store a fresh value
 * for one.
 */
const DISJOINT_OP = `function (map, s, keep) {
  ${DISJOINT_STATE}
  let load = true;
  return () => {
    if (load) {
      load = false;
      ${keptLoad(disjointLoad(LOAD_STORE))}
    }
    load = true;
    ${disjointStore(LOAD_STORE)}
    return undefined;
  };
}`;

/** The structure `s` of `shared` as a {@linkcode LoadStore}. */
export function loadStoreOf(s: StructureName, shared: Shared, c: CaseName): LoadStore {
  switch (s) {
    case "SyncMap":
      return shared.syncMap!;
    case "GoMap+RWMutex":
      return new RWMutexGoMap(shared.goMap!, shared.rwMutex!);
    case "GoMap+Mutex":
      return new MutexGoMap(shared.goMap!, shared.mutex!);
    case "Map copy per worker": {
      const map = new NativeMap<Key, number>();
      if (c === "disjoint writers") { for (let k = 0; k < KEYS; k++) map.store(k, k); }
      else readMostlyKeys(c).forEach((k, i) => map.store(k, i));
      return map;
    }
    default:
      throw new Error(`no one-thread op for ${s}`);
  }
}

/**
 * The op of case `c` on `m`, as worker `index` (its seed and, for disjoint writers, its keys),
 * compiled apart for `tag`.
 */
export function workerCaseOp(c: CaseName, m: LoadStore, index: number, tag: string): () => unknown {
  if (c === "disjoint writers") {
    const make = compile(DISJOINT_OP, tag) as (
      m: LoadStore,
      s: DisjointState,
      k: Keep,
    ) => () => unknown;
    return make(m, new DisjointState(index), keep);
  }
  const make = compile(READ_MOSTLY_OP, tag) as (
    m: LoadStore,
    keys: readonly Key[],
    seed: number,
    k: Keep,
  ) => () => unknown;
  return make(m, readMostlyKeys(c), seedFor(index), keep);
}

/** The structures the one-thread worker cases compare, by case. */
export const WORKER_STRUCTURES: Readonly<Record<CaseName, readonly StructureName[]>> = {
  "read-mostly int": ["SyncMap", "GoMap+RWMutex", "Map copy per worker"],
  "read-mostly string": ["SyncMap", "GoMap+RWMutex", "Map copy per worker"],
  "disjoint writers": ["SyncMap", "GoMap+Mutex", "Map copy per worker"],
};

/** The name of a one-thread worker case's group. */
export function workerGroup(c: CaseName): string {
  return c === "read-mostly string"
    ? "read-mostly, str16 keys"
    : c === "read-mostly int"
    ? "read-mostly, int keys"
    : "disjoint writers";
}

function workerCases(): BenchCase[] {
  const out: BenchCase[] = [];
  for (const c of Object.keys(WORKER_STRUCTURES) as CaseName[]) {
    for (const s of WORKER_STRUCTURES[c]) {
      const name = s === "Map copy per worker" ? "Map" : s;
      out.push({
        section: "workers",
        group: workerGroup(c),
        name,
        baseline: s === "SyncMap",
        setup() {
          const m = loadStoreOf(s, makeShared(c, s), c);
          const op = workerCaseOp(c, m, 0, `${c} / ${s}`);
          return {
            op,
            check(results) {
              if (c === "disjoint writers") {
                expectEach(results, (j) => (j & 1) === 0 ? results[j] : undefined);
                if (results.some((r, j) => (j & 1) === 0 && typeof r !== "number")) {
                  throw new Error("a load returned no number");
                }
              } else {
                const stores = results.filter((r) => r === undefined).length;
                expectEqual("stores", stores, Math.floor(results.length / WRITE_EVERY));
              }
            },
          };
        },
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

/** Every case, by section, in the order the harnesses run them. */
export const CASES: readonly BenchCase[] = [...goMapCases(), ...goShapeCases(), ...workerCases()];
