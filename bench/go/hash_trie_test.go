// Copyright the shmap authors. MIT license.

package shmapbench

// Go 1.19's sync.Map beside hashTrie (hash_trie.go, the design of Go 1.24's sync.Map) on the
// shapes of Go 1.19's sync/map_bench_test.go and on StoreDeleteChurn, each shape's body run on
// both maps in one sitting, for issue 11's question of what a hash trie buys on churn.
// Sub-benchmarks are named as Go's are ("LoadMostlyHits/*sync.Map",
// "LoadMostlyHits/*shmapbench.hashTrie"). StoreDeleteChurn's body runs here as
// ChurnStoreDelete: the name StoreDeleteChurn is churn_test.go's, and bench/go_baseline.sh's
// -bench StoreDeleteChurn would match any name containing it.
//
// From bench/go (the module's root):
//
//	go test -run NONE -bench 'LoadMostly|LoadOrStore|LoadAndDelete|^BenchmarkRange$|Adversarial|DeleteCollision|ChurnStoreDelete' -cpu 1 -count 5 -benchmem .
//	go test -run NONE -bench LiveBytes -benchtime 5x -cpu 1 .
//	go test -race -run TestHashTrie .
//
// Each benchmark also reports cpu-ns/op (see cpuNanos), the figure to trust when other work
// shares the cores.

import (
	"math/rand"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

// mapInterface is what the shapes call: the methods of Go 1.19's sync.Map that they use.
type mapInterface interface {
	Load(any) (any, bool)
	Store(key, value any)
	LoadOrStore(key, value any) (actual any, loaded bool)
	LoadAndDelete(key any) (value any, loaded bool)
	Delete(any)
	Range(func(key, value any) (shouldContinue bool))
}

var _ mapInterface = (*hashTrie)(nil)

// trieKinds are the maps each shape runs on, named as %T names them.
var trieKinds = []struct {
	name string
	new  func() mapInterface
}{
	{"*sync.Map", func() mapInterface { return &sync.Map{} }},
	{"*shmapbench.hashTrie", func() mapInterface { return newHashTrie() }},
}

// ---- Correctness ----

// collidingKey hashes to h, so tests can make keys that share any prefix of their hash, or all
// of it.
type collidingKey struct {
	h  uint64
	id int
}

func (k collidingKey) trieHash() uint64 { return k.h }

// checkSame compares the trie's contents (by Range and by Load) with want.
func checkSame(t *testing.T, m *hashTrie, want map[any]any) {
	t.Helper()
	got := map[any]any{}
	m.Range(func(k, v any) bool {
		if _, dup := got[k]; dup {
			t.Fatalf("Range visited %v twice", k)
		}
		got[k] = v
		return true
	})
	if len(got) != len(want) {
		t.Fatalf("Range saw %d keys, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("Range: %v = %v, want %v", k, got[k], v)
		}
		if lv, ok := m.Load(k); !ok || lv != v {
			t.Fatalf("Load(%v) = %v, %v; want %v", k, lv, ok, v)
		}
	}
	if _, entries, _ := m.depthStats(); entries != len(want) {
		t.Fatalf("depthStats: %d entries, want %d", entries, len(want))
	}
}

// randomOps applies n random operations over keys to m and to a plain map, checking every
// result, then deletes everything and checks that the trie is pruned back to its root.
func randomOps(t *testing.T, r *rand.Rand, keys []any, n int) {
	m := newHashTrie()
	want := map[any]any{}
	for op := 0; op < n; op++ {
		k := keys[r.Intn(len(keys))]
		v := op
		old, had := want[k]
		switch r.Intn(6) {
		case 0:
			got, ok := m.Load(k)
			if ok != had || got != old {
				t.Fatalf("op %d: Load(%v) = %v, %v; want %v, %v", op, k, got, ok, old, had)
			}
		case 1:
			m.Store(k, v)
			want[k] = v
		case 2:
			got, loaded := m.LoadOrStore(k, v)
			if loaded != had || (had && got != old) || (!had && got != v) {
				t.Fatalf("op %d: LoadOrStore(%v) = %v, %v; had %v, %v", op, k, got, loaded, old, had)
			}
			if !had {
				want[k] = v
			}
		case 3:
			got, loaded := m.LoadAndDelete(k)
			if loaded != had || got != old {
				t.Fatalf("op %d: LoadAndDelete(%v) = %v, %v; want %v, %v", op, k, got, loaded, old, had)
			}
			delete(want, k)
		case 4:
			m.Delete(k)
			delete(want, k)
		case 5:
			got, loaded := m.Swap(k, v)
			if loaded != had || got != old {
				t.Fatalf("op %d: Swap(%v) = %v, %v; want %v, %v", op, k, got, loaded, old, had)
			}
			want[k] = v
		}
		if op%997 == 0 {
			checkSame(t, m, want)
		}
	}
	checkSame(t, m, want)
	for k := range want {
		m.Delete(k)
	}
	checkSame(t, m, map[any]any{})
	if indirects, _, _ := m.depthStats(); indirects != 1 {
		t.Fatalf("%d indirect nodes left after deleting every key, want 1 (the root)", indirects)
	}
}

func TestHashTrieRandomOps(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	ints := make([]any, 300)
	for i := range ints {
		ints[i] = i * 7919
	}
	t.Run("ints", func(t *testing.T) { randomOps(t, r, ints, 200_000) })

	strs := make([]any, 300)
	for i := range strs {
		strs[i] = string(rune('a'+i%26)) + string(rune('A'+i/26))
	}
	t.Run("strings", func(t *testing.T) { randomOps(t, r, strs, 100_000) })

	// Colliding hashes: groups of 4 keys with one full hash (overflow chains), and hashes that
	// share their top 60, 32 or 4 bits (deep expansions, down to the last level).
	var coll []any
	for g := 0; g < 20; g++ {
		base := uint64(g) << 60
		for _, h := range []uint64{base, base | 1, base | 0x10, base | 1<<31, base | 1<<40} {
			for j := 0; j < 4; j++ {
				coll = append(coll, collidingKey{h, len(coll)})
			}
		}
	}
	t.Run("collisions", func(t *testing.T) { randomOps(t, r, coll, 200_000) })

	m := newHashTrie()
	m.Store(collidingKey{0, 0}, 0)
	m.Store(collidingKey{1, 1}, 1)
	if _, _, depth := m.depthStats(); depth != 16 {
		t.Fatalf("hashes 0 and 1 put entries at depth %d, want 16", depth)
	}
}

// TestHashTrieConcurrent runs random operations from several goroutines (each on keys of its
// own, so it can check what it reads, and all on a shared set, checked only for sanity) while
// others Range, and then compares the result with what each goroutine expects. Run with -race.
func TestHashTrieConcurrent(t *testing.T) {
	const (
		workers = 4
		perKeys = 200
		shared  = 64
	)
	ops := 20_000
	if testing.Short() {
		ops = 2_000
	}
	m := newHashTrie()
	wants := make([]map[any]any, workers)
	var stop atomic.Bool
	var wg, rangers sync.WaitGroup
	for w := 0; w < workers; w++ {
		wants[w] = map[any]any{}
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(w)))
			want := wants[w]
			for op := 0; op < ops; op++ {
				if r.Intn(4) == 0 { // a shared key: values are always >= 0
					k := -1 - r.Intn(shared)
					switch r.Intn(4) {
					case 0:
						if v, ok := m.Load(k); ok && v.(int) < 0 {
							t.Errorf("shared %d = %v", k, v)
						}
					case 1:
						m.Store(k, op)
					case 2:
						m.LoadOrStore(k, op)
					case 3:
						m.Delete(k)
					}
					continue
				}
				k := w*perKeys + r.Intn(perKeys)
				old, had := want[k]
				switch r.Intn(4) {
				case 0:
					if v, ok := m.Load(k); ok != had || v != old {
						t.Errorf("w%d: Load(%d) = %v, %v; want %v, %v", w, k, v, ok, old, had)
					}
				case 1:
					m.Store(k, op)
					want[k] = op
				case 2:
					if v, loaded := m.LoadOrStore(k, op); loaded != had || (had && v != old) {
						t.Errorf("w%d: LoadOrStore(%d) = %v, %v; want %v, %v", w, k, v, loaded, old, had)
					} else if !had {
						want[k] = op
					}
				case 3:
					if v, loaded := m.LoadAndDelete(k); loaded != had || v != old {
						t.Errorf("w%d: LoadAndDelete(%d) = %v, %v; want %v, %v", w, k, v, loaded, old, had)
					}
					delete(want, k)
				}
			}
		}(w)
	}
	for g := 0; g < 2; g++ {
		rangers.Add(1)
		go func() {
			defer rangers.Done()
			for !stop.Load() {
				seen := map[any]bool{}
				m.Range(func(k, v any) bool {
					if seen[k] {
						t.Errorf("Range visited %v twice", k)
					}
					seen[k] = true
					return true
				})
			}
		}()
	}
	wg.Wait()
	stop.Store(true)
	rangers.Wait()

	all := map[any]any{}
	for _, want := range wants {
		for k, v := range want {
			all[k] = v
		}
	}
	for k := -shared; k < 0; k++ {
		if v, ok := m.Load(k); ok {
			all[k] = v
		}
	}
	checkSame(t, m, all)
	for k := range all {
		m.Delete(k)
	}
	if indirects, entries, _ := m.depthStats(); indirects != 1 || entries != 0 {
		t.Fatalf("after deleting all: %d indirect nodes, %d entries; want 1, 0", indirects, entries)
	}
}

// ---- The shapes of Go 1.19's sync/map_bench_test.go, on both maps ----

type bench struct {
	setup func(*testing.B, mapInterface)
	perG  func(b *testing.B, pb *testing.PB, i int, m mapInterface)
}

// cpuNanos is the CPU time (user and system) the process has used: all its threads, so the
// runtime's GC workers too. On a machine whose cores are shared with other work, CPU time
// per op (the cpu-ns/op metric) moves less than wall time (ns/op) does: time spent waiting
// for a core is not in it. With GOMAXPROCS=1 on an idle machine the two are about equal;
// with GOMAXPROCS=N, cpu-ns/op sums the N goroutines' time (a cost, not a throughput).
func cpuNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

func reportCPU(b *testing.B, cpu0 int64) {
	b.ReportMetric(float64(cpuNanos()-cpu0)/float64(b.N), "cpu-ns/op")
}

// benchMap is Go's benchMap over trieKinds: a fresh map for each run of a sub-benchmark,
// setup untimed, then perG on GOMAXPROCS goroutines, the k-th starting at k*b.N.
func benchMap(b *testing.B, bench bench) {
	for _, kind := range trieKinds {
		b.Run(kind.name, func(b *testing.B) {
			m := kind.new()
			if bench.setup != nil {
				bench.setup(b, m)
			}

			b.ResetTimer()
			cpu0 := cpuNanos()

			var i int64
			b.RunParallel(func(pb *testing.PB) {
				id := int(atomic.AddInt64(&i, 1) - 1)
				bench.perG(b, pb, id*b.N, m)
			})
			reportCPU(b, cpu0)
		})
	}
}

func BenchmarkLoadMostlyHits(b *testing.B) {
	const hits, misses = 1023, 1

	benchMap(b, bench{
		setup: func(_ *testing.B, m mapInterface) {
			for i := 0; i < hits; i++ {
				m.LoadOrStore(i, i)
			}
			// Prime the map to get it into a steady state.
			for i := 0; i < hits*2; i++ {
				m.Load(i % hits)
			}
		},

		perG: func(b *testing.B, pb *testing.PB, i int, m mapInterface) {
			for ; pb.Next(); i++ {
				m.Load(i % (hits + misses))
			}
		},
	})
}

func BenchmarkLoadMostlyMisses(b *testing.B) {
	const hits, misses = 1, 1023

	benchMap(b, bench{
		setup: func(_ *testing.B, m mapInterface) {
			for i := 0; i < hits; i++ {
				m.LoadOrStore(i, i)
			}
			// Prime the map to get it into a steady state.
			for i := 0; i < hits*2; i++ {
				m.Load(i % hits)
			}
		},

		perG: func(b *testing.B, pb *testing.PB, i int, m mapInterface) {
			for ; pb.Next(); i++ {
				m.Load(i % (hits + misses))
			}
		},
	})
}

func BenchmarkLoadOrStoreBalanced(b *testing.B) {
	const hits, misses = 128, 128

	benchMap(b, bench{
		setup: func(b *testing.B, m mapInterface) {
			for i := 0; i < hits; i++ {
				m.LoadOrStore(i, i)
			}
			// Prime the map to get it into a steady state.
			for i := 0; i < hits*2; i++ {
				m.Load(i % hits)
			}
		},

		perG: func(b *testing.B, pb *testing.PB, i int, m mapInterface) {
			for ; pb.Next(); i++ {
				j := i % (hits + misses)
				if j < hits {
					if _, ok := m.LoadOrStore(j, i); !ok {
						b.Fatalf("unexpected miss for %v", j)
					}
				} else {
					if v, loaded := m.LoadOrStore(i, i); loaded {
						b.Fatalf("failed to store %v: existing value %v", i, v)
					}
				}
			}
		},
	})
}

func BenchmarkLoadOrStoreUnique(b *testing.B) {
	benchMap(b, bench{
		perG: func(b *testing.B, pb *testing.PB, i int, m mapInterface) {
			for ; pb.Next(); i++ {
				m.LoadOrStore(i, i)
			}
		},
	})
}

func BenchmarkLoadOrStoreCollision(b *testing.B) {
	benchMap(b, bench{
		setup: func(_ *testing.B, m mapInterface) {
			m.LoadOrStore(0, 0)
		},

		perG: func(b *testing.B, pb *testing.PB, i int, m mapInterface) {
			for ; pb.Next(); i++ {
				m.LoadOrStore(0, 0)
			}
		},
	})
}

func BenchmarkLoadAndDeleteBalanced(b *testing.B) {
	const hits, misses = 128, 128

	benchMap(b, bench{
		setup: func(b *testing.B, m mapInterface) {
			for i := 0; i < hits; i++ {
				m.LoadOrStore(i, i)
			}
			// Prime the map to get it into a steady state.
			for i := 0; i < hits*2; i++ {
				m.Load(i % hits)
			}
		},

		perG: func(b *testing.B, pb *testing.PB, i int, m mapInterface) {
			for ; pb.Next(); i++ {
				j := i % (hits + misses)
				if j < hits {
					m.LoadAndDelete(j)
				} else {
					m.LoadAndDelete(i)
				}
			}
		},
	})
}

func BenchmarkLoadAndDeleteUnique(b *testing.B) {
	benchMap(b, bench{
		perG: func(b *testing.B, pb *testing.PB, i int, m mapInterface) {
			for ; pb.Next(); i++ {
				m.LoadAndDelete(i)
			}
		},
	})
}

func BenchmarkLoadAndDeleteCollision(b *testing.B) {
	benchMap(b, bench{
		setup: func(_ *testing.B, m mapInterface) {
			m.LoadOrStore(0, 0)
		},

		perG: func(b *testing.B, pb *testing.PB, i int, m mapInterface) {
			for ; pb.Next(); i++ {
				m.LoadAndDelete(0)
			}
		},
	})
}

func BenchmarkRange(b *testing.B) {
	const mapSize = 1 << 10

	benchMap(b, bench{
		setup: func(_ *testing.B, m mapInterface) {
			for i := 0; i < mapSize; i++ {
				m.Store(i, i)
			}
		},

		perG: func(b *testing.B, pb *testing.PB, i int, m mapInterface) {
			for ; pb.Next(); i++ {
				m.Range(func(_, _ any) bool { return true })
			}
		},
	})
}

// BenchmarkAdversarialAlloc: Go's comment: stores a new value immediately whenever the map is
// promoted to clean and otherwise loads a unique, missing key (for Go 1.19's sync.Map every
// Load then takes the mutex).
func BenchmarkAdversarialAlloc(b *testing.B) {
	benchMap(b, bench{
		perG: func(b *testing.B, pb *testing.PB, i int, m mapInterface) {
			var stores, loadsSinceStore int64
			for ; pb.Next(); i++ {
				m.Load(i)
				if loadsSinceStore++; loadsSinceStore > stores {
					m.LoadOrStore(i, stores)
					loadsSinceStore = 0
					stores++
				}
			}
		},
	})
}

// BenchmarkAdversarialDelete: Go's comment: periodically deletes one key and adds a different
// one in a large map (for Go 1.19's sync.Map, Loads take the mutex and the map is periodically
// copied whole).
func BenchmarkAdversarialDelete(b *testing.B) {
	const mapSize = 1 << 10

	benchMap(b, bench{
		setup: func(_ *testing.B, m mapInterface) {
			for i := 0; i < mapSize; i++ {
				m.Store(i, i)
			}
		},

		perG: func(b *testing.B, pb *testing.PB, i int, m mapInterface) {
			for ; pb.Next(); i++ {
				m.Load(i)

				if i%mapSize == 0 {
					m.Range(func(k, _ any) bool {
						m.Delete(k)
						return false
					})
					m.Store(i, i)
				}
			}
		},
	})
}

func BenchmarkDeleteCollision(b *testing.B) {
	benchMap(b, bench{
		setup: func(_ *testing.B, m mapInterface) {
			m.LoadOrStore(0, 0)
		},

		perG: func(b *testing.B, pb *testing.PB, i int, m mapInterface) {
			for ; pb.Next(); i++ {
				m.Delete(0)
			}
		},
	})
}

// BenchmarkChurnStoreDelete is churn_test.go's StoreDeleteChurn (one goroutine, whatever
// GOMAXPROCS is): 1,024 keys, 512 present at any time; even calls store an absent key, odd
// calls delete a present one.
func BenchmarkChurnStoreDelete(b *testing.B) {
	for _, kind := range trieKinds {
		b.Run(kind.name, func(b *testing.B) {
			m := kind.new()
			for k := 512; k < 1024; k++ {
				m.Store(k, k)
			}
			b.ResetTimer()
			cpu0 := cpuNanos()
			for i := 0; i < b.N; i++ {
				k := i >> 1
				if i&1 == 0 {
					m.Store(k&1023, k&1023)
				} else {
					m.Delete((k + 512) & 1023)
				}
			}
			reportCPU(b, cpu0)
		})
	}
}

// BenchmarkLiveBytes reports the live heap per entry (B/entry) of a map of n int keys with int
// values of 1<<20 and up (so both are boxed, in both maps), after every key has been loaded
// twice (so a Go 1.19 sync.Map has promoted its dirty map to read and dropped the dirty one).
// ns/op is the time to build and load it, n Stores and 2n Loads.
func BenchmarkLiveBytes(b *testing.B) {
	for _, n := range []int{1 << 10, 1 << 16} {
		for _, kind := range trieKinds {
			b.Run(kind.name+"/n="+itoa(n), func(b *testing.B) {
				var perEntry []float64
				for it := 0; it < b.N; it++ {
					var before, after runtime.MemStats
					runtime.GC()
					runtime.ReadMemStats(&before)
					m := kind.new()
					for k := 0; k < n; k++ {
						m.Store(k, k+1<<20)
					}
					for r := 0; r < 2; r++ {
						for k := 0; k < n; k++ {
							m.Load(k)
						}
					}
					runtime.GC()
					runtime.ReadMemStats(&after)
					perEntry = append(perEntry, float64(after.HeapAlloc-before.HeapAlloc)/float64(n))
					runtime.KeepAlive(m)
				}
				sort.Float64s(perEntry)
				b.ReportMetric(perEntry[len(perEntry)/2], "B/entry")
			})
		}
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var buf [20]byte
	i := len(buf)
	for ; n > 0; n /= 10 {
		i--
		buf[i] = byte('0' + n%10)
	}
	return string(buf[i:])
}
