// main.ts
import { SyncMap } from "@shmap/shmap";
import { spawn } from "@shmap/shmap/bun";

const cache = new SyncMap<number, string>();
cache.store(1, "one");
const worker = spawn(new URL("./worker.ts", import.meta.url), { cache });
// Bun fires "close" once the worker has ended, here by running out of work.
worker.addEventListener("close", () => {
  console.log(cache.load(2)); // "one, two": the worker read 1 and stored 2
});
