// Package storetest holds tests and benchmarks shared by the embedded
// stores (storage/bolt): a conformance test for
// commandlog.DecisionWriter and the benchmark of the executor's write path.
// The event log and command log contracts have their own suites,
// eventlog/eventlogtest and commandlog/commandlogtest.
//
// A store uses them from its own tests:
//
//	func TestDecisionWriter(t *testing.T) {
//		storetest.RunDecisionWriter(t, func(t *testing.T) (commandlog.DecisionWriter, eventlog.Log, commandlog.Log) {
//			db := openDB(t) // closed with t.Cleanup
//			return db, db.EventLog(), db.CommandLog()
//		})
//	}
//
// open is called once per subtest and must return a fresh, empty store: the
// DecisionWriter and the event and command logs it writes to. It must
// register the store's Close with t.Cleanup; if the DecisionWriter is an
// io.Closer, the Closed subtest also closes it early.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/eventlog/eventlogtest"
	"github.com/concursus-go/concursus/model"
)

// Opener returns a fresh, empty store for one subtest.
type Opener func(t *testing.T) (commandlog.DecisionWriter, eventlog.Log, commandlog.Log)

// RunDecisionWriter runs the DecisionWriter conformance test: the contract
// of commandlog.DecisionWriter, and the behaviour storage/bolt pins down
// beyond it (decisions are applied in order, so two appends to one
// aggregate in one batch chain like two transactions).
func RunDecisionWriter(t *testing.T, open Opener) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s store)
	}{
		{"Accepted", testAccepted},
		{"Conflict", testConflict},
		{"InvalidAppend", testInvalid},
		{"SameAggregateInBatch", testSameAggregate},
		{"FirstDecisionWinsAndPrune", testFirstDecisionWinsAndPrune},
		{"HeadFence", testHeadFence},
		{"EmptyBatch", testEmpty},
		{"CanceledContext", testCanceled},
		{"RacingWriters", testRacing},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, events, commands := open(t)
			tc.fn(t, store{w: w, events: events, commands: commands})
		})
	}
}

// store is the store under test.
type store struct {
	w        commandlog.DecisionWriter
	events   eventlog.Log
	commands commandlog.Log
}

// base is the time test records start from; it has millisecond precision.
var base = time.Date(2025, time.March, 14, 15, 9, 26, 535_000_000, time.UTC)

// newEvents builds events from+1 … from+n of ref (eventlogtest.NewEvents,
// tagged with cmd), written by command cmd.
func newEvents(ref model.Ref, from uint64, n int, cmd string) []model.Event {
	es := eventlogtest.NewEvents(ref, from, n, cmd)
	for i := range es {
		es[i].CommandID = cmd
	}
	return es
}

// accept builds the decision of command cmd appending n events to ref
// after expected.
func accept(cmd string, ref model.Ref, expected uint64, n int) commandlog.Decision {
	return commandlog.Decision{
		Append: &eventlog.Append{Ref: ref, Expected: expected, Events: newEvents(ref, expected, n, cmd)},
		Record: commandlog.Record{
			CommandID: cmd, Ref: ref, Command: "update", Outcome: commandlog.Accepted,
			FirstSequence: expected + 1, LastSequence: expected + uint64(n), At: base,
		},
	}
}

// reject builds the decision of command cmd rejected for ref.
func reject(cmd string, ref model.Ref) commandlog.Decision {
	return commandlog.Decision{Record: commandlog.Record{
		CommandID: cmd, Ref: ref, Command: "update", Outcome: commandlog.Rejected,
		Code: "rejected", Reason: "not_allowed", Message: "not now", At: base.Add(time.Millisecond),
	}}
}

// write runs WriteDecisions and checks it returned one error per decision.
func (s store) write(t *testing.T, ds ...commandlog.Decision) []error {
	t.Helper()
	errs := s.w.WriteDecisions(t.Context(), ds)
	if len(errs) != len(ds) {
		t.Fatalf("WriteDecisions returned %d errors for %d decisions", len(errs), len(ds))
	}
	return errs
}

// mustWrite runs WriteDecisions and fails the test on any decision's error.
func (s store) mustWrite(t *testing.T, ds ...commandlog.Decision) {
	t.Helper()
	for i, err := range s.write(t, ds...) {
		if err != nil {
			t.Fatalf("WriteDecisions, decision %d (%s): %v", i, ds[i].Record.CommandID, err)
		}
	}
}

// checkHistory fails the test unless ref's history is exactly want,
// compared by sequence, event id and payload.
func (s store) checkHistory(t *testing.T, ref model.Ref, want []model.Event) {
	t.Helper()
	var got []model.Event
	for e, err := range eventlog.Events(t.Context(), s.events, ref, 1, 0) {
		if err != nil {
			t.Fatalf("Events(%s): %v", ref, err)
		}
		got = append(got, e)
	}
	if len(got) != len(want) {
		t.Errorf("history of %s has %d events %v, want %d %v", ref, len(got), eventIDs(got), len(want), eventIDs(want))
		return
	}
	for i := range got {
		if got[i].Sequence != want[i].Sequence || got[i].EventID != want[i].EventID || string(got[i].Payload) != string(want[i].Payload) {
			t.Errorf("%s event %d: got #%d %s %s, want #%d %s %s", ref, i,
				got[i].Sequence, got[i].EventID, got[i].Payload, want[i].Sequence, want[i].EventID, want[i].Payload)
		}
	}
}

func eventIDs(es []model.Event) []string {
	ids := make([]string, len(es))
	for i := range es {
		ids[i] = es[i].EventID
	}
	return ids
}

// checkRecord fails the test unless the command log holds want.
func (s store) checkRecord(t *testing.T, want commandlog.Record) {
	t.Helper()
	got, err := s.commands.Get(t.Context(), want.CommandID)
	if err != nil {
		t.Errorf("Get(%q): %v", want.CommandID, err)
		return
	}
	if !got.At.Equal(want.At) {
		t.Errorf("Get(%q).At = %v, want %v", want.CommandID, got.At, want.At)
	}
	got.At = want.At
	if got != want {
		t.Errorf("Get(%q):\n got %+v\nwant %+v", want.CommandID, got, want)
	}
}

// checkNoRecord fails the test unless the command log has no record of id.
func (s store) checkNoRecord(t *testing.T, id string) {
	t.Helper()
	if r, err := s.commands.Get(t.Context(), id); !errors.Is(err, commandlog.ErrNotFound) {
		t.Errorf("Get(%q) = %+v, %v; want ErrNotFound", id, r, err)
	}
}

func testAccepted(t *testing.T, s store) {
	a := model.Ref{Type: "lightbulb", ID: "a"}
	b := model.Ref{Type: "lightbulb", ID: "b"}
	created := accept("create-a", a, 0, 2)
	rejected := reject("switch-b", b)
	noop := commandlog.Decision{ // accepted, no events: an empty range at 0
		Append: nil,
		Record: commandlog.Record{CommandID: "noop-b", Ref: b, Command: "noop", Outcome: commandlog.Accepted,
			FirstSequence: 1, LastSequence: 0, At: base.Add(-400 * 24 * time.Hour)},
	}
	s.mustWrite(t, created, rejected, noop)
	s.checkHistory(t, a, created.Append.Events)
	s.checkHistory(t, b, nil)
	for _, d := range []commandlog.Decision{created, rejected, noop} {
		s.checkRecord(t, d.Record)
	}
	// A second batch extends the history.
	more := accept("extend-a", a, 2, 3)
	s.mustWrite(t, more)
	s.checkHistory(t, a, slices.Concat(created.Append.Events, more.Append.Events))
	s.checkRecord(t, more.Record)
	if n, err := s.events.LastSequence(t.Context(), a); err != nil || n != 5 {
		t.Errorf("LastSequence(%s) = %d, %v; want 5", a, n, err)
	}
}

func testConflict(t *testing.T, s store) {
	a := model.Ref{Type: "account", ID: "contended"}
	b := model.Ref{Type: "account", ID: "bystander"}
	orig := accept("orig", a, 0, 2)
	s.mustWrite(t, orig)

	stale := accept("stale", a, 1, 1)
	ahead := accept("ahead", a, 5, 1)
	fresh := accept("fresh", b, 0, 1)
	rejected := reject("rejected", b)
	errs := s.write(t, stale, fresh, ahead, rejected)
	for i, name := range []string{"stale", "", "ahead"} {
		if name != "" && !errors.Is(errs[i], eventlog.ErrConflict) {
			t.Errorf("%s append: %v, want ErrConflict", name, errs[i])
		}
	}
	if errs[1] != nil || errs[3] != nil {
		t.Errorf("independent decisions in the batch failed: %v, %v", errs[1], errs[3])
	}
	s.checkHistory(t, a, orig.Append.Events)
	s.checkHistory(t, b, fresh.Append.Events)
	s.checkNoRecord(t, "stale")
	s.checkNoRecord(t, "ahead")
	s.checkRecord(t, fresh.Record)
	s.checkRecord(t, rejected.Record)
	s.checkRecord(t, orig.Record)

	// A conflict alone writes nothing, and a record stays unreplaced.
	again := accept("orig", a, 0, 1)
	again.Record.Outcome = commandlog.Rejected
	// (The store may refuse it for either reason: the command id is
	// decided, and the append is stale.)
	if errs := s.write(t, again); !errors.Is(errs[0], eventlog.ErrConflict) && !errors.Is(errs[0], commandlog.ErrDecided) {
		t.Errorf("append expecting a new aggregate to an existing one: %v, want ErrConflict or ErrDecided", errs[0])
	}
	s.checkRecord(t, orig.Record)
}

func testInvalid(t *testing.T, s store) {
	ref := model.Ref{Type: "widget", ID: "w-1"}
	existing := accept("existing", ref, 0, 2)
	s.mustWrite(t, existing)

	mutate := func(cmd string, f func(d *commandlog.Decision)) commandlog.Decision {
		d := accept(cmd, ref, 2, 2)
		f(&d)
		return d
	}
	cases := []commandlog.Decision{
		mutate("empty-events", func(d *commandlog.Decision) { d.Append.Events = nil }),
		mutate("wrong-sequence", func(d *commandlog.Decision) { d.Append.Events[0].Sequence = 4 }),
		mutate("rewrites", func(d *commandlog.Decision) { d.Append.Expected = 1 }),
		mutate("other-aggregate", func(d *commandlog.Decision) { d.Append.Events[1].AggregateID = "w-2" }),
		mutate("no-event-id", func(d *commandlog.Decision) { d.Append.Events[1].EventID = "" }),
		mutate("invalid-ref", func(d *commandlog.Decision) {
			d.Append.Ref.Type = ""
			for i := range d.Append.Events {
				d.Append.Events[i].AggregateType = ""
			}
		}),
		mutate("", func(d *commandlog.Decision) {}), // no command id
	}
	for i, c := range cases {
		bystander := accept(fmt.Sprintf("bystander-%d", i), model.Ref{Type: "widget", ID: fmt.Sprintf("by-%d", i)}, 0, 1)
		errs := s.write(t, c, bystander)
		if !errors.Is(errs[0], eventlog.ErrInvalidAppend) {
			t.Errorf("%q: %v, want ErrInvalidAppend", c.Record.CommandID, errs[0])
		}
		if errs[1] != nil {
			t.Errorf("%q: valid decision in the same batch failed: %v", c.Record.CommandID, errs[1])
		}
		if c.Record.CommandID != "" {
			s.checkNoRecord(t, c.Record.CommandID)
		}
		s.checkRecord(t, bystander.Record)
		s.checkHistory(t, bystander.Append.Ref, bystander.Append.Events)
	}
	s.checkHistory(t, ref, existing.Append.Events)
}

func testSameAggregate(t *testing.T, s store) {
	ref := model.Ref{Type: "counter", ID: "c-1"}
	first := accept("first", ref, 0, 1)
	second := accept("second", ref, 1, 2)
	stale := accept("stale", ref, 1, 1) // expects what the batch already moved past
	third := accept("third", ref, 3, 1)
	errs := s.write(t, first, second, stale, third)
	if errs[0] != nil || errs[1] != nil || errs[3] != nil {
		t.Fatalf("chained appends in one batch: %v", errs)
	}
	if !errors.Is(errs[2], eventlog.ErrConflict) {
		t.Errorf("stale append after a chained one in the same batch: %v, want ErrConflict", errs[2])
	}
	s.checkHistory(t, ref, slices.Concat(first.Append.Events, second.Append.Events, third.Append.Events))
	s.checkNoRecord(t, "stale")
	for _, d := range []commandlog.Decision{first, second, third} {
		s.checkRecord(t, d.Record)
	}
}

func testFirstDecisionWinsAndPrune(t *testing.T, s store) {
	ref := model.Ref{Type: "doc", ID: "d-1"}
	old := reject("cmd-1", ref)
	old.Record.At = base
	s.mustWrite(t, old)
	// A later decision of the same id writes nothing: neither its record
	// nor its events. The error carries the standing record.
	newer := accept("cmd-1", ref, 0, 1)
	newer.Record.At = base.Add(time.Minute)
	// Two records for one id in one batch: the first wins.
	between := reject("cmd-2", ref)
	between.Record.At = base.Add(-time.Hour)
	latest := reject("cmd-2", ref)
	latest.Record.At = base.Add(2 * time.Minute)
	errs := s.write(t, newer, between, latest)
	var decided *commandlog.DecidedError
	if !errors.As(errs[0], &decided) || decided.Record.Outcome != commandlog.Rejected {
		t.Errorf("second decision of cmd-1: %v, want a *DecidedError with the rejection", errs[0])
	}
	if errs[1] != nil || !errors.Is(errs[2], commandlog.ErrDecided) {
		t.Errorf("two decisions of cmd-2 in one batch: %v, %v; want nil, ErrDecided", errs[1], errs[2])
	}
	s.checkRecord(t, old.Record)
	s.checkRecord(t, between.Record)
	s.checkHistory(t, ref, nil)

	p, ok := s.commands.(commandlog.Pruner)
	if !ok {
		return
	}
	ctx := t.Context()
	if n, err := p.Prune(ctx, base.Add(-time.Minute)); err != nil || n != 1 {
		t.Errorf("Prune after cmd-2 = %d, %v; want 1, nil", n, err)
	}
	s.checkNoRecord(t, "cmd-2")
	s.checkRecord(t, old.Record)
	if n, err := p.Prune(ctx, base.Add(time.Hour)); err != nil || n != 1 {
		t.Errorf("Prune after cmd-1 = %d, %v; want 1, nil", n, err)
	}
	s.checkNoRecord(t, "cmd-1")
}

// testHeadFence checks decisions without events that carry the head their
// state was decided on: written when the history still ends there, refused
// with a conflict (and no record) when it moved.
func testHeadFence(t *testing.T, s store) {
	ref := model.Ref{Type: "doc", ID: "d-head"}
	s.mustWrite(t, accept("h-1", ref, 0, 2))
	holds := reject("h-2", ref)
	holds.Head = &eventlog.Head{Ref: ref, Sequence: 2}
	stale := reject("h-3", ref)
	stale.Head = &eventlog.Head{Ref: ref, Sequence: 1}
	ahead := reject("h-4", ref)
	ahead.Head = &eventlog.Head{Ref: ref, Sequence: 3}
	errs := s.write(t, holds, stale, ahead)
	if errs[0] != nil {
		t.Errorf("decision on the current head: %v", errs[0])
	}
	for i, d := range []commandlog.Decision{stale, ahead} {
		if !errors.Is(errs[i+1], eventlog.ErrConflict) {
			t.Errorf("decision of %s on head %d (log at 2): %v, want ErrConflict", d.Record.CommandID, d.Head.Sequence, errs[i+1])
		}
		s.checkNoRecord(t, d.Record.CommandID)
	}
	s.checkRecord(t, holds.Record)
	// An append in the same batch moves the head first.
	moved := reject("h-5", ref)
	moved.Head = &eventlog.Head{Ref: ref, Sequence: 2}
	errs = s.write(t, accept("h-6", model.Ref{Type: "doc", ID: "d-other"}, 0, 1), accept("h-7", ref, 2, 1), moved)
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], eventlog.ErrConflict) {
		t.Errorf("head check after an append in the same batch: %v, want nil, nil, ErrConflict", errs)
	}
}

func testEmpty(t *testing.T, s store) {
	if errs := s.w.WriteDecisions(t.Context(), nil); len(errs) != 0 {
		t.Errorf("WriteDecisions(nil) = %v, want no errors", errs)
	}
	if errs := s.w.WriteDecisions(t.Context(), []commandlog.Decision{}); len(errs) != 0 {
		t.Errorf("WriteDecisions(empty) = %v, want no errors", errs)
	}
}

func testCanceled(t *testing.T, s store) {
	ref := model.Ref{Type: "doc", ID: "canceled"}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	errs := s.w.WriteDecisions(ctx, []commandlog.Decision{accept("c-1", ref, 0, 1), reject("c-2", ref)})
	if len(errs) != 2 {
		t.Fatalf("WriteDecisions returned %d errors for 2 decisions", len(errs))
	}
	for i, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("decision %d with a canceled context: %v, want an error wrapping context.Canceled", i, err)
		}
	}
	s.checkHistory(t, ref, nil)
	s.checkNoRecord(t, "c-1")
	s.checkNoRecord(t, "c-2")
}

func testRacing(t *testing.T, s store) {
	const (
		writers = 4
		target  = 60
	)
	ctx := t.Context()
	ref := model.Ref{Type: "counter", ID: "raced"}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		won    = make(map[uint64][]string) // sequence -> commands told they wrote it
		lost   []string
		nextID int
	)
	for w := range writers {
		wg.Go(func() {
			for attempt := 0; attempt < 100*target; attempt++ {
				last, err := s.events.LastSequence(ctx, ref)
				if err != nil {
					t.Errorf("writer %d: LastSequence: %v", w, err)
					return
				}
				if last >= target {
					return
				}
				mu.Lock()
				nextID++
				cmd := fmt.Sprintf("w%d-%d", w, nextID)
				mu.Unlock()
				errs := s.w.WriteDecisions(ctx, []commandlog.Decision{accept(cmd, ref, last, 1)})
				mu.Lock()
				switch {
				case len(errs) != 1:
					t.Errorf("writer %d: %d errors for 1 decision", w, len(errs))
				case errs[0] == nil:
					won[last+1] = append(won[last+1], cmd)
				case errors.Is(errs[0], eventlog.ErrConflict):
					lost = append(lost, cmd)
				default:
					t.Errorf("writer %d: WriteDecisions after %d: %v", w, last, errs[0])
				}
				mu.Unlock()
				if t.Failed() {
					return
				}
			}
			t.Errorf("writer %d: history still short of %d events", w, target)
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	var want []model.Event
	for seq := uint64(1); seq <= target; seq++ {
		cmds := won[seq]
		if len(cmds) != 1 {
			t.Fatalf("sequence %d: %d commands were told they wrote it (%v), want exactly 1", seq, len(cmds), cmds)
		}
		want = append(want, newEvents(ref, seq-1, 1, cmds[0])...)
		r := accept(cmds[0], ref, seq-1, 1).Record
		s.checkRecord(t, r)
	}
	if len(won) != target {
		t.Errorf("%d sequences were won, want %d", len(won), target)
	}
	s.checkHistory(t, ref, want)
	for _, cmd := range lost {
		s.checkNoRecord(t, cmd)
	}
	t.Logf("%d appends won, %d lost the race", target, len(lost))
}

func testClosed(t *testing.T, s store) {
	c, ok := s.w.(io.Closer)
	if !ok {
		t.Skipf("%T is not an io.Closer", s.w)
	}
	ref := model.Ref{Type: "doc", ID: "closed"}
	s.mustWrite(t, accept("before", ref, 0, 1))
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	errs := s.w.WriteDecisions(t.Context(), []commandlog.Decision{accept("after", ref, 1, 1), reject("rejected", ref)})
	if len(errs) != 2 {
		t.Fatalf("WriteDecisions after Close returned %d errors for 2 decisions", len(errs))
	}
	for i, err := range errs {
		if !errors.Is(err, eventlog.ErrClosed) {
			t.Errorf("decision %d after Close: %v, want ErrClosed", i, err)
		}
	}
}
