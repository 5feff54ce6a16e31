/**
 * Internal. Which runtime runs this thread, for the few places where they differ (how a worker's
 * end is learned, when sockets are read): read from the globals once, with no other import, so
 * that any layer may ask.
 *
 * @module
 */

/** The runtime: Bun and Deno each define a global of that name; Node neither. */
export const RUNTIME: "deno" | "bun" | "node" = (globalThis as { Bun?: unknown }).Bun !== undefined
  ? "bun"
  : (globalThis as { Deno?: unknown }).Deno !== undefined
  ? "deno"
  : "node";
