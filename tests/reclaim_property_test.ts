// Copyright the shmap authors. MIT license.
// Reclamation against a model (src/_engine/reclaim.ts): three participants of one map, driven by
// hand in one thread, retire, enter, make quiescent points, collect with budgets from one block
// to all, go offline and free what they can, in random orders. Their frees are recorded, not
// made (the tags name no block). The model is the rule itself: a block retired while another
// participant was online may be freed only once that participant has announced again or gone
// offline since; each block is freed once; and once every other participant is offline, a
// collect that frees all it can leaves nothing retired. Budgeted collects stop part-way and go
// on from there (Participant's #resumeAt), and a backlog is drained once others pass it
// (#keptNewest): the orders here interleave those with retirements and announcements.

import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { SyncMap } from "../mod.ts";
import { Arena, KIND_SYNC_MAP } from "../src/_engine/arena.ts";
import { Participant, QUIESCE_EVERY } from "../src/_engine/reclaim.ts";
import { claimSeat, seatAnnouncement } from "../src/_engine/registry.ts";
import { registryOf } from "../src/maps/_sync_layout.ts";

const N = 3;

type Op =
  | { kind: "retire"; who: number; count: number }
  | { kind: "enter"; who: number; count: number }
  | { kind: "quiesce"; who: number }
  | { kind: "collect"; who: number; budget: number }
  | { kind: "idle"; who: number }
  | { kind: "reclaimNow"; who: number };

const who = fc.integer({ min: 0, max: N - 1 });
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("retire" as const),
      who,
      count: fc.integer({ min: 1, max: 300 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("enter" as const),
      who,
      count: fc.integer({ min: 1, max: 70 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("quiesce" as const), who }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("collect" as const),
      who,
      budget: fc.constantFrom(1, 2, 7, 64, 1000, Infinity),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("idle" as const), who }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("reclaimNow" as const), who }) },
);

/** What the model knows of one retired block. */
interface Retired {
  readonly by: number;
  /** The participants that were online as it was retired and have not announced since. */
  readonly holders: Set<number>;
}

test("reclamation frees a block only once every participant online at its retirement has moved on, and frees all in the end", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 60 }), async (ops) => {
      const map = new SyncMap<number, number>({ maxParticipants: 6 });
      // The map's own participant goes offline at the end of this task.
      await new Promise((resolve) => setTimeout(resolve, 0));
      const registry = registryOf(Arena.attach(map.handle.buffer, KIND_SYNC_MAP, true, "test"));
      const retired = new Map<number, Retired>();
      const freed = new Set<number>();
      let next = 0x10000;
      const ps: Participant[] = [];
      const seats: number[] = [];
      for (let i = 0; i < N; i++) {
        const ticket = claimSeat(registry);
        seats.push(ticket.index);
        ps.push(
          new Participant(registry, ticket, (tag) => {
            const r = retired.get(tag);
            assert.ok(r !== undefined, `freed ${tag}, never retired`);
            assert.equal(r.by, i, `participant ${i} freed ${tag}, retired by ${r.by}`);
            assert.ok(!freed.has(tag), `${tag} freed twice`);
            assert.deepEqual(
              [...r.holders],
              [],
              `${tag} freed while participants ${[...r.holders]} may still read it`,
            );
            freed.add(tag);
            return false;
          }),
        );
      }
      // Each participant's announcement as last seen: a change, or 0, means it has passed every
      // retirement made before.
      const seen = seats.map((index) => seatAnnouncement(registry, index));
      const look = (): void => {
        for (let j = 0; j < N; j++) {
          const now = seatAnnouncement(registry, seats[j]);
          if (now !== seen[j] || now === 0) {
            for (const r of retired.values()) r.holders.delete(j);
          }
          seen[j] = now;
        }
      };
      const enter = (i: number): void => {
        ps[i].enter();
        look();
      };
      try {
        for (const o of ops) {
          const p = ps[o.who];
          switch (o.kind) {
            case "retire":
              for (let k = 0; k < o.count; k++) {
                enter(o.who); // room for the retirement, and now and then a quiescent point
                const holders = new Set<number>();
                for (let j = 0; j < N; j++) {
                  if (j !== o.who && seatAnnouncement(registry, seats[j]) !== 0) holders.add(j);
                }
                const tag = next;
                next += 16;
                retired.set(tag, { by: o.who, holders });
                p.retire(tag);
              }
              break;
            case "enter":
              for (let k = 0; k < o.count; k++) enter(o.who);
              break;
            case "quiesce":
              for (let k = 0; k < QUIESCE_EVERY; k++) enter(o.who);
              break;
            case "collect":
              enter(o.who); // online: a collect runs at a participant's quiescent point
              p.collect(o.budget);
              break;
            case "idle":
              p.idle();
              break;
            case "reclaimNow":
              enter(o.who);
              p.reclaimNow();
              break;
          }
          look();
        }
        // Everyone offline; each frees all it can: nothing may be left.
        for (const p of ps) p.idle();
        look();
        for (let i = 0; i < N; i++) {
          enter(i);
          ps[i].idle();
          look();
        }
        for (let i = 0; i < N; i++) {
          ps[i].enter();
          ps[i].reclaimNow();
          ps[i].idle();
          look();
        }
        for (const [tag, r] of retired) {
          assert.ok(freed.has(tag), `${tag}, retired by ${r.by}, never freed`);
        }
        for (const p of ps) assert.equal(p.pending, 0);
      } finally {
        for (const p of ps) p.close();
        map.close();
      }
    }),
    { numRuns: 150 },
  );
});
