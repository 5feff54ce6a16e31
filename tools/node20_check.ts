/**
 * Checks the package as JSR's npm layer serves it to Node.js 20, which cannot run TypeScript:
 * builds it the way JSR does (each module of the package transpiled to an ES module `.js` with
 * a `.d.ts`, relative `.ts` specifiers rewritten to `.js`, and a package.json whose `exports`
 * mirror jsr.json's), then runs the README's quick start (its types stripped) and its Node.js
 * worker example against it, in projects of their own, on the given `node`. Fails if either
 * prints anything other than what the README says, writes to stderr, fails, or does not exit by
 * itself within a few seconds.
 *
 * Usage: deno run -A tools/node20_check.ts [path to node; default: the node on PATH]
 *
 * .ci/run passes the machine's Node.js 20 (PATH there starts with tools/node_modules/.bin, whose
 * node is the pinned 24). TypeScript is the version pinned in tools/package.json.
 *
 * @module
 */
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import {
  type Example,
  EXAMPLES,
  makeProject,
  packageExports,
  ROOT,
  runExample,
} from "../tests/fixtures/examples.ts";
import { ensurePinned } from "./_pinned.ts";

/** How soon an example must have exited by itself. */
const EXIT_MS = 5_000;

const node = Deno.args[0] ?? "node";

function fail(message: string): never {
  console.error(`node20_check: ${message}`);
  Deno.exit(1);
}

/** Runs `cmd` with `args`; fails the check if it fails. Returns its stdout. */
function run(cmd: string, args: string[], cwd = ROOT): string {
  const out = new Deno.Command(cmd, {
    args,
    cwd,
    stdin: "null",
    stderr: "inherit",
  }).outputSync();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    fail(`\`${cmd} ${args.join(" ")}\` failed (exit ${out.code}):\n${stdout}`);
  }
  return stdout;
}

/** Runs the pinned tsc on `files` into `outDir`, as ES modules, without type-checking. */
function tsc(
  tsc: string,
  files: string[],
  rootDir: string,
  outDir: string,
  dts: boolean,
): void {
  run(node, [
    tsc,
    "--outDir",
    outDir,
    "--rootDir",
    rootDir,
    "--module",
    "esnext",
    "--moduleResolution",
    "bundler",
    "--target",
    "es2022",
    "--rewriteRelativeImportExtensions",
    "--allowImportingTsExtensions",
    "--noCheck",
    "--skipLibCheck",
    ...(dts ? ["--declaration"] : []),
    ...files,
  ]);
}

/** Every file under `dir`, as paths relative to it. */
function walk(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((path) => statSync(join(dir, path)).isFile());
}

/**
 * Builds the package into `dir` as JSR's npm layer would: the published modules (mod.ts and
 * src/, tests aside) to `.js` + `.d.ts`, and package.json with jsr.json's exports, each export
 * with its `types` and its `default`.
 */
function buildPackage(tscPath: string, dir: string): void {
  // Every export's module (whatever jsr.json lists: a "./redis" too, once there is one) and
  // every module of src/, as JSR publishes them all.
  const sources = new Set([
    ...Object.values(packageExports()).map((target) => target.slice(2)),
    ...walk(join(ROOT, "src"))
      .filter((path) => path.endsWith(".ts") && !path.endsWith("_test.ts"))
      .map((path) => join("src", path)),
  ]);
  tsc(tscPath, [...sources].map((path) => join(ROOT, path)), ROOT, dir, true);
  // tsc keeps `.ts` in the declarations' specifiers; JSR's point at the `.d.ts` files' `.js`.
  for (const path of walk(dir).filter((p) => p.endsWith(".d.ts"))) {
    const file = join(dir, path);
    const text = readFileSync(file, "utf8");
    writeFileSync(
      file,
      text.replace(/(["'](?:\.|\.\.)\/[^"'\n]*)\.ts(["'])/g, "$1.js$2"),
    );
  }
  const jsr = JSON.parse(readFileSync(join(ROOT, "jsr.json"), "utf8")) as {
    version: string;
  };
  const exports: Record<string, { types: string; default: string }> = {};
  // Every export of jsr.json, whatever it holds (".", "./deno", "./bun", "./node", ...).
  for (const [key, target] of Object.entries(packageExports())) {
    const js = target.replace(/\.ts$/, ".js");
    for (const file of [js, js.replace(/\.js$/, ".d.ts")]) {
      try {
        statSync(join(dir, file));
      } catch {
        fail(`export "${key}": the build has no ${file}`);
      }
    }
    exports[key] = { types: js.replace(/\.js$/, ".d.ts"), default: js };
  }
  const pkg = {
    name: "@shmap/shmap",
    version: jsr.version,
    type: "module",
    exports,
  };
  writeFileSync(join(dir, "package.json"), JSON.stringify(pkg, null, 2) + "\n");
}

/** Runs `example` in `project` on `node`; fails the check unless it goes as the README says. */
async function check(
  example: Example,
  project: string,
  command: string,
): Promise<void> {
  const shown = { ...example, command };
  const result = await runExample(shown, project, node, 15_000);
  const what = `${example.name} (\`${command}\`)`;
  if (result.code !== 0) {
    fail(
      `${what}: exit code ${result.code ?? `none (killed after ${result.ms} ms)`}\n` +
        `stdout:\n${result.stdout}\nstderr:\n${result.stderr}`,
    );
  }
  if (result.stderr !== "") fail(`${what} wrote to stderr:\n${result.stderr}`);
  if (result.stdout !== example.stdout) {
    fail(`${what} printed\n${result.stdout}\ninstead of\n${example.stdout}`);
  }
  if (result.ms >= EXIT_MS) fail(`${what} took ${result.ms} ms to exit`);
  console.log(`ok: ${what} on Node.js ${nodeVersion}, ${result.ms} ms`);
}

const nodeVersion = run(node, ["--version"]).trim();
const major = Number(/^v(\d+)\./.exec(nodeVersion)?.[1]);
if (!(major >= 20)) {
  fail(`${node} is Node.js ${nodeVersion}; the package supports 20 and later`);
}
if (major !== 20) {
  console.log(`node20_check: note: ${node} is ${nodeVersion}, not Node.js 20`);
}

const tscPath = ensurePinned({
  name: "typescript",
  bin: "bin/tsc",
  versionLine: (v) => `Version ${v}`,
});
const work = mkdtempSync(join(tmpdir(), "shmap-node20-"));
try {
  const pkg = join(work, "package");
  mkdirSync(pkg);
  buildPackage(tscPath, pkg);
  console.log(
    `built the npm package: ${walk(pkg).length} files in ${relative(work, pkg)}/`,
  );

  const nodeExamples = EXAMPLES.filter((e) => e.runtime === "node");
  if (nodeExamples.length !== 2) {
    fail("expected two Node.js examples: quick start and worker");
  }
  for (const example of nodeExamples) {
    const project = makeProject(example, { npmPackage: pkg });
    try {
      // Node 20 runs JavaScript only: strip the TypeScript examples' types (quick_start.ts
      // becomes quick_start.js, an ES module under the project's "type": "module").
      const ts = Object.keys(example.files).filter((name) => name.endsWith(".ts"));
      if (ts.length > 0) {
        tsc(
          tscPath,
          ts.map((name) => join(project, name)),
          project,
          project,
          false,
        );
      }
      const command = example.command.replace(/\.ts$/, ".js");
      await check(example, project, command);
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
