package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

var (
	_ eventlog.Log        = (*EventLog)(nil)
	_ eventlog.TimeReader = (*EventLog)(nil)
)

// EventLog is the event log of a DB; get it with DB.EventLog. It is safe for
// concurrent use; appends are serialised by bbolt's single writer, reads run
// in parallel with them.
type EventLog struct {
	view
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
	// timeKeys are the events' keys in the events_by_time index.
	timeKeys [][]byte
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
	if err := l.Ready(ctx); err != nil {
		return fail(err)
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
// nil) inside a write transaction, recording conflicts in errs. b is the
// events bucket; each event's entry in the events_by_time index goes into
// the same transaction, so the index never disagrees with the log. It
// reports whether anything was written; an error fails the whole
// transaction, which keeps every entry atomic. Every path that writes
// events (Append, DB.WriteDecisions) writes them here.
func appendInTx(b *bbolt.Bucket, batch []eventlog.Append, pending []pendingAppend, errs []error) (bool, error) {
	tx := b.Tx()
	index := tx.Bucket(bucketEventsByTime)
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
		// The index is kept only for aggregates read in event time once
		// (their entries complete through Expected); the others are
		// indexed by the first ReadTimePage that needs them.
		through, indexed := timeThrough(tx, p.prefix)
		maintain := indexed && through == a.Expected
		for j := range p.keys {
			if err := b.Put(p.keys[j], p.values[j]); err != nil {
				return false, fmt.Errorf("put %s #%d: %w", a.Ref, a.Expected+uint64(j)+1, err)
			}
			if !maintain {
				continue
			}
			if err := index.Put(p.timeKeys[j], []byte{}); err != nil {
				return false, fmt.Errorf("index %s #%d in event time: %w", a.Ref, a.Expected+uint64(j)+1, err)
			}
		}
		if maintain {
			if err := setTimeThrough(tx, p.prefix, a.Expected+uint64(len(p.keys))); err != nil {
				return false, fmt.Errorf("index %s in event time: %w", a.Ref, err)
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
		prefix:   aggregatePrefix(a.Ref),
		keys:     make([][]byte, len(a.Events)),
		values:   make([][]byte, len(a.Events)),
		timeKeys: make([][]byte, len(a.Events)),
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
		p.timeKeys[j] = timeIndexKey(p.prefix, e.Timestamp.UnixMilli(), e.StreamID, e.Sequence)
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
	if err := l.Check(ctx, func() string { return fmt.Sprintf("read %s from %d", ref, from) }); err != nil {
		return nil, 0, err
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
		return nil, 0, l.txError(fmt.Sprintf("read %s from %d", ref, from), err)
	}
	return page, next, nil
}

// ReadTimePage implements eventlog.TimeReader. In one read transaction it
// seeks in the events_by_time index to the first key after `after` and
// reads the events its keys name from the events bucket, one lookup each;
// it reads one key more than the page to tell whether more follow. The
// page is a snapshot: the index and the log are written in the same
// transactions.
func (l *EventLog) ReadTimePage(ctx context.Context, ref model.Ref, after model.TimeKey, limit int) ([]model.Event, bool, error) {
	what := func() string { return fmt.Sprintf("read %s in event time after %v", ref, after) }
	if err := l.Check(ctx, what); err != nil {
		return nil, false, err
	}
	if limit <= 0 {
		return nil, false, fmt.Errorf("bolt: %s: limit %d is not positive", what(), limit)
	}
	prefix := aggregatePrefix(ref)
	if err := l.indexInTime(ref, prefix); err != nil {
		return nil, false, l.txError(what(), err)
	}
	seek := prefix // the zero key: from the first event
	if !after.IsZero() {
		ms, stream, seq := millisKey(after)
		seek = timeIndexKey(prefix, ms, stream, seq)
	}
	var (
		page []model.Event
		more bool
	)
	err := l.db.bdb.View(func(tx *bbolt.Tx) error {
		events := tx.Bucket(bucketEvents)
		c := tx.Bucket(bucketEventsByTime).Cursor()
		for k, _ := c.Seek(seek); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if bytes.Equal(k, seek) {
				continue // `after` itself: the page starts strictly after it
			}
			if len(page) == limit {
				more = true
				return nil
			}
			ms, stream, seq, err := parseTimeIndexKey(prefix, k)
			if err != nil {
				return err
			}
			v := events.Get(eventKey(prefix, seq))
			if v == nil {
				return fmt.Errorf("%w: the event-time index names #%d, which the log does not hold", ErrCorrupt, seq)
			}
			if page == nil {
				page = make([]model.Event, 0, min(limit, 64))
			}
			page = append(page, model.Event{AggregateType: ref.Type, AggregateID: ref.ID, Sequence: seq})
			e := &page[len(page)-1]
			if err := decodeEvent(v, e); err != nil {
				return fmt.Errorf("#%d: %w", seq, err)
			}
			if e.Timestamp.UnixMilli() != ms || e.StreamID != stream {
				return fmt.Errorf("%w: the event-time index has #%d at %d ms in stream %q, the log at %d ms in %q",
					ErrCorrupt, seq, ms, stream, e.Timestamp.UnixMilli(), e.StreamID)
			}
		}
		return nil
	})
	if err != nil {
		return nil, false, l.txError(what(), err)
	}
	return page, more, nil
}

// putTimeKey puts the events_by_time key of the event stored under key k
// (of the aggregate prefix) with value v, and returns its sequence. Both
// index builders, the lazy per-aggregate one and Open's upgrade of a
// format-1 file, index an event through it.
func putTimeKey(index *bbolt.Bucket, prefix, k, v []byte) (uint64, error) {
	seq, err := keySequence(prefix, k)
	if err != nil {
		return 0, err
	}
	var e model.Event
	if err := decodeEvent(v, &e); err != nil {
		return 0, fmt.Errorf("event %x: %w", k, err)
	}
	if err := index.Put(timeIndexKey(prefix, e.Timestamp.UnixMilli(), e.StreamID, seq), []byte{}); err != nil {
		return 0, fmt.Errorf("event %x: %w", k, err)
	}
	return seq, nil
}

// timeThrough returns the sequence through which the aggregate's
// events_by_time entries are complete; indexed is false when it has none
// recorded (never read in event time).
func timeThrough(tx *bbolt.Tx, prefix []byte) (seq uint64, indexed bool) {
	v := tx.Bucket(bucketTimeThrough).Get(prefix)
	if len(v) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(v), true
}

func setTimeThrough(tx *bbolt.Tx, prefix []byte, seq uint64) error {
	return tx.Bucket(bucketTimeThrough).Put(prefix, binary.BigEndian.AppendUint64(nil, seq))
}

// indexInTime makes sure the aggregate's events_by_time entries are
// complete through its head, writing the missing ones (timeIndexBatch
// events a transaction) when it was never read in event time or its
// index fell behind. Appends keep an indexed aggregate's entries in
// their own transaction from then on. Writing the index lazily, for the
// aggregates that are read in event time, keeps it off the command path
// of all the others: a history within one page is loaded with ReadPage
// and sorted (package executor), and writing a second key per event into
// every commit cost that path about a sixth of its throughput.
func (l *EventLog) indexInTime(ref model.Ref, prefix []byte) error {
	complete := false
	err := l.db.bdb.View(func(tx *bbolt.Tx) error {
		head, err := lastSequence(tx.Bucket(bucketEvents).Cursor(), prefix)
		if err != nil {
			return err
		}
		through, indexed := timeThrough(tx, prefix)
		complete = indexed && through >= head
		return nil
	})
	for err == nil && !complete {
		err = l.db.bdb.Update(func(tx *bbolt.Tx) error {
			events := tx.Bucket(bucketEvents)
			head, err := lastSequence(events.Cursor(), prefix)
			if err != nil {
				return err
			}
			through, _ := timeThrough(tx, prefix)
			index := tx.Bucket(bucketEventsByTime)
			c := events.Cursor()
			n := 0
			for k, v := c.Seek(eventKey(prefix, through+1)); k != nil && bytes.HasPrefix(k, prefix) && n < timeIndexBatch; k, v = c.Next() {
				seq, err := putTimeKey(index, prefix, k, v)
				if err != nil {
					return fmt.Errorf("index %s in event time: %w", ref, err)
				}
				through = seq
				n++
			}
			complete = through >= head
			return setTimeThrough(tx, prefix, through)
		})
	}
	return err
}

// millisKey returns a key, at the milliseconds the store keeps, after
// which exactly the events after k come. A key finer than a millisecond
// sorts after every event stamped in its millisecond and before every
// event stamped later, as does the start of the next millisecond (empty
// stream, sequence 0, which no event has).
func millisKey(k model.TimeKey) (ms int64, stream string, seq uint64) {
	ms = k.Timestamp.UnixMilli()
	if k.Timestamp.Nanosecond()%int(time.Millisecond) != 0 {
		return ms + 1, "", 0
	}
	return ms, k.StreamID, k.Sequence
}

// timeIndexBatch bounds the events one transaction of buildTimeIndex
// indexes, so that upgrading a large file needs bounded memory.
const timeIndexBatch = 10_000

// buildTimeIndex writes the events_by_time entry of every event of the
// file, perTx events a transaction (timeIndexBatch in Open), and then records format 2,
// which says the index is complete. Open runs it, before it returns the
// DB, for a file of format 1: written before the index existed, or by a
// build that stopped part-way (a crash), which is then simply done again —
// putting an entry that exists changes nothing.
func buildTimeIndex(bdb *bbolt.DB, perTx int) error {
	var from []byte // the next event key to index; nil: the first
	for {
		done := false
		err := bdb.Update(func(tx *bbolt.Tx) error {
			c := tx.Bucket(bucketEvents).Cursor()
			index := tx.Bucket(bucketEventsByTime)
			k, v := c.First()
			if from != nil {
				k, v = c.Seek(from)
			}
			for n := 0; k != nil; k, v = c.Next() {
				if n == perTx {
					from = bytes.Clone(k)
					return nil
				}
				if len(k) < 8 {
					return fmt.Errorf("%w: event key %x is %d bytes", ErrCorrupt, k, len(k))
				}
				if _, err := putTimeKey(index, k[:len(k)-8], k, v); err != nil {
					return fmt.Errorf("index in event time: %w", err)
				}
				n++
			}
			done = true
			return tx.Bucket(bucketMeta).Put(keyFormat, []byte{formatVersion})
		})
		if err != nil {
			return fmt.Errorf("build the event-time index: %w", err)
		}
		if done {
			return nil
		}
	}
}

// LastSequence implements eventlog.Log.
func (l *EventLog) LastSequence(ctx context.Context, ref model.Ref) (uint64, error) {
	if err := l.Check(ctx, func() string { return "last sequence of " + ref.String() }); err != nil {
		return 0, err
	}
	var last uint64
	err := l.db.bdb.View(func(tx *bbolt.Tx) error {
		var err error
		last, err = lastSequence(tx.Bucket(bucketEvents).Cursor(), aggregatePrefix(ref))
		return err
	})
	if err != nil {
		return 0, l.txError("last sequence of "+ref.String(), err)
	}
	return last, nil
}

// Close implements eventlog.Log: it closes this view, not the file (see
// DB.Close). A second Close returns ErrClosed.
func (l *EventLog) Close() error { return l.View.Close() }

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
	if err := l.Ready(ctx); err != nil {
		return fail(err)
	}
	err := l.db.bdb.View(func(tx *bbolt.Tx) error {
		return checkHeadsInTx(tx.Bucket(bucketEvents), heads, errs)
	})
	if err != nil {
		return fail(l.txError("check heads", err))
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
