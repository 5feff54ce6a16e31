// Copyright the shmap authors. MIT license.
/**
 * What a process whose SyncMaps use both key types pays on `load` hits: a map of number keys and
 * a map of 16-unit string keys, each of 1,024 keys cycled as Go's LoadMostlyHits cycles them,
 * timed in a fresh process alone and after the other map's loads (2 M of them, in the same
 * process first). The engines' compilers tune `load` and its callees to the keys they have
 * seen, and V8 inlines by call counts, so what one map did first can slow the other; this is
 * the figure mitata's suite shows for its later cases, where every case before ran in the same
 * process.
 *
 * ```
 * deno task bench:mixed   # deno run -A bench/mixed_keys.ts [--processes=3] [--rounds=5]
 * deno run -A tools/bun.ts bench/mixed_keys.ts [--processes=3] [--rounds=5]
 * ```
 *
 * Each order runs in `--processes` child processes of the same runtime, one after another; a
 * child reports the median ns per hit of `--rounds` samples (by CPU time), and the parent the
 * median over its processes, with the ratio of each mixed order to the same keys alone.
 *
 * @module
 */

import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { SyncMap } from "../mod.ts";
import { type Body, cpuMs, median, sample } from "./fixtures/timing.ts";
import { args, option, positiveInt, runtimeName } from "./fixtures/cli.ts";

const KEYS = 1024;
const LOADS = 2_000_000;

type KeyKind = "int" | "str16";

/** The keys of `kind`: 0 to 1,023, or 16-unit strings made from them. */
function keysOf(kind: KeyKind): (number | string)[] {
  return Array.from({ length: KEYS }, (_, i) => kind === "int" ? i : `k${i}`.padStart(16, "x"));
}

/** A map of `keys`, each stored with its index, and loads that cycle through them. */
function loads(keys: readonly (number | string)[]): Body {
  const map = new SyncMap<number | string, number>();
  keys.forEach((k, i) => map.store(k, i));
  return (n) => {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += map.load(keys[i & (KEYS - 1)])!;
    if (sum < 0) throw new Error("unreachable");
  };
}

/**
 * {@linkcode loads} written again, for the first map: its call site of `load` is not the timed
 * one, so that only the library's code sees both key types (a caller's one loop over maps of
 * both, as mitata's shared case templates are, slows it more).
 */
function firstLoads(keys: readonly (number | string)[]): void {
  const map = new SyncMap<number | string, number>();
  keys.forEach((k, i) => map.store(k, i));
  let sum = 0;
  for (let i = 0; i < LOADS; i++) sum += map.load(keys[i & (KEYS - 1)])!;
  if (sum < 0) throw new Error("unreachable");
}

/** A child: `first`'s loads (none for "alone"), then the median ns per hit of `then`'s. */
function child(first: KeyKind | "alone", then: KeyKind, rounds: number): void {
  if (first !== "alone") firstLoads(keysOf(first));
  const body = loads(keysOf(then));
  for (let r = 0; r < 2; r++) sample(body, LOADS, cpuMs); // warm-up
  const times: number[] = [];
  for (let r = 0; r < rounds; r++) times.push(sample(body, LOADS, cpuMs));
  console.log(JSON.stringify({ ns: median(times) }));
}

const ORDERS: readonly [KeyKind | "alone", KeyKind][] = [
  ["alone", "int"],
  ["str16", "int"],
  ["alone", "str16"],
  ["int", "str16"],
];

if (args.includes("--child")) {
  child(
    option("first") as KeyKind | "alone",
    option("then") as KeyKind,
    positiveInt("rounds", 5),
  );
} else {
  const processes = positiveInt("processes", 3);
  const rounds = positiveInt("rounds", 5);
  const self = fileURLToPath(import.meta.url);
  const execPath = (globalThis as unknown as { process: { execPath: string } }).process.execPath;
  const childArgs = "Deno" in globalThis ? ["run", "-A", self] : [self];
  console.log(
    `${runtimeName}: SyncMap.load hit, ${KEYS} keys cycled, ns per load, median of ${processes} processes`,
  );
  const alone = new Map<KeyKind, number>();
  for (const [first, then] of ORDERS) {
    const each: number[] = [];
    for (let p = 0; p < processes; p++) {
      const out = execFileSync(
        execPath,
        [...childArgs, "--child", `--first=${first}`, `--then=${then}`, `--rounds=${rounds}`],
        { encoding: "utf8" },
      );
      each.push((JSON.parse(out.trim().split("\n").at(-1)!) as { ns: number }).ns);
    }
    const ns = median(each);
    if (first === "alone") alone.set(then, ns);
    const label = first === "alone" ? `${then} keys alone` : `${then} keys after ${first} keys`;
    const ratio = first === "alone" ? "" : ` (${(ns / alone.get(then)!).toFixed(2)}x alone)`;
    const all = each.map((x) => x.toFixed(1)).join(" ");
    console.log(`  ${label.padEnd(24)} ${ns.toFixed(1)}${ratio}   [${all}]`);
  }
}
