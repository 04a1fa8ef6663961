package eventlogtest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

// RunOutbox runs the conformance suite of eventlog.Outbox. newStore is
// called once per subtest and must return a fresh, empty, open store as
// its Log and its Outbox (one store: marks written through the Outbox
// belong with the appends made through the Log); it should register with
// t.Cleanup whatever else it opened. The suite closes the Log at the end
// of each subtest (a Close error other than ErrClosed fails the test).
//
// What the suite pins down, beyond the interface documentation:
//
//   - Marks orders marks by aggregate type, then aggregate id, each
//     compared as bytes (Go string order, Cassandra's text order), then
//     First.
//   - A writer's Last is the newest bucket it marked: a Mark of an older
//     bucket, which concurrent callers can deliver late, does not move it
//     back.
//   - An invalid mark fails the whole call with eventlog.ErrInvalidAppend
//     and nothing of it is written.
//   - Errors from a cancelled ctx wrap ctx.Err().
//
// What it leaves to the store: marks in buckets <= the writer's Published
// may be dropped or kept, so the suite never reads them (Forget, whose
// caller promises every mark of the writer is published, is given such
// writers only: its marks are not read afterwards); a Mark that
// repeats a mark (same writer, bucket, aggregate and First) may replace
// it; Mark with no marks and writer names other than plain printable
// ones are not exercised.
//
// One thing it requires that the interface documentation only implies:
// SetPublished for a writer the outbox does not know records it, with its
// watermark and Last 0. Package eventbus sets a new writer's watermark
// before its first mark, so that the range of buckets a takeover must
// search (Published+1 .. Last) is bounded below. A durable store adds its own tests of
// what survives a restart (storage/bolt does).
func RunOutbox(t *testing.T, newStore func(t *testing.T) (eventlog.Log, eventlog.Outbox)) {
	t.Helper()
	open := func(t *testing.T) (eventlog.Log, eventlog.Outbox) {
		t.Helper()
		l, o := newStore(t)
		CloseAtCleanup(t, l, eventlog.ErrClosed)
		return l, o
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, l eventlog.Log, o eventlog.Outbox)
	}{
		{"RoundTrip", testMarksRoundTrip},
		{"Order", testMarksOrder},
		{"Isolation", testMarksIsolation},
		{"Last", testOutboxLast},
		{"SetPublished", testSetPublished},
		{"SetPublishedFirst", testSetPublishedFirst},
		{"Writers", testOutboxWriters},
		{"Forget", testForget},
		{"InvalidMark", testInvalidMark},
		{"CanceledContext", testOutboxCanceled},
		{"MarkThenAppend", testMarkThenAppend},
		{"ManyMarks", testManyMarks},
		{"Concurrent", testOutboxConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, o := open(t)
			tc.fn(t, l, o)
		})
	}
}

// bucket0 is the first bucket the suite marks: about where package eventbus
// puts buckets today (Unix time over 5 s), so stores see realistic numbers.
const bucket0 int64 = 352_000_000

// mark builds a mark of events first..last of type/id.
func mark(typ, id string, first, last uint64) eventlog.Mark {
	return eventlog.Mark{Ref: model.Ref{Type: typ, ID: id}, First: first, Last: last}
}

// compareMarks is the order Marks returns marks in.
func compareMarks(a, b eventlog.Mark) int {
	return cmp.Or(cmp.Compare(a.Ref.Type, b.Ref.Type), cmp.Compare(a.Ref.ID, b.Ref.ID), cmp.Compare(a.First, b.First))
}

// sortedMarks returns a sorted copy of ms.
func sortedMarks(ms []eventlog.Mark) []eventlog.Mark {
	s := slices.Clone(ms)
	slices.SortFunc(s, compareMarks)
	return s
}

// mustMark marks and fails the test on error.
func mustMark(t *testing.T, o eventlog.Outbox, writer string, bucket int64, marks ...eventlog.Mark) {
	t.Helper()
	if err := o.Mark(t.Context(), writer, bucket, marks); err != nil {
		t.Fatalf("Mark(%q, %d, %d marks): %v", writer, bucket, len(marks), err)
	}
}

// readMarks returns writer's marks in bucket, failing the test on error.
func readMarks(t *testing.T, o eventlog.Outbox, writer string, bucket int64) []eventlog.Mark {
	t.Helper()
	ms, err := o.Marks(t.Context(), writer, bucket)
	if err != nil {
		t.Fatalf("Marks(%q, %d): %v", writer, bucket, err)
	}
	return ms
}

// checkMarks fails the test unless writer's marks in bucket are want, in
// order.
func checkMarks(t *testing.T, o eventlog.Outbox, writer string, bucket int64, want []eventlog.Mark) {
	t.Helper()
	got := readMarks(t, o, writer, bucket)
	if len(got) != len(want) {
		t.Errorf("Marks(%q, %d): got %d marks, want %d\n got: %s\nwant: %s", writer, bucket, len(got), len(want), abbreviate(got), abbreviate(want))
		return
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Marks(%q, %d): mark %d is %s, want %s\n got: %s\nwant: %s", writer, bucket, i, got[i], want[i], abbreviate(got), abbreviate(want))
			return
		}
	}
}

// abbreviate prints at most 20 marks.
func abbreviate(ms []eventlog.Mark) string {
	if len(ms) <= 20 {
		return fmt.Sprint(ms)
	}
	return fmt.Sprintf("%v … (%d more) … %v", ms[:10], len(ms)-20, ms[len(ms)-10:])
}

// writers returns the outbox's writers sorted by name, failing the test on
// error or on a writer listed twice.
func writers(t *testing.T, o eventlog.Outbox) []eventlog.OutboxWriter {
	t.Helper()
	ws, err := o.Writers(t.Context())
	if err != nil {
		t.Fatalf("Writers: %v", err)
	}
	ws = slices.Clone(ws)
	slices.SortFunc(ws, func(a, b eventlog.OutboxWriter) int { return cmp.Compare(a.Writer, b.Writer) })
	for i := 1; i < len(ws); i++ {
		if ws[i].Writer == ws[i-1].Writer {
			t.Fatalf("Writers lists %q twice: %+v", ws[i].Writer, ws)
		}
	}
	return ws
}

// checkWriters fails the test unless the outbox's writers are want (in any
// order).
func checkWriters(t *testing.T, o eventlog.Outbox, want ...eventlog.OutboxWriter) {
	t.Helper()
	got := writers(t, o)
	want = slices.Clone(want)
	slices.SortFunc(want, func(a, b eventlog.OutboxWriter) int { return cmp.Compare(a.Writer, b.Writer) })
	if !slices.Equal(got, want) {
		t.Errorf("Writers:\n got %+v\nwant %+v", got, want)
	}
}

// position returns writer's entry in Writers, failing the test when it is
// not listed.
func position(t *testing.T, o eventlog.Outbox, writer string) eventlog.OutboxWriter {
	t.Helper()
	for _, w := range writers(t, o) {
		if w.Writer == writer {
			return w
		}
	}
	t.Fatalf("Writers does not list %q", writer)
	return eventlog.OutboxWriter{}
}

func testMarksRoundTrip(t *testing.T, _ eventlog.Log, o eventlog.Outbox) {
	const w = "node-1"
	first := []eventlog.Mark{
		mark("order", "o-7", 3, 3),
		mark("account", "a-1", 1, 4),
		mark("order", "o-2", 10, 12),
	}
	second := []eventlog.Mark{
		mark("account", "a-1", 5, 5), // the same aggregate, a later append
		mark("account", "a-0", 1, 1),
	}
	mustMark(t, o, w, bucket0, first...)
	checkMarks(t, o, w, bucket0, sortedMarks(first))
	// A second call adds to the bucket.
	mustMark(t, o, w, bucket0, second...)
	all := sortedMarks(append(slices.Clone(first), second...))
	checkMarks(t, o, w, bucket0, all)

	// The next bucket starts empty and keeps its own marks.
	checkMarks(t, o, w, bucket0+1, nil)
	next := []eventlog.Mark{mark("account", "a-1", 6, 9)}
	mustMark(t, o, w, bucket0+1, next...)
	checkMarks(t, o, w, bucket0+1, next)
	checkMarks(t, o, w, bucket0, all)

	// The caller owns what it passed and what it got.
	first[0].First = 99
	got := readMarks(t, o, w, bucket0)
	got[0].Ref.ID = "changed"
	checkMarks(t, o, w, bucket0, all)
}

func testMarksOrder(t *testing.T, _ eventlog.Log, o eventlog.Outbox) {
	const w = "node-1"
	// Pairs a length-prefixed or separator-joined key would order (or
	// confuse) differently from the strings themselves.
	marks := []eventlog.Mark{
		mark("b", "x", 1, 1),
		mark("aa", "x", 1, 1),
		mark("a", "zz", 1, 1),
		mark("a", "z", 7, 8),
		mark("a", "z", 2, 6),
		mark("a", "z", 1, 1),
		mark("a", "z", 10, 10), // 10 after 9 and 2: numbers, not digits
		mark("a", "z", 9, 9),
		mark("a", "z/1", 1, 1),
		mark("a/b", "c", 1, 1),
		mark("a", "b/c", 1, 1),
		mark("a", "Z", 1, 1),
		mark("a", "é", 1, 1),
		mark("a", "z ", 1, 1), // the lowest byte an id may hold
		mark("ab", "c", 1, 1),
		mark("a", "bc", 1, 1),
		mark("a", "z", 1<<40, 1<<40+3),
	}
	want := sortedMarks(marks)
	// Written in three calls, in an order that is neither sorted nor
	// reversed.
	mustMark(t, o, w, bucket0, marks[5:11]...)
	mustMark(t, o, w, bucket0, marks[11:]...)
	mustMark(t, o, w, bucket0, marks[:5]...)
	checkMarks(t, o, w, bucket0, want)
}

func testMarksIsolation(t *testing.T, _ eventlog.Log, o eventlog.Outbox) {
	// Writers whose names a careless key would confuse, each with marks in
	// two buckets.
	names := []string{"n", "n1", "n-1", "N", "node/1", "node", "node1", "1node", "node 1"}
	buckets := []int64{bucket0, bucket0 + 1, bucket0 + 256, bucket0 + 1<<32}
	want := make(map[string][]eventlog.Mark)
	key := func(w string, b int64) string { return fmt.Sprintf("%q/%d", w, b) }
	for i, w := range names {
		for j, b := range buckets {
			if (i+j)%3 == 2 {
				continue // some buckets stay empty
			}
			ms := []eventlog.Mark{
				mark("t", fmt.Sprintf("w%d-b%d", i, j), uint64(i+1), uint64(i+j+1)),
				mark("t", "shared", uint64(10*j+1), uint64(10*j+i+1)),
			}
			mustMark(t, o, w, b, ms...)
			want[key(w, b)] = sortedMarks(ms)
		}
	}
	for _, w := range names {
		for _, b := range append(buckets, bucket0-1, bucket0+2) {
			checkMarks(t, o, w, b, want[key(w, b)])
		}
	}
	checkMarks(t, o, "unknown", bucket0, nil)
}

func testOutboxLast(t *testing.T, _ eventlog.Log, o eventlog.Outbox) {
	const w = "node-1"
	if ws := writers(t, o); len(ws) != 0 {
		t.Fatalf("Writers of an empty outbox: %+v", ws)
	}
	m := mark("t", "a", 1, 1)
	mustMark(t, o, w, bucket0, m)
	checkWriters(t, o, eventlog.OutboxWriter{Writer: w, Last: bucket0})
	if !position(t, o, w).Pending() {
		t.Errorf("a writer with marks and no watermark is not pending")
	}
	mustMark(t, o, w, bucket0+3, m)
	checkWriters(t, o, eventlog.OutboxWriter{Writer: w, Last: bucket0 + 3})
	// A late call for an older bucket (concurrent callers deliver them out
	// of order) adds its marks but does not move Last back.
	late := mark("t", "late", 4, 4)
	mustMark(t, o, w, bucket0+1, late)
	checkWriters(t, o, eventlog.OutboxWriter{Writer: w, Last: bucket0 + 3})
	checkMarks(t, o, w, bucket0+1, []eventlog.Mark{late})
	// Marking the same bucket again keeps it.
	mustMark(t, o, w, bucket0+3, late)
	checkWriters(t, o, eventlog.OutboxWriter{Writer: w, Last: bucket0 + 3})
}

func testSetPublished(t *testing.T, _ eventlog.Log, o eventlog.Outbox) {
	const w = "node-1"
	ctx := t.Context()
	byBucket := make(map[int64][]eventlog.Mark)
	for b := bucket0; b < bucket0+6; b++ {
		ms := []eventlog.Mark{mark("t", fmt.Sprintf("agg-%d", b-bucket0), 1, 2), mark("u", "x", uint64(b-bucket0+1), uint64(b-bucket0+1))}
		mustMark(t, o, w, b, ms...)
		byBucket[b] = sortedMarks(ms)
	}
	setPublished := func(b int64) {
		t.Helper()
		if err := o.SetPublished(ctx, w, b); err != nil {
			t.Fatalf("SetPublished(%q, %d): %v", w, b, err)
		}
	}
	// checkAbove checks the marks of the buckets above the watermark, which
	// must remain; those at or below it may be gone.
	checkAbove := func(published int64) {
		t.Helper()
		for b := published + 1; b < bucket0+6; b++ {
			checkMarks(t, o, w, b, byBucket[b])
		}
	}

	setPublished(bucket0 + 1)
	checkWriters(t, o, eventlog.OutboxWriter{Writer: w, Published: bucket0 + 1, Last: bucket0 + 5})
	checkAbove(bucket0 + 1)
	// Never back.
	setPublished(bucket0)
	setPublished(bucket0 - 100)
	checkWriters(t, o, eventlog.OutboxWriter{Writer: w, Published: bucket0 + 1, Last: bucket0 + 5})
	checkAbove(bucket0 + 1)
	// Again to the same bucket: no change.
	setPublished(bucket0 + 1)
	checkWriters(t, o, eventlog.OutboxWriter{Writer: w, Published: bucket0 + 1, Last: bucket0 + 5})
	// Forward, one bucket at a time and then several.
	setPublished(bucket0 + 2)
	checkAbove(bucket0 + 2)
	setPublished(bucket0 + 4)
	checkWriters(t, o, eventlog.OutboxWriter{Writer: w, Published: bucket0 + 4, Last: bucket0 + 5})
	checkAbove(bucket0 + 4)
	if !position(t, o, w).Pending() {
		t.Errorf("writer with Last %d above Published %d is not pending", bucket0+5, bucket0+4)
	}
	// Marks keep going into new buckets above the watermark.
	newer := []eventlog.Mark{mark("t", "new", 1, 1)}
	mustMark(t, o, w, bucket0+6, newer...)
	byBucket[bucket0+6] = newer
	checkWriters(t, o, eventlog.OutboxWriter{Writer: w, Published: bucket0 + 4, Last: bucket0 + 6})
	checkAbove(bucket0 + 4)
	checkMarks(t, o, w, bucket0+6, newer)
	// Everything published.
	setPublished(bucket0 + 6)
	pos := position(t, o, w)
	if pos != (eventlog.OutboxWriter{Writer: w, Published: bucket0 + 6, Last: bucket0 + 6}) || pos.Pending() {
		t.Errorf("after publishing every bucket: %+v (pending %v), want published = last = %d", pos, pos.Pending(), bucket0+6)
	}
	// The watermark may pass Last (a bucket that closed empty).
	setPublished(bucket0 + 9)
	if pos := position(t, o, w); pos.Published != bucket0+9 || pos.Last != bucket0+6 || pos.Pending() {
		t.Errorf("watermark past the last bucket: %+v, want published %d, last %d", pos, bucket0+9, bucket0+6)
	}
}

func testSetPublishedFirst(t *testing.T, _ eventlog.Log, o eventlog.Outbox) {
	const w = "node-new"
	if err := o.SetPublished(t.Context(), w, bucket0-1); err != nil {
		t.Fatalf("SetPublished(%q, %d) of an unknown writer: %v", w, bucket0-1, err)
	}
	checkWriters(t, o, eventlog.OutboxWriter{Writer: w, Published: bucket0 - 1})
	if position(t, o, w).Pending() {
		t.Errorf("a writer with a watermark and no marks is pending")
	}
	ms := []eventlog.Mark{mark("t", "a", 1, 1)}
	mustMark(t, o, w, bucket0, ms...)
	checkWriters(t, o, eventlog.OutboxWriter{Writer: w, Published: bucket0 - 1, Last: bucket0})
	checkMarks(t, o, w, bucket0, ms)
	if !position(t, o, w).Pending() {
		t.Errorf("a writer with marks above its watermark is not pending")
	}
}

func testOutboxWriters(t *testing.T, _ eventlog.Log, o eventlog.Outbox) {
	ctx := t.Context()
	m := mark("t", "a", 1, 1)
	var want []eventlog.OutboxWriter
	for i := range 12 {
		w := fmt.Sprintf("node-%02d", i)
		last := bucket0 + int64(i%4)
		mustMark(t, o, w, bucket0-1, m)
		mustMark(t, o, w, last, m)
		pos := eventlog.OutboxWriter{Writer: w, Last: last}
		switch i % 3 {
		case 1: // partly published
			pos.Published = bucket0 - 1
		case 2: // all published
			pos.Published = last
		}
		if pos.Published != 0 {
			if err := o.SetPublished(ctx, w, pos.Published); err != nil {
				t.Fatalf("SetPublished(%q, %d): %v", w, pos.Published, err)
			}
		}
		want = append(want, pos)
	}
	checkWriters(t, o, want...)
	for _, w := range writers(t, o) {
		if wantPending := w.Last > w.Published; w.Pending() != wantPending {
			t.Errorf("%+v: Pending() = %v", w, w.Pending())
		}
	}
}

func testForget(t *testing.T, _ eventlog.Log, o eventlog.Outbox) {
	ctx := t.Context()
	gone, stays := "node-gone", "node-stays"
	goneMarks := []eventlog.Mark{mark("t", "a", 1, 2), mark("t", "b", 1, 1)}
	staysMarks := []eventlog.Mark{mark("t", "a", 3, 3)}
	for b := bucket0; b < bucket0+3; b++ {
		mustMark(t, o, gone, b, goneMarks...)
		mustMark(t, o, stays, b, staysMarks...)
	}
	if err := o.SetPublished(ctx, gone, bucket0+2); err != nil {
		t.Fatalf("SetPublished: %v", err)
	}
	if err := o.Forget(ctx, gone); err != nil {
		t.Fatalf("Forget(%q): %v", gone, err)
	}
	checkWriters(t, o, eventlog.OutboxWriter{Writer: stays, Last: bucket0 + 2})
	for b := bucket0; b < bucket0+3; b++ {
		checkMarks(t, o, stays, b, staysMarks)
	}
	// The forgotten writer's marks were all at or below its watermark:
	// whether they are gone is the store's business.

	if err := o.SetPublished(ctx, stays, bucket0+2); err != nil {
		t.Fatalf("SetPublished: %v", err)
	}
	if err := o.Forget(ctx, stays); err != nil {
		t.Fatalf("Forget(%q): %v", stays, err)
	}
	checkWriters(t, o)

	// A writer id that comes back starts afresh.
	again := []eventlog.Mark{mark("t", "c", 1, 1)}
	mustMark(t, o, gone, bucket0+5, again...)
	checkWriters(t, o, eventlog.OutboxWriter{Writer: gone, Last: bucket0 + 5})
	checkMarks(t, o, gone, bucket0+5, again)
}

func testInvalidMark(t *testing.T, _ eventlog.Log, o eventlog.Outbox) {
	const w = "node-1"
	valid := mark("t", "ok", 1, 1)
	existing := mark("t", "existing", 1, 1)
	mustMark(t, o, w, bucket0, existing)
	cases := []struct {
		name string
		m    eventlog.Mark
	}{
		{"NoType", mark("", "a", 1, 1)},
		{"NoID", mark("t", "", 1, 1)},
		{"BadType", mark("a.b", "a", 1, 1)},
		{"FirstZero", mark("t", "a", 0, 1)},
		{"LastBeforeFirst", mark("t", "a", 5, 4)},
		{"ZeroMark", eventlog.Mark{}},
	}
	for i, c := range cases {
		if eventlog.CheckMark(&c.m) == nil {
			t.Fatalf("%s: CheckMark accepts %s; the case is wrong", c.name, c.m)
		}
		// The invalid mark comes second, after a valid one, into the bucket
		// that has a mark and into a new one.
		for _, b := range []int64{bucket0, bucket0 + 1 + int64(i)} {
			err := o.Mark(t.Context(), w, b, []eventlog.Mark{valid, c.m})
			if !errors.Is(err, eventlog.ErrInvalidAppend) {
				t.Errorf("%s: Mark into bucket %d: %v, want ErrInvalidAppend", c.name, b, err)
			}
		}
		checkMarks(t, o, w, bucket0, []eventlog.Mark{existing})
		checkMarks(t, o, w, bucket0+1+int64(i), nil)
		checkWriters(t, o, eventlog.OutboxWriter{Writer: w, Last: bucket0})
	}
	// Nothing of it was written for another writer either.
	if err := o.Mark(t.Context(), "node-2", bucket0, []eventlog.Mark{valid, cases[0].m}); !errors.Is(err, eventlog.ErrInvalidAppend) {
		t.Errorf("Mark for a new writer with an invalid mark: %v, want ErrInvalidAppend", err)
	}
	checkWriters(t, o, eventlog.OutboxWriter{Writer: w, Last: bucket0})
	checkMarks(t, o, "node-2", bucket0, nil)
}

func testOutboxCanceled(t *testing.T, _ eventlog.Log, o eventlog.Outbox) {
	const w = "node-1"
	mustMark(t, o, w, bucket0, mark("t", "a", 1, 1))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context: %v, want an error wrapping context.Canceled", what, err)
		}
	}
	check("Mark", o.Mark(ctx, w, bucket0+1, []eventlog.Mark{mark("t", "b", 1, 1)}))
	_, err := o.Marks(ctx, w, bucket0)
	check("Marks", err)
	_, err = o.Writers(ctx)
	check("Writers", err)
	check("SetPublished", o.SetPublished(ctx, w, bucket0))
	check("Forget", o.Forget(ctx, w))
	// None of it happened.
	checkWriters(t, o, eventlog.OutboxWriter{Writer: w, Last: bucket0})
	checkMarks(t, o, w, bucket0, []eventlog.Mark{mark("t", "a", 1, 1)})
	checkMarks(t, o, w, bucket0+1, nil)
}

// testMarkThenAppend is the durability rule as far as a running store can
// show it: marks followed by the append they describe are readable, with
// the writer's position, after the append (and after an append that
// conflicts, which writes nothing of its own).
func testMarkThenAppend(t *testing.T, l eventlog.Log, o eventlog.Outbox) {
	const w = "node-1"
	a := model.Ref{Type: "account", ID: "a-1"}
	b := model.Ref{Type: "account", ID: "a-2"}
	marks := []eventlog.Mark{{Ref: a, First: 1, Last: 2}, {Ref: b, First: 1, Last: 1}}
	mustMark(t, o, w, bucket0, marks...)
	mustAppend(t, l,
		eventlog.Append{Ref: a, Events: NewEvents(a, 0, 2, "w")},
		eventlog.Append{Ref: b, Events: NewEvents(b, 0, 1, "w")},
	)
	checkMarks(t, o, w, bucket0, marks)
	checkWriters(t, o, eventlog.OutboxWriter{Writer: w, Last: bucket0})

	// A mark whose append is refused stays readable too.
	stale := eventlog.Mark{Ref: a, First: 2, Last: 2}
	mustMark(t, o, w, bucket0+1, stale)
	errs := l.Append(t.Context(), []eventlog.Append{{Ref: a, Expected: 1, Events: NewEvents(a, 1, 1, "stale")}})
	if len(errs) != 1 || !errors.Is(errs[0], eventlog.ErrConflict) {
		t.Fatalf("stale append: %v, want ErrConflict", errs)
	}
	checkMarks(t, o, w, bucket0+1, []eventlog.Mark{stale})
	checkWriters(t, o, eventlog.OutboxWriter{Writer: w, Last: bucket0 + 1})

	// And after the next append that lands.
	next := eventlog.Mark{Ref: b, First: 2, Last: 3}
	mustMark(t, o, w, bucket0+1, next)
	mustAppend(t, l, eventlog.Append{Ref: b, Expected: 1, Events: NewEvents(b, 1, 2, "w")})
	checkMarks(t, o, w, bucket0, marks)
	checkMarks(t, o, w, bucket0+1, sortedMarks([]eventlog.Mark{stale, next}))
}

// manyMarks is the size of the bucket in testManyMarks: several pages of
// any reasonable page size.
const manyMarks = 5000

func testManyMarks(t *testing.T, _ eventlog.Log, o eventlog.Outbox) {
	const w = "node-1"
	all := make([]eventlog.Mark, manyMarks)
	for i := range all {
		// 50 aggregates of 100 appends each, spread over three types.
		agg := i % 50
		seq := uint64(i/50) + 1
		all[i] = mark(fmt.Sprintf("type-%d", agg%3), fmt.Sprintf("agg-%03d", agg), seq, seq)
	}
	// One big call, then the rest in smaller ones.
	mustMark(t, o, w, bucket0, all[:3000]...)
	for start := 3000; start < len(all); start += 500 {
		mustMark(t, o, w, bucket0, all[start:start+500]...)
	}
	mustMark(t, o, w, bucket0+1, all[:10]...)
	checkMarks(t, o, w, bucket0, sortedMarks(all))
	checkMarks(t, o, w, bucket0+1, sortedMarks(all[:10]))
}

func testOutboxConcurrent(t *testing.T, _ eventlog.Log, o eventlog.Outbox) {
	const (
		goroutines = 8
		calls      = 25
	)
	ctx := t.Context()
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			w := fmt.Sprintf("node-%d", g%2) // two writers, four goroutines each
			for c := range calls {
				b := bucket0 + int64(c%5)
				ms := []eventlog.Mark{mark("t", fmt.Sprintf("g%d", g), uint64(c+1), uint64(c+1)), mark("u", fmt.Sprintf("g%d-c%d", g, c), 1, 1)}
				if err := o.Mark(ctx, w, b, ms); err != nil {
					t.Errorf("Mark(%q, %d): %v", w, b, err)
					return
				}
				if c%7 == 0 {
					if _, err := o.Marks(ctx, w, b); err != nil {
						t.Errorf("Marks(%q, %d): %v", w, b, err)
						return
					}
					if _, err := o.Writers(ctx); err != nil {
						t.Errorf("Writers: %v", err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	checkWriters(t, o, eventlog.OutboxWriter{Writer: "node-0", Last: bucket0 + 4}, eventlog.OutboxWriter{Writer: "node-1", Last: bucket0 + 4})
	for w := range 2 {
		for b := range int64(5) {
			var want []eventlog.Mark
			for g := w; g < goroutines; g += 2 {
				for c := int(b); c < calls; c += 5 {
					want = append(want, mark("t", fmt.Sprintf("g%d", g), uint64(c+1), uint64(c+1)), mark("u", fmt.Sprintf("g%d-c%d", g, c), 1, 1))
				}
			}
			checkMarks(t, o, fmt.Sprintf("node-%d", w), bucket0+b, sortedMarks(want))
		}
	}
}
