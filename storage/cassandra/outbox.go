package cassandra

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gocql/gocql"

	"github.com/concursus-go/concursus/eventlog"
)

var _ eventlog.Outbox = (*EventLog)(nil)

// maxMarkBatch bounds the marks of one unlogged batch: a batch holds at
// most 65535 statements, and one mutation must fit max_mutation_size
// (16 MiB by default); 16384 marks of the longest aggregate ids make about
// 7 MiB. The executor's batches are far smaller, so a Mark call is one
// batch in practice.
const maxMarkBatch = 16384

// outboxPageSize is the page size of the outbox's reads.
const outboxPageSize = 1000

// maxPublishedAttempts bounds SetPublished's conditional writes when other
// callers keep moving the watermark under it.
const maxPublishedAttempts = 5

// outboxState is what this process remembers of the writers' rows it
// wrote.
type outboxState struct {
	mu struct {
		sync.Mutex
		writers map[string]*writerState
	}
}

// writerState orders this process's writes of one writer's last column.
// Those are plain writes; with two in flight, the one carrying the older
// bucket could land with the later timestamp and move last back. So they
// are serialised by turn, skipped when last already covers the bucket,
// and carry timestamps that grow with the buckets.
type writerState struct {
	// turn is a one-slot semaphore held while writing last: unlike a
	// mutex, waiting for it can end with the caller's context.
	turn chan struct{}
	// last is the newest bucket written to the row by this process.
	last atomic.Int64
	// ts is the timestamp (µs) of the latest write of last; under turn.
	ts int64
}

func (o *outboxState) writer(id string) *writerState {
	o.mu.Lock()
	defer o.mu.Unlock()
	st := o.mu.writers[id]
	if st == nil {
		st = &writerState{turn: make(chan struct{}, 1)}
		o.mu.writers[id] = st
	}
	return st
}

func (o *outboxState) forget(id string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.mu.writers, id)
}

// checkMarks validates a Mark call: a writer id (Cassandra refuses an
// empty partition key), eventlog.CheckMark, and sequences that fit a
// bigint.
func checkMarks(writer string, marks []eventlog.Mark) error {
	if writer == "" {
		return fmt.Errorf("%w: outbox writer id is empty", eventlog.ErrInvalidAppend)
	}
	for i := range marks {
		m := &marks[i]
		if err := eventlog.CheckMark(m); err != nil {
			return err
		}
		if m.Last > math.MaxInt64 {
			return fmt.Errorf("%w: outbox mark %s: sequence does not fit a bigint", eventlog.ErrInvalidAppend, m)
		}
	}
	return nil
}

// Mark implements eventlog.Outbox. When bucket is newer than the last one
// this process recorded for writer, it first sets the writer's last
// (a plain write into outbox_writers); then it inserts the marks, USING
// TTL Config.OutboxTTL, as one unlogged batch into the (writer, bucket)
// partition. Both are written when Mark returns nil. A call without marks
// writes nothing; one invalid mark fails the call before anything is
// written. On an error wrapping eventlog.ErrUnavailable some of the marks
// may have been written; calling again is safe (the writes are
// idempotent).
func (l *EventLog) Mark(ctx context.Context, writer string, bucket int64, marks []eventlog.Mark) error {
	what := fmt.Sprintf("mark %d in outbox %q bucket %d", len(marks), writer, bucket)
	if err := l.Check(ctx, func() string { return what }); err != nil {
		return err
	}
	if err := checkMarks(writer, marks); err != nil {
		return fmt.Errorf("cassandra: %s: %w", what, err)
	}
	if len(marks) == 0 {
		return nil
	}
	// The position first: marks the position does not reach would be
	// invisible to whoever takes the writer over; a position without its
	// marks is only an empty bucket.
	if err := l.noteLast(ctx, writer, bucket); err != nil {
		return l.wrap(what+": record the writer's last bucket", err)
	}
	s := l.s
	for start := 0; start < len(marks); start += maxMarkBatch {
		b := s.session.NewBatch(gocql.UnloggedBatch).WithContext(ctx)
		b.SetConsistency(s.cons)
		b.RetryPolicy(s.readRetry)
		for _, m := range marks[start:min(start+maxMarkBatch, len(marks))] {
			b.Query(s.q.insertMark, writer, bucket, m.Ref.Type, m.Ref.ID, int64(m.First), int64(m.Last), s.outboxTTL)
		}
		if err := s.session.ExecuteBatch(b); err != nil {
			return l.wrap(what, err)
		}
	}
	return nil
}

// noteLast makes sure writer's row says last >= bucket, writing it unless
// this process already did.
func (l *EventLog) noteLast(ctx context.Context, writer string, bucket int64) error {
	st := l.s.outbox.writer(writer)
	if st.last.Load() >= bucket {
		return nil
	}
	select {
	case st.turn <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-st.turn }()
	if st.last.Load() >= bucket {
		return nil // written while we waited
	}
	// A write timestamp, not domain time: later buckets get later
	// timestamps even if the clock steps back. A failed write keeps its
	// timestamp taken, since it may have landed.
	st.ts = max(time.Now().UnixMicro(), st.ts+1)
	s := l.s
	err := s.session.Query(s.q.setWriterLast, bucket, writer).WithContext(ctx).
		Consistency(s.cons).RetryPolicy(s.readRetry).Idempotent(true).WithTimestamp(st.ts).Exec()
	if err != nil {
		return err
	}
	st.last.Store(bucket)
	return nil
}

// Marks implements eventlog.Outbox: it reads the (writer, bucket)
// partition in clustering order, outboxPageSize rows per page.
func (l *EventLog) Marks(ctx context.Context, writer string, bucket int64) ([]eventlog.Mark, error) {
	what := fmt.Sprintf("read outbox %q bucket %d", writer, bucket)
	if err := l.Check(ctx, func() string { return what }); err != nil {
		return nil, err
	}
	if writer == "" {
		return nil, nil // no mark can have been written
	}
	s := l.s
	iter := s.session.Query(s.q.selectMarks, writer, bucket).WithContext(ctx).
		Consistency(s.cons).RetryPolicy(s.readRetry).PageSize(outboxPageSize).Iter()
	var (
		out         []eventlog.Mark
		m           eventlog.Mark
		first, last int64
	)
	for iter.Scan(&m.Ref.Type, &m.Ref.ID, &first, &last) {
		m.First, m.Last = uint64(first), uint64(last)
		out = append(out, m)
	}
	if err := iter.Close(); err != nil {
		return nil, l.wrap(what, err)
	}
	return out, nil
}

// SetPublished implements eventlog.Outbox with conditional writes of the
// writer's published column (IF published < bucket, or IF published =
// null for a writer without one), so that two callers racing — a
// restarted writer and a node taking it over — never move it back. It
// deletes nothing: the marks it covers expire with their TTL. For a writer
// without a row it creates one (with no last).
func (l *EventLog) SetPublished(ctx context.Context, writer string, bucket int64) error {
	what := fmt.Sprintf("set outbox %q published to %d", writer, bucket)
	if err := l.Check(ctx, func() string { return what }); err != nil {
		return err
	}
	if writer == "" {
		return fmt.Errorf("cassandra: %s: %w: outbox writer id is empty", what, eventlog.ErrInvalidAppend)
	}
	for range maxPublishedAttempts {
		applied, cur, err := l.casPublished(ctx, l.s.q.setPublished, bucket, writer, bucket)
		if err != nil {
			return l.wrap(what, err)
		}
		if applied || (cur != nil && *cur >= bucket) {
			return nil
		}
		if cur == nil { // no row, or no published yet
			applied, cur, err = l.casPublished(ctx, l.s.q.setPublishedIfNull, bucket, writer)
			if err != nil {
				return l.wrap(what, err)
			}
			if applied || (cur != nil && *cur >= bucket) {
				return nil
			}
		}
		// Another caller set a watermark below bucket in between: again.
	}
	return fmt.Errorf("%w: cassandra: %s: the watermark kept moving under %d conditional writes", eventlog.ErrUnavailable, what, maxPublishedAttempts)
}

// casPublished runs one conditional write of published and returns
// whether it applied and, if not, the published value it found (nil: no
// row, or no value).
func (l *EventLog) casPublished(ctx context.Context, stmt string, args ...any) (applied bool, cur *int64, err error) {
	s := l.s
	applied, err = s.session.Query(stmt, args...).WithContext(ctx).
		Consistency(s.cons).SerialConsistency(s.serial).RetryPolicy(s.lwtRetry).ScanCAS(&cur)
	return applied, cur, err
}

// Writers implements eventlog.Outbox: it scans outbox_writers, a table of
// one small row per writer.
func (l *EventLog) Writers(ctx context.Context) ([]eventlog.OutboxWriter, error) {
	const what = "list outbox writers"
	if err := l.Check(ctx, func() string { return what }); err != nil {
		return nil, err
	}
	s := l.s
	iter := s.session.Query(s.q.selectWriters).WithContext(ctx).
		Consistency(s.cons).RetryPolicy(s.readRetry).PageSize(outboxPageSize).Iter()
	var (
		out             []eventlog.OutboxWriter
		writer          string
		published, last *int64
	)
	for iter.Scan(&writer, &published, &last) {
		w := eventlog.OutboxWriter{Writer: writer}
		if published != nil {
			w.Published = *published
		}
		if last != nil {
			w.Last = *last
		}
		out = append(out, w)
	}
	if err := iter.Close(); err != nil {
		return nil, l.wrap(what, err)
	}
	return out, nil
}

// Forget implements eventlog.Outbox: it deletes the writer's row and
// leaves its marks to expire (its caller promises they are all published,
// and nobody reads buckets at or below a watermark). Forgetting an unknown
// writer is not an error. Forget a writer only once it is gone: a live
// process keeps writing the marks of the buckets it already recorded
// without recording them again.
func (l *EventLog) Forget(ctx context.Context, writer string) error {
	what := fmt.Sprintf("forget outbox %q", writer)
	if err := l.Check(ctx, func() string { return what }); err != nil {
		return err
	}
	if writer == "" {
		return nil // no such writer can exist
	}
	s := l.s
	err := s.session.Query(s.q.deleteWriter, writer).WithContext(ctx).
		Consistency(s.cons).RetryPolicy(s.readRetry).Idempotent(true).Exec()
	if err != nil {
		return l.wrap(what, err)
	}
	s.outbox.forget(writer)
	return nil
}
