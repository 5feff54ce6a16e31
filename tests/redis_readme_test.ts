// Copyright the shmap authors. MIT license.
// The README's RedisSyncMap migration example runs, as printed, against a redis-server started
// for this file: the block is taken from README.md, its "@shmap/shmap/redis" import pointed at
// this checkout, and run in a child process of the runtime running the test.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath, pathToFileURL } from "node:url";
import { RedisServer } from "./fixtures/redis_servers.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** The README's ```ts block that opens the map "sessions" on Redis. */
function example(): string {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
  const block = blocks.find((b) => b.includes('"@shmap/shmap/redis"') && b.includes("sessions"));
  assert.ok(block !== undefined, "README.md has the RedisSyncMap migration example");
  return block;
}

function run(file: string, env: Record<string, string>): Promise<string> {
  const deno = (globalThis as { Deno?: { execPath(): string } }).Deno;
  const [cmd, args] = deno !== undefined && !("Bun" in globalThis)
    ? [deno.execPath(), ["run", "-A", "--no-check", "--config", join(ROOT, "deno.json"), file]]
    : [process.execPath, [file]];
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env } });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Uint8Array) => (out += new TextDecoder().decode(c)));
    child.stderr.on("data", (c: Uint8Array) => (err += new TextDecoder().decode(c)));
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else reject(new Error(`the example exited with ${code}:\n${err}`));
    });
  });
}

test("the README's RedisSyncMap migration example runs and prints what it says", {
  timeout: 120_000,
}, async () => {
  const server = await RedisServer.start();
  const dir = mkdtempSync(join(tmpdir(), "shmap-readme-"));
  try {
    const mod = pathToFileURL(join(ROOT, "src/redis/mod.ts")).href;
    const code = example().replace('"@shmap/shmap/redis"', JSON.stringify(mod));
    const file = join(dir, "example.ts");
    writeFileSync(file, code);
    const out = await run(file, { REDIS_URL: server.url });
    assert.equal(out, "s1 ada 1\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
    server.stop();
  }
});
