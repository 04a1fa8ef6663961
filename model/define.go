package model

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Type defines one aggregate type: its name, its primary state S (the view
// commands are validated against), its events, its commands and any extra
// state views. Build it once at start-up with NewType, DefineEvent, On,
// DefineCommand and NewView, then hand it to NewRegistry. Definition
// mistakes (duplicate names, events of another type …) are collected and
// reported by Err and NewRegistry; nothing panics.
//
// A Type is not safe for concurrent definition; once registered it is
// read-only and safe for concurrent use.
type Type[S any] struct {
	name     string
	codec    Codec
	events   map[VersionedName]*eventInfo
	commands map[string]*commandInfo[S]
	state    *View[S]
	views    map[string]erasedView
	errs     []error
}

var _ Kind = (*Type[struct{}])(nil)

type eventInfo struct {
	owner string
	name  VersionedName
	chars Characteristics
	// check decodes a payload into the event's Go type, to validate it.
	check func(codec Codec, payload []byte) error
}

// NewType starts the definition of an aggregate type. The name is used in
// subjects and store keys: letters, digits, '-' and '_' are safe.
func NewType[S any](name string, codec Codec) *Type[S] {
	t := &Type[S]{
		name:     name,
		codec:    codec,
		events:   map[VersionedName]*eventInfo{},
		commands: map[string]*commandInfo[S]{},
		views:    map[string]erasedView{},
	}
	if codec == nil {
		t.errorf("aggregate type %q has no codec", name)
		t.codec = JSON{}
	}
	if err := (Ref{Type: name, ID: "x"}).Validate(); err != nil {
		t.errorf("aggregate type name: %v", err)
	}
	t.state = &View[S]{name: StateView, owner: t.name, events: t.events, codec: t.codec, report: t.errorf, appliers: map[VersionedName]func(*S, *Event) error{}}
	t.views[StateView] = t.state
	return t
}

// StateView is the name of an aggregate type's primary state view.
const StateView = "state"

func (t *Type[S]) errorf(format string, args ...any) {
	t.errs = append(t.errs, fmt.Errorf("model: "+format, args...))
}

// Name returns the aggregate type's name ("" for a nil *Type).
func (t *Type[S]) Name() string {
	if t == nil {
		return ""
	}
	return t.name
}

// Codec returns the codec for payloads and arguments.
func (t *Type[S]) Codec() Codec { return t.codec }

// State returns the primary state view; register its appliers with On.
func (t *Type[S]) State() *View[S] { return t.state }

// Err reports every definition mistake found so far, joined.
func (t *Type[S]) Err() error {
	if t == nil {
		return errors.New("model: nil aggregate type")
	}
	if len(t.commands) == 0 {
		return errors.Join(append(t.errs, fmt.Errorf("model: aggregate type %q defines no command", t.name))...)
	}
	return errors.Join(t.errs...)
}

// eventOwner is implemented by *Type[S] for every S; it lets DefineEvent and
// NewView, which cannot be generic methods, reach the type's event set.
type eventOwner interface {
	typeName() string
	typeCodec() Codec
	eventSet() map[VersionedName]*eventInfo
	addView(name string, v erasedView) error
	errorf(format string, args ...any)
}

func (t *Type[S]) typeName() string                       { return t.name }
func (t *Type[S]) typeCodec() Codec                       { return t.codec }
func (t *Type[S]) eventSet() map[VersionedName]*eventInfo { return t.events }
func (t *Type[S]) addView(name string, v erasedView) error {
	if _, dup := t.views[name]; dup {
		return fmt.Errorf("model: aggregate type %q already has a view named %q", t.name, name)
	}
	t.views[name] = v
	return nil
}

// EventType is one versioned event of one aggregate type with payload P.
type EventType[P any] struct {
	info  *eventInfo
	codec Codec
}

// DefineEvent adds an event "name_version" with payload type P to an
// aggregate type. Use Initial for events that create the aggregate, Terminal
// for events that end it (0 for neither).
func DefineEvent[P any](t eventOwner, name string, version int, chars Characteristics) *EventType[P] {
	vn := VersionedName{Name: name, Version: version}
	info := &eventInfo{
		owner: t.typeName(),
		name:  vn,
		chars: chars,
		check: func(c Codec, payload []byte) error {
			var p P
			return c.Unmarshal(payload, &p)
		},
	}
	switch {
	case name == "":
		t.errorf("aggregate type %q: event with an empty name", t.typeName())
	case version < 0:
		t.errorf("aggregate type %q: event %q has negative version %d", t.typeName(), name, version)
	default:
		if err := (Ref{Type: name, ID: "x"}).Validate(); err != nil {
			t.errorf("aggregate type %q: event name %q: %v", t.typeName(), name, err)
		}
		if _, dup := t.eventSet()[vn]; dup {
			t.errorf("aggregate type %q: event %s defined twice", t.typeName(), vn)
		}
		t.eventSet()[vn] = info
	}
	return &EventType[P]{info: info, codec: t.typeCodec()}
}

// Name returns the event's versioned name.
func (et *EventType[P]) Name() VersionedName { return et.info.name }

// Characteristics returns whether the event is initial and/or terminal.
func (et *EventType[P]) Characteristics() Characteristics { return et.info.chars }

// Is reports whether e is an event of this type.
func (et *EventType[P]) Is(e *Event) bool {
	return e.AggregateType == et.info.owner && e.Name == et.info.name.Name && e.Version == et.info.name.Version
}

// Decode returns e's payload as P. ok is false when e is another event type.
func (et *EventType[P]) Decode(e *Event) (p P, ok bool, err error) {
	if !et.Is(e) {
		return p, false, nil
	}
	if err := et.codec.Unmarshal(e.Payload, &p); err != nil {
		return p, true, fmt.Errorf("model: decoding %s of %s seq %d: %w", et.info.name, e.Ref(), e.Sequence, err)
	}
	return p, true, nil
}

// New builds an event to emit from a command handler.
func (et *EventType[P]) New(payload P) Emit {
	return Emit{info: et.info, payload: payload}
}

// Emit is an event a command handler wants recorded; build it with
// EventType.New. The executor assigns its sequence, ids and times.
type Emit struct {
	info      *eventInfo
	payload   any
	timestamp time.Time
	stream    string
}

// At sets the event timestamp (when the fact happened at its source),
// overriding the command's timestamp.
func (e Emit) At(ts time.Time) Emit { e.timestamp = ts; return e }

// InStream sets the stream id, overriding the command's stream.
func (e Emit) InStream(stream string) Emit { e.stream = stream; return e }

// Recorded is an event of payload type P as an applier sees it. The embedded
// Event carries the metadata (sequence, timestamp, ids); Payload is decoded.
type Recorded[P any] struct {
	Event
	Payload P
}

// View is one way of rolling an aggregate type's history up into a value of
// type V. The primary view (Type.State) is what commands see; NewView adds
// more (for example totals computed from event timestamps).
type View[V any] struct {
	name   string
	owner  string
	events map[VersionedName]*eventInfo
	codec  Codec
	// report adds a definition mistake to the owning type's errors.
	report   func(format string, args ...any)
	appliers map[VersionedName]func(*V, *Event) error
}

// NewView adds a named extra view of type V to an aggregate type.
func NewView[V any](t eventOwner, name string) *View[V] {
	v := &View[V]{name: name, owner: t.typeName(), events: t.eventSet(), codec: t.typeCodec(), report: t.errorf, appliers: map[VersionedName]func(*V, *Event) error{}}
	if name == "" {
		t.errorf("aggregate type %q: view with an empty name", t.typeName())
	} else if err := t.addView(name, v); err != nil {
		t.errorf("%v", err)
	}
	return v
}

// Name returns the view's name.
func (v *View[V]) Name() string { return v.name }

// On registers how view v changes when event et is applied. An event with no
// applier leaves the view unchanged. Appliers must be deterministic and must
// not do I/O: they run on every replay.
func On[V, P any](v *View[V], et *EventType[P], apply func(v *V, e Recorded[P])) {
	if et.info.owner != v.owner {
		v.report("view %q of %q cannot apply event %s of %q", v.name, v.owner, et.info.name, et.info.owner)
		return
	}
	if _, dup := v.appliers[et.info.name]; dup {
		v.report("view %q of %q has two appliers for %s", v.name, v.owner, et.info.name)
		return
	}
	v.appliers[et.info.name] = func(state *V, e *Event) error {
		r := Recorded[P]{Event: *e}
		if err := v.codec.Unmarshal(e.Payload, &r.Payload); err != nil {
			return fmt.Errorf("model: decoding %s of %s seq %d: %w", et.info.name, e.Ref(), e.Sequence, err)
		}
		apply(state, r)
		return nil
	}
}

// CommandType names one command with argument type A, for typed clients.
type CommandType[S, A any] struct {
	aggregateType string
	name          string
}

// AggregateType returns the name of the aggregate type the command targets.
func (c *CommandType[S, A]) AggregateType() string { return c.aggregateType }

// Name returns the command's name.
func (c *CommandType[S, A]) Name() string { return c.name }

// Snapshot is what a command handler sees of the aggregate. Value must be
// treated as read-only: state changes only by applying events.
type Snapshot[S any] struct {
	Ref Ref
	// Exists is false until an initial event has been recorded.
	Exists bool
	// Sequence of the latest event, 0 if none.
	Sequence uint64
	Value    S
	// Now is the processing time of this command (injected, not read from
	// the wall clock by handlers).
	Now time.Time
	// Timestamp is the source's event time for this command, or Now
	// (never before the aggregate's latest event: see
	// CommandRequest.Timestamp).
	Timestamp time.Time
}

// Handler decides a command: it validates args against the current state and
// returns the events to record, or a rejection made with Reject.
type Handler[S, A any] func(s Snapshot[S], args A) ([]Emit, error)

type commandInfo[S any] struct {
	name string
	// parse decodes and validates the arguments (ErrInvalidArgs) and
	// returns the decision to run on a state: arguments are checked before
	// anything about the state, so bad input is never recorded as a
	// rejection.
	parse func(codec Codec, args []byte) (func(s Snapshot[S]) ([]Emit, error), error)
}

// CommandOption adjusts a command definition.
type CommandOption func(*commandOptions)

type commandOptions struct{ creates bool }

// Creates marks a command that may run on an aggregate that does not exist
// yet (its first event must then be initial). Every other command sent to an
// absent aggregate is rejected with reason "not_found" before its handler
// runs, so handlers of ordinary commands can assume the aggregate exists.
func Creates(o *commandOptions) { o.creates = true }

// Validator is implemented by argument types that check their own values;
// a non-nil error makes the request invalid (nothing is decided or written).
type Validator interface {
	Validate() error
}

// DefineCommand adds a command to an aggregate type.
func DefineCommand[S, A any](t *Type[S], name string, handle Handler[S, A], opts ...CommandOption) *CommandType[S, A] {
	ct := &CommandType[S, A]{aggregateType: t.name, name: name}
	var o commandOptions
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case name == "":
		t.errorf("aggregate type %q: command with an empty name", t.name)
		return ct
	case handle == nil:
		t.errorf("aggregate type %q: command %q has no handler", t.name, name)
		return ct
	}
	if _, dup := t.commands[name]; dup {
		t.errorf("aggregate type %q: command %q defined twice", t.name, name)
		return ct
	}
	t.commands[name] = &commandInfo[S]{
		name: name,
		parse: func(codec Codec, raw []byte) (func(s Snapshot[S]) ([]Emit, error), error) {
			var args A
			if len(raw) == 0 {
				raw = []byte("{}")
			}
			if err := codec.Unmarshal(raw, &args); err != nil {
				return nil, fmt.Errorf("%w: command %q: %v", ErrInvalidArgs, name, err)
			}
			if v, ok := any(&args).(Validator); ok {
				if err := v.Validate(); err != nil {
					return nil, fmt.Errorf("%w: command %q: %v", ErrInvalidArgs, name, err)
				}
			}
			return func(s Snapshot[S]) ([]Emit, error) {
				if !s.Exists && !o.creates {
					return nil, Reject(ReasonNotFound, "%s does not exist and %s does not create it", s.Ref, name)
				}
				return handle(s, args)
			}, nil
		},
	}
	return ct
}

// Commands lists the command names, sorted.
func (t *Type[S]) Commands() []string {
	return sortedNames(t.commands)
}

// sortedNames returns the keys of m, sorted; empty but not nil for an
// empty map.
func sortedNames[V any](m map[string]V) []string {
	names := slices.AppendSeq(make([]string, 0, len(m)), maps.Keys(m))
	slices.Sort(names)
	return names
}

// Views lists the view names, sorted ("state" is the primary view).
func (t *Type[S]) Views() []string {
	return sortedNames(t.views)
}
