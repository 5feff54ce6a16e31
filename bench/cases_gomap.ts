// Copyright the shmap authors. MIT license.
/**
 * Benchmark cases, section `gomap`: GoMap against a native Map (see bench/cases.ts).
 *
 * @module
 */

import { codecs, GoMap } from "../mod.ts";
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
    check: (rs, m) => expectChurn(rs, m.size),
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

export function goMapCases(): BenchCase[] {
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
