package cassandra

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/gocql/gocql"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

// The event-time table (events_by_time) and how it is kept complete; see
// the package documentation, "Event time".

var _ eventlog.TimeReader = (*EventLog)(nil)

const (
	// timeBatchRows bounds the rows of one write into the time table, and
	// timeBatchBytes their payloads: a repair copies events of many
	// appends, and one batch is one mutation, which must fit Cassandra's
	// max_mutation_size.
	timeBatchRows  = 100
	timeBatchBytes = 1 << 20
	// repairPage is the page size a repair reads the log with.
	repairPage = 500
)

// timeIndex is what this process knows of the time table, and the test
// hook that makes writing it fail. Its zero value is ready.
type timeIndex struct {
	once sync.Once
	// known maps an aggregate to a sequence through which the time table
	// certainly holds its rows (head: an indexed_through this process
	// wrote or read). Claims never become false (nothing deletes rows),
	// so a known value stays true; it is only a lower bound.
	known *positionCache
	// fail, when set (by tests, before the store is used), is called
	// before each write into the time table; an error fails the write.
	fail func(ref model.Ref) error
}

// knownThrough returns the cache of what the time table holds, made on
// first use with the store's CacheSize.
func (l *EventLog) knownThrough() *positionCache {
	l.time.once.Do(func() { l.time.known = newPositionCache(l.s.cfg.CacheSize) })
	return l.time.known
}

// indexAppend writes the events of an append whose conditional batch
// applied into the time table. It claims indexed_through = the append's
// last sequence only when this process knows the table holds every
// sequence up to Expected (its cache): otherwise the claim could cover the
// rows of an earlier append whose own write failed. On a cache miss it
// writes the rows without a claim rather than read the table first (that
// read would cost the append path a round trip on every cold aggregate);
// the next ReadTimePage then finds indexed_through behind the head and
// rewrites those rows with the claim. An error leaves the append durable;
// ReadTimePage repairs what is missing.
func (l *EventLog) indexAppend(ctx context.Context, a *eventlog.Append) error {
	ref, e := a.Ref, int64(a.Expected)
	claim := e == 0
	if at, ok := l.knownThrough().get(ref); ok && at.head >= e {
		claim = true
	}
	return l.writeTimeRows(ctx, ref, a.Events, claim)
}

// writeTimeRows writes es (consecutive sequences of ref) into the time
// table, in batches of at most timeBatchRows rows and timeBatchBytes of
// payload, one after the other. Each is an unlogged batch in the one
// partition of ref, which Cassandra applies atomically as one mutation;
// with claim, the last also sets indexed_through to the last sequence of
// es — after every row of es was written.
func (l *EventLog) writeTimeRows(ctx context.Context, ref model.Ref, es []model.Event, claim bool) error {
	s := l.s
	for start := 0; start < len(es); {
		end, size := start, 0
		for end < len(es) && end-start < timeBatchRows && (end == start || size+len(es[end].Payload) <= timeBatchBytes) {
			size += len(es[end].Payload)
			end++
		}
		b := s.session.NewBatch(gocql.UnloggedBatch).WithContext(ctx)
		b.SetConsistency(s.cons)
		b.RetryPolicy(s.readRetry)
		for i := start; i < end; i++ {
			b.Query(s.q.insertTimeEvent, timeEventValues(ref, &es[i])...)
		}
		last := int64(es[end-1].Sequence)
		if claim && end == len(es) {
			b.Query(s.q.setIndexedThrough, last, ref.Type, ref.ID)
		}
		if fail := l.time.fail; fail != nil {
			if err := fail(ref); err != nil {
				l.knownThrough().drop(ref)
				return err
			}
		}
		if err := s.session.ExecuteBatch(b); err != nil {
			l.knownThrough().drop(ref)
			return err
		}
		start = end
	}
	if claim && len(es) > 0 {
		l.knownThrough().advance(ref, position{head: int64(es[len(es)-1].Sequence)})
	}
	return nil
}

// timeEventValues returns the values of insertTimeEvent for e: those of
// insertEvent without the bucket.
func timeEventValues(ref model.Ref, e *model.Event) []any {
	v := eventValues(ref, 0, e)
	return append(v[:2:2], v[3:]...)
}

// indexedThrough reads ref's indexed_through (0 when the table holds no
// claim for it).
func (l *EventLog) indexedThrough(ctx context.Context, ref model.Ref) (int64, error) {
	s := l.s
	var through *int64
	err := s.session.Query(s.q.selectIndexedThrough, ref.Type, ref.ID).
		WithContext(ctx).Consistency(s.cons).RetryPolicy(s.readRetry).Scan(&through)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, err
	case through == nil:
		return 0, nil
	}
	l.knownThrough().advance(ref, position{head: *through})
	return *through, nil
}

// ReadTimePage implements eventlog.TimeReader. It reads the head of the
// log (LastSequence), then the page from the time table with a tuple
// comparison on its clustering columns and a LIMIT of one more row than
// the page (the extra row says more=true), and with it indexed_through.
// When indexed_through is behind the head — a write into the time table
// failed, or the history predates the table — it first copies the missing
// events from the log (repair) and reads the page again. So a page holds
// every event appended before the call, whatever became of the writes
// into the time table, and memory holds one page (and, during a repair,
// one page of the log).
func (l *EventLog) ReadTimePage(ctx context.Context, ref model.Ref, after model.TimeKey, limit int) ([]model.Event, bool, error) {
	what := func() string { return fmt.Sprintf("read %s in event time after %v", ref, after) }
	if err := l.Check(ctx, what); err != nil {
		return nil, false, err
	}
	if limit <= 0 {
		return nil, false, fmt.Errorf("cassandra: %s: limit %d is not positive", what(), limit)
	}
	if ref.Validate() != nil {
		return nil, false, nil // no such aggregate can have been written
	}
	head, err := l.LastSequence(ctx, ref)
	if err != nil {
		return nil, false, fmt.Errorf("%s: %w", what(), err)
	}
	page, more, through, err := l.timePage(ctx, ref, after, limit)
	if err != nil {
		return nil, false, l.wrap(what(), err)
	}
	if through < 0 { // the page had no row to carry indexed_through
		if through, err = l.indexedThrough(ctx, ref); err != nil {
			return nil, false, l.wrap(what()+": read indexed_through", err)
		}
	}
	if uint64(through) >= head {
		return page, more, nil
	}
	if err := l.repairTime(ctx, ref, through); err != nil {
		return nil, false, l.wrap(fmt.Sprintf("%s: copy the events after %d into the time table", what(), through), err)
	}
	page, more, _, err = l.timePage(ctx, ref, after, limit)
	if err != nil {
		return nil, false, l.wrap(what(), err)
	}
	return page, more, nil
}

// timePage reads up to limit events of ref after `after` from the time
// table, and the indexed_through its rows carry (-1 when no row came
// back; 0 when the table holds no claim).
func (l *EventLog) timePage(ctx context.Context, ref model.Ref, after model.TimeKey, limit int) (page []model.Event, more bool, through int64, err error) {
	s := l.s
	ms, stream, seq := millisKey(after)
	rows := limit + 1
	if limit >= math.MaxInt32 {
		rows = math.MaxInt32
	}
	iter := s.session.Query(s.q.selectTimePage, ref.Type, ref.ID, ms, stream, seq, rows).
		WithContext(ctx).Consistency(s.cons).RetryPolicy(s.readRetry).PageSize(min(rows, 1000)).Iter()
	var (
		row     eventRow
		claimed *int64
	)
	dest := append([]any{&claimed}, row.dest()...)
	through = -1
	for {
		row.payload = nil // the driver appends into a non-nil slice: never share one
		if !iter.Scan(dest...) {
			break
		}
		if through = 0; claimed != nil {
			through = *claimed
		}
		if len(page) == limit {
			more = true
			break
		}
		if page == nil {
			page = make([]model.Event, 0, min(limit, 64))
		}
		page = append(page, row.event(ref))
	}
	if err := iter.Close(); err != nil {
		return nil, false, 0, err
	}
	return page, more, through, nil
}

// repairTime copies ref's events after sequence through from the log into
// the time table, a page of the log at a time, each page's rows written
// before the claim that covers them (writeTimeRows), so indexed_through
// never claims a row that is not there. Two repairs, or a repair and an
// append, may race: they write the same rows with the same values, and
// every claim either makes is true.
func (l *EventLog) repairTime(ctx context.Context, ref model.Ref, through int64) error {
	from := uint64(through) + 1
	for from != 0 {
		page, next, err := l.ReadPage(ctx, ref, from, repairPage)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		if page[0].Sequence != from || page[len(page)-1].Sequence != from+uint64(len(page))-1 {
			return fmt.Errorf("%w: the log read from %d returned sequences %d to %d", ErrCorrupt, from, page[0].Sequence, page[len(page)-1].Sequence)
		}
		if err := l.writeTimeRows(ctx, ref, page, true); err != nil {
			return err
		}
		from = next
	}
	return nil
}

// millisKey returns the values of the clustering columns after which
// exactly the events after k come, at the milliseconds the table keeps.
// The zero key becomes the smallest timestamp (every event sorts after
// it: no event has sequence 0). A key finer than a millisecond sorts
// after every event stamped in its millisecond and before every event
// stamped later, as does the start of the next millisecond.
func millisKey(k model.TimeKey) (ms int64, stream string, seq int64) {
	switch {
	case k.IsZero():
		return math.MinInt64, "", 0
	case k.Timestamp.Nanosecond()%int(time.Millisecond) != 0:
		return k.Timestamp.UnixMilli() + 1, "", 0
	case k.Sequence > math.MaxInt64:
		// No event has such a sequence: after it come the events of the
		// next stream (a stream id one byte longer sorts right after).
		return k.Timestamp.UnixMilli(), k.StreamID + "\x00", -1
	}
	return k.Timestamp.UnixMilli(), k.StreamID, int64(k.Sequence)
}
