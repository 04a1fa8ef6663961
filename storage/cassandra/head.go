package cassandra

import (
	"context"
	"fmt"
	"math"

	"github.com/concursus-go/concursus/eventlog"
)

var _ eventlog.HeadChecker = (*EventLog)(nil)

// CheckHead implements eventlog.HeadChecker with Paxos (serial) reads of the
// head of the bucket that holds the expected sequence, at most
// Config.AppendConcurrency at a time. A serial read completes any
// conditional batch still in flight in that partition, so it sees every
// append that any writer could still make count: when it finds the head at
// the expected sequence, the history ended there at the instant of the
// read. When the expected sequence closes a full bucket, the next bucket
// (which only an append after it can open) is read too, after the first
// read: both facts then hold at the instant of the second. The check writes
// nothing, so its cost is one Paxos read (two across a bucket boundary),
// about half a conditional write.
func (l *EventLog) CheckHead(ctx context.Context, heads []eventlog.Head) []error {
	errs := make([]error, len(heads))
	l.eachOpen(ctx, l.s.cfg.AppendConcurrency, errs,
		func(i int) string { return "check the head of " + heads[i].Ref.String() },
		func(i int) error { return l.checkHead(ctx, heads[i]) })
	return errs
}

// checkHead checks one head.
func (l *EventLog) checkHead(ctx context.Context, h eventlog.Head) error {
	s := l.s
	ref := h.Ref
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: cassandra: check the head of %s: %w", eventlog.ErrUnavailable, ref, err)
	}
	conflict := func(actual int64) error {
		s.cache.drop(ref)
		return eventlog.ConflictError(ref, h.Sequence, uint64(max(actual, 0)))
	}
	fail := func(what string, err error) error {
		return l.wrap(fmt.Sprintf("check the head of %s at %d: %s", ref, h.Sequence, what), err)
	}
	if h.Sequence > math.MaxInt64 || ref.Validate() != nil {
		return conflict(0)
	}
	e := int64(h.Sequence)
	if e == 0 {
		// The first append goes to bucket 0; while it has no head, the
		// aggregate has no events.
		head, ok, err := l.head(ctx, ref, 0, true)
		if err != nil {
			return fail("read the head of bucket 0", err)
		}
		if ok {
			return conflict(head)
		}
		return nil
	}
	at, found, err := l.positionOf(ctx, ref, e)
	if err != nil {
		return fail("locate the bucket of the sequence", err)
	}
	if !found {
		return conflict(0)
	}
	head, ok, err := l.head(ctx, ref, at.bucket, true)
	if err != nil {
		return fail(fmt.Sprintf("read the head of bucket %d", at.bucket), err)
	}
	if !ok || head != e {
		return conflict(head)
	}
	if e-at.first+1 >= int64(s.cfg.BucketSize) {
		// e fills its bucket: the next append opens the next bucket.
		next, ok, err := l.head(ctx, ref, at.bucket+1, true)
		if err != nil {
			return fail(fmt.Sprintf("read the head of bucket %d", at.bucket+1), err)
		}
		if ok {
			return conflict(next)
		}
	}
	at.head = e
	s.cache.advance(ref, at)
	return nil
}
