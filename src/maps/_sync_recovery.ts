/**
 * Internal. What a SyncMap does when a thread that used it is gone: reclaims its participant
 * slot, retire list and cache, and (when the world can be stopped) sweeps what it left half
 * made or half freed.
 *
 * @module
 */

import { Participant } from "../_engine/reclaim.ts";
import type { SyncCore } from "./_sync_core.ts";

/** Releases the slots of gone threads. */
export function reapDead(core: SyncCore): void {
  for (const { index, generation } of Participant.deadSlots(core.registry)) {
    Participant.releaseSlot(core.registry, index, generation);
  }
}
