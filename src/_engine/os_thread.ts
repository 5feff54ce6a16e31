/**
 * Internal. A Deno worker's OS thread, as Linux shows it in /proc: how the real end of a
 * terminated Deno worker is learned (census.ts).
 *
 * Deno's `terminate()` does not stop a worker running synchronous code: it runs on until its
 * task returns to the event loop, and only then does its thread end. No event says when. But
 * on Linux every thread of the process is a directory of /proc/self/task, named by its thread
 * id, gone once the thread has exited. A Deno worker reads its own id (/proc/thread-self) as it
 * takes its owner id and writes it into the census; a thread that meets a lock held by a
 * worker marked terminating then looks for that directory instead of waiting out a grace: a
 * zombie still running keeps its locks, however long it is descheduled, and one that has ended
 * is taken over at once. (One asleep in an interruptible wait, which for a terminated worker may
 * last for ever, is left to the grace: {@linkcode OS_SLEEPING}.)
 *
 * An entry is the thread id times 1,024 plus the thread's start time (in clock ticks since
 * boot, /proc's field 22) modulo 1,024, so that a thread id the kernel hands to a new thread of
 * the process is not taken for the old thread (ids are reused only after the kernel's counter
 * wraps, pid_max, and the new thread must then also have started a multiple of 1,024 ticks
 * later, about 10 s at 100 Hz, to be mistaken).
 *
 * Nothing here is used unless both ends can read /proc: a worker without read permission for
 * /proc/thread-self writes no entry, and a thread without it for /proc/self/task reads none
 * (permissions are queried, never prompted for); either way the grace applies, as on other
 * systems. Node and Bun workers write their entry too (read through `node:fs`): neither fires
 * an event of its own as it is stopped, so a death that only an event of a waiting thread would
 * report (a worker never tracked, one killed for want of memory, one that ended with the worker
 * that started it) is known once its thread has ended (census.ts unreportedEnd).
 *
 * @module
 */

interface DenoApi {
  readLinkSync(path: string): string;
  readTextFileSync(path: string): string;
  statSync(path: string): unknown;
  permissions?: { querySync?(descriptor: { name: string; path: string }): { state: string } };
  errors: { NotFound: abstract new (...args: never[]) => Error };
}

const deno: DenoApi | undefined = (globalThis as { Bun?: unknown }).Bun === undefined
  ? (globalThis as { Deno?: DenoApi }).Deno
  : undefined;

/** What of `node:fs` this module reads /proc with on Node and Bun. */
interface NodeFs {
  readlinkSync(path: string): string;
  readFileSync(path: string, encoding: "utf8"): string;
  statSync(path: string): unknown;
}

/**
 * `node:fs` on Node and Bun, taken with `process.getBuiltinModule` (no import, so that Deno never
 * loads it); undefined on Deno, or where the runtime lacks it.
 */
const nodeFs: NodeFs | undefined = deno !== undefined ? undefined : (() => {
  try {
    const process = (globalThis as {
      process?: { getBuiltinModule?(id: string): unknown };
    }).process;
    return process?.getBuiltinModule?.("node:fs") as NodeFs | undefined;
  } catch {
    return undefined;
  }
})();

/** Reads /proc: through Deno's API on Deno, `node:fs` elsewhere. */
const proc = {
  /** Whether any reader is at hand. */
  present: deno !== undefined || nodeFs !== undefined,
  readLink: (path: string): string =>
    deno !== undefined ? deno.readLinkSync(path) : nodeFs!.readlinkSync(path),
  readText: (path: string): string =>
    deno !== undefined ? deno.readTextFileSync(path) : nodeFs!.readFileSync(path, "utf8"),
  stat: (path: string): unknown =>
    deno !== undefined ? deno.statSync(path) : nodeFs!.statSync(path),
  /** Whether `error`, thrown by a read, says the file is not there. */
  notFound: (error: unknown): boolean =>
    deno !== undefined
      ? error instanceof deno.errors.NotFound
      : (error as { code?: unknown } | null)?.code === "ENOENT",
};

/**
 * Whether this thread may read `path`, as granted already: never a prompt. Node and Bun grant
 * every read (under Node's `--permission`, a read denied throws, and is taken as unreadable).
 */
function readable(path: string): boolean {
  if (deno === undefined) return nodeFs !== undefined;
  try {
    return deno.permissions?.querySync?.({ name: "read", path }).state === "granted";
  } catch {
    return false;
  }
}

/** vm.max_map_count, read once: undefined until read, 0 where it cannot be. */
let maxMappings: number | undefined;

/**
 * How many memory mappings this process has (the lines of /proc/self/maps) and how many Linux
 * allows it (vm.max_map_count); undefined where they cannot be read (not Linux, no `node:fs`,
 * Deno without read permission for /proc). A growable SharedArrayBuffer takes its own mappings
 * (arena.ts `checkMappings`), and a process past the limit is ended by the runtime wherever
 * its next mapping fails, its heap's included: no error a caller could catch.
 */
export function memoryMappings(): { used: number; max: number } | undefined {
  if (maxMappings === undefined) {
    maxMappings = 0;
    try {
      if (proc.present && readable("/proc/sys/vm/max_map_count") && readable("/proc/self/maps")) {
        const max = Number(proc.readText("/proc/sys/vm/max_map_count").trim());
        if (Number.isSafeInteger(max) && max > 0) maxMappings = max;
      }
    } catch {
      // Unreadable: no check.
    }
  }
  if (maxMappings === 0) return undefined;
  let text: string;
  try {
    text = proc.readText("/proc/self/maps");
  } catch {
    return undefined;
  }
  let used = 0;
  for (let i = text.indexOf("\n"); i >= 0; i = text.indexOf("\n", i + 1)) used++;
  return { used, max: maxMappings };
}

/** Test-only: takes `max` for vm.max_map_count (undefined: reads it again). */
export function setMaxMappingsForTests(max: number | undefined): void {
  maxMappings = max;
}

/** A thread's start time, modulo 1,024, from the text of its /proc `stat` file; -1 if unreadable. */
function startOf(stat: string): number {
  // Field 22; the name (field 2, in parentheses) may hold spaces and parentheses itself.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const start = Number(fields[19]);
  return Number.isSafeInteger(start) ? start % 1024 : -1;
}

/**
 * This thread's census entry for its OS thread ({@linkcode osThreadState} reads it): its thread
 * id times 1,024 plus its start time modulo 1,024, as an int32; 0 where it cannot be read (not
 * Linux, no permission to read /proc/thread-self, no `node:fs`).
 */
export function ownOsThread(): number {
  if (!readable("/proc/thread-self")) return 0;
  try {
    const match = /^\d+\/task\/(\d+)$/.exec(proc.readLink("/proc/thread-self"));
    const tid = match === null ? 0 : Number(match[1]);
    if (!(tid > 0 && tid < 2 ** 22)) return 0;
    const start = startOf(proc.readText("/proc/thread-self/stat"));
    return start < 0 ? 0 : (tid * 1024 + start) | 0;
  } catch {
    return 0;
  }
}

/** Whether this thread can look threads up in /proc/self/task: undefined until first asked. */
let canLook: boolean | undefined;

/** Whether this thread can look threads up in /proc/self/task (asked once). */
function lookable(): boolean {
  if (canLook === undefined) {
    canLook = false;
    try {
      // /proc must be there: without it every thread's directory would look gone.
      if (proc.present && readable("/proc/self/task")) {
        proc.stat("/proc/self/task");
        canLook = true;
      }
    } catch {
      // canLook stays false.
    }
  }
  return canLook;
}

/**
 * Whether the OS thread of census entry `entry` has ended, read from /proc now: its directory is
 * gone, names a thread that started at another time, or shows an exited thread. None of
 * {@linkcode osThreadState}'s memories is read or written, so a look at a live thread
 * (census.ts unreportedEnd looks at owners nobody recorded ending) leaves nothing behind that
 * could later speak for another thread the kernel gave the same entry, or cut short the proofs
 * {@linkcode callState} asks of this one once it is recorded ending. A thread whose entry another
 * took (the same id and start time modulo 1,024) reads as running: the safe side. False where
 * this thread cannot look.
 */
export function osThreadEnded(entry: number): boolean {
  if (!lookable()) return false;
  let stat: string;
  try {
    stat = proc.readText(`/proc/self/task/${entry >>> 10}/stat`);
  } catch (error) {
    return proc.notFound(error);
  }
  const start = startOf(stat);
  if (start < 0) return false;
  const letter = stat[stat.lastIndexOf(")") + 2];
  return start !== (entry & 1023) || letter === "Z" || letter === "X";
}
/** Entries whose thread has been seen ended: an end is for good. */
const ended = new Set<number>();

/** {@linkcode osThreadState}: the thread has exited (or its id names another thread now). */
export const OS_ENDED = 0;
/**
 * {@linkcode osThreadState}: the thread is running or runnable (a zombie spinning, or one
 * descheduled in the middle of a step), stopped by a signal, or in a short uninterruptible wait:
 * it will go on.
 */
export const OS_RUNNING = 1;
/**
 * {@linkcode osThreadState}: the thread has slept in an interruptible wait (`Atomics.wait`, a
 * timer, a blocking read) without once running for {@linkcode QUIET_MS} or more: it runs again only
 * if something wakes it, which for a terminated worker may be never (Deno's `terminate()` does not
 * wake it).
 */
export const OS_SLEEPING = 2;
/**
 * How long a thread must sleep without running to count as {@linkcode OS_SLEEPING}: one that
 * loops on short timed waits (a critical section that polls) keeps running in between.
 */
export const QUIET_MS = 250;
/** Per entry: the thread's context switches when last seen asleep, and since when unchanged. */
const quiet = new Map<number, { switches: number; since: number }>();
/** Per entry: since when (performance.now()) every look has found the thread asleep. */
const asleepSince = new Map<number, number>();

/** A thread's context switches, voluntary and not, from its /proc `status`; -1 if unreadable. */
function switchesOf(tid: number): number {
  try {
    const status = proc.readText(`/proc/self/task/${tid}/status`);
    const v = /^voluntary_ctxt_switches:\s*(\d+)/m.exec(status);
    const n = /^nonvoluntary_ctxt_switches:\s*(\d+)/m.exec(status);
    return v === null || n === null ? -1 : Number(v[1]) + Number(n[1]);
  } catch {
    return -1;
  }
}

/**
 * The state of the OS thread of census entry `entry` (see {@linkcode ownOsThread}):
 * {@linkcode OS_ENDED} once its /proc/self/task directory is gone or names a thread that started
 * at another time, else {@linkcode OS_RUNNING} or {@linkcode OS_SLEEPING} by the state letter
 * /proc shows; undefined when this thread cannot look (no /proc, no permission).
 */
export function osThreadState(entry: number): number | undefined {
  if (ended.has(entry)) return OS_ENDED;
  if (!lookable()) return undefined;
  const tid = entry >>> 10;
  let stat: string;
  try {
    stat = proc.readText(`/proc/self/task/${tid}/stat`);
  } catch (error) {
    if (!proc.notFound(error)) return undefined;
    ended.add(entry);
    return OS_ENDED;
  }
  const start = startOf(stat);
  if (start < 0) return undefined;
  // The state letter, field 3: Z and X are an exited thread not yet reaped.
  const letter = stat[stat.lastIndexOf(")") + 2];
  if (start !== (entry & 1023) || letter === "Z" || letter === "X") {
    ended.add(entry);
    quiet.delete(entry);
    asleepSince.delete(entry);
    return OS_ENDED;
  }
  if (letter !== "S") {
    quiet.delete(entry);
    asleepSince.delete(entry);
    return OS_RUNNING;
  }
  if (!asleepSince.has(entry)) asleepSince.set(entry, performance.now());
  // Asleep now: asleep throughout only if it has not been switched in or out since it was first
  // seen so, QUIET_MS or more ago.
  const switches = switchesOf(tid);
  if (switches < 0) return OS_SLEEPING; // by the letter alone
  const now = performance.now();
  const last = quiet.get(entry);
  if (last === undefined || last.switches !== switches) {
    quiet.set(entry, { switches, since: now });
    return OS_RUNNING;
  }
  return now - last.since >= QUIET_MS ? OS_SLEEPING : OS_RUNNING;
}

/**
 * How long, on a CPU, a thread recorded ending that still runs must have run since it was first
 * looked at before it counts as out of every shmap call it was in ({@linkcode callState}). A
 * call's steps between two checks take microseconds; what can make one last longer is a garbage
 * collection or a large value's copy inside it, which this bounds too, short of the largest.
 */
export const RUN_PROOF_MS = 100;
/**
 * How long every look must have found a thread asleep, however often it woke in between, for
 * {@linkcode callState} to say it is in no shmap call: shmap's own waits last one slice (50 ms) and
 * end in a throw for a thread recorded ending (census.ts checkSelf), and a wait of the runtime's
 * inside a call (a garbage collection's helpers) does not last this long.
 */
export const ASLEEP_PROOF_MS = 250;
/** A clock tick of /proc's `stat` times, which a run time read from them may be short by. */
const TICK_MS = 10;
/** Per entry: its thread's time on a CPU (ms) when {@linkcode callState} first asked. */
const runBase = new Map<number, number>();
/** Entries whose thread has been seen out of calls: for good (its next call throws). */
const outOfCalls = new Set<number>();
/** A test's stand-in for {@linkcode runTimeOf}, set by {@linkcode setRunTimeForTests}. */
let runTimeStandIn: ((tid: number) => number | undefined) | undefined;

/**
 * A thread's time on a CPU so far, in milliseconds, from its /proc `schedstat` (nanoseconds);
 * else from `stat`'s user and system times (clock ticks, taken as 100 a second, Linux's USER_HZ:
 * two readings a tick apart may be almost no time apart, which {@linkcode TICK_MS} allows for);
 * undefined if neither can be read.
 */
function runTimeOf(tid: number): number | undefined {
  if (runTimeStandIn !== undefined) return runTimeStandIn(tid);
  try {
    const ns = Number(proc.readText(`/proc/self/task/${tid}/schedstat`).split(" ")[0]);
    if (Number.isFinite(ns)) return ns / 1e6;
  } catch {
    // No schedstat (a kernel without CONFIG_SCHED_INFO): stat's ticks.
  }
  try {
    const stat = proc.readText(`/proc/self/task/${tid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime: fields 14 and 15
    return Number.isFinite(ticks) ? ticks * TICK_MS : undefined;
  } catch {
    return undefined;
  }
}

/** {@linkcode callState}: the thread may be inside a call it was in when its end was learned. */
export const IN_CALL = 1;
/** {@linkcode callState}: the thread has been seen to be in no such call. */
export const OUT_OF_CALLS = 0;
/** {@linkcode callState}: this thread cannot tell (no /proc, no permission, a read that failed). */
export const CALL_UNKNOWN = -1;

/**
 * Whether the OS thread of census entry `entry`, of a thread recorded ending, may still be inside
 * a shmap call it was in when its end was learned: {@linkcode OUT_OF_CALLS} once it has ended,
 * slept without running for {@linkcode QUIET_MS} (the grace decides, as for locks), run on a CPU
 * for {@linkcode RUN_PROOF_MS} since this thread first asked, or been found asleep at every look
 * for {@linkcode ASLEEP_PROOF_MS} (a thread that wakes now and then in a wait of its own, an idle
 * event loop, is in no call, since shmap's own waits end in a throw for it); {@linkcode IN_CALL}
 * while it is runnable without having run so (descheduled in the middle of a store, however
 * long) or has been asleep for less; {@linkcode CALL_UNKNOWN} where this thread cannot see it. A
 * file read or two until seen out.
 */
export function callState(entry: number): number {
  if (outOfCalls.has(entry)) return OUT_OF_CALLS;
  const state = osThreadState(entry);
  if (state === undefined) return CALL_UNKNOWN;
  if (state === OS_RUNNING) {
    const now = runTimeOf(entry >>> 10);
    if (now === undefined) return CALL_UNKNOWN;
    const base = runBase.get(entry);
    if (base === undefined) runBase.set(entry, now);
    const asleep = asleepSince.get(entry);
    const ran = base !== undefined && now - base >= RUN_PROOF_MS + TICK_MS;
    if (!ran && (asleep === undefined || performance.now() - asleep < ASLEEP_PROOF_MS)) {
      return IN_CALL;
    }
  }
  runBase.delete(entry);
  outOfCalls.add(entry);
  return OUT_OF_CALLS;
}

/**
 * For tests: makes {@linkcode callState} read a thread's run time from `standIn` (a thread that
 * never gets a CPU: `() => 0`), or from /proc again with undefined. Forgets what it noted.
 */
export function setRunTimeForTests(
  standIn: ((tid: number) => number | undefined) | undefined,
): void {
  runTimeStandIn = standIn;
  runBase.clear();
  outOfCalls.clear();
}
