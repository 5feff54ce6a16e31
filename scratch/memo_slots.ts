const f = new Float64Array(1), w = new Int32Array(f.buffer);
const gens: [string, number, (i: number) => number][] = [["0..1023", 1024, (i) => i], ["i*7919+1", 1024, (i) => i * 7919 + 1], ["1e6+i", 1024, (i) => 1e6 + i], ["i/4", 1024, (i) => i / 4], ["rand", 1024, () => Math.floor(Math.random() * 2 ** 40)], ["0..4095", 4096, (i) => i], ["ms timestamps", 1024, (i) => 1.7e12 + i * 1000]];
for (const [name, n, gen] of gens) {
  const slots = new Map<number, number>();
  for (let i = 0; i < n; i++) { f[0] = gen(i); const s = Math.imul(w[0] ^ w[1], 0x9e3779b1 | 0) >>> 20; slots.set(s, (slots.get(s) ?? 0) + 1); }
  let alone = 0; for (const c of slots.values()) if (c === 1) alone++;
  console.log(name, "keys", n, "distinct slots", slots.size, "keys alone", alone);
}
