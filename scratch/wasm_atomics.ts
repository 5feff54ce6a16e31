const bytes = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x13, 0x03, 0x60, 0x01, 0x7f, 0x01, 0x7f, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x01, 0x7f, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f,
  0x02, 0x09, 0x01, 0x01, 0x65, 0x01, 0x6d, 0x02, 0x03, 0x01, 0x64,
  0x03, 0x04, 0x03, 0x00, 0x01, 0x02,
  0x07, 0x13, 0x03, 0x02, 0x6c, 0x64, 0x00, 0x00, 0x03, 0x63, 0x61, 0x73, 0x00, 0x01, 0x04, 0x78, 0x63, 0x68, 0x67, 0x00, 0x02,
  0x0a, 0x22, 0x03,
  0x08, 0x00, 0x20, 0x00, 0xfe, 0x10, 0x02, 0x00, 0x0b,
  0x0c, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfe, 0x48, 0x02, 0x00, 0x0b,
  0x0a, 0x00, 0x20, 0x00, 0x20, 0x01, 0xfe, 0x41, 0x02, 0x00, 0x0b,
]);
const memory = new WebAssembly.Memory({ initial: 1, maximum: 100, shared: true });
const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes), { e: { m: memory } });
const ld = exports.ld as (a: number) => number;
const cas = exports.cas as (a: number, e: number, r: number) => number;
const xchg = exports.xchg as (a: number, v: number) => number;
const i32 = new Int32Array(memory.buffer as SharedArrayBuffer);
const R = 5_000_000;
function jsLoad(n: number) { let s = 0; for (let i = 0; i < n; i++) s += Atomics.load(i32, i & 1023); return s; }
function wasmLoad(n: number) { let s = 0; for (let i = 0; i < n; i++) s += ld((i & 1023) << 2); return s; }
function plain(n: number) { let s = 0; for (let i = 0; i < n; i++) s += i32[i & 1023]; return s; }
function jsLock(n: number) { let s = 0; for (let i = 0; i < n; i++) { s += Atomics.compareExchange(i32, 5, 0, 9); s += Atomics.exchange(i32, 5, 0); } return s; }
function wasmLock(n: number) { let s = 0; for (let i = 0; i < n; i++) { s += cas(20, 0, 9); s += xchg(20, 0); } return s; }
i32[3] = 42;
if (ld(12) !== 42) throw new Error("wasm load wrong");
for (const [name, f] of [["Atomics.load", jsLoad], ["wasm i32.atomic.load", wasmLoad], ["plain", plain], ["Atomics CAS+xchg", jsLock], ["wasm cmpxchg+xchg", wasmLock]] as const) {
  f(100000);
  const res = [];
  for (let r = 0; r < 5; r++) { const t0 = performance.now(); f(R); res.push(((performance.now() - t0) * 1e6 / R).toFixed(2)); }
  console.log(name.padEnd(22), res.join(" "));
}
