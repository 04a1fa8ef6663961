package eventlog

import (
	"context"
	"fmt"

	"github.com/concursus-go/concursus/model"
)

// Mark says that a writer is appending events First..Last of Ref and that,
// until they are confirmed on the bus, they may have to be published from
// the log. Marks are the outbox of package eventbus: written before (or
// with) the append they describe, grouped in time buckets per writer, and
// released a bucket at a time by a watermark once every mark of the bucket
// is on the bus.
type Mark struct {
	Ref   model.Ref
	First uint64
	Last  uint64
}

func (m Mark) String() string { return fmt.Sprintf("%s[%d..%d]", m.Ref, m.First, m.Last) }

// OutboxWriter is one writer's position in the outbox.
type OutboxWriter struct {
	Writer string
	// Published: every mark of the writer in a bucket <= Published is on
	// the bus (0: none confirmed yet).
	Published int64
	// Last is the newest bucket the writer has marks in.
	Last int64
}

// Pending reports whether the writer has buckets not known to be published.
func (w OutboxWriter) Pending() bool { return w.Last > w.Published }

// Outbox is an optional capability of a Log: a durable record of appends
// whose events may not have reached the bus yet, so that a publisher that
// restarts, or a node that takes over from a dead one, can publish them
// from the log. Writers are node ids; buckets are numbers that only grow
// per writer (package eventbus uses the Unix time divided by the bucket
// length).
//
// All methods are safe for concurrent use.
type Outbox interface {
	// Mark records marks of writer in bucket durably, no later than the
	// appends they describe: when Mark returns, the marks are either
	// durable or will be written in the same transaction as the next
	// Append (or WriteDecisions) on this store, as the embedded store
	// does. Marking a bucket also moves the writer's Last to it if it is
	// newer (Last never moves back). Mark with no marks does nothing.
	Mark(ctx context.Context, writer string, bucket int64, marks []Mark) error
	// Marks returns writer's marks in bucket, ordered by aggregate type,
	// aggregate id and First, so one aggregate's marks come in sequence
	// order.
	Marks(ctx context.Context, writer string, bucket int64) ([]Mark, error)
	// SetPublished records that every mark of writer in buckets <= bucket
	// is on the bus. It never moves the watermark back. A writer the store
	// does not know is created (with Last 0): package eventbus sets a
	// writer's watermark before its first mark, so that the range of
	// buckets that may be pending is bounded below. A store may drop the
	// marks it covers.
	SetPublished(ctx context.Context, writer string, bucket int64) error
	// Writers lists every writer the outbox knows, with its position.
	Writers(ctx context.Context) ([]OutboxWriter, error)
	// Forget drops a writer whose marks are all published (a node that
	// left or died and was caught up): its position, and it may drop any
	// marks left (Cassandra leaves them to their TTL).
	Forget(ctx context.Context, writer string) error
}

// CheckMark validates a mark's shape; stores call it before writing.
func CheckMark(m *Mark) error {
	if err := m.Ref.Validate(); err != nil {
		return fmt.Errorf("%w: outbox mark: %v", ErrInvalidAppend, err)
	}
	if m.First == 0 || m.Last < m.First {
		return fmt.Errorf("%w: outbox mark %s: sequences must satisfy 1 <= first <= last", ErrInvalidAppend, m)
	}
	return nil
}
