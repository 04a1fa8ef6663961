package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

// Fact is one fact about one aggregate as its source reported it.
type Fact struct {
	Name model.VersionedName
	// Timestamp is when it happened at the source; required (it is part
	// of the fact's identity).
	Timestamp time.Time
	// StreamID is the source's stream; empty means model.DefaultStream.
	StreamID string
	// Payload is the event's payload, encoded with the type's codec.
	Payload []byte
}

// FactResult answers one fact.
type FactResult struct {
	// Sequence is the fact's place in the log: where it was appended, or,
	// for a duplicate, where it was already.
	Sequence uint64
	// Duplicate: the history held this fact already; nothing was stored.
	Duplicate bool
	// Late: it was stamped before an event already recorded.
	Late bool
	// Place is where it stands in the aggregate's life now.
	Place model.Outcome
	// Err is set when the fact was refused (nothing stored): wrapping
	// model.ErrUnknownEvent, model.ErrInvalidArgs, or a *model.Rejection.
	Err error
}

// MaxFactsPerAggregate bounds the facts of one aggregate in one request.
const MaxFactsPerAggregate = 1000

// SubmitFacts queues facts about one aggregate and returns at once; done
// is called exactly once with one result per fact, in order, or with an
// error that applies to all of them (unknown type, saturation, a store
// failure, a deadline). After an error, some of the facts may have been
// stored (a request is appended in rounds, see ingest); sending the same
// facts again is safe: those come back as duplicates.
func (x *Executor) SubmitFacts(ctx context.Context, ref model.Ref, facts []Fact, done func([]FactResult, error)) {
	if err := x.checkFacts(ref, facts); err != nil {
		x.stats.invalid.Add(1)
		done(nil, err)
		return
	}
	x.enqueue(&job{kind: jobFacts, ctx: ctx, req: Request{Ref: ref}, facts: facts, fdone: done})
}

// Ingest runs SubmitFacts and waits for it.
func (x *Executor) Ingest(ctx context.Context, ref model.Ref, facts []Fact) ([]FactResult, error) {
	type outcome struct {
		res []FactResult
		err error
	}
	ch := make(chan outcome, 1)
	x.SubmitFacts(ctx, ref, facts, func(r []FactResult, err error) { ch <- outcome{r, err} })
	select {
	case o := <-ch:
		return o.res, o.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: facts for %s: %v", ErrTimeout, ref, ctx.Err())
	}
}

func (x *Executor) checkFacts(ref model.Ref, facts []Fact) error {
	if err := ref.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	if _, ok := x.reg.Lookup(ref.Type); !ok {
		return fmt.Errorf("%w: %q", ErrUnknownType, ref.Type)
	}
	switch {
	case len(facts) == 0:
		return fmt.Errorf("%w: no facts", ErrInvalidRequest)
	case len(facts) > MaxFactsPerAggregate:
		return fmt.Errorf("%w: %d facts for %s, limit %d", ErrInvalidRequest, len(facts), ref, MaxFactsPerAggregate)
	}
	for i := range facts {
		if facts[i].Timestamp.IsZero() {
			return fmt.Errorf("%w: fact %d (%s) has no timestamp", ErrInvalidRequest, i, facts[i].Name)
		}
	}
	return nil
}

// ingest runs one facts job on its aggregate's worker. The facts are taken
// in the request's order, in rounds: a round ends after a fact that bears
// on the aggregate's life (an initial or terminal event), so that the facts
// after it are checked against a history that holds it, exactly as if they
// had come in a later request (a fact stamped after a terminal event sent
// earlier in the same request is refused, not stored). Most requests are
// one round: one append.
func (x *Executor) ingest(e *entity, j *job) ([]FactResult, error) {
	results := make([]FactResult, len(j.facts))
	stored := make([]model.Event, len(j.facts)) // each answered fact's event, to place it
	for next, conflicts := 0, 0; next < len(j.facts); {
		n, err := x.ingestRound(e, j.facts[next:], results[next:], stored[next:])
		switch {
		case err == nil:
			next += n
		case errors.Is(err, eventlog.ErrConflict) && conflicts == 0:
			conflicts++ // reload and take this round again
			x.log.Info("fence failed (another writer moved the history); reloading and ingesting again", "aggregate", e.ref.String(), "err", err)
		case errors.Is(err, eventlog.ErrConflict):
			return nil, fmt.Errorf("%w: %s: %v", ErrConflict, e.ref, err)
		default:
			return nil, err
		}
	}
	// Places as the whole request leaves the life (a terminal event later
	// in the request may end it after a fact taken earlier).
	for i := range results {
		if results[i].Err == nil && e.agg != nil {
			results[i].Place = e.agg.Place(&stored[i])
		}
	}
	x.countFacts(results)
	return results, nil
}

// ingestRound checks facts up to and including the first initial or
// terminal one it accepts, appends them, absorbs them into the cached
// state, and fills their results. It returns how many facts it took. An
// error wrapping eventlog.ErrConflict means another writer moved the
// history: the state is dropped and nothing of the round was written.
func (x *Executor) ingestRound(e *entity, facts []Fact, results []FactResult, stored []model.Event) (int, error) {
	if _, _, _, err := x.load(e, ""); err != nil {
		return 0, err
	}
	seq := e.agg.Sequence()
	now := model.NormalizeTime(x.clock())
	var events []model.Event
	owner := make([]int, 0, len(facts))               // events[k] answers results[owner[k]]
	inBatch := make(map[model.FactID]int, len(facts)) // identity → index in events
	taken := 0
	for i := range facts {
		taken = i + 1
		f := &facts[i]
		stream := f.StreamID
		if stream == "" {
			stream = model.DefaultStream
		}
		ev := model.Event{
			AggregateType: e.ref.Type, AggregateID: e.ref.ID,
			Timestamp: model.NormalizeTime(f.Timestamp), StreamID: stream,
			ProcessingTime: now, Name: f.Name.Name, Version: f.Name.Version, Payload: f.Payload,
		}
		id := ev.FactID()
		if s, ok := e.agg.Fact(id); ok {
			results[i] = FactResult{Sequence: s, Duplicate: true}
			ev.Sequence = s
			_ = e.agg.CheckFact(&ev) // only to learn its characteristics
			stored[i] = ev
			continue
		}
		if k, ok := inBatch[id]; ok {
			results[i] = FactResult{Sequence: events[k].Sequence, Duplicate: true}
			stored[i] = events[k]
			continue
		}
		if err := e.agg.CheckFact(&ev); err != nil {
			results[i] = FactResult{Err: err}
			continue
		}
		var err error
		ev.Sequence = seq + uint64(len(events)) + 1
		if ev.EventID, err = x.ids.EventID(); err == nil {
			ev.ProcessingID, err = x.ids.ProcessingID(ev.ProcessingTime)
		}
		if err != nil {
			return 0, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
		inBatch[id] = len(events)
		events = append(events, ev)
		owner = append(owner, i)
		results[i] = FactResult{Sequence: ev.Sequence}
		if ev.Characteristics.IsInitial() || ev.Characteristics.IsTerminal() {
			break // the facts after it are checked against a life that has it
		}
	}
	if len(events) == 0 {
		// Duplicates and refusals rest on events the append-only log
		// holds for good: no fence is needed to answer them.
		return taken, nil
	}
	item := &flushItem{append: &eventlog.Append{Ref: e.ref, Expected: seq, Events: events}, facts: true}
	err := x.record(item)
	if err != nil && item.prepared {
		x.publish.Discard(item.ticket, !errors.Is(err, eventlog.ErrConflict) && !errors.Is(err, eventlog.ErrInvalidAppend))
	}
	switch {
	case err == nil:
	case errors.Is(err, eventlog.ErrConflict):
		x.stats.fenced.Add(1)
		e.agg = nil
		return 0, err
	default:
		e.agg = nil // whether it landed is unknown: reload next time
		return 0, fmt.Errorf("%w: %s: %v", ErrUnavailable, e.ref, err)
	}
	x.absorb(e, events)
	for k, i := range owner {
		results[i].Late = events[k].Late
		stored[i] = events[k]
	}
	if x.publish != nil {
		x.publish.Publish(item.ticket, events)
	}
	return taken, nil
}

func (x *Executor) countFacts(results []FactResult) {
	for i := range results {
		switch {
		case results[i].Err != nil:
			x.stats.factsRefused.Add(1)
		case results[i].Duplicate:
			x.stats.factDuplicates.Add(1)
		default:
			x.stats.facts.Add(1)
		}
	}
}
