package executor_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
)

// One aggregate, many concurrent writers: every command runs alone against
// the state left by the previous one. An interleaving would show as two
// incremented events with the same Prev; a lost update as a gap.
func TestOneAggregateCommandsAreSequential(t *testing.T) {
	const goroutines, perGoroutine = 64, 50
	h := newHarness(t, executor.Config{})
	ref := h.newCounter(t, "hot")

	var accepted atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for i := range perGoroutine {
				res, err := h.exec(t, ref, fmt.Sprintf("inc-%d-%d", g, i), "increment", "")
				if err != nil {
					errs <- fmt.Errorf("goroutine %d command %d: %w", g, i, err)
					return
				}
				if len(res.Events) != 1 || res.Events[0].Sequence != res.Sequence {
					errs <- fmt.Errorf("goroutine %d command %d: result %+v", g, i, res)
					return
				}
				accepted.Add(1)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	n := int(accepted.Load())
	if n != goroutines*perGoroutine {
		t.Errorf("accepted %d of %d commands", n, goroutines*perGoroutine)
	}
	h.checkLastSeq(t, ref, uint64(1+n), "each accepted command wrote one event after create")
	if incs := h.checkCounterHistory(t, ref); incs != n {
		t.Errorf("%d incremented events for %d accepted commands", incs, n)
	}
	c, qr := h.state(t, ref)
	if c.N != n || c.Mismatch != 0 || qr.Sequence != uint64(1+n) {
		t.Errorf("state %+v at sequence %d, want N=%d, no mismatch, sequence %d", c, qr.Sequence, n, 1+n)
	}
	for g := range goroutines {
		for i := range perGoroutine {
			id := fmt.Sprintf("inc-%d-%d", g, i)
			rec, ok := h.recorded(t, id)
			if !ok {
				t.Fatalf("no command-log record for %s", id)
			}
			if rec.Ref != ref || rec.Command != "increment" || rec.FirstSequence != rec.LastSequence || rec.FirstSequence < 2 {
				t.Fatalf("record of %s: %+v", id, rec)
			}
		}
	}
	h.idle(t) // a worker frees its slot after answering
	if s := h.x.Stats(); s.Accepted != int64(n+1) || s.InFlight != 0 {
		t.Errorf("stats %+v, want %d accepted and nothing in flight", s, n+1)
	}
}

// Many aggregates at once, several writers each: every history is right,
// and the appends went out in batches.
func TestManyAggregatesInParallel(t *testing.T) {
	const aggregates, writers, perWriter = 100, 4, 10
	pub := newRecordingPublisher()
	h := newHarness(t, executor.Config{}, withPublisher(pub))

	var wg sync.WaitGroup
	errs := make(chan error, aggregates*writers)
	for a := range aggregates {
		ref := counterRef(fmt.Sprintf("agg-%03d", a))
		wg.Go(func() {
			if _, err := h.exec(t, ref, ref.ID+"-create", "create", ""); err != nil {
				errs <- err
				return
			}
			var inner sync.WaitGroup
			for w := range writers {
				inner.Go(func() {
					for i := range perWriter {
						if _, err := h.exec(t, ref, fmt.Sprintf("%s-%d-%d", ref.ID, w, i), "increment", `{"times":2}`); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			inner.Wait()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	want := writers * perWriter * 2
	for a := range aggregates {
		ref := counterRef(fmt.Sprintf("agg-%03d", a))
		if got := h.checkCounterHistory(t, ref); got != want {
			t.Fatalf("%s: %d increments, want %d", ref, got, want)
		}
	}
	s := h.x.Stats()
	cmds := int64(aggregates * (1 + writers*perWriter))
	if s.Accepted != cmds || s.Appended != cmds {
		t.Errorf("stats %+v: want %d accepted and appended", s, cmds)
	}
	sizes := h.store.batchSizes()
	total := 0
	for _, n := range sizes {
		total += n
	}
	if int64(len(sizes)) != s.Batches || int64(total) != s.Appended {
		t.Errorf("store saw %d calls carrying %d appends; stats say %d batches, %d appended", len(sizes), total, s.Batches, s.Appended)
	}
	t.Logf("%d appends in %d batches (largest %d)", total, len(sizes), slices.Max(sizes))
}

// Group commit, deterministically: while one batch is held in the store,
// other aggregates' appends queue up, and the next batch carries them all.
func TestAppendsAreBatchedWhileStoreIsBusy(t *testing.T) {
	const others = 10
	h := newHarness(t, executor.Config{MaxBatch: 64})
	g := h.blockStore(t)

	first := h.submit(ctxT(t), counterRef("first"), "first", "create")
	g.waitEntered(t, 1)
	pending := h.queueCreates(t, "other", others)
	h.unblockStore(g)

	if o := await(t, first); o.err != nil {
		t.Fatal(o.err)
	}
	for _, ch := range pending {
		if o := await(t, ch); o.err != nil || o.res.Sequence != 1 {
			t.Fatalf("outcome %+v", o)
		}
	}
	if sizes := h.store.batchSizes(); !slices.Equal(sizes, []int{1, others}) {
		t.Fatalf("batch sizes %v, want [1 %d]", sizes, others)
	}
	if s := h.x.Stats(); s.Batches != 2 || s.Appended != others+1 {
		t.Errorf("stats %+v: want 2 batches, %d appended", s, others+1)
	}
}

// MaxBatch caps a batch; what is left goes in the next one.
func TestMaxBatchCapsBatches(t *testing.T) {
	const others, maxBatch = 7, 3
	h := newHarness(t, executor.Config{MaxBatch: maxBatch, Flushers: 3})
	// The flush queue holds MaxBatch*Flushers items, enough for all others.
	g := h.blockStore(t)

	first := h.submit(ctxT(t), counterRef("first"), "first", "create")
	g.waitEntered(t, 1)
	// The other two flushers are idle, so block them too: wait for them at
	// the gate, then queue the rest behind all three.
	second := h.submit(ctxT(t), counterRef("second"), "second", "create")
	g.waitEntered(t, 1)
	third := h.submit(ctxT(t), counterRef("third"), "third", "create")
	g.waitEntered(t, 1)
	pending := h.queueCreates(t, "other", others)
	h.unblockStore(g)
	for _, ch := range append(pending, first, second, third) {
		if o := await(t, ch); o.err != nil {
			t.Fatal(o.err)
		}
	}
	sizes := h.store.batchSizes()
	total := 0
	for _, n := range sizes {
		if n > maxBatch {
			t.Errorf("batch of %d exceeds MaxBatch %d (sizes %v)", n, maxBatch, sizes)
		}
		total += n
	}
	if total != others+3 {
		t.Errorf("batch sizes %v carry %d appends, want %d", sizes, total, others+3)
	}
}

// Entries of one batch are independent: one aggregate's conflict does not
// fail the others written with it.
func TestConflictInBatchFailsOnlyItsEntry(t *testing.T) {
	h := newHarness(t, executor.Config{})
	bad := counterRef("bad")
	h.store.setHook(func(ctx context.Context, batch []eventlog.Append) []error {
		if !slices.ContainsFunc(batch, func(a eventlog.Append) bool { return a.Ref == bad }) {
			return nil
		}
		good := make([]eventlog.Append, 0, len(batch))
		for _, a := range batch {
			if a.Ref != bad {
				good = append(good, a)
			}
		}
		res := h.events.Append(ctx, good)
		errs := make([]error, len(batch))
		k := 0
		for i, a := range batch {
			if a.Ref == bad {
				errs[i] = eventlog.ConflictError(a.Ref, a.Expected, a.Expected+1)
				continue
			}
			errs[i] = res[k]
			k++
		}
		return errs
	})
	g := newGate(t)
	// Hold the first batch so the bad and good appends share the second.
	hold := true
	h.store.mu.Lock()
	inner := h.store.hook
	h.store.hook = func(ctx context.Context, batch []eventlog.Append) []error {
		if hold {
			hold = false
			if errs := g.hook(ctx, batch); errs != nil {
				return errs
			}
		}
		return inner(ctx, batch)
	}
	h.store.mu.Unlock()

	first := h.submit(ctxT(t), counterRef("first"), "first", "create")
	g.waitEntered(t, 1)
	badCh := h.submit(ctxT(t), bad, "bad", "create")
	goodCh := h.submit(ctxT(t), counterRef("good"), "good", "create")
	testsupport.Eventually(t, testDeadline, "two queued appends", func() bool { return h.x.QueuedWrites() == 2 })
	g.open()

	if o := await(t, first); o.err != nil {
		t.Fatal(o.err)
	}
	if o := await(t, goodCh); o.err != nil || o.res.Sequence != 1 {
		t.Fatalf("good: %+v", o)
	}
	if o := await(t, badCh); !errors.Is(o.err, executor.ErrConflict) {
		t.Fatalf("bad: %+v, want ErrConflict", o)
	}
	if _, ok := h.recorded(t, "bad"); ok {
		t.Error("a conflicted command was recorded")
	}
	if _, ok := h.recorded(t, "good"); !ok {
		t.Error("the good command was not recorded")
	}
}

// The publisher gets every aggregate's events once, in sequence order, and
// each call carries one aggregate's events.
func TestPublisherSeesEventsInSequenceOrder(t *testing.T) {
	const aggregates, perAggregate = 40, 25
	pub := newRecordingPublisher()
	h := newHarness(t, executor.Config{}, withPublisher(pub))
	refs := make([]model.Ref, aggregates)
	var wg sync.WaitGroup
	for a := range refs {
		refs[a] = counterRef(fmt.Sprintf("pub-%d", a))
		ref := refs[a]
		wg.Go(func() {
			h.mustExec(t, ref, ref.ID+"-create", "create", "")
			var inner sync.WaitGroup
			for w := range 3 {
				inner.Go(func() {
					for i := range perAggregate {
						h.mustExec(t, ref, fmt.Sprintf("%s-%d-%d", ref.ID, w, i), "increment", `{"times":2}`)
					}
				})
			}
			inner.Wait()
			// A rejection and a command with no events publish nothing.
			if _, err := h.exec(t, ref, ref.ID+"-refuse", "refuse", ""); err == nil {
				t.Error("refuse was accepted")
			}
			h.mustExec(t, ref, ref.ID+"-noop", "noop", "")
		})
	}
	wg.Wait()

	pub.mu.Lock()
	defer pub.mu.Unlock()
	if pub.mixed != 0 {
		t.Errorf("%d events published in a call with another aggregate's events", pub.mixed)
	}
	if want := aggregates * (1 + 3*perAggregate); pub.calls != want {
		t.Errorf("%d Publish calls, want %d (one per accepted command with events)", pub.calls, want)
	}
	for _, ref := range refs {
		got := pub.byRef[ref]
		hist := h.history(t, ref)
		if len(got) != len(hist) {
			t.Fatalf("%s: published %d events, log has %d", ref, len(got), len(hist))
		}
		for i := range got {
			if got[i].Sequence != uint64(i+1) || got[i].EventID != hist[i].EventID {
				t.Fatalf("%s: published #%d is seq %d id %s; log has seq %d id %s",
					ref, i, got[i].Sequence, got[i].EventID, hist[i].Sequence, hist[i].EventID)
			}
		}
	}
}
