/**
 * The cost and the benefit of the keyed hash, old and new side by side in one process:
 * `deno task bench:hash` (or `bun bench/hash.ts`).
 *
 * "old" is this library with src/_engine/hash.ts swapped for the MurmurHash3-style hash it used
 * before (tests/fixtures/murmur3_hash.ts): the bench copies src/ and mod.ts to a temporary
 * directory, replaces that one file, and imports both copies, so the two differ in the hash
 * alone.
 *
 * 1. Lookups: GoMap.get and SyncMap.load hits for int keys, short strings (5 to 8 units) and
 *    16-unit strings. Old and new alternate, `--rounds` times; the medians are reported, and
 *    the ratio of the fastest rounds too (interference only ever adds time).
 * 2. Flooding: inserting and then looking up 2^`--pairs` strings crafted to collide under the old
 *    hash for every seed (tests/fixtures/crafted_keys.ts), against as many random strings of the
 *    same length, in a GoMap and in a SyncMap; the fastest of `--reps` runs (`--old-reps` for
 *    the old hash, whose crafted runs take seconds).
 *
 * The machine is shared and noisy: read the ratios, measured in one run, not the absolutes.
 *
 * @module
 */

import { do_not_optimize } from "mitata";
import { copyFileSync, cpSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import * as current from "../mod.ts";
import { craftedStrings } from "../tests/fixtures/crafted_keys.ts";
import { option, positiveInt, runtimeName } from "./fixtures/cli.ts";
import { swapInOldHash } from "./fixtures/old_hash.ts";

type Lib = typeof current;

const ROUNDS = positiveInt("rounds", 21);
const PAIRS = positiveInt("pairs", 13);
const REPS = positiveInt("reps", 7);
const OLD_REPS = positiveInt("old-reps", 2);
const only = option("only");

/** This library with the old hash, from a temporary copy; removed again before returning. */
async function importOld(): Promise<Lib> {
  const root = fileURLToPath(new URL("..", import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), "shmap-old-hash-"));
  try {
    cpSync(join(root, "src"), join(dir, "src"), { recursive: true });
    copyFileSync(join(root, "mod.ts"), join(dir, "mod.ts"));
    swapInOldHash(dir);
    return await import(pathToFileURL(join(dir, "mod.ts")).href) as Lib;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const fmt = (x: number): string => (x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0));

function table(rows: string[][]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) {
    console.log("| " + r.map((cell, c) => cell.padEnd(widths[c])).join(" | ") + " |");
  }
}

// ---- 1. Lookups ---------------------------------------------------------------------------

const N = 1024;
const OPS = 1 << 18;

/** A lookup body: OPS lookups of the map's keys, in order, round and round. */
type Body = () => void;

/**
 * A fresh loop of OPS lookups by `method`, through the keys in order, round and round. Made with
 * the Function constructor so that every (library, keys, method) has a call site of its own: one
 * function literal shared by the old and the new map classes would make the call polymorphic
 * and measure that instead.
 */
function loop(map: unknown, method: "get" | "load", keys: readonly unknown[]): Body {
  return new Function(
    "map",
    "keys",
    "sink",
    `return () => { for (let i = 0; i < ${OPS}; i++) sink(map.${method}(keys[i & ${N - 1}])); };`,
  )(map, keys, do_not_optimize) as Body;
}

function lookupBodies(lib: Lib, keys: readonly unknown[]): { get: Body; load: Body } {
  const gm = new lib.GoMap<unknown, number>();
  const sm = new lib.SyncMap<unknown, number>();
  keys.forEach((k, i) => {
    gm.set(k, i);
    sm.store(k, i);
  });
  for (const k of keys) sm.load(k); // promote: every key in the read table
  return { get: loop(gm, "get", keys), load: loop(sm, "load", keys) };
}

/** ns per op of one call of `body`. */
function sample(body: Body, ops: number): number {
  const t0 = performance.now();
  body();
  return (performance.now() - t0) * 1e6 / ops;
}

/** Medians of old and new, alternating which goes first. */
function alternate(old: Body, now: Body): [number, number, number, number] {
  for (let i = 0; i < 3; i++) old(), now(); // warm up both
  const o: number[] = [];
  const n: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    if (r & 1) {
      o.push(sample(old, OPS));
      n.push(sample(now, OPS));
    } else {
      n.push(sample(now, OPS));
      o.push(sample(old, OPS));
    }
  }
  return [median(o), median(n), Math.min(...o), Math.min(...n)];
}

function lookups(old: Lib): void {
  const keySets: [string, unknown[]][] = [
    ["int", Array.from({ length: N }, (_, i) => i)],
    ["string, 5-8 units", Array.from({ length: N }, (_, i) => `key:${i}`)],
    [
      "string, 16 units",
      Array.from({ length: N }, (_, i) => `user:${String(i).padStart(11, "0")}`),
    ],
  ];
  const rows = [["operation", "keys", "old hash", "new hash", "new / old", "fastest: new / old"]];
  for (const [label, keys] of keySets) {
    const o = lookupBodies(old, keys);
    const n = lookupBodies(current, keys);
    for (const op of ["get", "load"] as const) {
      const [a, b, fa, fb] = alternate(o[op], n[op]);
      const name = op === "get" ? "GoMap.get hit" : "SyncMap.load hit";
      rows.push([
        name,
        label,
        fmt(a),
        fmt(b),
        (b / a).toFixed(2) + "x",
        (fb / fa).toFixed(2) + "x",
      ]);
    }
  }
  console.log(
    `\n## Lookups (${runtimeName}, ns per op, medians of ${ROUNDS} alternating rounds)\n`,
  );
  table(rows);
}

// ---- 2. Flooding --------------------------------------------------------------------------

/** Random strings of `length` code units, none a surrogate, like the crafted ones. */
function randomStrings(count: number, length: number): string[] {
  const out = new Set<string>();
  const units = new Uint16Array(length);
  while (out.size < count) {
    crypto.getRandomValues(units);
    for (let i = 0; i < length; i++) if ((units[i] & 0xf800) === 0xd800) units[i] ^= 0x8000;
    out.add(String.fromCharCode(...units));
  }
  return [...out];
}

/** Milliseconds to insert `keys` into a fresh map, and to look each up once after. */
function flood(lib: Lib, kind: "GoMap" | "SyncMap", keys: readonly string[]): [number, number] {
  if (kind === "GoMap") {
    const m = new lib.GoMap<string, number>();
    const t0 = performance.now();
    for (let i = 0; i < keys.length; i++) m.set(keys[i], i);
    const t1 = performance.now();
    for (let i = 0; i < keys.length; i++) do_not_optimize(m.get(keys[i]));
    return [t1 - t0, performance.now() - t1];
  }
  const m = new lib.SyncMap<string, number>();
  const t0 = performance.now();
  for (let i = 0; i < keys.length; i++) m.store(keys[i], i);
  const t1 = performance.now();
  for (let i = 0; i < keys.length; i++) do_not_optimize(m.load(keys[i]));
  const t2 = performance.now();
  m.close();
  return [t1 - t0, t2 - t1];
}

function flooding(old: Lib): void {
  const crafted = craftedStrings(PAIRS);
  const random = randomStrings(crafted.length, crafted[0].length);
  const rows = [[
    "map",
    "hash",
    "insert crafted",
    "insert random",
    "ratio",
    "lookup crafted",
    "lookup random",
    "ratio",
  ]];
  for (const kind of ["GoMap", "SyncMap"] as const) {
    for (const [name, lib] of [["old", old], ["new", current]] as const) {
      flood(lib, kind, random.slice(0, 512)), flood(lib, kind, crafted.slice(0, 512)); // warm up
      const times: [number, number][][] = [[], []];
      for (let r = 0; r < (lib === old ? OLD_REPS : REPS); r++) {
        if (r & 1) times[1].push(flood(lib, kind, random));
        times[0].push(flood(lib, kind, crafted));
        if (!(r & 1)) times[1].push(flood(lib, kind, random));
      }
      const [ic, lc] = [0, 1].map((j) => Math.min(...times[0].map((t) => t[j])));
      const [ir, lr] = [0, 1].map((j) => Math.min(...times[1].map((t) => t[j])));
      rows.push([
        kind,
        name,
        fmt(ic),
        fmt(ir),
        (ic / ir).toFixed(1) + "x",
        fmt(lc),
        fmt(lr),
        (lc / lr).toFixed(1) + "x",
      ]);
    }
  }
  console.log(
    `\n## Flooding (${runtimeName}): ${crafted.length} keys of ${crafted[0].length} units, ` +
      `ms, fastest of ${REPS} runs (old: ${OLD_REPS})\n`,
  );
  table(rows);
}

// ---- main ---------------------------------------------------------------------------------

const old = await importOld();
if (only === undefined || only === "lookups") lookups(old);
if (only === undefined || only === "flooding") flooding(old);
