package router

import (
	"fmt"
	"testing"
)

func BenchmarkOwner(b *testing.B) {
	r := mustNew(b, DefaultConfig(), nodes(10))
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("254ddc61-9c2a-4b8e-8f0e-%012d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if r.Owner("lightbulb", ids[i&1023]) == "" {
			b.Fatal("no owner")
		}
		i++
	}
}

// BenchmarkNew rebuilds a ring, as a node does on every membership change,
// under the default PartitionCount and, for comparison, the library's 271.
func BenchmarkNew(b *testing.B) {
	for _, p := range []int{DefaultPartitionCount, 271} {
		for _, n := range []int{3, 10, 50} {
			cfg := Config{PartitionCount: p}
			members := nodes(n)
			b.Run(fmt.Sprintf("partitions=%d/members=%d", p, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := New(cfg, members); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkMoved(b *testing.B) {
	prev := mustNew(b, DefaultConfig(), nodes(9))
	next := mustNew(b, DefaultConfig(), nodes(10))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Moved(prev, next); err != nil {
			b.Fatal(err)
		}
	}
}
