// Copyright the shmap authors. MIT license.
/**
 * What one atomic operation costs in this runtime, one thread: `Atomics.load` and a
 * compare-exchange plus exchange (a mutex's lock and unlock), against the same operations done
 * by WebAssembly (`i32.atomic.load`, `i32.atomic.rmw.cmpxchg`, `i32.atomic.rmw.xchg`) on a shared
 * `WebAssembly.Memory`, called from the same JavaScript loop, and against a plain read.
 *
 * ```
 * deno task bench:atomics
 * deno run -A tools/bun.ts bench/atomics_cost.ts [--n=N] [--rounds=N]
 * deno run -A tools/node.ts bench/atomics_cost.ts
 * ```
 *
 * V8 (Deno, Node) runs every `Atomics` call as a call to a builtin that validates the typed
 * array and the index, never inlined into optimized code, while a WebAssembly atomic is one
 * instruction behind a call; JavaScriptCore (Bun) compiles `Atomics` inline. On this project's
 * machine (2026-11-30, ns per op, medians of 5 rounds, three runs): Deno `Atomics.load` 13 to 19,
 * WebAssembly 5.5 to 6.5, plain 1; lock+unlock 26 to 40 against 11 to 14. Node 24: 15 to 19
 * against 6.5 to 7.5; 30 to 43 against 12 to 16. Bun: 2.9 against 4.4; 5.4 to 5.9 against 8.5 to
 * 9.9. Every shmap hot path takes one to four atomics, so on V8 they are most of its cost
 * (design.md, "Other costs").
 *
 * @module
 */

import { positiveInt, runtimeName } from "./fixtures/cli.ts";
import { median } from "./fixtures/timing.ts";

const N = positiveInt("n", 5_000_000);
const ROUNDS = positiveInt("rounds", 5);

// The module, in the text format:
//   (module
//     (import "e" "m" (memory 1 100 shared))
//     (func (export "load") (param i32) (result i32) (i32.atomic.load (local.get 0)))
//     (func (export "cas") (param i32 i32 i32) (result i32)
//       (i32.atomic.rmw.cmpxchg (local.get 0) (local.get 1) (local.get 2)))
//     (func (export "xchg") (param i32 i32) (result i32)
//       (i32.atomic.rmw.xchg (local.get 0) (local.get 1))))
// Addresses are byte offsets, 4-byte aligned.
// deno-fmt-ignore
const WASM = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  // types: (i32) -> i32, (i32 i32 i32) -> i32, (i32 i32) -> i32
  0x01, 0x13, 0x03, 0x60, 0x01, 0x7f, 0x01, 0x7f, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x01, 0x7f,
  0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f,
  // import "e" "m": a shared memory of 1 to 100 pages
  0x02, 0x09, 0x01, 0x01, 0x65, 0x01, 0x6d, 0x02, 0x03, 0x01, 0x64,
  // three functions of types 0, 1, 2
  0x03, 0x04, 0x03, 0x00, 0x01, 0x02,
  // exports "load", "cas", "xchg"
  0x07, 0x15, 0x03, 0x04, 0x6c, 0x6f, 0x61, 0x64, 0x00, 0x00, 0x03, 0x63, 0x61, 0x73, 0x00,
  0x01, 0x04, 0x78, 0x63, 0x68, 0x67, 0x00, 0x02,
  // bodies
  0x0a, 0x22, 0x03,
  0x08, 0x00, 0x20, 0x00, 0xfe, 0x10, 0x02, 0x00, 0x0b,
  0x0c, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfe, 0x48, 0x02, 0x00, 0x0b,
  0x0a, 0x00, 0x20, 0x00, 0x20, 0x01, 0xfe, 0x41, 0x02, 0x00, 0x0b,
]);

const memory = new WebAssembly.Memory({ initial: 1, maximum: 100, shared: true });
const instance = new WebAssembly.Instance(new WebAssembly.Module(WASM), { e: { m: memory } });
const wasmLoad = instance.exports.load as (address: number) => number;
const wasmCas = instance.exports.cas as (address: number, expected: number, next: number) => number;
const wasmXchg = instance.exports.xchg as (address: number, value: number) => number;
const i32 = new Int32Array(memory.buffer as SharedArrayBuffer, 0, 1024);
for (let i = 0; i < i32.length; i++) i32[i] = i;
if (wasmLoad(4 * 7) !== 7 || wasmCas(0, 0, 5) !== 0 || wasmXchg(0, 0) !== 5) {
  throw new Error("the WebAssembly atomics read or wrote the wrong word");
}

/** The loops, one function each so that each call site sees one callee. */
const loops: [string, (n: number) => number][] = [
  ["plain read", (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += i32[i & 1023];
    return s;
  }],
  ["Atomics.load", (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += Atomics.load(i32, i & 1023);
    return s;
  }],
  ["WebAssembly i32.atomic.load", (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) s += wasmLoad((i & 1023) << 2);
    return s;
  }],
  ["Atomics lock+unlock", (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      s += Atomics.compareExchange(i32, 0, 0, 9);
      s += Atomics.exchange(i32, 0, 0);
    }
    return s;
  }],
  ["WebAssembly lock+unlock", (n) => {
    let s = 0;
    for (let i = 0; i < n; i++) {
      s += wasmCas(0, 0, 9);
      s += wasmXchg(0, 0);
    }
    return s;
  }],
];

console.log(`${runtimeName}: ns per op, one thread, median of ${ROUNDS} rounds of ${N}`);
let sink = 0;
for (const [name, loop] of loops) {
  sink += loop(100_000); // warm-up
  const times: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    sink += loop(N);
    times.push(((performance.now() - t0) * 1e6) / N);
  }
  console.log(`  ${name.padEnd(28)} ${median(times).toFixed(2)}`);
}
if (sink === 0.5) console.log(sink);
