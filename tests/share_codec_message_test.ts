// Copyright the shmap authors. MIT license.
// receive() of a map made with a user codec, without that codec: the TypeError shows the option
// that gives it, with the share's name filled in, where the attach's own error said "pass it as
// values", which names no option of receive(). Run on an Inbox fed the share message, as a
// worker's adapter feeds it; the same on every runtime.

import { test } from "node:test";
import assert from "node:assert/strict";
import type { Codec } from "../src/codec.ts";
import { GoMap } from "../src/maps/go_map.ts";
import { SyncMap } from "../src/maps/sync_map.ts";
import { Mutex } from "../src/sync/mutex.ts";
import { Inbox } from "../src/workers/_receive.ts";
import { type ReceiveOptions, type Shareables, shareAll } from "../src/workers/_share.ts";
import { deadline } from "./fixtures/harness.ts";
import { type Point, pointCodec } from "./fixtures/point_codec.ts";

const dateCodec: Codec<Date> = {
  name: "date",
  encode: (d) => new TextEncoder().encode(d.toISOString()),
  decode: (b) => new Date(new TextDecoder().decode(b)),
};

/** The error of a first receive() with `options`, from an inbox that holds `values`' share. */
async function receiveError(values: Shareables, options?: ReceiveOptions): Promise<TypeError> {
  const grant = shareAll(values);
  try {
    const inbox = new Inbox();
    inbox.offer(grant.message);
    const error = await deadline(inbox.receive(options), 3_000, "receive()").then(
      () => assert.fail("receive() attached a map without its user codec"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof TypeError, `a TypeError, got ${error}`);
    return error;
  } finally {
    grant.release();
  }
}

test("receive() without a SyncMap's values codec shows the option to pass", async () => {
  const cache = new SyncMap<string, Date>({ values: dateCodec });
  cache.store("a", new Date(0));
  const error = await receiveError({ cache, lock: new Mutex() });
  assert.equal(
    error.message,
    `receive: "cache" is a SyncMap whose values use the codec "date", which is not built in: ` +
      `give receive() the parent's codec, as ` +
      `receive({ codecs: { cache: { values: <the "date" codec> } } })`,
  );
  // The option it shows works.
  const grant = shareAll({ cache });
  try {
    const inbox = new Inbox();
    inbox.offer(grant.message);
    const got = await inbox.receive<{ cache: SyncMap<string, Date> }>({
      codecs: { cache: { values: dateCodec } },
    });
    assert.equal(got.cache.load("a")?.getTime(), 0);
    got.cache.close();
  } finally {
    grant.release();
  }
  cache.close();
});

test("receive() without a GoMap's keys codec, under a name that is no identifier", async () => {
  const points = new GoMap<Point, string>({ keys: pointCodec });
  const error = await receiveError({ "my points": points });
  assert.equal(
    error.message,
    `receive: "my points" is a GoMap whose keys use the codec "point", which is not built in: ` +
      `give receive() the parent's codec, as ` +
      `receive({ codecs: { "my points": { keys: <the "point" codec> } } })`,
  );
});

test("receive() without either user codec names both; with one, shows the whole option", async () => {
  const both = new GoMap<Point, Date>({ keys: pointCodec, values: dateCodec });
  assert.equal(
    (await receiveError({ both })).message,
    `receive: "both" is a GoMap whose keys use the codec "point" and whose values use the ` +
      `codec "date", which are not built in: give receive() the parent's codecs, as ` +
      `receive({ codecs: { both: { keys: <the "point" codec>, values: <the "date" codec> } } })`,
  );
  assert.equal(
    (await receiveError({ both }, { codecs: { both: { keys: pointCodec } } })).message,
    `receive: "both" is a GoMap whose values use the codec "date", which is not built in: ` +
      `give receive() the parent's codec, as ` +
      `receive({ codecs: { both: { keys: <the "point" codec>, values: <the "date" codec> } } })`,
  );
});

test("receive() with a user codec of another name keeps the attach's own error", async () => {
  const points = new GoMap<Point, string>({ keys: pointCodec });
  const error = await receiveError({ points }, {
    codecs: { points: { keys: { ...pointCodec, name: "pt" } } },
  });
  assert.equal(error.message, `this map's keys use the codec "point", not "pt"`);
});
