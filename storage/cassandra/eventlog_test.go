package cassandra

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/eventlog/eventlogtest"
	"github.com/concursus-go/concursus/model"
)

// mustAppend appends one entry and fails the test on error.
func mustAppend(t testing.TB, l eventlog.Log, a eventlog.Append) {
	t.Helper()
	errs := l.Append(t.Context(), []eventlog.Append{a})
	if len(errs) != 1 || errs[0] != nil {
		t.Fatalf("Append(%s after %d, %d events) = %v", a.Ref, a.Expected, len(a.Events), errs)
	}
}

// readAll reads ref's whole history.
func readAll(t testing.TB, l eventlog.Log, ref model.Ref, pageSize int) []model.Event {
	t.Helper()
	var es []model.Event
	for e, err := range eventlog.Events(t.Context(), l, ref, 1, pageSize) {
		if err != nil {
			t.Fatalf("Events(%s) after %d events: %v", ref, len(es), err)
		}
		es = append(es, e)
	}
	return es
}

// sameEvent reports how got differs from want, "" if it does not.
func sameEvent(want, got *model.Event) string {
	switch {
	case got.AggregateType != want.AggregateType || got.AggregateID != want.AggregateID || got.Sequence != want.Sequence:
		return fmt.Sprintf("is %s #%d", got.Ref(), got.Sequence)
	case !got.Timestamp.Equal(want.Timestamp) || !got.ProcessingTime.Equal(want.ProcessingTime):
		return fmt.Sprintf("times %s, %s; want %s, %s", got.Timestamp, got.ProcessingTime, want.Timestamp, want.ProcessingTime)
	case got.StreamID != want.StreamID || got.ProcessingID != want.ProcessingID || got.Name != want.Name ||
		got.Version != want.Version || got.Characteristics != want.Characteristics ||
		got.CommandID != want.CommandID || got.EventID != want.EventID:
		return fmt.Sprintf("is %+v, want %+v", *got, *want)
	case !bytes.Equal(got.Payload, want.Payload):
		return fmt.Sprintf("payload %s, want %s", got.Payload, want.Payload)
	}
	return ""
}

// TestRacingWritersAcrossBuckets races eight writers on two stores (two
// nodes, each with its own position cache) on one aggregate with buckets of
// five events, appending one to three events at a time, so that most races
// happen while a bucket fills or opens. Every sequence must end up with
// exactly one writer that was told it wrote it, the history must be
// gap-free, and it must hold exactly the events of the appends that
// succeeded (plus any of those whose outcome was reported unknown).
func TestRacingWritersAcrossBuckets(t *testing.T) {
	const (
		writers   = 8
		target    = 200
		size      = 5
		maxAppend = 3
	)
	s, another := openSized(t, size)
	stores := []*Store{s, another()}
	ref := model.Ref{Type: "counter", ID: "contended"}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)

	type outcome int
	const (
		won outcome = iota + 1
		lost
		unknown
	)
	var (
		mu        sync.Mutex
		attempts  = map[string]outcome{} // tag -> outcome
		sizes     = map[string]int{}
		conflicts int
	)
	ctx := t.Context()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			l := stores[w%len(stores)].EventLog()
			expected, err := l.LastSequence(ctx, ref)
			if err != nil {
				t.Errorf("writer %d: LastSequence: %v", w, err)
				return
			}
			for attempt := 0; expected < target; attempt++ {
				if attempt > 50*target {
					t.Errorf("writer %d: history still short of %d after %d attempts", w, target, attempt)
					return
				}
				n := min(1+rng.IntN(maxAppend), target-int(expected))
				tag := fmt.Sprintf("w%da%d", w, attempt)
				errs := l.Append(ctx, []eventlog.Append{{Ref: ref, Expected: expected, Events: eventlogtest.NewEvents(ref, expected, n, tag)}})
				var o outcome
				switch {
				case len(errs) != 1:
					t.Errorf("writer %d: Append returned %d errors for 1 entry", w, len(errs))
					return
				case errs[0] == nil:
					o = won
				case errors.Is(errs[0], eventlog.ErrConflict):
					o = lost
				case errors.Is(errs[0], eventlog.ErrUnavailable):
					t.Logf("writer %d: %v (outcome unknown, reloading)", w, errs[0])
					o = unknown
				default:
					t.Errorf("writer %d: Append after %d: %v", w, expected, errs[0])
					return
				}
				mu.Lock()
				attempts[tag], sizes[tag] = o, n
				if o == lost {
					conflicts++
				}
				mu.Unlock()
				if o == won {
					// Go on from what this writer wrote, through its store's
					// cache, without reloading.
					expected += uint64(n)
					continue
				}
				if expected, err = l.LastSequence(ctx, ref); err != nil {
					t.Errorf("writer %d: LastSequence: %v", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}

	h := readAll(t, stores[0].EventLog(), ref, 17)
	owner := map[string]int{} // tag -> events of it in the history
	for i, e := range h {
		if e.Sequence != uint64(i+1) {
			t.Fatalf("history position %d holds sequence %d: not gap-free", i, e.Sequence)
		}
		tag := eventlogtest.TagOf(t, e)
		switch attempts[tag] {
		case won, unknown:
			owner[tag]++
		case lost:
			t.Errorf("sequence %d was written by %s, which was told it lost", e.Sequence, tag)
		default:
			t.Errorf("sequence %d was written by %s, which never tried", e.Sequence, tag)
		}
	}
	total, wins := 0, 0
	for tag, o := range attempts {
		switch {
		case o == won && owner[tag] != sizes[tag]:
			t.Errorf("%s was told it wrote %d events, the history holds %d of them", tag, sizes[tag], owner[tag])
		case o == unknown && owner[tag] != 0 && owner[tag] != sizes[tag]:
			t.Errorf("%s (outcome unknown) appended %d events, the history holds %d of them: not atomic", tag, sizes[tag], owner[tag])
		}
		if o == won {
			wins++
			total += sizes[tag]
		} else if o == unknown {
			total += owner[tag]
		}
	}
	if len(h) != target || total != target {
		t.Errorf("history holds %d events, successful appends wrote %d, want %d", len(h), total, target)
	}
	if conflicts == 0 {
		t.Errorf("no append lost a race: the test did not test fencing")
	}
	t.Logf("%d successful appends, %d conflicts, %d attempts", wins, conflicts, len(attempts))
	rows := checkBuckets(t, stores[0], ref, target, size, maxAppend)
	t.Logf("%d buckets", len(rows))
}

// TestStaleWriter checks that writers whose Expected lies at an old bucket
// boundary, inside a bucket, or inside an append that filled a bucket, get a
// conflict and write nothing — through the store that wrote the history (its
// cache knows better) and through a fresh store (which must find out from the
// database).
func TestStaleWriter(t *testing.T) {
	const size = 5
	s, another := openSized(t, size)
	l := s.EventLog()
	ref := model.Ref{Type: "account", ID: "boundaries"}
	// Bucket 0: 1-5; bucket 1: 6-8, 9-10; bucket 2: 11.
	var want []model.Event
	for _, n := range []int{5, 3, 2, 1} {
		es := eventlogtest.NewEvents(ref, uint64(len(want)), n, "first")
		mustAppend(t, l, eventlog.Append{Ref: ref, Expected: uint64(len(want)), Events: es})
		want = append(want, es...)
	}
	// Bucket 0: 1-3, 4-8 (the second append fills it past its size).
	inside := model.Ref{Type: "account", ID: "inside"}
	var wantInside []model.Event
	for _, n := range []int{3, 5} {
		es := eventlogtest.NewEvents(inside, uint64(len(wantInside)), n, "first")
		mustAppend(t, l, eventlog.Append{Ref: inside, Expected: uint64(len(wantInside)), Events: es})
		wantInside = append(wantInside, es...)
	}

	fresh := another().EventLog()
	cases := []struct {
		ref      model.Ref
		expected uint64
		actual   uint64 // the head the conflict should report
	}{
		{ref, 0, 5},    // bucket 0 exists
		{ref, 5, 10},   // old boundary: bucket 1 exists
		{ref, 10, 11},  // the newest boundary: bucket 2 exists
		{ref, 7, 10},   // inside bucket 1
		{ref, 3, 5},    // inside bucket 0, which is full
		{inside, 5, 8}, // inside an append that filled bucket 0: would open bucket 1 at 6
		{inside, 6, 8}, // likewise, at 7
		{inside, 3, 8}, // the boundary between the two appends
	}
	for _, log := range []struct {
		name string
		l    *EventLog
	}{{"writer's store", l}, {"fresh store", fresh}} {
		for _, c := range cases {
			for _, n := range []int{1, 3} {
				errs := log.l.Append(t.Context(), []eventlog.Append{{Ref: c.ref, Expected: c.expected, Events: eventlogtest.NewEvents(c.ref, c.expected, n, "stale")}})
				if len(errs) != 1 || !errors.Is(errs[0], eventlog.ErrConflict) {
					t.Errorf("%s: stale append of %d to %s after %d: %v, want ErrConflict", log.name, n, c.ref, c.expected, errs)
					continue
				}
				// The message names the head the store found: the writer's
				// store knows it from its cache, the fresh one from the
				// conditional batch or the serial read that refused it.
				if w := fmt.Sprintf("log is at %d", c.actual); log.l == fresh && !strings.Contains(errs[0].Error(), w) {
					t.Errorf("%s: stale append to %s after %d: %v, want %q", log.name, c.ref, c.expected, errs[0], w)
				}
			}
		}
	}
	if got := readAll(t, fresh, ref, 4); len(got) != len(want) {
		t.Fatalf("history of %s after stale appends has %d events, want %d", ref, len(got), len(want))
	} else {
		for i := range want {
			if d := sameEvent(&want[i], &got[i]); d != "" {
				t.Errorf("%s #%d after stale appends: %s", ref, i+1, d)
			}
		}
	}
	if got := readAll(t, fresh, inside, 4); len(got) != len(wantInside) {
		t.Fatalf("history of %s after stale appends has %d events, want %d", inside, len(got), len(wantInside))
	}
	rows := checkBuckets(t, s, ref, 11, size, 6)
	if len(rows) != 3 || rows[1].first != 6 || rows[2].first != 11 {
		t.Errorf("bucket index of %s = %+v, want buckets starting at 1, 6, 11", ref, rows)
	}
	// No stale writer indexed a bucket that does not follow the real head.
	if rows := checkBuckets(t, s, inside, 8, size, 6); len(rows) != 1 {
		t.Errorf("bucket index of %s has %d buckets, want 1: a stale writer indexed one", inside, len(rows))
	}
	// The rightful writer still goes on, into bucket 1 from 9.
	mustAppend(t, fresh, eventlog.Append{Ref: inside, Expected: 8, Events: eventlogtest.NewEvents(inside, 8, 2, "next")})
	if rows := checkBuckets(t, s, inside, 10, size, 6); len(rows) != 2 || rows[1].first != 9 {
		t.Errorf("bucket index of %s = %+v, want buckets starting at 1 and 9", inside, rows)
	}
}

// TestLargeHistory appends 50,000 events to one aggregate, 100 per append,
// with the default bucket size (so into 50 buckets), and reads them back
// complete and in order; EventsInTimeUntil filters them across buckets.
func TestLargeHistory(t *testing.T) {
	const (
		n         = 50_000
		perAppend = 100
	)
	ks := newKeyspace(t)
	s := ks.open(t, nil)
	l := s.EventLog()
	ref := model.Ref{Type: "ledger", ID: "long"}
	// Events n/2+1 on lie after asOf (the time of event n/2), except every
	// thousandth from 7 on, which is late.
	base := eventlogtest.NewEvent(ref, 0, "bulk").Timestamp
	asOf := eventlogtest.NewEvent(ref, n/2, "bulk").Timestamp
	event := func(seq uint64) model.Event {
		e := eventlogtest.NewEvent(ref, seq, "bulk")
		if seq > n/2 && seq%1000 == 7 {
			e.Timestamp = base
		}
		return e
	}
	// A second aggregate grows alongside, in the same Append calls.
	other := model.Ref{Type: "ledger", ID: "alongside"}
	start := time.Now()
	events := make([]model.Event, perAppend)
	for done := 0; done < n; done += perAppend {
		for i := range events {
			events[i] = event(uint64(done + i + 1))
		}
		errs := l.Append(t.Context(), []eventlog.Append{
			{Ref: ref, Expected: uint64(done), Events: events},
			{Ref: other, Expected: uint64(done / perAppend), Events: eventlogtest.NewEvents(other, uint64(done/perAppend), 1, "other")},
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Append after %d, entry %d: %v", done, i, err)
			}
		}
	}
	t.Logf("appended %d events in %s", n, time.Since(start))

	if last, err := l.LastSequence(t.Context(), ref); err != nil || last != n {
		t.Fatalf("LastSequence = %d, %v; want %d", last, err, n)
	}
	start = time.Now()
	want := uint64(1)
	for e, err := range eventlog.Events(t.Context(), l, ref, 1, 0) {
		if err != nil {
			t.Fatalf("Events after %d events: %v", want-1, err)
		}
		if w := event(want); e.Sequence != want || sameEvent(&w, &e) != "" {
			t.Fatalf("event %d: %s", want, sameEvent(&w, &e))
		}
		want++
	}
	if want-1 != n {
		t.Fatalf("Events streamed %d events, want %d", want-1, n)
	}
	t.Logf("read %d events in %s", n, time.Since(start))

	if rows := checkBuckets(t, s, ref, n, DefaultBucketSize, perAppend); len(rows) != n/DefaultBucketSize {
		t.Errorf("%d buckets, want %d", len(rows), n/DefaultBucketSize)
	}

	// A page across three buckets.
	page, next, err := l.ReadPage(t.Context(), ref, 950, 2000)
	if err != nil || len(page) != 2000 || page[0].Sequence != 950 || page[1999].Sequence != 2949 || next != 2950 {
		t.Errorf("ReadPage(950, 2000) = %d events (%v…), next %d, %v; want 950..2949, next 2950", len(page), firstSeq(page), next, err)
	}
	// The last page, ending exactly at the end of the newest bucket.
	page, next, err = l.ReadPage(t.Context(), ref, n-999, 1000)
	if err != nil || len(page) != 1000 || next != 0 {
		t.Errorf("ReadPage(%d, 1000) = %d events, next %d, %v; want 1000, next 0", n-999, len(page), next, err)
	}

	start = time.Now()
	count, late := 0, 0
	for e, err := range eventlog.EventsInTimeUntil(t.Context(), l, ref, asOf, 700) {
		if err != nil {
			t.Fatalf("EventsInTimeUntil after %d events: %v", count, err)
		}
		if e.Timestamp.After(asOf) {
			t.Fatalf("EventsInTimeUntil yielded #%d at %s, after %s", e.Sequence, e.Timestamp, asOf)
		}
		if e.Sequence > n/2 {
			late++
		}
		count++
	}
	if count != n/2+25 || late != 25 {
		t.Errorf("EventsInTimeUntil yielded %d events (%d late), want %d (25 late)", count, late, n/2+25)
	}
	t.Logf("EventsInTimeUntil in %s", time.Since(start))
	if got := readAll(t, l, other, 0); len(got) != n/perAppend {
		t.Errorf("the aggregate appended alongside has %d events, want %d", len(got), n/perAppend)
	}
}

func firstSeq(es []model.Event) uint64 {
	if len(es) == 0 {
		return 0
	}
	return es[0].Sequence
}

// TestEventsAsOfAcrossBuckets streams the event-time prefix of a history of
// late and early events spread over buckets of four events.
func TestEventsAsOfAcrossBuckets(t *testing.T) {
	ks := newKeyspace(t)
	l := ks.open(t, func(c *Config) { c.BucketSize = 4 }).EventLog()
	ref := model.Ref{Type: "sensor", ID: "late"}
	base := time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC)
	asOf := base.Add(30 * time.Minute)
	offsets := []int{10, 40, 20, 30, 50, 5, 31, 29, 60, 1, 2, 45, 30, 31, 0, 59, 12} // minutes, by sequence
	var prefix []model.Event
	var expected uint64
	for len(offsets) > 0 {
		n := min(3, len(offsets))
		es := eventlogtest.NewEvents(ref, expected, n, "w")
		for i := range es {
			es[i].Timestamp = base.Add(time.Duration(offsets[i]) * time.Minute)
			if offsets[i] <= 30 {
				prefix = append(prefix, es[i])
			}
		}
		mustAppend(t, l, eventlog.Append{Ref: ref, Expected: expected, Events: es})
		expected += uint64(n)
		offsets = offsets[n:]
	}
	// The events stamped at or before asOf, in event-time order.
	slices.SortFunc(prefix, func(a, b model.Event) int { return a.TimeKey().Compare(b.TimeKey()) })
	var want []uint64
	for _, e := range prefix {
		want = append(want, e.Sequence)
	}
	for _, page := range []int{1, 2, 3, 5, 100} {
		var got []uint64
		for e, err := range eventlog.EventsInTimeUntil(t.Context(), l, ref, asOf, page) {
			if err != nil {
				t.Fatalf("EventsInTimeUntil(page %d): %v", page, err)
			}
			got = append(got, e.Sequence)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("EventsInTimeUntil(page %d) = %v, want %v", page, got, want)
		}
	}
}

// TestReadPageAcrossBuckets pins down paging at bucket boundaries.
func TestReadPageAcrossBuckets(t *testing.T) {
	ks := newKeyspace(t)
	l := ks.open(t, func(c *Config) { c.BucketSize = 4 }).EventLog()
	ref := model.Ref{Type: "order", ID: "paged"}
	// Buckets: 1-4 (2+2), 5-9 (3+2), 10-12 (3): the second overshoots.
	var expected uint64
	for _, n := range []int{2, 2, 3, 2, 3} {
		mustAppend(t, l, eventlog.Append{Ref: ref, Expected: expected, Events: eventlogtest.NewEvents(ref, expected, n, "w")})
		expected += uint64(n)
	}
	cases := []struct {
		from       uint64
		limit      int
		first, end uint64 // expected sequences first..end (end 0: empty)
		next       uint64
	}{
		{1, 4, 1, 4, 5},     // exactly bucket 0: more buckets follow
		{1, 5, 1, 5, 6},     // into bucket 1
		{3, 7, 3, 9, 10},    // to the end of bucket 1
		{4, 100, 4, 12, 0},  // everything from the middle of bucket 0
		{5, 5, 5, 9, 10},    // exactly bucket 1
		{9, 1, 9, 9, 10},    // the last of a bucket
		{10, 3, 10, 12, 0},  // exactly the newest bucket: the end is known
		{12, 10, 12, 12, 0}, // the last event
		{13, 10, 0, 0, 0},   // past the end
		{0, 2, 1, 2, 3},     // from 0 reads from the start
		{1, 12, 1, 12, 0},   // the whole history, exactly
		{2, 10, 2, 11, 12},  // all but the last
	}
	for _, c := range cases {
		page, next, err := l.ReadPage(t.Context(), ref, c.from, c.limit)
		if err != nil {
			t.Fatalf("ReadPage(%d, %d): %v", c.from, c.limit, err)
		}
		var want []uint64
		for s := c.first; c.end != 0 && s <= c.end; s++ {
			want = append(want, s)
		}
		var got []uint64
		for _, e := range page {
			got = append(got, e.Sequence)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || next != c.next {
			t.Errorf("ReadPage(%d, %d) = %v, next %d; want %v, next %d", c.from, c.limit, got, next, want, c.next)
		}
	}
}

// TestEmptyTrailingBucket covers a bucket whose index row was written but
// whose conditional batch never applied (the writer failed in between):
// reads and LastSequence skip it, and the next rightful append fills it.
func TestEmptyTrailingBucket(t *testing.T) {
	const size = 5
	s, another := openSized(t, size)
	l := s.EventLog()
	ref := model.Ref{Type: "account", ID: "interrupted"}
	want := eventlogtest.NewEvents(ref, 0, 5, "w")
	mustAppend(t, l, eventlog.Append{Ref: ref, Events: want})
	// What a writer that died between the index row and its batch leaves.
	if err := s.session.Query(s.q.insertBucket, ref.Type, ref.ID, int32(1), int64(6)).Exec(); err != nil {
		t.Fatal(err)
	}
	fresh := another().EventLog()
	for _, log := range []*EventLog{l, fresh} {
		if last, err := log.LastSequence(t.Context(), ref); err != nil || last != 5 {
			t.Errorf("LastSequence = %d, %v; want 5", last, err)
		}
		page, next, err := log.ReadPage(t.Context(), ref, 1, 10)
		if err != nil || len(page) != 5 || next != 0 {
			t.Errorf("ReadPage(1, 10) = %d events, next %d, %v; want 5, 0", len(page), next, err)
		}
		page, next, err = log.ReadPage(t.Context(), ref, 1, 5)
		if err != nil || len(page) != 5 || (next != 0 && next != 6) {
			t.Errorf("ReadPage(1, 5) = %d events, next %d, %v; want 5, 0 or 6", len(page), next, err)
		}
		if page, next, err = log.ReadPage(t.Context(), ref, 6, 5); err != nil || len(page) != 0 || next != 0 {
			t.Errorf("ReadPage(6, 5) = %d events, next %d, %v; want none", len(page), next, err)
		}
	}
	// A stale writer cannot use the empty bucket; the rightful one does.
	if errs := fresh.Append(t.Context(), []eventlog.Append{{Ref: ref, Expected: 4, Events: eventlogtest.NewEvents(ref, 4, 2, "stale")}}); !errors.Is(errs[0], eventlog.ErrConflict) {
		t.Errorf("stale append after 4: %v, want ErrConflict", errs[0])
	}
	more := eventlogtest.NewEvents(ref, 5, 2, "w")
	mustAppend(t, fresh, eventlog.Append{Ref: ref, Expected: 5, Events: more})
	want = append(want, more...)
	got := readAll(t, l, ref, 3)
	if len(got) != len(want) {
		t.Fatalf("history has %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if d := sameEvent(&want[i], &got[i]); d != "" {
			t.Errorf("#%d: %s", i+1, d)
		}
	}
	checkBuckets(t, s, ref, 7, size, 5)
}

// TestProcessingID checks that a canonical version-1 UUID is stored in the
// timeuuid column and every other processing id in the text column, and
// that all of them read back exactly.
func TestProcessingID(t *testing.T) {
	ks := newKeyspace(t)
	s := ks.open(t, nil)
	l := s.EventLog()
	v1, err := uuid.NewUUID()
	if err != nil {
		t.Fatal(err)
	}
	ids := []struct {
		id       string
		timeUUID bool
	}{
		{v1.String(), true},
		{strings.ToUpper(v1.String()), false},
		{uuid.NewString(), false}, // version 4
		{"node-a/42", false},
		{"", false},
		{strings.ReplaceAll(v1.String(), "-", ""), false},
	}
	ref := model.Ref{Type: "lightbulb", ID: "processing"}
	es := eventlogtest.NewEvents(ref, 0, len(ids), "w")
	for i := range es {
		es[i].ProcessingID = ids[i].id
	}
	es[1].Payload = nil
	mustAppend(t, l, eventlog.Append{Ref: ref, Events: es})
	got := readAll(t, l, ref, 10)
	if len(got) != len(es) {
		t.Fatalf("read %d events, want %d", len(got), len(es))
	}
	for i := range es {
		if d := sameEvent(&es[i], &got[i]); d != "" {
			t.Errorf("#%d (processing id %q): %s", i+1, ids[i].id, d)
		}
		var text *string
		var id *string
		if err := s.session.Query("SELECT processing_id, processing_id_text FROM "+s.q.events+
			" WHERE aggregate_type = ? AND aggregate_id = ? AND bucket = 0 AND sequence = ?", ref.Type, ref.ID, int64(i+1)).Scan(&id, &text); err != nil {
			t.Fatal(err)
		}
		if (id != nil && *id != "") != ids[i].timeUUID || (text != nil) == ids[i].timeUUID {
			t.Errorf("processing id %q stored as timeuuid %v, text %v; want in the timeuuid column: %v", ids[i].id, deref(id), deref(text), ids[i].timeUUID)
		}
	}
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

// TestBucketSizeRecorded checks that a keyspace's tables keep the bucket
// size they were created with.
func TestBucketSizeRecorded(t *testing.T) {
	ks := newKeyspace(t)
	cfg := ks.config()
	cfg.BucketSize = 10
	ks.openConfig(t, cfg)
	ks.openConfig(t, cfg) // the same size opens
	cfg.BucketSize = 20
	_, err := Open(t.Context(), cfg)
	if !errors.Is(err, ErrBucketSize) {
		t.Fatalf("Open with another bucket size: %v, want ErrBucketSize", err)
	}
	if !strings.Contains(err.Error(), "10") || !strings.Contains(err.Error(), "20") {
		t.Errorf("error %q does not name both sizes", err)
	}
	// Without CreateSchema the tables must exist: these do.
	cfg.BucketSize = 10
	cfg.CreateSchema = false
	ks.openConfig(t, cfg)
	cfg.TablePrefix = "missing_"
	if _, err := Open(t.Context(), cfg); err == nil || errors.Is(err, ErrUnreachable) {
		t.Errorf("Open without schema and without CreateSchema: %v, want a schema error", err)
	}
}

// TestClosedStore checks that closing the Store closes both logs.
func TestClosedStore(t *testing.T) {
	ks := newKeyspace(t)
	s := ks.open(t, nil)
	ref := model.Ref{Type: "doc", ID: "x"}
	mustAppend(t, s.EventLog(), eventlog.Append{Ref: ref, Events: eventlogtest.NewEvents(ref, 0, 1, "w")})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if errs := s.EventLog().Append(t.Context(), []eventlog.Append{{Ref: ref, Expected: 1, Events: eventlogtest.NewEvents(ref, 1, 1, "w")}}); !errors.Is(errs[0], eventlog.ErrClosed) {
		t.Errorf("Append after Store.Close: %v", errs[0])
	}
	if _, err := s.EventLog().LastSequence(t.Context(), ref); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("LastSequence after Store.Close: %v", err)
	}
	if _, err := s.CommandLog().Get(t.Context(), "x"); err == nil {
		t.Errorf("Get after Store.Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
