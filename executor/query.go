package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

// Query asks for one view of one aggregate.
type Query struct {
	Ref model.Ref
	// View names the view; empty means the primary state view.
	View string
	// AsOf, when set, rolls up only events whose event timestamp is not
	// after it.
	AsOf time.Time
}

// QueryResult is a view's value, encoded with the type's codec.
type QueryResult struct {
	Ref    model.Ref
	View   string
	Exists bool
	// Sequence is the log head the value was folded to; 0 for an asOf
	// query, whose events (the event-time prefix up to AsOf) are in
	// general not a prefix of the log: Prefix describes them.
	Sequence uint64
	Prefix   model.Prefix
	Value    []byte
}

// ErrUnknownView: the aggregate type has no view of that name.
var ErrUnknownView = errors.New("executor: unknown view")

// SubmitQuery queues a read of one view. It runs in the aggregate's mailbox,
// after the commands queued before it, so it sees their effects.
func (x *Executor) SubmitQuery(ctx context.Context, q Query, done func(QueryResult, error)) {
	if q.View == "" {
		q.View = model.StateView
	}
	if err := q.Ref.Validate(); err != nil {
		done(QueryResult{}, fmt.Errorf("%w: %v", ErrInvalidRequest, err))
		return
	}
	kind, ok := x.reg.Lookup(q.Ref.Type)
	if !ok {
		done(QueryResult{}, fmt.Errorf("%w: %q", ErrUnknownType, q.Ref.Type))
		return
	}
	if _, ok := kind.FoldView(q.View); !ok {
		done(QueryResult{}, fmt.Errorf("%w: %q has no view %q (views: %v)", ErrUnknownView, q.Ref.Type, q.View, kind.Views()))
		return
	}
	x.enqueue(&job{kind: jobQuery, ctx: ctx, query: q, qdone: done})
}

// Ask runs a query and waits for it.
func (x *Executor) Ask(ctx context.Context, q Query) (QueryResult, error) {
	return await(ctx, func(done func(QueryResult, error)) { x.SubmitQuery(ctx, q, done) },
		func(err error) error { return fmt.Errorf("%w: query %s: %v", ErrTimeout, q.Ref, err) })
}

// fenceCached confirms that e's cached state is still the log's before a
// query answers from it (see "Fences" in the package doc): another owner
// may have appended since it was folded. The history is checked to end
// where the state does; if it does not, the state is reloaded, and the
// reload, read from the log during the query, is what it answers.
func (x *Executor) fenceCached(e *entity) error {
	ctx, cancel := x.storeCtx()
	defer cancel()
	err := eventlog.CheckHeads(ctx, x.events, []eventlog.Head{{Ref: e.ref, Sequence: e.agg.Sequence()}})[0]
	switch {
	case err == nil:
		return nil
	case errors.Is(err, eventlog.ErrConflict):
		x.stats.fenced.Add(1)
		x.log.Info("fence failed (another writer moved the history); reloading before answering a query",
			"aggregate", e.ref.String(), "err", err)
		e.agg = nil
		_, _, _, err = x.load(e, "")
		return err
	default:
		e.agg = nil // what the store holds is unknown: reload next time
		return fmt.Errorf("%w: checking the head of %s: %v", ErrUnavailable, e.ref, err)
	}
}

// query answers from the cached aggregate for the current primary state,
// and by folding the log in event-time order for other views or past
// instants: the whole history, or its event-time prefix up to AsOf (which
// stops reading at the first event stamped later).
func (x *Executor) query(e *entity, j *job) (QueryResult, error) {
	q := j.query
	res := QueryResult{Ref: e.ref, View: q.View}
	if q.View == model.StateView && q.AsOf.IsZero() {
		loaded, _, _, err := x.load(e, "")
		if err != nil {
			return res, err
		}
		if !loaded && !x.cfg.UnfencedDecisions {
			if err := x.fenceCached(e); err != nil {
				return res, err
			}
		}
		v, err := e.agg.MarshalState()
		if err != nil {
			return res, fmt.Errorf("%w: encoding state of %s: %v", ErrUnavailable, e.ref, err)
		}
		res.Exists, res.Sequence, res.Prefix, res.Value = e.agg.Exists(), e.agg.Sequence(), e.agg.Prefix(), v
		return res, nil
	}
	ctx, cancel := x.storeCtx()
	defer cancel()
	f, _ := e.kind.FoldView(q.View)
	events := eventlog.EventsInTime(ctx, x.events, e.ref, model.TimeKey{}, x.cfg.LoadPageSize)
	if !q.AsOf.IsZero() {
		events = eventlog.EventsInTimeUntil(ctx, x.events, e.ref, q.AsOf, x.cfg.LoadPageSize)
	}
	for ev, err := range events {
		if err == nil {
			err = f.Apply(&ev)
		}
		if err != nil {
			return res, fmt.Errorf("%w: replaying %s view %q: %v", ErrUnavailable, e.ref, q.View, err)
		}
	}
	v, err := f.MarshalValue()
	if err != nil {
		return res, fmt.Errorf("%w: encoding view %q of %s: %v", ErrUnavailable, q.View, e.ref, err)
	}
	res.Exists, res.Prefix, res.Value = f.Exists(), f.Prefix(), v
	if q.AsOf.IsZero() {
		res.Sequence = f.Prefix().MaxSequence
	}
	return res, nil
}
