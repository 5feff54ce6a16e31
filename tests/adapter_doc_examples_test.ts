// Copyright the shmap authors. MIT license.
// The worker adapters' JSDoc examples run (`deno task check` type-checks them; `deno test --doc`
// cannot run them, see fixtures/doc_examples.ts): each runtime runs its own adapter's (the Deno
// adapter's under Deno, the Bun adapter's under Bun) and the Node adapter's, which serves all
// three, each in a project of its own with the worker file it names. Each must exit by itself,
// print what it should, and write nothing to stderr.

import { test } from "node:test";
import assert from "node:assert/strict";
import { rmSync } from "node:fs";
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
  workerFiles,
} from "./fixtures/doc_examples.ts";
import { makeProjectWith, runCommand } from "./fixtures/examples.ts";
import { runtime } from "./fixtures/spawn.ts";

/** The command line that runs a project's main.ts on this runtime. */
const COMMAND: Readonly<Record<typeof runtime, string>> = {
  deno: "deno run -A main.ts",
  bun: "bun main.ts",
  node: "node main.ts",
};

/** The adapters whose examples run here: this runtime's own, and the Node adapter's. */
const ADAPTERS: readonly Adapter[] = runtime === "node" ? ["node"] : [runtime, "node"];

/** Runs a project of `main` and the worker file on this runtime; checks what it printed. */
async function runProject(
  adapter: Adapter,
  what: string,
  main: string,
  worker: string,
  stdout: string,
): Promise<void> {
  const files = { "main.ts": main, ...workerFiles(adapter, worker) };
  const dir = makeProjectWith(runtime, files, { sources: true });
  try {
    const run = await runCommand(COMMAND[runtime], dir, process.execPath, 15_000);
    assert.equal(run.stderr, "", `${what} wrote to stderr`);
    assert.equal(run.code, 0, `${what}: exit code (null: killed after ${run.ms} ms)`);
    assert.equal(run.stdout, stdout, `${what} printed`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const where = (e: DocExample) => `${e.file}:${e.line} (${e.symbol}${e.title && `: ${e.title}`})`;

for (const adapter of ADAPTERS) {
  const file = adapterFile(adapter);
  const examples = docExamples(file);
  const worker = WORKER_FILE[adapter];

  test(`${file}: every @example is a \`\`\`ts block this test knows how to run`, () => {
    assert.equal(examples.length, exampleTagCount(file), "examples found vs @example tags");
    for (const e of examples) {
      assert.ok(e.symbol in EXPECTED_STDOUT, `${where(e)}: no way to run it`);
      assert.equal(e.attributes, "", `${where(e)}: the fence says "${e.attributes}"`);
    }
    const module = examples.filter((e) => e.symbol === "module").map((e) => e.title.split(":")[0]);
    assert.deepEqual(module, ["Parent", "Worker"], "the module's examples");
  });

  const main = examples.find((e) => e.symbol === "module" && e.title.startsWith("Parent"));
  const its = examples.find((e) => e.symbol === "module" && e.title.startsWith("Worker"));
  if (main !== undefined && its !== undefined) {
    test(`${where(main)} with ${where(its)} as ${worker}, on ${runtime}`, async () => {
      await runProject(adapter, where(main), main.code, its.code, EXPECTED_STDOUT.module);
    });
  }

  for (const e of examples.filter((e) => e.symbol !== "module")) {
    if (e.symbol === "receive") {
      test(`${where(e)} as the worker of a parent sharing what it expects, on ${runtime}`, async () => {
        const code = e.code + receiveEpilogue(adapter);
        await runProject(adapter, where(e), receiveParent(adapter), code, EXPECTED_STDOUT.receive);
      });
    } else {
      test(`${where(e)} with a stand-in ${worker}, on ${runtime}`, async () => {
        await runProject(adapter, where(e), e.code, STAND_IN[adapter], EXPECTED_STDOUT[e.symbol]);
      });
    }
  }
}
