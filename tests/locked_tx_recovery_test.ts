// Engine unit test of a SyncMap locked step's transaction (tx.ts LockedTx) whose holder dies
// inside one of the allocator steps that write its journal: the allocation that records a
// FREE entry (allocatedVia), and the free that truncates the journal as a recovery or commit
// acts on an entry. The dead holder leaves both locks poisoned; its journal must be recovered
// exactly, whichever write the death came after: every block the step allocated given back
// once, none freed twice.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Arena, H_ALLOC_LOCK } from "../src/_engine/arena.ts";
import {
  allocate,
  allocatorJournal,
  bytesUsed,
  lockedAllocate,
  lockedRelease,
  release,
  verifyHeap,
} from "../src/_engine/allocator.ts";
import { GONE, record } from "../src/_engine/census.ts";
import { OWNER_SHIFT, POISONED } from "../src/_engine/futex.ts";
import { Journal, journalWords } from "../src/_engine/journal.ts";
import { LockedTx } from "../src/_engine/tx.ts";
import { diesAt } from "./fixtures/journal_death.ts";

/** Thread ids for the dead holders, recorded gone (never real threads of this process). */
let nextDead = 2 ** 27;
function deadOwner(): number {
  const id = nextDead++;
  record(id, GONE);
  return id + 1;
}

/** The heap as the allocator sees it: bytes in use and every block handed out. */
function snapshot(arena: Arena): string {
  const report = verifyHeap(arena);
  return JSON.stringify({
    used: bytesUsed(arena),
    blocks: [...report.blocks].sort((a, b) => a[0] - b[0]),
  });
}

function setup(): { arena: Arena; tx: LockedTx } {
  const arena = Arena.create(2, 1024 * 1024, 0, "auto", "auto", true);
  const at = lockedAllocate(arena, journalWords(64) * 4, false);
  Journal.format(arena.i32, at >> 2, 64);
  return { arena, tx: new LockedTx(arena, new Journal(arena, at >> 2, 64)) };
}

/**
 * Runs `step` as a thread that dies after `killAt` writes to the allocator's journal (or not
 * at all, when it has fewer): a death leaves the allocator's lock held by a gone owner, poisoned,
 * and its journal as it was, for the lock's next holder to roll back.
 */
function dieInAllocatorStep(arena: Arena, killAt: number, step: (j: Journal) => void): boolean {
  const j = allocatorJournal(arena);
  const owner = deadOwner();
  Atomics.store(arena.i32, H_ALLOC_LOCK, (owner << OWNER_SHIFT) | POISONED);
  j.begin();
  // Not dying there, it ran to its end, and died before its commit.
  return diesAt(j, killAt, () => step(j));
}

test("LockedTx: a holder dying inside the allocation that records a FREE entry is recovered exactly", () => {
  for (const size of [16, 48, 5000]) {
    for (let killAt = 0;; killAt++) {
      const { arena, tx } = setup();
      const kept = lockedAllocate(arena, 16, false); // the heap is not empty
      const earlier = tx.journal; // a step that allocated once already
      earlier.begin();
      tx.alloc(32, false);
      const before = snapshot(arena);
      // The rest of the step, as LockedTx.alloc does it, dying inside.
      const killed = dieInAllocatorStep(arena, killAt, (j) => {
        const offset = allocate(arena, size, false, j);
        tx.journal.allocatedVia(offset, size, j);
      });
      // The mutex's next holder recovers the step: both allocations are given back, once.
      tx.recover();
      const { arena: fresh } = setup();
      lockedAllocate(fresh, 16, false);
      assert.equal(
        snapshot(arena),
        snapshot(fresh),
        `size ${size}, death after write ${killAt}: the heap is as before the step`,
      );
      assert.equal(tx.journal.length, 0);
      void before;
      void kept;
      if (!killed) break;
    }
  }
});

test("LockedTx: a recoverer dying inside the free of a FREE entry is recovered exactly", () => {
  for (let killAt = 0;; killAt++) {
    const { arena, tx } = setup();
    const base = snapshot(arena);
    tx.journal.begin();
    const a = tx.alloc(16, false);
    const b = tx.alloc(5000, false);
    // The holder dies; a recoverer frees the newest entry's block and dies inside that free.
    const killed = dieInAllocatorStep(arena, killAt, (j) => {
      release(arena, b, 5000, j);
      j.set(tx.journal.at, 1); // the truncation, as lockedRelease's `truncate` does it
    });
    tx.recover();
    assert.equal(snapshot(arena), base, `death after write ${killAt}: both blocks given back once`);
    assert.equal(tx.journal.length, 0);
    void a;
    if (!killed) break;
  }
});

// The dying step grew the buffer and journaled a write at the old end of the buffer (a new
// span's or chunk's first word) before its journaled write of the heap's top. The lock's next
// holder is another worker whose views end at the old length, and the top it reads is the old
// one: its recovery must cover the whole buffer before the rollback reads the journal.
test("LockedTx: a holder dying in an allocation that grew the buffer past another's views", () => {
  for (const size of [16, 5000]) {
    for (let killAt = 0; killAt < 16; killAt++) {
      const grower = Arena.create(2, 1024 * 1024, 0, "auto", "auto", true);
      // The top just below 64 KiB, the buffer's first length.
      lockedAllocate(grower, 65536 - 5440 - (size === 16 ? 2000 : 16), false);
      const other = Arena.attach(grower.buffer, 2, true, "test");
      const before = snapshot(other);
      const killed = dieInAllocatorStep(
        grower,
        killAt,
        (j) => void allocate(grower, size, false, j),
      );
      if (!killed) continue;
      const at = lockedAllocate(other, 16, false);
      assert.ok(at > 0, `killAt ${killAt}: allocated ${at}`);
      lockedRelease(other, at, 16);
      assert.equal(snapshot(other), before, `size ${size}, killAt ${killAt}: rolled back exactly`);
    }
  }
});
