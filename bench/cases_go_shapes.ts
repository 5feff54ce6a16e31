// Copyright the shmap authors. MIT license.
/**
 * Benchmark cases, section `syncmap`: the shapes of Go's sync/map_bench_test.go on a SyncMap, on
 * Go's RWMutexMap (a GoMap under an RWMutex) and on a native Map (see bench/cases.ts).
 *
 * @module
 */

import { GoMap, type Mutex, RWMutex, SyncMap } from "../mod.ts";
import {
  type BenchCase,
  expectChurn,
  expectEach,
  expectEqual,
  fresh,
  intKeys,
  type Keep,
  keep,
  type Key,
  strKeys,
} from "./fixtures/case_kit.ts";

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

type GoShapeMap = MapInterface<Key, number>;

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
      // Each 1,024th call stored its own key and deleted one, so the size stays.
      if (m.size < 1023 || m.size > 1024) throw new Error(`size ${m.size}, want 1023 or 1024`);
      // The key deleted is the first a range meets, which in a SyncMap or GoMap (random
      // starting points) may be one an earlier 1,024th call stored: about once in 1,024.
      for (let j = 1024; j < rs.length; j += 1024) {
        const v = m.load(j);
        if (v !== undefined) expectEqual(`load(${j})`, v, j);
      }
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
    check: (rs, m) => expectChurn(rs, m.size),
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

export function goShapeCases(): BenchCase[] {
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
