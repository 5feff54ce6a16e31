const { hashWords } = await import("../src/_engine/hash.ts");
const which = (globalThis as any).Deno?.args?.[0] ?? (globalThis as any).process.argv[2];
(globalThis as any).HH = which === "real" ? hashWords : which === "probe" ? (lo: number, hi: number, k0: number, k1: number) => { const h = hashWords(lo, hi, k0, k1); return h; } : (lo: number, hi: number) => Math.imul(lo ^ hi, 0x9e3779b1) ^ (hi >>> 7);
const { GoMap } = await import("../mod.ts");
const N = 1024, R = 5_000_000;
const m = new GoMap<number, number>();
const keys: number[] = [];
for (let i = 0; i < N; i++) { const k = i * 7919 + 1; keys.push(k); m.set(k, i); }
function t(name: string, f: () => number) {
  const res: number[] = [];
  for (let r = 0; r < 7; r++) { const t0 = performance.now(); const x = f(); res.push((performance.now() - t0) * 1e6 / R); if (x === -1.5) console.log(x); }
  res.sort((a, b) => a - b);
  console.log(which, name.padEnd(20), res[3].toFixed(2), "ns");
}
t("GoMap.get", () => { let s = 0; for (let i = 0; i < R; i++) s += m.get(keys[i & 1023])!; return s; });
