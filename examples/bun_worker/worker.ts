// worker.ts
import type { SyncMap } from "@shmap/shmap";
import { receive } from "@shmap/shmap/bun";

const { cache } = await receive<{ cache: SyncMap<number, string> }>();
// Read and written in shared memory: no message carries the map's contents.
cache.store(2, `${cache.load(1)}, two`);
// Nothing left to do: the worker ends, and its share of the map is given back.
