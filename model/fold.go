package model

import (
	"errors"
	"fmt"
	"iter"
	"time"
)

// Errors of the programming model. Check with errors.Is / errors.As.
var (
	// ErrUnknownCommand: the aggregate type defines no command of that name.
	ErrUnknownCommand = errors.New("model: unknown command")
	// ErrInvalidArgs: the command's arguments did not decode into its
	// argument type or failed its Validate method.
	ErrInvalidArgs = errors.New("model: invalid arguments")
	// ErrCorruptHistory: a history breaks the aggregate's rules (a gap or
	// out-of-order sequence, an event before the initial one, an event after
	// the terminal one, an event the type does not define, a payload that
	// does not decode). The log must not contain such a history; it is
	// reported, never repaired.
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

// fold rolls events into one view's value and enforces the lifecycle rules.
// In strict mode (command processing, full replay) the sequence must be
// gap-free; as-of replays skip later events and so only require increasing
// sequence numbers.
type fold[V any] struct {
	view *View[V]
	// id is the aggregate id of the first event folded; every later event
	// must have the same.
	id         string
	value      V
	seq        uint64
	exists     bool
	terminated bool
	strict     bool
}

func (f *fold[V]) apply(e *Event) error {
	ref := e.Ref()
	info, known := f.view.events[e.VersionedName()]
	switch {
	case e.AggregateType != f.view.owner:
		return fmt.Errorf("%w: %s seq %d: event of type %q folded into %q", ErrCorruptHistory, ref, e.Sequence, e.AggregateType, f.view.owner)
	case !known:
		return fmt.Errorf("%w: %s seq %d: event %s is not defined for %q", ErrCorruptHistory, ref, e.Sequence, e.VersionedName(), f.view.owner)
	case f.seq > 0 && e.AggregateID != f.id:
		return fmt.Errorf("%w: %s seq %d: event of another aggregate folded into %q", ErrCorruptHistory, ref, e.Sequence, f.id)
	case f.strict && e.Sequence != f.seq+1:
		return fmt.Errorf("%w: %s: sequence %d follows %d", ErrCorruptHistory, ref, e.Sequence, f.seq)
	case !f.strict && e.Sequence <= f.seq:
		return fmt.Errorf("%w: %s: sequence %d follows %d", ErrCorruptHistory, ref, e.Sequence, f.seq)
	case f.terminated:
		return fmt.Errorf("%w: %s seq %d: event %s after the terminal event", ErrCorruptHistory, ref, e.Sequence, e.VersionedName())
	case f.strict && !f.exists && !info.chars.IsInitial():
		return fmt.Errorf("%w: %s seq %d: first event %s is not initial", ErrCorruptHistory, ref, e.Sequence, e.VersionedName())
	case f.exists && info.chars.IsInitial():
		return fmt.Errorf("%w: %s seq %d: initial event %s on an existing aggregate", ErrCorruptHistory, ref, e.Sequence, e.VersionedName())
	}
	if apply := f.view.appliers[info.name]; apply != nil {
		if err := apply(&f.value, e); err != nil {
			return fmt.Errorf("%w: %w", ErrCorruptHistory, err)
		}
	} else if err := info.check(f.view.codec, e.Payload); err != nil {
		// Every view refuses an undecodable payload, not just the views
		// that apply that event.
		return fmt.Errorf("%w: %s seq %d: decoding %s: %v", ErrCorruptHistory, ref, e.Sequence, info.name, err)
	}
	f.id = e.AggregateID
	f.seq = e.Sequence
	f.exists = true
	f.terminated = info.chars.IsTerminal()
	return nil
}

// Replay rolls a history (in sequence order, gap-free, from sequence 1) into
// the view's value.
func (v *View[V]) Replay(events []Event) (V, error) {
	f := fold[V]{view: v, strict: true}
	for i := range events {
		if err := f.apply(&events[i]); err != nil {
			var zero V
			return zero, err
		}
	}
	return f.value, nil
}

// ReplaySeq is Replay over a stream, such as eventlog.Events.
func (v *View[V]) ReplaySeq(events iter.Seq2[Event, error]) (V, error) {
	f := fold[V]{view: v, strict: true}
	for e, err := range events {
		if err == nil {
			err = f.apply(&e)
		}
		if err != nil {
			var zero V
			return zero, err
		}
	}
	return f.value, nil
}

// ReplayAsOf rolls up the state as it was at instant asOf: events whose event
// timestamp is after asOf are ignored, the rest apply in sequence order.
func (v *View[V]) ReplayAsOf(events []Event, asOf time.Time) (V, error) {
	f := fold[V]{view: v}
	for i := range events {
		if events[i].Timestamp.After(asOf) {
			continue
		}
		if err := f.apply(&events[i]); err != nil {
			var zero V
			return zero, err
		}
	}
	return f.value, nil
}

// ViewFold is a type-erased, incremental replay of one view, used by the
// node to answer state queries without knowing the view's Go type.
type ViewFold interface {
	// Apply folds the next event.
	Apply(e *Event) error
	// Sequence returns the sequence of the last event folded.
	Sequence() uint64
	// Exists reports whether an initial event has been folded.
	Exists() bool
	// MarshalValue encodes the view's value with the type's codec.
	MarshalValue() ([]byte, error)
}

type erasedView interface {
	newFold(strict bool) ViewFold
}

type viewFold[V any] struct{ fold[V] }

func (f *viewFold[V]) Apply(e *Event) error          { return f.apply(e) }
func (f *viewFold[V]) Sequence() uint64              { return f.seq }
func (f *viewFold[V]) Exists() bool                  { return f.exists }
func (f *viewFold[V]) MarshalValue() ([]byte, error) { return f.view.codec.Marshal(f.value) }

func (v *View[V]) newFold(strict bool) ViewFold {
	return &viewFold[V]{fold[V]{view: v, strict: strict}}
}
