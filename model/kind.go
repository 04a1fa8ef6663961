package model

import (
	"errors"
	"fmt"
	"sort"
	"time"
)

// Kind is an aggregate type with its Go types erased: what the executor and
// the node need to run commands for a type they were handed at start-up.
// *Type[S] implements it. Safe for concurrent use once defined.
type Kind interface {
	// Name is the aggregate type's name.
	Name() string
	// Err reports definition mistakes; a Kind with an error is not registered.
	Err() error
	// HasCommand reports whether a command of that name is defined.
	HasCommand(name string) bool
	// Commands and Views list the defined names, sorted.
	Commands() []string
	Views() []string
	// NewAggregate returns an empty state machine for one aggregate id.
	NewAggregate(id string) Aggregate
	// FoldView starts a replay of the named view. asOf replays (which skip
	// later events) pass strict=false.
	FoldView(name string, strict bool) (ViewFold, bool)
}

// Aggregate is the primary state machine of one aggregate: it applies
// recorded events and decides commands. It is pure (no I/O, no clock) and
// not safe for concurrent use: the executor gives each one a single owner.
type Aggregate interface {
	Ref() Ref
	// Sequence of the last applied event, 0 if none.
	Sequence() uint64
	// Exists: an initial event was applied. Terminated: a terminal one was.
	Exists() bool
	Terminated() bool
	// Apply folds the next recorded event; an error wraps ErrCorruptHistory.
	Apply(e *Event) error
	// Decide runs a command against the current state without changing it
	// and returns the events to append, numbered from Sequence()+1, with
	// EventID and ProcessingID left empty for the caller to assign. Errors:
	// ErrUnknownCommand, ErrInvalidArgs (wrapped), or a *Rejection.
	Decide(req *CommandRequest) ([]Event, error)
	// MarshalState encodes the primary state with the type's codec.
	MarshalState() ([]byte, error)
}

// CommandRequest is one command as the executor hands it to Decide.
type CommandRequest struct {
	CommandID string
	Command   string
	// Args is the encoded argument value; empty means "{}".
	Args []byte
	// Timestamp is when the command's fact happened at its source; zero
	// means Now. StreamID is the source's stream; empty means DefaultStream.
	Timestamp time.Time
	StreamID  string
	// Now is the processing time, supplied by the caller's clock.
	Now time.Time
}

// TimePrecision is the resolution at which event timestamps and processing
// times are recorded (every store, Cassandra included, keeps milliseconds).
const TimePrecision = time.Millisecond

// NormalizeTime truncates t to TimePrecision and converts it to UTC, the
// form in which every store records it.
func NormalizeTime(t time.Time) time.Time { return t.Truncate(TimePrecision).UTC() }

// HasCommand implements Kind.
func (t *Type[S]) HasCommand(name string) bool { _, ok := t.commands[name]; return ok }

// NewAggregate implements Kind.
func (t *Type[S]) NewAggregate(id string) Aggregate {
	return &instance[S]{t: t, ref: Ref{Type: t.name, ID: id}, f: fold[S]{view: t.state, strict: true}}
}

// FoldView implements Kind.
func (t *Type[S]) FoldView(name string, strict bool) (ViewFold, bool) {
	v, ok := t.views[name]
	if !ok {
		return nil, false
	}
	return v.newFold(strict), true
}

// Value returns the typed primary state of an aggregate made by this type.
func (t *Type[S]) Value(a Aggregate) (S, bool) {
	in, ok := a.(*instance[S])
	if !ok || in.t != t {
		var zero S
		return zero, false
	}
	return in.f.value, true
}

type instance[S any] struct {
	t   *Type[S]
	ref Ref
	f   fold[S]
}

func (a *instance[S]) Ref() Ref                      { return a.ref }
func (a *instance[S]) Sequence() uint64              { return a.f.seq }
func (a *instance[S]) Exists() bool                  { return a.f.exists }
func (a *instance[S]) Terminated() bool              { return a.f.terminated }
func (a *instance[S]) MarshalState() ([]byte, error) { return a.t.codec.Marshal(a.f.value) }

func (a *instance[S]) Apply(e *Event) error {
	if e.AggregateID != a.ref.ID {
		return fmt.Errorf("%w: event of %s applied to %s", ErrCorruptHistory, e.Ref(), a.ref)
	}
	return a.f.apply(e)
}

func (a *instance[S]) Decide(req *CommandRequest) ([]Event, error) {
	ci, ok := a.t.commands[req.Command]
	if !ok {
		return nil, fmt.Errorf("%w: %q has no command %q", ErrUnknownCommand, a.t.name, req.Command)
	}
	decide, err := ci.parse(a.t.codec, req.Args)
	if err != nil {
		return nil, err // bad input: refused before the state is consulted, never recorded
	}
	if a.f.terminated {
		return nil, Reject(ReasonTerminated, "%s has ended (terminal event at sequence %d); %s is refused", a.ref, a.f.seq, req.Command)
	}
	now := NormalizeTime(req.Now)
	ts := now
	if !req.Timestamp.IsZero() {
		ts = NormalizeTime(req.Timestamp)
	}
	stream := req.StreamID
	if stream == "" {
		stream = DefaultStream
	}
	snap := Snapshot[S]{Ref: a.ref, Exists: a.f.exists, Sequence: a.f.seq, Value: a.f.value, Now: now, Timestamp: ts}
	emits, err := decide(snap)
	if err != nil {
		var rej *Rejection
		switch {
		case errors.Is(err, ErrInvalidArgs), errors.As(err, &rej):
			return nil, err
		default:
			return nil, &Rejection{Reason: ReasonHandlerError, Message: err.Error()}
		}
	}
	for _, em := range emits {
		if em.info == nil {
			return nil, Reject(ReasonHandlerError, "%s emitted a zero Emit (use EventType.New)", req.Command)
		}
		if known := a.t.events[em.info.name]; known != em.info {
			return nil, Reject(ReasonHandlerError, "%s emitted event %s of type %q, not defined for %q", req.Command, em.info.name, em.info.owner, a.t.name)
		}
	}
	if !a.f.exists && (len(emits) == 0 || !emits[0].info.chars.IsInitial()) {
		return nil, Reject(ReasonNotFound, "%s does not exist and %s does not create it", a.ref, req.Command)
	}
	events := make([]Event, len(emits))
	exists, terminated := a.f.exists, false
	for i, em := range emits {
		switch {
		case terminated:
			return nil, Reject(ReasonHandlerError, "%s emitted %s after a terminal event", req.Command, em.info.name)
		case em.info.chars.IsInitial() && exists:
			return nil, Reject(ReasonAlreadyExists, "%s already exists; %s cannot create it again", a.ref, req.Command)
		}
		exists, terminated = true, em.info.chars.IsTerminal()
		payload, err := a.t.codec.Marshal(em.payload)
		if err != nil {
			return nil, Reject(ReasonHandlerError, "%s: encoding %s: %v", req.Command, em.info.name, err)
		}
		e := Event{
			AggregateType:   a.ref.Type,
			AggregateID:     a.ref.ID,
			Sequence:        a.f.seq + uint64(i) + 1,
			Timestamp:       ts,
			StreamID:        stream,
			ProcessingTime:  now,
			Name:            em.info.name.Name,
			Version:         em.info.name.Version,
			Characteristics: em.info.chars,
			Payload:         payload,
			CommandID:       req.CommandID,
		}
		if !em.timestamp.IsZero() {
			e.Timestamp = NormalizeTime(em.timestamp)
		}
		if em.stream != "" {
			e.StreamID = em.stream
		}
		events[i] = e
	}
	return events, nil
}

// Registry holds the aggregate types one node serves. Build it explicitly
// with NewRegistry; there is no global registry.
type Registry struct {
	kinds map[string]Kind
}

// NewRegistry checks each kind's definition and that names are unique.
func NewRegistry(kinds ...Kind) (*Registry, error) {
	r := &Registry{kinds: make(map[string]Kind, len(kinds))}
	var errs []error
	for _, k := range kinds {
		if k == nil {
			errs = append(errs, errors.New("model: nil aggregate type"))
			continue
		}
		if err := k.Err(); err != nil {
			errs = append(errs, err)
			continue
		}
		if _, dup := r.kinds[k.Name()]; dup {
			errs = append(errs, fmt.Errorf("model: aggregate type %q registered twice", k.Name()))
			continue
		}
		r.kinds[k.Name()] = k
	}
	if len(r.kinds) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("model: a registry needs at least one aggregate type"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// Lookup returns the kind of that name.
func (r *Registry) Lookup(name string) (Kind, bool) {
	k, ok := r.kinds[name]
	return k, ok
}

// Names lists the registered aggregate types, sorted.
func (r *Registry) Names() []string {
	names := make([]string, 0, len(r.kinds))
	for n := range r.kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
