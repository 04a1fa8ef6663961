package eventbus

import (
	"time"

	"github.com/concursus-go/concursus/eventlog"
)

// ledger is a Publisher's account of its outbox buckets: how many marks
// of each time bucket are still in flight, which buckets must be published
// again from the log, and how far the writer's watermark may move. It is a
// pure state machine: time comes in as an argument, it does no I/O, starts
// no goroutine and takes no lock (the Publisher calls it under its mutex).
// The Publisher does the outbox writes and the sending it asks for.
//
// What each call does to a bucket b:
//
//	prepare(now, n)      b is now's bucket (or the current one, if later):
//	                     outstanding += n
//	abandon(b, n)        outstanding -= n (the marks were never written)
//	settle(b, ok)        outstanding--
//	settle(b, failed)    outstanding--, dirty, gen++
//	republished(b, g)    dirty cleared if gen is still g
//	advance(now)         b forgotten once b <= watermark
//
// and a bucket's life, as the Publisher drives it:
//
//	         prepare              settle ok        now past b, and no
//	(none) ──────────► in flight ───────────► settled ──older bucket held──► released
//	                     │                      ▲
//	       settle failed │                      │ republished(b, gen), no failure
//	                     ▼                      │ since (in flight again if marks
//	                  dirty, gen+1 ─────────────┘ of b still are)
//
// A bucket holds the watermark while it has marks in flight or is dirty;
// the watermark is the bucket before the oldest bucket held, and never
// reaches the current bucket (marks may still go to it). The generation
// lets a republication that began before a new failure in the same bucket
// leave the bucket dirty: only the failures it read can be covered by it.
type ledger struct {
	length  time.Duration // of a bucket
	current int64         // newest bucket handed out; marks never go below it
	buckets map[int64]*bucketState
	stored  int64 // the watermark recorded in the outbox
	// maxMarked is the newest bucket that holds a mark, of this run or a
	// previous one: a watermark write is due only when it is above stored.
	maxMarked int64
}

type bucketState struct {
	outstanding int  // marks prepared and not yet settled
	dirty       bool // a mark failed: republish the bucket from the log
	gen         int  // bumped each time a mark of the bucket fails
}

func newLedger(length time.Duration) *ledger {
	return &ledger{length: length, buckets: make(map[int64]*bucketState)}
}

// bucketOf is the bucket holding instant t: the Unix time in bucket
// lengths.
func (l *ledger) bucketOf(t time.Time) int64 { return t.UnixNano() / int64(l.length) }

func (l *ledger) state(b int64) *bucketState {
	st := l.buckets[b]
	if st == nil {
		st = &bucketState{}
		l.buckets[b] = st
	}
	return st
}

// firstBucket is where a run of writer own, as read from the outbox,
// starts marking at now: after every bucket a previous run marked or
// recorded as published, and not before now's bucket.
func (l *ledger) firstBucket(own eventlog.OutboxWriter, now time.Time) int64 {
	return max(l.current, l.bucketOf(now), own.Last+1, own.Published+1)
}

// adopt takes over the position of writer own as read from the outbox:
// the buckets a previous run may have left unpublished (pendingRange)
// become dirty, and marks go to start (from firstBucket) and later. When
// own had no watermark, the caller has recorded start-1 before calling.
// It returns the range made dirty (empty when lo > hi).
func (l *ledger) adopt(own eventlog.OutboxWriter, start int64) (lo, hi int64) {
	l.stored = own.Published
	if l.stored == 0 {
		l.stored = start - 1
	}
	l.maxMarked = max(l.maxMarked, own.Last)
	l.current = start
	lo, hi = pendingRange(own)
	for b := lo; b <= hi; b++ {
		l.buckets[b] = &bucketState{dirty: true, gen: 1}
	}
	return lo, hi
}

// prepare accounts for n marks about to be written at now and returns
// their bucket: now's bucket, or the current one if the clock went back.
// Each mark is then settled once, or abandoned.
func (l *ledger) prepare(now time.Time, n int) int64 {
	b := max(l.bucketOf(now), l.current)
	l.current = b
	l.state(b).outstanding += n
	l.maxMarked = max(l.maxMarked, b)
	return b
}

// abandon takes back n marks of bucket b that were never written.
func (l *ledger) abandon(b int64, n int) {
	l.state(b).outstanding -= n
}

// settle resolves one mark of bucket b: its events are on the bus (ok), or
// they may not be and the bucket is dirty.
func (l *ledger) settle(b int64, ok bool) {
	st := l.state(b)
	st.outstanding--
	if !ok {
		st.dirty = true
		st.gen++
	}
}

// advance moves to now and computes the watermark w: the newest bucket
// below now's (or the current) one with no bucket at or below it held by
// marks in flight or dirty. It forgets the buckets at or below w. record
// tells whether w should be written to the outbox (then call recorded
// once it is): it moved past the recorded watermark and something was
// marked since that was recorded.
func (l *ledger) advance(now time.Time) (w int64, record bool) {
	l.current = max(l.current, l.bucketOf(now))
	w = l.current - 1
	for b, st := range l.buckets {
		if st.outstanding > 0 || st.dirty {
			w = min(w, b-1)
		}
	}
	for b := range l.buckets {
		if b <= w {
			delete(l.buckets, b)
		}
	}
	return w, l.maxMarked > l.stored && w > l.stored
}

// recorded notes that watermark w is in the outbox.
func (l *ledger) recorded(w int64) { l.stored = max(l.stored, w) }

// oldestDirty is the oldest dirty bucket and its generation, to pass to
// republished once it has been published from the log; ok is false when
// no bucket is dirty.
func (l *ledger) oldestDirty() (b int64, gen int, ok bool) {
	for bb, st := range l.buckets {
		if st.dirty && (!ok || bb < b) {
			b, gen, ok = bb, st.gen, true
		}
	}
	return b, gen, ok
}

// republished notes that bucket b's marks, read when it was at generation
// gen, were published from the log: the bucket is clean unless a mark of
// it failed since.
func (l *ledger) republished(b int64, gen int) {
	if st := l.buckets[b]; st != nil && st.gen == gen {
		st.dirty = false
	}
}

// closeCurrent ends the current bucket (the publisher is closing: nothing
// more is marked), so the watermark may pass it once it is settled.
func (l *ledger) closeCurrent() { l.current++ }

// forgetSettled drops the buckets with no marks in flight, dirty or not:
// without an outbox there is nothing to republish from.
func (l *ledger) forgetSettled() {
	for b, st := range l.buckets {
		if st.outstanding == 0 {
			delete(l.buckets, b)
		}
	}
}

// stats reports the recorded watermark, the marks in flight and the dirty
// buckets.
func (l *ledger) stats() (watermark int64, outstanding, dirty int) {
	for _, st := range l.buckets {
		outstanding += st.outstanding
		if st.dirty {
			dirty++
		}
	}
	return l.stored, outstanding, dirty
}

// maxPendingBuckets bounds the range of buckets searched for a writer
// whose watermark was never set (not written by this package).
const maxPendingBuckets = 4096

// pendingRange is the range of w's buckets that may hold unpublished
// marks (empty when lo > hi).
func pendingRange(w eventlog.OutboxWriter) (lo, hi int64) {
	if !w.Pending() {
		return 1, 0
	}
	lo = w.Published + 1
	if w.Published == 0 {
		lo = max(1, w.Last-maxPendingBuckets+1)
	}
	return lo, w.Last
}
