import { GoMap, Mutex, SyncMap } from "@shmap/shmap";

// Go's map: any number of readers; writers take turns (here under a Mutex).
const hits = new GoMap<string, number>();
const lock = new Mutex();
lock.lock();
try {
  hits.set("/", (hits.get("/") ?? 0) + 1);
} finally {
  lock.unlock();
}
console.log(hits.get("/")); // 1

// Go's sync.Map: safe for concurrent use from every worker, no locking needed.
const cache = new SyncMap<string, { size: number }>();
cache.store("a.txt", { size: 12 });
const [actual, loaded] = cache.loadOrStore("a.txt", { size: 99 });
console.log(actual.size, loaded); // 12 true
cache.range((key, value) => console.log(key, value.size)); // a.txt 12
