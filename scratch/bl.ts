const sab = new SharedArrayBuffer(65536, { maxByteLength: 1 << 30 });
const R = 2_000_000;
let s = 0;
for (let r = 0; r < 5; r++) {
  const t0 = performance.now();
  for (let i = 0; i < R; i++) s += sab.byteLength;
  console.log("growable SAB byteLength", ((performance.now() - t0) * 1e6 / R).toFixed(1), "ns");
}
const i32 = new Int32Array(sab);
for (let r = 0; r < 3; r++) {
  const t0 = performance.now();
  for (let i = 0; i < R; i++) s += Atomics.load(i32, i & 1023);
  console.log("Atomics.load", ((performance.now() - t0) * 1e6 / R).toFixed(1), "ns");
}
if (s === 1) console.log(s);
const fixed = new Int32Array(sab, 0, 16384);
for (let r = 0; r < 3; r++) {
  const t0 = performance.now();
  for (let i = 0; i < R; i++) s += Atomics.load(fixed, i & 1023);
  console.log("Atomics.load fixed view", ((performance.now() - t0) * 1e6 / R).toFixed(1), "ns");
}
for (let r = 0; r < 3; r++) {
  const t0 = performance.now();
  for (let i = 0; i < R; i++) s += fixed[i & 1023];
  console.log("plain fixed view", ((performance.now() - t0) * 1e6 / R).toFixed(1), "ns");
}
const plainSab = new SharedArrayBuffer(65536);
const pf = new Int32Array(plainSab);
for (let r = 0; r < 3; r++) {
  const t0 = performance.now();
  for (let i = 0; i < R; i++) s += Atomics.load(pf, i & 1023);
  console.log("Atomics.load non-growable SAB", ((performance.now() - t0) * 1e6 / R).toFixed(1), "ns");
}
if (s === 1) console.log(s);
