// Copyright the shmap authors. MIT license.
/**
 * The one-thread benchmark cases, defined once for both harnesses: the mitata driver
 * (bench/main.ts, `deno task bench` and `bun bench/main.ts`) and the Deno-native bench files
 * (bench/*_bench.ts, `deno bench`). tests/bench_cases_test.ts checks that each case does what its
 * name says.
 *
 * A case is a section, a group (the cases one table row or chart compares), a name (the
 * structure) and a setup, which builds the structure and returns the op. One call of the op is
 * one operation as Go's benchmarks count them (a Range over 1,024 keys is one), so a harness's
 * time per iteration is the time per operation.
 *
 * Sections:
 * - `gomap`: GoMap against a native Map, 1,024 keys, numbers or 16-character strings, with the
 *   default codecs (and one GoMap with float64 codecs).
 * - `syncmap`: the shapes of Go's sync/map_bench_test.go (as of Go 1.23) on a SyncMap, on a
 *   GoMap under an RWMutex (Go's RWMutexMap from map_reference_test.go, the map those benchmarks
 *   compare sync.Map with) and on a native Map; a store/delete churn of a fixed key set; and
 *   16-character string-key variants. `go test -bench` with GOMAXPROCS=1 runs Go's in one
 *   goroutine, as here (bench/go_baseline.sh).
 * - `workers`: one thread of the two cases sync.Map is for (bench/workers.ts runs them across
 *   workers): read-mostly (99% loads of 1,024 keys, 1% stores) and disjoint writers (load and
 *   store one's own keys, half and half), with the structures and codecs workers.ts shares.
 *
 * Not here yet: a `compute`-style read-modify-write shape (the library has no such method).
 *
 * @module
 */

import { goShapeCases } from "./cases_go_shapes.ts";
import { goMapCases } from "./cases_gomap.ts";
import { workerCases } from "./cases_workers.ts";
import type { BenchCase } from "./fixtures/case_kit.ts";

export type { BenchCase, CaseRun, Section } from "./fixtures/case_kit.ts";
export { fresh } from "./fixtures/case_kit.ts";
export { loadStoreOf, workerCaseOp, workerGroup } from "./cases_workers.ts";

/** Every case, by section, in the order the harnesses run them. */
export const CASES: readonly BenchCase[] = [...goMapCases(), ...goShapeCases(), ...workerCases()];
