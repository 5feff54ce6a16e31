// Copyright the shmap authors. MIT license.
/**
 * `deno bench`: SyncMap, a GoMap under an RWMutex (Go's RWMutexMap) and a native Map in the
 * shapes of Go's sync/map_bench_test.go, one thread: the cases of bench/cases.ts's "syncmap"
 * section, SyncMap the baseline. Go's own figures: `deno task bench:go`.
 *
 * @module
 */

import { header, registerSection } from "./native.ts";

header("sync_map_bench.ts");
registerSection("syncmap");
