// Package eventlogtest is the conformance suite every eventlog.Log
// implementation runs. It pins down the behaviour the rest of the system
// relies on — exact round trips, paging, fencing by expected sequence,
// all-or-nothing entries, isolation between aggregates, and ErrClosed after
// Close — so that memory, bolt and Cassandra stores are interchangeable.
//
// It also checks the event-time order (eventlog.TimeReader, which every
// store must implement, and eventlog.EventsInTime/EventsInTimeUntil) on
// histories appended out of event time, against a sort by model.TimeKey.
// It reads the contract strictly where it leaves room: a ReadTimePage
// page that reaches the end of the history reports more=false, and one
// that does not reports more=true.
//
// A backend uses it from its own tests:
//
//	func TestEventLog(t *testing.T) {
//		eventlogtest.Run(t, func(t *testing.T) eventlog.Log {
//			db, err := bolt.Open(filepath.Join(t.TempDir(), "data.db"), bolt.DefaultOptions())
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { _ = db.Close() })
//			return db.EventLog()
//		}, eventlogtest.WithLargeHistory(20000))
//	}
//
// newLog is called once per subtest and must return a fresh, empty, open log;
// it should register with t.Cleanup whatever else it opened. The suite closes
// the log it was given at the end of each subtest (a Close error other than
// ErrClosed fails the test).
//
// Test events carry timestamps truncated to milliseconds in UTC, the
// precision stores are required to keep; times are compared with
// time.Time.Equal, so a store may return them in any location. A store's
// own tests can build their events with NewEvent and NewEvents.
package eventlogtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

// Option tunes Run.
type Option func(*config)

type config struct {
	largeHistory int
}

// DefaultLargeHistory is the number of events WithLargeHistory(0) appends.
const DefaultLargeHistory = 2000

// WithLargeHistory enables the LargeHistory subtest: it appends n events to
// one aggregate, 100 per append, and streams them back; then n more, with
// shuffled timestamps, to another, and streams those in event time (so a
// store must page them, EventsInTime sorting nothing). n <= 0 means
// DefaultLargeHistory. The subtest is off by default to keep the suite fast.
func WithLargeHistory(n int) Option {
	return func(c *config) {
		if n <= 0 {
			n = DefaultLargeHistory
		}
		c.largeHistory = n
	}
}

// Run runs the conformance suite against the logs newLog returns.
func Run(t *testing.T, newLog func(t *testing.T) eventlog.Log, opts ...Option) {
	t.Helper()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	open := func(t *testing.T) eventlog.Log {
		t.Helper()
		l := newLog(t)
		CloseAtCleanup(t, l, eventlog.ErrClosed)
		return l
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, l eventlog.Log)
	}{
		{"RoundTrip", testRoundTrip},
		{"EmptyBatch", testEmptyBatch},
		{"LastSequence", testLastSequence},
		{"ReadPage", testReadPage},
		{"Events", testEvents},
		{"EventsAsOf", testEventsAsOf},
		{"ConflictStale", testConflictStale},
		{"ConflictAhead", testConflictAhead},
		{"InvalidAppend", testInvalidAppend},
		{"ManyAggregates", testManyAggregates},
		{"RacingWriters", testRacingWriters},
		{"KeyIsolation", testKeyIsolation},
		{"NoAliasing", testNoAliasing},
		{"CanceledContext", testCanceledContext},
		{"Closed", testClosed},
		{"CheckHead", testCheckHead},
		{"TimeReader", testTimeReader},
		{"ReadTimePage", testReadTimePage},
		{"EventsInTime", testEventsInTime},
		{"TimeIsolation", testTimeIsolation},
		{"TimeAppendWhilePaging", testTimeAppendWhilePaging},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
	if cfg.largeHistory > 0 {
		t.Run("LargeHistory", func(t *testing.T) { testLargeHistory(t, open(t), cfg.largeHistory) })
	}
}

// CloseAtCleanup closes c when the test ends and fails the test on a
// Close error other than closed, the log package's ErrClosed (a subtest
// may have closed the log itself). The suites close the logs they were
// given with it; the command-log suite uses it too.
func CloseAtCleanup(t testing.TB, c io.Closer, closed error) {
	t.Helper()
	t.Cleanup(func() {
		if err := c.Close(); err != nil && !errors.Is(err, closed) {
			t.Errorf("Close: %v", err)
		}
	})
}

// base is the time test events start from; it has millisecond precision.
var base = time.Date(2025, time.March, 14, 15, 9, 26, 535_000_000, time.UTC)

// NewEvent builds event seq of ref, as the suite appends it; stores' own
// tests use it too. tag, plain ASCII, marks who wrote it: it goes into the payload (JSON
// {"tag":tag,"seq":seq}, read back by TagOf), the command id
// (cmd-tag-seq) and the event id (tag/ref/seq), so a test can tell two
// writers' events apart. It is named "updated", in the default stream,
// stamped seq × 1001ms after a fixed time of millisecond precision, and
// processed by "node-1" seq seconds and 7ms after that time.
func NewEvent(ref model.Ref, seq uint64, tag string) model.Event {
	// Tags are plain ASCII, so %q quotes them as JSON.
	payload := fmt.Appendf(nil, `{"tag":%q,"seq":%d}`, tag, seq)
	return model.Event{
		AggregateType:  ref.Type,
		AggregateID:    ref.ID,
		Sequence:       seq,
		Timestamp:      base.Add(time.Duration(seq) * 1001 * time.Millisecond),
		StreamID:       model.DefaultStream,
		ProcessingID:   "node-1",
		ProcessingTime: base.Add(time.Duration(seq)*time.Second + 7*time.Millisecond),
		Name:           "updated",
		Version:        0,
		Payload:        payload,
		CommandID:      fmt.Sprintf("cmd-%s-%d", tag, seq),
		EventID:        fmt.Sprintf("%s/%s/%d", tag, ref, seq),
	}
}

// NewEvents builds events from+1 … from+n of ref.
func NewEvents(ref model.Ref, from uint64, n int, tag string) []model.Event {
	es := make([]model.Event, n)
	for i := range es {
		es[i] = NewEvent(ref, from+uint64(i)+1, tag)
	}
	return es
}

// TagOf returns the tag NewEvent put into e's payload.
func TagOf(t testing.TB, e model.Event) string {
	t.Helper()
	var p struct {
		Tag string `json:"tag"`
	}
	if err := json.Unmarshal(e.Payload, &p); err != nil {
		t.Fatalf("%s #%d: payload %q: %v", e.Ref(), e.Sequence, e.Payload, err)
	}
	return p.Tag
}

// mustAppend appends the batch and fails the test on any entry's error.
func mustAppend(t *testing.T, l eventlog.Log, batch ...eventlog.Append) {
	t.Helper()
	errs := l.Append(t.Context(), batch)
	if len(errs) != len(batch) {
		t.Fatalf("Append returned %d errors for %d entries", len(errs), len(batch))
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Append entry %d (%s, expected %d): %v", i, batch[i].Ref, batch[i].Expected, err)
		}
	}
}

// maxHistory bounds every history the suite reads outside LargeHistory, so
// that a store whose next page never advances fails instead of hanging.
const maxHistory = 10_000

// history reads ref's whole history with a small page size.
func history(t *testing.T, l eventlog.Log, ref model.Ref) []model.Event {
	t.Helper()
	return collect(t, fmt.Sprintf("Events(%s)", ref), eventlog.Events(t.Context(), l, ref, 1, 7), maxHistory)
}

// collect drains an event stream, failing the test on an error or when it
// yields more than max events (a store whose paging does not advance).
func collect(t *testing.T, what string, seq iter.Seq2[model.Event, error], max int) []model.Event {
	t.Helper()
	var es []model.Event
	for e, err := range seq {
		if err != nil {
			t.Fatalf("%s after %d events: %v", what, len(es), err)
		}
		if len(es) == max {
			t.Fatalf("%s yielded more than %d events: paging does not advance? last sequences %v", what, max, seqs(es[max-5:]))
		}
		es = append(es, e)
	}
	return es
}

// lastSequence returns ref's last sequence, failing the test on error.
func lastSequence(t *testing.T, l eventlog.Log, ref model.Ref) uint64 {
	t.Helper()
	n, err := l.LastSequence(t.Context(), ref)
	if err != nil {
		t.Fatalf("LastSequence(%s): %v", ref, err)
	}
	return n
}

// diffEvent lists the fields in which got differs from want. Late is not
// compared: it is not stored (the owner sets it on an event it has just
// appended).
func diffEvent(want, got *model.Event) []string {
	return DiffFields(want, got, "Late")
}

// checkEvents fails the test unless got equals want field by field.
func checkEvents(t *testing.T, what string, got, want []model.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d events %v, want %d", what, len(got), seqs(got), len(want))
	}
	for i := range want {
		for _, d := range diffEvent(&want[i], &got[i]) {
			t.Errorf("%s: event %d (%s #%d): %s", what, i, want[i].Ref(), want[i].Sequence, d)
		}
	}
}

// seqs lists the events' sequence numbers, for messages.
func seqs(es []model.Event) []uint64 {
	s := make([]uint64, len(es))
	for i := range es {
		s[i] = es[i].Sequence
	}
	return s
}

func testRoundTrip(t *testing.T, l eventlog.Log) {
	ref := model.Ref{Type: "lightbulb", ID: "254ddc61-5a0f-4e1f-a3b0-9f1f7d0b6a11"}
	loc := time.FixedZone("UTC+5:30", 5*3600+1800)
	e1 := model.Event{
		AggregateType:   ref.Type,
		AggregateID:     ref.ID,
		Sequence:        1,
		Timestamp:       base,
		StreamID:        "sensor-7",
		ProcessingID:    "node-a/42",
		ProcessingTime:  base.Add(3 * time.Millisecond),
		Name:            "created",
		Version:         0,
		Characteristics: model.Initial,
		Payload:         json.RawMessage(`{"wattage":60,"name":"hall ✨","nested":{"a":[1,2,null]}}`),
		CommandID:       "create-1",
		EventID:         "0194c3a2-0000-7000-8000-000000000001",
	}
	// An ingested event: no command id, another stream, a newer version.
	e2 := e1
	e2.Sequence = 2
	e2.Timestamp = base.Add(-90 * 24 * time.Hour) // before e1: sources may be late
	e2.StreamID = model.DefaultStream
	e2.ProcessingTime = base.Add(time.Hour).In(loc)
	e2.Name, e2.Version = "screwedIn", 3
	e2.Characteristics = 0
	e2.Payload = json.RawMessage(`{}`)
	e2.CommandID = ""
	e2.EventID = "0194c3a2-0000-7000-8000-000000000002"
	e3 := e2
	e3.Sequence = 3
	e3.Timestamp = time.Date(2262, 1, 1, 0, 0, 0, 999_000_000, time.UTC)
	e3.Name, e3.Version = "destroyed", 12
	e3.Characteristics = model.Terminal
	e3.Payload = json.RawMessage(`"bytes \u0000 \\ \" kept"`)
	e3.CommandID = "destroy-1"
	e3.EventID = "0194c3a2-0000-7000-8000-000000000003"

	other := model.Ref{Type: "lightbulb", ID: "one-shot"}
	e4 := NewEvent(other, 1, "x")
	e4.Characteristics = model.Initial | model.Terminal

	mustAppend(t, l,
		eventlog.Append{Ref: ref, Expected: 0, Events: []model.Event{e1}},
		eventlog.Append{Ref: other, Expected: 0, Events: []model.Event{e4}},
	)
	mustAppend(t, l, eventlog.Append{Ref: ref, Expected: 1, Events: []model.Event{e2, e3}})

	page, next, err := l.ReadPage(t.Context(), ref, 1, 10)
	if err != nil {
		t.Fatalf("ReadPage: %v", err)
	}
	checkEvents(t, "ReadPage", page, []model.Event{e1, e2, e3})
	if next != 0 {
		t.Errorf("ReadPage of the whole history: next = %d, want 0", next)
	}
	checkEvents(t, "history of "+other.String(), history(t, l, other), []model.Event{e4})
	if got := page[2].Characteristics; !got.IsTerminal() || got.IsInitial() {
		t.Errorf("characteristics of the terminal event read back as %s", got)
	}
}

func testEmptyBatch(t *testing.T, l eventlog.Log) {
	if errs := l.Append(t.Context(), nil); len(errs) != 0 {
		t.Errorf("Append(nil) = %v, want no errors", errs)
	}
	if errs := l.Append(t.Context(), []eventlog.Append{}); len(errs) != 0 {
		t.Errorf("Append(empty) = %v, want no errors", errs)
	}
}

func testLastSequence(t *testing.T, l eventlog.Log) {
	a := model.Ref{Type: "account", ID: "a-1"}
	b := model.Ref{Type: "account", ID: "a-2"}
	if n := lastSequence(t, l, a); n != 0 {
		t.Fatalf("LastSequence of an unknown aggregate = %d, want 0", n)
	}
	mustAppend(t, l, eventlog.Append{Ref: a, Events: NewEvents(a, 0, 3, "w")})
	if n := lastSequence(t, l, a); n != 3 {
		t.Fatalf("LastSequence after 3 events = %d, want 3", n)
	}
	mustAppend(t, l, eventlog.Append{Ref: a, Expected: 3, Events: NewEvents(a, 3, 2, "w")})
	if n := lastSequence(t, l, a); n != 5 {
		t.Fatalf("LastSequence after 5 events = %d, want 5", n)
	}
	if n := lastSequence(t, l, b); n != 0 {
		t.Fatalf("LastSequence of another aggregate = %d, want 0", n)
	}
	mustAppend(t, l, eventlog.Append{Ref: b, Events: NewEvents(b, 0, 1, "w")})
	if n := lastSequence(t, l, a); n != 5 {
		t.Fatalf("LastSequence of %s after appending to %s = %d, want 5", a, b, n)
	}
}

func testReadPage(t *testing.T, l eventlog.Log) {
	ctx := t.Context()
	ref := model.Ref{Type: "order", ID: "o-1"}
	all := NewEvents(ref, 0, 10, "w")
	mustAppend(t, l, eventlog.Append{Ref: ref, Events: all})

	// Walk the history three at a time.
	var got []model.Event
	from, pages := uint64(1), 0
	for from != 0 {
		page, next, err := l.ReadPage(ctx, ref, from, 3)
		if err != nil {
			t.Fatalf("ReadPage(from %d): %v", from, err)
		}
		if pages++; pages > 10 {
			t.Fatalf("ReadPage did not reach the end after %d pages (from %d, next %d)", pages, from, next)
		}
		if len(page) > 3 {
			t.Fatalf("ReadPage(from %d, limit 3) returned %d events", from, len(page))
		}
		switch {
		case len(page) < 3 && next != 0:
			t.Fatalf("ReadPage(from %d) returned a short page %v with next %d, want 0", from, seqs(page), next)
		case next != 0 && next != page[len(page)-1].Sequence+1:
			t.Fatalf("ReadPage(from %d) returned %v with next %d, want %d", from, seqs(page), next, page[len(page)-1].Sequence+1)
		}
		got = append(got, page...)
		from = next
	}
	checkEvents(t, "paged history", got, all)
	if pages > 5 {
		t.Errorf("10 events read 3 at a time took %d pages", pages)
	}

	cases := []struct {
		from  uint64
		limit int
		want  []model.Event
	}{
		{from: 0, limit: 2, want: all[0:2]}, // from 0 reads from the start
		{from: 5, limit: 100, want: all[4:]},
		{from: 4, limit: 1, want: all[3:4]},
		{from: 10, limit: 5, want: all[9:]},
		{from: 11, limit: 5, want: nil},
		{from: 1 << 40, limit: 5, want: nil},
	}
	for _, c := range cases {
		page, next, err := l.ReadPage(ctx, ref, c.from, c.limit)
		if err != nil {
			t.Fatalf("ReadPage(from %d, limit %d): %v", c.from, c.limit, err)
		}
		checkEvents(t, fmt.Sprintf("ReadPage(from %d, limit %d)", c.from, c.limit), page, c.want)
		end := len(page) > 0 && page[len(page)-1].Sequence == 10
		switch {
		case len(page) == 0 && next != 0:
			t.Errorf("ReadPage(from %d) past the end: next = %d, want 0", c.from, next)
		case end && next != 0:
			// A store that cannot tell it reached the end may point past
			// it, but the page there must be empty and final.
			if next != 11 {
				t.Errorf("ReadPage(from %d) reaching the end: next = %d, want 0 (or 11)", c.from, next)
			} else if p, n, err := l.ReadPage(ctx, ref, next, c.limit); err != nil || len(p) != 0 || n != 0 {
				t.Errorf("ReadPage(from %d) after the end = %v, %d, %v; want empty, 0, nil", next, seqs(p), n, err)
			}
		case !end && len(page) > 0 && next != page[len(page)-1].Sequence+1:
			t.Errorf("ReadPage(from %d, limit %d): next = %d, want %d", c.from, c.limit, next, page[len(page)-1].Sequence+1)
		}
	}

	unknown := model.Ref{Type: "order", ID: "o-unknown"}
	page, next, err := l.ReadPage(ctx, unknown, 1, 10)
	if err != nil || len(page) != 0 || next != 0 {
		t.Errorf("ReadPage of an unknown aggregate = %v, %d, %v; want empty, 0, nil", seqs(page), next, err)
	}
	if _, _, err := l.ReadPage(ctx, ref, 1, 0); err == nil {
		t.Errorf("ReadPage with limit 0 returned no error")
	}
	if _, _, err := l.ReadPage(ctx, ref, 1, -1); err == nil {
		t.Errorf("ReadPage with limit -1 returned no error")
	}
}

func testEvents(t *testing.T, l eventlog.Log) {
	ctx := t.Context()
	ref := model.Ref{Type: "stream", ID: "s-1"}
	var all []model.Event
	for len(all) < 95 {
		es := NewEvents(ref, uint64(len(all)), 19, "w")
		mustAppend(t, l, eventlog.Append{Ref: ref, Expected: uint64(len(all)), Events: es})
		all = append(all, es...)
	}
	for _, pageSize := range []int{1, 4, 19, 95, 96, 0} {
		what := fmt.Sprintf("Events(page size %d)", pageSize)
		checkEvents(t, what, collect(t, what, eventlog.Events(ctx, l, ref, 1, pageSize), maxHistory), all)
	}
	checkEvents(t, "Events(from 40)", collect(t, "Events(from 40)", eventlog.Events(ctx, l, ref, 40, 6), maxHistory), all[39:])

	// Stopping early stops reading.
	n := 0
	for _, err := range eventlog.Events(ctx, l, ref, 1, 4) {
		if err != nil {
			t.Fatalf("Events: %v", err)
		}
		if n++; n == 10 {
			break
		}
	}
	if n != 10 {
		t.Errorf("Events stopped after %d events, want 10", n)
	}
}

func testEventsAsOf(t *testing.T, l eventlog.Log) {
	ref := model.Ref{Type: "sensor", ID: "late"}
	asOf := base.Add(30 * time.Minute)
	offsets := []time.Duration{10, 40, 20, 30, 50, 5, 31} // minutes after base, by sequence
	es := NewEvents(ref, 0, len(offsets), "w")
	for i, m := range offsets {
		es[i].Timestamp = base.Add(m * time.Minute)
	}
	mustAppend(t, l, eventlog.Append{Ref: ref, Events: es})

	got := collect(t, "EventsInTimeUntil", eventlog.EventsInTimeUntil(t.Context(), l, ref, asOf, 2), maxHistory)
	// Sequences 1, 3, 4 (exactly at asOf) and 6 (late, with an early time),
	// in event-time order: the event-time prefix up to asOf.
	checkEvents(t, "EventsInTimeUntil", got, []model.Event{es[5], es[0], es[2], es[3]})
}

func testConflictStale(t *testing.T, l eventlog.Log) {
	a := model.Ref{Type: "account", ID: "contended"}
	b := model.Ref{Type: "account", ID: "bystander"}
	orig := NewEvents(a, 0, 3, "first")
	mustAppend(t, l, eventlog.Append{Ref: a, Events: orig})

	// A stale writer saw sequence 2 and tries to write 3 and 4, in the same
	// batch as an unrelated, valid append.
	bEvents := NewEvents(b, 0, 2, "b")
	errs := l.Append(t.Context(), []eventlog.Append{
		{Ref: a, Expected: 2, Events: NewEvents(a, 2, 2, "stale")},
		{Ref: b, Expected: 0, Events: bEvents},
	})
	if len(errs) != 2 {
		t.Fatalf("Append returned %d errors for 2 entries", len(errs))
	}
	if !errors.Is(errs[0], eventlog.ErrConflict) {
		t.Errorf("stale append: error %v, want ErrConflict", errs[0])
	}
	if errs[1] != nil {
		t.Errorf("independent append in the same batch: %v", errs[1])
	}
	checkEvents(t, "history after a stale append", history(t, l, a), orig)
	checkEvents(t, "bystander's history", history(t, l, b), bEvents)

	// Also when the stale writer believes the aggregate is new.
	errs = l.Append(t.Context(), []eventlog.Append{{Ref: a, Expected: 0, Events: NewEvents(a, 0, 1, "stale")}})
	if len(errs) != 1 || !errors.Is(errs[0], eventlog.ErrConflict) {
		t.Errorf("append expecting a new aggregate to an existing one: %v, want ErrConflict", errs)
	}
	checkEvents(t, "history after a second stale append", history(t, l, a), orig)
}

func testConflictAhead(t *testing.T, l eventlog.Log) {
	a := model.Ref{Type: "account", ID: "behind"}
	orig := NewEvents(a, 0, 3, "first")
	mustAppend(t, l, eventlog.Append{Ref: a, Events: orig})
	for _, c := range []struct {
		ref      model.Ref
		expected uint64
	}{
		{a, 4}, // one ahead: would leave a gap at 4
		{a, 100},
		{model.Ref{Type: "account", ID: "new"}, 1}, // no history at all
	} {
		errs := l.Append(t.Context(), []eventlog.Append{{Ref: c.ref, Expected: c.expected, Events: NewEvents(c.ref, c.expected, 2, "ahead")}})
		if len(errs) != 1 || !errors.Is(errs[0], eventlog.ErrConflict) {
			t.Errorf("append to %s expecting %d: %v, want ErrConflict", c.ref, c.expected, errs)
		}
	}
	checkEvents(t, "history after appends from ahead", history(t, l, a), orig)
	if n := lastSequence(t, l, model.Ref{Type: "account", ID: "new"}); n != 0 {
		t.Errorf("LastSequence of an aggregate only appended to from ahead = %d, want 0", n)
	}
}

func testInvalidAppend(t *testing.T, l eventlog.Log) {
	ref := model.Ref{Type: "widget", ID: "w-1"}
	existing := NewEvents(ref, 0, 2, "first")
	mustAppend(t, l, eventlog.Append{Ref: ref, Events: existing})

	mutate := func(f func(es []model.Event)) []model.Event {
		es := NewEvents(ref, 2, 3, "bad")
		f(es)
		return es
	}
	cases := []struct {
		name string
		a    eventlog.Append
	}{
		{"NilEvents", eventlog.Append{Ref: ref, Expected: 2}},
		{"EmptyEvents", eventlog.Append{Ref: ref, Expected: 2, Events: []model.Event{}}},
		{"WrongType", eventlog.Append{Ref: ref, Expected: 2, Events: mutate(func(es []model.Event) { es[1].AggregateType = "gadget" })}},
		{"WrongID", eventlog.Append{Ref: ref, Expected: 2, Events: mutate(func(es []model.Event) { es[2].AggregateID = "w-2" })}},
		{"FirstSequenceNotNext", eventlog.Append{Ref: ref, Expected: 2, Events: NewEvents(ref, 3, 2, "bad")}},
		{"FirstSequenceRewrites", eventlog.Append{Ref: ref, Expected: 2, Events: NewEvents(ref, 1, 2, "bad")}},
		{"Gap", eventlog.Append{Ref: ref, Expected: 2, Events: mutate(func(es []model.Event) { es[2].Sequence = 6 })}},
		{"Repeat", eventlog.Append{Ref: ref, Expected: 2, Events: mutate(func(es []model.Event) { es[1].Sequence = 3 })}},
		{"ZeroSequence", eventlog.Append{Ref: ref, Expected: 2, Events: mutate(func(es []model.Event) { es[0].Sequence = 0 })}},
		{"MissingEventID", eventlog.Append{Ref: ref, Expected: 2, Events: mutate(func(es []model.Event) { es[2].EventID = "" })}},
		{"InvalidRef", eventlog.Append{Ref: model.Ref{Type: "", ID: "w-1"}, Events: NewEvents(model.Ref{Type: "", ID: "w-1"}, 0, 1, "bad")}},
	}
	for i, c := range cases {
		bystander := model.Ref{Type: "widget", ID: fmt.Sprintf("bystander-%d", i)}
		errs := l.Append(t.Context(), []eventlog.Append{c.a, {Ref: bystander, Events: NewEvents(bystander, 0, 1, "ok")}})
		if len(errs) != 2 {
			t.Fatalf("%s: Append returned %d errors for 2 entries", c.name, len(errs))
		}
		if !errors.Is(errs[0], eventlog.ErrInvalidAppend) {
			t.Errorf("%s: error %v, want ErrInvalidAppend", c.name, errs[0])
		}
		if errs[1] != nil {
			t.Errorf("%s: valid entry in the same batch failed: %v", c.name, errs[1])
		}
		if n := lastSequence(t, l, bystander); n != 1 {
			t.Errorf("%s: valid entry in the same batch: LastSequence = %d, want 1", c.name, n)
		}
	}
	checkEvents(t, "history after invalid appends", history(t, l, ref), existing)
}

func testManyAggregates(t *testing.T, l eventlog.Log) {
	const n = 64
	batch := make([]eventlog.Append, n)
	for i := range batch {
		ref := model.Ref{Type: fmt.Sprintf("type-%d", i%3), ID: fmt.Sprintf("agg-%03d", i)}
		batch[i] = eventlog.Append{Ref: ref, Events: NewEvents(ref, 0, 1+i%4, "first")}
	}
	mustAppend(t, l, batch...)
	// A second batch extending every other aggregate.
	var second []eventlog.Append
	for i := 0; i < n; i += 2 {
		a := batch[i]
		es := NewEvents(a.Ref, uint64(len(a.Events)), 2, "second")
		second = append(second, eventlog.Append{Ref: a.Ref, Expected: uint64(len(a.Events)), Events: es})
		batch[i].Events = append(append([]model.Event(nil), a.Events...), es...)
	}
	mustAppend(t, l, second...)
	for _, a := range batch {
		checkEvents(t, "history of "+a.Ref.String(), history(t, l, a.Ref), a.Events)
		if got := lastSequence(t, l, a.Ref); got != uint64(len(a.Events)) {
			t.Errorf("LastSequence(%s) = %d, want %d", a.Ref, got, len(a.Events))
		}
	}
}

func testRacingWriters(t *testing.T, l eventlog.Log) {
	const (
		writers = 8
		target  = 100 // events in the history when the race ends
	)
	ctx := t.Context()
	ref := model.Ref{Type: "counter", ID: "contended"}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		won  = make(map[uint64][]string) // sequence -> writers that were told they wrote it
		wins int
	)
	for w := range writers {
		wg.Go(func() {
			tag := fmt.Sprintf("writer-%d", w)
			for attempt := 0; attempt < 100*target; attempt++ {
				last, err := l.LastSequence(ctx, ref)
				if err != nil {
					t.Errorf("%s: LastSequence: %v", tag, err)
					return
				}
				if last >= target {
					return
				}
				errs := l.Append(ctx, []eventlog.Append{{Ref: ref, Expected: last, Events: NewEvents(ref, last, 1, tag)}})
				switch {
				case len(errs) != 1:
					t.Errorf("%s: Append returned %d errors for 1 entry", tag, len(errs))
					return
				case errs[0] == nil:
					mu.Lock()
					won[last+1] = append(won[last+1], tag)
					wins++
					mu.Unlock()
				case errors.Is(errs[0], eventlog.ErrConflict):
					// Lost the race: reload and try again.
				default:
					t.Errorf("%s: Append after %d: %v", tag, last, errs[0])
					return
				}
			}
			t.Errorf("%s: history still short of %d events after %d attempts", tag, target, 100*target)
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	h := history(t, l, ref)
	if wins < target || len(h) < target {
		t.Fatalf("race ended with %d successful appends and %d events, want %d of each", wins, len(h), target)
	}
	for i, e := range h {
		seq := uint64(i) + 1
		if e.Sequence != seq {
			t.Fatalf("history position %d has sequence %d: not gap-free", i, e.Sequence)
		}
		winners := won[seq]
		if len(winners) != 1 {
			t.Errorf("sequence %d: %d writers were told they wrote it (%v), want exactly 1", seq, len(winners), winners)
			continue
		}
		if tag := TagOf(t, e); tag != winners[0] {
			t.Errorf("sequence %d was written by %s, but %s was told it won", seq, tag, winners[0])
		}
	}
	if wins != target || len(h) != target {
		t.Errorf("race ended with %d successful appends and %d events, want %d of each", wins, len(h), target)
	}
}

func testKeyIsolation(t *testing.T, l eventlog.Log) {
	// Pairs a careless key encoding (concatenation, "type/id", a separator
	// byte, a length byte) would confuse.
	refs := []model.Ref{
		{Type: "t", ID: "a"},
		{Type: "t", ID: "ab"},
		{Type: "t", ID: "A"},
		{Type: "t", ID: "a/1"},
		{Type: "t", ID: "a "}, // ids may not hold control characters: the lowest byte they may
		{Type: "ta", ID: "b"},
		{Type: "t", ID: "ab~"},
		{Type: "a", ID: "bc"},
		{Type: "ab", ID: "c"},
		{Type: "a/b", ID: "c"},
		{Type: "a", ID: "b/c"},
		{Type: "x\x01", ID: "y"},
		{Type: "x", ID: " y"},
		{Type: "x", ID: "y.z"},
		{Type: "x", ID: "y z"},
		{Type: "x", ID: "y! "},
		{Type: "x", ID: "y!"},
		{Type: "x", ID: string(bytes.Repeat([]byte("i"), model.MaxIDLen))},
		{Type: string(bytes.Repeat([]byte("T"), model.MaxTypeLen)), ID: "i"},
	}
	batch := make([]eventlog.Append, len(refs))
	for i, ref := range refs {
		batch[i] = eventlog.Append{Ref: ref, Events: NewEvents(ref, 0, i+1, fmt.Sprintf("ref-%d", i))}
	}
	// Append in two batches, in opposite orders, so neither insertion order
	// hides a mix-up.
	mustAppend(t, l, batch[len(batch)/2:]...)
	mustAppend(t, l, batch[:len(batch)/2]...)
	for i, a := range batch {
		if got := lastSequence(t, l, a.Ref); got != uint64(i+1) {
			t.Errorf("LastSequence(%q) = %d, want %d", a.Ref, got, i+1)
		}
		checkEvents(t, fmt.Sprintf("history of %q", a.Ref), history(t, l, a.Ref), a.Events)
	}
	for _, ref := range []model.Ref{{Type: "t", ID: "a b"}, {Type: "ta", ID: "bc"}, {Type: "t", ID: "abc"}, {Type: "a", ID: "b"}} {
		if got := lastSequence(t, l, ref); got != 0 {
			t.Errorf("LastSequence(%q), never appended to, = %d", ref, got)
		}
	}
}

func testNoAliasing(t *testing.T, l eventlog.Log) {
	ref := model.Ref{Type: "doc", ID: "d-1"}
	in := NewEvents(ref, 0, 2, "w")
	want := NewEvents(ref, 0, 2, "w")
	mustAppend(t, l, eventlog.Append{Ref: ref, Events: in})
	// The caller reuses its slices.
	for i := range in {
		for j := range in[i].Payload {
			in[i].Payload[j] = '#'
		}
		in[i].EventID = "reused"
	}
	out := history(t, l, ref)
	checkEvents(t, "history after the caller reused its slices", out, want)
	// The caller modifies what it read.
	for i := range out {
		for j := range out[i].Payload {
			out[i].Payload[j] = '#'
		}
	}
	checkEvents(t, "history after the caller modified a read", history(t, l, ref), want)
}

func testCanceledContext(t *testing.T, l eventlog.Log) {
	ref := model.Ref{Type: "doc", ID: "canceled"}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	errs := l.Append(ctx, []eventlog.Append{{Ref: ref, Events: NewEvents(ref, 0, 1, "w")}})
	if len(errs) != 1 || !errors.Is(errs[0], context.Canceled) {
		t.Errorf("Append with a canceled context = %v, want an error wrapping context.Canceled", errs)
	}
	if n := lastSequence(t, l, ref); n != 0 {
		t.Errorf("Append with a canceled context wrote %d events", n)
	}
	if _, err := l.LastSequence(ctx, ref); !errors.Is(err, context.Canceled) {
		t.Errorf("LastSequence with a canceled context: %v, want an error wrapping context.Canceled", err)
	}
	if _, _, err := l.ReadPage(ctx, ref, 1, 10); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadPage with a canceled context: %v, want an error wrapping context.Canceled", err)
	}
	if _, _, err := timeReader(t, l).ReadTimePage(ctx, ref, model.TimeKey{}, 10); !errors.Is(err, context.Canceled) {
		t.Errorf("ReadTimePage with a canceled context: %v, want an error wrapping context.Canceled", err)
	}
	yielded := false
	for _, err := range eventlog.EventsInTime(ctx, l, ref, model.TimeKey{}, 0) {
		if yielded = true; !errors.Is(err, context.Canceled) {
			t.Errorf("EventsInTime with a canceled context yielded %v, want an error wrapping context.Canceled", err)
		}
	}
	if !yielded {
		t.Errorf("EventsInTime with a canceled context yielded nothing, want an error")
	}
}

func testClosed(t *testing.T, l eventlog.Log) {
	ctx := t.Context()
	ref := model.Ref{Type: "doc", ID: "closed"}
	mustAppend(t, l, eventlog.Append{Ref: ref, Events: NewEvents(ref, 0, 1, "w")})
	tr := timeReader(t, l)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	errs := l.Append(ctx, []eventlog.Append{
		{Ref: ref, Expected: 1, Events: NewEvents(ref, 1, 1, "w")},
		{Ref: model.Ref{Type: "doc", ID: "other"}, Events: NewEvents(model.Ref{Type: "doc", ID: "other"}, 0, 1, "w")},
	})
	if len(errs) != 2 {
		t.Fatalf("Append after Close returned %d errors for 2 entries", len(errs))
	}
	for i, err := range errs {
		if !errors.Is(err, eventlog.ErrClosed) {
			t.Errorf("Append after Close, entry %d: %v, want ErrClosed", i, err)
		}
	}
	if _, _, err := l.ReadPage(ctx, ref, 1, 10); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("ReadPage after Close: %v, want ErrClosed", err)
	}
	if _, err := l.LastSequence(ctx, ref); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("LastSequence after Close: %v, want ErrClosed", err)
	}
	if _, _, err := tr.ReadTimePage(ctx, ref, model.TimeKey{}, 10); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("ReadTimePage after Close: %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil && !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("second Close: %v, want nil or ErrClosed", err)
	}
}

func testLargeHistory(t *testing.T, l eventlog.Log, n int) {
	const perAppend = 100
	ref := model.Ref{Type: "ledger", ID: "long"}
	for done := 0; done < n; done += perAppend {
		mustAppend(t, l, eventlog.Append{Ref: ref, Expected: uint64(done), Events: NewEvents(ref, uint64(done), min(perAppend, n-done), "bulk")})
	}
	if got := lastSequence(t, l, ref); got != uint64(n) {
		t.Fatalf("LastSequence = %d, want %d", got, n)
	}
	want := uint64(1)
	for e, err := range eventlog.Events(t.Context(), l, ref, 1, 0) {
		if err != nil {
			t.Fatalf("Events after %d events: %v", want-1, err)
		}
		if e.Sequence != want || want > uint64(n) {
			t.Fatalf("Events: event %d has sequence %d (history has %d)", want, e.Sequence, n)
		}
		if want%997 == 0 || want == uint64(n) {
			exp := NewEvent(ref, want, "bulk")
			for _, d := range diffEvent(&exp, &e) {
				t.Errorf("event %d: %s", want, d)
			}
		}
		want++
	}
	if want-1 != uint64(n) {
		t.Fatalf("Events streamed %d events, want %d", want-1, n)
	}
	testLargeHistoryInTime(t, l, n)
}

// testLargeHistoryInTime appends n events whose timestamps are shuffled
// and streams them in event time with the default page size: they must
// come in the order of a sort by model.TimeKey. The seed is logged.
func testLargeHistoryInTime(t *testing.T, l eventlog.Log, n int) {
	const perAppend = 100
	seed := uint64(time.Now().UnixNano())
	t.Logf("shuffled timestamps: seed %d", seed)
	ref := model.Ref{Type: "ledger", ID: "shuffled"}
	all := shuffledHistory(rand.New(rand.NewPCG(seed, seed)), ref, n)
	for done := 0; done < n; done += perAppend {
		mustAppend(t, l, eventlog.Append{Ref: ref, Expected: uint64(done), Events: all[done:min(done+perAppend, n)]})
	}
	want := inTimeOrder(all)
	i := 0
	for e, err := range eventlog.EventsInTime(t.Context(), l, ref, model.TimeKey{}, 0) {
		if err != nil {
			t.Fatalf("EventsInTime after %d events (seed %d): %v", i, seed, err)
		}
		if i == n {
			t.Fatalf("EventsInTime yielded more than the %d events of the history (seed %d)", n, seed)
		}
		if d := diffEvent(&want[i], &e); d != nil {
			t.Fatalf("EventsInTime: event %d is %s, want %s (seed %d): %v", i, timeKeys([]model.Event{e}), timeKeys(want[i:i+1]), seed, d)
		}
		i++
	}
	if i != n {
		t.Fatalf("EventsInTime streamed %d events, want %d (seed %d)", i, n, seed)
	}
	asOf := want[n/2].Timestamp
	got := collect(t, "EventsInTimeUntil", eventlog.EventsInTimeUntil(t.Context(), l, ref, asOf, 0), n)
	checkEvents(t, fmt.Sprintf("EventsInTimeUntil(%v) (seed %d)", asOf, seed), got, until(want, asOf))
}

// testCheckHead checks eventlog.CheckHeads (the store's HeadChecker, or the
// LastSequence fallback): a head holds exactly at the history's last
// sequence, across bucket boundaries of stores that have them (the suite's
// stores use small buckets), and for an aggregate without events at 0.
func testCheckHead(t *testing.T, l eventlog.Log) {
	ctx := context.Background()
	a, b := model.Ref{Type: "thing", ID: "head-a"}, model.Ref{Type: "thing", ID: "head-b"}
	check := func(what string, heads []eventlog.Head, want ...bool) {
		t.Helper()
		errs := eventlog.CheckHeads(ctx, l, heads)
		if len(errs) != len(heads) {
			t.Fatalf("%s: %d results for %d heads", what, len(errs), len(heads))
		}
		for i, ok := range want {
			switch {
			case ok && errs[i] != nil:
				t.Errorf("%s: head %s at %d: %v, want it to hold", what, heads[i].Ref, heads[i].Sequence, errs[i])
			case !ok && !errors.Is(errs[i], eventlog.ErrConflict):
				t.Errorf("%s: head %s at %d: %v, want a conflict", what, heads[i].Ref, heads[i].Sequence, errs[i])
			}
		}
	}
	check("empty", []eventlog.Head{{Ref: a, Sequence: 0}, {Ref: a, Sequence: 1}}, true, false)
	var seq uint64
	for n := 1; n <= 12; n++ { // crosses the buckets of stores with small ones
		mustAppend(t, l, eventlog.Append{Ref: a, Expected: seq, Events: NewEvents(a, seq, 1, "w")})
		seq++
		check(fmt.Sprintf("after %d", seq), []eventlog.Head{
			{Ref: a, Sequence: seq}, {Ref: a, Sequence: seq - 1}, {Ref: a, Sequence: seq + 1}, {Ref: a, Sequence: 0}, {Ref: b, Sequence: 0},
		}, true, false, false, false, true)
	}
	mustAppend(t, l, eventlog.Append{Ref: b, Expected: 0, Events: NewEvents(b, 0, 3, "w")})
	check("two aggregates", []eventlog.Head{{Ref: a, Sequence: seq}, {Ref: b, Sequence: 3}, {Ref: b, Sequence: 0}}, true, true, false)
	check("none", nil)
}

// testTimeReader: every store in this module implements eventlog.TimeReader.
func testTimeReader(t *testing.T, l eventlog.Log) { timeReader(t, l) }

// testReadTimePage pages a history appended out of event time (late
// events, ties broken by stream and by sequence, a bystander appended in
// the same batches with the stamps reversed) with small and large limits,
// from the start, from every event's key and from keys of no event.
func testReadTimePage(t *testing.T, l eventlog.Log) {
	tr := timeReader(t, l)
	ref, bystander := model.Ref{Type: "sensor", ID: "late"}, model.Ref{Type: "sensor", ID: "late-bystander"}
	all := appendLate(t, l, ref, bystander)
	want := inTimeOrder(all)
	if slices.EqualFunc(want, all, func(a, b model.Event) bool { return a.Sequence == b.Sequence }) {
		t.Fatalf("suite bug: the late history is in event-time order already")
	}
	for _, limit := range []int{1, 2, 3, len(want), len(want) + 5} {
		checkReadInTime(t, tr, ref, model.TimeKey{}, limit, want)
	}
	// Resume from every key, as EventsInTime does after each page.
	for i := range want {
		for _, limit := range []int{1, 2, 3} {
			checkReadInTime(t, tr, ref, want[i].TimeKey(), limit, want[i+1:])
		}
	}
	// Keys of no event: before, between and after events, at a time
	// finer than the milliseconds stores keep, in another location.
	at3 := base.Add(3 * time.Second)
	for _, k := range []model.TimeKey{
		{Timestamp: at3},
		{Timestamp: at3, StreamID: "a"},
		{Timestamp: at3, StreamID: "a", Sequence: 1 << 40},
		{Timestamp: at3, StreamID: "a b\x00"},
		{Timestamp: at3.Add(500 * time.Microsecond)},
		{Timestamp: at3.Add(-time.Nanosecond), StreamID: "zzz", Sequence: 1 << 62},
		{Timestamp: base.Add(-61 * year), StreamID: "z"},
		{Timestamp: base.Add(-60 * year).Add(time.Millisecond)},
		{Timestamp: time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)},
		{Timestamp: want[4].Timestamp.In(time.FixedZone("UTC-7", -7*3600)), StreamID: want[4].StreamID, Sequence: want[4].Sequence},
	} {
		for _, limit := range []int{2, len(want)} {
			checkReadInTime(t, tr, ref, k, limit, after(want, k))
		}
	}
	checkReadInTime(t, tr, bystander, model.TimeKey{}, 3, inTimeOrder(history(t, l, bystander)))
	checkReadInTime(t, tr, model.Ref{Type: "sensor", ID: "never"}, model.TimeKey{}, 3, nil)
	for _, limit := range []int{0, -1} {
		if page, _, err := tr.ReadTimePage(t.Context(), ref, model.TimeKey{}, limit); err == nil {
			t.Errorf("ReadTimePage with limit %d = %d events, nil error; want an error", limit, len(page))
		}
	}
	// The caller owns what it read.
	page, _, err := tr.ReadTimePage(t.Context(), ref, model.TimeKey{}, len(want))
	if err != nil {
		t.Fatalf("ReadTimePage: %v", err)
	}
	for i := range page {
		for j := range page[i].Payload {
			page[i].Payload[j] = '#'
		}
	}
	checkReadInTime(t, tr, ref, model.TimeKey{}, len(want), want)
}

// testEventsInTime: EventsInTime and EventsInTimeUntil give the history
// sorted by model.TimeKey, whatever the page size, from any key, up to any
// instant.
func testEventsInTime(t *testing.T, l eventlog.Log) {
	ref := model.Ref{Type: "meter", ID: "late"}
	all := appendLate(t, l, ref, model.Ref{Type: "meter", ID: "late-bystander"})
	want := inTimeOrder(all)
	for _, size := range []int{1, 2, 3, 0} {
		checkEvents(t, fmt.Sprintf("EventsInTime, page %d", size), inTime(t, l, ref, model.TimeKey{}, size), want)
	}
	for i := range want {
		checkEvents(t, fmt.Sprintf("EventsInTime after event %d", i), inTime(t, l, ref, want[i].TimeKey(), 2), want[i+1:])
	}
	var instants []time.Time
	for _, e := range want {
		instants = append(instants, e.Timestamp, e.Timestamp.Add(-time.Millisecond), e.Timestamp.Add(500*time.Microsecond))
	}
	instants = append(instants, base.Add(-100*year), time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC))
	for _, asOf := range instants {
		for _, size := range []int{1, 3, 0} {
			what := fmt.Sprintf("EventsInTimeUntil(%v, page %d)", asOf, size)
			got := collect(t, what, eventlog.EventsInTimeUntil(t.Context(), l, ref, asOf, size), maxHistory)
			checkEvents(t, what, got, until(want, asOf))
		}
	}
	// A consumer that stops early.
	n := 0
	for _, err := range eventlog.EventsInTime(t.Context(), l, ref, model.TimeKey{}, 2) {
		if err != nil {
			t.Fatalf("EventsInTime: %v", err)
		}
		if n++; n == 3 {
			break
		}
	}
}

// testTimeIsolation: aggregates whose keys a careless encoding would
// confuse, with interleaved event times, each read back alone.
func testTimeIsolation(t *testing.T, l eventlog.Log) {
	tr := timeReader(t, l)
	refs := []model.Ref{
		{Type: "t", ID: "a"}, {Type: "t", ID: "ab"}, {Type: "t", ID: "a/1"}, {Type: "ta", ID: "b"},
		{Type: "a", ID: "bc"}, {Type: "ab", ID: "c"}, {Type: "a/b", ID: "c"}, {Type: "a", ID: "b/c"},
		{Type: "x\x01", ID: "y"}, {Type: "x", ID: " y"}, {Type: "x", ID: "y"},
	}
	streams := []string{"a", "ab", "b"}
	hist := make([][]model.Event, len(refs))
	for half := range 2 {
		batch := make([]eventlog.Append, len(refs))
		for i, ref := range refs {
			var stamps []stamp
			for j := range 3 + i%3 {
				k := half*10 + j
				stamps = append(stamps, stamp{at: time.Duration((k*7+i*3)%11-5) * time.Second, stream: streams[(i+k)%3]})
			}
			seq := uint64(len(hist[i]))
			es := stamped(ref, seq, fmt.Sprintf("ref-%d", i), stamps...)
			batch[i] = eventlog.Append{Ref: ref, Expected: seq, Events: es}
			hist[i] = append(hist[i], es...)
		}
		if half == 1 {
			slices.Reverse(batch)
		}
		mustAppend(t, l, batch...)
	}
	for i, ref := range refs {
		want := inTimeOrder(hist[i])
		checkReadInTime(t, tr, ref, model.TimeKey{}, 2, want)
		checkEvents(t, fmt.Sprintf("EventsInTime(%q)", ref), inTime(t, l, ref, model.TimeKey{}, 0), want)
	}
	for _, ref := range []model.Ref{{Type: "t", ID: "a b"}, {Type: "ta", ID: "bc"}, {Type: "t", ID: "abc"}, {Type: "a", ID: "b"}} {
		checkReadInTime(t, tr, ref, model.TimeKey{}, 2, nil)
	}
}

// testTimeAppendWhilePaging appends late and early events between the
// pages of a paging: the paging never returns an event twice nor one that
// is not in the log, and a new paging reads the whole history in order.
func testTimeAppendWhilePaging(t *testing.T, l eventlog.Log) {
	tr := timeReader(t, l)
	ref := model.Ref{Type: "sensor", ID: "moving"}
	s := func(sec int) stamp { return stamp{at: time.Duration(sec) * time.Second, stream: "s"} }
	mustAppend(t, l, eventlog.Append{Ref: ref, Events: stamped(ref, 0, "w", s(10), s(20), s(30), s(40), s(50), s(60))})
	var (
		from model.TimeKey
		seen = make(map[uint64]model.Event)
	)
	for pages := 0; ; pages++ {
		if pages > 20 {
			t.Fatalf("paging does not end")
		}
		page, more, err := tr.ReadTimePage(t.Context(), ref, from, 2)
		if err != nil {
			t.Fatalf("ReadTimePage after %v: %v", from, err)
		}
		for _, e := range page {
			if !from.Before(e.TimeKey()) {
				t.Fatalf("ReadTimePage after %v returned %s", from, timeKeys([]model.Event{e}))
			}
			if _, dup := seen[e.Sequence]; dup {
				t.Fatalf("paging returned #%d twice", e.Sequence)
			}
			seen[e.Sequence] = e
			from = e.TimeKey()
		}
		if pages < 3 {
			// One event behind the paging (late) and one ahead of it.
			last := lastSequence(t, l, ref)
			mustAppend(t, l, eventlog.Append{Ref: ref, Expected: last, Events: stamped(ref, last, "w", s(5+pages*10), s(55+pages))})
		}
		if !more {
			break
		}
	}
	all := history(t, l, ref)
	for seq, e := range seen {
		if seq == 0 || seq > uint64(len(all)) {
			t.Errorf("paging returned #%d, which is not in the log (%d events)", seq, len(all))
			continue
		}
		for _, d := range diffEvent(&all[seq-1], &e) {
			t.Errorf("paging returned #%d unlike the log's: %s", seq, d)
		}
	}
	checkReadInTime(t, tr, ref, model.TimeKey{}, 3, inTimeOrder(all))
}
