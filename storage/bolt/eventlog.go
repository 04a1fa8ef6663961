package bolt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	bbolt "go.etcd.io/bbolt"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

var _ eventlog.Log = (*EventLog)(nil)

// EventLog is the event log of a DB; get it with DB.EventLog. It is safe for
// concurrent use; appends are serialised by bbolt's single writer, reads run
// in parallel with them.
type EventLog struct {
	db     *DB
	closed atomic.Bool
}

// errNothingToCommit rolls back a write transaction in which no entry wrote
// anything, sparing the fsync of an empty commit.
var errNothingToCommit = errors.New("bolt: nothing to commit")

// pendingAppend is one batch entry, validated and encoded before the write
// transaction starts.
type pendingAppend struct {
	prefix []byte
	keys   [][]byte
	values [][]byte
}

// Append implements eventlog.Log: the whole batch is one bbolt transaction
// and one fsync. See the package documentation for the error cases.
func (l *EventLog) Append(ctx context.Context, batch []eventlog.Append) []error {
	errs := make([]error, len(batch))
	if len(batch) == 0 {
		return errs
	}
	fail := func(err error) []error {
		for i := range batch {
			errs[i] = fmt.Errorf("bolt: append %s after %d: %w", batch[i].Ref, batch[i].Expected, err)
		}
		return errs
	}
	if err := l.checkOpen(); err != nil {
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		return fail(fmt.Errorf("%w: %w", eventlog.ErrUnavailable, err))
	}

	pending := make([]pendingAppend, len(batch))
	valid := 0
	for i := range batch {
		a := &batch[i]
		if err := eventlog.CheckAppend(a); err != nil {
			errs[i] = err
			continue
		}
		pending[i] = encodeAppend(a)
		valid++
	}
	if valid == 0 {
		return errs
	}

	var marks outboxTake
	err := l.db.bdb.Update(func(tx *bbolt.Tx) error {
		wrote, err := appendInTx(tx.Bucket(bucketEvents), batch, pending, errs)
		if err != nil {
			return err
		}
		if !wrote {
			return errNothingToCommit
		}
		// The outbox marks announcing these appends commit with them.
		marks, err = l.db.writeOutboxInTx(tx, "", 0, false)
		return err
	})
	if err == nil {
		l.db.outbox.committed(marks)
		return errs
	}
	if errors.Is(err, errNothingToCommit) {
		return errs
	}
	err = writeTxError(err)
	for i := range batch {
		if pending[i].keys != nil && !errors.Is(errs[i], eventlog.ErrConflict) {
			errs[i] = fmt.Errorf("bolt: append %s after %d: %w", batch[i].Ref, batch[i].Expected, err)
		}
	}
	return errs
}

// appendInTx writes the valid entries of a batch (those whose errs[i] is
// nil) inside a write transaction, recording conflicts in errs. It reports
// whether anything was written; an error fails the whole transaction, which
// keeps every entry atomic.
func appendInTx(b *bbolt.Bucket, batch []eventlog.Append, pending []pendingAppend, errs []error) (bool, error) {
	wrote := false
	for i := range batch {
		if errs[i] != nil {
			continue
		}
		a, p := &batch[i], &pending[i]
		last, err := lastSequence(b.Cursor(), p.prefix)
		if err != nil {
			return false, fmt.Errorf("last sequence of %s: %w", a.Ref, err)
		}
		if last != a.Expected {
			errs[i] = eventlog.ConflictError(a.Ref, a.Expected, last)
			continue
		}
		for j := range p.keys {
			if err := b.Put(p.keys[j], p.values[j]); err != nil {
				return false, fmt.Errorf("put %s #%d: %w", a.Ref, a.Expected+uint64(j)+1, err)
			}
		}
		wrote = true
	}
	return wrote, nil
}

// encodeAppend builds the keys and values of a valid append. Each key and
// value is its own slice: bbolt keeps them until the transaction ends.
func encodeAppend(a *eventlog.Append) pendingAppend {
	p := pendingAppend{
		prefix: aggregatePrefix(a.Ref),
		keys:   make([][]byte, len(a.Events)),
		values: make([][]byte, len(a.Events)),
	}
	size := 0
	for j := range a.Events {
		size += eventSize(&a.Events[j])
	}
	// One allocation for all values; each value is a full slice of it that
	// later appends cannot overwrite.
	buf := make([]byte, 0, size)
	for j := range a.Events {
		e := &a.Events[j]
		p.keys[j] = eventKey(p.prefix, e.Sequence)
		start := len(buf)
		buf = appendEvent(buf, e)
		p.values[j] = buf[start:len(buf):len(buf)]
	}
	return p
}

// lastSequence returns the sequence of the last event under prefix, 0 if
// there is none.
func lastSequence(c *bbolt.Cursor, prefix []byte) (uint64, error) {
	end := eventKey(prefix, ^uint64(0))
	k, _ := c.Seek(end)
	switch {
	case k == nil:
		k, _ = c.Last()
	case !bytes.Equal(k, end):
		k, _ = c.Prev()
	}
	if k == nil || !bytes.HasPrefix(k, prefix) {
		return 0, nil
	}
	return keySequence(prefix, k)
}

// ReadPage implements eventlog.Log.
func (l *EventLog) ReadPage(ctx context.Context, ref model.Ref, from uint64, limit int) ([]model.Event, uint64, error) {
	if err := l.checkOpen(); err != nil {
		return nil, 0, fmt.Errorf("bolt: read %s from %d: %w", ref, from, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("%w: bolt: read %s from %d: %w", eventlog.ErrUnavailable, ref, from, err)
	}
	if limit <= 0 {
		return nil, 0, fmt.Errorf("bolt: read %s from %d: limit %d is not positive", ref, from, limit)
	}
	prefix := aggregatePrefix(ref)
	var (
		page []model.Event
		next uint64
	)
	err := l.db.bdb.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(eventKey(prefix, from)); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(page) == limit {
				seq, err := keySequence(prefix, k)
				next = seq
				return err
			}
			seq, err := keySequence(prefix, k)
			if err != nil {
				return err
			}
			if page == nil {
				page = make([]model.Event, 0, min(limit, 64))
			}
			page = append(page, model.Event{AggregateType: ref.Type, AggregateID: ref.ID, Sequence: seq})
			if err := decodeEvent(v, &page[len(page)-1]); err != nil {
				return fmt.Errorf("#%d: %w", seq, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, l.readError(fmt.Sprintf("read %s from %d", ref, from), err)
	}
	return page, next, nil
}

// LastSequence implements eventlog.Log.
func (l *EventLog) LastSequence(ctx context.Context, ref model.Ref) (uint64, error) {
	if err := l.checkOpen(); err != nil {
		return 0, fmt.Errorf("bolt: last sequence of %s: %w", ref, err)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("%w: bolt: last sequence of %s: %w", eventlog.ErrUnavailable, ref, err)
	}
	var last uint64
	err := l.db.bdb.View(func(tx *bbolt.Tx) error {
		var err error
		last, err = lastSequence(tx.Bucket(bucketEvents).Cursor(), aggregatePrefix(ref))
		return err
	})
	if err != nil {
		return 0, l.readError("last sequence of "+ref.String(), err)
	}
	return last, nil
}

// Close implements eventlog.Log: it closes this view, not the file (see
// DB.Close). A second Close returns ErrClosed.
func (l *EventLog) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return eventlog.ErrClosed
	}
	return nil
}

// checkOpen returns ErrClosed if the view or its DB was closed.
func (l *EventLog) checkOpen() error {
	if l.closed.Load() || l.db.closed.Load() {
		return eventlog.ErrClosed
	}
	return nil
}

// readError wraps the error of a read transaction.
func (l *EventLog) readError(what string, err error) error {
	if isClosed(err) {
		return fmt.Errorf("bolt: %s: %w", what, eventlog.ErrClosed)
	}
	return fmt.Errorf("%w: bolt: %s: %w", eventlog.ErrUnavailable, what, err)
}

var _ eventlog.HeadChecker = (*EventLog)(nil)

// CheckHead implements eventlog.HeadChecker: every head is read in one
// read transaction.
func (l *EventLog) CheckHead(ctx context.Context, heads []eventlog.Head) []error {
	errs := make([]error, len(heads))
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = fmt.Errorf("bolt: check the head of %s: %w", heads[i].Ref, err)
		}
		return errs
	}
	if err := l.checkOpen(); err != nil {
		return fail(err)
	}
	if err := ctx.Err(); err != nil {
		return fail(fmt.Errorf("%w: %w", eventlog.ErrUnavailable, err))
	}
	err := l.db.bdb.View(func(tx *bbolt.Tx) error {
		return checkHeadsInTx(tx.Bucket(bucketEvents), heads, errs)
	})
	if err != nil {
		return fail(l.readError("check heads", err))
	}
	return errs
}

// checkHeadsInTx sets errs[i] to a conflict for every head that does not
// hold.
func checkHeadsInTx(b *bbolt.Bucket, heads []eventlog.Head, errs []error) error {
	for i, h := range heads {
		last, err := lastSequence(b.Cursor(), aggregatePrefix(h.Ref))
		if err != nil {
			return fmt.Errorf("last sequence of %s: %w", h.Ref, err)
		}
		if last != h.Sequence {
			errs[i] = eventlog.ConflictError(h.Ref, h.Sequence, last)
		}
	}
	return nil
}
