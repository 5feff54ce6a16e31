// Copyright the shmap authors. MIT license.
/**
 * `deno bench`: GoMap against a native Map in one thread (get, set, churn, iterate; number and
 * 16-character string keys), the cases of bench/cases.ts's "gomap" section, Map the baseline.
 *
 * @module
 */

import { header, registerSection } from "./native.ts";

header("go_map_bench.ts");
Deno.bench({ name: "empty op", group: "harness", fn: () => {} });
registerSection("gomap");
