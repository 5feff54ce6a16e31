// Copyright the shmap authors. MIT license.

package shmapbench

// A concurrent hash-trie map in the style of Go 1.24's sync.Map (internal/sync.HashTrieMap),
// written for Go 1.19 from the design, to measure what that design buys over Go 1.19's
// read/dirty sync.Map on the churn shapes of issue 11 (hash_trie_test.go). It is a benchmark
// subject, not a library: keys of the types keyHash knows (ints, strings) only. Keys and values
// are of type any, as sync.Map's are (Go 1.19's generics cannot take any as a comparable type
// argument, so the map is not generic).
//
// Shape. A tree of indirect nodes, 16 children each: the child of a node at depth d is chosen
// by the 4 bits of the key's 64-bit hash at bit offset 60-4d (the top 4 bits pick the root's
// child), so there are at most 16 levels. A child slot holds nil, an indirect node, or an
// entry: a leaf holding one key and its value, and, for keys whose full 64-bit hashes are
// equal, a chain of further entries through overflow.
//
// Concurrency.
//   - Every child slot is an atomic pointer. Load never locks: it reads slots from the root
//     down until it meets nil or an entry, then compares keys along that entry's chain.
//   - A slot of an indirect node is written only while that node's mutex is held. A writer
//     walks down as Load does to the lowest indirect node on the key's path, locks it, and
//     then checks that the node is not dead (pruned from the tree) and that the slot still
//     holds what it read; if not, it unlocks and walks again from the root.
//   - Entries are immutable once published (copy-on-write, as Go 1.24 does): Store of a key
//     that is present builds a new entry (and copies of the entries before it in its chain)
//     and swaps it into the slot. So a reader that loaded an entry sees a consistent
//     key/value/chain with no further synchronization, and Store costs an allocation.
//   - Inserting a key whose slot holds an entry of another hash expands the slot: new indirect
//     nodes, built privately until the two hashes' 4-bit digits differ, and published with
//     one atomic store into the slot.
//   - Deleting a key whose entry was its slot's only one sets the slot to nil; an indirect node
//     (other than the root) left with 16 nil slots is pruned: with its own mutex still held,
//     the deleter locks the parent, marks the node dead, nils the parent's slot for it, unlocks
//     the node and repeats one level up. Locks are thus taken child before parent, and only
//     by pruning; every other writer holds one lock at a time, so there is no cycle.
//   - The parent's slot for an indirect node changes only when that node is pruned, which
//     needs the node's own mutex: so a locked node that is not dead is in the tree.
//   - Range walks the tree with atomic loads and no locks. Each slot is read once, and a key
//     can only be in the subtree of the slots on its hash's path, so no key is visited twice;
//     keys stored or deleted during the walk may or may not be seen (as with sync.Map).
//
// Hashing: keyHash below. Int keys are mixed with a per-map 64-bit seed by murmur3's fmix64
// finalizer (a bijection of 64-bit values, so distinct ints never share a full hash), strings
// go through hash/maphash with the map's maphash.Seed, and a key with a trieHash method gives
// its own hash (for the tests' collisions). Each entry keeps its key's hash, so
// an expansion never rehashes and a lookup compares keys only when the hashes are equal.

import (
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"unsafe"
)

const (
	trieBitsPerLevel = 4
	trieFanout       = 1 << trieBitsPerLevel
	trieSlotMask     = trieFanout - 1
	trieTopShift     = 64 - trieBitsPerLevel // the root's digit: bits 60..63
)

// trieNode is the header that indirect nodes and entries both start with, so that a slot can
// point at either: isEntry says which, and asIndirect/asEntry convert a pointer to the header
// into a pointer to the whole node (the header is the first field, at offset 0).
type trieNode struct {
	isEntry bool
}

func (n *trieNode) asIndirect() *trieIndirect {
	return (*trieIndirect)(unsafe.Pointer(n))
}

func (n *trieNode) asEntry() *trieEntry {
	return (*trieEntry)(unsafe.Pointer(n))
}

// trieIndirect is an inner node. children are written only under mu; dead is set (under mu
// and the parent's mu) when the node is pruned, after which no slot of it is ever written.
type trieIndirect struct {
	trieNode
	dead     atomic.Bool
	mu       sync.Mutex
	parent   *trieIndirect // nil for the root
	children [trieFanout]atomic.Pointer[trieNode]
}

// trieEntry is a leaf. All its fields are fixed before it is published; overflow chains
// entries whose keys have the same full hash (never, for int keys; see keyHash).
type trieEntry struct {
	trieNode
	hash     uint64
	overflow *trieEntry
	key      any
	value    any
}

func newTrieEntry(hash uint64, key any, value any, overflow *trieEntry) *trieEntry {
	return &trieEntry{trieNode: trieNode{isEntry: true}, hash: hash, overflow: overflow, key: key, value: value}
}

// lookup finds key along the chain that starts at e.
func (e *trieEntry) lookup(hash uint64, key any) (*trieEntry, bool) {
	if e.hash != hash { // the whole chain shares one hash
		return nil, false
	}
	for ; e != nil; e = e.overflow {
		if e.key == key {
			return e, true
		}
	}
	return nil, false
}

// replacing returns a copy of the chain at e with target replaced by repl (nil: removed). The
// entries after target are shared, not copied: they are immutable.
func (e *trieEntry) replacing(target, repl *trieEntry) *trieEntry {
	if e == target {
		if repl == nil {
			return e.overflow
		}
		return repl
	}
	return newTrieEntry(e.hash, e.key, e.value, e.overflow.replacing(target, repl))
}

// hashTrie is the map. The zero value is not usable: make one with newHashTrie.
type hashTrie struct {
	root    *trieIndirect // never pruned, never replaced
	seed    maphash.Seed  // for string keys
	intSeed uint64        // for int keys, derived from seed
}

func newHashTrie() *hashTrie {
	seed := maphash.MakeSeed()
	return &hashTrie{
		root:    &trieIndirect{},
		seed:    seed,
		intSeed: maphash.String(seed, "hashTrie int seed"),
	}
}

// keyHash is the key's 64-bit hash under this map's seed.
func (m *hashTrie) keyHash(key any) uint64 {
	switch k := key.(type) {
	case int:
		return fmix64(uint64(k) ^ m.intSeed)
	case int64:
		return fmix64(uint64(k) ^ m.intSeed)
	case uint64:
		return fmix64(k ^ m.intSeed)
	case int32:
		return fmix64(uint64(k) ^ m.intSeed)
	case uint32:
		return fmix64(uint64(k) ^ m.intSeed)
	case string:
		return maphash.String(m.seed, k)
	case trieSelfHashing:
		return k.trieHash()
	}
	panic(fmt.Sprintf("hashTrie: keys of type %T are not supported", key))
}

// trieSelfHashing is a key that gives its own hash, unseeded: the tests use it to force
// collisions of any length of hash prefix, up to all 64 bits.
type trieSelfHashing interface{ trieHash() uint64 }

// fmix64 is murmur3's 64-bit finalizer: every input bit affects every output bit, and it is a
// bijection, so distinct inputs give distinct hashes.
func fmix64(x uint64) uint64 {
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}

func slotIndex(hash uint64, shift uint) int { return int(hash>>shift) & trieSlotMask }

// lookupHashed walks down without locks.
func (m *hashTrie) lookupHashed(hash uint64, key any) (*trieEntry, bool) {
	i := m.root
	for shift := uint(trieTopShift); ; shift -= trieBitsPerLevel {
		n := i.children[slotIndex(hash, shift)].Load()
		if n == nil {
			return nil, false
		}
		if n.isEntry {
			return n.asEntry().lookup(hash, key)
		}
		i = n.asIndirect()
	}
}

// lockedSlot is where a writer works: the lowest indirect node i on the hash's path, locked
// and not dead; shift is i's digit offset; slot is i's child on the path, and n what it holds
// (nil or an entry), which cannot change until i is unlocked.
type lockedSlot struct {
	i     *trieIndirect
	shift uint
	slot  *atomic.Pointer[trieNode]
	n     *trieNode
}

// lockSlot finds and locks the hash's slot. With mustHold, it returns ok=false without locking
// when key is absent (so a Delete of an absent key takes no lock, as Load takes none).
func (m *hashTrie) lockSlot(hash uint64, key any, mustHold bool) (s lockedSlot, ok bool) {
	for {
		s.i = m.root
		s.shift = trieTopShift
		for {
			s.slot = &s.i.children[slotIndex(hash, s.shift)]
			s.n = s.slot.Load()
			if s.n == nil || s.n.isEntry {
				break
			}
			s.i = s.n.asIndirect()
			s.shift -= trieBitsPerLevel
		}
		if mustHold {
			if s.n == nil {
				return s, false
			}
			if _, found := s.n.asEntry().lookup(hash, key); !found {
				return s, false
			}
		}
		s.i.mu.Lock()
		if !s.i.dead.Load() && s.slot.Load() == s.n {
			return s, true
		}
		// Pruned, expanded or rewritten since we looked: walk again.
		s.i.mu.Unlock()
	}
}

// insertLocked adds key, which is not in the map, at s (whose node is locked).
func (m *hashTrie) insertLocked(s lockedSlot, hash uint64, key any, value any) {
	if s.n == nil {
		s.slot.Store(&newTrieEntry(hash, key, value, nil).trieNode)
		return
	}
	old := s.n.asEntry()
	if old.hash == hash { // a full-hash collision: chain it in front
		s.slot.Store(&newTrieEntry(hash, key, value, old).trieNode)
		return
	}
	// Expand: the two hashes agree on every digit down to s.shift; build indirect nodes below
	// until a digit differs. They differ at some shift >= 0, since the hashes differ and a
	// slot at shift 0 is reached only by hashes equal in all 64 bits.
	e := newTrieEntry(hash, key, value, nil)
	top := &trieIndirect{parent: s.i}
	cur := top
	for shift := s.shift - trieBitsPerLevel; ; shift -= trieBitsPerLevel {
		oi, ni := slotIndex(old.hash, shift), slotIndex(hash, shift)
		if oi != ni {
			cur.children[oi].Store(&old.trieNode)
			cur.children[ni].Store(&e.trieNode)
			break
		}
		next := &trieIndirect{parent: cur}
		cur.children[oi].Store(&next.trieNode)
		cur = next
	}
	s.slot.Store(&top.trieNode) // publishes the whole private subtree at once
}

// deleteLocked removes target (in the chain at s.n) and prunes emptied nodes; it unlocks.
func (m *hashTrie) deleteLocked(s lockedSlot, hash uint64, target *trieEntry) {
	head := s.n.asEntry().replacing(target, nil)
	if head != nil {
		s.slot.Store(&head.trieNode)
		s.i.mu.Unlock()
		return
	}
	s.slot.Store(nil)
	i, shift := s.i, s.shift
	for i.parent != nil && i.empty() {
		parent := i.parent
		shift += trieBitsPerLevel
		parent.mu.Lock()
		i.dead.Store(true)
		parent.children[slotIndex(hash, shift)].Store(nil)
		i.mu.Unlock()
		i = parent
	}
	i.mu.Unlock()
}

// empty reports whether all of i's slots are nil; call with i.mu held.
func (i *trieIndirect) empty() bool {
	for j := range i.children {
		if i.children[j].Load() != nil {
			return false
		}
	}
	return true
}

// Load returns the value stored for key, if any. It takes no lock.
func (m *hashTrie) Load(key any) (value any, ok bool) {
	if e, found := m.lookupHashed(m.keyHash(key), key); found {
		return e.value, true
	}
	return value, false
}

// Store sets the value for key.
func (m *hashTrie) Store(key any, value any) {
	m.Swap(key, value)
}

// Swap sets the value for key and returns the previous one, if any.
func (m *hashTrie) Swap(key any, value any) (previous any, loaded bool) {
	hash := m.keyHash(key)
	s, _ := m.lockSlot(hash, key, false)
	if s.n != nil {
		if old, found := s.n.asEntry().lookup(hash, key); found {
			repl := newTrieEntry(hash, key, value, old.overflow)
			s.slot.Store(&s.n.asEntry().replacing(old, repl).trieNode)
			s.i.mu.Unlock()
			return old.value, true
		}
	}
	m.insertLocked(s, hash, key, value)
	s.i.mu.Unlock()
	return previous, false
}

// LoadOrStore returns the value for key if present; otherwise it stores value. A key that is
// present is found without a lock.
func (m *hashTrie) LoadOrStore(key any, value any) (actual any, loaded bool) {
	hash := m.keyHash(key)
	if e, found := m.lookupHashed(hash, key); found {
		return e.value, true
	}
	s, _ := m.lockSlot(hash, key, false)
	if s.n != nil {
		if e, found := s.n.asEntry().lookup(hash, key); found { // stored since we looked
			s.i.mu.Unlock()
			return e.value, true
		}
	}
	m.insertLocked(s, hash, key, value)
	s.i.mu.Unlock()
	return value, false
}

// LoadAndDelete deletes key and returns its value, if it was present. An absent key takes no
// lock.
func (m *hashTrie) LoadAndDelete(key any) (value any, loaded bool) {
	hash := m.keyHash(key)
	s, ok := m.lockSlot(hash, key, true)
	if !ok {
		return value, false
	}
	// lockSlot saw key in s.n's chain and s.n is still the slot's: key is still there.
	target, _ := s.n.asEntry().lookup(hash, key)
	m.deleteLocked(s, hash, target)
	return target.value, true
}

// Delete deletes key.
func (m *hashTrie) Delete(key any) {
	m.LoadAndDelete(key)
}

// Range calls f for each key and value until f returns false, without locks (see the top).
func (m *hashTrie) Range(f func(key, value any) bool) {
	m.root.rangeFrom(f)
}

func (i *trieIndirect) rangeFrom(f func(key, value any) bool) bool {
	for j := range i.children {
		n := i.children[j].Load()
		if n == nil {
			continue
		}
		if !n.isEntry {
			if !n.asIndirect().rangeFrom(f) {
				return false
			}
			continue
		}
		for e := n.asEntry(); e != nil; e = e.overflow {
			if !f(e.key, e.value) {
				return false
			}
		}
	}
	return true
}

// depthStats reports the number of indirect nodes and entries, and the deepest entry's depth
// (the root's children are at depth 1). For tests and for the memory figures.
func (m *hashTrie) depthStats() (indirects, entries, maxDepth int) {
	var walk func(i *trieIndirect, depth int)
	walk = func(i *trieIndirect, depth int) {
		indirects++
		for j := range i.children {
			n := i.children[j].Load()
			switch {
			case n == nil:
			case n.isEntry:
				for e := n.asEntry(); e != nil; e = e.overflow {
					entries++
				}
				if depth > maxDepth {
					maxDepth = depth
				}
			default:
				walk(n.asIndirect(), depth+1)
			}
		}
	}
	walk(m.root, 1)
	return
}
