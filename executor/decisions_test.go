package executor_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/storage/bolt"
)

// openBolt opens an embedded store in a temporary directory, closed after
// the executor (cleanups run last-registered first).
func openBolt(t *testing.T) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "concursus.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// hookDecisions wraps a DecisionWriter; after, if set, rewrites the results.
type hookDecisions struct {
	commandlog.DecisionWriter
	mu    sync.Mutex
	calls int
	after func(errs []error) []error
}

func (h *hookDecisions) WriteDecisions(ctx context.Context, ds []commandlog.Decision) []error {
	errs := h.DecisionWriter.WriteDecisions(ctx, ds)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	if h.after != nil {
		errs = h.after(errs)
	}
	return errs
}

// With a DecisionWriter (the embedded store) events and records are
// written together: the same ordering, idempotency and conflict behaviour.
func TestDecisionWriterPath(t *testing.T) {
	db := openBolt(t)
	dw := &hookDecisions{DecisionWriter: db}
	h := newHarness(t, executor.Config{}, withStores(db.EventLog(), db.CommandLog(), dw))

	const aggregates, writers, perWriter = 20, 4, 10
	var wg sync.WaitGroup
	for a := range aggregates {
		ref := counterRef(fmt.Sprintf("bolt-%d", a))
		wg.Go(func() {
			h.mustExec(t, ref, ref.ID, "create", "")
			var inner sync.WaitGroup
			for w := range writers {
				inner.Go(func() {
					for i := range perWriter {
						h.mustExec(t, ref, fmt.Sprintf("%s-%d-%d", ref.ID, w, i), "increment", "")
					}
				})
			}
			inner.Wait()
		})
	}
	wg.Wait()
	for a := range aggregates {
		ref := counterRef(fmt.Sprintf("bolt-%d", a))
		if n := h.checkCounterHistory(t, ref); n != writers*perWriter {
			t.Fatalf("%s: %d increments", ref, n)
		}
		if _, ok := h.recorded(t, fmt.Sprintf("%s-0-0", ref.ID)); !ok {
			t.Fatalf("%s: a command was not recorded", ref)
		}
	}
	if got := h.store.calls(); got != 0 {
		t.Errorf("%d event-log Append calls; the DecisionWriter should take every write", got)
	}
	s := h.x.Stats()
	if want := int64(aggregates * (1 + writers*perWriter)); s.Appended != want || s.Accepted != want {
		t.Errorf("stats %+v: want %d appended and accepted", s, want)
	}

	// A rejection is recorded through the DecisionWriter too.
	ref := counterRef("bolt-0")
	if _, err := h.exec(t, ref, "no", "refuse", ""); err == nil {
		t.Fatal("refuse accepted")
	}
	_, err := h.exec(t, ref, "no", "refuse", "")
	var rej *model.Rejection
	if !errors.As(err, &rej) || h.x.Stats().Duplicates != 1 {
		t.Errorf("repeated rejection: %v, stats %+v", err, h.x.Stats())
	}

	// A foreign append: conflict, reload, decide again.
	h.idle(t)
	h.appendBehindBack(t, ref, writers*perWriter)
	res, err := h.exec(t, ref, "after-foreign", "increment", "")
	if err != nil || res.Sequence != uint64(writers*perWriter+3) {
		t.Fatalf("after a foreign append: %+v %v", res, err)
	}
	h.checkCounterHistory(t, ref)
}

// A transaction that committed but reported failure: the record went in
// with the events, so the retry gets the recorded outcome. (Compare
// TestRetryAfterAppendOfUnknownOutcomeRunsOnce, the separate-writes path.)
func TestDecisionWriterUnknownOutcomeRetryIsDuplicate(t *testing.T) {
	db := openBolt(t)
	dw := &hookDecisions{DecisionWriter: db}
	h := newHarness(t, executor.Config{}, withStores(db.EventLog(), db.CommandLog(), dw))
	ref := h.newCounter(t, "bolt-landed")
	dw.mu.Lock()
	dw.after = func(errs []error) []error {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = fmt.Errorf("%w: timed out after commit", eventlog.ErrUnavailable)
			}
		}
		return errs
	}
	dw.mu.Unlock()
	if _, err := h.exec(t, ref, "inc", "increment", ""); !errors.Is(err, executor.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	dw.mu.Lock()
	dw.after = nil
	dw.mu.Unlock()
	res, err := h.exec(t, ref, "inc", "increment", "")
	if err != nil || !res.Duplicate || res.Sequence != 2 {
		t.Fatalf("retry: %+v %v, want duplicate at sequence 2", res, err)
	}
	h.checkLastSeq(t, ref, 2, "")
}

// A DecisionWriter that returns the wrong number of results fails the
// whole batch as unavailable rather than guessing.
func TestDecisionWriterShortResultIsUnavailable(t *testing.T) {
	db := openBolt(t)
	dw := &hookDecisions{DecisionWriter: db, after: func([]error) []error { return nil }}
	h := newHarness(t, executor.Config{}, withStores(db.EventLog(), db.CommandLog(), dw))
	if _, err := h.exec(t, counterRef("short"), "c", "create", ""); !errors.Is(err, executor.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
}

// The same for an event log that returns the wrong number of results.
func TestAppendShortResultIsUnavailable(t *testing.T) {
	h := newHarness(t, executor.Config{})
	h.store.setHook(func(context.Context, []eventlog.Append) []error { return []error{} })
	if _, err := h.exec(t, counterRef("short"), "c", "create", ""); !errors.Is(err, executor.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	if _, ok := h.recorded(t, "c"); ok {
		t.Error("recorded")
	}
}
