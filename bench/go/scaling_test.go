// Copyright the shmap authors. MIT license.

package shmapbench

import (
	"sync"
	"sync/atomic"
	"testing"
)

// The read-mostly shape of bench/workers.ts, for Go: each goroutine draws a pseudo-random key
// of 1,024 ints (xorshift32, a seed of its own) and loads it, except that one call in 100
// stores a new value for it instead. Run with -cpu 1,2 (b.RunParallel runs GOMAXPROCS
// goroutines, and ns/op is wall time per op of all of them together), so that ns/op at 1 over
// ns/op at 2 is the 1 -> 2 scaling. "private map" gives each goroutine a map of its own, as
// bench/workers.ts's "Map copy per worker" does: the machine's ceiling for this loop, with
// nothing shared. The shared map's scaling over the ceiling's is what issue 11 asks of ours.
//
//	go test -run NONE -bench ReadMostlyScaling -cpu 1,2 -count 3 ./bench/go/

const (
	scalingKeys = 1024
	writeEvery  = 100
)

// seeds hands each goroutine of a run a seed of its own.
var seeds atomic.Uint32

func nextSeed() uint32 { return seeds.Add(0x9e3779b9) | 1 }

// The two loops are written out rather than shared through closures: a call per op would be a
// large share of the private map's 12 to 24 ns, and would flatten the ratio being measured.
func BenchmarkReadMostlyScaling(b *testing.B) {
	b.Run("*sync.Map", func(b *testing.B) {
		var m sync.Map
		for k := 0; k < scalingKeys; k++ {
			m.Store(k, k)
		}
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			x := nextSeed()
			untilWrite := writeEvery
			stamp := 1
			sink := 0
			for pb.Next() {
				x ^= x << 13
				x ^= x >> 17
				x ^= x << 5
				i := int(x & (scalingKeys - 1))
				if untilWrite--; untilWrite == 0 {
					untilWrite = writeEvery
					m.Store(i, i+stamp<<10)
					stamp = (stamp + 1) & 0xfffff
				} else if v, ok := m.Load(i); ok {
					sink += v.(int)
				}
			}
			_ = sink
		})
	})
	b.Run("private map", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			m := make(map[int]int, scalingKeys)
			for k := 0; k < scalingKeys; k++ {
				m[k] = k
			}
			x := nextSeed()
			untilWrite := writeEvery
			stamp := 1
			sink := 0
			for pb.Next() {
				x ^= x << 13
				x ^= x >> 17
				x ^= x << 5
				i := int(x & (scalingKeys - 1))
				if untilWrite--; untilWrite == 0 {
					untilWrite = writeEvery
					m[i] = i + stamp<<10
					stamp = (stamp + 1) & 0xfffff
				} else if v, ok := m[i]; ok {
					sink += v
				}
			}
			_ = sink
		})
	})
}
