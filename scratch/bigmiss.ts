// Cost of the memo when it cannot help: a GoMap/SyncMap of 1M random number keys, random gets.
const mod = await import((globalThis as any).Deno?.args?.[0] ?? (globalThis as any).process.argv[2]);
const N = 1 << 20, R = 2_000_000;
const keys = Array.from({ length: N }, () => Math.floor(Math.random() * 2 ** 40));
const m = new mod.GoMap<number, number>({ maxBytes: 2 ** 30 });
keys.forEach((k: number, i: number) => m.set(k, i));
const order = Array.from({ length: R }, () => keys[Math.floor(Math.random() * N)]);
const res: number[] = [];
for (let r = 0; r < 9; r++) { const t0 = performance.now(); let s = 0; for (let i = 0; i < R; i++) s += m.get(order[i]); res.push((performance.now() - t0) * 1e6 / R); if (s === 0.5) console.log(s); }
res.sort((a, b) => a - b); console.log("GoMap.get 1M random", res[4].toFixed(1));
