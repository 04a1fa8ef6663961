// Package eventlog defines the persistent schedule of the system: the
// per-aggregate, append-only, gap-free event history that is the source of
// truth. It holds the contract every store implements (Log), the errors they
// return, and store-independent helpers for streaming a history.
//
// Implementations live in their own packages:
//   - storage/memory: in memory, for unit tests;
//   - storage/bolt: an embedded durable store, the single-node default;
//   - storage/cassandra: the production store.
//
// Every implementation runs the same conformance suite, eventlog/eventlogtest.
//
// # Fencing
//
// Append carries the sequence number the writer last saw. A store rejects an
// append whose sequence numbers already exist with ErrConflict and writes
// nothing for that aggregate. This is what makes a stale owner harmless while
// the cluster's ring moves: the second writer is refused, never merged.
package eventlog

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/concursus-go/concursus/model"
)

// Errors returned by every Log. Check them with errors.Is; stores wrap them
// with the aggregate and sequence concerned.
var (
	// ErrConflict: the expected sequence was stale — another writer appended
	// first. Nothing of the rejected append was written. Reload the
	// aggregate and decide again; retrying the same append is pointless.
	ErrConflict = errors.New("eventlog: conflict")
	// ErrInvalidAppend: the append is malformed (no events, events for
	// another aggregate, sequence numbers that do not follow Expected).
	// Nothing was written; it is a caller bug and retrying will not help.
	ErrInvalidAppend = errors.New("eventlog: invalid append")
	// ErrUnavailable: the store could not be reached or failed part-way.
	// For a single-aggregate append nothing is half-written (stores are
	// atomic per aggregate), but the caller cannot know whether the write
	// landed: reload before deciding again.
	ErrUnavailable = errors.New("eventlog: unavailable")
	// ErrClosed: the Log was closed.
	ErrClosed = errors.New("eventlog: closed")
)

// Append is one aggregate's share of a batch: events to add after Expected.
type Append struct {
	Ref model.Ref
	// Expected is the last sequence number the writer saw (0 for an
	// aggregate with no history). Events[i].Sequence must be Expected+i+1.
	Expected uint64
	// Events must be non-empty and belong to Ref. The store keeps them as
	// given (it does not assign ids or times) and does not retain the slice.
	Events []model.Event
}

// Log is an append-only store of per-aggregate histories.
//
// All methods are safe for concurrent use. Slices passed in are not retained;
// slices returned belong to the caller.
type Log interface {
	// Append writes a batch of appends, each for a different aggregate
	// (two entries for one aggregate in one batch are a caller bug whose
	// outcome is undefined; the executor never sends them).
	// It returns one error per entry, in order: nil when the entry is
	// durable, an error wrapping ErrConflict, ErrInvalidAppend or
	// ErrUnavailable otherwise. Each entry is atomic on its own; entries are
	// independent (one conflict does not fail the others). Stores may
	// commit the whole batch at once — that is why the executor batches.
	Append(ctx context.Context, batch []Append) []error

	// ReadPage returns up to limit events of ref with Sequence >= from, in
	// sequence order, and the sequence to pass as from for the next page
	// (0 when the history is exhausted; a store may also return the
	// sequence after a full last page, whose next read is then empty with
	// 0). limit must be positive. Errors from a cancelled ctx wrap ctx.Err().
	ReadPage(ctx context.Context, ref model.Ref, from uint64, limit int) (events []model.Event, next uint64, err error)

	// LastSequence returns the sequence of ref's latest event, 0 if none.
	LastSequence(ctx context.Context, ref model.Ref) (uint64, error)

	// Close releases the store. Calls after Close return ErrClosed.
	Close() error
}

// DefaultPageSize is the page size the helpers read with.
const DefaultPageSize = 512

// Events streams ref's history from sequence from (1 for all of it) in
// sequence order, reading pageSize events at a time (DefaultPageSize if <= 0),
// so memory stays bounded whatever the history's length. The stream stops at
// the first error, which it yields with a zero event.
func Events(ctx context.Context, log Log, ref model.Ref, from uint64, pageSize int) iter.Seq2[model.Event, error] {
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	if from == 0 {
		from = 1
	}
	return func(yield func(model.Event, error) bool) {
		next := from
		for next != 0 {
			page, n, err := log.ReadPage(ctx, ref, next, pageSize)
			if err != nil {
				yield(model.Event{}, err)
				return
			}
			for _, e := range page {
				if !yield(e, nil) {
					return
				}
			}
			if n != 0 && n <= next {
				yield(model.Event{}, fmt.Errorf("%w: %s: store returned next page %d after reading from %d", ErrUnavailable, ref, n, next))
				return
			}
			next = n
		}
	}
}

// CheckAppend validates an append's shape; stores call it before writing
// anything. The error wraps ErrInvalidAppend.
func CheckAppend(a *Append) error {
	if err := a.Ref.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidAppend, err)
	}
	if len(a.Events) == 0 {
		return fmt.Errorf("%w: %s: no events", ErrInvalidAppend, a.Ref)
	}
	for i := range a.Events {
		e := &a.Events[i]
		if e.AggregateType != a.Ref.Type || e.AggregateID != a.Ref.ID {
			return fmt.Errorf("%w: %s: event %d belongs to %s", ErrInvalidAppend, a.Ref, i, e.Ref())
		}
		if want := a.Expected + uint64(i) + 1; e.Sequence != want {
			return fmt.Errorf("%w: %s: event %d has sequence %d, want %d", ErrInvalidAppend, a.Ref, i, e.Sequence, want)
		}
		if e.EventID == "" {
			return fmt.Errorf("%w: %s: event %d has no event id", ErrInvalidAppend, a.Ref, e.Sequence)
		}
	}
	return nil
}

// ConflictError builds the error a store returns when expected is stale.
func ConflictError(ref model.Ref, expected, actual uint64) error {
	return fmt.Errorf("%w: %s: expected sequence %d, log is at %d", ErrConflict, ref, expected, actual)
}

// Head is an expectation about an aggregate's history: its latest event is
// the one at Sequence (0: it has none).
type Head struct {
	Ref      model.Ref
	Sequence uint64
}

// HeadChecker is an optional capability of a Log: a linearizable check of
// aggregates' heads. It is how a decision that writes no events (a
// rejection, or a command that produced none) passes the same fence as an
// append: the executor decides on its cached state and answers only once the
// store has confirmed that the history still ends where that state ends, so
// a stale owner (paused, cut off, or not yet told that the ring moved)
// cannot answer from state the log has moved past.
//
// CheckHead returns one error per entry, in order: nil when, at some
// instant during the call, the aggregate's latest sequence was exactly
// Sequence; an error wrapping ErrConflict (see ConflictError) when it was
// not; ErrUnavailable when the store failed (the caller must not answer
// then). It writes nothing. Safe for concurrent use; slices are not
// retained. A Log that does not implement it is checked with LastSequence,
// which must then be linearizable (true of the in-process stores).
type HeadChecker interface {
	CheckHead(ctx context.Context, heads []Head) []error
}

// CheckHeads checks heads with log's HeadChecker, or with LastSequence when
// log has none.
func CheckHeads(ctx context.Context, log Log, heads []Head) []error {
	if hc, ok := log.(HeadChecker); ok {
		return hc.CheckHead(ctx, heads)
	}
	errs := make([]error, len(heads))
	for i, h := range heads {
		last, err := log.LastSequence(ctx, h.Ref)
		switch {
		case err != nil:
			errs[i] = err
		case last != h.Sequence:
			errs[i] = ConflictError(h.Ref, h.Sequence, last)
		}
	}
	return errs
}
