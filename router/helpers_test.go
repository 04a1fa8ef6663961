package router

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

var seedFlag = flag.Uint64("router.seed", 0, "seed for randomised router tests; 0 picks one from the clock")

// newRand returns a seeded generator and logs the seed so that a failure can
// be replayed with -router.seed.
func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay with -router.seed=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// nodes returns n ids "node-00", "node-01", … .
func nodes(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("node-%02d", i)
	}
	return ids
}

func mustNew(t testing.TB, cfg Config, members []string) *Ring {
	t.Helper()
	r, err := New(cfg, members)
	if err != nil {
		t.Fatalf("New(%+v, %d members): %v", cfg, len(members), err)
	}
	return r
}

func loads(r *Ring) map[string]int {
	l := make(map[string]int)
	for _, m := range r.Members() {
		l[m] = 0
	}
	for _, owner := range r.Partitions() {
		l[owner]++
	}
	return l
}

func mustMoved(t testing.TB, prev, next *Ring) []int {
	t.Helper()
	moved, err := Moved(prev, next)
	if err != nil {
		t.Fatalf("Moved: %v", err)
	}
	return moved
}
