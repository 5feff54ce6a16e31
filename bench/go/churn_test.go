// Copyright the shmap authors. MIT license.

// Package shmapbench holds the shapes of bench/cases_go_shapes.ts that Go's own
// sync/map_bench_test.go lacks, written for Go's sync.Map and for a map under a sync.RWMutex
// (the RWMutexMap of Go's map_reference_test.go), so that bench/go_baseline.sh can put Go's
// figures beside ours. The sub-benchmarks are named as Go's are ("Shape/*sync.Map"), which is
// how bench/main.ts --go=FILE finds them. Run with GOMAXPROCS=1: one goroutine, as our one
// thread.
package shmapbench

import (
	"sync"
	"testing"
)

// churnMap is what StoreDeleteChurn needs of a map.
type churnMap interface {
	Store(key, value any)
	Delete(key any)
}

// rwMutexMap is Go's RWMutexMap, cut to what the shapes here call.
type rwMutexMap struct {
	mu    sync.RWMutex
	dirty map[any]any
}

func (m *rwMutexMap) Store(key, value any) {
	m.mu.Lock()
	if m.dirty == nil {
		m.dirty = make(map[any]any)
	}
	m.dirty[key] = value
	m.mu.Unlock()
}

func (m *rwMutexMap) Delete(key any) {
	m.mu.Lock()
	delete(m.dirty, key)
	m.mu.Unlock()
}

// BenchmarkStoreDeleteChurn stores and deletes over a fixed set of 1,024 keys, 512 of them
// present at any time: even calls store a key that is absent, odd calls delete one that is
// present (bench/cases_go_shapes.ts "StoreDeleteChurn").
func BenchmarkStoreDeleteChurn(b *testing.B) {
	for _, kind := range []struct {
		name string
		new  func() churnMap
	}{
		{"*sync.Map", func() churnMap { return &sync.Map{} }},
		{"*sync_test.RWMutexMap", func() churnMap { return &rwMutexMap{} }},
	} {
		b.Run(kind.name, func(b *testing.B) {
			m := kind.new()
			for k := 512; k < 1024; k++ {
				m.Store(k, k)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := i >> 1
				if i&1 == 0 {
					m.Store(k&1023, k&1023)
				} else {
					m.Delete((k + 512) & 1023)
				}
			}
		})
	}
}
