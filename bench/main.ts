// PLACEHOLDER benchmark so that `deno task bench` works; it will be replaced.
import { bench, run } from "mitata";

bench("placeholder: Map set + get", () => {
  const m = new Map<number, number>();
  for (let i = 0; i < 100; i++) m.set(i, i);
  let s = 0;
  for (let i = 0; i < 100; i++) s += m.get(i)!;
  return s;
});

await run();
