import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

// Paths are resolved from this file, not the working directory, so the test runs the same under
// `deno test` and `bun test` from anywhere.
function read(rel: string): string {
  return readFileSync(fileURLToPath(new URL(rel, import.meta.url)), "utf8");
}

function readJson(rel: string): Record<string, unknown> {
  return JSON.parse(read(rel)) as Record<string, unknown>;
}

const deno = readJson("../deno.json");
const jsr = readJson("../jsr.json");

test("package name is @shmap/shmap", () => {
  assert.equal(deno.name, "@shmap/shmap");
  assert.equal(jsr.name, "@shmap/shmap");
});

test("deno.json and jsr.json agree on name, version and exports", () => {
  assert.equal(jsr.name, deno.name);
  assert.equal(jsr.version, deno.version);
  assert.match(String(deno.version), /^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/);
  assert.deepEqual(jsr.exports, deno.exports);
  assert.deepEqual(deno.exports, {
    ".": "./mod.ts",
    "./deno": "./src/workers/deno.ts",
    "./bun": "./src/workers/bun.ts",
    "./node": "./src/workers/node.ts",
    "./redis": "./src/redis/mod.ts",
  });
});

test("README commands pin the same Deno as tools/package.json", () => {
  const tools = readJson("../tools/package.json");
  const pinned = (tools.devDependencies as Record<string, string>).deno;
  assert.match(pinned, /^\d+\.\d+\.\d+$/, "tools/package.json must pin an exact deno version");
  const readme = read("../README.md");
  for (const task of ["bench", "test"]) {
    assert.ok(
      readme.includes(`\nnpx -y deno@${pinned} task ${task}\n`),
      `README.md must contain the line: npx -y deno@${pinned} task ${task}`,
    );
  }
});

test("README's links to the repository's files lead to files the package publishes", () => {
  const publish = (deno.publish as { include: string[] }).include;
  assert.deepEqual((jsr.publish as { include: string[] }).include, publish);
  const links = [...read("../README.md").matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)]
    .map((m) => m[1])
    .filter((target) => !/^[a-z]+:/.test(target));
  assert.ok(links.length > 0, "the README links to its docs");
  for (const target of links) {
    assert.ok(
      publish.some((entry) => entry.endsWith("/") ? target.startsWith(entry) : target === entry),
      `README links to ${target}, which publish.include leaves out of the package`,
    );
    assert.doesNotThrow(() => read(`../${target}`), `README links to ${target}, which is missing`);
  }
});

test("`deno bench` as the README runs it, with no permission: every bench file loads", {
  skip: typeof Deno === "undefined" ? "runs deno" : undefined,
  timeout: 120_000,
}, () => {
  // deno.json's bench.include takes every *_bench.ts under bench/; one that needs a permission
  // at load (bench/prototypes/hash_trie_bench.ts imports by file path) failed the whole run.
  // Deno.Command, not node:child_process: Deno's spawn of its own executable passes it the
  // parent's permissions, and the run then passes whatever the config says.
  const run = new Deno.Command(Deno.execPath(), {
    args: ["bench", "--filter", "empty op"],
    cwd: fileURLToPath(new URL("..", import.meta.url)),
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).outputSync();
  const said = new TextDecoder().decode(run.stdout) + new TextDecoder().decode(run.stderr);
  assert.equal(run.code, 0, `deno bench failed:\n${said}`);
});
