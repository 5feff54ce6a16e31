// Copyright the shmap authors. MIT license.
// A Cluster open that gives up (connectTimeout) while the node is still answering the slot
// discovery leaves nothing running: node-redis goes on with the discovery after the destroy,
// connects a client to every master it learns and resolves its connect(); those must be closed
// too, or the process never exits. A fake Cluster node that answers CLUSTER SLOTS late, and a
// child process that opens against it and must end by itself. And an open that retries a node
// nobody listens on until its connectTimeout: the child must end by itself too.

import assert from "node:assert/strict";
import { createServer, type Socket } from "node:net";
import { test } from "node:test";
import { runChild } from "./fixtures/child.ts";
import { deadPort } from "./fixtures/redis_servers.ts";

/** The commands in `buffer` (RESP arrays of bulk strings), and what is left of it unparsed. */
function parse(buffer: string): [string[][], string] {
  const commands: string[][] = [];
  for (;;) {
    if (!buffer.startsWith("*")) return [commands, buffer];
    const end = buffer.indexOf("\r\n");
    if (end < 0) return [commands, buffer];
    const n = Number(buffer.slice(1, end));
    let at = end + 2;
    const args: string[] = [];
    for (let k = 0; k < n; k++) {
      const j = buffer.indexOf("\r\n", at);
      if (j < 0) return [commands, buffer];
      const length = Number(buffer.slice(at + 1, j));
      if (buffer.length < j + 2 + length + 2) return [commands, buffer];
      args.push(buffer.slice(j + 2, j + 2 + length));
      at = j + 2 + length + 2;
    }
    commands.push(args);
    buffer = buffer.slice(at);
  }
}

for (const extra of [false, true]) {
  // With `extra`, the discovery also names a second master, on a port nobody listens on: its
  // client fails, and the late connect() rejects rather than resolves.
  const name = extra ? ", a second master down" : "";
  test(`a Cluster open given up during slot discovery leaves the process free to exit${name}`, {
    timeout: 30_000,
  }, () => abandonedOpen(extra));
}

test(
  "a Cluster open that retries a refused connection until connectTimeout leaves the process free to exit",
  {
    timeout: 30_000,
  },
  async () => {
    // Nobody listens: the open retries the discovery (as a standalone open retries its connect)
    // until its connectTimeout, and then nothing of it (a retry's timer, a client) may be left.
    const script = new URL("./fixtures/redis_open_abandoned.ts", import.meta.url);
    const child = await runChild(script, [String(await deadPort())], 10_000);
    assert.equal(child.timedOut, false, `the child did not exit: ${child.stdout}${child.stderr}`);
    assert.match(child.stdout, /rejected after \d+ ms: .*within connectTimeout .*ECONNREFUSED/);
    const ms = Number(/rejected after (\d+) ms/.exec(child.stdout)![1]);
    assert.ok(ms >= 250, `rejected after ${ms} ms, before its connectTimeout (300 ms)`);
  },
);

async function abandonedOpen(extra: boolean): Promise<void> {
  const down = extra ? await deadPort() : 0;
  const sockets = new Set<Socket>();
  let discoveries = 0;
  const node = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    let buffer = "";
    socket.on("data", (chunk) => {
      let commands: string[][];
      [commands, buffer] = parse(buffer + chunk.toString("latin1"));
      for (const command of commands) {
        const name = command.slice(0, 2).join(" ").toUpperCase();
        if (name.startsWith("HELLO")) {
          socket.write("%1\r\n+server\r\n+redis\r\n");
        } else if (name === "CLUSTER SLOTS") {
          discoveries++;
          const { port } = node.address() as { port: number };
          const shard = (from: number, to: number, at: number, id: string) =>
            `*3\r\n:${from}\r\n:${to}\r\n*3\r\n$9\r\n127.0.0.1\r\n:${at}\r\n$2\r\n${id}\r\n`;
          const slots = extra
            ? `*2\r\n${shard(0, 8191, port, "i1")}${shard(8192, 16383, down, "i2")}`
            : `*1\r\n${shard(0, 16383, port, "i1")}`;
          setTimeout(() => socket.destroyed || socket.write(slots), 1_000);
        } else {
          socket.write("+OK\r\n");
        }
      }
    });
  });
  await new Promise<void>((resolve) => node.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = node.address() as { port: number };
    const script = new URL("./fixtures/redis_open_abandoned.ts", import.meta.url);
    const child = await runChild(script, [String(port)], 10_000);
    assert.equal(child.timedOut, false, `the child did not exit: ${child.stdout}${child.stderr}`);
    assert.match(child.stdout, /rejected after \d+ ms: .*connectTimeout/);
    assert.ok(discoveries > 0, "the open reached the slot discovery");
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => node.close(resolve));
  }
}
