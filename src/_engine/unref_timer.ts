/**
 * Internal. Letting the process exit while a timer of ours is pending.
 *
 * @module
 */

/**
 * Makes `timer` not keep the process alive: Node's and Bun's timers are objects with `unref()`,
 * Deno's are numbers, unreferenced through `Deno.unrefTimer`.
 */
export function unrefTimer(timer: ReturnType<typeof setTimeout>): void {
  if (typeof timer === "object" && timer !== null && "unref" in timer) {
    (timer as { unref(): void }).unref();
    return;
  }
  const deno = (globalThis as { Deno?: { unrefTimer?(id: number): void } }).Deno;
  deno?.unrefTimer?.(timer as unknown as number);
}
