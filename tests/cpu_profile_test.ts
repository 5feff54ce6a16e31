// Copyright the shmap authors. MIT license.
// bench/fixtures/cpu_profile.ts charges each sample to the function on top of its stack, sums a
// function's nodes, counts only the samples under the `within` function as the workload's, and
// counts the pseudo-frames and the cut stacks of the workload's window apart: checked on a
// hand-made profile whose every count is known.

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type CpuProfile, location, selfTime } from "../bench/fixtures/cpu_profile.ts";

const URL_A = "file:///repo/src/a.ts";
const URL_B = "file:///repo/bench/b.ts";

const frame = (functionName: string, url = "", lineNumber = -1) => ({
  functionName,
  url,
  lineNumber,
  columnNumber: lineNumber < 0 ? -1 : 2,
});

/**
 * (root) ─┬ (program) 2, (idle) 3, (garbage collector) 4
 *         ├ main 5 ─┬ setup 6 ── load 7        (warm-up: outside the loop)
 *         │         └ loop 8 ─┬ load 9 ── hash 10
 *         │                   ├ store 11 ── hash 12
 *         │                   └ (anonymous) 13
 *         └ load 14                            (a stack cut short: "other")
 */
const NODES: CpuProfile["nodes"] = [
  { id: 1, callFrame: frame("(root)"), children: [2, 3, 4, 5, 14] },
  { id: 2, callFrame: frame("(program)") },
  { id: 3, callFrame: frame("(idle)") },
  { id: 4, callFrame: frame("(garbage collector)") },
  { id: 5, callFrame: frame("main", URL_B, 0), children: [6, 8] },
  { id: 6, callFrame: frame("setup", URL_B, 4), children: [7] },
  { id: 7, callFrame: frame("load", URL_A, 9) },
  { id: 8, callFrame: frame("loop", URL_B, 20), children: [9, 11, 13] },
  { id: 9, callFrame: frame("load", URL_A, 9), children: [10] },
  { id: 10, callFrame: frame("hash", URL_A, 40) },
  { id: 11, callFrame: frame("store", URL_A, 60), children: [12] },
  { id: 12, callFrame: frame("hash", URL_A, 40) },
  { id: 13, callFrame: frame("", URL_B, 30) },
  { id: 14, callFrame: frame("load", URL_A, 9) },
];

// Before the loop: setup's load 3, program 1. In the loop's window (indexes 4 to 21): hash 6
// (3 under load, 3 under store), load 4, store 2, loop 1, anonymous 1, gc 2, program 1, idle 0,
// cut stack 1. After it: idle 2, load under setup 1.
const SAMPLES = [
  7,
  7,
  2,
  7, //
  10,
  9,
  10,
  4,
  12,
  9,
  11,
  14,
  10,
  12,
  9,
  8,
  2,
  4,
  12,
  9,
  11,
  13,
  3,
  3,
  7,
];

describe("selfTime", () => {
  it("charges the workload's samples to the function on top, summed over its nodes", () => {
    const report = selfTime({ nodes: NODES, samples: SAMPLES }, { within: "loop" });
    assert.equal(report.samples, 14);
    assert.deepEqual(
      report.rows.map((r) => [r.functionName, r.url, r.line, r.samples]),
      [
        ["hash", URL_A, 41, 6],
        ["load", URL_A, 10, 4],
        ["store", URL_A, 61, 2],
        ["(anonymous)", URL_B, 31, 1],
        ["loop", URL_B, 21, 1],
      ],
    );
    assert.deepEqual(report.rows.map((r) => r.percent), [6, 4, 2, 1, 1].map((n) => 100 * n / 14));
  });

  it("counts the rest of the loop's window apart, by kind", () => {
    const report = selfTime({ nodes: NODES, samples: SAMPLES }, { within: "loop" });
    assert.deepEqual(
      [report.window, report.gc, report.program, report.idle, report.other],
      [18, 2, 1, 0, 1],
    );
  });

  it("without `within`, takes every sample but the pseudo-frames'", () => {
    const report = selfTime({ nodes: NODES, samples: SAMPLES });
    assert.equal(report.samples, SAMPLES.length - 2 - 2 - 2);
    assert.deepEqual(report.rows[0], {
      functionName: "load",
      url: URL_A,
      line: 10,
      samples: 4 + 4 + 1,
      percent: 100 * 9 / report.samples,
    });
    assert.deepEqual(
      [report.window, report.gc, report.program, report.idle, report.other],
      [SAMPLES.length, 2, 2, 2, 0],
    );
  });

  it("finds no workload when `within` never runs", () => {
    const report = selfTime({ nodes: NODES, samples: SAMPLES }, { within: "absent" });
    assert.deepEqual([report.rows, report.samples, report.window], [[], 0, 0]);
  });

  it("rejects what is not a profile", () => {
    assert.throws(() => selfTime({} as CpuProfile), TypeError);
    assert.throws(() => selfTime({ nodes: NODES, samples: [1, 99] }), RangeError);
    const twoParents = NODES.map((n) => n.id === 6 ? { ...n, children: [7, 9] } : n);
    assert.throws(() => selfTime({ nodes: twoParents, samples: [] }), RangeError);
    const lostChild = NODES.map((n) => n.id === 6 ? { ...n, children: [77] } : n);
    assert.throws(() => selfTime({ nodes: lostChild, samples: [] }), RangeError);
  });
});

describe("location", () => {
  it("gives the path under the base, the 1-based line, or (native)", () => {
    const row = { functionName: "f", url: URL_A, line: 10, samples: 1, percent: 1 };
    assert.equal(location(row, "file:///repo/"), "src/a.ts:10");
    assert.equal(location(row, "file:///elsewhere/"), `${URL_A}:10`);
    assert.equal(location({ ...row, line: 0 }, "file:///repo/"), "src/a.ts");
    assert.equal(location({ ...row, url: "" }, "file:///repo/"), "(native)");
  });
});
