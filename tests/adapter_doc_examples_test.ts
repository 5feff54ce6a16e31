// Copyright the shmap authors. MIT license.
// The worker adapters' JSDoc examples run (`deno task check` type-checks them; `deno test --doc`
// cannot run them, see fixtures/doc_examples.ts): each runtime runs its own adapter's, the Deno
// adapter's under Deno, the Bun adapter's under Bun and the Node adapter's under Node.js, each in
// a project of its own with the worker file it names. Each must exit by itself, print what it
// should, and write nothing to stderr.

import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import nodeModule from "node:module";
import process from "node:process";
import {
  type Adapter,
  adapterFile,
  type DocExample,
  docExamples,
  exampleTagCount,
  EXPECTED_STDOUT,
  receiveEpilogue,
  receiveParent,
  STAND_IN,
  WORKER_FILE,
} from "./fixtures/doc_examples.ts";
import { makeProjectWith, runCommand } from "./fixtures/examples.ts";
import { runtime } from "./fixtures/spawn.ts";

const adapter: Adapter = runtime;
const file = adapterFile(adapter);
const COMMAND: Readonly<Record<Adapter, string>> = {
  deno: "deno run -A main.ts",
  bun: "bun main.ts",
  node: "node main.ts",
};

/**
 * The worker's source as its file holds it: worker.js is the TypeScript example with its types
 * stripped, as a user's build would ("worker.ts, compiled to worker.js").
 */
function workerSource(code: string): string {
  if (!WORKER_FILE[adapter].endsWith(".js")) return code;
  const strip = (nodeModule as { stripTypeScriptTypes?: (code: string) => string })
    .stripTypeScriptTypes;
  assert.ok(strip !== undefined, "node:module has no stripTypeScriptTypes");
  return strip(code);
}

/** Runs a project of `main` and the worker file, and checks what it printed. */
async function runProject(what: string, main: string, worker: string, stdout: string) {
  const dir = makeProjectWith(adapter, {
    "main.ts": main,
    [WORKER_FILE[adapter]]: workerSource(worker),
  }, { sources: true });
  try {
    const run = await runCommand(COMMAND[adapter], dir, process.execPath, 15_000);
    assert.equal(run.stderr, "", `${what} wrote to stderr`);
    assert.equal(run.code, 0, `${what}: exit code (null: killed after ${run.ms} ms)`);
    assert.equal(run.stdout, stdout, `${what} printed`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const examples = docExamples(file);
const where = (e: DocExample) => `${e.file}:${e.line} (${e.symbol}${e.title && `: ${e.title}`})`;

test(`${file}: every @example is a \`\`\`ts block this test knows how to run`, () => {
  assert.equal(examples.length, exampleTagCount(file), "examples found vs @example tags");
  for (const e of examples) {
    assert.ok(e.symbol in EXPECTED_STDOUT, `${where(e)}: no way to run it`);
    assert.equal(e.attributes, "", `${where(e)}: the fence says "${e.attributes}"`);
  }
  const module = examples.filter((e) => e.symbol === "module").map((e) => e.title.split(":")[0]);
  assert.deepEqual(module, ["Parent", "Worker"], "the module's examples");
});

const parent = examples.find((e) => e.symbol === "module" && e.title.startsWith("Parent"));
const worker = examples.find((e) => e.symbol === "module" && e.title.startsWith("Worker"));
if (parent !== undefined && worker !== undefined) {
  test(`${where(parent)} with ${where(worker)} as ${WORKER_FILE[adapter]}`, async () => {
    await runProject("the module's example", parent.code, worker.code, EXPECTED_STDOUT.module);
  });
}

for (const e of examples.filter((e) => e.symbol !== "module")) {
  if (e.symbol === "receive") {
    test(`${where(e)}, as the worker of a parent that shares what it expects`, async () => {
      const code = e.code + receiveEpilogue(adapter);
      await runProject(where(e), receiveParent(adapter), code, EXPECTED_STDOUT.receive);
    });
  } else {
    test(`${where(e)}, with a stand-in ${WORKER_FILE[adapter]}`, async () => {
      await runProject(where(e), e.code, STAND_IN[adapter], EXPECTED_STDOUT[e.symbol]);
    });
  }
}
