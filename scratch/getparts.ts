const mod = await import((globalThis as any).process?.argv?.[2] ?? (globalThis as any).Deno?.args?.[0] ?? "../mod.ts");
const { hashWords } = await import("../src/_engine/hash.ts");
const { GoMap } = mod;
const N = 1024, R = 5_000_000;
const m = new GoMap<number, number>();
const nm = new Map<number, number>();
const keys: number[] = [];
for (let i = 0; i < N; i++) { const k = i * 7919 + 1; keys.push(k); m.set(k, i); nm.set(k, i); }
function t(name: string, f: () => number) {
  const res: number[] = [];
  for (let r = 0; r < 11; r++) { const t0 = performance.now(); const x = f(); res.push((performance.now() - t0) * 1e6 / R); if (x === -1.5) console.log(x); }
  res.sort((a, b) => a - b);
  console.log(name.padEnd(20), res[5].toFixed(2), "ns", res.map((x) => x.toFixed(0)).join(" "));
}
const f64 = new Float64Array(1), w = new Int32Array(f64.buffer);
t("Map.get", () => { let s = 0; for (let i = 0; i < R; i++) s += nm.get(keys[i & 1023])!; return s; });
t("GoMap.get", () => { let s = 0; for (let i = 0; i < R; i++) s += m.get(keys[i & 1023])!; return s; });
t("hashWords", () => { let s = 0; for (let i = 0; i < R; i++) { f64[0] = keys[i & 1023]; s ^= hashWords(w[0], w[1], 12345, 678); } return s; });
t("keys only", () => { let s = 0; for (let i = 0; i < R; i++) { s += keys[i & 1023]; } return s; });
const miss: number[] = keys.map((k) => k + 0.5);
t("GoMap.get miss", () => { let s = 0; for (let i = 0; i < R; i++) s += m.get(miss[i & 1023]) ?? 1; return s; });
t("GoMap.has", () => { let s = 0; for (let i = 0; i < R; i++) s += m.has(keys[i & 1023]) ? 1 : 0; return s; });
const same = keys.map(() => keys[5]);
t("GoMap.get same key", () => { let s = 0; for (let i = 0; i < R; i++) s += m.get(same[i & 1023])!; return s; });
