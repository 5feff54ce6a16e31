const { SyncMap } = await import("../mod.ts");
const N = 1024;
const o = new SyncMap<number, number>();
for (let k = N / 2; k < N; k++) o.store(k, k);
function measuredLoop(n: number) {
  for (let i = 0; i < n; i++) { const k = i >> 1; if ((i & 1) === 0) o.store(k & (N - 1), k); else o.delete((k + N / 2) & (N - 1)); }
}
measuredLoop(200000);
const t0 = performance.now(); let ops = 0;
while (performance.now() - t0 < 3000) { measuredLoop(100000); ops += 100000; }
console.log(((performance.now() - t0) * 1e6 / ops).toFixed(1), "ns/op");
