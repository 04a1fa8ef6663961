package cassandra

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/gocql/gocql"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

var _ eventlog.Log = (*EventLog)(nil)

// maxAppendEvents bounds the events of one append: they go into one batch,
// which also carries the head update, and a batch holds at most 65535
// statements.
const maxAppendEvents = math.MaxUint16 - 1

// EventLog is the event log of a Store; get it with Store.EventLog. It is
// also the store's eventlog.Outbox (outbox.go). It is safe for concurrent
// use.
type EventLog struct {
	s *Store
	view
	// time is what the process knows of the event-time table
	// (eventtime.go).
	time timeIndex
}

// Append implements eventlog.Log. Entries are written concurrently (at most
// Config.AppendConcurrency at a time), each by one conditional batch in one
// partition; see the package documentation for the protocol. An entry's
// error wraps eventlog.ErrConflict when its Expected was stale or ahead
// (nothing of it was written), eventlog.ErrInvalidAppend when it is
// malformed, and eventlog.ErrUnavailable when Cassandra failed or the
// context ended — the entry may or may not have been written then, so the
// caller must reload before deciding again.
func (l *EventLog) Append(ctx context.Context, batch []eventlog.Append) []error {
	errs := make([]error, len(batch))
	if len(batch) == 0 {
		return errs
	}
	wrap := func(i int, err error) error {
		return fmt.Errorf("cassandra: append %s after %d: %w", batch[i].Ref, batch[i].Expected, err)
	}
	unavailable := func(i int, err error) error { return wrap(i, fmt.Errorf("%w: %w", eventlog.ErrUnavailable, err)) }
	if err := l.Ready(ctx); err != nil {
		for i := range batch {
			errs[i] = wrap(i, err)
		}
		return errs
	}
	for i := range batch {
		errs[i] = checkAppend(&batch[i])
	}
	each(ctx, l.s.cfg.AppendConcurrency, errs,
		func(i int) error { return l.appendOne(ctx, &batch[i]) }, unavailable)
	return errs
}

// checkAppend is eventlog.CheckAppend plus this store's limits.
func checkAppend(a *eventlog.Append) error {
	if err := eventlog.CheckAppend(a); err != nil {
		return err
	}
	if len(a.Events) > maxAppendEvents {
		return fmt.Errorf("%w: %s: %d events in one append, limit %d", eventlog.ErrInvalidAppend, a.Ref, len(a.Events), maxAppendEvents)
	}
	if a.Expected > math.MaxInt64-uint64(len(a.Events)) {
		return fmt.Errorf("%w: %s: sequence %d+%d does not fit a bigint", eventlog.ErrInvalidAppend, a.Ref, a.Expected, len(a.Events))
	}
	for i := range a.Events {
		if v := a.Events[i].Version; v < math.MinInt32 || v > math.MaxInt32 {
			return fmt.Errorf("%w: %s: event %d has version %d, which does not fit an int", eventlog.ErrInvalidAppend, a.Ref, a.Events[i].Sequence, v)
		}
	}
	return nil
}

// appendOne writes one valid entry: it finds the partition the append goes
// into (THE RULE, see the package documentation), and writes the events and
// the partition's new head in one conditional batch.
func (l *EventLog) appendOne(ctx context.Context, a *eventlog.Append) error {
	s := l.s
	ref, e, n := a.Ref, int64(a.Expected), int64(len(a.Events))
	fail := func(what string, err error) error {
		s.cache.drop(ref)
		return l.wrap(fmt.Sprintf("append %s after %d: %s", ref, e, what), err)
	}
	conflict := func(actual int64) error {
		s.cache.drop(ref)
		return eventlog.ConflictError(ref, a.Expected, uint64(max(actual, 0)))
	}

	if at, cached := s.cache.get(ref); cached && at.head > e {
		// The history certainly holds events after e: the writer is stale.
		// The entry is still true, so it stays.
		return eventlog.ConflictError(ref, a.Expected, uint64(at.head))
	}
	var (
		target position // the partition written: its bucket and first sequence
		full   = int32(-1)
	)
	if e == 0 {
		target = position{bucket: 0, first: 1}
	} else {
		at, found, err := l.positionOf(ctx, ref, e)
		if err != nil {
			return fail("locate the bucket of its expected sequence", err)
		}
		if !found {
			return conflict(0)
		}
		if e-at.first+1 >= int64(s.cfg.BucketSize) {
			full = at.bucket
			target = position{bucket: at.bucket + 1, first: e + 1}
		} else {
			target = position{bucket: at.bucket, first: at.first}
		}
	}
	newBucket := target.first == e+1

	if full >= 0 {
		// The bucket holding e is full, so the append opens the next one.
		// Check, linearizably, that e is the head of the full bucket: only
		// then is e+1 the first sequence of the next (a writer whose e lies
		// inside the full bucket must not create an index row).
		head, ok, err := l.head(ctx, ref, full, true)
		if err != nil {
			return fail(fmt.Sprintf("read the head of bucket %d", full), err)
		}
		if !ok || head != e {
			return conflict(head)
		}
	}
	if newBucket {
		// Deterministic and idempotent: every writer that gets here for this
		// bucket writes the same row.
		err := s.session.Query(s.q.insertBucket, ref.Type, ref.ID, target.bucket, target.first).
			WithContext(ctx).Consistency(s.cons).RetryPolicy(s.readRetry).Idempotent(true).Exec()
		if err != nil {
			return fail(fmt.Sprintf("index bucket %d", target.bucket), err)
		}
	}

	b := s.session.NewBatch(gocql.UnloggedBatch).WithContext(ctx)
	b.SetConsistency(s.cons)
	b.SerialConsistency(s.serial)
	b.RetryPolicy(s.lwtRetry)
	if newBucket {
		b.Query(s.q.setHeadIfNull, e+n, ref.Type, ref.ID, target.bucket)
	} else {
		b.Query(s.q.setHead, e+n, ref.Type, ref.ID, target.bucket, e)
	}
	for i := range a.Events {
		b.Query(s.q.insertEvent, eventValues(ref, target.bucket, &a.Events[i])...)
	}
	result := make(map[string]any, 8)
	applied, iter, err := s.session.MapExecuteBatchCAS(b, result)
	if iter != nil {
		if cerr := iter.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fail(fmt.Sprintf("conditional batch into bucket %d", target.bucket), err)
	}
	if !applied {
		head, _ := result["head"].(int64)
		return conflict(head)
	}
	target.head = e + n
	s.cache.advance(ref, target)
	// The events are durable: a failure to put them into the event-time
	// table does not fail the append. ReadTimePage copies what is missing.
	if err := l.indexAppend(ctx, a); err != nil {
		s.cfg.Logger.Warn("cassandra: events appended but not written into the event-time table; ReadTimePage will copy them from the log",
			"aggregate", ref.String(), "first", e+1, "last", e+n, "err", err)
	}
	return nil
}

// positionOf returns the bucket holding sequence seq (> 0): the cached
// position when its head is seq, else the bucket index's answer (locate).
func (l *EventLog) positionOf(ctx context.Context, ref model.Ref, seq int64) (at position, found bool, err error) {
	if at, cached := l.s.cache.get(ref); cached && at.head == seq {
		return at, true, nil
	}
	return l.locate(ctx, ref, seq)
}

// locate finds the bucket holding sequence seq: the newest bucket whose
// first sequence is at most seq. found is false when there is none (the
// aggregate has no bucket yet). It reads the index newest first and stops
// there, so the cost is one short read when seq is recent.
func (l *EventLog) locate(ctx context.Context, ref model.Ref, seq int64) (at position, found bool, err error) {
	err = l.scanBuckets(ctx, ref, 16, func(b position) bool {
		if b.first <= seq {
			at, found = b, true
			return false
		}
		return true
	})
	return at, found, err
}

// scanBuckets reads the bucket index of ref newest first, pageSize rows to a
// page, and calls each with every bucket and its first sequence (head
// unset) until each returns false or the index ends. It returns the error
// of the read.
func (l *EventLog) scanBuckets(ctx context.Context, ref model.Ref, pageSize int, each func(position) (more bool)) error {
	s := l.s
	iter := s.session.Query(s.q.selectBuckets, ref.Type, ref.ID).
		WithContext(ctx).Consistency(s.cons).PageSize(pageSize).Iter()
	var (
		bucket int32
		first  int64
	)
	for iter.Scan(&bucket, &first) {
		if !each(position{bucket: bucket, first: first}) {
			break
		}
	}
	return iter.Close()
}

// head reads the head of one bucket, at the serial consistency (a Paxos
// read, which also completes any conditional batch in flight there) or at
// the read consistency. ok is false when the bucket holds no events.
func (l *EventLog) head(ctx context.Context, ref model.Ref, bucket int32, serial bool) (head int64, ok bool, err error) {
	s := l.s
	q := s.session.Query(s.q.selectHead, ref.Type, ref.ID, bucket).WithContext(ctx).RetryPolicy(s.readRetry)
	if serial {
		q.Consistency(gocql.Consistency(s.serial))
	} else {
		q.Consistency(s.cons)
	}
	var h *int64
	switch err := q.Scan(&h); {
	case errors.Is(err, gocql.ErrNotFound):
		return 0, false, nil
	case err != nil:
		return 0, false, err
	case h == nil:
		return 0, false, nil
	}
	return *h, true, nil
}

// bucketsFrom returns the buckets of ref from the one holding seq to the
// newest, oldest first, with their first sequences.
func (l *EventLog) bucketsFrom(ctx context.Context, ref model.Ref, seq int64) ([]position, error) {
	var (
		out   []position
		found bool
	)
	err := l.scanBuckets(ctx, ref, 16, func(b position) bool {
		out = append(out, b)
		found = b.first <= seq
		return !found
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, nil
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}

// ReadPage implements eventlog.Log. It finds the bucket holding from in the
// index, reads it from there, and goes on into later buckets until the page
// is full or the buckets end. next is the sequence of the first event not
// returned, 0 at the end of the history; after a page that filled up exactly
// at the end of a bucket that is not the newest, next is the sequence after
// the page even if the later buckets turn out empty.
func (l *EventLog) ReadPage(ctx context.Context, ref model.Ref, from uint64, limit int) ([]model.Event, uint64, error) {
	what := func() string { return fmt.Sprintf("read %s from %d", ref, from) }
	if err := l.Check(ctx, what); err != nil {
		return nil, 0, err
	}
	if limit <= 0 {
		return nil, 0, fmt.Errorf("cassandra: %s: limit %d is not positive", what(), limit)
	}
	if from == 0 {
		from = 1
	}
	if from > math.MaxInt64 || ref.Validate() != nil {
		return nil, 0, nil // no such event can have been written
	}
	start := int64(from)
	buckets, err := l.bucketsFrom(ctx, ref, start)
	if err != nil {
		return nil, 0, l.wrap(what()+": read the bucket index", err)
	}
	var (
		page []model.Event
		next uint64
		last = -1 // index in buckets of the last bucket that returned events
	)
	for i, b := range buckets {
		got, more, err := l.readBucket(ctx, ref, b.bucket, start, limit-len(page), &page)
		if err != nil {
			return nil, 0, l.wrap(fmt.Sprintf("%s: read bucket %d", what(), b.bucket), err)
		}
		if got > 0 {
			last = i
		}
		if more != 0 {
			next = uint64(more)
			break
		}
		if len(page) == limit {
			if i < len(buckets)-1 {
				next = page[len(page)-1].Sequence + 1
			}
			break
		}
	}
	if next == 0 && last >= 0 {
		// The page reached the end of the history as it stood.
		at := buckets[last]
		at.head = int64(page[len(page)-1].Sequence)
		l.s.cache.advance(ref, at)
	}
	return page, next, nil
}

// readBucket appends up to want events of one bucket with sequence >= from
// to page. It reads one more row than wanted: more is that row's sequence
// (the next page starts there), 0 when the bucket had no more.
func (l *EventLog) readBucket(ctx context.Context, ref model.Ref, bucket int32, from int64, want int, page *[]model.Event) (got int, more int64, err error) {
	s := l.s
	limit := want + 1
	if want >= math.MaxInt32 {
		limit = math.MaxInt32
	}
	iter := s.session.Query(s.q.selectEvents, ref.Type, ref.ID, bucket, from, limit).
		WithContext(ctx).Consistency(s.cons).PageSize(min(limit, 1000)).Iter()
	var row eventRow
	dest := row.dest()
	for {
		row.payload = nil // the driver appends into a non-nil slice: never share one
		if !iter.Scan(dest...) {
			break
		}
		if got == want {
			more = row.seq
			break
		}
		*page = append(*page, row.event(ref))
		got++
	}
	return got, more, iter.Close()
}

// eventRow holds one row of eventColumns as the driver scans it.
type eventRow struct {
	seq, eventTime, procTime int64
	stream, procText, name   string
	command, eventID         string
	procID                   gocql.UUID
	version                  int
	characteristics          int8
	payload                  []byte
}

// dest returns the scan destinations of eventColumns, in order. Set
// payload to nil before each Scan: the driver appends into a non-nil
// slice, and rows must not share one.
func (r *eventRow) dest() []any {
	return []any{&r.seq, &r.eventTime, &r.stream, &r.procID, &r.procText, &r.procTime, &r.name, &r.version,
		&r.characteristics, &r.payload, &r.command, &r.eventID}
}

// event returns the row as an event of ref.
func (r *eventRow) event(ref model.Ref) model.Event {
	processing := r.procText
	if r.procID != (gocql.UUID{}) {
		processing = r.procID.String()
	}
	return model.Event{
		AggregateType:   ref.Type,
		AggregateID:     ref.ID,
		Sequence:        uint64(r.seq),
		Timestamp:       fromMillis(r.eventTime),
		StreamID:        r.stream,
		ProcessingID:    processing,
		ProcessingTime:  fromMillis(r.procTime),
		Name:            r.name,
		Version:         r.version,
		Characteristics: model.Characteristics(uint8(r.characteristics)),
		Payload:         r.payload,
		CommandID:       r.command,
		EventID:         r.eventID,
	}
}

// LastSequence implements eventlog.Log: the head of the newest bucket that
// holds events. The newest bucket may be empty when the conditional batch
// that was to open it failed after its index row was written; then the head
// is that of the bucket before it.
func (l *EventLog) LastSequence(ctx context.Context, ref model.Ref) (uint64, error) {
	what := "last sequence of " + ref.String()
	if err := l.Check(ctx, func() string { return what }); err != nil {
		return 0, err
	}
	if ref.Validate() != nil {
		return 0, nil // no such aggregate can have been written
	}
	var newest []position
	err := l.scanBuckets(ctx, ref, 2, func(b position) bool {
		newest = append(newest, b)
		return len(newest) < 2
	})
	if err != nil {
		return 0, l.wrap(what+": read the bucket index", err)
	}
	for _, at := range newest {
		head, ok, err := l.head(ctx, ref, at.bucket, false)
		if err != nil {
			return 0, l.wrap(fmt.Sprintf("%s: read the head of bucket %d", what, at.bucket), err)
		}
		if ok {
			at.head = head
			l.s.cache.advance(ref, at)
			return uint64(head), nil
		}
	}
	if len(newest) == 2 {
		return 0, fmt.Errorf("%w: cassandra: %s: %w: buckets %d and %d are both empty", eventlog.ErrUnavailable, what, ErrCorrupt, newest[0].bucket, newest[1].bucket)
	}
	return 0, nil
}

// eventValues returns the values of insertEvent for e. Absent optional
// values are left unset rather than null, which would write tombstones.
func eventValues(ref model.Ref, bucket int32, e *model.Event) []any {
	var procID, procText any = gocql.UnsetValue, gocql.UnsetValue
	if u, ok := timeUUID(e.ProcessingID); ok {
		procID = u
	} else {
		procText = e.ProcessingID
	}
	var payload any = gocql.UnsetValue
	if e.Payload != nil {
		payload = []byte(e.Payload)
	}
	return []any{
		ref.Type, ref.ID, bucket, int64(e.Sequence),
		e.Timestamp.UnixMilli(), e.StreamID, procID, procText, e.ProcessingTime.UnixMilli(),
		e.Name, e.Version, int8(e.Characteristics), payload, e.CommandID, e.EventID,
	}
}

// timeUUID parses s as a version-1 UUID in its canonical (lower-case) form,
// the only form that reads back from a timeuuid column unchanged.
func timeUUID(s string) (gocql.UUID, bool) {
	if len(s) != 36 {
		return gocql.UUID{}, false
	}
	u, err := gocql.ParseUUID(s)
	if err != nil || u.Version() != 1 || u.Variant() != gocql.VariantIETF || u.String() != s {
		return gocql.UUID{}, false
	}
	return u, true
}

// fromMillis converts a CQL timestamp (Unix milliseconds) to a UTC time.
func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }
