package executor_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
)

// mapFilter is an in-memory executor.Filter that can forget everything and
// fail on demand.
type mapFilter struct {
	mu       sync.Mutex
	records  map[string]commandlog.Record
	fail     bool
	notReady bool
	calls    int
}

func newMapFilter() *mapFilter { return &mapFilter{records: make(map[string]commandlog.Record)} }

func (f *mapFilter) Lookup(id string) (commandlog.Record, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, ok := f.records[id]
	return r, ok
}

func (f *mapFilter) Record(_ context.Context, recs []commandlog.Record) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if f.fail {
		return errors.New("injected filter failure")
	}
	for _, r := range recs {
		f.records[r.CommandID] = r
	}
	return nil
}

func (f *mapFilter) forget() {
	f.mu.Lock()
	defer f.mu.Unlock()
	clear(f.records)
}

func (f *mapFilter) has(id string) bool { _, ok := f.Lookup(id); return ok }

func (f *mapFilter) Ready() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.notReady
}

// countingGets counts command-log reads.
type countingGets struct {
	commandlog.Log
	mu   sync.Mutex
	gets int
}

func (c *countingGets) Get(ctx context.Context, id string) (commandlog.Record, error) {
	c.mu.Lock()
	c.gets++
	c.mu.Unlock()
	return c.Log.Get(ctx, id)
}

func withFilter(f executor.Filter, gets *countingGets) option {
	return func(h *harness, d *executor.Deps) {
		d.Filter = f
		gets.Log = h.commands
		d.Commands = gets
	}
}

func waitFilter(t *testing.T, f *mapFilter, id string) {
	t.Helper()
	testsupport.Eventually(t, 5*time.Second, "the filter to learn "+id, func() bool { return f.has(id) })
}

func TestFilterReplacesCommandLogReads(t *testing.T) {
	f, gets := newMapFilter(), &countingGets{}
	h := newHarness(t, executor.Config{}, withFilter(f, gets))
	ref := counterRef("filtered")
	h.mustExec(t, ref, "c1", "create", "")
	first := h.mustExec(t, ref, "c2", "increment", `{"times":2}`)
	if _, err := h.exec(t, ref, "c3", "refuse", ""); err == nil {
		t.Fatal("refuse was accepted")
	}
	for _, id := range []string{"c1", "c2", "c3"} {
		waitFilter(t, f, id)
	}
	// Only the first load of the aggregate reads the command log (another
	// owner may have decided the first command just before): the commands
	// on the cached state are answered from the filter alone.
	if gets.gets != 1 {
		t.Errorf("the command log was read %d times with a filter in place, want 1 (the cold load)", gets.gets)
	}
	// Duplicates are answered from the filter's records: the accepted one
	// with its events, the rejected one with its rejection.
	h.x.Invalidate(func(model.Ref) bool { return true })
	again := h.mustExec(t, ref, "c2", "increment", `{"times":2}`)
	if !again.Duplicate || !reflect.DeepEqual(again.Events, first.Events) {
		t.Errorf("duplicate from the filter: %+v", again)
	}
	_, err := h.exec(t, ref, "c3", "refuse", "")
	var rej *model.Rejection
	if !errors.As(err, &rej) || !errors.Is(err, executor.ErrRecalled) {
		t.Errorf("rejected duplicate: %v, want the recorded rejection marked recalled", err)
	}
	h.checkLastSeq(t, ref, 3, "after duplicates")
}

func TestHistoryRecognisesRetriesTheFilterLost(t *testing.T) {
	f, gets := newMapFilter(), &countingGets{}
	h := newHarness(t, executor.Config{}, withFilter(f, gets))
	ref := h.newCounter(t, "amnesia")
	var results []executor.Result
	for i := range 5 {
		results = append(results, h.mustExec(t, ref, fmt.Sprintf("inc-%d", i), "increment", `{"times":1}`))
	}
	waitFilter(t, f, "inc-4")
	f.forget() // every node restarted: the filter is empty
	// Both with the state cached and after a reload from the log, an
	// earlier command (not only the latest) is recognised from history.
	for _, reload := range []bool{false, true} {
		if reload {
			h.idle(t)
			h.x.Invalidate(func(model.Ref) bool { return true })
		}
		res := h.mustExec(t, ref, "inc-1", "increment", `{"times":1}`)
		if !res.Duplicate || !reflect.DeepEqual(res.Events, results[1].Events) {
			t.Errorf("reload=%v: retry of inc-1 after the filter forgot it: %+v", reload, res)
		}
	}
	h.checkLastSeq(t, ref, 6, "a retry ran again")
}

func TestFilterFailureDoesNotFailCommands(t *testing.T) {
	f, gets := newMapFilter(), &countingGets{}
	f.fail = true
	h := newHarness(t, executor.Config{}, withFilter(f, gets))
	ref := h.newCounter(t, "nofilter")
	testsupport.Eventually(t, 5*time.Second, "the failed filter write to be counted", func() bool { return h.x.Stats().FilterFailures > 0 })
	// The retry is still recognised from history.
	if res := h.mustExec(t, ref, "create", "create", ""); !res.Duplicate {
		t.Errorf("retry with a failing filter: %+v", res)
	}
}

func TestFilterNotReadyFallsBackToTheCommandLog(t *testing.T) {
	f, gets := newMapFilter(), &countingGets{}
	f.notReady = true
	h := newHarness(t, executor.Config{}, withFilter(f, gets))
	ref := h.newCounter(t, "forming")
	if _, err := h.exec(t, ref, "no", "refuse", ""); err == nil {
		t.Fatal("refuse was accepted")
	}
	if gets.gets != 2 {
		t.Errorf("command log read %d times while the filter forms, want 2", gets.gets)
	}
	h.x.Invalidate(func(model.Ref) bool { return true })
	if _, err := h.exec(t, ref, "no", "refuse", ""); !errors.Is(err, executor.ErrRecalled) {
		t.Errorf("rejected retry while the filter forms: %v, want the recorded rejection", err)
	}
	f.mu.Lock()
	calls := f.calls
	f.mu.Unlock()
	if calls != 0 {
		t.Errorf("a filter that is not ready was fed %d times", calls)
	}
}
