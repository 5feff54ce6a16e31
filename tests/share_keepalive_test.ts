// Copyright the shmap authors. MIT license.
// How long the worker adapters keep a worker alive: only while a receive() waits. A worker that
// imports an adapter and is shared nothing, or whose receive() gave up on its signal, ends by
// itself once its own work is done, as it would without the adapter (node.ts on every runtime's
// node:worker_threads, bun.ts on Bun's web workers; a Deno web worker lives until it is ended,
// adapter or not). Meanwhile no share is lost, nor shown to the worker's own listeners: a share
// that comes while no receive() waits is kept for the next one, and a worker with a message
// listener of its own stays alive by it. Every worker is terminated in a finally; every wait is
// bounded.

import { test } from "node:test";
import assert from "node:assert/strict";
import { Worker as NodeWorker } from "node:worker_threads";
import { GoMap } from "../src/maps/go_map.ts";
import * as bunAdapter from "../src/workers/bun.ts";
import * as denoAdapter from "../src/workers/deno.ts";
import * as nodeAdapter from "../src/workers/node.ts";
import { Mailbox, webMailbox } from "./fixtures/adapter_harness.ts";
import { deadline, sleep } from "./fixtures/harness.ts";
import { runtime } from "./fixtures/spawn.ts";
import type { KeepAliveMode } from "./fixtures/share_keepalive_protocol.ts";

const NODE_WORKER = new URL("./fixtures/share_keepalive_node_worker.ts", import.meta.url);
const WEB_WORKER = new URL("./fixtures/share_keepalive_web_worker.ts", import.meta.url);
/** How soon a worker with nothing left to do must have ended by itself. */
const EXIT_MS = 5_000;
/** How long a worker waits for a message before the test fails. */
const MESSAGE_MS = 10_000;

/** The map every worker is shared: "k" -> "v". */
function sharedMap(): { map: GoMap<string, string> } {
  return { map: new GoMap<string, string>().set("k", "v") };
}

/** A worker started for a test, its messages, and its end (Bun's `close`, Node's `exit`). */
interface Started {
  readonly box: Mailbox;
  readonly ended: Promise<void>;
  post(data: unknown): void;
  share(): void;
  terminate(): void;
}

/** A node:worker_threads Worker running `url` with `workerData`, shared with by node.ts. */
function startNode(url: URL, workerData?: KeepAliveMode, shared = false): Started {
  const worker = shared
    ? nodeAdapter.spawn(url, sharedMap(), { workerData })
    : new NodeWorker(url, { workerData });
  const box = new Mailbox();
  worker.on("message", box.put);
  worker.on("error", (e: Error) => box.fail(new Error(`worker error: ${e.message}`)));
  const ended = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
  return {
    box,
    ended,
    post: (data) => worker.postMessage(data),
    share: () => nodeAdapter.share(worker, sharedMap()),
    terminate: () => void worker.terminate(),
  };
}

/** A web Worker running `url` in `mode` (Bun: its argv; Deno: its name), shared with or not. */
function startWeb(url: URL, mode?: KeepAliveMode, shared = false): Started {
  const adapter = runtime === "bun" ? bunAdapter : denoAdapter;
  const options = { type: "module", argv: mode === undefined ? [] : [mode], name: mode };
  const worker = shared
    ? adapter.spawn(url, sharedMap(), options as WorkerOptions)
    : new Worker(url, options as WorkerOptions);
  const box = webMailbox(worker);
  // Deno's web workers have no end event, and do not end by themselves.
  const ended = new Promise<void>((resolve) => worker.addEventListener("close", () => resolve()));
  return {
    box,
    ended,
    post: (data) => worker.postMessage(data),
    share: () => adapter.share(worker, sharedMap()),
    terminate: () => worker.terminate(),
  };
}

/** Runs `body` with a worker from `start`, terminating it whatever happens. */
async function withWorker(start: () => Started, body: (w: Started) => Promise<void>) {
  const started = start();
  try {
    await body(started);
  } finally {
    started.terminate();
  }
}

/** Waits for the worker to end by itself: within EXIT_MS, else fails. */
function endsByItself(w: Started, what: string): Promise<void> {
  return deadline(w.ended, EXIT_MS, `the worker to end by itself after ${what}`);
}

/**
 * Starts an adapter's worker in `mode` ("import-only": the worker that only imports the
 * adapter), shared the map from the start if `shared`.
 */
type Start = (mode: KeepAliveMode | "import-only", shared?: boolean) => Started;

/**
 * The tests of one adapter: `ends` whether its workers end by themselves (not Deno's web
 * workers), `keepsLateShare` whether a share that comes while nothing listens is kept, and
 * `noHandler` why an `onmessage` handler cannot be tested there, if it cannot.
 */
function keepAliveTests(
  name: string,
  start: Start,
  opts: { ends: boolean; keepsLateShare: boolean; noHandler?: string },
): void {
  if (opts.ends) {
    test(`${name}: a worker that imports the adapter and is shared nothing ends by itself`, async () => {
      await withWorker(() => start("import-only"), async (w) => {
        await endsByItself(w, "importing the adapter");
      });
    });

    test(`${name}: a worker whose receive() gave up on its signal ends by itself`, async () => {
      await withWorker(() => start("abort"), async (w) => {
        assert.deepEqual(await w.box.next(MESSAGE_MS), { aborted: "TimeoutError" });
        await endsByItself(w, "its receive() gave up");
      });
    });
  }

  if (opts.keepsLateShare) {
    test(`${name}: a share that comes after a receive() gave up goes to the next one`, async () => {
      await withWorker(() => start("abort-then-share"), async (w) => {
        assert.deepEqual(await w.box.next(MESSAGE_MS), { aborted: "TimeoutError" });
        w.share(); // while no receive() waits, and the worker has no listener of its own
        assert.deepEqual(await w.box.next(MESSAGE_MS), { got: "v", sharesSeen: 0 });
        if (opts.ends) await endsByItself(w, "its work is done");
      });
    });
  }

  for (const mode of ["listener", "handler"] as const) {
    test(
      `${name}: a worker with a message ${mode} of its own lives by it; the share goes to receive()`,
      {
        skip: mode === "handler" && opts.noHandler,
      },
      async () => {
        await withWorker(() => start(mode), async (w) => {
          // No receive() waits: the worker's own listener keeps it alive, the adapter's does not.
          await sleep(300);
          w.post("ping");
          assert.equal(await w.box.next(MESSAGE_MS), "pong");
          w.share();
          await sleep(100);
          w.post("receive");
          assert.deepEqual(await w.box.next(MESSAGE_MS), { got: "v", sharesSeen: 0 });
          w.post("bye");
          if (opts.ends) await endsByItself(w, `it removed its ${mode}`);
        });
      },
    );
  }

  test(`${name}: a share that comes during the worker's own top-level await is kept`, async () => {
    await withWorker(() => start("await-first", true), async (w) => {
      assert.deepEqual(await w.box.next(MESSAGE_MS), { got: "v", sharesSeen: 0 });
      if (opts.ends) await endsByItself(w, "its work is done");
    });
  });
}

// node.ts, through every runtime's node:worker_threads.
const IMPORT_ONLY_NODE = new URL("./fixtures/share_import_only_node_worker.ts", import.meta.url);
keepAliveTests(
  "node.ts",
  (mode, shared) =>
    mode === "import-only" ? startNode(IMPORT_ONLY_NODE) : startNode(NODE_WORKER, mode, shared),
  {
    ends: true,
    keepsLateShare: true,
    // Deno (2.9.6) calls no `parentPort.onmessage` handler while parentPort has another message
    // listener, the adapter's included (which it keeps until the share comes, see node.ts).
    noHandler: runtime === "deno"
      ? "Deno's parentPort.onmessage is not called beside another listener"
      : undefined,
  },
);

// bun.ts, on Bun's web workers. A share that comes once the worker's main module has run, while
// no receive() waits and the worker has no message listener, is lost: Bun drops a message that
// nobody listens for, and a listener would keep the worker alive.
const IMPORT_ONLY_BUN = new URL("./fixtures/share_import_only_bun_worker.ts", import.meta.url);
if (runtime === "bun") {
  keepAliveTests(
    "bun.ts",
    (mode, shared) =>
      mode === "import-only" ? startWeb(IMPORT_ONLY_BUN) : startWeb(WEB_WORKER, mode, shared),
    { ends: true, keepsLateShare: false },
  );
}

// deno.ts, on Deno's web workers, which live until they are ended, adapter or not: it listens
// until the share comes, whenever that is.
if (runtime === "deno") {
  keepAliveTests(
    "deno.ts",
    (mode, shared) => startWeb(WEB_WORKER, mode as KeepAliveMode, shared),
    { ends: false, keepsLateShare: true },
  );
}
