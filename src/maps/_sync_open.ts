/**
 * Internal. How a SyncMap object comes to be: made new (the constructor's path, which lays the
 * map out in a new arena and claims the first participant seat), attached from a handle
 * (SyncMap.attach's path, which claims a seat or adopts one the worker adapters reserved), and
 * the reservation of a seat for a worker about to attach.
 *
 * @module
 */

import { allocate, footprint } from "../_engine/allocator.ts";
import * as allocator from "../_engine/allocator.ts";
import { type Arena, checkMaxBytes, roundUp } from "../_engine/arena.ts";
import * as arena_module from "../_engine/arena.ts";
import { census } from "../_engine/census.ts";
import { nap } from "../_engine/futex.ts";
import { journalWords } from "../_engine/journal.ts";
import {
  adoptSeat,
  claimSeat,
  type Registry,
  releaseOwnSeat,
  releaseSeat,
  reserveSeat,
  seatsComingFree,
  seatsOfEnded,
  type Ticket,
} from "../_engine/registry.ts";
import * as registry_module from "../_engine/registry.ts";
import type { SlotCodec } from "../_engine/slots.ts";
import { bucketBytesForHint, bucketsForHint, Table } from "../_engine/table.ts";
import * as table from "../_engine/table.ts";
import { WriterTx } from "../_engine/tx.ts";
import { attachCodec, slotCodecOf } from "../codec.ts";
import { checkHandle, checkNumber } from "../_describe.ts";
import { checkHint, checkOptions } from "../_options.ts";
import { attachArena, bootJournal, newArena, OpenedMap } from "./_open.ts";
import type { SyncAccess } from "./_sync_access.ts";
import { attachedAgain, reapThroughListed } from "./_sync_attached.ts";
import { registryOf } from "./_sync_layout.ts";
import * as sync_layout from "./_sync_layout.ts";
import { seatReleased } from "./_sync_recovery.ts";
import type { SyncMapAttachOptions, SyncMapHandle, SyncMapOptions } from "./sync_map.ts";

// Imported constants bound locally, for V8 to fold them (docs/design.md, "Imported constants").
const { HEADROOM_BYTES } = allocator;
const { HEADER_BYTES, KIND_SYNC_MAP } = arena_module;
const { SEAT_WORDS } = registry_module;
const { MAX_B } = table;
const {
  R_DIRTY,
  R_EPOCH,
  R_JOURNAL,
  R_NSEATS,
  R_SEATS,
  R_SEATS_BLOCK,
  SYNC_JOURNAL_ENTRIES,
  TABLE_HEADER_BYTES,
} = sync_layout;

const DEFAULT_PARTICIPANTS = 256;
const MAX_PARTICIPANTS = 65536;

const OPTIONS = ["hint", "keys", "values", "maxBytes", "maxParticipants"] as const;
const ATTACH_OPTIONS = ["keys", "values"] as const;

/**
 * A map made or attached: its arena, this object's participant ticket and its codecs. Only
 * {@linkcode createSyncMap} and {@linkcode attachSyncMap} make one; the SyncMap constructor
 * takes one where it would take options, which is how SyncMap.attach reaches it.
 */
export class OpenedSyncMap<K, V> extends OpenedMap<K, V> {
  readonly ticket: Ticket;
  constructor(arena: Arena, ticket: Ticket, keys: SlotCodec<K>, values: SlotCodec<V>) {
    super(arena, keys, values);
    this.ticket = ticket;
  }
}

/**
 * The create path: checks `options`, lays a new, empty map out in a new arena, and claims its
 * first participant seat.
 */
export function createSyncMap<K, V>(options: SyncMapOptions<K, V>): OpenedSyncMap<K, V> {
  options = checkOptions(options, OPTIONS, "SyncMap options");
  const hint = checkHint(options.hint);
  const seats = options.maxParticipants === undefined
    ? DEFAULT_PARTICIPANTS
    : options.maxParticipants;
  checkNumber(seats, "maxParticipants");
  if (!Number.isInteger(seats) || seats < 1 || seats > MAX_PARTICIPANTS) {
    throw new RangeError(
      `maxParticipants must be an integer in [1, ${MAX_PARTICIPANTS}], got ${seats}`,
    );
  }
  const maxBytes = checkMaxBytes(options.maxBytes);
  const keys = slotCodecOf(options.keys, "keys");
  const values = slotCodecOf(options.values, "values");
  // Multiply, not shift: a shift wraps at 32 bits, so a huge hint (1e8, 2^31) made a table
  // whose B its 16-byte array lacked.
  const initialBytes = bucketBytesForHint(hint);
  if (bucketsForHint(hint) > MAX_B || initialBytes > maxBytes / 4) {
    throw new RangeError(`hint ${hint} needs more memory than maxBytes ${maxBytes} allows`);
  }
  // What the map takes before its first key: the header, the participant seats, the
  // mutex's journal and the hint's table. Too much for maxBytes is a bad pair of options,
  // not a full map.
  const seatBytes = seats * SEAT_WORDS * 4 + 64;
  const journalBytes = journalWords(SYNC_JOURNAL_ENTRIES) * 4;
  const fixedBytes = HEADER_BYTES + footprint(seatBytes) + footprint(journalBytes) +
    (hint > 0 ? footprint(TABLE_HEADER_BYTES) + footprint(initialBytes) : 0) +
    HEADROOM_BYTES;
  if (fixedBytes > maxBytes) {
    throw new RangeError(
      `maxParticipants ${seats}${hint > 0 ? ` and hint ${hint} need` : " needs"} ` +
        `about ${fixedBytes} bytes to hold a few keys, more than maxBytes ${maxBytes}`,
    );
  }
  const bytes = initialBytes + seatBytes + journalBytes;
  const { arena, boot } = newArena(KIND_SYNC_MAP, maxBytes, bytes, { keys, values }, true);
  // One 64-byte line a seat, the array line-aligned: participants write their own seats.
  const block = allocate(arena, seatBytes, true, boot);
  arena.i32[R_SEATS_BLOCK] = block;
  arena.i32[R_SEATS] = roundUp(block, 64) >> 2;
  arena.i32[R_NSEATS] = seats;
  arena.i32[R_EPOCH] = 1;
  bootJournal(arena, boot, journalBytes, SYNC_JOURNAL_ENTRIES, R_JOURNAL);
  if (hint > 0) {
    // Go's zero Map starts empty; with a hint, start with a dirty table of that size.
    const tx = new WriterTx(arena, boot);
    const dirty = tx.alloc(TABLE_HEADER_BYTES, true);
    Table.create(tx, arena, dirty, hint);
    arena.i32[R_DIRTY] = dirty;
  }
  boot.commit();
  census();
  return new OpenedSyncMap(arena, claimSeat(registryOf(arena)), keys, values);
}

/**
 * The attach path: checks `handle` and `options`, then gives back this thread's live object for
 * the same map and codecs, counted attached once more (maps/_sync_attached.ts), or takes a
 * participant seat (one the worker adapters reserved for this worker, or a free one) and has
 * `build` make the object; if it throws, the seat is given back. `again` false always takes a
 * seat (tests play several participants in one thread so).
 */
export function attachSyncMap<K, V, M>(
  handle: SyncMapHandle,
  options: SyncMapAttachOptions<K, V>,
  build: (opened: OpenedSyncMap<K, V>) => M,
  again = true,
): M {
  checkHandle(handle, "SyncMap");
  // Checked before a participant seat is taken.
  options = checkOptions(options, ATTACH_OPTIONS, "SyncMap.attach options");
  const arena = attachArena(handle, KIND_SYNC_MAP, true, "SyncMap.attach");
  const registry = registryOf(arena);
  const keys = attachCodec(options.keys, arena.keyCodecName, "keys");
  const values = attachCodec(options.values, arena.valueCodecName, "values");
  const reserved = handle.participant === undefined
    ? undefined
    : { index: handle.participant, generation: handle.generation ?? -1 };
  const found = again ? attachedAgain(arena, keys, values, reserved) : undefined;
  if (found !== undefined) return found as M;
  let ticket: Ticket;
  if (reserved !== undefined) {
    // A seat the worker adapters reserved for this worker: it becomes in use exactly once.
    try {
      ticket = adoptSeat(registry, reserved.index, reserved.generation);
    } catch (error) {
      throw new TypeError(`SyncMap.attach: ${(error as Error).message}`);
    }
  } else {
    ticket = takeSeat(registry, () => claimSeat(registry), () => reapThroughListed(arena));
  }
  try {
    return build(new OpenedSyncMap(arena, ticket, keys, values));
  } catch (error) {
    // This thread's own seat: a release cut short (a stack overflow here, in a worker) is
    // finished as the task ends.
    releaseOwnSeat(registry, ticket.index, ticket.word >>> 2);
    throw error;
  }
}

/**
 * How long a claim or reservation that found every seat taken tries again while some seat is
 * held by a thread recorded ending or gone (see {@linkcode takeSeat}).
 */
export const SEAT_WAIT_MS = 2000;

/**
 * `take()`, a claim or a reservation of a participant seat of `registry`, which throws a
 * RangeError when every seat is taken. Then `reap()` has this thread's objects of the map give
 * back the seats of gone threads (their next calls would), and the seat is taken again. While
 * some seat is still held by a thread recorded ending or gone, this is tried again for up to
 * {@linkcode SEAT_WAIT_MS} (registry.ts seatsComingFree): a worker a pool has just terminated
 * holds its seat until its end is
 * learnt, by its parent's adapter, whose thread's objects then give it back at once (census.ts
 * `onGone`), and until then a new worker's attach would fail although the dead one's seat is
 * about to come free. A seat held by a live thread is never waited for: the RangeError is thrown
 * at once.
 */
function takeSeat<T>(registry: Registry, take: () => T, reap: () => void): T {
  try {
    return take();
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
  }
  const deadline = performance.now() + SEAT_WAIT_MS;
  // Latched: the seat seen coming free may be borrowed by its reaper's sweep by the next look.
  let coming = false;
  for (;;) {
    reap();
    try {
      return take();
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      coming ||= seatsComingFree(registry);
      if (!coming) throw error;
      if (performance.now() >= deadline) throw endedSeatsError(registry, error);
    }
    nap();
  }
}

/**
 * The RangeError of a seat claim that waited in vain for seats held by threads that ended: says
 * how many, and how their seats come back. Such a seat is given back by a live object of the
 * map, in a thread that learns of the end: at once where the thread was started or tracked
 * through an adapter (`track()`), or declared with `threadGone()`; otherwise at that object's
 * next call, which an idle parent does not make.
 */
function endedSeatsError(registry: Registry, error: RangeError): RangeError {
  const ended = seatsOfEnded(registry);
  if (ended === 0) return error;
  return new RangeError(
    `${error.message}; ${ended} of them held by threads that ended, whose ends no live object ` +
      "of the map has acted on: start or track() workers through a worker adapter, or declare " +
      "an ended thread with threadGone(), and its seat comes back at once (else at the next call " +
      "of a live object of the map in another thread)",
  );
}

/**
 * Reserves a participant seat of the map `s` reaches for a worker about to attach; see
 * src/workers/_share.ts. The release never throws: the adapters call it from a worker's end
 * event or a timer, where no caller could catch it, so what it throws (a RangeError for
 * corrupt memory) is thrown instead by the next call of `s`'s object on this thread
 * (Participant.defer).
 */
export function reserveShare<K, V>(
  s: SyncAccess<K, V>,
): { handle: SyncMapHandle; release: (graceMs?: number) => void } {
  // A closed object shares nothing, as it does nothing else: a release's deferred error would
  // land on it and be lost.
  s.participant.checkOpen();
  const a = s.arena;
  const registry = registryOf(a);
  const { index, generation } = takeSeat(registry, () => reserveSeat(registry), () => {
    s.participant.reapNow();
    reapThroughListed(a);
  });
  return {
    handle: {
      kind: "SyncMap",
      buffer: a.buffer,
      census: census(),
      participant: index,
      generation,
    },
    // The mutex rolled back, and a sweep marked due if the owner stopped inside a call, as the
    // seat is released (seatReleased).
    release: (graceMs = 0) => {
      const deferError = (error: unknown): void => s.participant.defer(error);
      try {
        releaseSeat(
          registry,
          index,
          generation,
          graceMs,
          (deadOwner, mayHold) => seatReleased(s.core, deadOwner, mayHold, index),
          deferError,
        );
      } catch (error) {
        deferError(error);
      }
    },
  };
}
