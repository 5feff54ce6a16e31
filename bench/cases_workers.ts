// Copyright the shmap authors. MIT license.
/**
 * Benchmark cases, section `workers`: one thread of the multi-worker cases (see bench/cases.ts).
 *
 * @module
 */

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
  type StructureName,
  WRITE_EVERY,
} from "./fixtures/bench_shared.ts";
import { makeShared, type Shared } from "./fixtures/structures.ts";
import { MutexGoMap, NativeMap, RWMutexGoMap } from "./cases_go_shapes.ts";
import {
  type BenchCase,
  expectEach,
  expectEqual,
  type Keep,
  keep,
  type Key,
} from "./fixtures/case_kit.ts";

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

export function workerCases(): BenchCase[] {
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
