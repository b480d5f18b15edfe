// Records what Go's sort.Sort does with generated inputs, for terad's port of it
// (src/template/go/sort.rs). Run with Go 1.19 (the Go confd is built with):
//
//	go run tests/conformance/go-sort/record.go > tests/conformance/go-sort/expected.txt
//
// Each input is a list of (length, id) items made by a xorshift generator from a seed; the items
// are sorted with sort.Sort by length alone, as confd's sortByLength and sortKVByLength do, and
// the order of the ids that results is written as an FNV-1a hash: "seed n hash".
package main

import (
	"fmt"
	"runtime"
	"sort"
)

type item struct {
	length uint64
	id     int
}

// byLength is confd's byLength: Less compares the lengths only.
type byLength []item

func (s byLength) Len() int           { return len(s) }
func (s byLength) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }
func (s byLength) Less(i, j int) bool { return s[i].length < s[j].length }

type generator uint64

func (r *generator) next() uint64 {
	*r ^= *r << 13
	*r ^= *r >> 7
	*r ^= *r << 17
	return uint64(*r)
}

func inputs(seed uint64) []item {
	r := generator(seed*0x9E3779B97F4A7C15 | 1)
	n := int(r.next() % 700)
	distinct := []uint64{1, 2, 3, 5, 20, 1000}[r.next()%6]
	shape := r.next() % 4
	items := make([]item, n)
	for i := range items {
		var length uint64
		switch shape {
		case 0:
			length = r.next() % distinct
		case 2:
			length = uint64(n-i) * distinct / uint64(n)
		default:
			length = uint64(i) * distinct / uint64(n)
		}
		items[i] = item{length, i}
	}
	if shape == 3 && n > 0 {
		for k := 0; k < 5; k++ {
			p := r.next() % uint64(n)
			q := r.next() % uint64(n)
			items[p], items[q] = items[q], items[p]
		}
	}
	return items
}

func fingerprint(items []item) uint64 {
	hash := uint64(0xcbf29ce484222325)
	for _, it := range items {
		for _, b := range []byte(fmt.Sprintf("%d,", it.id)) {
			hash ^= uint64(b)
			hash *= 0x100000001b3
		}
	}
	return hash
}

func main() {
	fmt.Printf("# sort.Sort of generated inputs, recorded with %s: seed n fnv1a64(ids)\n", runtime.Version())
	for seed := uint64(0); seed < 2000; seed++ {
		items := inputs(seed)
		sort.Sort(byLength(items))
		fmt.Printf("%d %d %016x\n", seed, len(items), fingerprint(items))
	}
}
