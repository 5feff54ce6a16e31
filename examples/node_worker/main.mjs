// main.mjs
import { SyncMap } from "@shmap/shmap";
import { spawn } from "@shmap/shmap/node";

const cache = new SyncMap();
cache.store(1, "one");
const worker = spawn(new URL("./worker.mjs", import.meta.url), { cache });
// Node emits "exit" once the worker has ended, here by running out of work.
worker.on("exit", () => {
  console.log(cache.load(2)); // "one, two": the worker read 1 and stored 2
});
