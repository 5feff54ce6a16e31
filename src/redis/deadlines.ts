/**
 * Internal. Deadlines for the commands of one connection, with one timer.
 *
 * The client bounds only the time a command waits to be written: once written, a command whose
 * server stopped answering (stopped process, dropped packets) would wait for good. Every command
 * therefore takes a deadline here. All deadlines of a connection are "start + timeout" for one
 * timeout, so they expire in the order they were taken: a FIFO queue, whose head alone the
 * timer watches, is a priority queue. A settled entry stays queued until it reaches the head;
 * replies mostly come back in order, so the queue holds little more than the commands in flight.
 *
 * @module
 */

/**
 * One command's deadline: extended by the connection's call record, which says what to do when
 * it passes (`expired`) and marks `settled` when the command's reply or error arrives first.
 */
export abstract class Deadline {
  /** When it expires, in `performance.now()` milliseconds; set by {@linkcode Deadlines.track}. */
  at = 0;
  /** Whether the command has settled, or its deadline has passed. */
  settled = false;

  /** Called once, by the queue, when the deadline passes before the command settled. */
  abstract expired(): void;
}

/** The deadlines of one connection, all `timeout` milliseconds after they were taken. */
export class Deadlines {
  readonly timeout: number;
  #queue: Deadline[] = [];
  #head = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(timeout: number) {
    this.timeout = timeout;
  }

  /** Commands whose deadline has not passed and that have not settled. */
  get pending(): number {
    let n = 0;
    for (let i = this.#head; i < this.#queue.length; i++) if (!this.#queue[i].settled) n++;
    return n;
  }

  /** Sets `d` to expire `timeout` milliseconds from now. */
  track(d: Deadline): void {
    d.at = this.#now() + this.timeout;
    this.#queue.push(d);
    if (this.#timer === undefined) this.#arm(d.at);
  }

  /** Drops settled entries from the head; call after settling one. */
  trim(): void {
    const q = this.#queue;
    let h = this.#head;
    while (h < q.length && q[h].settled) h++;
    this.#compact(h);
  }

  #compact(h: number): void {
    const q = this.#queue;
    if (h === q.length) {
      q.length = 0;
      h = 0;
    } else if (h > 1024 && h * 2 > q.length) {
      q.splice(0, h);
      h = 0;
    }
    this.#head = h;
  }

  // The clock, read once per synchronous run of calls: performance.now() costs more than the
  // rest of a deadline (300 ns on Deno here), and the calls a loop issues share a start. A
  // deadline taken from this clock is never later than `timeout` after its call began, only
  // earlier by the synchronous work done before the call in the same run.
  #clock = 0;
  #clockValid = false;
  #invalidate = (): void => {
    this.#clockValid = false;
  };

  #now(): number {
    if (!this.#clockValid) {
      this.#clock = performance.now();
      this.#clockValid = true;
      queueMicrotask(this.#invalidate);
    }
    return this.#clock;
  }

  /** Stops the timer; for a connection that is closed. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  // The timer stays armed when the queue empties (one setTimeout per `timeout` milliseconds of
  // traffic, not one per call), and is unref'd, so it never keeps a process alive by itself.
  #arm(at: number): void {
    this.#timer = setTimeout(this.#fire, Math.max(0, at - performance.now()));
    unref(this.#timer);
  }

  #fire = (): void => {
    this.#timer = undefined;
    const q = this.#queue;
    const now = performance.now();
    let h = this.#head;
    // Timers may fire a little early; expire only what is due, by the clock.
    for (; h < q.length && (q[h].settled || q[h].at <= now); h++) {
      const d = q[h];
      if (!d.settled) {
        d.settled = true;
        d.expired();
      }
    }
    this.#compact(h);
    if (this.#head < q.length) this.#arm(q[this.#head].at);
  };
}

/**
 * Lets the process exit while a deadline is pending: the commands in flight hold their socket,
 * which keeps the process alive as long as it needs to be.
 */
function unref(timer: ReturnType<typeof setTimeout>): void {
  if (typeof timer === "object" && timer !== null && "unref" in timer) {
    (timer as { unref(): void }).unref();
    return;
  }
  const deno = (globalThis as { Deno?: { unrefTimer?(id: number): void } }).Deno;
  deno?.unrefTimer?.(timer as unknown as number);
}
