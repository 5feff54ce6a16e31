// Copyright the shmap authors. MIT license.
// An arena's views remade after the buffer grew, cut short by a stack overflow at each of the
// four view constructors in turn (the overflow a deep caller can meet there, injected): the map
// must stay whole and writable. The views' length (`Arena.bytes`) is what every offset is checked
// against; left larger than a view that was not remade, it kept that view short for good, and
// the lock's recovery then took the growth's own journal entry for corruption and refused every
// later write (helper-110's sweep: a store of a new key and a range, near the stack's limit).

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GoMap } from "../src/maps/go_map.ts";
import { SyncMap } from "../src/maps/sync_map.ts";
import { engineOverflow, PADS, sweep } from "./fixtures/stack_sweep.ts";

type ViewName = "Int32Array" | "Uint8Array" | "Uint16Array" | "Float64Array";
const VIEWS: ViewName[] = ["Int32Array", "Uint8Array", "Uint16Array", "Float64Array"];

/**
 * Runs `f` with view constructor `name` replaced by one that throws the engine's overflow at
 * its first call over `buffer` with a length (a view remade after growth), once; returns
 * whether it threw.
 */
function trapped(name: ViewName, buffer: SharedArrayBuffer, f: () => void): boolean {
  const g = globalThis as unknown as Record<ViewName, unknown>;
  const Real = g[name] as new (...args: unknown[]) => unknown;
  let armed = true;
  const Trap = function (...args: unknown[]) {
    if (armed && args[0] === buffer && args.length === 3) {
      armed = false;
      throw engineOverflow;
    }
    return new Real(...args);
  };
  g[name] = Trap;
  try {
    f();
  } finally {
    g[name] = Real;
  }
  return !armed;
}

/** A value that takes about 8 KiB of the arena. */
const big = (i: number) => `${i}:${"v".repeat(8192)}`;

describe("a remake of the arena's views cut short", () => {
  /** A map of number keys as these tests write and read it. */
  interface Writes {
    buffer: SharedArrayBuffer;
    set(key: number, value: string): void;
    get(key: number): string | undefined;
    verify(): void;
  }
  const MAPS: [string, () => Writes][] = [
    ["SyncMap", () => {
      const m = new SyncMap<number, string>();
      const set = (k: number, v: string) => void m.store(k, v);
      return { buffer: m.handle.buffer, set, get: (k) => m.load(k), verify: () => m.verify() };
    }],
    ["GoMap", () => {
      const m = new GoMap<number, string>();
      const set = (k: number, v: string) => void m.set(k, v);
      return { buffer: m.handle.buffer, set, get: (k) => m.get(k), verify: () => m.verify() };
    }],
  ];

  for (const name of VIEWS) {
    for (const [kind, make] of MAPS) {
      it(`at new ${name}: a ${kind} stays whole and writable`, () => {
        const m = make();
        let i = 0;
        const hit = trapped(name, m.buffer, () => {
          for (; i < 400; i++) {
            try {
              m.set(i, big(i));
            } catch (error) {
              assert.equal(error, engineOverflow);
              break;
            }
          }
        });
        assert.ok(hit, "the buffer never grew");
        for (let k = 0; k < i + 50; k++) m.set(k, big(k));
        for (let k = 0; k < i + 50; k++) assert.equal(m.get(k), big(k));
        m.verify();
      });
    }
  }

  it("real overflows: a SyncMap's store of a new key and a range at every depth", () => {
    for (const pad of PADS) {
      const m = new SyncMap<string, number>();
      for (let i = 0; i < 600; i++) m.store(`key-${i}`, i);
      let next = 600;
      sweep(
        (i) => {
          m.store(`key-${next++}`, i);
          m.range(() => {});
        },
        pad,
        400,
      );
      m.store("after", 1);
      assert.equal(m.load("after"), 1);
      m.verify();
    }
  });
});
