package router

import (
	"encoding/binary"
	"fmt"
	"math"
	"testing"

	"github.com/cespare/xxhash/v2"
)

// golden pins hashAggregate and the partition it gives under the default
// PartitionCount. These values are computed once and must never change: every
// node, in every version, has to send an aggregate to the same partition.
var golden = []struct {
	typ, id   string
	hash      uint64
	partition int
}{
	{"lightbulb", "254ddc61-9c2a-4b8e-8f0e-2f6f3c1d9a10", 0xfe8d8badb116f1cb, 667},
	{"lightbulb", "1", 0x7b52ff9ea4329de6, 1018},
	{"account", "1", 0x87678635102f613d, 948},
	{"", "", 0x34c96acdcadb1bbb, 0},
	{"order", "ORD-0001", 0xa0573049fd910c09, 576},
	{"ab", "c", 0x4b60798139549d1d, 608},
	{"a", "bc", 0x414239d99b92288c, 484},
}

func TestPartitionOfGolden(t *testing.T) {
	// Membership does not matter: only PartitionCount does.
	rings := []*Ring{
		mustNew(t, DefaultConfig(), []string{"solo"}),
		mustNew(t, DefaultConfig(), nodes(9)),
		mustNew(t, Config{ReplicationFactor: 3, LoadFactor: 4}, nodes(2)),
	}
	for _, g := range golden {
		if got := hashAggregate(g.typ, g.id); got != g.hash {
			t.Errorf("hashAggregate(%q, %q) = %#x, want %#x", g.typ, g.id, got, g.hash)
		}
		for _, r := range rings {
			for range 3 { // stable across calls
				if got := r.PartitionOf(g.typ, g.id); got != g.partition {
					t.Errorf("PartitionOf(%q, %q) = %d, want %d", g.typ, g.id, got, g.partition)
				}
			}
		}
	}
}

// TestHashEncoding checks hashAggregate against the documented encoding
// built by hand, and that the length prefix separates type from id.
func TestHashEncoding(t *testing.T) {
	for _, g := range golden {
		buf := binary.LittleEndian.AppendUint64(nil, uint64(len(g.typ)))
		buf = append(buf, g.typ...)
		buf = append(buf, g.id...)
		if got, want := hashAggregate(g.typ, g.id), xxhash.Sum64(buf); got != want {
			t.Errorf("hashAggregate(%q, %q) = %#x, encoding hashes to %#x", g.typ, g.id, got, want)
		}
	}
	// Pairs whose concatenations are equal must hash differently.
	pairs := [][2][2]string{
		{{"ab", "c"}, {"a", "bc"}},
		{{"", "abc"}, {"abc", ""}},
		{{"lightbulb", "1"}, {"lightbulb1", ""}},
		{{"a/b", "c"}, {"a", "b/c"}},
	}
	for _, p := range pairs {
		x, y := p[0], p[1]
		if hashAggregate(x[0], x[1]) == hashAggregate(y[0], y[1]) {
			t.Errorf("(%q, %q) and (%q, %q) hash alike", x[0], x[1], y[0], y[1])
		}
	}
}

// TestPartitionOfSpreadsEvenly hashes many ids into the default partitions
// and checks no partition is far from the mean (a loose chi-square bound:
// a broken hash or encoding fails it by orders of magnitude).
func TestPartitionOfSpreadsEvenly(t *testing.T) {
	r := mustNew(t, DefaultConfig(), nodes(3))
	const keys = 200_000
	counts := make([]int, r.PartitionCount())
	for i := range keys {
		counts[r.PartitionOf("lightbulb", fmt.Sprintf("bulb-%d", i))]++
	}
	mean := float64(keys) / float64(len(counts))
	var chi2 float64
	for _, c := range counts {
		d := float64(c) - mean
		chi2 += d * d / mean
	}
	dof := float64(len(counts) - 1)
	// For 1020 degrees of freedom the statistic has mean 1020 and standard
	// deviation about 45; allow 6 standard deviations.
	limit := dof + 6*math.Sqrt(2*dof)
	t.Logf("chi-square %.0f for %d degrees of freedom (limit %.0f)", chi2, int(dof), limit)
	if chi2 > limit {
		t.Errorf("partition counts too uneven: chi-square %.0f > %.0f", chi2, limit)
	}
}
