// Copyright the shmap authors. MIT license.
// The worker adapters, on real workers: the runtime's web-Worker adapter (deno.ts under Deno,
// bun.ts under Bun; Node.js has no web Worker) and the node:worker_threads adapter (node.ts,
// through the runtime's worker_threads, and on Node.js itself). Each test terminates its
// workers, and fails instead of hanging.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { Worker as NodeWorker } from "node:worker_threads";
import { GoMap } from "../src/maps/go_map.ts";
import { SyncMap } from "../src/maps/sync_map.ts";
import { Mutex } from "../src/sync/mutex.ts";
import { RWMutex } from "../src/sync/rw_mutex.ts";
import * as bunAdapter from "../src/workers/bun.ts";
import * as denoAdapter from "../src/workers/deno.ts";
import * as nodeAdapter from "../src/workers/node.ts";
import type { Shareable } from "../src/workers/_share.ts";
import {
  expectOneRelease,
  isBun,
  Mailbox,
  newProbe,
  releasesOf,
  webMailbox,
} from "./fixtures/adapter_harness.ts";
import { sleep, within } from "./fixtures/harness.ts";
import { runtime } from "./fixtures/spawn.ts";
import type { Smoke } from "./fixtures/adapter_node_smoke.ts";
import type { AdapterMode, Report } from "./fixtures/adapter_protocol.ts";
import { pointCodec } from "./fixtures/point_codec.ts";

const web = isBun ? bunAdapter : denoAdapter;
const webName = isBun ? "bun.ts" : "deno.ts";
/** `test` for the web-Worker adapter's tests: they exist under Deno and Bun, not under Node. */
const webTest = runtime === "node" ? (() => {}) as unknown as typeof test : test;
const WEB_WORKER = new URL("./fixtures/adapter_web_worker.ts", import.meta.url);
const NODE_WORKER = new URL("./fixtures/adapter_node_worker.ts", import.meta.url);
const TIMEOUT_MS = 10_000;
const run = promisify(execFile);

/** The values every round-trip worker gets, and the probe that counts their release. */
function roundtripValues(): {
  values: { map: GoMap<string, unknown>; lock: Mutex; probe: Mutex };
  probe: Mutex;
} {
  const map = new GoMap<string, unknown>();
  map.set("greeting", "hello from the parent").set("count", 0);
  const probe = newProbe();
  return { values: { map, lock: new Mutex(), probe }, probe };
}

function checkRoundtrip(report: Report, map: GoMap<string, unknown>): void {
  assert.deepEqual(report, {
    ok: true,
    value: { same: true, probeLocked: false },
    sharesSeen: 0,
    userMessages: 1,
  });
  assert.deepEqual(map.get("reply"), { from: "worker", got: "hello from the parent" });
  assert.equal(map.get("count"), 1);
}

/** Starts the web worker fixture with `values`, telling it `mode`. */
function startWeb(
  values: Readonly<Record<string, Shareable>>,
  mode: AdapterMode,
): { worker: Worker; box: Mailbox } {
  const worker = web.spawn(WEB_WORKER, values);
  // The "throw" and "reject" endings fail the worker on purpose once it has reported; Deno
  // delivers errors and messages on channels of their own, so the error can come first.
  const box = webMailbox(
    worker,
    mode.end === "throw" || mode.end === "reject" ? /on purpose/ : undefined,
  );
  worker.postMessage(mode);
  return { worker, box };
}

/** Starts the node worker fixture through node.ts with `values` and `mode` as workerData. */
function startNode(
  values: Readonly<Record<string, Shareable>>,
  mode: AdapterMode,
): { worker: NodeWorker; box: Mailbox } {
  const worker = nodeAdapter.spawn(NODE_WORKER, values, { workerData: mode });
  const box = new Mailbox();
  worker.on("message", box.put);
  worker.on("error", (e: Error) => {
    // The "throw" and "reject" endings fail the worker on purpose once it has reported. Node
    // delivers that error on a channel of its own, which can overtake the report: it must not
    // fail the mailbox.
    const expected = (mode.end === "throw" || mode.end === "reject") &&
      /on purpose/.test(e.message);
    if (!expected) box.fail(new Error(`worker error: ${e.message}`));
  });
  return { worker, box };
}

/**
 * Spawns a web worker in "roundtrip" mode that ends by `end`, checks its report, then runs
 * `body` with the worker and the probe lock; terminates the worker whatever happens, and fails
 * after TIMEOUT_MS.
 */
async function webRoundtrip(
  end: AdapterMode["end"],
  body: (worker: Worker, probe: Mutex) => Promise<void>,
): Promise<void> {
  const { values, probe } = roundtripValues();
  let worker: Worker | undefined;
  await within(TIMEOUT_MS, async () => {
    const started = startWeb(values, { mode: "roundtrip", end });
    worker = started.worker;
    checkRoundtrip((await started.box.next()) as Report, values.map);
    await body(worker, probe);
  }, () => worker?.terminate());
}

// ---------------------------------------------------------------------------------------------
// The runtime's web-Worker adapter.

webTest(`${webName}: spawn and receive a GoMap and a Mutex; terminate releases once`, async () => {
  await webRoundtrip("stay", async (worker, probe) => {
    await sleep(100);
    assert.equal(releasesOf(probe), 0, "released while the worker is alive");
    worker.terminate();
    if (!isBun) assert.equal(releasesOf(probe), 1, "deno.ts releases as terminate() returns");
    await expectOneRelease(probe, "terminate()");
    worker.terminate();
    await sleep(50);
    assert.equal(releasesOf(probe), 1, "a second terminate() released again");
  });
});

const webEndings: AdapterMode["end"][] = isBun
  ? ["natural", "close", "exit", "throw", "reject"]
  : ["close", "exit", "throw", "reject"];

for (const end of webEndings) {
  webTest(`${webName}: a worker that ends by "${end}" is released once`, async () => {
    await webRoundtrip(end, async (worker, probe) => {
      await expectOneRelease(probe, `the worker's "${end}"`);
      worker.terminate();
      await sleep(50);
      assert.equal(releasesOf(probe), 1, "terminate() after the end released again");
    });
  });
}

if (runtime === "deno") {
  test("deno.ts: a worker tracked first is shared with later", async () => {
    // The tracking message carried the worker's goodbye port, and the share tried to send the
    // same port again: DataCloneError.
    const worker = new Worker(new URL("./fixtures/deno_receive_worker.ts", import.meta.url), {
      type: "module",
    });
    try {
      denoAdapter.track(worker);
      const got = new Promise((resolve) => worker.onmessage = (e) => resolve(e.data));
      denoAdapter.share(worker, { lock: new Mutex() });
      assert.equal(await within(TIMEOUT_MS, () => got), "received lock");
      assert.throws(() => denoAdapter.share(worker, { lock: new Mutex() }), /already shared/);
    } finally {
      worker.terminate();
    }
  });
}

if (runtime === "deno") {
  test("deno.ts: track() of a worker that attaches by hand and imports only mod.ts", async () => {
    // helper-104: without the adapter in the worker, track()'s message reached the worker's
    // onmessage (which took it for a handle and threw), and the worker took an id of its own,
    // so that its end was declared under another: the lock it held and its seat stayed held.
    const map = new SyncMap<string, number>();
    const lock = new Mutex();
    const worker = new Worker(new URL("./fixtures/by_hand_deno_worker.ts", import.meta.url), {
      type: "module",
    });
    let terminated = false;
    try {
      denoAdapter.track(worker);
      const errors: unknown[] = [];
      worker.onerror = (e) => {
        errors.push(e.message);
        e.preventDefault();
      };
      const ready = new Promise((resolve) => worker.onmessage = (e) => resolve(e.data));
      worker.postMessage({ map: map.handle, lock: lock.handle });
      assert.equal(await within(TIMEOUT_MS, () => ready), "holding the lock");
      assert.deepEqual(errors, []);
      assert.equal(map.load("by hand"), 1);
      assert.equal(map.stats().participants, 2);
      worker.terminate();
      terminated = true;
      // The lock comes back to the next locker, poisoned, once the worker is declared gone.
      const deadline = performance.now() + TIMEOUT_MS;
      let outcome = "still held";
      while (performance.now() < deadline) {
        try {
          if (lock.tryLock()) outcome = "taken clean";
        } catch (error) {
          outcome = (error as Error).name;
        }
        if (outcome !== "still held") break;
        await sleep(20);
      }
      assert.equal(outcome, "OwnerDeadError");
      lock.unlock();
      while (map.stats().participants > 1 && performance.now() < deadline) await sleep(20);
      assert.equal(map.stats().participants, 1, "the dead worker's seat was released");
      map.verify();
    } finally {
      if (!terminated) worker.terminate();
    }
  });
}

if (!isBun) {
  webTest(
    "deno.ts: a Deno worker that runs out of work lives on, and is not released",
    async () => {
      await webRoundtrip("natural", async (worker, probe) => {
        await sleep(200);
        assert.equal(releasesOf(probe), 0);
        worker.terminate();
        await expectOneRelease(probe, "terminate()");
      });
    },
  );
}

webTest(`${webName}: terminate() before the worker has started releases once`, async () => {
  const probe = newProbe();
  let worker: Worker | undefined;
  await within(TIMEOUT_MS, async () => {
    worker = web.spawn(WEB_WORKER, { probe });
    webMailbox(worker);
    worker.terminate();
    await expectOneRelease(probe, "an early terminate()");
  }, () => worker?.terminate());
});

webTest(`${webName}: a worker that fails to load is released once`, async () => {
  const probe = newProbe();
  let worker: Worker | undefined;
  await within(TIMEOUT_MS, async () => {
    const missing = new URL("./fixtures/adapter_no_such_worker.ts", import.meta.url);
    worker = web.spawn(missing, { probe });
    const box = webMailbox(worker);
    await expectOneRelease(probe, "a failed load");
    await assert.rejects(box.next(1_000));
  }, () => worker?.terminate());
});

webTest(`${webName}: share() with a worker made by hand; twice is an error`, async () => {
  const { values, probe } = roundtripValues();
  let worker: Worker | undefined;
  await within(TIMEOUT_MS, async () => {
    worker = new Worker(WEB_WORKER, { type: "module" });
    const box = webMailbox(worker);
    web.share(worker, values);
    assert.throws(() => web.share(worker!, { probe: new Mutex() }), {
      name: "Error",
      message: /already shared/,
    });
    worker.postMessage({ mode: "roundtrip", end: "stay" } satisfies AdapterMode);
    checkRoundtrip((await box.next()) as Report, values.map);
    worker.terminate();
    await expectOneRelease(probe, "terminate()");
  }, () => worker?.terminate());
});

// Deno: a terminated web Worker fires nothing more, so a share with it would be held for good.
// (Bun's adapter refuses a closed worker by its threadId; Node's, an exited one.)
test("deno.ts: share() and track() with a worker already terminated are refused and take nothing", {
  skip: runtime !== "deno" ? "Deno's web Worker only" : undefined,
}, () => {
  const map = new SyncMap<string, number>();
  const worker = new Worker(WEB_WORKER, { type: "module" });
  worker.terminate();
  const ended = { name: "Error", message: /this worker has been terminated/ };
  assert.throws(() => denoAdapter.share(worker, { map }), ended);
  assert.throws(() => denoAdapter.track(worker), ended);
  assert.equal(map.stats().participants, 1, "no seat reserved");
  map.verify();
});

webTest(`${webName}: user codecs are given to receive() by name`, async () => {
  const points = new GoMap<{ x: number; y: number }, string>({ keys: pointCodec });
  points.set({ x: 1, y: 2 }, "from parent");
  let worker: Worker | undefined;
  await within(TIMEOUT_MS, async () => {
    const started = startWeb({ points }, { mode: "codec", end: "stay" });
    worker = started.worker;
    assert.deepEqual(await started.box.next(), {
      ok: true,
      value: "from parent",
      sharesSeen: 0,
      userMessages: 1,
    });
    assert.equal(points.get({ x: 3, y: 4 }), "from worker");
  }, () => worker?.terminate());
});

webTest(
  `${webName}: receive() rejects without the user codec, or with codecs for no one`,
  async () => {
    const points = new GoMap<{ x: number; y: number }, string>({ keys: pointCodec });
    const workers: Worker[] = [];
    await within(TIMEOUT_MS, async () => {
      const a = startWeb({ points }, { mode: "codec-missing", end: "stay" });
      const b = startWeb({ points }, { mode: "bad-codecs", end: "stay" });
      workers.push(a.worker, b.worker);
      const missing = (await a.box.next()) as Report;
      assert.equal(missing.ok, false);
      assert.match((missing as { error: string }).error, /^TypeError: .*point/);
      const bad = (await b.box.next()) as Report;
      assert.equal(bad.ok, false);
      assert.match((bad as { error: string }).error, /^TypeError: .*"nope".*not shared/);
    }, () => workers.forEach((w) => w.terminate()));
  },
);

webTest(`${webName}: receive() stops waiting when its signal aborts`, async () => {
  let worker: Worker | undefined;
  await within(TIMEOUT_MS, async () => {
    worker = new Worker(WEB_WORKER, { type: "module" }); // never shared with
    const box = webMailbox(worker);
    worker.postMessage({ mode: "wait", end: "stay", ms: 100 } satisfies AdapterMode);
    const report = (await box.next()) as Report;
    assert.equal(report.ok, false);
    assert.match((report as { error: string }).error, /^TimeoutError/);
  }, () => worker?.terminate());
});

webTest(`${webName}: sharing a non-structure is a TypeError, and posts nothing`, async () => {
  const map = new GoMap();
  const bad: [string, unknown][] = [
    ["a handle instead of the map", { map: map.handle }],
    ["a plain object", { x: { kind: "GoMap" } }],
    ["a Map", { x: new Map() }],
    ["a number", { x: 1 }],
    ["null values", null],
    ["an array", [map]],
  ];
  for (const [what, values] of bad) {
    assert.throws(
      () => web.spawn(WEB_WORKER, values as Record<string, Shareable>),
      TypeError,
      `spawn with ${what}`,
    );
  }
  // A non-worker is named as such (not failed on further in): each adapter tests for the
  // methods it uses.
  const notWorkers: [string, unknown][] = [
    ["an object", {}],
    ["an object with postMessage only", { postMessage() {} }],
    ["null", null],
  ];
  for (const [what, notWorker] of notWorkers) {
    const named = {
      name: "TypeError",
      message:
        /: expected a Worker \(a web Worker: a node:worker_threads one goes to @shmap\/shmap\/node\), got /,
    };
    assert.throws(() => web.share(notWorker as Worker, { map }), named, `share with ${what}`);
    assert.throws(() => web.track(notWorker as Worker), named, `track with ${what}`);
  }
  const { values, probe } = roundtripValues();
  let worker: Worker | undefined;
  await within(TIMEOUT_MS, async () => {
    worker = new Worker(WEB_WORKER, { type: "module" });
    const box = webMailbox(worker);
    for (const [what, bad_] of bad) {
      assert.throws(
        () => web.share(worker!, bad_ as Record<string, Shareable>),
        TypeError,
        `share with ${what}`,
      );
    }
    // Nothing was posted and the worker is not marked shared: a good share still works, and
    // the worker's first share message is this one.
    web.share(worker, values);
    worker.postMessage({ mode: "roundtrip", end: "stay" } satisfies AdapterMode);
    checkRoundtrip((await box.next()) as Report, values.map);
    worker.terminate();
    await expectOneRelease(probe, "terminate()");
  }, () => worker?.terminate());
});

webTest(`${webName}: receive() outside a worker rejects at once`, async () => {
  await assert.rejects(web.receive(), { name: "Error", message: /in a .*worker/ });
});

// ---------------------------------------------------------------------------------------------
// node.ts, through this runtime's node:worker_threads.

test("node.ts: spawn and receive a GoMap and a Mutex; terminate releases once", async () => {
  const { values, probe } = roundtripValues();
  let worker: NodeWorker | undefined;
  await within(TIMEOUT_MS, async () => {
    const started = startNode(values, { mode: "roundtrip", end: "stay" });
    worker = started.worker;
    const report = (await started.box.next()) as Report;
    // The user's parentPort listener got no mode message here (workerData carries it).
    checkRoundtrip({ ...report, userMessages: report.userMessages + 1 }, values.map);
    await sleep(100);
    assert.equal(releasesOf(probe), 0, "released while the worker is alive");
    await worker.terminate();
    await expectOneRelease(probe, "terminate()");
    await worker.terminate();
    await sleep(50);
    assert.equal(releasesOf(probe), 1, "a second terminate() released again");
  }, () => void worker?.terminate());
});

for (const end of ["natural", "exit", "throw", "reject"] as const) {
  test(`node.ts: a worker that ends by "${end}" is released once`, async () => {
    const { values, probe } = roundtripValues();
    let worker: NodeWorker | undefined;
    await within(TIMEOUT_MS, async () => {
      const started = startNode(values, { mode: "roundtrip", end });
      worker = started.worker;
      const report = (await started.box.next()) as Report;
      checkRoundtrip({ ...report, userMessages: report.userMessages + 1 }, values.map);
      await expectOneRelease(probe, `the worker's "${end}"`);
    }, () => void worker?.terminate());
  });
}

test("node.ts: receive() outside a worker rejects at once", async () => {
  await assert.rejects(nodeAdapter.receive(), { name: "Error", message: /in a worker/ });
});

/**
 * Shares a GoMap with a user codec, and a release probe, with a node:worker_threads Worker made
 * by hand (the "codec" mode of the worker fixture), after `before(worker)`; checks the worker's
 * answer, a second share refused, and one release at its natural exit.
 */
async function codecShareByHand(before: (worker: NodeWorker) => void): Promise<void> {
  const points = new GoMap<{ x: number; y: number }, string>({ keys: pointCodec });
  points.set({ x: 1, y: 2 }, "from parent");
  const probe = newProbe();
  let worker: NodeWorker | undefined;
  await within(TIMEOUT_MS, async () => {
    worker = new NodeWorker(NODE_WORKER, { workerData: { mode: "codec", end: "natural" } });
    const box = new Mailbox();
    worker.on("message", box.put);
    worker.on("error", (e: Error) => box.fail(e));
    before(worker);
    nodeAdapter.share(worker, { points, probe });
    assert.throws(() => nodeAdapter.share(worker!, { points }), /already shared/);
    assert.deepEqual(await box.next(), {
      ok: true,
      value: "from parent",
      sharesSeen: 0,
      userMessages: 0,
    });
    assert.equal(points.get({ x: 3, y: 4 }), "from worker");
    await expectOneRelease(probe, "the worker's natural exit");
  }, () => void worker?.terminate());
}

test("node.ts: user codecs, a share with a worker made by hand, and bad input", async () => {
  await codecShareByHand((worker) => {
    const points = new GoMap<{ x: number; y: number }, string>({ keys: pointCodec });
    assert.throws(() => nodeAdapter.share(worker, { map: points.handle } as never), TypeError);
    assert.throws(
      () => nodeAdapter.share(worker, { rw: new RWMutex(), x: 2 } as never),
      TypeError,
    );
    const notWorker = { name: "TypeError", message: /: expected a node:worker_threads Worker/ };
    assert.throws(() => nodeAdapter.share({} as NodeWorker, { points }), notWorker);
    assert.throws(() => nodeAdapter.track({ postMessage() {} } as never), notWorker);
    assert.throws(() => nodeAdapter.spawn(NODE_WORKER, { x: {} } as never), TypeError);
  });
});

test("node.ts: a worker tracked first is shared with later, and released once", async () => {
  // track() (or trackAll()) and share() kept one set: a tracked worker was refused as "already
  // shared with".
  await codecShareByHand((worker) => {
    nodeAdapter.track(worker);
    nodeAdapter.track(worker); // again: nothing more
  });
});

test("node.ts: a worker that has exited is refused by share() and track(), leaking nothing", async () => {
  const map = new SyncMap<string, number>();
  const mu = new Mutex();
  await within(TIMEOUT_MS, async () => {
    const worker = new NodeWorker("process.exit(0)", { eval: true });
    await new Promise((resolve) => worker.once("exit", resolve));
    // Bun may set threadId to -1 a little after the exit event; Deno keeps it.
    const deno = "Deno" in globalThis && !("Bun" in globalThis);
    while (!deno && worker.threadId !== -1) await sleep(5);
    const before = map.stats().participants;
    assert.throws(() => nodeAdapter.share(worker, { map, mu }), /this worker has exited/);
    assert.throws(() => nodeAdapter.track(worker), /this worker has exited/);
    assert.equal(map.stats().participants, before, "no seat reserved for it");
  });
  map.verify();
});

if (isBun) {
  test("bun.ts: a web Worker that has closed is refused by share() and track()", async () => {
    const map = new SyncMap<string, number>();
    await within(TIMEOUT_MS, async () => {
      const url = URL.createObjectURL(new Blob(["process.exit(0);"], { type: "text/javascript" }));
      const worker = new Worker(url);
      await new Promise((resolve) => worker.addEventListener("close", resolve));
      const before = map.stats().participants;
      assert.throws(() => bunAdapter.share(worker, { map }), /this worker has exited/);
      assert.throws(() => bunAdapter.track(worker), /this worker has exited/);
      assert.equal(map.stats().participants, before, "no seat reserved for it");
    });
    map.verify();
  });
}

// ---------------------------------------------------------------------------------------------
// node.ts on Node.js itself, in a process of its own (its release hook is its own): every way a
// worker ends, a busy worker terminated among them. Only under Node, which runs the script and
// its worker from their TypeScript sources.

if (runtime === "node") {
  test(`node.ts on Node.js ${process.version}: every ending releases once`, async () => {
    const script = fileURLToPath(new URL("./fixtures/adapter_node_smoke.ts", import.meta.url));
    const { stdout } = await run(process.execPath, [script], { timeout: 60_000 });
    const lines = stdout.trim().split("\n");
    const smoke = JSON.parse(lines[lines.length - 1]) as Smoke;
    assert.equal(smoke.node, process.version);
    for (const [end, outcome] of Object.entries(smoke.endings)) {
      assert.deepEqual(outcome, { releases: 1, count: 1, reply: "hi" }, `ending "${end}"`);
    }
    assert.equal(Object.keys(smoke.endings).length, 6);
    assert.equal(smoke.badInput, "TypeError");
    assert.equal(smoke.receiveInMain, "Error");
  });
}
