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
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const toolsDir = fileURLToPath(new URL(".", import.meta.url));
const pkg = JSON.parse(readFileSync(join(toolsDir, "package.json"), "utf8")) as {
  devDependencies: Record<string, string>;
};
const pinned = pkg.devDependencies.bun;
const bunDir = join(toolsDir, "node_modules", "bun");
// The npm package's bin entry; its postinstall hard-links the platform binary over it.
const bunBin = join(bunDir, "bin", "bun.exe");
const windows = Deno.build.os === "windows";

function bunVersion(): string | null {
  try {
    const out = new Deno.Command(bunBin, { args: ["--version"], stdout: "piped", stderr: "null" })
      .outputSync();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

function run(cmd: string, args: string[], cwd: string): void {
  const { code } = new Deno.Command(cmd, {
    args,
    cwd,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).outputSync();
  if (code !== 0) {
    console.error(`tools/bun.ts: \`${cmd} ${args.join(" ")}\` failed with exit code ${code}`);
    Deno.exit(code || 1);
  }
}

if (bunVersion() !== pinned) {
  console.error(`tools/bun.ts: installing bun@${pinned} from npm into tools/node_modules`);
  run(windows ? "npm.cmd" : "npm", [
    "install",
    "--no-package-lock",
    "--no-audit",
    "--no-fund",
    "--loglevel=error",
  ], toolsDir);
}
if (bunVersion() !== pinned) {
  // npm skipped bun's postinstall (ignore-scripts, or a policy blocking install scripts), which
  // leaves a stub in place of the binary. Run it by hand: it links the platform package's binary.
  console.error("tools/bun.ts: running bun's postinstall (npm skipped it)");
  run("node", ["install.js"], bunDir);
}
const got = bunVersion();
if (got !== pinned) {
  console.error(`tools/bun.ts: expected bun ${pinned} at ${bunBin}, got ${got ?? "nothing"}`);
  Deno.exit(1);
}

const { code } = new Deno.Command(bunBin, {
  args: Deno.args,
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
}).outputSync();
Deno.exit(code);
