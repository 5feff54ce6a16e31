// Copyright the shmap authors. MIT license.
// The README's runnable examples (examples/): the README shows each file verbatim with the
// command line that runs it, and each runs as printed, on the runtime running the tests, in a
// project of its own that imports "@shmap/shmap" (here, the sources): it prints what its
// comments say and exits by itself within a few seconds. (`deno task check` type-checks them.)

import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { EXAMPLES, exampleSource, makeProject, ROOT, runExample } from "./fixtures/examples.ts";
import { runtime } from "./fixtures/spawn.ts";

/** How soon an example must have exited by itself. */
const EXIT_MS = 5_000;

/** The fenced code blocks of the README, by language. */
function readmeBlocks(): { lang: string; text: string }[] {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const blocks: { lang: string; text: string }[] = [];
  for (const m of readme.matchAll(/^```(\w*)[^\n]*\n([\s\S]*?)^```$/gm)) {
    blocks.push({ lang: m[1], text: m[2] });
  }
  return blocks;
}

test("the README shows every example file verbatim, and the command line that runs it", () => {
  const blocks = readmeBlocks();
  const commands = blocks.filter((b) => b.lang === "sh").flatMap((b) => b.text.split("\n"));
  const used = new Set<string>();
  for (const example of EXAMPLES) {
    for (const path of Object.values(example.files)) {
      used.add(path);
      assert.ok(
        blocks.some((b) => b.text === exampleSource(path)),
        `README.md has no code block equal to examples/${path}`,
      );
    }
    assert.ok(
      commands.includes(example.command),
      `README.md has no sh block with the line \`${example.command}\` (${example.name})`,
    );
  }
  const files = readdirSync(join(ROOT, "examples"), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(join(ROOT, "examples").length + 1));
  assert.deepEqual(files.filter((f) => !used.has(f)), [], "files in examples/ no example uses");
});

for (const example of EXAMPLES.filter((e) => e.runtime === runtime)) {
  test(`${example.name}: \`${example.command}\` prints what it says, and exits`, async () => {
    const dir = makeProject(example, { sources: true });
    try {
      const run = await runExample(example, dir, process.execPath, 15_000);
      assert.equal(run.stderr, "", "it wrote to stderr");
      assert.equal(run.code, 0, `exit code (null: killed after ${run.ms} ms)`);
      assert.equal(run.stdout, example.stdout);
      assert.ok(run.ms < EXIT_MS, `it took ${run.ms} ms to exit`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
