// Copyright the shmap authors. MIT license.
// The conformance suite (fixtures/conformance.ts) on SyncMap, behind promises: the reference
// the Redis backends are held to. Its races run in two workers sharing the map's memory.
import { conformance } from "./fixtures/conformance.ts";
import { syncMapBackend } from "./fixtures/sync_map_backend.ts";

conformance(syncMapBackend, { modelRuns: 200, raceKeys: 5000, counterIncrements: 5000 });
