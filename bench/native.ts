// Copyright the shmap authors. MIT license.
/**
 * What the Deno-native bench files (bench/*_bench.ts, run by `deno bench`) share: the header
 * they print, and the registration of bench/cases.ts's cases as `Deno.bench` groups.
 *
 * `Deno.bench` times one call of a case's op per iteration, its own cost of a call included
 * (a few ns: the "empty op" row of go_map_bench.ts), so its figures are ns per op plus that; the
 * mitata suite (`deno task bench`) measures the same ops with a harness cost below 1 ns.
 *
 * @module
 */

import { CASES, type Section } from "./cases.ts";
import { loadAverage } from "./report.ts";

/** Prints the date, the load and how to read the figures, above Deno's own table. */
export function header(file: string): void {
  console.log(
    `${file}: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC, ` +
      `load average ${loadAverage()}, ${navigator.hardwareConcurrency} hardware threads.\n` +
      "time/iter is ns per op plus Deno.bench's own cost of a call (go_map_bench.ts: empty op).",
  );
}

/** Registers every case of `section` as a Deno.bench in its group, set up now. */
export function registerSection(section: Section): void {
  for (const c of CASES) {
    if (c.section !== section) continue;
    Deno.bench({
      name: c.name,
      group: c.group,
      baseline: c.baseline ?? false,
      fn: c.setup().op as () => void,
    });
  }
}
