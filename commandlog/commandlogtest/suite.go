// Package commandlogtest is the conformance suite every commandlog.Log
// implementation runs, so that the memory, bolt and Cassandra command logs
// are interchangeable.
//
// A backend uses it from its own tests:
//
//	func TestCommandLog(t *testing.T) {
//		commandlogtest.Run(t, func(t *testing.T) commandlog.Log {
//			return memory.NewCommandLog()
//		})
//	}
//
// newLog is called once per subtest and must return a fresh, empty, open log;
// it should register with t.Cleanup whatever else it opened. The suite closes
// the log it was given at the end of each subtest (a Close error other than
// ErrClosed fails the test). If the log implements commandlog.Pruner, the
// suite also checks Prune.
//
// Test records carry times truncated to milliseconds in UTC, the precision
// stores are required to keep; times are compared with time.Time.Equal. A
// store's own tests can build their records with NewRecord.
package commandlogtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog/eventlogtest"
	"github.com/concursus-go/concursus/model"
)

// Run runs the conformance suite against the logs newLog returns.
func Run(t *testing.T, newLog func(t *testing.T) commandlog.Log) {
	t.Helper()
	open := func(t *testing.T) commandlog.Log {
		t.Helper()
		l := newLog(t)
		eventlogtest.CloseAtCleanup(t, l, commandlog.ErrClosed)
		return l
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, l commandlog.Log)
	}{
		{"RoundTrip", testRoundTrip},
		{"NotFound", testNotFound},
		{"Replace", testReplace},
		{"Batch", testBatch},
		{"CanceledContext", testCanceledContext},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
	runOptional(t, "Insert", open, testInsert)
	runOptional(t, "Prune", open, testPrune)
}

// runOptional runs fn as the subtest name on a fresh log, given as the
// optional interface I too, and skips the subtest when the log does not
// implement I.
func runOptional[I any](t *testing.T, name string, open func(*testing.T) commandlog.Log, fn func(*testing.T, commandlog.Log, I)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		l := open(t)
		i, ok := l.(I)
		if !ok {
			t.Skipf("%T does not implement %v", l, reflect.TypeFor[I]())
		}
		fn(t, l, i)
	})
}

// Base is the time the suite's records start from; it has millisecond
// precision.
var Base = time.Date(2025, time.March, 14, 15, 9, 26, 535_000_000, time.UTC)

// NewRecord builds an accepted record for command id at at, as the suite
// writes it; stores' own tests use it too. It records that command
// switchOn of lightbulb bulb-id appended sequences 3 and 4, with the
// digest of the arguments {"id":id}.
func NewRecord(id string, at time.Time) commandlog.Record {
	return commandlog.Record{
		CommandID:     id,
		Ref:           model.Ref{Type: "lightbulb", ID: "bulb-" + id},
		Command:       "switchOn",
		Outcome:       commandlog.Accepted,
		FirstSequence: 3,
		LastSequence:  4,
		At:            at,
		ArgsDigest:    commandlog.ArgsDigest([]byte(`{"id":"` + id + `"}`)),
	}
}

// diffRecord lists the fields in which got differs from want.
func diffRecord(want, got *commandlog.Record) []string {
	return eventlogtest.DiffFields(want, got)
}

// mustPut stores records, failing the test on error.
func mustPut(t *testing.T, l commandlog.Log, records ...commandlog.Record) {
	t.Helper()
	if err := l.Put(t.Context(), records); err != nil {
		t.Fatalf("Put(%d records): %v", len(records), err)
	}
}

// check fails the test unless the log holds want under want.CommandID.
func check(t *testing.T, l commandlog.Log, want commandlog.Record) {
	t.Helper()
	got, err := l.Get(t.Context(), want.CommandID)
	if err != nil {
		t.Errorf("Get(%q): %v", want.CommandID, err)
		return
	}
	for _, d := range diffRecord(&want, &got) {
		t.Errorf("Get(%q): %s", want.CommandID, d)
	}
}

// checkAbsent fails the test unless Get of id returns ErrNotFound.
func checkAbsent(t *testing.T, l commandlog.Log, id string) {
	t.Helper()
	if r, err := l.Get(t.Context(), id); !errors.Is(err, commandlog.ErrNotFound) {
		t.Errorf("Get(%q) = %+v, %v; want ErrNotFound", id, r, err)
	}
}

func testRoundTrip(t *testing.T, l commandlog.Log) {
	accepted := commandlog.Record{
		CommandID:     "0194c3a2-0000-7000-8000-00000000000a",
		Ref:           model.Ref{Type: "lightbulb", ID: "254ddc61 hall ✨"},
		Command:       "screwIn",
		Outcome:       commandlog.Accepted,
		FirstSequence: 1,
		LastSequence:  2,
		At:            Base,
	}
	noEvents := commandlog.Record{
		CommandID:     "noop",
		Ref:           model.Ref{Type: "lightbulb", ID: "b-2"},
		Command:       "switchOn",
		Outcome:       commandlog.Accepted,
		FirstSequence: 8,
		LastSequence:  7,
		At:            Base.Add(-400 * 24 * time.Hour).In(time.FixedZone("UTC-7", -7*3600)),
	}
	rejected := commandlog.Record{
		CommandID: "client-key/with:odd chars",
		Ref:       model.Ref{Type: "lightbulb", ID: "b-3"},
		Command:   "switchOn",
		Outcome:   commandlog.Rejected,
		Code:      "rejected",
		Reason:    "not_screwed_in",
		Message:   "the bulb \"b-3\" is not screwed in\nso it cannot be switched on",
		At:        Base.Add(time.Millisecond),
	}
	mustPut(t, l, accepted, noEvents)
	mustPut(t, l, rejected)
	for _, r := range []commandlog.Record{accepted, noEvents, rejected} {
		check(t, l, r)
	}
}

func testNotFound(t *testing.T, l commandlog.Log) {
	checkAbsent(t, l, "never-seen")
	mustPut(t, l, NewRecord("seen", Base))
	checkAbsent(t, l, "never-seen")
	checkAbsent(t, l, "see")   // a prefix of a stored id
	checkAbsent(t, l, "seen2") // a stored id is a prefix of it
	checkAbsent(t, l, "")
}

func testReplace(t *testing.T, l commandlog.Log) {
	first := NewRecord("cmd-1", Base)
	mustPut(t, l, first)
	second := first
	second.Outcome = commandlog.Rejected
	second.FirstSequence, second.LastSequence = 0, 0
	second.Code, second.Reason, second.Message = "conflict", "", "stale owner"
	second.At = Base.Add(time.Minute)
	mustPut(t, l, second)
	check(t, l, second)

	// A replacement moves the record in time, and Prune follows it.
	if p, ok := l.(commandlog.Pruner); ok {
		n, err := p.Prune(t.Context(), Base.Add(time.Second))
		if err != nil {
			t.Fatalf("Prune: %v", err)
		}
		if n != 0 {
			t.Errorf("Prune before the replaced record's old time removed %d records, want 0", n)
		}
		check(t, l, second)
		third := second
		third.At = Base.Add(-time.Hour)
		mustPut(t, l, third)
		if n, err := p.Prune(t.Context(), Base); err != nil || n != 1 {
			t.Errorf("Prune after moving the record back in time = %d, %v; want 1, nil", n, err)
		}
		checkAbsent(t, l, "cmd-1")
	}
}

func testBatch(t *testing.T, l commandlog.Log) {
	const n = 200
	rs := make([]commandlog.Record, n)
	for i := range rs {
		rs[i] = NewRecord(fmt.Sprintf("batch-%03d", i), Base.Add(time.Duration(i%7)*time.Millisecond))
		rs[i].Ref.ID = fmt.Sprintf("b-%d", i)
		rs[i].FirstSequence, rs[i].LastSequence = uint64(i)+1, uint64(i)+1
	}
	mustPut(t, l, rs...)
	for _, r := range rs {
		check(t, l, r)
	}
	if err := l.Put(t.Context(), nil); err != nil {
		t.Errorf("Put(nil): %v", err)
	}
}

func testCanceledContext(t *testing.T, l commandlog.Log) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.Put(ctx, []commandlog.Record{NewRecord("canceled", Base)}); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a canceled context: %v, want an error wrapping context.Canceled", err)
	}
	checkAbsent(t, l, "canceled")
	if _, err := l.Get(ctx, "canceled"); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a canceled context: %v, want an error wrapping context.Canceled", err)
	}
}

func testClosed(t *testing.T, l commandlog.Log) {
	ctx := t.Context()
	mustPut(t, l, NewRecord("before-close", Base))
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := l.Put(ctx, []commandlog.Record{NewRecord("after-close", Base)}); !errors.Is(err, commandlog.ErrClosed) {
		t.Errorf("Put after Close: %v, want ErrClosed", err)
	}
	if _, err := l.Get(ctx, "before-close"); !errors.Is(err, commandlog.ErrClosed) {
		t.Errorf("Get after Close: %v, want ErrClosed", err)
	}
	if p, ok := l.(commandlog.Pruner); ok {
		if _, err := p.Prune(ctx, Base); !errors.Is(err, commandlog.ErrClosed) {
			t.Errorf("Prune after Close: %v, want ErrClosed", err)
		}
	}
	if err := l.Close(); err != nil && !errors.Is(err, commandlog.ErrClosed) {
		t.Errorf("second Close: %v, want nil or ErrClosed", err)
	}
}

func testPrune(t *testing.T, l commandlog.Log, p commandlog.Pruner) {
	ctx := t.Context()
	// Ten records a minute apart, stored out of time order, plus one long
	// before the epoch.
	var rs []commandlog.Record
	for _, i := range []int{7, 2, 9, 0, 4, 5, 1, 8, 3, 6} {
		rs = append(rs, NewRecord(fmt.Sprintf("r-%d", i), Base.Add(time.Duration(i)*time.Minute)))
	}
	ancient := NewRecord("ancient", time.Date(1901, 1, 1, 0, 0, 0, 0, time.UTC))
	mustPut(t, l, append(rs, ancient)...)

	if n, err := p.Prune(ctx, ancient.At); err != nil || n != 0 {
		t.Fatalf("Prune(before everything) = %d, %v; want 0, nil", n, err)
	}
	// Records at r-0 … r-4 and the ancient one are before the cutoff; r-5
	// is exactly at it and stays.
	n, err := p.Prune(ctx, Base.Add(5*time.Minute))
	if err != nil {
		t.Fatalf("Prune: %v", err)
	}
	if n != 6 {
		t.Errorf("Prune removed %d records, want 6", n)
	}
	checkAbsent(t, l, "ancient")
	for _, r := range rs {
		if r.At.Before(Base.Add(5 * time.Minute)) {
			checkAbsent(t, l, r.CommandID)
		} else {
			check(t, l, r)
		}
	}
	if n, err := p.Prune(ctx, Base.Add(5*time.Minute)); err != nil || n != 0 {
		t.Errorf("second Prune with the same cutoff = %d, %v; want 0, nil", n, err)
	}
	// A cutoff half a millisecond after r-5 removes it.
	if n, err := p.Prune(ctx, Base.Add(5*time.Minute+500*time.Microsecond)); err != nil || n != 1 {
		t.Errorf("Prune just after r-5 = %d, %v; want 1, nil", n, err)
	}
	checkAbsent(t, l, "r-5")
	check(t, l, rs[len(rs)-1]) // r-6
	// Everything else.
	if n, err := p.Prune(ctx, Base.Add(time.Hour)); err != nil || n != 4 {
		t.Errorf("Prune(all) = %d, %v; want 4, nil", n, err)
	}
	mustPut(t, l, NewRecord("after-prune", Base))
	check(t, l, NewRecord("after-prune", Base))
}

// testInsert checks commandlog.Inserter: the first record of a command id
// stands, a later one is refused with it, and records of a batch are
// independent.
func testInsert(t *testing.T, l commandlog.Log, ins commandlog.Inserter) {
	ctx := context.Background()
	first := NewRecord("ins-1", Base)
	errs := ins.Insert(ctx, []commandlog.Record{first})
	if len(errs) != 1 || errs[0] != nil {
		t.Fatalf("Insert of a new record: %v", errs)
	}
	check(t, l, first)
	later := NewRecord("ins-1", Base.Add(time.Second))
	later.Outcome, later.Code, later.Reason, later.Message = commandlog.Rejected, "rejected", "nope", "decided again"
	later.FirstSequence, later.LastSequence = 0, 0
	fresh := NewRecord("ins-2", Base)
	errs = ins.Insert(ctx, []commandlog.Record{later, fresh})
	if len(errs) != 2 {
		t.Fatalf("Insert returned %d results for 2 records", len(errs))
	}
	var decided *commandlog.DecidedError
	if !errors.As(errs[0], &decided) || !errors.Is(errs[0], commandlog.ErrDecided) {
		t.Fatalf("Insert over an existing record: %v, want a *DecidedError", errs[0])
	}
	if d := diffRecord(&first, &decided.Record); len(d) > 0 {
		t.Errorf("standing record in the error differs from the first: %v", d)
	}
	if errs[1] != nil {
		t.Errorf("Insert of a new record beside a refused one: %v", errs[1])
	}
	check(t, l, first) // not replaced
	check(t, l, fresh)
}
