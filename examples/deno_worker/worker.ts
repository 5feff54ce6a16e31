// worker.ts
/// <reference lib="deno.worker" />
import type { SyncMap } from "@shmap/shmap";
import { receive } from "@shmap/shmap/deno";

const { cache } = await receive<{ cache: SyncMap<number, string> }>();
// Read and written in shared memory: no message carries the map's contents.
cache.store(2, `${cache.load(1)}, two`);
self.postMessage("done");
