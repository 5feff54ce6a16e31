/**
 * Runs the pinned Bun (the exact version in tools/package.json) with the given arguments,
 * installing it from the npm registry into tools/node_modules first when it is missing or of
 * another version.
 *
 * Usage: deno run -A tools/bun.ts test ./tests/
 *
 * Bun resolves bare imports such as "fast-check" through ./node_modules, so run `deno install`
 * first (the `test:bun` task does).
 *
 * @module
 */
import { ensurePinned, runAndExit } from "./_pinned.ts";

const bun = ensurePinned({
  name: "bun",
  // The npm package's bin entry; its postinstall hard-links the platform binary over it.
  bin: "bin/bun.exe",
  repair: ["node", "install.js"],
  versionLine: (v) => v,
});
runAndExit(bun, Deno.args);
