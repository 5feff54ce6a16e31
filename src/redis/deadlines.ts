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

/** One command's deadline. */
export class Deadline {
  /** When it expires, in `performance.now()` milliseconds. */
  readonly at: number;
  #settled = false;
  readonly #expire: () => void;

  constructor(at: number, expire: () => void) {
    this.at = at;
    this.#expire = expire;
  }

  /** Whether the command has settled, or its deadline has passed. */
  get settled(): boolean {
    return this.#settled;
  }

  /**
   * Marks the command as settled; returns false when its deadline had already passed (its
   * caller has been told it timed out, so the late outcome must be dropped).
   */
  settle(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    return true;
  }

  /** Called by the queue when the deadline passes before the command settled. */
  expire(): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#expire();
  }
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

  /** Takes a deadline `timeout` milliseconds from now; `expire` runs if it passes first. */
  take(expire: () => void): Deadline {
    const d = new Deadline(performance.now() + this.timeout, expire);
    this.#queue.push(d);
    if (this.#timer === undefined) this.#arm(d.at);
    return d;
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
      // Nothing in flight: no timer, so an idle connection's deadlines keep no process alive.
      if (this.#timer !== undefined) {
        clearTimeout(this.#timer);
        this.#timer = undefined;
      }
    } else if (h > 1024 && h * 2 > q.length) {
      q.splice(0, h);
      h = 0;
    }
    this.#head = h;
  }

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
    while (h < q.length && (q[h].settled || q[h].at <= now)) q[h++].expire();
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
