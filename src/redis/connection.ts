/**
 * Internal. The connection of a {@linkcode RedisSyncMap} to a standalone Redis or a Redis
 * Cluster, through node-redis (`@redis/client`), the one module that imports the client.
 *
 * What it adds to the client:
 *
 * - **A deadline on every command.** The client's own command timeout covers only the wait to
 *   be written; a written command whose server stops answering would wait for good. Here every
 *   command settles within `timeout` milliseconds (deadlines.ts), with a clear error.
 * - **No offline queue.** While the client reconnects, a command is not queued to be sent
 *   whenever the connection comes back (possibly after its caller was told it failed): it waits
 *   here, unsent, for the connection, and fails as "not sent" if the deadline comes first.
 * - **Reconnects** are the client's: exponential backoff from 50 ms up to `maxReconnectDelay`,
 *   with jitter, for as long as the map is open. `open` gives up after `connectTimeout`.
 * - **Errors** become {@linkcode RedisSyncMapError}s that say whether a write may have applied.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import {
  ClientClosedError,
  ClientOfflineError,
  createClient,
  createCluster,
  ErrorReply,
  MaxCommandRedirectionsError,
  RESP_TYPES,
} from "@redis/client";
import { Deadline, Deadlines } from "./deadlines.ts";
import { RedisSyncMapError } from "./errors.ts";
import { isNoScript, type Script } from "./scripts.ts";

/** A command argument: bytes, or ASCII text. */
export type Arg = string | Buffer;

/** A reply as this connection decodes them: bulk strings as Buffers. */
export type Reply = Buffer | string | number | null | Reply[];

/** A server the map addresses as a whole (SCAN): the standalone server, or one Cluster master. */
export interface Node {
  /** `host:port`. */
  readonly address: string;
  /** Sends a keyless command to this server, under the connection's deadline. */
  send(op: string, args: Arg[]): Promise<Reply>;
}

/** Options for {@linkcode Connection.open}, checked by the map. */
export interface ConnectionOptions {
  /** A standalone server's URL. */
  url?: string;
  /** URLs of some of a Cluster's nodes. */
  cluster?: readonly string[];
  /** Most milliseconds a command waits for its reply. */
  timeout: number;
  /** Most milliseconds `open` tries to connect. */
  connectTimeout: number;
  /** Longest wait between two reconnect attempts. */
  maxReconnectDelay: number;
  /** Names the map in error messages. */
  label: string;
}

// Bulk strings as Buffers: keys and values are bytes, not text. No client timeout (`timeout:
// 0`): the client's, 5 s by default, bounds only a command's wait to be written, with an
// AbortSignal timer per command, the larger part of the client's cost per pipelined command;
// the map's deadlines bound every command whole. (With no offline queue, a command waits to be
// written only behind a full socket; if its deadline passes there, its caller is told that it
// may have been applied.)
const TYPE_MAPPING = { [RESP_TYPES.BLOB_STRING]: Buffer } as const;
/** The command options of every connection the map opens (and of bench/redis.ts's raw client). */
export const COMMAND_OPTIONS = { typeMapping: TYPE_MAPPING, timeout: 0 };
/**
 * What every connection to a Redis server is opened with, besides its socket and credentials:
 * no offline queue (a command sent while disconnected fails at once, and the map's own retry
 * and deadline take over), and no Redis Enterprise maintenance notices (nothing to negotiate
 * with Redis itself).
 */
export const NODE_OPTIONS = { disableOfflineQueue: true, maintNotifications: "disabled" } as const;
// How often a command waiting for the client to reconnect looks again.
const OFFLINE_RETRY_MS = 20;
const MIN_REDIS_MAJOR = 7;

type Send = (key: Buffer, write: boolean, args: Arg[]) => Promise<unknown>;
// The part of a client or cluster this module uses.
interface Closable {
  close(): Promise<void>;
  destroy(): void;
}
interface NodeClient {
  sendCommand(args: Arg[], options?: typeof COMMAND_OPTIONS): Promise<unknown>;
}

/** A connection to a standalone Redis or a Redis Cluster; see the module doc. */
export class Connection {
  /** `redis://host:port`, or `Redis Cluster (redis://a, redis://b)`: for error messages. */
  readonly description: string;
  /** Whether it talks to a Cluster. */
  readonly isCluster: boolean;
  readonly #label: string;
  readonly #deadlines: Deadlines;
  readonly #handle: Closable;
  readonly #send: Send;
  readonly #masters: () => Node[];
  #lastError: Error | undefined;
  #closing: Promise<void> | undefined;

  private constructor(
    options: ConnectionOptions,
    handle: Closable,
    send: Send,
    masters: (self: Connection) => Node[],
  ) {
    this.isCluster = options.cluster !== undefined;
    this.description = options.cluster !== undefined
      ? `Redis Cluster (${options.cluster.join(", ")})`
      : String(options.url);
    this.#label = options.label;
    this.#deadlines = new Deadlines(options.timeout);
    this.#handle = handle;
    this.#send = send;
    this.#masters = () => masters(this);
  }

  /**
   * Connects, checks that every server runs Redis 7.0 or later in the expected mode, and
   * resolves once commands can be sent. Rejects with a RedisSyncMapError within about
   * `connectTimeout` milliseconds otherwise.
   */
  static async open(options: ConnectionOptions): Promise<Connection> {
    const started = performance.now();
    let ready = false;
    let lastError: Error | undefined;
    // Before the first connection, give up once connectTimeout has passed; after it, retry for
    // as long as the map is open (commands meanwhile fail by their deadlines).
    const reconnectStrategy = (retries: number, cause: Error): number | Error => {
      lastError = cause;
      if (!ready && performance.now() - started >= options.connectTimeout) return cause;
      const backoff = Math.min(50 * 2 ** Math.min(retries, 16), options.maxReconnectDelay);
      return Math.round(backoff * (0.75 + Math.random() * 0.25));
    };
    const socket = { connectTimeout: options.connectTimeout, reconnectStrategy };
    let connection: Connection | undefined;
    let connecting: Promise<unknown>;
    const onError = (error: Error): void => {
      lastError = error;
      if (connection !== undefined) connection.#lastError = error;
    };
    if (options.cluster !== undefined) {
      const { username, password } = credentials(options.cluster[0]);
      const cluster = createCluster({
        rootNodes: options.cluster.map((url) => ({ url })),
        defaults: { ...NODE_OPTIONS, socket, username, password },
        RESP: 3,
        commandOptions: COMMAND_OPTIONS,
      });
      cluster.on("error", onError);
      cluster.on("node-error", onError);
      connection = new Connection(
        options,
        cluster,
        (key, write, args) => cluster.sendCommand(key, !write, args),
        (self) =>
          cluster.masters.map((master) => ({
            address: master.address,
            send: (op: string, args: Arg[]) =>
              self.#call(op, false, undefined, args, () =>
                cluster.nodeClient(master).then((client) =>
                  (client as NodeClient).sendCommand(args, COMMAND_OPTIONS)
                )),
          })),
      );
      connecting = cluster.connect();
    } else {
      const client = createClient({
        url: options.url,
        RESP: 3,
        ...NODE_OPTIONS,
        socket,
        commandOptions: COMMAND_OPTIONS,
      });
      client.on("error", onError);
      const address = String(options.url);
      connection = new Connection(
        options,
        client,
        (_key, _write, args) => client.sendCommand(args),
        (self) => [{
          address,
          send: (op: string, args: Arg[]) =>
            self.#call(op, false, undefined, args, () => client.sendCommand(args)),
        }],
      );
      connecting = client.connect();
    }
    try {
      await bound(connecting, options.connectTimeout + 1000);
      ready = true;
      await connection.#checkServers();
      return connection;
    } catch (error) {
      connection.#handle.destroy();
      if (error instanceof RedisSyncMapError) throw error;
      const cause = lastError ?? error;
      throw new RedisSyncMapError(
        "connection",
        "open",
        `${options.label}: could not connect to ${connection.description} within ${options.connectTimeout} ms: ${
          message(cause)
        }`,
        { cause },
      );
    }
  }

  /**
   * Sends a command about `key` (to its slot's master, in a Cluster) and resolves to `then` of
   * its reply (the reply itself by default). `write` says whether it changes the map, for
   * errors' `maybeApplied`. A throw from `then` rejects the call.
   */
  send<T = Reply>(
    op: string,
    write: boolean,
    key: Buffer,
    args: Arg[],
    then?: (reply: Reply) => T,
  ): Promise<T> {
    return this.#call(op, write, key, args, undefined, then);
  }

  /**
   * Runs `script` on `key` by EVALSHA, and by EVAL, within the same deadline, where the server
   * lacks it (NOSCRIPT); resolves to `then` of its reply. Errors name the script's operation.
   */
  script<T = Reply>(
    script: Script,
    key: Buffer,
    args: Arg[],
    then?: (reply: Reply) => T,
  ): Promise<T> {
    return this.#call(
      script.op,
      true,
      key,
      ["EVALSHA", script.sha, "1", key, ...args],
      undefined,
      then,
      script,
    );
  }

  /** The masters, each to be scanned: the one server of a standalone Redis. */
  masters(): Node[] {
    if (this.#closing !== undefined) throw this.#closedError("range");
    return this.#masters();
  }

  /** Whether {@linkcode close} has been called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Lets the calls in flight finish (each within its deadline), then closes the connection.
   * Later calls reject with a "closed" error.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const waited = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.#deadlines.timeout);
      });
      try {
        // close() waits for every reply the client still expects, including those of calls
        // already failed by their deadline: bounded by the timeout, then cut.
        await Promise.race([this.#handle.close().catch(() => {}), waited]);
      } finally {
        clearTimeout(timer);
        this.#handle.destroy();
        this.#deadlines.stop();
      }
    })();
    return this.#closing;
  }

  // One record a call, tracked by the deadlines; no closure but the two reply handlers.
  #call<T = Reply>(
    op: string,
    write: boolean,
    key: Buffer | undefined,
    args: Arg[],
    run: (() => Promise<unknown>) | undefined,
    then?: (reply: Reply) => T,
    script?: Script,
  ): Promise<T> {
    if (this.#closing !== undefined) return Promise.reject(this.#closedError(op));
    return new Promise<T>((resolve, reject) => {
      const call = new Call(this.#expired, op, write, key, args, run, then, resolve, reject);
      call.script = script;
      this.#deadlines.track(call);
      this.#attempt(call);
    });
  }

  /**
   * Sends `call`. Never throws: a retry runs it from a timer, where no caller could catch it, so
   * a send that throws instead of rejecting fails the call as a rejection does.
   */
  #attempt(call: Call): void {
    if (call.settled) return;
    call.offline = false;
    let sent: Promise<unknown>;
    try {
      sent = call.run !== undefined ? call.run() : this.#send(call.key!, call.write, call.args);
    } catch (error) {
      this.#failed(call, error);
      return;
    }
    sent.then((reply) => this.#replied(call, reply as Reply), (error) => this.#failed(call, error));
  }

  #replied(call: Call, reply: Reply): void {
    if (call.settled) return;
    call.settled = true;
    this.#deadlines.trim();
    if (call.then === undefined) {
      call.resolve(reply);
      return;
    }
    try {
      call.resolve(call.then(reply));
    } catch (error) {
      call.reject(error);
    }
  }

  #failed(call: Call, error: unknown): void {
    if (call.settled) return;
    // The server lacks the script: load it by EVAL (its body, in place of its SHA-1).
    if (call.script !== undefined && call.args[0] === "EVALSHA" && isNoScript(error)) {
      call.args[0] = "EVAL";
      call.args[1] = call.script.lua;
      this.#attempt(call);
      return;
    }
    // Refused before it was written: wait for the client to reconnect, then send.
    if (
      error instanceof ClientOfflineError && this.#closing === undefined &&
      performance.now() + OFFLINE_RETRY_MS < call.at
    ) {
      call.offline = true;
      setTimeout(() => this.#attempt(call), OFFLINE_RETRY_MS);
      return;
    }
    call.settled = true;
    this.#deadlines.trim();
    call.reject(this.#error(call.op, call.write, error));
  }

  readonly #expired = (call: Call): void => {
    call.reject(
      call.offline ? this.#offlineError(call.op) : this.#timeoutError(call.op, call.write),
    );
  };

  async #checkServers(): Promise<void> {
    for (const node of this.#masters()) {
      const info = String(await node.send("open", ["INFO", "server"]));
      const version = /redis_version:(\d+)\.(\d+)\.(\d+)/.exec(info);
      const mode = /redis_mode:(\w+)/.exec(info)?.[1];
      if (version === null || Number(version[1]) < MIN_REDIS_MAJOR) {
        throw new RedisSyncMapError(
          "unsupported",
          "open",
          `${this.#label}: ${node.address} runs Redis ${
            version === null ? "of an unknown version" : version.slice(1).join(".")
          }; RedisSyncMap needs Redis 7.0 or later (SET with NX and GET)`,
        );
      }
      if (!this.isCluster && mode === "cluster") {
        throw new RedisSyncMapError(
          "unsupported",
          "open",
          `${this.#label}: ${node.address} is a Redis Cluster node: open it with { cluster: [url] }`,
        );
      }
    }
  }

  #error(op: string, write: boolean, error: unknown): RedisSyncMapError {
    const where = `${this.#label}: ${op} on ${this.description}`;
    if (error instanceof ErrorReply || error instanceof MaxCommandRedirectionsError) {
      return new RedisSyncMapError("server", op, `${where} failed: ${message(error)}`, {
        cause: error,
      });
    }
    if (error instanceof ClientClosedError) {
      return this.#closing !== undefined
        ? this.#closedError(op)
        : new RedisSyncMapError("connection", op, `${where} failed: the client gave up`, {
          cause: error,
        });
    }
    if (error instanceof ClientOfflineError) return this.#offlineError(op);
    return new RedisSyncMapError(
      "connection",
      op,
      `${where} failed: the connection dropped (${message(error)})${
        write ? "; the write may or may not have taken effect" : ""
      }`,
      { cause: error, maybeApplied: write },
    );
  }

  #timeoutError(op: string, write: boolean): RedisSyncMapError {
    return new RedisSyncMapError(
      "timeout",
      op,
      `${this.#label}: ${op} on ${this.description} got no reply within ${this.#deadlines.timeout} ms${
        write ? "; the write may or may not have taken effect" : ""
      }`,
      { maybeApplied: write },
    );
  }

  #offlineError(op: string): RedisSyncMapError {
    const last = this.#lastError === undefined ? "" : ` (${message(this.#lastError)})`;
    return new RedisSyncMapError(
      "connection",
      op,
      `${this.#label}: ${op} was not sent: no connection to ${this.description} for ${this.#deadlines.timeout} ms${last}`,
      { cause: this.#lastError },
    );
  }

  #closedError(op: string): RedisSyncMapError {
    return new RedisSyncMapError("closed", op, `${this.#label}: ${op} after close()`);
  }
}

function message(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return message(error.errors[0]);
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

/** The credentials in a Cluster node's URL, for the connections to every node. */
function credentials(url: string): { username?: string; password?: string } {
  const parsed = new URL(url);
  return {
    username: parsed.username === "" ? undefined : decodeURIComponent(parsed.username),
    password: parsed.password === "" ? undefined : decodeURIComponent(parsed.password),
  };
}

/** Settles like `promise`, or rejects after `ms`. */
async function bound<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no connection after ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A call in flight: its command, its deadline, and how to settle its promise. */
class Call extends Deadline {
  offline = false;
  script: Script | undefined;
  readonly #expire: (call: Call) => void;
  readonly op: string;
  readonly write: boolean;
  readonly key: Buffer | undefined;
  readonly args: Arg[];
  readonly run: (() => Promise<unknown>) | undefined;
  // deno-lint-ignore no-explicit-any
  readonly then: ((reply: Reply) => any) | undefined;
  // deno-lint-ignore no-explicit-any
  readonly resolve: (value: any) => void;
  readonly reject: (error: unknown) => void;

  constructor(
    expire: (call: Call) => void,
    op: string,
    write: boolean,
    key: Buffer | undefined,
    args: Arg[],
    run: (() => Promise<unknown>) | undefined,
    // deno-lint-ignore no-explicit-any
    then: ((reply: Reply) => any) | undefined,
    // deno-lint-ignore no-explicit-any
    resolve: (value: any) => void,
    reject: (error: unknown) => void,
  ) {
    super();
    this.#expire = expire;
    this.op = op;
    this.write = write;
    this.key = key;
    this.args = args;
    this.run = run;
    this.then = then;
    this.resolve = resolve;
    this.reject = reject;
  }

  expired(): void {
    this.#expire(this);
  }
}
