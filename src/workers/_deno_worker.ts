/**
 * Internal. The side of `track()` and `share()` that runs in a Deno web worker and must run in
 * every one that uses shmap, whether or not it imports `@shmap/shmap/deno`: mod.ts imports this
 * module, so a worker that attaches a map or a lock by hand answers the parent's `track()`.
 *
 * A Deno web worker has no thread id of its own. `track()` reserves one in the parent and posts
 * it to the worker, with a port; the worker takes it (unless it took an id already) and answers
 * with the id in force, so that the parent declares the right thread gone when the worker ends.
 * Without this listener, a worker that imported only mod.ts took an id of its own, its end was
 * declared under the reserved one, and a lock it held stayed held; and the track message went on
 * to the worker's own `onmessage`, which took it for a handle.
 *
 * The listener is added as this module is evaluated, before the importing module's body sets
 * its own listeners, so it runs first and stops the message there. It acts only on track
 * messages (isTrackMessage), and only in a Deno web worker: elsewhere it is not added.
 *
 * @module
 */

import { inWorkerScope } from "../_engine/census.ts";
import { answerThreadId, isTrackMessage } from "./_share.ts";

interface Scope {
  addEventListener(type: string, listener: (event: Event) => void): void;
}

const deno = (globalThis as { Deno?: { version?: { deno?: unknown } } }).Deno;

/** Whether this thread is a Deno web worker. */
const inDenoWorker: boolean = typeof deno?.version?.deno === "string" && inWorkerScope();

/** Where to say goodbye: the port of the first share or track message, once one is here. */
let byePort: MessagePort | undefined;

/** On a share or track message: keeps its port for the goodbye, and answers on it. */
export function answerParent(port: MessagePort | undefined, reserved: number | undefined): void {
  byePort ??= port;
  answerThreadId(port, reserved);
}

/** The goodbye port, handed out once (deno.ts's goodbye, as the worker closes itself). */
export function takeByePort(): MessagePort | undefined {
  const port = byePort;
  byePort = undefined;
  return port;
}

if (inDenoWorker) {
  (globalThis as unknown as Scope).addEventListener("message", (event) => {
    const data = (event as MessageEvent).data;
    if (!isTrackMessage(data)) return;
    event.stopImmediatePropagation();
    answerParent(data.port, data.threadId);
  });
}
