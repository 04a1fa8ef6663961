package executor_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/storage/memory"
)

// appendBehindBack appends one incremented event to ref as another writer
// would (the executor does not see it).
func (h *harness) appendBehindBack(t *testing.T, ref model.Ref, prev int) {
	t.Helper()
	seq := h.lastSeq(t, ref)
	payload := fmt.Appendf(nil, `{"prev":%d}`, prev)
	ev := model.Event{
		AggregateType: ref.Type, AggregateID: ref.ID, Sequence: seq + 1,
		Timestamp: epoch, StreamID: model.DefaultStream, ProcessingTime: epoch,
		ProcessingID: "other-writer", Name: "incremented", Payload: payload,
		EventID: fmt.Sprintf("other-%s-%d", ref.ID, seq+1),
	}
	errs := h.events.Append(context.Background(), []eventlog.Append{{Ref: ref, Expected: seq, Events: []model.Event{ev}}})
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
}

// Another writer appended behind the executor's back: the next command
// conflicts, reloads, decides again on the new state and succeeds.
func TestConflictReloadsAndDecidesAgain(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := h.newCounter(t, "conflict")
	h.mustExec(t, ref, "inc-1", "increment", "")
	h.idle(t)
	if !h.x.HasCachedState(ref) {
		t.Fatal("state not cached")
	}
	h.appendBehindBack(t, ref, 1) // log: created, inc(0), inc(1)

	before := h.x.Stats()
	calls := h.store.calls()
	res, err := h.exec(t, ref, "inc-2", "increment", "")
	if err != nil {
		t.Fatalf("command after a foreign append: %v", err)
	}
	if res.Sequence != 4 || res.Events[0].Sequence != 4 {
		t.Fatalf("result %+v, want sequence 4", res)
	}
	if p, _, _ := h.counter.incremented.Decode(&res.Events[0]); p.Prev != 2 {
		t.Errorf("re-decided with N=%d, want 2 (the foreign event counted)", p.Prev)
	}
	after := h.x.Stats()
	if got := h.store.calls() - calls; got != 2 {
		t.Errorf("%d appends, want 2 (conflict, then success)", got)
	}
	if after.Loads != before.Loads+1 {
		t.Errorf("loads %d → %d, want one reload after the conflict", before.Loads, after.Loads)
	}
	if after.Accepted != before.Accepted+1 {
		t.Errorf("stats %+v → %+v: a resolved conflict is one accepted command", before, after)
	}
	if n := h.checkCounterHistory(t, ref); n != 3 {
		t.Errorf("%d increments, want 3", n)
	}
	rec, ok := h.recorded(t, "inc-2")
	if !ok || rec.FirstSequence != 4 || rec.LastSequence != 4 {
		t.Errorf("record %+v (found %v), want sequence 4..4", rec, ok)
	}
	if c, _ := h.state(t, ref); c.N != 3 || c.Mismatch != 0 {
		t.Errorf("state %+v, want N=3", c)
	}
}

// A store that always reports a conflict: one reload and retry, then
// ErrConflict; nothing is recorded.
func TestPersistentConflictIsErrConflictAfterOneRetry(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := h.newCounter(t, "always-conflict")
	h.store.setHook(func(_ context.Context, batch []eventlog.Append) []error {
		return errsFor(batch, func(a *eventlog.Append) error {
			return eventlog.ConflictError(a.Ref, a.Expected, a.Expected+1)
		})
	})
	calls, loads := h.store.calls(), h.x.Stats().Loads
	_, err := h.exec(t, ref, "inc", "increment", "")
	if !errors.Is(err, executor.ErrConflict) {
		t.Fatalf("got %v, want ErrConflict", err)
	}
	if got := h.store.calls() - calls; got != 2 {
		t.Errorf("%d appends, want exactly 2 (one retry)", got)
	}
	s := h.x.Stats()
	if s.Conflicts != 1 || s.Loads != loads+1 {
		t.Errorf("stats %+v: want 1 conflict and one reload", s)
	}
	if _, ok := h.recorded(t, "inc"); ok {
		t.Error("a conflicted command was recorded")
	}
	h.checkLastSeq(t, ref, 1, "")
	// The state was dropped: after the store heals, the command reloads.
	h.store.setHook(nil)
	loads = h.x.Stats().Loads
	if res, err := h.exec(t, ref, "inc", "increment", ""); err != nil || res.Sequence != 2 {
		t.Fatalf("retry: %+v %v", res, err)
	}
	if got := h.x.Stats().Loads; got != loads+1 {
		t.Errorf("loads %d → %d, want a reload", loads, got)
	}
}

// A failing store: ErrUnavailable, the state is dropped and reloaded, and
// nothing of the failed command is applied or recorded.
func TestStoreFailureDropsStateAndWritesNothing(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := h.newCounter(t, "flaky")
	h.mustExec(t, ref, "inc-1", "increment", "")
	h.store.setHook(func(_ context.Context, batch []eventlog.Append) []error {
		return errsFor(batch, func(a *eventlog.Append) error {
			return fmt.Errorf("%w: injected failure for %s", eventlog.ErrUnavailable, a.Ref)
		})
	})
	_, err := h.exec(t, ref, "inc-2", "increment", `{"times":3}`)
	if !errors.Is(err, executor.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	h.checkLastSeq(t, ref, 2, "after a failed append")
	if _, ok := h.recorded(t, "inc-2"); ok {
		t.Error("the failed command was recorded")
	}
	h.idle(t)
	if h.x.HasCachedState(ref) {
		t.Error("state still cached after a write of unknown outcome")
	}
	h.store.setHook(nil)
	s := h.x.Stats()
	if s.Unavailable != 1 {
		t.Errorf("unavailable %d, want 1", s.Unavailable)
	}

	res, err := h.exec(t, ref, "inc-3", "increment", "")
	if err != nil {
		t.Fatal(err)
	}
	if got := h.x.Stats().Loads; got != s.Loads+1 {
		t.Errorf("loads %d → %d, want one reload", s.Loads, got)
	}
	if res.Sequence != 3 {
		t.Errorf("sequence %d, want 3 (the failed command left nothing)", res.Sequence)
	}
	if p, _, _ := h.counter.incremented.Decode(&res.Events[0]); p.Prev != 1 {
		t.Errorf("next command saw N=%d, want 1", p.Prev)
	}
	if n := h.checkCounterHistory(t, ref); n != 2 {
		t.Errorf("%d increments, want 2", n)
	}
}

// A store that cannot be read: the command is ErrUnavailable and nothing
// is decided.
func TestLoadFailureIsUnavailable(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := h.newCounter(t, "unreadable")
	h.idle(t)
	h.x.Invalidate(func(model.Ref) bool { return true })
	h.store.Log = unreadable{h.events}
	_, err := h.exec(t, ref, "inc", "increment", "")
	if !errors.Is(err, executor.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	for _, q := range []executor.Query{{Ref: ref}, {Ref: ref, AsOf: epoch}} {
		if _, err := h.x.Ask(ctxT(t), q); !errors.Is(err, executor.ErrUnavailable) {
			t.Errorf("query %+v: %v, want ErrUnavailable", q, err)
		}
	}
	// A duplicate's events cannot be read back either.
	if _, err := h.exec(t, ref, "create", "create", ""); !errors.Is(err, executor.ErrUnavailable) {
		t.Errorf("duplicate: %v, want ErrUnavailable", err)
	}
	if _, ok := h.recorded(t, "inc"); ok {
		t.Error("recorded a command that never ran")
	}
}

type unreadable struct{ eventlog.Log }

func (unreadable) ReadPage(context.Context, model.Ref, uint64, int) ([]model.Event, uint64, error) {
	return nil, 0, fmt.Errorf("%w: injected read failure", eventlog.ErrUnavailable)
}

// A history the type cannot fold (an event it does not define) fails the
// load with ErrUnavailable instead of deciding on a broken state.
func TestCorruptHistoryIsUnavailable(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := counterRef("corrupt")
	ev := model.Event{
		AggregateType: ref.Type, AggregateID: ref.ID, Sequence: 1, Timestamp: epoch,
		StreamID: model.DefaultStream, ProcessingTime: epoch, Name: "mystery", Payload: []byte(`{}`), EventID: "m1",
	}
	if errs := h.events.Append(context.Background(), []eventlog.Append{{Ref: ref, Events: []model.Event{ev}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	_, err := h.exec(t, ref, "inc", "increment", "")
	if !errors.Is(err, executor.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	h.checkLastSeq(t, ref, 1, "")
}

// The command log failing after the events are durable: the command stands
// (its events are in the log and it is answered as accepted).
func TestCommandLogPutFailureKeepsTheCommand(t *testing.T) {
	for _, insert := range []bool{false, true} {
		t.Run(map[bool]string{false: "put", true: "insert"}[insert], func(t *testing.T) {
			cl := &flakyCommands{}
			opt := withFlakyCommands(cl)
			if insert {
				opt = withFlakyInserter(cl)
			}
			h := newHarness(t, executor.Config{}, opt)
			ref := h.newCounter(t, "put-fails")
			cl.failPut.Store(true)
			res, err := h.exec(t, ref, "inc", "increment", "")
			if err != nil || res.Sequence != 2 {
				t.Fatalf("got %+v %v, want accepted at sequence 2", res, err)
			}
			// The record is written again once the command log takes it.
			time.Sleep(300 * time.Millisecond) // a few of the mender's attempts fail meanwhile
			if _, err := h.commands.Get(context.Background(), "inc"); !errors.Is(err, commandlog.ErrNotFound) {
				t.Fatalf("record of inc while the command log fails: %v, want not found", err)
			}
			cl.failPut.Store(false)
			testsupport.Eventually(t, 10*time.Second, "the record of inc mended", func() bool {
				rec, err := h.commands.Get(context.Background(), "inc")
				return err == nil && rec.Outcome == commandlog.Accepted && rec.FirstSequence == 2 && rec.LastSequence == 2
			})
			if st := h.x.Stats(); st.RecordsMended != 1 || st.RecordClashes != 0 {
				t.Errorf("stats %+v: want 1 record mended, no clash", st)
			}
			h.checkLastSeq(t, ref, 2, "")
			if n := h.checkCounterHistory(t, ref); n != 1 {
				t.Errorf("%d increments, want 1", n)
			}
		})
	}
}

// Closing while the command log still fails: the mender makes its last
// attempt and gives up (the record is left to the history), and Close
// returns.
func TestCloseGivesUpOnUnwrittenRecords(t *testing.T) {
	h, cl, ref := newFlakyHarness(t, "close-unmended")
	cl.failPut.Store(true)
	if res, err := h.exec(t, ref, "inc", "increment", ""); err != nil || res.Sequence != 2 {
		t.Fatalf("got %+v %v, want accepted at sequence 2", res, err)
	}
	if err := h.x.Close(); err != nil {
		t.Fatal(err)
	}
	if st := h.x.Stats(); st.RecordsMended != 0 {
		t.Errorf("stats %+v: nothing could be mended", st)
	}
	if _, err := h.commands.Get(context.Background(), "inc"); !errors.Is(err, commandlog.ErrNotFound) {
		t.Errorf("record of inc: %v, want not found", err)
	}
	h.checkLastSeq(t, ref, 2, "")
}

// stuckGets is a command log whose Get, once stuck is set, waits for its
// context to end.
type stuckGets struct {
	commandlog.Log
	stuck   atomic.Bool
	entered chan struct{}
}

func (s *stuckGets) Get(ctx context.Context, id string) (commandlog.Record, error) {
	if s.stuck.Load() {
		s.entered <- struct{}{}
		<-ctx.Done()
		return commandlog.Record{}, fmt.Errorf("%w: %w", commandlog.ErrUnavailable, ctx.Err())
	}
	return s.Log.Get(ctx, id)
}

// Close does not wait out the record repair's reads: a command log that
// hangs (StoreTimeout an hour here) is let go of at once.
func TestCloseStopsTheRepairsReads(t *testing.T) {
	commands := &stuckGets{Log: memory.NewCommandLog(), entered: make(chan struct{}, 1)}
	h := newHarness(t, executor.Config{StoreTimeout: time.Hour}, withStores(memory.NewEventLog(), commands, nil))
	ref := h.newCounter(t, "stuck-repair")
	h.mustExec(t, ref, "inc", "increment", "")
	h.x.Invalidate(func(model.Ref) bool { return true })
	commands.stuck.Store(true)
	h.state(t, ref) // a cold load: the repairer reads the record of inc, and hangs
	<-commands.entered
	closed := make(chan error, 1)
	go func() { closed <- h.x.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(testDeadline):
		t.Fatalf("Close still waiting after %v for a repair read bounded by StoreTimeout (an hour)", testDeadline)
	}
	if st := h.x.Stats(); st.RecordsRepaired != 0 {
		t.Errorf("stats %+v: an unread record was repaired", st)
	}
}
