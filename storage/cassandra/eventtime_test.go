package cassandra

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/eventlog/eventlogtest"
	"github.com/concursus-go/concursus/model"
)

// lateEvents builds events after+1 … after+n of ref stamped at random
// within a minute, in one of three streams, so that the history is far
// from event-time order and has ties.
func lateEvents(rng *rand.Rand, ref model.Ref, after uint64, n int) []model.Event {
	es := eventlogtest.NewEvents(ref, after, n, "late")
	for i := range es {
		es[i].Timestamp = es[i].Timestamp.Add(-time.Duration(rng.IntN(60)) * time.Second).Truncate(time.Second)
		es[i].StreamID = []string{"a", "ab", "b"}[rng.IntN(3)]
	}
	return es
}

// seededRand returns a generator seeded from the clock; the seed is logged.
func seededRand(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// checkTimeOrder reads ref in event time through EventsInTime (pages of
// 3) and ReadTimePage (one page), and checks both against a sort of want.
func checkTimeOrder(t *testing.T, l *EventLog, ref model.Ref, want []model.Event) {
	t.Helper()
	want = slices.Clone(want)
	slices.SortFunc(want, func(a, b model.Event) int { return a.TimeKey().Compare(b.TimeKey()) })
	var got []model.Event
	for e, err := range eventlog.EventsInTime(t.Context(), l, ref, model.TimeKey{}, 3) {
		if err != nil {
			t.Fatalf("EventsInTime(%s) after %d events: %v", ref, len(got), err)
		}
		got = append(got, e)
	}
	page, more, err := l.ReadTimePage(t.Context(), ref, model.TimeKey{}, len(want)+1)
	if err != nil || more {
		t.Fatalf("ReadTimePage(%s) = %d events, more %v, %v", ref, len(page), more, err)
	}
	for what, got := range map[string][]model.Event{"EventsInTime": got, "ReadTimePage": page} {
		if len(got) != len(want) {
			t.Fatalf("%s(%s): %d events, want %d", what, ref, len(got), len(want))
		}
		for i := range want {
			if d := sameEvent(&want[i], &got[i]); d != "" {
				t.Fatalf("%s(%s): event %d (#%d) %s", what, ref, i, want[i].Sequence, d)
			}
		}
	}
}

// timeTable reads ref's partition of the time table: indexed_through (0
// when absent) and the sequences it holds, in sequence order.
func timeTable(t *testing.T, s *Store, ref model.Ref) (through int64, seqs []int64) {
	t.Helper()
	iter := s.session.Query("SELECT indexed_through, sequence FROM "+s.q.byTime+
		" WHERE aggregate_type = ? AND aggregate_id = ?", ref.Type, ref.ID).Iter()
	var th, seq *int64
	for iter.Scan(&th, &seq) {
		if th != nil {
			through = *th
		}
		if seq != nil {
			seqs = append(seqs, *seq)
		}
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("read the time table of %s: %v", ref, err)
	}
	slices.Sort(seqs)
	return through, seqs
}

// checkTimeTable checks that the time table holds ref's sequences 1..head
// and claims them all.
func checkTimeTable(t *testing.T, s *Store, ref model.Ref, head int64) {
	t.Helper()
	through, seqs := timeTable(t, s, ref)
	if through != head || int64(len(seqs)) != head || (head > 0 && (seqs[0] != 1 || seqs[len(seqs)-1] != head)) {
		t.Fatalf("time table of %s: indexed_through %d, %d rows %v; want %d rows 1..%d", ref, through, len(seqs), seqs, head, head)
	}
}

// TestTimeTableWrittenWithAppends: appends write their rows and claim
// them, across buckets; no repair is needed.
func TestTimeTableWrittenWithAppends(t *testing.T) {
	s := newKeyspace(t).open(t, func(c *Config) { c.BucketSize = 3 })
	l, rng := s.EventLog(), seededRand(t)
	ref := model.Ref{Type: "sensor", ID: "s-1"}
	var all []model.Event
	for range 5 {
		es := lateEvents(rng, ref, uint64(len(all)), 1+rng.IntN(4))
		mustAppend(t, l, eventlog.Append{Ref: ref, Expected: uint64(len(all)), Events: es})
		all = append(all, es...)
	}
	checkTimeTable(t, s, ref, int64(len(all)))
	checkTimeOrder(t, l, ref, all)
}

// TestTimeTableRepairAfterFailedWrites: the writes into the time table of
// some appends fail (the appends still succeed); later appends must not
// claim past the hole, and ReadTimePage copies the missing events from the
// log and returns the full order.
func TestTimeTableRepairAfterFailedWrites(t *testing.T) {
	s, another := openSized(t, 3)
	l, rng := s.EventLog(), seededRand(t)
	ref, bystander := model.Ref{Type: "sensor", ID: "holes"}, model.Ref{Type: "sensor", ID: "fine"}
	var failing atomic.Bool
	l.time.fail = func(r model.Ref) error {
		if r == ref && failing.Load() {
			return errors.New("injected: time table unavailable")
		}
		return nil
	}
	var all, other []model.Event
	appendSome := func(fail bool, n int) {
		failing.Store(fail)
		es := lateEvents(rng, ref, uint64(len(all)), n)
		bs := lateEvents(rng, bystander, uint64(len(other)), 1)
		errs := l.Append(t.Context(), []eventlog.Append{
			{Ref: ref, Expected: uint64(len(all)), Events: es},
			{Ref: bystander, Expected: uint64(len(other)), Events: bs},
		})
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("Append with the time table failing=%v: %v", fail, errs)
		}
		all, other = append(all, es...), append(other, bs...)
	}
	appendSome(false, 2) // claimed: 2
	appendSome(true, 3)  // rows lost
	appendSome(false, 2) // rows written, no claim: 3..5 are missing
	appendSome(true, 1)
	appendSome(false, 4)
	failing.Store(false)
	through, seqs := timeTable(t, s, ref)
	if through != 2 {
		t.Errorf("indexed_through after a failed write = %d, want 2 (the claim before the hole)", through)
	}
	if len(seqs) != len(all)-4 {
		t.Errorf("time table holds %d rows %v, want %d", len(seqs), seqs, len(all)-4)
	}
	checkTimeTable(t, s, bystander, int64(len(other)))

	checkTimeOrder(t, l, ref, all)
	checkTimeTable(t, s, ref, int64(len(all)))
	checkTimeOrder(t, l, bystander, other)

	// A node that never saw the failures reads the same, with no repair.
	checkTimeOrder(t, another().EventLog(), ref, all)
	// And appends after the repair claim again.
	appendSome(false, 2)
	checkTimeTable(t, s, ref, int64(len(all)))
}

// TestTimeTableRepairAfterLoss: the time table's partition is lost
// (deleted); ReadTimePage rebuilds it from the log, a page of the log at
// a time.
func TestTimeTableRepairAfterLoss(t *testing.T) {
	s, another := openSized(t, 50)
	l, rng := s.EventLog(), seededRand(t)
	ref := model.Ref{Type: "sensor", ID: "lost"}
	var all []model.Event
	for len(all) < 2*repairPage+10 {
		es := lateEvents(rng, ref, uint64(len(all)), 100)
		mustAppend(t, l, eventlog.Append{Ref: ref, Expected: uint64(len(all)), Events: es})
		all = append(all, es...)
	}
	if err := s.session.Query("DELETE FROM "+s.q.byTime+" WHERE aggregate_type = ? AND aggregate_id = ?", ref.Type, ref.ID).Exec(); err != nil {
		t.Fatal(err)
	}
	// Another node (no cache of claims) reads it.
	other := another()
	checkTimeOrder(t, other.EventLog(), ref, all)
	checkTimeTable(t, s, ref, int64(len(all)))
}

// TestTimeTableCreatedOnExistingKeyspace: a keyspace written before the
// time table existed gets it from Open, and its histories read in event
// time at once (repaired on the first read).
func TestTimeTableCreatedOnExistingKeyspace(t *testing.T) {
	ks := newKeyspace(t)
	cfg := ks.config()
	s := ks.openConfig(t, cfg)
	l, rng := s.EventLog(), seededRand(t)
	refs := []model.Ref{{Type: "sensor", ID: "old-1"}, {Type: "sensor", ID: "old-2"}}
	hist := make(map[model.Ref][]model.Event)
	for range 3 {
		for _, ref := range refs {
			es := lateEvents(rng, ref, uint64(len(hist[ref])), 3)
			mustAppend(t, l, eventlog.Append{Ref: ref, Expected: uint64(len(hist[ref])), Events: es})
			hist[ref] = append(hist[ref], es...)
		}
	}
	if err := s.session.Query("DROP TABLE " + s.q.byTime).Exec(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = ks.openConfig(t, cfg)
	for _, ref := range refs {
		checkTimeOrder(t, s.EventLog(), ref, hist[ref])
		checkTimeTable(t, s, ref, int64(len(hist[ref])))
	}
}

// TestReadTimePageRepairFails: a read whose repair fails reports the
// failure as ErrUnavailable, not a partial page; the next read completes
// the repair.
func TestReadTimePageRepairFails(t *testing.T) {
	s := newKeyspace(t).open(t, nil)
	l, rng := s.EventLog(), seededRand(t)
	ref := model.Ref{Type: "sensor", ID: "cancelled"}
	l.time.fail = func(model.Ref) error { return errors.New("injected") }
	es := lateEvents(rng, ref, 0, 5)
	mustAppend(t, l, eventlog.Append{Ref: ref, Events: es})
	calls := 0
	l.time.fail = func(model.Ref) error {
		if calls++; calls == 1 {
			return fmt.Errorf("injected: %w", errInjected)
		}
		return nil
	}
	if _, _, err := l.ReadTimePage(t.Context(), ref, model.TimeKey{}, 10); !errors.Is(err, errInjected) || !errors.Is(err, eventlog.ErrUnavailable) {
		t.Fatalf("ReadTimePage with a failing repair: %v, want the failure wrapped in ErrUnavailable", err)
	}
	checkTimeOrder(t, l, ref, es)
}

var errInjected = errors.New("repair cut short")
