package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

// The outbox lives in the EventLog itself, under its mutex, rather than in
// a wrapper type: callers (package node) find the capability by asserting
// the event log they were given to eventlog.Outbox, and one value keeps
// the log and its outbox the same store, closed together.

// outboxWriter is one writer's position and marks.
type outboxWriter struct {
	published, last int64
	// buckets holds the marks of each bucket: mark key → Last. Buckets at
	// or below published are dropped when the watermark passes them.
	buckets map[int64]map[markKey]uint64
}

// markKey identifies a mark within a bucket; a mark repeating one
// replaces it.
type markKey struct {
	ref   model.Ref
	first uint64
}

// checkWriter refuses an empty writer id, which no store can key.
func checkWriter(writer string) error {
	if writer == "" {
		return fmt.Errorf("%w: outbox writer id is empty", eventlog.ErrInvalidAppend)
	}
	return nil
}

// Mark implements eventlog.Outbox. The marks are validated first; one
// invalid mark fails the call and nothing is recorded. A call without
// marks records nothing. Last only moves forward.
func (l *EventLog) Mark(ctx context.Context, writer string, bucket int64, marks []eventlog.Mark) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: mark %d in outbox %q bucket %d: %w", eventlog.ErrUnavailable, len(marks), writer, bucket, err)
	}
	if err := checkWriter(writer); err != nil {
		return err
	}
	for i := range marks {
		if err := eventlog.CheckMark(&marks[i]); err != nil {
			return fmt.Errorf("memory: outbox %q bucket %d: %w", writer, bucket, err)
		}
	}
	if len(marks) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return fmt.Errorf("mark in outbox %q: %w", writer, eventlog.ErrClosed)
	}
	w := l.writerLocked(writer)
	w.last = max(w.last, bucket)
	b := w.buckets[bucket]
	if b == nil {
		b = make(map[markKey]uint64, len(marks))
		w.buckets[bucket] = b
	}
	for _, m := range marks {
		b[markKey{m.Ref, m.First}] = m.Last
	}
	return nil
}

// Marks implements eventlog.Outbox.
func (l *EventLog) Marks(ctx context.Context, writer string, bucket int64) ([]eventlog.Mark, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: read outbox %q bucket %d: %w", eventlog.ErrUnavailable, writer, bucket, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil, fmt.Errorf("read outbox %q: %w", writer, eventlog.ErrClosed)
	}
	w := l.mu.outbox[writer]
	if w == nil || len(w.buckets[bucket]) == 0 {
		return nil, nil
	}
	b := w.buckets[bucket]
	out := make([]eventlog.Mark, 0, len(b))
	for k, last := range b {
		out = append(out, eventlog.Mark{Ref: k.ref, First: k.first, Last: last})
	}
	slices.SortFunc(out, func(a, b eventlog.Mark) int {
		return cmp.Or(cmp.Compare(a.Ref.Type, b.Ref.Type), cmp.Compare(a.Ref.ID, b.Ref.ID), cmp.Compare(a.First, b.First))
	})
	return out, nil
}

// SetPublished implements eventlog.Outbox. It drops the marks of the
// buckets the watermark covers. For a writer it does not know it records
// the watermark (with Last 0).
func (l *EventLog) SetPublished(ctx context.Context, writer string, bucket int64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: set outbox %q published to %d: %w", eventlog.ErrUnavailable, writer, bucket, err)
	}
	if err := checkWriter(writer); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return fmt.Errorf("set outbox %q published: %w", writer, eventlog.ErrClosed)
	}
	w := l.writerLocked(writer)
	if bucket < w.published {
		return nil
	}
	w.published = bucket
	for b := range w.buckets {
		if b <= bucket {
			delete(w.buckets, b)
		}
	}
	return nil
}

// Writers implements eventlog.Outbox. The writers come sorted by id.
func (l *EventLog) Writers(ctx context.Context) ([]eventlog.OutboxWriter, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: list outbox writers: %w", eventlog.ErrUnavailable, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return nil, fmt.Errorf("list outbox writers: %w", eventlog.ErrClosed)
	}
	out := make([]eventlog.OutboxWriter, 0, len(l.mu.outbox))
	for id, w := range l.mu.outbox {
		out = append(out, eventlog.OutboxWriter{Writer: id, Published: w.published, Last: w.last})
	}
	slices.SortFunc(out, func(a, b eventlog.OutboxWriter) int { return cmp.Compare(a.Writer, b.Writer) })
	return out, nil
}

// Forget implements eventlog.Outbox. Forgetting an unknown writer is not
// an error.
func (l *EventLog) Forget(ctx context.Context, writer string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: forget outbox %q: %w", eventlog.ErrUnavailable, writer, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return fmt.Errorf("forget outbox %q: %w", writer, eventlog.ErrClosed)
	}
	delete(l.mu.outbox, writer)
	return nil
}

// writerLocked returns writer's outbox, created empty if new; l.mu is held.
func (l *EventLog) writerLocked(writer string) *outboxWriter {
	w := l.mu.outbox[writer]
	if w == nil {
		w = &outboxWriter{buckets: make(map[int64]map[markKey]uint64)}
		l.mu.outbox[writer] = w
	}
	return w
}
