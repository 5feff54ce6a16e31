// Copyright the shmap authors. MIT license.
/**
 * Printing for the benchmarks: the provenance line every figure must carry (runtime and exact
 * version, date, CPU model, load), Markdown tables and text charts drawn with mitata's plotters.
 * Every line stays within {@linkcode WIDTH} columns. Works without permissions (Deno then prints
 * "unknown" for what it may not read).
 *
 * @module
 */

import * as mitata from "mitata";
import { cpus, loadavg, release } from "node:os";

/** The widest line the benchmarks print. */
export const WIDTH = 100;

interface DenoLike {
  version: { deno: string; v8: string };
  build: { target: string };
  args: string[];
  permissions: { querySync(d: { name: "sys"; kind?: string }): { state: string } };
  stdout: { isTerminal(): boolean };
  noColor: boolean;
}

interface BunLike {
  version: string;
  revision: string;
}

const g = globalThis as { Deno?: DenoLike; Bun?: BunLike; process?: NodeLike };

interface NodeLike {
  argv: string[];
  arch: string;
  platform: string;
  stdout: { isTTY?: boolean };
  env: Record<string, string | undefined>;
}

/** The command-line arguments, on Deno and on Bun. */
export function cliArgs(): string[] {
  return g.Deno?.args ?? g.process?.argv.slice(2) ?? [];
}

/** The runtime and its exact version, e.g. "Deno 2.9.6 (V8 15.0.245.2)" or "Bun 1.4.5 (JSC)". */
export function runtimeName(): string {
  if (g.Bun !== undefined) {
    return `Bun ${g.Bun.version} (JavaScriptCore, ${g.Bun.revision.slice(0, 9)})`;
  }
  if (g.Deno !== undefined) return `Deno ${g.Deno.version.deno} (V8 ${g.Deno.version.v8})`;
  return "unknown runtime";
}

/** Whether `kind` of Deno's sys permission is granted (always on Bun). */
function maySys(kind: string): boolean {
  return g.Deno === undefined || g.Deno.permissions.querySync({ name: "sys", kind }).state ===
      "granted";
}

/** The CPU model, or why it is unknown. */
export function cpuModel(): string {
  return maySys("cpus") ? cpus()[0]?.model.trim() ?? "unknown CPU" : "CPU unknown (no --allow-sys)";
}

/** The 1, 5 and 15 minute load averages, or "unknown". */
export function loadAverage(): string {
  return maySys("loadavg") ? loadavg().map((x) => x.toFixed(1)).join(" ") : "unknown";
}

/** The provenance of a run, one fact per line, for the top of its output. */
export function provenance(title: string): string[] {
  const os = maySys("osRelease") ? `${platform()} ${release()}` : platform();
  return [
    title,
    `  runtime  ${runtimeName()}`,
    `  date     ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC`,
    `  machine  ${cpuModel()}, ${navigator.hardwareConcurrency} hardware threads, ${os}`,
    `  load     ${loadAverage()} (1, 5, 15 min averages, at the start)`,
  ];
}

function platform(): string {
  return g.Deno !== undefined ? g.Deno.build.target : `${g.process?.platform} ${g.process?.arch}`;
}

/** Whether to print ANSI colors: only to a terminal, and not under NO_COLOR. */
export function useColors(): boolean {
  if (g.Deno !== undefined) return g.Deno.stdout.isTerminal() && !g.Deno.noColor;
  return g.process?.stdout.isTTY === true && g.process.env.NO_COLOR === undefined;
}

/** Three significant digits, without exponents: 0.123, 1.23, 12.3, 123, 1234. */
export function fmt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return "-";
  if (x >= 100 || x === 0) return x.toFixed(0);
  return x.toFixed(Math.max(0, 2 - Math.floor(Math.log10(Math.abs(x)))));
}

/** A ratio, "1.23x". */
export function times(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? "-" : `${fmt(x)}x`;
}

/** A Markdown table; `right` says which columns are right-aligned (numbers). */
export function table(header: string[], rows: string[][], right: boolean[] = []): string[] {
  const widths = header.map((h, i) => Math.max(h.length, 2, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    "| " + cells.map((c, i) => right[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])).join(" | ") +
    " |";
  const rule = "| " + widths.map((w, i) => "-".repeat(w - 1) + (right[i] ? ":" : "-")).join(" | ") +
    " |";
  return [line(header), rule, ...rows.map(line)];
}

interface Plotters {
  lineplot: {
    ascii(map: Record<string, unknown>, options: Record<string, unknown>): string[];
  };
}

const plotters = (mitata as unknown as { $: Plotters }).$;

/** One line of a {@linkcode lineChart}: its points and the character that draws it. */
export interface Series {
  name: string;
  mark: string;
  x: number[];
  y: number[];
}

/**
 * A line chart in text, drawn by mitata's lineplot: each series in its own character, y from 0
 * to the largest value. `x` and `y` say what the axes are; `unit` follows the top y label.
 */
export function lineChart(
  series: readonly Series[],
  options: { xLabels: [string, string]; unit: string; width?: number; height?: number },
): string[] {
  const xs = series.flatMap((s) => s.x);
  const xmin = Math.min(...xs), xmax = Math.max(...xs);
  const ymax = Math.max(...series.flatMap((s) => s.y));
  const map: Record<string, unknown> = {};
  for (const s of series) {
    map[`${s.mark} ${s.name}`] = {
      x: s.x.map((x) => (x - xmin) / (xmax - xmin || 1)),
      y: s.y.map((y) => y / (ymax || 1)),
      format: () => s.mark,
    };
  }
  const key = Math.max(...Object.keys(map).map((k) => k.length));
  const lines = plotters.lineplot.ascii(map, {
    colors: {},
    key,
    width: options.width ?? 44,
    height: options.height ?? 12,
    xmin: 0,
    xmax: 1,
    ymin: 0,
    ymax: 1,
    labels: {
      ymin: "0",
      ymax: `${fmt(ymax)} ${options.unit}`,
      xmin: options.xLabels[0],
      xmax: options.xLabels[1],
    },
  });
  // mitata colors the legend whatever `colors` says; this chart is for any terminal or file.
  // deno-lint-ignore no-control-regex
  return lines.map((l) => l.replace(/\x1b\[[0-9;]*m/g, "").trimEnd());
}
