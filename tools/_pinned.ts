/**
 * Internal to tools/: finds a tool pinned in tools/package.json (Bun, Node.js, TypeScript) in
 * tools/node_modules, installing it from the npm registry first when it is missing or of another
 * version, and runs it.
 *
 * The runtimes' npm packages fetch their platform's binary in an install script. When npm skips
 * it (ignore-scripts, or a policy blocking install scripts) a stub or nothing is left where the
 * binary should be; {@linkcode ensurePinned} then runs the script by hand.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** tools/, where package.json pins the runtimes. */
export const toolsDir: string = fileURLToPath(new URL(".", import.meta.url));

/** A tool installed from npm into tools/node_modules. */
export interface Pinned {
  /** The package's name in tools/package.json's devDependencies. */
  readonly name: string;
  /** The binary, relative to the package's directory. */
  readonly bin: string;
  /** The install script to run by hand when npm skipped it: [command, ...args]. */
  readonly repair?: readonly string[];
  /** What `bin --version` prints for version `v`. */
  readonly versionLine: (v: string) => string;
}

/** The exact version tools/package.json pins for `name`. */
export function pinnedVersion(name: string): string {
  const pkg = JSON.parse(
    readFileSync(join(toolsDir, "package.json"), "utf8"),
  ) as {
    devDependencies: Record<string, string>;
  };
  const version = pkg.devDependencies[name];
  if (version === undefined) {
    throw new Error(`tools/package.json does not pin ${name}`);
  }
  return version;
}

function versionOf(bin: string): string | null {
  try {
    const out = new Deno.Command(bin, {
      args: ["--version"],
      stdout: "piped",
      stderr: "null",
    })
      .outputSync();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

function run(cmd: string, args: readonly string[], cwd: string): void {
  const { code } = new Deno.Command(cmd, {
    args: [...args],
    cwd,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).outputSync();
  if (code !== 0) {
    console.error(
      `tools: \`${cmd} ${args.join(" ")}\` failed with exit code ${code}`,
    );
    Deno.exit(code || 1);
  }
}

/**
 * Returns the path of the binary of `runtime` (a tool) at the pinned version, installing it
 * first if needed. Exits the process with an error if it cannot.
 */
export function ensurePinned(runtime: Pinned): string {
  const version = pinnedVersion(runtime.name);
  const want = runtime.versionLine(version);
  const dir = join(toolsDir, "node_modules", runtime.name);
  const bin = join(dir, runtime.bin);
  if (versionOf(bin) !== want) {
    console.error(
      `tools: installing ${runtime.name}@${version} from npm into tools/node_modules`,
    );
    run(Deno.build.os === "windows" ? "npm.cmd" : "npm", [
      "install",
      "--no-package-lock",
      "--no-audit",
      "--no-fund",
      "--loglevel=error",
    ], toolsDir);
  }
  if (versionOf(bin) !== want && runtime.repair !== undefined) {
    console.error(
      `tools: running ${runtime.name}'s install script (npm skipped it)`,
    );
    const [cmd, ...args] = runtime.repair;
    run(cmd, args, dir);
  }
  const got = versionOf(bin);
  if (got !== want) {
    console.error(
      `tools: expected ${runtime.name} ${want} at ${bin}, got ${got ?? "nothing"}`,
    );
    Deno.exit(1);
  }
  return bin;
}

/** Runs `bin` with `args`, stdio inherited, and exits with its exit code. */
export function runAndExit(bin: string, args: readonly string[]): never {
  const { code } = new Deno.Command(bin, {
    args: [...args],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).outputSync();
  Deno.exit(code);
}
