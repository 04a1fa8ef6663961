package eventlog

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/concursus-go/concursus/model"
)

// TimeReader is an optional capability of a Log: reading a history in
// event-time order (model.TimeKey: timestamp, stream id, sequence) a page
// at a time, so that a fold in event time needs memory for one page, not
// for the whole history. Every store in this module implements it; see
// each store's package doc for how it keeps the order.
//
// ReadTimePage returns up to limit events of ref whose key sorts strictly
// after `after` (the zero key: from the first event), in event-time order,
// and more=true when further events may follow. limit must be positive.
// A page reflects at least every append acknowledged before the call
// started; events appended during a paging may or may not appear, but an
// event is never returned twice in one paging that moves `after` forward,
// and every event returned is in the log. Errors from a cancelled ctx wrap
// ctx.Err(); a store failure wraps ErrUnavailable.
type TimeReader interface {
	ReadTimePage(ctx context.Context, ref model.Ref, after model.TimeKey, limit int) (events []model.Event, more bool, err error)
}

// EventsInTime streams ref's history in event-time order, starting after
// the key `after` (the zero key for all of it), pageSize events at a time
// (DefaultPageSize if <= 0). With a Log that is not a TimeReader it reads
// the whole history and sorts it, which needs memory for all of it. The
// stream stops at the first error, which it yields with a zero event.
func EventsInTime(ctx context.Context, log Log, ref model.Ref, after model.TimeKey, pageSize int) iter.Seq2[model.Event, error] {
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	tr, ok := log.(TimeReader)
	if !ok {
		return sortedInMemory(ctx, log, ref, after, pageSize)
	}
	return func(yield func(model.Event, error) bool) {
		for {
			page, more, err := tr.ReadTimePage(ctx, ref, after, pageSize)
			if err != nil {
				yield(model.Event{}, err)
				return
			}
			for i := range page {
				if k := page[i].TimeKey(); !after.Before(k) {
					yield(model.Event{}, fmt.Errorf("%w: %s: store returned %v after %v in event-time order", ErrUnavailable, ref, k, after))
					return
				}
				after = page[i].TimeKey()
				if !yield(page[i], nil) {
					return
				}
			}
			if !more || len(page) == 0 {
				return
			}
		}
	}
}

// EventsInTimeUntil streams the event-time prefix of ref's history up to
// and including instant asOf: the events stamped at or before it, in
// event-time order. It stops reading at the first event stamped later, so
// it reads no more of the history than the prefix (plus one page).
func EventsInTimeUntil(ctx context.Context, log Log, ref model.Ref, asOf time.Time, pageSize int) iter.Seq2[model.Event, error] {
	return func(yield func(model.Event, error) bool) {
		for e, err := range EventsInTime(ctx, log, ref, model.TimeKey{}, pageSize) {
			if err == nil && e.Timestamp.After(asOf) {
				return
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// sortedInMemory is EventsInTime for a Log without TimeReader.
func sortedInMemory(ctx context.Context, log Log, ref model.Ref, after model.TimeKey, pageSize int) iter.Seq2[model.Event, error] {
	return func(yield func(model.Event, error) bool) {
		var all []model.Event
		for e, err := range Events(ctx, log, ref, 1, pageSize) {
			if err != nil {
				yield(model.Event{}, err)
				return
			}
			if after.Before(e.TimeKey()) {
				all = append(all, e)
			}
		}
		slices.SortFunc(all, func(a, b model.Event) int { return a.TimeKey().Compare(b.TimeKey()) })
		for _, e := range all {
			if !yield(e, nil) {
				return
			}
		}
	}
}
