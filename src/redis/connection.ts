/**
 * Internal. The connection of a {@linkcode RedisSyncMap} to a standalone Redis or a Redis
 * Cluster, through node-redis (`@redis/client`), the one module that imports the client.
 *
 * What it adds to the client:
 *
 * - **A deadline on every command.** The client's own command timeout covers only the wait to
 *   be written; a written command whose server stops answering would wait for good. Here every
 *   command settles within `timeout` milliseconds of the end of the event-loop turn that issued
 *   it (deadlines.ts), with a clear error.
 * - **No offline queue.** While the client reconnects, a command is not queued to be sent
 *   whenever the connection comes back (possibly after its caller was told it failed): it waits
 *   here, unsent, for the connection, and fails as "not sent" if the deadline comes first.
 * - **Reconnects** are the client's: exponential backoff from 50 ms up to `maxReconnectDelay`,
 *   with jitter, for as long as the map is open. `open` gives up after `connectTimeout`; until
 *   then it retries a refused connection with the same backoff, a Cluster's slot discovery
 *   included (the client tries each root node once).
 * - **Errors** become {@linkcode RedisSyncMapError}s that say whether a write may have applied.
 * - **A connection that went silent** is replaced. A connection can stay open with nothing
 *   coming through it (a NAT or load-balancer flow lost, a peer gone behind a proxy): the
 *   client would wait for TCP keepalive, minutes, and every command on it would time out
 *   meanwhile. So a command that times out has its server checked (at most one check a server
 *   at a time, and one a `timeout`): a PING on the connection, and one on a new side
 *   connection, each given {@linkcode probeMs}. When the side one is answered and the other is
 *   not, the server is alive and the connection is dead: its client is destroyed (the
 *   commands still in flight on it fail as `connection`, a write's as one that may have been
 *   applied) and the next command goes out on a new one. When neither is answered (a server
 *   stopped or busy, the network down) the connection is kept, for its replies may still come.
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
import { unrefTimer } from "../_engine/unref_timer.ts";
import { Deadline, Deadlines } from "./deadlines.ts";
import { RedisSyncMapError } from "./errors.ts";
import { redactUrl } from "./options.ts";
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
/**
 * How long the check of a server whose command timed out (module doc) waits for the answers to
 * its PINGs, for a connection's `timeout`: half of it, between 100 ms and 1 s.
 */
export function probeMs(timeout: number): number {
  return Math.min(1000, Math.max(100, timeout / 2));
}
const MIN_REDIS_MAJOR = 7;
/**
 * Redis's default `proto-max-bulk-len`: the longest argument a server takes, where it does not
 * say (managed services refuse CONFIG).
 */
export const DEFAULT_MAX_BULK = 512 * 1024 * 1024;
/**
 * Redis's default `client-query-buffer-limit`: the most bytes of one command a server takes,
 * where it does not say.
 */
export const DEFAULT_MAX_QUERY = 1024 * 1024 * 1024;
/**
 * The most bytes RESP's framing adds to a command (`*<count>\r\n`), and to each argument
 * (`$<length>\r\n` before it, `\r\n` after): a bound, not the exact count, for the size check.
 */
const COMMAND_FRAMING = 32;
const ARG_FRAMING = 32;
/**
 * Redis's PROTO_MBULK_BIG_ARG: an argument this long is read into a buffer of its own and handed
 * over whole, so the query buffer holds one such argument at a time, and the small ones beside.
 */
const BIG_ARG = 32 * 1024;
/** A Redis Cluster's hash slots. */
const SLOTS = 16384;

/** A command about a key of a Cluster slot the client knows no master of: not sent. */
class SlotUnserved extends Error {
  readonly slot: number;
  constructor(slot: number) {
    super(`no master of hash slot ${slot}`);
    this.slot = slot;
  }
}

type Send = (key: Buffer, write: boolean, args: Arg[]) => Promise<unknown>;
// The part of a client or cluster this module uses.
interface Closable {
  destroy(): void;
}
interface NodeClient {
  sendCommand(args: Arg[], options?: typeof COMMAND_OPTIONS): Promise<unknown>;
}
// A client that connects once: the side connection of a check.
interface ProbeClient extends NodeClient, Closable {
  connect(): Promise<unknown>;
  on(event: "error", listener: (error: Error) => void): unknown;
}

/**
 * How the check of a server (module doc) reaches the clients: one client for a standalone
 * server, one per node in a Cluster.
 */
interface Links {
  /** The address of the server a command about `key`, or a keyless one to `address`, went to. */
  addressOf(key: Buffer | undefined, address: string | undefined): string | undefined;
  /** The client carrying the commands to `address` now, if it has one connected. */
  current(address: string): NodeClient | undefined;
  /** A new client to `address` that connects once, not retrying: the side connection. */
  probe(address: string, ms: number): ProbeClient | undefined;
  /** Destroys `client`, if it still carries the commands to `address`: a new one will. */
  replace(address: string, client: NodeClient): void;
  /** How many of a Cluster's hash slots the client knows no master of (0 for a server). */
  unservedSlots(): number;
}

/** A server's check (module doc): whether one runs, and when the last one started. */
interface Check {
  running: boolean;
  at: number;
}

/** A connection to a standalone Redis or a Redis Cluster; see the module doc. */
export class Connection {
  /**
   * `redis://host:port`, or `Redis Cluster (redis://a, redis://b)`: for error messages, with
   * no user or password.
   */
  readonly description: string;
  /** Whether it talks to a Cluster. */
  readonly isCluster: boolean;
  readonly #label: string;
  // The userinfo of each URL, as given: never in a message.
  readonly #secrets: readonly string[];
  readonly #deadlines: Deadlines;
  readonly #handle: Closable;
  readonly #send: Send;
  readonly #masters: () => Node[];
  readonly #links: Links;
  // The checks of servers whose commands timed out, by address (module doc).
  readonly #checks = new Map<string, Check>();
  // The side connections of the checks running, for close() to destroy.
  readonly #probes = new Set<ProbeClient>();
  // Set once open has checked the servers: a timeout before that fails open instead.
  #ready = false;
  #lastError: Error | undefined;
  // Set by close(): no call waits for a connection any more.
  #closing: Promise<void> | undefined;
  // Set once close() has let the calls in progress finish: no command is sent any more.
  #shut = false;
  #maxBulk = DEFAULT_MAX_BULK;
  #maxQuery = DEFAULT_MAX_QUERY;

  private constructor(
    options: ConnectionOptions,
    handle: Closable,
    send: Send,
    masters: (self: Connection) => Node[],
    links: Links,
  ) {
    this.isCluster = options.cluster !== undefined;
    const urls = options.cluster ?? [String(options.url)];
    this.description = options.cluster !== undefined
      ? `Redis Cluster (${urls.map(redactUrl).join(", ")})`
      : redactUrl(urls[0]);
    this.#secrets = secrets(urls);
    this.#label = options.label;
    this.#deadlines = new Deadlines(options.timeout);
    this.#handle = handle;
    this.#send = send;
    this.#masters = () => masters(this);
    this.#links = links;
  }

  /**
   * Connects, checks that every server runs Redis 7.0 or later in the expected mode, and
   * resolves once commands can be sent. Otherwise rejects with a RedisSyncMapError, at the
   * latest once `connectTimeout` milliseconds have passed (plus the time its timer may take to
   * run): the connection, its retries and the checks all count against it.
   */
  static async open(options: ConnectionOptions): Promise<Connection> {
    const deadline = performance.now() + options.connectTimeout;
    let ready = false;
    let outOfTime = false;
    let lastError: Error | undefined;
    // Before the first connection, no retry is scheduled past the deadline, and none is made
    // after it; once connected, the client retries for as long as the map is open (commands
    // meanwhile fail by their deadlines).
    const reconnectStrategy = (retries: number, cause: Error): number | Error => {
      lastError = cause;
      const backoff = Math.min(50 * 2 ** Math.min(retries, 16), options.maxReconnectDelay);
      const jittered = Math.round(backoff * (0.75 + Math.random() * 0.25));
      if (ready) return jittered;
      // A server that answered no (a wrong password, a database it does not have) answers the
      // same to every retry: open fails at once rather than at connectTimeout.
      if (isSetupRefused(cause)) return cause;
      const left = Math.floor(deadline - performance.now());
      if (left <= 0) {
        outOfTime = true;
        return cause;
      }
      return Math.min(jittered, left);
    };
    const socket = { connectTimeout: options.connectTimeout, reconnectStrategy };
    let connection: Connection | undefined;
    let connecting: Promise<unknown>;
    // Set once open has given up (and destroyed the client): no retry is made after it.
    let abandoned = false;
    // The last error the client reported in the current attempt of a Cluster's connect.
    let attemptError: Error | undefined;
    // The sleep of a Cluster's connect before its next attempt, for an abandoned open to end.
    let retryTimer: ReturnType<typeof setTimeout> | undefined;
    let wakeRetry: (() => void) | undefined;
    const onError = (error: Error): void => {
      lastError = error;
      attemptError = error;
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
        (key, write, args) => {
          // A slot the client knows no master of: it would fail the command with a TypeError
          // of its own, unsent, which would read as a dropped connection.
          const slot = keySlot(key);
          if (cluster.slots[slot]?.master === undefined) throw new SlotUnserved(slot);
          return cluster.sendCommand(key, !write, args);
        },
        (self) =>
          cluster.masters.map(({ address }) => ({
            address,
            // The node as the client knows it now, looked up for each command: a rediscovery
            // (after a failover or a resharding) drops the objects of nodes that left, and a
            // client nodeClient makes on demand for a dropped one is one the cluster does not
            // track, nor close.
            send: (op: string, args: Arg[]) =>
              self.#call(
                op,
                false,
                undefined,
                args,
                () => {
                  const node = cluster.nodeByAddress.get(address);
                  if (node === undefined) {
                    throw new Error(`${address} left the Cluster during the scan`);
                  }
                  return cluster.nodeClient(node).then((client) =>
                    (client as NodeClient).sendCommand(args, COMMAND_OPTIONS)
                  );
                },
                undefined,
                undefined,
                address,
              ),
          })),
        {
          unservedSlots: () => {
            let n = 0;
            for (let slot = 0; slot < SLOTS; slot++) {
              if (cluster.slots[slot]?.master === undefined) n++;
            }
            return n;
          },
          addressOf: (key, address) =>
            address ??
              (key === undefined ? undefined : cluster.slots[keySlot(key)]?.master.address),
          current: (address) => {
            const node = cluster.nodeByAddress.get(address);
            return node === undefined || node.connectPromise !== undefined
              ? undefined
              : node.client as NodeClient | undefined;
          },
          probe: (address, ms) => {
            const node = cluster.nodeByAddress.get(address);
            if (node === undefined) return undefined;
            return createClient({
              ...NODE_OPTIONS,
              socket: {
                host: node.host,
                port: node.port,
                connectTimeout: ms,
                reconnectStrategy: false,
              },
              username,
              password,
              RESP: 3,
              commandOptions: COMMAND_OPTIONS,
            }) as unknown as ProbeClient;
          },
          replace: (address, client) => {
            // The cluster makes a new client for a node that has none, at its next command
            // (as it does for one whose connect failed).
            const node = cluster.nodeByAddress.get(address);
            if (node === undefined || node.client !== client || node.connectPromise !== undefined) {
              return;
            }
            node.client = undefined;
            (client as unknown as Closable).destroy();
          },
        },
      );
      // The client's connect tries each root node once, without retrying a refused connection
      // (its discovery client has no reconnect strategy): a Cluster that is still starting
      // would fail open at once. It is retried here, with the reconnect strategy's backoff,
      // until the deadline; an answer no retry changes (a refused setup, a standalone server)
      // fails it at once.
      connecting = (async () => {
        for (let retries = 0;; retries++) {
          attemptError = undefined;
          try {
            await cluster.connect();
            return;
          } catch (error) {
            if (abandoned) throw error;
            const cause = attemptError ?? (error as Error);
            if (isClusterDisabled(cause)) throw cause;
            const wait = reconnectStrategy(retries, cause);
            if (typeof wait !== "number") throw wait;
            await new Promise<void>((resolve) => {
              wakeRetry = resolve;
              retryTimer = setTimeout(resolve, wait);
            });
            retryTimer = wakeRetry = undefined;
            if (abandoned) throw error;
          }
        }
      })();
    } else {
      // A client of the server over `over`: the map's socket options, or a probe's.
      const clientOver = (
        over: {
          connectTimeout: number;
          reconnectStrategy: typeof socket.reconnectStrategy | false;
        },
      ) =>
        createClient({
          url: options.url,
          RESP: 3,
          ...NODE_OPTIONS,
          socket: over,
          commandOptions: COMMAND_OPTIONS,
        });
      const make = () => {
        const made = clientOver(socket);
        made.on("error", onError);
        return made;
      };
      // The client of the moment: a check (module doc) may replace it; every command reads it.
      let client = make();
      const address = redactUrl(String(options.url));
      connection = new Connection(
        options,
        { destroy: () => client.destroy() },
        (_key, _write, args) => client.sendCommand(args),
        (self) => [{
          address,
          send: (op: string, args: Arg[]) =>
            self.#call(op, false, undefined, args, () => client.sendCommand(args)),
        }],
        {
          addressOf: () => address,
          unservedSlots: () => 0,
          current: () => client.isReady ? client as NodeClient : undefined,
          probe: (_address, ms) =>
            clientOver({ connectTimeout: ms, reconnectStrategy: false }) as unknown as ProbeClient,
          replace: (_address, old) => {
            if (old !== (client as NodeClient)) return;
            // Commands wait, unsent, for the new client to connect (it reconnects as the first
            // did, for as long as the map is open); those in flight on the old one fail.
            client = make();
            client.connect().catch(() => {});
            (old as unknown as Closable).destroy();
          },
        },
      );
      connecting = client.connect();
    }
    const opened = connection;
    const opening = (async () => {
      try {
        await connecting;
      } finally {
        if (abandoned) {
          // Given up already, and destroyed: a Cluster's slot discovery that outlived the
          // destroy goes on to connect a client to every master, and its connect() then settles
          // (rejected, if one of them failed). Those are destroyed too, or they would keep the
          // process alive, reconnecting for good.
          try {
            opened.#handle.destroy();
          } catch { /* closed already */ }
        }
      }
      if (abandoned) return;
      ready = true;
      await opened.#checkServers();
      opened.#ready = true;
    })();
    try {
      await until(opening, deadline);
      return connection;
    } catch (error) {
      abandoned = true;
      clearTimeout(retryTimer);
      wakeRetry?.();
      connection.#shut = true;
      connection.#handle.destroy();
      connection.#deadlines.stop();
      if (error instanceof RedisSyncMapError) throw error;
      const notCluster = [error, lastError].find(isClusterDisabled);
      if (notCluster !== undefined) {
        throw new RedisSyncMapError(
          "unsupported",
          "open",
          `${options.label}: { cluster: [${
            (options.cluster ?? []).map(redactUrl).join(", ")
          }] } reached a standalone server, not a Cluster node (${
            connection.#text(notCluster)
          }): open a standalone server with { url }`,
          { cause: notCluster },
        );
      }
      const where = `${options.label}: could not connect to ${connection.description}`;
      const budget = `within connectTimeout (${options.connectTimeout} ms)`;
      if (error === TIMED_OUT && ready) {
        throw new RedisSyncMapError(
          "connection",
          "open",
          `${options.label}: connected to ${connection.description}, but it did not answer ${budget}`,
        );
      }
      if (error === TIMED_OUT || outOfTime) {
        throw new RedisSyncMapError(
          "connection",
          "open",
          `${where} ${budget}: ${
            lastError === undefined ? "no answer from the server" : connection.#text(lastError)
          }`,
          { cause: lastError },
        );
      }
      // The client gave up before the deadline.
      throw new RedisSyncMapError("connection", "open", `${where}: ${connection.#text(error)}`, {
        cause: error,
      });
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

  /**
   * The masters, each to be scanned for the map's operation `op`: the one server of a
   * standalone Redis.
   */
  masters(op: string): Node[] {
    if (this.#shut) throw this.#closedError(op);
    return this.#masters();
  }

  /**
   * The most bytes one argument of a command may take: the least `proto-max-bulk-len` of the
   * servers, read by `open` (Redis's default, 512 MiB, from a server that refuses CONFIG).
   * Redis drops the connection of a client that sends a longer one, failing every command in
   * flight on it, so the map refuses such a call before sending it. A limit lowered later by
   * CONFIG SET is not seen.
   */
  get maxBulk(): number {
    return this.#maxBulk;
  }

  /**
   * The most bytes of a command the server's query buffer may hold at once: the least
   * `client-query-buffer-limit` of the servers, read by `open` (Redis's default, 1 GiB, from a
   * server that refuses CONFIG). A server closes the connection of a client whose query buffer
   * outgrows it, failing every command in flight on it. It reads an argument of 32 KiB or more
   * into a buffer of its own and hands it over whole (Redis 7.0 drops a client as soon as one
   * such argument, with its framing, is over the limit; two under it in one command pass), so
   * the map refuses, before sending it, a command whose small arguments together, or one big
   * argument alone, with a bound on the framing, are over it. A limit lowered later by CONFIG
   * SET is not seen.
   */
  get maxQuery(): number {
    return this.#maxQuery;
  }

  /** Whether {@linkcode close} has been called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** The error of a call `op` made after close(), for the map to refuse one with. */
  closedError(op: string): RedisSyncMapError {
    return this.#closedError(op);
  }

  /**
   * Closes the connection once `drained` has resolved (the map's calls in progress, which may
   * send commands until then) and every command sent has settled (each within its deadline).
   * Calls waiting for a connection are not sent, and reject with a "closed" error at once; so
   * does a command that finds no connection meanwhile. Commands sent after that reject with a
   * "closed" error too.
   */
  close(drained: Promise<void> = Promise.resolve()): Promise<void> {
    this.#closing ??= (async () => {
      try {
        await drained;
        // The commands in flight, and the retries of those that get NOSCRIPT (EVAL, through
        // the client, which would refuse it once closing), all settle by their deadlines; a
        // command sent meanwhile joins them. The client's close() would wait for the replies
        // of commands failed by their deadline too: once these have settled, nothing is left
        // to wait for, and the client is destroyed.
        while (this.#deadlines.pending !== 0) await this.#deadlines.idle();
      } finally {
        this.#shut = true;
        this.#handle.destroy();
        this.#deadlines.stop();
        for (const probe of this.#probes) probe.destroy();
        this.#probes.clear();
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
    address?: string,
  ): Promise<T> {
    if (this.#shut) return Promise.reject(this.#closedError(op));
    // Only the Buffers can be long: the strings are command names, numbers and script SHA-1s,
    // all ASCII (a script's source, ASCII too, replaces its SHA-1 on a retry: counted here).
    // What the server's query buffer holds at once (see maxQuery): the small arguments, and
    // each big one alone.
    let small = COMMAND_FRAMING + (script === undefined ? 0 : script.lua.length + ARG_FRAMING);
    let big = 0;
    for (const arg of args) {
      if (typeof arg !== "string" && arg.length > this.#maxBulk) {
        return Promise.reject(this.#tooLarge(op, arg === key ? "key" : "value", arg.length));
      }
      if (arg.length >= BIG_ARG) big = Math.max(big, COMMAND_FRAMING + arg.length + ARG_FRAMING);
      else small += arg.length + ARG_FRAMING;
    }
    const bytes = Math.max(small, big);
    if (bytes > this.#maxQuery) return Promise.reject(this.#commandTooLarge(op, bytes));
    return new Promise<T>((resolve, reject) => {
      const call = new Call(this.#expired, op, write, key, args, run, then, resolve, reject);
      call.script = script;
      call.address = address;
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
    // close() ends the wait for a connection: the call is not sent.
    if (call.offline && this.#closing !== undefined) {
      this.#deadlines.settle(call);
      call.reject(this.#closedError(call.op, "while it waited for a connection"));
      return;
    }
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
    this.#deadlines.settle(call);
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
    // Refused before it was written: wait for the client to reconnect, then send. The deadline
    // ends the wait (#attempt does nothing for a settled call).
    if (error instanceof ClientOfflineError && this.#closing === undefined) {
      call.offline = true;
      setTimeout(() => this.#attempt(call), OFFLINE_RETRY_MS);
      return;
    }
    this.#deadlines.settle(call);
    call.reject(this.#error(call.op, call.write, error));
  }

  readonly #expired = (call: Call): void => {
    if (call.offline) {
      call.reject(this.#offlineError(call.op));
      return;
    }
    call.reject(this.#timeoutError(call.op, call.write));
    if (!this.#ready || this.#shut || this.#closing !== undefined) return;
    const address = this.#links.addressOf(call.key, call.address);
    if (address === undefined) return;
    // Run from the deadlines' loop, which must go on to expire the other calls whatever this
    // does: a check that throws as it starts is no check, and the next timeout may start one
    // (its probe, if made, is in #probes, which close() destroys).
    try {
      this.#check(address);
    } catch {
      const check = this.#checks.get(address);
      if (check !== undefined) check.running = false;
    }
  };

  /**
   * Checks the connection to the server at `address`, one of whose commands timed out, and
   * replaces it if the server answers on a new connection and not on it (module doc). At most
   * one check a server at a time, and one every `timeout`.
   */
  #check(address: string): void {
    const now = performance.now();
    let check = this.#checks.get(address);
    if (check === undefined) {
      check = { running: false, at: -Infinity };
      this.#checks.set(address, check);
    }
    if (check.running || now - check.at < this.#deadlines.timeout) return;
    const client = this.#links.current(address);
    // Connecting, or reconnecting: the client knows the connection is down.
    if (client === undefined) return;
    const ms = probeMs(this.#deadlines.timeout);
    const probe = this.#links.probe(address, ms);
    if (probe === undefined) return;
    check.running = true;
    check.at = now;
    this.#probes.add(probe);
    probe.on("error", () => {});
    // Whether each PING was answered (with anything: an error reply is an answer) in time.
    let onConnection = false;
    let onSide = false;
    let sideFailed = false;
    const done = (): void => {
      clearTimeout(timer);
      if (!this.#probes.delete(probe)) return;
      probe.destroy();
      check.running = false;
      // A dead connection: the server answers others, not it. Not while closing: the calls
      // in flight are left to time out, and close() destroys the client.
      if (onSide && !onConnection && !this.#shut && this.#closing === undefined) {
        this.#links.replace(address, client);
      }
    };
    // Decided before the timer: both answered (a live connection), or the side connection
    // failed (the server is not known to be alive).
    const answered = (): void => {
      if ((onConnection && onSide) || sideFailed) done();
    };
    // The PING on the connection waits behind the commands sent before it: the server has
    // answered them all, or none of it comes through.
    let ping: Promise<unknown>;
    try {
      ping = client.sendCommand(["PING"], COMMAND_OPTIONS);
    } catch {
      ping = Promise.resolve();
    }
    // Refused unsent (the client found the connection down meanwhile) or failed on it counts
    // as an answer too: the client deals with a connection it knows is down.
    const onPing = (): void => {
      onConnection = true;
      answered();
    };
    ping.then(onPing, onPing);
    probe.connect().then(() => probe.sendCommand(["PING"], COMMAND_OPTIONS)).then(
      () => {
        onSide = true;
        answered();
      },
      (error: unknown) => {
        if (error instanceof ErrorReply) onSide = true;
        else sideFailed = true;
        answered();
      },
    );
    // Set before any answer can come (they come in later turns): done() clears it.
    const timer = setTimeout(done, ms);
    unrefTimer(timer);
  }

  async #checkServers(): Promise<void> {
    let maxBulk = Infinity;
    let maxQuery = Infinity;
    const masters = this.#masters();
    // A Cluster whose slots are not all assigned (still being set up, or its nodes not yet met)
    // connects, and then a command about a key of an unserved slot has no master to go to.
    const unserved = this.#links.unservedSlots();
    if (unserved !== 0) {
      throw new RedisSyncMapError(
        "server",
        "open",
        `${this.#label}: ${this.description} has ${
          unserved === SLOTS ? "no hash slot" : `${unserved} of its ${SLOTS} hash slots not`
        } assigned to a master: a Cluster still being set up (its slots not yet assigned, as redis-cli --cluster create does, or its nodes not yet met) cannot serve the map`,
      );
    }
    for (const node of masters) {
      const [reply, limits] = await Promise.all([
        node.send("open", ["INFO", "server"]).catch((error: unknown) => {
          // Refused (a user without @dangerous, a managed service): HELLO tells the same.
          if (error instanceof RedisSyncMapError && error.code === "server") {
            return node.send("open", ["HELLO"]).then(helloAsInfo, () => undefined);
          }
          throw error;
        }),
        node.send("open", ["CONFIG", "GET", "proto-max-bulk-len", "client-query-buffer-limit"])
          .then(
            configSizes,
            (error: unknown) => {
              // Refused (a managed service): the defaults.
              if (error instanceof RedisSyncMapError && error.code === "server") return undefined;
              throw error;
            },
          ),
      ]);
      maxBulk = Math.min(maxBulk, limits?.get("proto-max-bulk-len") ?? DEFAULT_MAX_BULK);
      maxQuery = Math.min(maxQuery, limits?.get("client-query-buffer-limit") ?? DEFAULT_MAX_QUERY);
      // Neither INFO nor HELLO allowed: nothing to check by; a server older than 7 refuses the
      // first write (SET with NX and GET) with its own error.
      if (reply === undefined) continue;
      const info = String(reply);
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
    if (maxBulk !== Infinity) this.#maxBulk = maxBulk;
    if (maxQuery !== Infinity) this.#maxQuery = maxQuery;
  }

  #error(op: string, write: boolean, error: unknown): RedisSyncMapError {
    const where = `${this.#label}: ${op} on ${this.description}`;
    if (error instanceof SlotUnserved) {
      return new RedisSyncMapError(
        "server",
        op,
        `${where} was not sent: the client knows no master of its key's hash slot (${error.slot}); the Cluster's slots are not all assigned`,
        { cause: error },
      );
    }
    if (error instanceof ErrorReply || error instanceof MaxCommandRedirectionsError) {
      return new RedisSyncMapError("server", op, `${where} failed: ${this.#text(error)}`, {
        cause: error,
      });
    }
    if (error instanceof ClientClosedError) {
      return this.#closing !== undefined
        ? this.#closedError(op, "before it could be")
        : new RedisSyncMapError("connection", op, `${where} failed: the client gave up`, {
          cause: error,
        });
    }
    if (error instanceof ClientOfflineError) {
      // Only while closing: otherwise the call waits for the client to reconnect (#failed).
      return this.#closing !== undefined
        ? this.#closedError(op, "while it waited for a connection")
        : this.#offlineError(op);
    }
    return new RedisSyncMapError(
      "connection",
      op,
      `${where} failed: the connection dropped (${this.#text(error)})${
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
    const last = this.#lastError === undefined ? "" : ` (${this.#text(this.#lastError)})`;
    return new RedisSyncMapError(
      "connection",
      op,
      `${this.#label}: ${op} was not sent: no connection to ${this.description} for ${this.#deadlines.timeout} ms${last}`,
      { cause: this.#lastError },
    );
  }

  /** The message of `error`, a client's or server's, with no URL's user or password. */
  #text(error: unknown): string {
    let text = message(error);
    for (const secret of this.#secrets) text = text.replaceAll(secret, "");
    return text;
  }

  #tooLarge(op: string, what: string, bytes: number): RangeError {
    return new RangeError(
      `${this.#label}: ${op} was not sent: its ${what} takes ${bytes} bytes encoded, more than the ${this.#maxBulk} bytes ${this.description} takes in one argument (proto-max-bulk-len)`,
    );
  }

  #commandTooLarge(op: string, bytes: number): RangeError {
    return new RangeError(
      `${this.#label}: ${op} was not sent: up to ${bytes} bytes of its command (a value, or its key, with the framing) would sit in the server's query buffer at once, more than the ${this.#maxQuery} bytes ${this.description} takes there (client-query-buffer-limit)`,
    );
  }

  /**
   * The error of a call made after close() (`when` undefined), or of one that close() kept
   * from being sent (`when` says when it was closed).
   */
  #closedError(op: string, when?: string): RedisSyncMapError {
    return new RedisSyncMapError(
      "closed",
      op,
      when === undefined
        ? `${this.#label}: ${op} after close()`
        : `${this.#label}: ${op} was not sent: the map was closed ${when}`,
    );
  }
}

/**
 * The values of a `CONFIG GET name...` reply, a RESP3 map (an object or a Map, as the client
 * gives it) or a RESP2 flat array of names and values, by name: those that are positive
 * integers, the sizes asked for.
 */
function configSizes(reply: unknown): Map<string, number> {
  const pairs: [unknown, unknown][] = [];
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) pairs.push([reply[i], reply[i + 1]]);
  } else if (reply instanceof Map) pairs.push(...reply);
  else if (typeof reply === "object" && reply !== null) pairs.push(...Object.entries(reply));
  const sizes = new Map<string, number>();
  for (const [name, value] of pairs) {
    const n = Number(String(value));
    if (Number.isSafeInteger(n) && n > 0) sizes.set(String(name), n);
  }
  return sizes;
}

/** Whether `error` is a standalone server's refusal of the Cluster commands, or holds one. */
function isClusterDisabled(error: unknown): boolean {
  if (error instanceof AggregateError) return error.errors.some(isClusterDisabled);
  return error instanceof ErrorReply && /cluster support disabled/i.test(error.message);
}

/**
 * Whether `error`, met while connecting, is the server's refusal of the connection's setup (its
 * authentication or its database), which no retry changes; a server still loading its data, or
 * busy, answers otherwise and is retried.
 */
function isSetupRefused(error: unknown): boolean {
  return error instanceof ErrorReply &&
    /^(WRONGPASS|NOAUTH|NOPERM)\b|^ERR (DB index is out of range|invalid DB index|invalid password|AUTH)/i
      .test(error.message);
}

function message(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return message(error.errors[0]);
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

/**
 * The userinfo of each of `urls` that has one, as written, with its `@`: what
 * {@linkcode redactUrl} takes out of a URL, to take out of any other text too.
 */
function secrets(urls: readonly string[]): string[] {
  const found: string[] = [];
  for (const url of urls) {
    const redacted = redactUrl(url);
    if (redacted === url) continue;
    const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:(?:\/\/)?/.exec(url)![0];
    const userinfo = url.slice(scheme.length, url.length - redacted.length + scheme.length);
    // A lone `@` is no credential, and taking every `@` out of messages would garble them.
    if (userinfo !== "@") found.push(userinfo);
  }
  return found;
}

/** The credentials in a Cluster node's URL, for the connections to every node. */
function credentials(url: string): { username?: string; password?: string } {
  const parsed = new URL(url);
  return {
    username: parsed.username === "" ? undefined : decodeURIComponent(parsed.username),
    password: parsed.password === "" ? undefined : decodeURIComponent(parsed.password),
  };
}

// CRC16-CCITT (XMODEM), Redis Cluster's key hash, a byte at a time.
const CRC16 = (() => {
  const table = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let crc = i << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
    table[i] = crc & 0xffff;
  }
  return table;
})();

/**
 * The Cluster slot of `key`: CRC16 of the key, or of its hash tag (what lies between its first
 * `{` and the first `}` after it, if not empty), modulo 16384. Only for a command that timed
 * out: the client computes its own to route every command.
 */
export function keySlot(key: Uint8Array): number {
  let start = 0;
  let end = key.length;
  const open = key.indexOf(0x7b);
  if (open >= 0) {
    const close = key.indexOf(0x7d, open + 1);
    if (close > open + 1) {
      start = open + 1;
      end = close;
    }
  }
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ CRC16[(crc >> 8) ^ key[i]];
  return crc & 16383;
}

/** What {@linkcode until} rejects with when the deadline comes first. */
const TIMED_OUT = new Error("timed out");

/**
 * Settles like `promise`, or rejects with TIMED_OUT at `deadline` (`performance.now()`
 * milliseconds). A rejection of `promise` after that is dropped.
 */
async function until<T>(promise: Promise<T>, deadline: number): Promise<T> {
  promise.catch(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(TIMED_OUT), Math.max(0, deadline - performance.now()));
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
  // The server a keyless command goes to (a scan's), for a check if it times out.
  address: string | undefined;
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

/**
 * HELLO's reply (without arguments: the server's details in the connection's protocol, a flat
 * array of names and values in RESP2, a map in RESP3) as the lines of INFO that open checks.
 */
function helloAsInfo(reply: unknown): string {
  const fields = new Map<string, unknown>();
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) fields.set(String(reply[i]), reply[i + 1]);
  } else if (reply instanceof Map) {
    for (const [k, v] of reply) fields.set(String(k), v);
  } else if (typeof reply === "object" && reply !== null) {
    for (const [k, v] of Object.entries(reply)) fields.set(k, v);
  }
  return `redis_version:${String(fields.get("version"))}\nredis_mode:${String(fields.get("mode"))}`;
}
