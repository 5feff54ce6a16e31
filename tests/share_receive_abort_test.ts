// Copyright the shmap authors. MIT license.
// A worker whose receive() gave up on its signal ends by itself: once no receive() waits and no
// share has come, the adapter stops listening for the share message if the worker has no message
// listener of its own (a listener keeps a Node or Bun worker alive), and listens again at the
// next receive(). Meanwhile nothing else changes: a worker with a listener of its own lives by
// it and keeps getting its messages (added before the adapter's import too), a share that comes
// before receive() is called still goes to receive() and never to the worker's own listeners (a
// Bun worker whose preload imports the adapter too), a handler set after the main module ran
// does not see it; and a share that comes after a receive() gave up goes to the next receive()
// where the runtime keeps a message nobody listens for (Node's and Bun's parentPort), and is lost
// where it drops it (Deno's parentPort, Bun's web workers). node.ts runs under every runtime's
// node:worker_threads, bun.ts under Bun, deno.ts under Deno (whose web workers live until they
// are ended, adapter or not: there nothing changed). Every worker is terminated in a finally;
// every wait is bounded.

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
import type { Kind, Mode } from "./fixtures/share_receive_abort_steps.ts";

const NODE_WORKER = new URL("./fixtures/share_receive_abort_node_worker.ts", import.meta.url);
const WEB_WORKER = new URL("./fixtures/share_receive_abort_web_worker.ts", import.meta.url);
const PRELOAD = new URL("./fixtures/share_receive_abort_preload.ts", import.meta.url);
/** How soon a worker with nothing left to do must have ended by itself. */
const EXIT_MS = 5_000;
/** How long the test waits for a worker's message. */
const MESSAGE_MS = 5_000;

/** The map every worker is shared: "k" -> "v". */
function sharedMap(): { map: GoMap<string, string> } {
  return { map: new GoMap<string, string>().set("k", "v") };
}

/** A worker started for a test, its messages, and its end, where it has an end event. */
interface Started {
  readonly box: Mailbox;
  /** Settles when the worker has ended (Node's `exit`, Bun's `close`); Deno's web workers: never. */
  readonly ended: Promise<void>;
  /** Whether it has ended. */
  readonly exited: () => boolean;
  post(data: unknown): void;
  share(): void;
  terminate(): void;
}

/** How a test starts an adapter's worker. */
interface StartOptions {
  /** Shared the map from the start. */
  shared?: boolean;
  /** Bun: a module the worker preloads. */
  preload?: URL;
}

/** A promise that settles on `subscribe`'s event, and a flag of it. */
function endOf(subscribe: (done: () => void) => void): Pick<Started, "ended" | "exited"> {
  let exited = false;
  const ended = new Promise<void>((resolve) =>
    subscribe(() => {
      exited = true;
      resolve();
    })
  );
  return { ended, exited: () => exited };
}

/** A node:worker_threads Worker running the node fixture in `mode`, shared with by node.ts. */
function startNode(mode: Mode, options: StartOptions = {}): Started {
  const worker = options.shared
    ? nodeAdapter.spawn(NODE_WORKER, sharedMap(), { workerData: mode })
    : new NodeWorker(NODE_WORKER, { workerData: mode });
  const box = new Mailbox();
  worker.on("message", box.put);
  worker.on("error", (e: Error) => box.fail(new Error(`worker error: ${e.message}`)));
  return {
    box,
    ...endOf((done) => worker.once("exit", done)),
    post: (data) => worker.postMessage(data),
    share: () => nodeAdapter.share(worker, sharedMap()),
    terminate: () => void worker.terminate(),
  };
}

/** A web Worker running the web fixture in `mode` (Bun: its argv; Deno: its name). */
function startWeb(mode: Mode, options: StartOptions = {}): Started {
  const adapter = runtime === "bun" ? bunAdapter : denoAdapter;
  const workerOptions = {
    type: "module",
    argv: [mode],
    name: mode,
    ...(options.preload === undefined ? {} : { preload: [options.preload.href] }),
  } as WorkerOptions;
  const worker = options.shared
    ? adapter.spawn(WEB_WORKER, sharedMap(), workerOptions)
    : new Worker(WEB_WORKER, workerOptions);
  const box = webMailbox(worker);
  return {
    box,
    // Deno's web workers have no end event, and do not end by themselves.
    ...endOf((done) => worker.addEventListener("close", done)),
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

/** One adapter under the runtime running the tests. */
interface Adapter {
  readonly name: string;
  start(mode: Mode, options?: StartOptions): Started;
  /** Whether its workers end by themselves (not Deno's web workers). */
  readonly ends: boolean;
  /** Whether a share that comes while the adapter does not listen is kept for receive(). */
  readonly keepsLateShare: boolean;
  /** The kinds of listener of the worker's own tested. */
  readonly kinds: readonly Kind[];
  /**
   * The kinds of listener of the worker's own, added after the adapter's import, that a share
   * coming after a receive() gave up reaches instead of the next receive() (documented).
   */
  readonly unseenKinds?: readonly Kind[];
  /** Whether an `onmessage` handler can be tested beside the adapter's listener. */
  readonly handlerBeside: boolean;
}

function abortTests(adapter: Adapter): void {
  const { name, start } = adapter;

  test(`${name}: a worker whose receive() gave up on its signal ends by itself`, {
    skip: !adapter.ends && "a Deno web worker lives until it is ended, adapter or not",
  }, async () => {
    await withWorker(() => start("abort"), async (w) => {
      assert.deepEqual(await w.box.next(MESSAGE_MS), { aborted: "TimeoutError" });
      await endsByItself(w, "its receive() gave up");
    });
  });

  test(
    `${name}: a share after a receive() gave up ${
      adapter.keepsLateShare ? "goes to the next receive()" : "is lost (the runtime drops it)"
    }`,
    async () => {
      await withWorker(() => start("abort-then-share"), async (w) => {
        assert.deepEqual(await w.box.next(MESSAGE_MS), { aborted: "TimeoutError" });
        w.share(); // while no receive() waits, and the worker has no listener of its own
        assert.deepEqual(
          await w.box.next(MESSAGE_MS),
          adapter.keepsLateShare ? { got: "v", sharesSeen: 0 } : { error: "TimeoutError" },
        );
        if (adapter.ends) await endsByItself(w, "its work is done");
      });
    },
  );

  for (const kind of adapter.kinds) {
    test(`${name}: a listener (${kind}) added before the adapter keeps the worker alive and getting messages after receive() gave up`, async () => {
      await withWorker(() => start(`own-before:${kind}`), async (w) => {
        assert.deepEqual(await w.box.next(MESSAGE_MS), { aborted: "TimeoutError" });
        await sleep(200);
        assert.equal(w.exited(), false, "the worker exited with a listener of its own");
        w.post("ping");
        assert.equal(await w.box.next(MESSAGE_MS), "pong");
        // It removes its listener, and gives up on one more receive(): nothing holds it then.
        // (Bun ends a node:worker_threads worker that clears its parentPort.onmessage at once,
        // whatever else listens: the report of that receive() may not come.)
        w.post("bye");
        if (adapter.ends) await endsByItself(w, "it removed its listener");
      });
    });

    const unseen = adapter.unseenKinds?.includes(kind) === true;
    test(
      `${name}: a listener (${kind}) added after the adapter keeps the worker alive; a share after receive() gave up ${
        unseen ? "reaches it (documented)" : "goes to the next receive()"
      }`,
      async () => {
        await withWorker(() => start(`own-after:${kind}`), async (w) => {
          assert.deepEqual(await w.box.next(MESSAGE_MS), { aborted: "TimeoutError" });
          await sleep(200);
          assert.equal(w.exited(), false, "the worker exited with a listener of its own");
          w.post("ping");
          assert.equal(await w.box.next(MESSAGE_MS), "pong");
          w.share();
          await sleep(100);
          w.post("receive");
          assert.deepEqual(
            await w.box.next(MESSAGE_MS),
            unseen ? { error: "TimeoutError" } : { got: "v", sharesSeen: 0 },
          );
          w.post("bye");
          if (adapter.ends) await endsByItself(w, "it removed its listener");
        });
      },
    );
  }

  test(`${name}: a share that comes before receive() is called goes to it, not to the worker's listener`, async () => {
    await withWorker(() => start("share-first", { shared: true }), async (w) => {
      assert.deepEqual(await w.box.next(MESSAGE_MS), { got: "v", sharesSeen: 0 });
      w.post("ping");
      assert.equal(await w.box.next(MESSAGE_MS), "pong");
      w.post("bye");
      if (adapter.ends) await endsByItself(w, "it removed its listener");
    });
  });

  for (const mode of ["handler-late", "abort-handler-late"] as const) {
    const after = mode === "abort-handler-late" ? ", after a receive() gave up," : "";
    test(
      `${name}: an onmessage handler set${after} once the main module ran does not see the share; receive() gets it`,
      {
        skip: !adapter.handlerBeside &&
          "Deno's parentPort.onmessage is not called beside another listener",
      },
      async () => {
        await withWorker(() => start(mode), async (w) => {
          if (mode === "abort-handler-late") {
            assert.deepEqual(await w.box.next(MESSAGE_MS), { aborted: "TimeoutError" });
          }
          assert.equal(await w.box.next(MESSAGE_MS), "ready");
          w.share();
          assert.deepEqual(await w.box.next(MESSAGE_MS), { got: "v", sharesSeen: 0 });
          w.post("ping");
          assert.equal(await w.box.next(MESSAGE_MS), "pong");
          w.post("bye");
          if (adapter.ends) await endsByItself(w, "it cleared its handler");
        });
      },
    );
  }
}

// node.ts, through every runtime's node:worker_threads. Deno's parentPort drops a message nobody
// listens for, and calls no `onmessage` handler while another message listener is there.
abortTests({
  name: "node.ts",
  start: startNode,
  ends: true,
  keepsLateShare: runtime !== "deno",
  kinds: runtime === "deno" ? ["on", "addEventListener"] : ["on", "addEventListener", "onmessage"],
  handlerBeside: runtime !== "deno",
});

// bun.ts, on Bun's web workers, which drop a message nobody listens for; the adapter cannot see
// the worker's addEventListener listeners (see bun.ts).
if (runtime === "bun") {
  abortTests({
    name: "bun.ts",
    start: startWeb,
    ends: true,
    keepsLateShare: false,
    kinds: ["addEventListener", "onmessage"],
    unseenKinds: ["addEventListener"],
    handlerBeside: true,
  });

  test("bun.ts: a worker whose preload imports the adapter gets the share and its messages", async () => {
    await withWorker(
      () => startWeb("share-first", { shared: true, preload: PRELOAD }),
      async (w) => {
        assert.deepEqual(await w.box.next(MESSAGE_MS), { got: "v", sharesSeen: 0 });
        w.post("ping");
        assert.equal(await w.box.next(MESSAGE_MS), "pong");
        w.post("bye");
        await endsByItself(w, "it removed its listener");
      },
    );
  });
}

// deno.ts, on Deno's web workers, which live until they are ended: the adapter listens until the
// share comes, as before.
if (runtime === "deno") {
  abortTests({
    name: "deno.ts",
    start: startWeb,
    ends: false,
    keepsLateShare: true,
    kinds: ["addEventListener", "onmessage"],
    handlerBeside: true,
  });
}
