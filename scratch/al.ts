const sab = new SharedArrayBuffer(65536, { maxByteLength: 1 << 30 });
const fixed = new Int32Array(sab, 0, 16384);
const R = 5_000_000;
function atomic(a: Int32Array, n: number) { let s = 0; for (let i = 0; i < n; i++) s += Atomics.load(a, i & 1023); return s; }
function plain(a: Int32Array, n: number) { let s = 0; for (let i = 0; i < n; i++) s += a[i & 1023]; return s; }
function one(a: Int32Array) { return Atomics.load(a, 7); }
function calls(a: Int32Array, n: number) { let s = 0; for (let i = 0; i < n; i++) s += one(a); return s; }
for (const [name, f] of [["atomic", atomic], ["plain", plain], ["atomic via call", calls]] as const) {
  f(fixed, 100000);
  const res = [];
  for (let r = 0; r < 5; r++) { const t0 = performance.now(); f(fixed, R); res.push(((performance.now() - t0) * 1e6 / R).toFixed(2)); }
  console.log(name, res.join(" "));
}
const plainSab = new Int32Array(new SharedArrayBuffer(65536));
function atomic2(a: Int32Array, n: number) { let s = 0; for (let i = 0; i < n; i++) s += Atomics.load(a, i & 1023); return s; }
function cas2(a: Int32Array, n: number) { let s = 0; for (let i = 0; i < n; i++) s += Atomics.compareExchange(a, i & 1023, 5, 5); return s; }
function cas1(a: Int32Array, n: number) { let s = 0; for (let i = 0; i < n; i++) s += Atomics.compareExchange(a, i & 1023, 5, 5); return s; }
function xchg1(a: Int32Array, n: number) { let s = 0; for (let i = 0; i < n; i++) s += Atomics.exchange(a, i & 1023, 0); return s; }
function xchg2(a: Int32Array, n: number) { let s = 0; for (let i = 0; i < n; i++) s += Atomics.exchange(a, i & 1023, 0); return s; }
for (const [name, f, arr] of [["atomic non-growable", atomic2, plainSab], ["cas non-growable", cas2, plainSab], ["cas growable", cas1, fixed], ["xchg growable", xchg1, fixed], ["xchg non-growable", xchg2, plainSab]] as const) {
  f(arr, 100000);
  const res = [];
  for (let r = 0; r < 5; r++) { const t0 = performance.now(); f(arr, R); res.push(((performance.now() - t0) * 1e6 / R).toFixed(2)); }
  console.log(name, res.join(" "));
}
