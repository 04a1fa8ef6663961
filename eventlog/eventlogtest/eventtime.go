package eventlogtest

// Helpers of the event-time subtests: histories appended in an order other
// than event time, and checks of ReadTimePage's paging against a sort of
// the history by model.TimeKey.

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

// timeReader returns l as an eventlog.TimeReader, failing the test when it
// is not one. Every store in this module must read in event time: without
// it EventsInTime falls back to sorting a whole history in memory, which
// would hide the omission everywhere but in the memory profile.
func timeReader(t *testing.T, l eventlog.Log) eventlog.TimeReader {
	t.Helper()
	tr, ok := l.(eventlog.TimeReader)
	if !ok {
		t.Fatalf("%T does not implement eventlog.TimeReader", l)
	}
	return tr
}

// stamp is an event's place in event time: its timestamp, as an offset
// from base, and its stream.
type stamp struct {
	at     time.Duration
	stream string
}

// stamped builds events from+1 … from+len(stamps) of ref as NewEvent does,
// with the stamps' timestamps and streams.
func stamped(ref model.Ref, from uint64, tag string, stamps ...stamp) []model.Event {
	es := make([]model.Event, len(stamps))
	for i, s := range stamps {
		es[i] = NewEvent(ref, from+uint64(i)+1, tag)
		es[i].Timestamp = base.Add(s.at)
		es[i].StreamID = s.stream
	}
	return es
}

const year = 365 * 24 * time.Hour

// lateStamps is a history appended in three batches in an order far from
// event time: late events (one before 1970, whose Unix milliseconds are
// negative), a late event tying an earlier one's timestamp and stream,
// ties on the timestamp broken by the stream id ("a" < "a b" < "ab" < "b":
// byte order, which a length-prefixed encoding would get wrong for "ab"
// and "b"), ties on timestamp and stream broken by the sequence, and an
// event far in the future.
var lateStamps = [][]stamp{
	{{5 * time.Second, "b"}, {1 * time.Second, "b"}, {3 * time.Second, "b"}, {3 * time.Second, "a"}},
	{{3 * time.Second, "a"}, {-60 * year, "b"}, {3 * time.Second, "ab"}, {3 * time.Second, "a b"}},
	{{3 * time.Second, "a"}, {1 * time.Second, "b"}, {237 * year, model.DefaultStream}, {2999 * time.Millisecond, "zz"}, {3001 * time.Millisecond, "a"}},
}

// appendLate appends lateStamps to ref, batch by batch, each batch
// together with an append of the same stamps in reverse to bystander, and
// returns ref's events in log order.
func appendLate(t *testing.T, l eventlog.Log, ref, bystander model.Ref) []model.Event {
	t.Helper()
	var all []model.Event
	for _, batch := range lateStamps {
		seq := uint64(len(all))
		es := stamped(ref, seq, "late", batch...)
		rev := slices.Clone(batch)
		slices.Reverse(rev)
		mustAppend(t, l,
			eventlog.Append{Ref: bystander, Expected: seq, Events: stamped(bystander, seq, "bystander", rev...)},
			eventlog.Append{Ref: ref, Expected: seq, Events: es},
		)
		all = append(all, es...)
	}
	return all
}

// inTimeOrder returns a copy of es sorted by model.TimeKey.
func inTimeOrder(es []model.Event) []model.Event {
	s := slices.Clone(es)
	slices.SortFunc(s, func(a, b model.Event) int { return a.TimeKey().Compare(b.TimeKey()) })
	return s
}

// after returns the events of es (in event-time order) whose key sorts
// strictly after k.
func after(es []model.Event, k model.TimeKey) []model.Event {
	i := 0
	for i < len(es) && !k.Before(es[i].TimeKey()) {
		i++
	}
	return es[i:]
}

// until returns the events of es (in event-time order) stamped at or
// before asOf.
func until(es []model.Event, asOf time.Time) []model.Event {
	i := 0
	for i < len(es) && !es[i].Timestamp.After(asOf) {
		i++
	}
	return es[:i]
}

// timeKeys lists the events' keys, for messages: offset from base in
// milliseconds, stream, sequence.
func timeKeys(es []model.Event) string {
	var b strings.Builder
	for i := range es {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%+dms/%s/#%d", es[i].Timestamp.Sub(base).Milliseconds(), es[i].StreamID, es[i].Sequence)
	}
	return "[" + b.String() + "]"
}

// checkReadInTime pages through ref's history in event time with
// ReadTimePage, limit events a page, from the key `from`, and checks each
// page against want (the history in event-time order, after `from`):
// every page holds the next min(limit, remaining) events, and more is
// true exactly when events remain — so more is false at the end.
func checkReadInTime(t *testing.T, tr eventlog.TimeReader, ref model.Ref, from model.TimeKey, limit int, want []model.Event) {
	t.Helper()
	what := fmt.Sprintf("ReadTimePage(%s, after %v, limit %d)", ref, from, limit)
	read := 0
	for pages := 0; ; pages++ {
		if pages > len(want)+1 {
			t.Fatalf("%s: no end after %d pages: paging does not advance?", what, pages)
		}
		page, more, err := tr.ReadTimePage(t.Context(), ref, from, limit)
		if err != nil {
			t.Fatalf("%s, page %d: %v", what, pages, err)
		}
		n := min(limit, len(want)-read)
		if len(page) != n {
			t.Fatalf("%s, page %d: got %d events %s, want %s", what, pages, len(page), timeKeys(page), timeKeys(want[read:read+n]))
		}
		checkEvents(t, fmt.Sprintf("%s, page %d", what, pages), page, want[read:read+n])
		read += n
		if rest := len(want) - read; more != (rest > 0) {
			t.Fatalf("%s, page %d: more = %v with %d events left", what, pages, more, rest)
		}
		if !more {
			return
		}
		from = page[len(page)-1].TimeKey()
	}
}

// inTime collects EventsInTime.
func inTime(t *testing.T, l eventlog.Log, ref model.Ref, from model.TimeKey, pageSize int) []model.Event {
	t.Helper()
	return collect(t, fmt.Sprintf("EventsInTime(%s, after %v, page %d)", ref, from, pageSize),
		eventlog.EventsInTime(t.Context(), l, ref, from, pageSize), maxHistory)
}

// shuffledHistory builds n events of ref whose timestamps are a shuffle
// (three events a millisecond) and whose streams are picked at random
// from three, so that ties on the timestamp and on timestamp and stream
// are common.
func shuffledHistory(rng *rand.Rand, ref model.Ref, n int) []model.Event {
	streams := []string{"a", "ab", "b"}
	perm := rng.Perm(n)
	es := make([]model.Event, n)
	for i := range es {
		es[i] = NewEvent(ref, uint64(i)+1, "shuffled")
		es[i].Timestamp = base.Add(time.Duration(perm[i]/3) * time.Millisecond)
		es[i].StreamID = streams[rng.IntN(len(streams))]
	}
	return es
}
