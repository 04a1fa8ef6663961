package model

import (
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"
)

// Errors of the programming model. Check with errors.Is / errors.As.
var (
	// ErrUnknownEvent: the aggregate type defines no event of that
	// versioned name.
	ErrUnknownEvent = errors.New("model: unknown event")
	// ErrUnknownCommand: the aggregate type defines no command of that name.
	ErrUnknownCommand = errors.New("model: unknown command")
	// ErrInvalidArgs: the command's arguments did not decode into its
	// argument type or failed its Validate method.
	ErrInvalidArgs = errors.New("model: invalid arguments")
	// ErrCorruptHistory: a history breaks the log's rules (a gap or a
	// repeated sequence, an event of another aggregate, an event the type
	// does not define, a payload that does not decode, a stream that is not
	// in event-time order). The log must not contain such a history; it is
	// reported, never repaired. Events outside the aggregate's life (see
	// Outcome) are not corruption: facts may arrive in any order.
	ErrCorruptHistory = errors.New("model: corrupt history")
)

// Rejection reasons the model itself produces; handlers add their own.
const (
	// ReasonNotFound: the aggregate does not exist and the command does not
	// create it (its first event is not an initial event).
	ReasonNotFound = "not_found"
	// ReasonAlreadyExists: the command emitted an initial event for an
	// aggregate that exists.
	ReasonAlreadyExists = "already_exists"
	// ReasonTerminated: the aggregate's life has ended; every command is
	// rejected.
	ReasonTerminated = "terminated"
	// ReasonBeforeInitial: the command's events would be stamped before
	// the aggregate's initial event, outside its life.
	ReasonBeforeInitial = "before_initial"
	// ReasonHandlerError: the handler returned a plain error or emitted an
	// impossible sequence of events; it is reported as a rejection so that
	// nothing is written.
	ReasonHandlerError = "handler_error"
)

// Rejection is the typed refusal of a command by the domain. Reason is a
// stable machine-readable code chosen by the handler ("not_screwed_in");
// Message is for people.
type Rejection struct {
	Reason  string
	Message string
}

func (r *Rejection) Error() string { return "rejected (" + r.Reason + "): " + r.Message }

// Reject returns a *Rejection with a reason code and a formatted message.
func Reject(reason, format string, args ...any) error {
	return &Rejection{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Outcome says what folding one event did to a history's state.
type Outcome uint8

const (
	// Applied: the event is within the aggregate's life and its view
	// appliers ran.
	Applied Outcome = iota
	// Waiting: the event is stamped before the aggregate's initial event
	// (or no initial event is known yet). It is kept in the history and
	// applies once an initial event stamped earlier arrives.
	Waiting
	// AfterEnd: the event is stamped after the aggregate's terminal event;
	// it never applies.
	AfterEnd
	// SecondInitial: an initial event stamped after the aggregate's first
	// initial event; it never applies (the earliest initial event begins
	// the life).
	SecondInitial
)

// String renders the outcome: "applied", "waiting", "after_end",
// "second_initial".
func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case Waiting:
		return "waiting"
	case AfterEnd:
		return "after_end"
	case SecondInitial:
		return "second_initial"
	}
	return "unknown"
}

// Prefix describes the events a fold has taken in: how many, how many
// applied, the last one's place in event-time order, and the highest
// sequence among them. For a fold of a whole history, Events is its
// length and MaxSequence its head; for an asOf fold, they describe the
// event-time prefix, which is not in general a prefix of the log.
type Prefix struct {
	Events      int
	Applied     int
	Waiting     int
	Last        TimeKey
	MaxSequence uint64
}

// fold rolls events into one view's value in event-time order (TimeKey
// strictly increasing) and applies the lifecycle rules in event time: the
// aggregate's life runs from its earliest initial event to its earliest
// terminal event; events outside it are counted, kept in the history, and
// not applied (see Outcome). A history's state therefore depends only on
// the set of its events, never on the order in which they arrived.
type fold[V any] struct {
	view *View[V]
	// id is the aggregate id of the first event folded; every later event
	// must have the same.
	id         string
	value      V
	exists     bool
	terminated bool
	prefix     Prefix
}

// foldMeta is everything of a fold but its value: what a checkpoint keeps
// beside the encoded value.
type foldMeta struct {
	exists, terminated bool
	prefix             Prefix
}

func (f *fold[V]) meta() foldMeta {
	return foldMeta{exists: f.exists, terminated: f.terminated, prefix: f.prefix}
}

// check refuses an event that cannot belong to this fold at all: another
// type or aggregate, an undefined name, an event out of event-time order.
func (f *fold[V]) check(e *Event) (*eventInfo, error) {
	ref := e.Ref()
	info, known := f.view.events[e.VersionedName()]
	switch {
	case e.AggregateType != f.view.owner:
		return nil, fmt.Errorf("%w: %s seq %d: event of type %q folded into %q", ErrCorruptHistory, ref, e.Sequence, e.AggregateType, f.view.owner)
	case !known:
		return nil, fmt.Errorf("%w: %s seq %d: event %s is not defined for %q", ErrCorruptHistory, ref, e.Sequence, e.VersionedName(), f.view.owner)
	case f.prefix.Events > 0 && e.AggregateID != f.id:
		return nil, fmt.Errorf("%w: %s seq %d: event of another aggregate folded into %q", ErrCorruptHistory, ref, e.Sequence, f.id)
	case e.Sequence == 0:
		return nil, fmt.Errorf("%w: %s: event %s has no sequence", ErrCorruptHistory, ref, e.VersionedName())
	case f.prefix.Events > 0 && !f.prefix.Last.Before(e.TimeKey()):
		return nil, fmt.Errorf("%w: %s seq %d: event-time order broken (%v after %v)", ErrCorruptHistory, ref, e.Sequence, e.TimeKey(), f.prefix.Last)
	}
	return info, nil
}

// apply folds the next event in event-time order.
func (f *fold[V]) apply(e *Event) (Outcome, error) {
	info, err := f.check(e)
	if err != nil {
		return 0, err
	}
	out := Applied
	switch {
	case f.terminated:
		out = AfterEnd
	case !f.exists && !info.chars.IsInitial():
		out = Waiting
	case f.exists && info.chars.IsInitial():
		out = SecondInitial
	}
	if out == Applied {
		if apply := f.view.appliers[info.name]; apply != nil {
			if err := apply(&f.value, e); err != nil {
				return 0, fmt.Errorf("%w: %w", ErrCorruptHistory, err)
			}
		}
	}
	if out != Applied || f.view.appliers[info.name] == nil {
		// Every view refuses an undecodable payload, not just the views
		// that apply that event, and also outside the life.
		if err := info.check(f.view.codec, e.Payload); err != nil {
			return 0, fmt.Errorf("%w: %s seq %d: decoding %s: %v", ErrCorruptHistory, e.Ref(), e.Sequence, info.name, err)
		}
	}
	f.id = e.AggregateID
	f.prefix.Events++
	f.prefix.Last = e.TimeKey()
	f.prefix.MaxSequence = max(f.prefix.MaxSequence, e.Sequence)
	switch out {
	case Applied:
		f.prefix.Applied++
		f.exists = true
		f.terminated = info.chars.IsTerminal()
	case Waiting:
		f.prefix.Waiting++
	}
	return out, nil
}

// sortedHistory returns a copy of events sorted by TimeKey.
func sortedHistory(events []Event) []Event {
	sorted := slices.Clone(events)
	slices.SortFunc(sorted, func(a, b Event) int { return a.TimeKey().Compare(b.TimeKey()) })
	return sorted
}

// checkGapFree reports whether the events' sequences are exactly 1..n.
func checkGapFree(events []Event) error {
	seen := make([]bool, len(events)+1)
	for i := range events {
		s := events[i].Sequence
		if s == 0 || s > uint64(len(events)) || seen[s] {
			return fmt.Errorf("%w: %s: sequences are not 1..%d (seq %d)", ErrCorruptHistory, events[i].Ref(), len(events), s)
		}
		seen[s] = true
	}
	return nil
}

// Replay rolls a whole history into the view's value. The events may be
// given in any order (log order, as read from a store, or shuffled): they
// are folded in event-time order, so the result depends only on the set.
// Their sequences must be exactly 1..n (a whole, gap-free history).
func (v *View[V]) Replay(events []Event) (V, error) {
	if err := checkGapFree(events); err != nil {
		var zero V
		return zero, err
	}
	return v.foldAll(sortedHistory(events))
}

func (v *View[V]) foldAll(sorted []Event) (V, error) {
	f := fold[V]{view: v}
	for i := range sorted {
		if _, err := f.apply(&sorted[i]); err != nil {
			var zero V
			return zero, err
		}
	}
	return f.value, nil
}

// ReplaySeq is Replay over a stream in event-time order, such as
// eventlog.EventsInTime yields: it needs no memory for the history. An
// event out of event-time order is ErrCorruptHistory.
func (v *View[V]) ReplaySeq(events iter.Seq2[Event, error]) (V, error) {
	f := fold[V]{view: v}
	for e, err := range events {
		if err == nil {
			_, err = f.apply(&e)
		}
		if err != nil {
			var zero V
			return zero, err
		}
	}
	return f.value, nil
}

// ReplayAsOf rolls up the state as it was at instant asOf: the fold of the
// event-time prefix up to asOf (the events stamped at or before it), in
// any arrival order.
func (v *View[V]) ReplayAsOf(events []Event, asOf time.Time) (V, error) {
	var prefix []Event
	for i := range events {
		if !events[i].Timestamp.After(asOf) {
			prefix = append(prefix, events[i])
		}
	}
	return v.foldAll(sortedHistory(prefix))
}

// ViewFold is a type-erased, incremental fold of one view in event-time
// order, used by the node to answer state queries without knowing the
// view's Go type.
type ViewFold interface {
	// Apply folds the next event in event-time order.
	Apply(e *Event) error
	// Prefix describes the events folded so far.
	Prefix() Prefix
	// Exists reports whether the aggregate's life has begun (an initial
	// event was applied).
	Exists() bool
	// MarshalValue encodes the view's value with the type's codec.
	MarshalValue() ([]byte, error)
}

type erasedView interface {
	newFold() ViewFold
}

type viewFold[V any] struct{ fold[V] }

func (f *viewFold[V]) Apply(e *Event) error          { _, err := f.apply(e); return err }
func (f *viewFold[V]) Prefix() Prefix                { return f.prefix }
func (f *viewFold[V]) Exists() bool                  { return f.exists }
func (f *viewFold[V]) MarshalValue() ([]byte, error) { return f.view.codec.Marshal(f.value) }

func (v *View[V]) newFold() ViewFold {
	return &viewFold[V]{fold[V]{view: v}}
}
