// main.ts
import { SyncMap } from "@shmap/shmap";
import { spawn } from "@shmap/shmap/deno";

const cache = new SyncMap<number, string>();
cache.store(1, "one");
const worker = spawn(new URL("./worker.ts", import.meta.url), { cache });
worker.onmessage = () => {
  console.log(cache.load(2)); // "one, two": the worker read 1 and stored 2
  // A Deno worker lives until it is ended; terminate() also gives back its share of the map.
  worker.terminate();
};
