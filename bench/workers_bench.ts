// Copyright the shmap authors. MIT license.
/**
 * `deno bench`: the two cases sync.Map is for (read-mostly, disjoint writers), as ns per op of
 * one thread:
 * - alone: the one-thread cases of bench/cases.ts's "workers" section (SyncMap the baseline, a
 *   GoMap under a lock, a native Map);
 * - "+N workers": the same op on a structure shared with N background workers, which run the
 *   same case's loop (bench/workers.ts's) on it the whole time the bench runs. N fills the other
 *   hardware threads (1 on 2 cores). The figure is the time one op takes a thread while the
 *   others contend for the same map: against "alone", the cost of sharing.
 *
 * Background workers need read access to their modules, which plain `deno bench` does not
 * grant: those benches are then ignored, with a note. `deno bench -P` grants it (deno.json's
 * default permission set: read access to the project); `deno task bench` runs the full
 * throughput benchmark across 1..4 workers.
 *
 * @module
 */

import { CASES, fresh, loadStoreOf, workerCaseOp, workerGroup } from "./cases.ts";
import { type CaseName, CTRL, type StructureName } from "./fixtures/bench_shared.ts";
import { makeShared, type Shared } from "./fixtures/structures.ts";
import { header } from "./native.ts";

const OTHERS = Math.min(3, Math.max(1, navigator.hardwareConcurrency - 1));
const MAY_SPAWN =
  Deno.permissions.querySync({ name: "read", path: new URL("../", import.meta.url) })
    .state === "granted";

/** Background workers running one case's loop on one shared structure, on demand. */
class Background {
  readonly #ctrl = new Int32Array(new SharedArrayBuffer(4 * CTRL.LENGTH));
  readonly #workers: Worker[] = [];
  readonly #name: string;
  /** Settles once every worker is set up. */
  readonly ready: Promise<unknown>;

  constructor(c: CaseName, s: StructureName, shared: Shared) {
    this.#name = `${c} / ${s}`;
    const setUp: Promise<void>[] = [];
    for (let i = 0; i < OTHERS; i++) {
      const w = new Worker(new URL("./fixtures/bench_worker.ts", import.meta.url), {
        type: "module",
      });
      const { promise, resolve } = Promise.withResolvers<void>();
      setUp.push(promise);
      w.onmessage = (e: MessageEvent<{ type: string; message?: string }>) => {
        // Thrown from an event handler, this fails the bench run.
        if (e.data.type === "error") throw new Error(`${this.#name}: ${e.data.message}`);
        if (e.data.type === "ok") resolve();
      };
      w.postMessage({
        type: "setup",
        case: c,
        structure: s,
        index: i + 1, // the main thread is worker 0
        ctrl: this.#ctrl,
        syncMap: shared.syncMap?.handle,
        goMap: shared.goMap?.handle,
        mutex: shared.mutex?.handle,
        rwMutex: shared.rwMutex?.handle,
      });
      this.#workers.push(w);
    }
    this.ready = Promise.all(setUp);
  }

  /** Starts the workers' loops and returns once all run. */
  resume(): void {
    const acks = Atomics.load(this.#ctrl, CTRL.ACKS);
    Atomics.store(this.#ctrl, CTRL.SPIN, 1);
    for (const w of this.#workers) w.postMessage({ type: "spin" });
    this.#awaitAcks(acks + OTHERS);
  }

  /** Stops the workers' loops and returns once all stopped. */
  pause(): void {
    const acks = Atomics.load(this.#ctrl, CTRL.ACKS);
    Atomics.store(this.#ctrl, CTRL.SPIN, 0);
    this.#awaitAcks(acks + OTHERS);
  }

  close(): void {
    Atomics.store(this.#ctrl, CTRL.SPIN, 0);
    for (const w of this.#workers) w.terminate();
  }

  #awaitAcks(target: number): void {
    const deadline = performance.now() + 30_000;
    for (let v; (v = Atomics.load(this.#ctrl, CTRL.ACKS)) < target;) {
      if (performance.now() > deadline) throw new Error(`${this.#name}: workers do not answer`);
      Atomics.wait(this.#ctrl, CTRL.ACKS, v, 100);
    }
  }
}

/** The background running now (null: none). */
const control: { active: Background | null | undefined } = { active: undefined };

function activate(b: Background | null): void {
  control.active?.pause();
  b?.resume();
  control.active = b;
}

/**
 * Wraps `op` for a bench that runs with background `b` (null: alone). Every bench of this file
 * is wrapped, so all pay the same check; each wrapper is compiled apart ({@linkcode fresh}), so
 * its call of `op` sees one function.
 */
function guarded(op: () => unknown, b: Background | null, tag: string): () => void {
  const template = (
    op: () => unknown,
    me: Background | null,
    ctl: typeof control,
    activate: (b: Background | null) => void,
  ) =>
  () => {
    if (ctl.active !== me) activate(me);
    op();
  };
  return fresh(template, tag)(op, b, control, activate);
}

header("workers_bench.ts");
if (!MAY_SPAWN) {
  console.log(
    "The +N workers benches are ignored: starting workers needs read access. Run `deno bench -P`\n" +
      "(deno.json's default permission set) to include them.",
  );
}

const backgrounds: Background[] = [];
const SHARED: Record<CaseName, StructureName[]> = {
  "read-mostly int": ["SyncMap", "GoMap+RWMutex"],
  "read-mostly string": ["SyncMap", "GoMap+RWMutex"],
  "disjoint writers": ["SyncMap", "GoMap+Mutex"],
};
for (const c of Object.keys(SHARED) as CaseName[]) {
  const group = workerGroup(c);
  for (const k of CASES) {
    if (k.section !== "workers" || k.group !== group) continue;
    const fn = guarded(k.setup().op, null, `${group} / ${k.name}`);
    Deno.bench({ name: k.name, group, baseline: k.baseline ?? false, fn });
  }
  for (const s of SHARED[c]) {
    const name = `${s}, +${OTHERS} worker${OTHERS === 1 ? "" : "s"}`;
    if (!MAY_SPAWN) {
      Deno.bench({ name, group, ignore: true, fn: () => {} });
      continue;
    }
    const shared = makeShared(c, s);
    const b = new Background(c, s, shared);
    backgrounds.push(b);
    const op = workerCaseOp(c, loadStoreOf(s, shared, c), 0, `${group} / ${name}`);
    Deno.bench({ name, group, fn: guarded(op, b, `${group} / ${name}`) });
  }
}

// Every worker set up before the first bench, so that no start-up runs beside one.
await Promise.all(backgrounds.map((b) => b.ready));

globalThis.addEventListener("unload", () => {
  for (const b of backgrounds) b.close();
});
