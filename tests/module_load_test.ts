// Copyright the shmap authors. MIT license.
//
// Every module of the library loads as the first module of a process. The engine's modules bind
// the constants they import to local names as they are evaluated (docs/design.md, "Imported
// constants"); in an import cycle, a module can be evaluated before a module it imports, and
// such a binding would then throw a ReferenceError as the process loads it. Which module of a
// cycle runs first depends on which one the process imports first, so each is imported first
// once: the package's entry points, as a user's first import, and every other module.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { runChild } from "./fixtures/child.ts";

const SCRIPT = new URL("./fixtures/import_alone.ts", import.meta.url);
const SRC = new URL("../src/", import.meta.url);

function modules(): string[] {
  const found = ["../../mod.ts"];
  const walk = (dir: URL, rel: string): void => {
    for (const entry of readdirSync(fileURLToPath(dir), { withFileTypes: true })) {
      if (entry.isDirectory()) walk(new URL(`${entry.name}/`, dir), `${rel}${entry.name}/`);
      else if (entry.name.endsWith(".ts")) found.push(`../../src/${rel}${entry.name}`);
    }
  };
  walk(SRC, "");
  return found;
}

test(
  "every module of the library loads as a process's first import",
  { timeout: 300_000 },
  async () => {
    const all = modules();
    assert.ok(all.length > 50, `found only ${all.length} modules`);
    const failed: string[] = [];
    let next = 0;
    // Four children at a time: each is mostly a runtime's start-up.
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (next < all.length) {
        const module = all[next++];
        const run = await runChild(SCRIPT, [module], 60_000);
        if (run.code !== 0 || !run.stdout.includes("loaded")) {
          failed.push(
            `${module}: exit ${run.code}${run.timedOut ? " (timed out)" : ""}\n${run.stderr}`,
          );
        }
      }
    }));
    assert.deepEqual(failed, []);
  },
);
