package router

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/buraksezer/consistent"
)

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		members []string
		want    error
	}{
		{"nil members", DefaultConfig(), nil, ErrNoMembers},
		{"empty members", DefaultConfig(), []string{}, ErrNoMembers},
		{"empty id", DefaultConfig(), []string{"node-a", ""}, ErrInvalidMember},
		{"only empty ids", DefaultConfig(), []string{"", ""}, ErrInvalidMember},
		{"more members than partitions", Config{PartitionCount: 3}, []string{"a", "b", "c", "d"}, ErrTooManyMembers},
		{"invalid config", Config{LoadFactor: 1}, []string{"a"}, ErrInvalidConfig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.cfg, tt.members)
			if !errors.Is(err, tt.want) || r != nil {
				t.Fatalf("New = %v, %v; want nil, %v", r, err, tt.want)
			}
			t.Logf("error: %v", err)
		})
	}
	// As many members as partitions is fine: each owns at most two.
	r := mustNew(t, Config{PartitionCount: 3}, []string{"a", "b", "c"})
	if r.MaxLoad() != 2 {
		t.Fatalf("MaxLoad = %d, want 2", r.MaxLoad())
	}
}

func TestSingleMemberOwnsEverything(t *testing.T) {
	for _, cfg := range []Config{
		DefaultConfig(),
		{PartitionCount: 1},
		{PartitionCount: 271, ReplicationFactor: 2, LoadFactor: 1.01},
	} {
		r := mustNew(t, cfg, []string{"solo"})
		for p, owner := range r.Partitions() {
			if owner != "solo" {
				t.Fatalf("%+v: partition %d owned by %q", cfg, p, owner)
			}
		}
		if got := len(r.OwnedBy("solo")); got != r.PartitionCount() {
			t.Fatalf("%+v: OwnedBy = %d partitions, want %d", cfg, got, r.PartitionCount())
		}
		if got := r.Owner("lightbulb", "any"); got != "solo" {
			t.Fatalf("Owner = %q", got)
		}
	}
}

func TestMembersAreASet(t *testing.T) {
	in := []string{"c", "a", "b", "a", "c"}
	orig := slices.Clone(in)
	r := mustNew(t, DefaultConfig(), in)
	if !slices.Equal(in, orig) {
		t.Fatalf("New modified its input: %v", in)
	}
	if got := r.Members(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("Members() = %v, want [a b c]", got)
	}
	plain := mustNew(t, DefaultConfig(), []string{"a", "b", "c"})
	if !slices.Equal(r.Partitions(), plain.Partitions()) {
		t.Fatal("duplicates changed the table")
	}
	for _, id := range []string{"a", "b", "c"} {
		if !r.Has(id) {
			t.Errorf("Has(%q) = false", id)
		}
	}
	for _, id := range []string{"", "d", "aa"} {
		if r.Has(id) {
			t.Errorf("Has(%q) = true", id)
		}
	}
}

func TestRingIsImmutable(t *testing.T) {
	r := mustNew(t, DefaultConfig(), nodes(3))
	fp := r.Fingerprint()
	ms := r.Members()
	ms[0] = "mallory"
	ps := r.Partitions()
	for i := range ps {
		ps[i] = "mallory"
	}
	if r.Fingerprint() != fp || r.Members()[0] == "mallory" || r.OwnerOf(0) == "mallory" {
		t.Fatal("mutating returned slices changed the ring")
	}
}

func TestLookups(t *testing.T) {
	r := mustNew(t, DefaultConfig(), nodes(5))
	for _, p := range []int{-1, r.PartitionCount(), math.MaxInt} {
		if got := r.OwnerOf(p); got != "" {
			t.Errorf("OwnerOf(%d) = %q, want \"\"", p, got)
		}
	}
	// OwnedBy partitions the table among the members.
	var all []int
	for _, m := range r.Members() {
		owned := r.OwnedBy(m)
		if !slices.IsSorted(owned) {
			t.Fatalf("OwnedBy(%q) not ascending", m)
		}
		for _, p := range owned {
			if r.OwnerOf(p) != m {
				t.Fatalf("OwnedBy(%q) lists %d, owned by %q", m, p, r.OwnerOf(p))
			}
		}
		all = append(all, owned...)
	}
	slices.Sort(all)
	if !slices.Equal(all, allPartitions(r.PartitionCount())) {
		t.Fatal("OwnedBy over all members does not cover each partition exactly once")
	}
	if got := r.OwnedBy("stranger"); got != nil {
		t.Fatalf("OwnedBy(stranger) = %v", got)
	}
	// Owner is OwnerOf(PartitionOf).
	for i := range 100 {
		id := fmt.Sprint(i)
		if r.Owner("t", id) != r.OwnerOf(r.PartitionOf("t", id)) {
			t.Fatalf("Owner and OwnerOf(PartitionOf) disagree for %q", id)
		}
	}
}

// trickyIDs are ids that defeat naive encodings: prefixes of one another
// followed by digits (the bare-id virtual-node clash), ids that look like
// this package's own "<len>:<id>" keys, separators, unicode, long ids.
var trickyIDs = []string{
	"node1", "node11", "node111", "node1110", "n", "n1", "n10",
	"1:a", "a", "2:1:", "1", "10", "0", ":", "::", "a:1",
	"10.0.0.1:7946", "10.0.0.11:7946", "ノード", "node\x00", "node\n1",
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
}

// TestDeterministicAcrossMemberOrders builds rings from many orders of the
// same member set, with duplicates sprinkled in, and requires the full
// partition tables to be identical.
func TestDeterministicAcrossMemberOrders(t *testing.T) {
	rng := newRand(t)
	const orders = 25
	configs := []Config{
		DefaultConfig(),
		{PartitionCount: 271, ReplicationFactor: 7, LoadFactor: 1.05},
		{PartitionCount: 31, ReplicationFactor: 2, LoadFactor: 2},
	}
	for _, size := range []int{1, 2, 3, 5, 8, 13, 22, 31} {
		// A random member set: some tricky ids, some random ones.
		pool := slices.Clone(trickyIDs)
		for range size {
			pool = append(pool, fmt.Sprintf("node-%x", rng.Uint32()))
		}
		rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
		set := slices.Clone(pool[:size])

		for _, cfg := range configs {
			want := mustNew(t, cfg, set)
			for range orders {
				order := slices.Clone(set)
				for range rng.IntN(3) {
					order = append(order, set[rng.IntN(len(set))])
				}
				rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				got := mustNew(t, cfg, order)
				if !slices.Equal(got.Partitions(), want.Partitions()) {
					t.Fatalf("%+v: members %q give a different table from %q", cfg, order, set)
				}
				if got.Fingerprint() != want.Fingerprint() {
					t.Fatalf("fingerprints differ for equal tables")
				}
			}
		}
	}
}

// bareMember hands the id itself to consistent, as a naive adapter would.
type bareMember string

func (m bareMember) String() string { return string(m) }

func consistentTable(members []consistent.Member, partitions int) []string {
	c := consistent.New(members, consistent.Config{
		Hasher: xxhasher{}, PartitionCount: partitions, ReplicationFactor: 20, Load: 1.25,
	})
	table := make([]string, partitions)
	for p := range table {
		table[p] = c.GetPartitionOwner(p).String()
	}
	return table
}

// TestBareIDsWouldDependOnOrder pins the hazard ringMember exists for: with
// bare ids, "node1" and "node11" share virtual node names and the table
// depends on insertion order. With length-prefixed keys it does not, even
// before New's sorting.
func TestBareIDsWouldDependOnOrder(t *testing.T) {
	const partitions = 271
	ab := consistentTable([]consistent.Member{bareMember("node1"), bareMember("node11")}, partitions)
	ba := consistentTable([]consistent.Member{bareMember("node11"), bareMember("node1")}, partitions)
	diff := 0
	for p := range ab {
		if ab[p] != ba[p] {
			diff++
		}
	}
	t.Logf("bare ids: %d of %d partitions depend on insertion order", diff, partitions)
	if diff == 0 {
		t.Error("expected bare ids to clash; has buraksezer/consistent changed how it names virtual nodes?")
	}

	ab = consistentTable([]consistent.Member{newRingMember("node1"), newRingMember("node11")}, partitions)
	ba = consistentTable([]consistent.Member{newRingMember("node11"), newRingMember("node1")}, partitions)
	if !slices.Equal(ab, ba) {
		t.Error("length-prefixed keys still depend on insertion order")
	}

	// No two (member, virtual node) pairs share a name, for the tricky ids
	// and the library's naming scheme, key + decimal replica number.
	seen := make(map[string]string)
	for _, id := range trickyIDs {
		key := newRingMember(id).String()
		for i := range MaxReplicationFactor {
			name := fmt.Sprintf("%s%d", key, i)
			if other, dup := seen[name]; dup {
				t.Fatalf("virtual node %q of %q clashes with %q", name, id, other)
			}
			seen[name] = id
		}
	}
}

// TestBoundedLoads checks the exact guarantee of buraksezer/consistent: no
// member owns more than ceil(floor(P/N) × LoadFactor) partitions.
func TestBoundedLoads(t *testing.T) {
	configs := []Config{
		DefaultConfig(),
		{PartitionCount: 271},
		{PartitionCount: 271, ReplicationFactor: 2, LoadFactor: 1.01},
		{PartitionCount: 1021, ReplicationFactor: 100, LoadFactor: 1.1},
	}
	for _, cfg := range configs {
		cfg = cfg.WithDefaults()
		for n := 1; n <= 70; n++ {
			r := mustNew(t, cfg, nodes(n))
			bound := int(math.Ceil(float64(cfg.PartitionCount/n) * cfg.LoadFactor))
			bound = min(bound, cfg.PartitionCount)
			if r.MaxLoad() != bound {
				t.Fatalf("%+v N=%d: MaxLoad = %d, want %d", cfg, n, r.MaxLoad(), bound)
			}
			lo, hi, sum := cfg.PartitionCount, 0, 0
			for m, l := range loads(r) {
				if l > bound {
					t.Fatalf("%+v N=%d: %s owns %d partitions, bound %d", cfg, n, m, l, bound)
				}
				lo, hi, sum = min(lo, l), max(hi, l), sum+l
			}
			if sum != cfg.PartitionCount {
				t.Fatalf("loads sum to %d, want %d", sum, cfg.PartitionCount)
			}
			if n == 3 || n == 10 || n == 64 {
				avg := float64(cfg.PartitionCount) / float64(n)
				t.Logf("P=%d RF=%d L=%v N=%d: loads %d..%d (%.2f×..%.2f× avg %.1f), bound %d",
					cfg.PartitionCount, cfg.ReplicationFactor, cfg.LoadFactor, n,
					lo, hi, float64(lo)/avg, float64(hi)/avg, avg, bound)
			}
		}
	}
}

// TestEveryValidSizeBuilds runs New for every member count up to the
// partition count, on small tight configurations, to back the claim that a
// valid config never makes the library panic (ErrBuildFailed).
func TestEveryValidSizeBuilds(t *testing.T) {
	for _, p := range []int{1, 2, 3, 5, 7, 13, 31, 64} {
		for _, rf := range []int{2, 3, 20} {
			for _, lf := range []float64{math.Nextafter(1, 2), 1.01, 1.25, 2} {
				cfg := Config{PartitionCount: p, ReplicationFactor: rf, LoadFactor: lf}
				for n := 1; n <= p; n++ {
					r := mustNew(t, cfg, nodes(n))
					for m, l := range loads(r) {
						if l > r.MaxLoad() {
							t.Fatalf("%+v N=%d: %s owns %d > %d", cfg, n, m, l, r.MaxLoad())
						}
					}
				}
			}
		}
	}
}

// TestAddMemberMovesAboutOneNth grows a cluster one member at a time and
// measures the share of partitions that change owner.
func TestAddMemberMovesAboutOneNth(t *testing.T) {
	for _, cfg := range []Config{DefaultConfig(), {PartitionCount: 271}} {
		cfg = cfg.WithDefaults()
		all := nodes(10)
		for n := 2; n <= 10; n++ {
			prev := mustNew(t, cfg, all[:n-1])
			next := mustNew(t, cfg, all[:n])
			moved := mustMoved(t, prev, next)
			f, err := MovedFraction(prev, next)
			if err != nil {
				t.Fatal(err)
			}
			toNew := len(next.OwnedBy(all[n-1]))
			t.Logf("P=%d N=%2d: moved %.3f = %.2f/N (%d partitions: %d to the new member, %d rebalanced)",
				cfg.PartitionCount, n, f, f*float64(n), len(moved), toNew, len(moved)-toNew)
			if lo, hi := 0.5/float64(n), 2/float64(n); f < lo || f > hi {
				t.Errorf("P=%d N=%d: moved fraction %.3f outside [%.3f, %.3f]", cfg.PartitionCount, n, f, lo, hi)
			}
			if other := len(moved) - toNew; other > toNew {
				t.Errorf("N=%d: %d partitions moved between old members, more than the %d taken by the new one", n, other, toNew)
			}
		}
	}
}

// TestAddMemberMovesAboutOneNthRandomIDs repeats the measurement over random
// member ids. Single draws vary (20 virtual nodes give a member anything from
// about half to twice its fair share), so it bounds each draw loosely and
// the mean tightly.
func TestAddMemberMovesAboutOneNthRandomIDs(t *testing.T) {
	rng := newRand(t)
	const trials = 20
	for n := 2; n <= 10; n++ {
		var sum, lo, hi float64 = 0, math.Inf(1), 0
		for range trials {
			ids := make([]string, n)
			for i := range ids {
				ids[i] = fmt.Sprintf("%x", rng.Uint64())
			}
			f, err := MovedFraction(mustNew(t, DefaultConfig(), ids[:n-1]), mustNew(t, DefaultConfig(), ids))
			if err != nil {
				t.Fatal(err)
			}
			fn := f * float64(n)
			sum, lo, hi = sum+fn, min(lo, fn), max(hi, fn)
			if fn < 0.2 || fn > 2.5 {
				t.Errorf("N=%d ids %q: moved %.3f = %.2f/N, outside [0.2/N, 2.5/N]", n, ids, f, fn)
			}
		}
		mean := sum / trials
		t.Logf("N=%2d: moved fraction × N: mean %.2f, range %.2f..%.2f over %d draws", n, mean, lo, hi, trials)
		if mean < 0.75 || mean > 1.4 {
			t.Errorf("N=%d: mean moved fraction %.2f/N, want within [0.75/N, 1.4/N]", n, mean)
		}
	}
}

// TestRemoveMemberMovesItsPartitions removes each member of clusters of
// 2..10 in turn: all partitions it owned move, and the bounded-load
// rebalancing moves a few more, which we measure.
func TestRemoveMemberMovesItsPartitions(t *testing.T) {
	cfg := DefaultConfig()
	for n := 2; n <= 10; n++ {
		all := nodes(n)
		full := mustNew(t, cfg, all)
		var owned, extra int
		for k, gone := range all {
			rest := slices.Delete(slices.Clone(all), k, k+1)
			smaller := mustNew(t, cfg, rest)
			moved := mustMoved(t, full, smaller)
			lost := full.OwnedBy(gone)
			for _, p := range lost {
				if _, ok := slices.BinarySearch(moved, p); !ok {
					t.Fatalf("N=%d: partition %d of removed %s did not move", n, p, gone)
				}
			}
			owned += len(lost)
			extra += len(moved) - len(lost)
			// Removing and re-adding a member restores the table exactly.
			if back := mustNew(t, cfg, append(rest, gone)); back.Fingerprint() != full.Fingerprint() {
				t.Fatalf("N=%d: removing and re-adding %s changed the table", n, gone)
			}
		}
		// Averaged over which member leaves: its own partitions (1/N of all)
		// plus rebalancing among the survivors.
		total := float64(owned+extra) / float64(n*cfg.PartitionCount)
		t.Logf("N=%2d: removing a member moves on average %.3f = %.2f/N (own %.1f, rebalanced %.1f partitions)",
			n, total, total*float64(n), float64(owned)/float64(n), float64(extra)/float64(n))
		if extra > owned {
			t.Errorf("N=%d: rebalancing moved %d partitions, more than the %d the removed members owned", n, extra, owned)
		}
	}
}

func TestMovedEdgeCases(t *testing.T) {
	r3 := mustNew(t, DefaultConfig(), nodes(3))
	r3again := mustNew(t, DefaultConfig(), nodes(3))
	small := mustNew(t, Config{PartitionCount: 7}, nodes(3))

	if got := mustMoved(t, r3, r3again); got != nil {
		t.Errorf("Moved(equal rings) = %v, want nil", got)
	}
	if got := mustMoved(t, nil, nil); got != nil {
		t.Errorf("Moved(nil, nil) = %v, want nil", got)
	}
	if got := mustMoved(t, nil, small); !slices.Equal(got, []int{0, 1, 2, 3, 4, 5, 6}) {
		t.Errorf("Moved(nil, ring) = %v, want every partition", got)
	}
	if got := mustMoved(t, small, nil); len(got) != 7 {
		t.Errorf("Moved(ring, nil) = %v, want every partition", got)
	}
	if f, err := MovedFraction(nil, small); f != 1 || err != nil {
		t.Errorf("MovedFraction(nil, ring) = %v, %v; want 1", f, err)
	}
	if f, err := MovedFraction(r3, r3again); f != 0 || err != nil {
		t.Errorf("MovedFraction(equal) = %v, %v; want 0", f, err)
	}
	if _, err := Moved(r3, small); !errors.Is(err, ErrPartitionCountMismatch) {
		t.Errorf("Moved(1021, 7) error = %v, want ErrPartitionCountMismatch", err)
	}
	if _, err := MovedFraction(small, r3); !errors.Is(err, ErrPartitionCountMismatch) {
		t.Errorf("MovedFraction(7, 1021) error = %v, want ErrPartitionCountMismatch", err)
	}
	// Rings with different RF or LoadFactor but the same count compare.
	other := mustNew(t, Config{ReplicationFactor: 50}, nodes(3))
	moved := mustMoved(t, r3, other)
	for _, p := range moved {
		if r3.OwnerOf(p) == other.OwnerOf(p) {
			t.Fatalf("Moved lists %d, which kept its owner", p)
		}
	}
	t.Logf("RF 20 → 50 with the same 3 members moves %d of %d partitions", len(moved), r3.PartitionCount())
}

// TestGoldenTable pins the table of one small cluster. It fails if a change
// to this package or to buraksezer/consistent would make nodes of different
// versions route differently; such a change needs a cluster-wide plan, not a
// rolling upgrade.
func TestGoldenTable(t *testing.T) {
	r := mustNew(t, DefaultConfig(), []string{"node-c", "node-a", "node-b"})
	if got, want := r.Fingerprint(), uint64(0x2107739f04b75e17); got != want {
		t.Errorf("Fingerprint = %#x, want %#x", got, want)
	}
	for p, want := range map[int]string{0: "node-c", 1: "node-b", 2: "node-a", 500: "node-b", 1020: "node-b"} {
		if got := r.OwnerOf(p); got != want {
			t.Errorf("OwnerOf(%d) = %q, want %q", p, got, want)
		}
	}
	got := loads(r)
	if want := map[string]int{"node-a": 398, "node-b": 226, "node-c": 397}; !maps.Equal(got, want) {
		t.Errorf("loads = %v, want %v", got, want)
	}
}

// TestConcurrentLookups gives the race detector a shared ring to look at.
func TestConcurrentLookups(t *testing.T) {
	r := mustNew(t, DefaultConfig(), nodes(7))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 1000 {
				id := fmt.Sprint(g, "-", i)
				if r.Owner("t", id) == "" {
					t.Error("no owner")
					return
				}
				_ = r.Members()
				_ = r.OwnerOf(i % r.PartitionCount())
			}
		})
	}
	wg.Wait()
}

// TestBuildFailureIsAnError drives the defences New keeps behind Validate:
// a config that Validate would reject makes the library panic, and assign
// turns that into ErrBuildFailed; check catches a table above its bound.
func TestBuildFailureIsAnError(t *testing.T) {
	// LoadFactor 1 with 3 members and 10 partitions: room for 9.
	owners, err := assign(Config{PartitionCount: 10, ReplicationFactor: 20, LoadFactor: 1}, []string{"a", "b", "c"})
	if !errors.Is(err, ErrBuildFailed) || owners != nil {
		t.Fatalf("assign = %v, %v; want ErrBuildFailed", owners, err)
	}
	t.Logf("error: %v", err)

	r := &Ring{cfg: Config{PartitionCount: 3}, members: []string{"a", "b"}, owners: []string{"a", "a", "a"}, maxLoad: 2}
	if err := r.check(); !errors.Is(err, ErrBuildFailed) {
		t.Fatalf("check = %v, want ErrBuildFailed", err)
	}
}
