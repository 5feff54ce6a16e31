#!/bin/sh
# Copyright the shmap authors. MIT license.
#
# Go's sync.Map beside ours, measured in one sitting: runs Go's own benchmarks of sync.Map and
# of its reference RWMutexMap (go test sync -bench, GOMAXPROCS=1: one goroutine, as our one
# thread), then the same shapes on Deno and on Bun (bench/main.ts --only=syncmap --go=FILE),
# which print Go's ns/op beside ours and the ratios.
#
# Usage: sh bench/go_baseline.sh [benchtime [count]]      (or: deno task bench:go)
#   benchtime: go test's -benchtime per benchmark (default 1s); count: go test's -count (default
#   1; main.ts takes each benchmark's lowest figure). Extra options for bench/main.ts go in
#   BENCH_ARGS, e.g. BENCH_ARGS=--quick sh bench/go_baseline.sh 200ms, or for a noisy machine
#   BENCH_ARGS=--rounds=3 sh bench/go_baseline.sh 1s 3
#
# Needs Go (Debian: apt-get install golang-go; 1.19 has 12 of the shapes, 1.20 and later all),
# Deno (on PATH, or the pinned one in tools/) and `deno install` done (Bun resolves mitata
# through node_modules/).
set -eu
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1; then
  echo "go_baseline.sh: Go is not installed (Debian: apt-get install golang-go)" >&2
  exit 1
fi

# Deno on PATH, else the pinned one from tools/ (npm install --prefix tools).
deno="$(command -v deno || true)"
[ -n "$deno" ] || deno="$PWD/tools/node_modules/.bin/deno"
if [ ! -x "$deno" ]; then
  echo "go_baseline.sh: no deno on PATH nor in tools/node_modules/.bin" >&2
  exit 1
fi

out="$(mktemp)"
trap 'rm -f "$out"' EXIT
benchtime="${1:-1s}"
count="${2:-1}"

echo "== Go: go test sync -run NONE -bench ... -benchtime $benchtime -count $count (GOMAXPROCS=1)"
go version | tee "$out"
GOMAXPROCS=1 go test sync -run NONE -benchtime "$benchtime" -count "$count" \
  -bench '/(\*sync\.Map|\*sync_test\.RWMutexMap)$' | tee -a "$out"
# Our shapes that Go's benchmarks lack (StoreDeleteChurn), written for Go in bench/go.
(cd bench/go && GOMAXPROCS=1 go test -run NONE -benchtime "$benchtime" -count "$count" -bench StoreDeleteChurn) |
  tee -a "$out"

echo
echo "== Deno"
# shellcheck disable=SC2086 # BENCH_ARGS is a list of options
"$deno" run -A --v8-flags=--expose-gc bench/main.ts --only=syncmap --go="$out" ${BENCH_ARGS:-}

echo
echo "== Bun"
# shellcheck disable=SC2086
"$deno" run -A tools/bun.ts bench/main.ts --only=syncmap --go="$out" ${BENCH_ARGS:-}
