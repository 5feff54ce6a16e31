// Copyright the shmap authors. MIT license.
//
// Options and error messages: every options object is checked for keys it does not know,
// options that cannot work together are an options error (not a full map), and messages name
// what they got with the right article and never leak an engine's internal TypeError.
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { type Codec, codecs, GoMap, MapFullError, Mutex, SyncMap } from "../mod.ts";
import { Inbox } from "../src/workers/_receive.ts";
import { shareAll } from "../src/workers/_share.ts";
import { deadline } from "./fixtures/harness.ts";

/** Asserts `fn` throws an instance of `type` whose message matches every pattern. */
function throwsWith(fn: () => unknown, type: ErrorConstructor, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.equal((e as Error)?.constructor, type, `expected a ${type.name}, got ${e}`);
    const message = (e as Error).message;
    for (const pattern of patterns) assert.match(message, pattern);
    // Never an engine's own message about reading a property of null or undefined.
    assert.doesNotMatch(message, /Cannot read prop|undefined is not an object|null is not/);
    assert.doesNotMatch(message, /\ba [AEIOaeio]/, "a wrong article");
    return true;
  });
}

/** The options each call knows, as its message for an unknown one lists them. */
const KNOWN = {
  GoMap: "hint, keys, values, maxBytes",
  SyncMap: "hint, keys, values, maxBytes, maxParticipants",
  "GoMap.attach": "keys, values",
  "SyncMap.attach": "keys, values",
};

/** Asserts `fn` throws a TypeError naming `where`'s options, the `unknown` one and the known. */
function refusesUnknown(fn: () => unknown, where: keyof typeof KNOWN, unknown: string): void {
  const escaped = (text: string) => text.replace(/[.]/g, "\\.");
  throwsWith(
    fn,
    TypeError,
    new RegExp(`${escaped(where)} options`),
    new RegExp(`"${unknown}"`),
    new RegExp(KNOWN[where]),
  );
}

describe("unknown options are a TypeError naming them and the known ones", () => {
  test("GoMap", () => {
    refusesUnknown(() => new GoMap({ maxbytes: 1 } as never), "GoMap", "maxbytes");
    refusesUnknown(() => new GoMap({ hint: 1, Hint: 2 } as never), "GoMap", "Hint");
  });

  test("SyncMap", () => {
    refusesUnknown(() => new SyncMap({ maxParticipant: 4 } as never), "SyncMap", "maxParticipant");
  });

  test("GoMap.attach and SyncMap.attach: only keys and values; no slot is taken", () => {
    const go = new GoMap();
    refusesUnknown(() => GoMap.attach(go.handle, { hint: 4 } as never), "GoMap.attach", "hint");
    const sync = new SyncMap({ maxParticipants: 2 });
    refusesUnknown(
      () => SyncMap.attach(sync.handle, { maxBytes: 1 << 20 } as never),
      "SyncMap.attach",
      "maxBytes",
    );
    // The one free slot is still free.
    assert.equal(sync.stats().participants, 1);
    SyncMap.attach(sync.handle, { keys: codecs.auto }).close();
  });

  test("receive() in a worker", async () => {
    const inbox = new Inbox();
    // Bounded: a receive() that accepted the options would wait for a message forever.
    await assert.rejects(
      deadline(inbox.receive({ codec: {} } as never), 3_000, "receive() to reject"),
      (e: unknown) =>
        e instanceof TypeError && /receive/.test(e.message) && /"codec"/.test(e.message) &&
        /codecs, signal/.test(e.message),
    );
  });

  test("a later receive() returns the first's structures, and checks its codecs too", async () => {
    const point: Codec<number[]> = {
      name: "point",
      encode: (p) => new Uint8Array(new Int32Array(p).buffer),
      decode: (b) => Array.from(new Int32Array(b.slice().buffer)),
    };
    const map = new GoMap<number[], string>({ keys: point });
    map.set([1, 2], "a");
    const grant = shareAll({ map, mu: new Mutex() });
    try {
      const inbox = new Inbox();
      inbox.offer(grant.message);
      const first = await inbox.receive<{ map: GoMap<number[], string> }>({
        codecs: { map: { keys: point } },
      });
      assert.equal(first.map.get([1, 2]), "a");
      assert.equal(await inbox.receive(), first, "no codecs: the same structures");
      assert.equal(await inbox.receive({ codecs: { map: { keys: point } } }), first);
      const refused: [string, Record<string, unknown>, RegExp][] = [
        ["a name not shared", { mapp: { keys: point } }, /"mapp", which was not shared/],
        ["other codecs", { map: { keys: { ...point } } }, /codecs for "map" differ/],
        ["codecs left out", { mu: undefined }, /codecs for "map" differ/],
        ["codecs for a lock", { map: { keys: point }, mu: {} }, /codecs for "mu" differ/],
      ];
      for (const [what, codecs, message] of refused) {
        await assert.rejects(
          deadline(inbox.receive({ codecs } as never), 3_000, what),
          (e: unknown) => e instanceof TypeError && message.test(e.message),
          what,
        );
      }
    } finally {
      grant.release();
    }
  });

  test("undefined options are defaults; inherited properties are not options", () => {
    const map = new GoMap(Object.create({ maxbytes: 1 }));
    map.set(1, 1);
    assert.equal(new SyncMap({ hint: undefined, maxBytes: undefined }).size, 0);
  });
});

describe("options that are not objects", () => {
  test("attach(handle, null) is a clear TypeError", () => {
    throwsWith(
      () => GoMap.attach(new GoMap().handle, null as never),
      TypeError,
      /GoMap\.attach options must be an object, got null/,
    );
    const sync = new SyncMap({ maxParticipants: 2 });
    throwsWith(
      () => SyncMap.attach(sync.handle, null as never),
      TypeError,
      /SyncMap\.attach options must be an object, got null/,
    );
    assert.equal(sync.stats().participants, 1, "no seat was taken");
  });

  test("constructors", () => {
    throwsWith(() => new GoMap(null as never), TypeError, /options must be an object, got null/);
    throwsWith(() => new SyncMap([] as never), TypeError, /got an Array/);
    throwsWith(() => new SyncMap(7 as never), TypeError, /got a number 7/);
  });
});

describe("options that cannot work together are an options RangeError", () => {
  test("maxParticipants whose seats do not fit in maxBytes", () => {
    for (const [maxParticipants, maxBytes] of [[65536, 65536], [65536, 2 ** 22], [2048, 65536]]) {
      assert.throws(
        () => new SyncMap({ maxParticipants, maxBytes }),
        (e: unknown) =>
          e instanceof RangeError && e.name === "RangeError" &&
          /maxParticipants/.test(e.message) && /maxBytes/.test(e.message),
        `${maxParticipants} participants in ${maxBytes} bytes`,
      );
    }
    // What fits works.
    const map = new SyncMap({ maxParticipants: 65536, maxBytes: 2 ** 23 });
    map.store("k", "v");
    assert.equal(map.load("k"), "v");
  });

  test("a type that is wrong is a TypeError; a number out of range, a RangeError", () => {
    throwsWith(() => new GoMap({ hint: "8" as never }), TypeError, /hint must be a number/);
    throwsWith(() => new GoMap({ hint: 1.5 }), RangeError, /hint/);
    throwsWith(
      () => new SyncMap({ maxParticipants: "4" as never }),
      TypeError,
      /maxParticipants must be a number, got a string "4"/,
    );
    throwsWith(() => new SyncMap({ maxParticipants: 0 }), RangeError, /maxParticipants/);
    throwsWith(() => new GoMap({ maxBytes: 65536n as never }), TypeError, /got a bigint 65536n/);
    throwsWith(() => new GoMap({ maxBytes: NaN }), RangeError, /maxBytes/);
  });

  test("null is no number: a TypeError for every numeric option, as the README's table says", () => {
    const cases: [string, () => unknown][] = [
      ["GoMap hint", () => new GoMap({ hint: null as never })],
      ["GoMap maxBytes", () => new GoMap({ maxBytes: null as never })],
      ["SyncMap hint", () => new SyncMap({ hint: null as never })],
      ["SyncMap maxBytes", () => new SyncMap({ maxBytes: null as never })],
      ["SyncMap maxParticipants", () => new SyncMap({ maxParticipants: null as never })],
    ];
    for (const [what, make] of cases) {
      throwsWith(make, TypeError, new RegExp(`${what.split(" ")[1]} must be a number, got null`));
    }
  });
});

describe("messages name what they got", () => {
  test("attach of a handle without a kind", () => {
    for (const [attach, name] of [[SyncMap.attach, "SyncMap"], [GoMap.attach, "GoMap"]] as const) {
      throwsWith(
        () => attach({} as never),
        TypeError,
        new RegExp(`${name}\\.attach: the handle is not a ${name} handle: its kind is undefined`),
      );
      throwsWith(() => attach(null as never), TypeError, /got null/);
      throwsWith(() => attach([] as never), TypeError, /kind is undefined/);
      throwsWith(() => attach(new Mutex().handle as never), TypeError, /for a Mutex, not a/);
      throwsWith(() => attach({ kind: "Map" } as never), TypeError, /kind is a string "Map"/);
    }
    throwsWith(
      () => GoMap.attach(new SyncMap().handle as never),
      TypeError,
      /the handle is for a SyncMap, not a GoMap/,
    );
    throwsWith(
      () => GoMap.attach({ kind: "GoMap", buffer: [] } as never),
      TypeError,
      /not a SharedArrayBuffer, got an Array/,
    );
  });

  test("share() and codecs: an Array, an object", () => {
    throwsWith(() => shareAll([] as never), TypeError, /got an Array/);
    throwsWith(() => shareAll({ x: {} } as never), TypeError, /got an object/);
    throwsWith(() => shareAll({ x: new Map() } as never), TypeError, /got a Map/);
    throwsWith(() => codecs.string.encode(5 as never), TypeError, /got a number 5/);
    throwsWith(() => codecs.bytes.encode([1] as never), TypeError, /got an Array/);
    throwsWith(
      () => new GoMap({ values: codecs.int32 }).set(1, 1n as never),
      TypeError,
      /got a bigint 1n/,
    );
    throwsWith(() => new GoMap().set({} as never, 1), TypeError, /cannot use an object as a key/);
    throwsWith(() => new GoMap().set([] as never, 1), TypeError, /cannot use an Array as a key/);
  });

  test("forEach and range with a callback that is not a function", () => {
    for (const map of [new GoMap().set("a", 1), new SyncMap().set("a", 1)]) {
      throwsWith(
        () => map.forEach(null as never),
        TypeError,
        /forEach: the callback must be a function, got null/,
      );
      throwsWith(() => map.forEach({} as never), TypeError, /got an object/);
    }
    throwsWith(
      () => new SyncMap().range(undefined as never),
      TypeError,
      /range: f must be a function/,
    );
  });
});

test("share, spawn: a structure passed bare, not in an object of names, is a TypeError", () => {
  // spawn(url, cache) for spawn(url, { cache }): a structure has no enumerable fields, so it
  // shared nothing, and the worker's receive() got {} (helper-166).
  for (const bare of [new SyncMap(), new GoMap(), new Mutex()]) {
    throwsWith(() => shareAll(bare as never), TypeError, /as \{ map \} \(not map\)/);
  }
  throwsWith(() => shareAll(new Map() as never), TypeError, /plain object/, /a Map/);
  // A plain object, or one with no prototype, is what share takes.
  shareAll({}).release();
  shareAll(Object.create(null)).release();
});

test("MapFullError: at the largest maxBytes, no advice to pass a larger one", () => {
  const at = new MapFullError(64, 2 ** 30);
  assert.doesNotMatch(at.message, /larger maxBytes/);
  assert.match(at.message, /the most a map may have/);
  assert.match(new MapFullError(64, 65536).message, /pass a larger maxBytes/);
  // The largest maxBytes is what a map accepts, and one past it is refused.
  new SyncMap({ maxBytes: 2 ** 30 }).close();
  assert.throws(() => new SyncMap({ maxBytes: 2 ** 30 + 1 }), RangeError);
});

test("attach: a structure posted whole (an empty object) is a TypeError that says to post its handle", () => {
  // postMessage(map) clones a structure's private state away: the worker gets {} (helper-166).
  const posted = structuredClone({ ...new SyncMap() });
  assert.deepEqual(posted, {});
  throwsWith(() => SyncMap.attach(posted as never), TypeError, /post its \.handle/);
  throwsWith(() => GoMap.attach({} as never), TypeError, /post its \.handle/);
  throwsWith(() => Mutex.attach({} as never), TypeError, /post its \.handle/);
  // A handle of the wrong kind, or with fields, gets no such hint.
  assert.throws(
    () => SyncMap.attach({ kind: "x" } as never),
    (e: Error) => !/post its/.test(e.message),
  );
});

test(
  "the Deno and Bun adapters' spawn() on a runtime without a web Worker points to the Node one",
  {
    skip: typeof (globalThis as { Worker?: unknown }).Worker === "function"
      ? "this runtime has a web Worker (Node.js has none)"
      : undefined,
  },
  async () => {
    for (const adapter of ["deno", "bun"]) {
      const { spawn } = await import(`../src/workers/${adapter}.ts`);
      const map = new SyncMap();
      throwsWith(() => spawn(new URL("./x.ts", import.meta.url), { map }), TypeError, /\/node\)/);
      assert.equal(map.stats().participants, 1, "no seat reserved");
      map.close();
    }
  },
);
