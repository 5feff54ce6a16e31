import { selfTime, location } from "../bench/fixtures/cpu_profile.ts";
const dir = Deno.args[0];
const f = [...Deno.readDirSync(dir)].find((e) => e.name.endsWith(".cpuprofile"))!;
const r = selfTime(JSON.parse(Deno.readTextFileSync(`${dir}/${f.name}`)), { within: "measuredLoop" });
console.log("samples", r.samples, "gc", r.gc, "program", r.program);
for (const row of r.rows.slice(0, Number(Deno.args[1] ?? 25))) console.log(row.percent.toFixed(1).padStart(5), row.functionName, location(row, "file:///work/main/"));
