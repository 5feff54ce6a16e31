/**
 * Internal. Deadlines for the commands of one connection, with one timer.
 *
 * The client bounds only the time a command waits to be written: once written, a command whose
 * server stopped answering (stopped process, dropped packets) would wait for good. Every command
 * therefore takes a deadline here, `timeout` milliseconds after the command can first be sent.
 *
 * The client writes the commands issued in one turn of the event loop together, from a
 * `setImmediate` callback: after the code that issued them, and the microtasks queued behind
 * it, have run. A deadline is therefore taken unstamped (`at` is Infinity), and one
 * `setImmediate` callback per turn, queued by the turn's first deadline and so ahead of the
 * client's write, stamps every unstamped deadline with one clock read. Synchronous work after a
 * call, in the turn that made it, never counts against its timeout (it delays the write as
 * much), and the calls of a loop share one `performance.now()` (300 ns on Deno here, more than
 * the rest of a deadline costs).
 *
 * Stamps never decrease, and each stamps every deadline taken before it, so deadlines expire in
 * the order they were taken: a FIFO queue, whose head alone the timer watches, is a priority
 * queue. A settled entry stays queued until it reaches the head; replies mostly come back in
 * order, so the queue holds little more than the commands in flight.
 *
 * A deadline that has passed expires once the runtime has read the sockets after the timer
 * found it due, if its command has not settled by then. After a stall of the event loop
 * (synchronous work, a long GC pause) the runtimes run due timers before they read the
 * sockets, and a reply that came in time, waiting unread, would otherwise count as none: a
 * read reported as a timeout, a write as one that may or may not have taken effect. Node and
 * Bun read them before a zero-delay timer set then. Deno 2.9 may not, for tens of milliseconds
 * of timers: a reply was read 15 to 30 ms after a timer made late by a 900 ms stall, behind
 * several zero-delay ones, and with a stall ending 8 ms past a 300 ms deadline, one try in six
 * lost its reply in each of 4 processes. So on Deno a deadline found due expires
 * {@linkcode DENO_READ_MS} later (a timeout is reported that much later there).
 *
 * And a timer that fires half the timeout late or more (at least {@linkcode STALL_MS}), the mark
 * of a stall as long as a good part of the timeout, gives every deadline it finds stamped a new
 * one, `timeout` from then, once per deadline: whatever a runtime's delay in reading, a reply
 * waiting unread is read in that time, and a command whose server stopped answering still
 * fails, at most `timeout` later than without the stall (not again at a second stall, so that a
 * loop that stalls at every timer cannot keep a call waiting for good).
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { RUNTIME } from "../_engine/runtime.ts";
import { unrefTimer } from "../_engine/unref_timer.ts";

/**
 * On Deno, how long a deadline found due waits for its reply to be read before it expires
 * (module doc): above the 15 to 30 ms Deno took to read a socket after a late timer.
 */
export const DENO_READ_MS = 50;

/** How long a deadline found due waits for a read of the sockets: a turn, or on Deno longer. */
const READ_MS = RUNTIME === "deno" ? DENO_READ_MS : 0;

/**
 * How late a timer of the deadlines must fire, at least, for the event loop to count as stalled
 * (module doc): half the timeout, and never less than this. A busy but responsive loop runs
 * timers tens of milliseconds late (four loops of calls against a killed server did): renewed
 * then, a command whose server died would fail a whole timeout later than it need.
 */
export const STALL_MS = 20;

/**
 * One command's deadline: extended by the connection's call record, which says what to do when
 * it passes (`expired`). Settled through {@linkcode Deadlines.settle} when the command's reply
 * or error arrives first.
 */
export abstract class Deadline {
  /**
   * When it expires, in `performance.now()` milliseconds: Infinity until the turn that took it
   * ends (see the module doc), so an unstamped deadline never expires.
   */
  at = Infinity;
  /** Whether the command has settled, or its deadline has passed. */
  settled = false;
  /** Whether a stall of the event loop gave it a new deadline already (module doc). */
  renewed = false;

  /** Called once, by the queue, when the deadline passes before the command settled. */
  abstract expired(): void;
}

/**
 * The deadlines of one connection, each `timeout` milliseconds after the end of the event-loop
 * turn that took it.
 */
export class Deadlines {
  readonly timeout: number;
  // How late a timer marks a stall (STALL_MS).
  readonly #stallMs: number;
  // Entries before #head are settled and dropped; entries from #unstamped on await the stamp.
  #queue: Deadline[] = [];
  #head = 0;
  #unstamped = 0;
  #stamping = false;
  // Deadlines tracked and not settled, and who waits for that count to reach 0.
  #live = 0;
  #idle: (() => void)[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  // The clock reading of the last #fire that found entries due: #expire expires those.
  #due = 0;
  #stopped = false;

  constructor(timeout: number) {
    this.timeout = timeout;
    this.#stallMs = Math.max(STALL_MS, timeout / 2);
  }

  /** Commands whose deadline has not passed and that have not settled. */
  get pending(): number {
    return this.#live;
  }

  /** Queues `d`, to expire `timeout` milliseconds after the end of the current turn. */
  track(d: Deadline): void {
    this.#queue.push(d);
    this.#live++;
    if (!this.#stamping) {
      this.#stamping = true;
      setImmediate(this.#stamp);
    }
  }

  /** Marks `d`, which has not settled, settled: its command got a reply or failed. */
  settle(d: Deadline): void {
    d.settled = true;
    this.#live--;
    const q = this.#queue;
    let h = this.#head;
    while (h < q.length && q[h].settled) h++;
    this.#compact(h);
    if (this.#live === 0) this.#wake();
  }

  /** Resolves once every deadline tracked so far has settled or passed. */
  idle(): Promise<void> {
    if (this.#live === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Stops the timer; for a connection that is closed. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  readonly #stamp = (): void => {
    this.#stamping = false;
    const q = this.#queue;
    const at = performance.now() + this.timeout;
    for (let i = Math.max(this.#unstamped, this.#head); i < q.length; i++) q[i].at = at;
    this.#unstamped = q.length;
    if (this.#timer === undefined && this.#head < q.length) this.#arm(q[this.#head].at);
  };

  #compact(h: number): void {
    const q = this.#queue;
    if (h === q.length) {
      q.length = 0;
      h = 0;
      this.#unstamped = 0;
    } else if (h > 1024 && h * 2 > q.length) {
      q.splice(0, h);
      this.#unstamped = Math.max(0, this.#unstamped - h);
      h = 0;
    }
    this.#head = h;
  }

  #wake(): void {
    const waiting = this.#idle;
    this.#idle = [];
    for (const resolve of waiting) resolve();
  }

  // The timer stays armed when the queue empties (one setTimeout per `timeout` milliseconds of
  // traffic, not one per call), and is unref'd, so it never keeps a process alive by itself.
  // It is armed only for a stamped head: an unstamped one is armed for by its stamp.
  #arm(at: number): void {
    if (this.#stopped || at === Infinity) return;
    this.#timer = setTimeout(this.#fire, Math.max(0, at - performance.now()));
    unrefTimer(this.#timer);
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    const q = this.#queue;
    let h = this.#head;
    while (h < q.length && q[h].settled) h++;
    this.#compact(h);
    if (this.#head === q.length) return;
    const now = performance.now();
    // A due head is due unless its reply came in time and waits unread: after a stall of the
    // event loop (synchronous work, a long GC pause), the runtimes run due timers before they
    // read the sockets. A timer this late marks a stall: what it finds stamped gets a new
    // deadline, once (module doc). The order of the stamps stays that of the queue: each becomes
    // the later of its own and one new deadline, or stays as it was, renewed before, which is
    // earlier still.
    if (now - q[this.#head].at >= this.#stallMs) {
      const at = now + this.timeout;
      for (let i = this.#head; i < this.#unstamped; i++) {
        const d = q[i];
        if (d.renewed || d.settled) continue;
        d.renewed = true;
        if (d.at < at) d.at = at;
      }
    }
    // Timers may fire a little early, and a renewal moves the head on: expire only what is
    // due, by the clock.
    if (q[this.#head].at > now) {
      this.#arm(q[this.#head].at);
      return;
    }
    // Due (a timer on time, or a stall past a deadline renewed before): it expires after a read
    // of the sockets, if its reply did not come in it, from a timer of its own: a zero-delay
    // timer runs after the next read on Node and Bun (a setImmediate callback runs before that
    // read on Bun); on Deno, DENO_READ_MS. It stands in #timer meanwhile, so no stamp arms
    // another, and stop() clears it.
    this.#due = now;
    this.#timer = setTimeout(this.#expire, READ_MS);
    unrefTimer(this.#timer);
  };

  // Expires what was due when #fire ran (`#due`) and has not settled since.
  readonly #expire = (): void => {
    this.#timer = undefined;
    const q = this.#queue;
    let h = this.#head;
    let expired = false;
    for (; h < q.length && (q[h].settled || q[h].at <= this.#due); h++) {
      const d = q[h];
      if (!d.settled) {
        d.settled = true;
        this.#live--;
        expired = true;
        d.expired();
      }
    }
    this.#compact(h);
    if (this.#head < q.length) this.#arm(q[this.#head].at);
    if (expired && this.#live === 0) this.#wake();
  };
}
