package eventbus

import (
	"fmt"
	"testing"
	"time"

	"github.com/concursus-go/concursus/eventlog"
)

// The ledger's tests are scripts of steps on one ledger with one-second
// buckets, so that the instant at(s) falls in bucket s.

func at(s int64) time.Time { return time.Unix(s, 0) }

type ledgerStep struct {
	desc string
	do   func(l *ledger) string // what the step observed, compared with want
	want string
}

func prepare(s int64, n int) ledgerStep {
	return ledgerStep{desc: fmt.Sprintf("prepare %d marks at %d", n, s),
		do: func(l *ledger) string { return fmt.Sprintf("bucket %d", l.prepare(at(s), n)) }}
}

func settle(b int64, ok bool) ledgerStep {
	return ledgerStep{desc: fmt.Sprintf("settle a mark of %d, ok %v", b, ok),
		do: func(l *ledger) string { l.settle(b, ok); return "" }}
}

func abandon(b int64, n int) ledgerStep {
	return ledgerStep{desc: fmt.Sprintf("abandon %d marks of %d", n, b),
		do: func(l *ledger) string { l.abandon(b, n); return "" }}
}

// advance moves to s and, when the watermark is due, records it.
func advance(s int64) ledgerStep {
	return ledgerStep{desc: fmt.Sprintf("advance to %d", s),
		do: func(l *ledger) string {
			w, record := l.advance(at(s))
			if record {
				l.recorded(w)
			}
			return fmt.Sprintf("w %d record %v", w, record)
		}}
}

// advanceOnly moves to s and does not record the watermark (its write
// failed).
func advanceOnly(s int64) ledgerStep {
	return ledgerStep{desc: fmt.Sprintf("advance to %d, not recorded", s),
		do: func(l *ledger) string {
			w, record := l.advance(at(s))
			return fmt.Sprintf("w %d record %v", w, record)
		}}
}

func dirty() ledgerStep {
	return ledgerStep{desc: "oldest dirty",
		do: func(l *ledger) string {
			b, gen, ok := l.oldestDirty()
			if !ok {
				return "none"
			}
			return fmt.Sprintf("%d gen %d", b, gen)
		}}
}

func republished(b int64, gen int) ledgerStep {
	return ledgerStep{desc: fmt.Sprintf("republished %d gen %d", b, gen),
		do: func(l *ledger) string { l.republished(b, gen); return "" }}
}

func stats() ledgerStep {
	return ledgerStep{desc: "stats",
		do: func(l *ledger) string {
			w, out, d := l.stats()
			return fmt.Sprintf("stored %d outstanding %d dirty %d", w, out, d)
		}}
}

func adopt(own eventlog.OutboxWriter, now int64) ledgerStep {
	return ledgerStep{desc: fmt.Sprintf("adopt %+v at %d", own, now),
		do: func(l *ledger) string {
			start := l.firstBucket(own, at(now))
			lo, hi := l.adopt(own, start)
			if lo > hi {
				return fmt.Sprintf("start %d", start)
			}
			return fmt.Sprintf("start %d dirty %d..%d", start, lo, hi)
		}}
}

func closeCurrent() ledgerStep {
	return ledgerStep{desc: "close the current bucket",
		do: func(l *ledger) string { l.closeCurrent(); return "" }}
}

func forgetSettled() ledgerStep {
	return ledgerStep{desc: "forget settled buckets",
		do: func(l *ledger) string { l.forgetSettled(); return "" }}
}

func (s ledgerStep) is(want string) ledgerStep { s.want = want; return s }

// fresh is a new writer's start at 100: its watermark is set to 99 before
// its first mark.
var fresh = adopt(eventlog.OutboxWriter{Writer: "w"}, 100).is("start 100")

func TestLedger(t *testing.T) {
	for _, tc := range []struct {
		name  string
		steps []ledgerStep
	}{
		{"a fresh writer starts at now's bucket with nothing dirty", []ledgerStep{
			fresh,
			stats().is("stored 99 outstanding 0 dirty 0"),
			dirty().is("none"),
			advance(100).is("w 99 record false"),
		}},
		{"marks go to now's bucket and are counted", []ledgerStep{
			fresh,
			prepare(100, 2).is("bucket 100"),
			prepare(100, 1).is("bucket 100"),
			prepare(102, 3).is("bucket 102"),
			stats().is("stored 99 outstanding 6 dirty 0"),
		}},
		{"a clock going back keeps marking the current bucket", []ledgerStep{
			fresh,
			prepare(105, 1).is("bucket 105"),
			prepare(101, 1).is("bucket 105"),
			advance(103).is("w 104 record true"), // nothing was marked below 105
			prepare(101, 1).is("bucket 105"),
			stats().is("stored 104 outstanding 3 dirty 0"),
		}},
		{"the open bucket holds the watermark even when settled", []ledgerStep{
			fresh,
			prepare(100, 1).is("bucket 100"),
			settle(100, true),
			advance(100).is("w 99 record false"),
			advance(101).is("w 100 record true"),
			stats().is("stored 100 outstanding 0 dirty 0"),
			advance(101).is("w 100 record false"),
		}},
		{"marks in flight hold the watermark until the last is settled", []ledgerStep{
			fresh,
			prepare(100, 2).is("bucket 100"),
			settle(100, true),
			advance(105).is("w 99 record false"),
			settle(100, true),
			advance(105).is("w 104 record true"),
		}},
		{"an older bucket in flight holds a newer settled one", []ledgerStep{
			fresh,
			prepare(100, 1).is("bucket 100"),
			prepare(101, 1).is("bucket 101"),
			settle(101, true),
			advance(103).is("w 99 record false"),
			settle(100, true),
			advance(103).is("w 102 record true"),
		}},
		{"a failed mark makes its bucket dirty until republished", []ledgerStep{
			fresh,
			prepare(100, 2).is("bucket 100"),
			settle(100, true),
			settle(100, false),
			stats().is("stored 99 outstanding 0 dirty 1"),
			dirty().is("100 gen 1"),
			advance(110).is("w 99 record false"),
			republished(100, 1),
			dirty().is("none"),
			advance(110).is("w 109 record true"),
			stats().is("stored 109 outstanding 0 dirty 0"),
		}},
		{"a bucket dirtied again during its republication stays dirty", []ledgerStep{
			fresh,
			prepare(100, 2).is("bucket 100"),
			settle(100, false),
			dirty().is("100 gen 1"),
			settle(100, false), // while the republication of gen 1 runs
			republished(100, 1),
			dirty().is("100 gen 2"),
			advance(103).is("w 99 record false"),
			republished(100, 2),
			dirty().is("none"),
			advance(103).is("w 102 record true"),
		}},
		{"a dirty bucket republished while marks are in flight waits for them", []ledgerStep{
			fresh,
			prepare(100, 2).is("bucket 100"),
			settle(100, false),
			republished(100, 1),
			advance(103).is("w 99 record false"),
			settle(100, true),
			advance(103).is("w 102 record true"),
		}},
		{"new marks in a dirty bucket do not change its generation", []ledgerStep{
			fresh,
			prepare(100, 1).is("bucket 100"),
			settle(100, false),
			prepare(100, 1).is("bucket 100"),
			settle(100, true),
			dirty().is("100 gen 1"),
			republished(100, 1),
			dirty().is("none"),
		}},
		{"the oldest dirty bucket comes first; the watermark stops below it", []ledgerStep{
			fresh,
			prepare(100, 1).is("bucket 100"),
			prepare(101, 1).is("bucket 101"),
			prepare(103, 1).is("bucket 103"),
			settle(103, false),
			settle(101, false),
			settle(100, true),
			dirty().is("101 gen 1"),
			advance(105).is("w 100 record true"),
			republished(101, 1),
			dirty().is("103 gen 1"),
			advance(105).is("w 102 record true"),
			republished(103, 1),
			advance(105).is("w 104 record true"),
		}},
		{"republishing a released or unknown bucket changes nothing", []ledgerStep{
			fresh,
			republished(100, 0),
			republished(42, 1),
			stats().is("stored 99 outstanding 0 dirty 0"),
			dirty().is("none"),
		}},
		{"abandoned marks release their bucket", []ledgerStep{
			fresh,
			prepare(100, 3).is("bucket 100"),
			abandon(100, 3),
			stats().is("stored 99 outstanding 0 dirty 0"),
			advance(101).is("w 100 record true"),
		}},
		{"no watermark write when nothing was marked since the last", []ledgerStep{
			fresh,
			advance(200).is("w 199 record false"),
			stats().is("stored 99 outstanding 0 dirty 0"),
			prepare(200, 1).is("bucket 200"),
			settle(200, true),
			advance(201).is("w 200 record true"),
			advance(300).is("w 299 record false"),
			stats().is("stored 200 outstanding 0 dirty 0"),
		}},
		{"a watermark whose write failed is due again", []ledgerStep{
			fresh,
			prepare(100, 1).is("bucket 100"),
			settle(100, true),
			advanceOnly(101).is("w 100 record true"),
			advanceOnly(102).is("w 101 record true"),
			advance(102).is("w 101 record true"),
			advance(102).is("w 101 record false"),
		}},
		{"closing lets the watermark pass the current bucket", []ledgerStep{
			fresh,
			prepare(100, 1).is("bucket 100"),
			settle(100, true),
			advance(100).is("w 99 record false"),
			closeCurrent(),
			advance(100).is("w 100 record true"),
		}},
		{"closing does not release a bucket in flight", []ledgerStep{
			fresh,
			prepare(100, 1).is("bucket 100"),
			closeCurrent(),
			advance(100).is("w 99 record false"),
		}},
		{"a restart takes over the buckets above its watermark, dirty", []ledgerStep{
			adopt(eventlog.OutboxWriter{Writer: "w", Published: 95, Last: 98}, 100).is("start 100 dirty 96..98"),
			stats().is("stored 95 outstanding 0 dirty 3"),
			dirty().is("96 gen 1"),
			advance(100).is("w 95 record false"),
			prepare(100, 1).is("bucket 100"),
			republished(96, 1),
			republished(97, 1),
			advance(100).is("w 97 record true"),
			republished(98, 1),
			settle(100, true),
			advance(101).is("w 100 record true"),
		}},
		{"a restart with a clock behind the previous run marks after it", []ledgerStep{
			adopt(eventlog.OutboxWriter{Writer: "w", Published: 110, Last: 120}, 100).is("start 121 dirty 111..120"),
			prepare(100, 1).is("bucket 121"),
			advance(100).is("w 110 record false"),
		}},
		{"a restart after a clean stop has nothing dirty", []ledgerStep{
			adopt(eventlog.OutboxWriter{Writer: "w", Published: 98, Last: 98}, 100).is("start 100"),
			stats().is("stored 98 outstanding 0 dirty 0"),
			advance(100).is("w 99 record false"),
		}},
		{"a restart right after a recorded watermark starts after it", []ledgerStep{
			adopt(eventlog.OutboxWriter{Writer: "w", Published: 130, Last: 98}, 100).is("start 131"),
			prepare(100, 1).is("bucket 131"),
		}},
		{"without an outbox settled buckets are forgotten, dirty or not", []ledgerStep{
			prepare(100, 1).is("bucket 100"),
			prepare(100, 1).is("bucket 100"),
			prepare(101, 1).is("bucket 101"),
			settle(100, false),
			settle(100, true),
			forgetSettled(),
			stats().is("stored 0 outstanding 1 dirty 0"),
			dirty().is("none"),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLedger(time.Second)
			for i, s := range tc.steps {
				if got := s.do(l); got != s.want {
					t.Fatalf("step %d (%s): got %q, want %q", i+1, s.desc, got, s.want)
				}
			}
		})
	}
}

func TestLedgerBuckets(t *testing.T) {
	l := newLedger(5 * time.Second)
	for _, tc := range []struct {
		t    time.Time
		want int64
	}{
		{time.Unix(0, 0), 0},
		{time.Unix(4, 999_999_999), 0},
		{time.Unix(5, 0), 1},
		{time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC).Unix() / 5},
	} {
		if got := l.bucketOf(tc.t); got != tc.want {
			t.Errorf("bucketOf(%v) = %d, want %d", tc.t, got, tc.want)
		}
	}
}

func TestPendingRange(t *testing.T) {
	for _, tc := range []struct {
		w      eventlog.OutboxWriter
		lo, hi int64
	}{
		{eventlog.OutboxWriter{}, 1, 0},
		{eventlog.OutboxWriter{Published: 10, Last: 10}, 1, 0},
		{eventlog.OutboxWriter{Published: 12, Last: 10}, 1, 0},
		{eventlog.OutboxWriter{Published: 10, Last: 13}, 11, 13},
		// A watermark never set: the newest maxPendingBuckets buckets.
		{eventlog.OutboxWriter{Published: 0, Last: 5}, 1, 5},
		{eventlog.OutboxWriter{Published: 0, Last: 10_000}, 10_000 - maxPendingBuckets + 1, 10_000},
	} {
		if lo, hi := pendingRange(tc.w); lo != tc.lo || hi != tc.hi {
			t.Errorf("pendingRange(%+v) = %d..%d, want %d..%d", tc.w, lo, hi, tc.lo, tc.hi)
		}
	}
}
