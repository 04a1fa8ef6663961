package executor_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/model"
)

// sameShard returns two distinct counter refs that share a cache shard.
func sameShard(t *testing.T, x *executor.Executor, prefix string) (model.Ref, model.Ref) {
	t.Helper()
	first := map[int]model.Ref{}
	for i := range 10 * executor.NumShards {
		ref := counterRef(fmt.Sprintf("%s-%d", prefix, i))
		s := x.ShardIndex(ref)
		if other, ok := first[s]; ok {
			return other, ref
		}
		first[s] = ref
	}
	t.Fatal("no two refs in one shard")
	return model.Ref{}, model.Ref{}
}

func TestCacheIsBoundedAndEvictedStateReloads(t *testing.T) {
	const maxCached, touched = 64, 500
	h := newHarness(t, executor.Config{MaxCached: maxCached})
	perShard := (maxCached + executor.NumShards - 1) / executor.NumShards
	if got := h.x.ShardCapacity(); got != perShard {
		t.Fatalf("shard capacity %d, want ceil(%d/%d) = %d", got, maxCached, executor.NumShards, perShard)
	}
	bound := int64(perShard * executor.NumShards)

	// Touch many aggregates from a few goroutines.
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < touched; i += 8 {
				ref := counterRef(fmt.Sprintf("many-%d", i))
				h.mustExec(t, ref, ref.ID, "create", "")
				h.mustExec(t, ref, ref.ID+"-inc", "increment", "")
			}
		})
	}
	wg.Wait()
	h.idle(t)
	s := h.x.Stats()
	if s.Cached > bound {
		t.Errorf("%d aggregates cached once idle, bound %d", s.Cached, bound)
	}
	if s.Loads < touched {
		t.Errorf("%d loads for %d new aggregates", s.Loads, touched)
	}

	// Deterministic eviction: two aggregates in one shard of capacity 1.
	a, b := sameShard(t, h.x, "pair")
	h.mustExec(t, a, "a-create", "create", "")
	h.mustExec(t, a, "a-inc-1", "increment", "")
	h.idle(t)
	if !h.x.HasCachedState(a) {
		t.Fatalf("%s not cached right after use", a)
	}
	h.mustExec(t, b, "b-create", "create", "")
	h.idle(t)
	if h.x.HasCachedState(a) || !h.x.HasCachedState(b) {
		t.Fatalf("after using %s, %s cached=%v, %s cached=%v; want only the latter (capacity %d)",
			b, a, h.x.HasCachedState(a), b, h.x.HasCachedState(b), perShard)
	}

	loads := h.x.Stats().Loads
	res := h.mustExec(t, a, "a-inc-2", "increment", "")
	if got := h.x.Stats().Loads; got != loads+1 {
		t.Errorf("loads %d → %d using an evicted aggregate, want one reload", loads, got)
	}
	if res.Sequence != 3 || res.Events[0].Sequence != 3 {
		t.Fatalf("after reload: %+v, want sequence 3", res)
	}
	if p, _, _ := h.counter.incremented.Decode(&res.Events[0]); p.Prev != 1 {
		t.Errorf("after reload the command saw N=%d, want 1", p.Prev)
	}
	// Now it is cached: no further load.
	h.idle(t)
	loads = h.x.Stats().Loads
	h.mustExec(t, a, "a-inc-3", "increment", "")
	if got := h.x.Stats().Loads; got != loads {
		t.Errorf("a cached aggregate was loaded again (%d → %d)", loads, got)
	}
	h.checkCounterHistory(t, a)
	if c, _ := h.state(t, a); c.N != 3 || c.Mismatch != 0 {
		t.Errorf("state %+v, want N=3", c)
	}
}

func TestInvalidateDropsIdleState(t *testing.T) {
	h := newHarness(t, executor.Config{})
	a, other := counterRef("inv-a"), counterRef("inv-b")
	h.mustExec(t, a, "a-create", "create", "")
	h.mustExec(t, other, "b-create", "create", "")
	h.idle(t)
	cached := h.x.Stats().Cached

	if n := h.x.Invalidate(func(r model.Ref) bool { return r == a }); n != 1 {
		t.Fatalf("Invalidate dropped %d aggregates, want 1", n)
	}
	if h.x.HasCachedState(a) || !h.x.HasCachedState(other) {
		t.Fatal("Invalidate dropped the wrong state")
	}
	if got := h.x.Stats().Cached; got != cached-1 {
		t.Errorf("cached %d → %d", cached, got)
	}
	loads := h.x.Stats().Loads
	res := h.mustExec(t, a, "a-inc", "increment", "")
	if got := h.x.Stats().Loads; got != loads+1 {
		t.Errorf("loads %d → %d after Invalidate, want one reload", loads, got)
	}
	if res.Sequence != 2 {
		t.Errorf("sequence %d after reload, want 2", res.Sequence)
	}
	h.idle(t)
	if n := h.x.Invalidate(func(r model.Ref) bool { return r.Type == counterType }); n != 2 {
		t.Errorf("Invalidate by type dropped %d, want 2", n)
	}
	if got := h.x.Stats().Cached; got != 0 {
		t.Errorf("%d cached after dropping everything", got)
	}
}

func TestInvalidateRunningAggregateReloadsBeforeNextCommand(t *testing.T) {
	h := newHarness(t, executor.Config{})
	a := h.newCounter(t, "inv-running")
	g := h.blockStore(t)

	first := h.stuckIncrement(t, g, a, "inc-1")
	second := h.submit(ctxT(t), a, "inc-2", "increment")
	if n := h.x.Invalidate(func(r model.Ref) bool { return r == a }); n != 1 {
		t.Fatalf("Invalidate counted %d, want 1 (running aggregates count)", n)
	}
	loads := h.x.Stats().Loads
	h.unblockStore(g)
	for _, ch := range []<-chan outcome{first, second} {
		if o := await(t, ch); o.err != nil {
			t.Fatal(o.err)
		}
	}
	if got := h.x.Stats().Loads; got != loads+1 {
		t.Errorf("loads %d → %d: the queued command should have reloaded once", loads, got)
	}
	if n := h.checkCounterHistory(t, a); n != 2 {
		t.Errorf("%d increments, want 2", n)
	}
}
