package model

import (
	"errors"
	"fmt"
	"iter"
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
	// FoldView starts a fold of the named view, fed in event-time order.
	FoldView(name string) (ViewFold, bool)
}

// Aggregate is the primary state machine of one aggregate: it holds the
// aggregate's history's two orders and decides commands. It is pure (no
// I/O, no clock) and not safe for concurrent use: the executor gives each
// one a single owner.
//
// Its state is the fold of the whole history in event-time order (see
// fold). Events reach it in two ways: Load folds a whole history read in
// event-time order; Apply takes an event just appended (log order). An
// appended event stamped after every known one is folded at once; a late
// one (stamped before an event already folded) makes the state stale, and
// Refold, given the events after the key Stale names, brings it up to
// date from the nearest checkpoint (an encoded copy of the state kept
// every CheckpointEvery events), so absorbing a late event costs the
// events after it, not the whole history.
type Aggregate interface {
	Ref() Ref
	// Sequence is the log head: the sequence of the last event appended
	// or loaded, 0 if none.
	Sequence() uint64
	// Exists: the aggregate's life has begun (an initial event is
	// applied). Terminated: it has ended (a terminal event is applied).
	Exists() bool
	Terminated() bool
	// Prefix describes the folded history (see Prefix).
	Prefix() Prefix
	// Load folds a whole history, given in event-time order, into an
	// aggregate that has none yet, and checks that its sequences are
	// gap-free. Errors wrap ErrCorruptHistory, or are the stream's own.
	Load(events iter.Seq2[Event, error]) error
	// Apply takes the next appended event (its sequence is Sequence()+1)
	// and reports whether it is late: stamped before an event already
	// known. A late event (and every event after it until Refold) is not
	// folded yet: Stale is then true. An error wraps ErrCorruptHistory.
	Apply(e *Event) (late bool, err error)
	// Stale reports whether a late event awaits Refold, and the key after
	// which Refold needs the history's events (in event-time order).
	Stale() (after TimeKey, stale bool)
	// Refold refolds the state from the checkpoint Stale chose, with the
	// events after that key in event-time order.
	Refold(events iter.Seq2[Event, error]) error
	// Fact returns the sequence of the fact (an event ingested directly,
	// without a command) with that identity, if the history has one.
	Fact(id FactID) (seq uint64, ok bool)
	// CheckFact validates a fact and completes it (its Characteristics,
	// from the type's definition): ErrUnknownEvent for a name the type
	// does not define, ErrInvalidArgs for a payload that does not decode,
	// a *Rejection with ReasonTerminated when it is stamped after the
	// aggregate's terminal event (it could never apply).
	CheckFact(e *Event) error
	// Place says where an event of the history stands in the aggregate's
	// life as now known (Applied, Waiting, AfterEnd, SecondInitial).
	Place(e *Event) Outcome
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
	// means Now, moved up to the aggregate's latest event in event time
	// when Now is before it (see stampAfter). StreamID is the source's
	// stream; empty means DefaultStream.
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
	return &instance[S]{t: t, ref: Ref{Type: t.name, ID: id}, f: fold[S]{view: t.state}, facts: map[factKey]uint64{}}
}

// EventNames lists the type's versioned event names, sorted.
func (t *Type[S]) EventNames() []string {
	names := make([]string, 0, len(t.events))
	for n := range t.events {
		names = append(names, n.String())
	}
	sort.Strings(names)
	return names
}

// FoldView implements Kind.
func (t *Type[S]) FoldView(name string) (ViewFold, bool) {
	v, ok := t.views[name]
	if !ok {
		return nil, false
	}
	return v.newFold(), true
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

// CheckpointEvery is how many folded events apart an aggregate keeps
// encoded copies of its state, from which a late event is absorbed.
const CheckpointEvery = 32

// factKey is a FactID in comparable form.
type factKey struct {
	name   VersionedName
	ms     int64
	stream string
}

func keyOf(id FactID) factKey {
	return factKey{name: id.Name, ms: id.Timestamp.UnixMilli(), stream: id.StreamID}
}

// checkpoint is the fold's state after the event at key: its value
// encoded with the type's codec, and the rest of the fold.
type checkpoint struct {
	key   TimeKey
	value []byte
	meta  foldMeta
}

type instance[S any] struct {
	t   *Type[S]
	ref Ref
	f   fold[S]
	// head is the log head; count the events known (head when gap-free).
	head, count uint64
	// facts maps every event's fact identity to its sequence.
	facts map[factKey]uint64
	// checkpoints are in event-time order, one every CheckpointEvery
	// folded events.
	checkpoints []checkpoint
	// staleFrom is the smallest key of a late event not yet folded.
	staleFrom *TimeKey
	// initial is the key of the earliest initial event known (applied or
	// not yet folded); terminal the key of the event that ends the life:
	// the initial event itself if it is also terminal, else the earliest
	// terminal event after it (a terminal event stamped before every
	// initial event waits, like any event before the life, and an initial
	// event after the first never applies: neither ends anything).
	// terminals holds the keys of the terminal events that are not
	// initial; initialEnds whether the initial event is also terminal.
	initial, terminal *TimeKey
	terminals         []TimeKey
	initialEnds       bool
	// newest is the greatest key known: an appended event stamped before
	// it is late, whether or not the events after it are folded yet.
	newest TimeKey
}

func (a *instance[S]) Ref() Ref                      { return a.ref }
func (a *instance[S]) Sequence() uint64              { return a.head }
func (a *instance[S]) Exists() bool                  { return a.f.exists }
func (a *instance[S]) Terminated() bool              { return a.f.terminated }
func (a *instance[S]) Prefix() Prefix                { return a.f.prefix }
func (a *instance[S]) MarshalState() ([]byte, error) { return a.t.codec.Marshal(a.f.value) }

func (a *instance[S]) Fact(id FactID) (uint64, bool) {
	seq, ok := a.facts[keyOf(id)]
	return seq, ok
}

// note records an event's sequence, lifecycle keys and, for a fact, its
// identity.
func (a *instance[S]) note(e *Event) {
	if e.IsFact() {
		a.facts[keyOf(e.FactID())] = e.Sequence
	}
	a.head = max(a.head, e.Sequence)
	a.count++
	k := e.TimeKey()
	if a.newest.Before(k) {
		a.newest = k
	}
	if e.Characteristics.IsInitial() && (a.initial == nil || k.Before(*a.initial)) {
		a.initial = &k
		a.initialEnds = e.Characteristics.IsTerminal()
	}
	if e.Characteristics.IsTerminal() && !e.Characteristics.IsInitial() {
		a.terminals = append(a.terminals, k)
	}
	if e.Characteristics.IsInitial() || e.Characteristics.IsTerminal() {
		a.terminal = nil
		switch {
		case a.initial == nil:
		case a.initialEnds:
			a.terminal = a.initial
		default:
			for _, t := range a.terminals {
				if a.initial.Before(t) && (a.terminal == nil || t.Before(*a.terminal)) {
					a.terminal = &t
				}
			}
		}
	}
}

// foldNext folds the next event in event-time order and keeps a
// checkpoint every CheckpointEvery events.
func (a *instance[S]) foldNext(e *Event) (Outcome, error) {
	out, err := a.f.apply(e)
	if err != nil {
		return 0, err
	}
	if a.f.prefix.Events%CheckpointEvery == 0 {
		v, err := a.t.codec.Marshal(a.f.value)
		if err != nil {
			return 0, fmt.Errorf("%w: %s: encoding a checkpoint of the state: %v", ErrCorruptHistory, a.ref, err)
		}
		a.checkpoints = append(a.checkpoints, checkpoint{key: a.f.prefix.Last, value: v, meta: a.f.meta()})
	}
	return out, nil
}

func (a *instance[S]) Load(events iter.Seq2[Event, error]) error {
	if a.count > 0 {
		return fmt.Errorf("model: %s: Load on an aggregate that has a history", a.ref)
	}
	// seen has a bit per sequence read (by word): with a repeated
	// sequence, the count alone would not show a gap elsewhere.
	seen := map[uint64]uint64{}
	for e, err := range events {
		if err == nil && e.AggregateID != a.ref.ID {
			err = fmt.Errorf("%w: event of %s loaded into %s", ErrCorruptHistory, e.Ref(), a.ref)
		}
		if err == nil {
			w, bit := e.Sequence/64, uint64(1)<<(e.Sequence%64)
			if seen[w]&bit != 0 {
				err = fmt.Errorf("%w: %s: sequence %d read twice", ErrCorruptHistory, a.ref, e.Sequence)
			}
			seen[w] |= bit
		}
		if err == nil && e.IsFact() {
			if _, dup := a.facts[keyOf(e.FactID())]; dup {
				err = fmt.Errorf("%w: %s seq %d: fact %s@%s/%s recorded twice", ErrCorruptHistory, a.ref, e.Sequence, e.VersionedName(), e.Timestamp.Format(time.RFC3339Nano), e.StreamID)
			}
		}
		if err == nil {
			_, err = a.foldNext(&e)
		}
		if err != nil {
			return err
		}
		a.note(&e)
	}
	if a.head != a.count {
		return fmt.Errorf("%w: %s: %d events with sequences up to %d: the log has a gap", ErrCorruptHistory, a.ref, a.count, a.head)
	}
	return nil
}

func (a *instance[S]) Apply(e *Event) (bool, error) {
	switch {
	case e.AggregateID != a.ref.ID || e.AggregateType != a.ref.Type:
		return false, fmt.Errorf("%w: event of %s applied to %s", ErrCorruptHistory, e.Ref(), a.ref)
	case e.Sequence != a.head+1:
		return false, fmt.Errorf("%w: %s: sequence %d follows %d", ErrCorruptHistory, a.ref, e.Sequence, a.head)
	}
	if _, dup := a.facts[keyOf(e.FactID())]; dup && e.IsFact() {
		return false, fmt.Errorf("%w: %s seq %d: fact %s recorded twice", ErrCorruptHistory, a.ref, e.Sequence, e.VersionedName())
	}
	k := e.TimeKey()
	late := k.Before(a.newest)
	if late || a.staleFrom != nil {
		// Folded later, by Refold; the name and payload are checked now.
		info, ok := a.t.events[e.VersionedName()]
		if !ok {
			return false, fmt.Errorf("%w: %s seq %d: event %s is not defined for %q", ErrCorruptHistory, a.ref, e.Sequence, e.VersionedName(), a.t.name)
		}
		if err := info.check(a.t.codec, e.Payload); err != nil {
			return false, fmt.Errorf("%w: %s seq %d: decoding %s: %v", ErrCorruptHistory, a.ref, e.Sequence, info.name, err)
		}
		if a.staleFrom == nil || k.Before(*a.staleFrom) {
			a.staleFrom = &k
		}
	} else if _, err := a.foldNext(e); err != nil {
		return false, err
	}
	a.note(e)
	return late, nil
}

func (a *instance[S]) Stale() (TimeKey, bool) {
	if a.staleFrom == nil {
		return TimeKey{}, false
	}
	return a.restorePoint(*a.staleFrom).key, true
}

// restorePoint is the last checkpoint strictly before k (the zero
// checkpoint, an empty fold, when there is none).
func (a *instance[S]) restorePoint(k TimeKey) checkpoint {
	i := sort.Search(len(a.checkpoints), func(i int) bool { return !a.checkpoints[i].key.Before(k) })
	if i == 0 {
		return checkpoint{}
	}
	return a.checkpoints[i-1]
}

func (a *instance[S]) Refold(events iter.Seq2[Event, error]) error {
	if a.staleFrom == nil {
		return nil
	}
	from := *a.staleFrom
	cp := a.restorePoint(from)
	f := fold[S]{view: a.t.state, id: a.ref.ID}
	if cp.value != nil {
		if err := a.t.codec.Unmarshal(cp.value, &f.value); err != nil {
			return fmt.Errorf("%w: %s: decoding a checkpoint of the state: %v", ErrCorruptHistory, a.ref, err)
		}
		f.exists, f.terminated, f.prefix = cp.meta.exists, cp.meta.terminated, cp.meta.prefix
	}
	kept := sort.Search(len(a.checkpoints), func(i int) bool { return !a.checkpoints[i].key.Before(from) })
	a.checkpoints = a.checkpoints[:kept]
	a.f = f
	for e, err := range events {
		if err == nil && !cp.key.Before(e.TimeKey()) {
			err = fmt.Errorf("%w: %s: refold read %v, not after %v", ErrCorruptHistory, a.ref, e.TimeKey(), cp.key)
		}
		if err == nil && e.Sequence > a.head {
			continue // appended since by another writer: not ours to fold
		}
		if err == nil {
			_, err = a.foldNext(&e)
		}
		if err != nil {
			return err
		}
	}
	if uint64(a.f.prefix.Events) != a.count {
		return fmt.Errorf("%w: %s: refold found %d events, the aggregate knows %d", ErrCorruptHistory, a.ref, a.f.prefix.Events, a.count)
	}
	a.staleFrom = nil
	return nil
}

func (a *instance[S]) CheckFact(e *Event) error {
	info, ok := a.t.events[e.VersionedName()]
	if !ok {
		return fmt.Errorf("%w: %q has no event %s (events: %v)", ErrUnknownEvent, a.t.name, e.VersionedName(), a.t.EventNames())
	}
	if err := info.check(a.t.codec, e.Payload); err != nil {
		return fmt.Errorf("%w: payload of %s: %v", ErrInvalidArgs, e.VersionedName(), err)
	}
	e.Characteristics = info.chars
	k := e.TimeKey()
	if k.Sequence == 0 {
		k.Sequence = a.head + 1 // where the log will number it
	}
	if a.terminal != nil && a.terminal.Before(k) {
		return Reject(ReasonTerminated, "%s ended at %s (its terminal event); a fact stamped %s after it cannot apply",
			a.ref, a.terminal.Timestamp.Format(time.RFC3339Nano), e.Timestamp.Format(time.RFC3339Nano))
	}
	return nil
}

func (a *instance[S]) Place(e *Event) Outcome {
	k := e.TimeKey()
	switch {
	case a.initial == nil || k.Before(*a.initial):
		return Waiting
	case a.terminal != nil && a.terminal.Before(k):
		return AfterEnd
	case e.Characteristics.IsInitial() && a.initial.Compare(k) != 0:
		return SecondInitial
	}
	return Applied
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
	if a.staleFrom != nil {
		return nil, Reject(ReasonHandlerError, "%s: state not refolded after a late event (an executor bug)", a.ref)
	}
	if a.f.terminated {
		end := a.f.prefix.Last
		if a.terminal != nil {
			end = *a.terminal
		}
		return nil, Reject(ReasonTerminated, "%s has ended (terminal event at %s); %s is refused", a.ref, end.Timestamp.Format(time.RFC3339Nano), req.Command)
	}
	now := NormalizeTime(req.Now)
	stream := req.StreamID
	if stream == "" {
		stream = DefaultStream
	}
	ts := now
	switch {
	case !req.Timestamp.IsZero():
		ts = NormalizeTime(req.Timestamp) // the source's time, late or not
	case a.f.prefix.Events > 0:
		ts = stampAfter(a.f.prefix.Last, now, stream)
	}
	snap := Snapshot[S]{Ref: a.ref, Exists: a.f.exists, Sequence: a.head, Value: a.f.value, Now: now, Timestamp: ts}
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
			Sequence:        a.head + uint64(i) + 1,
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
		// A command's events must fall inside the life it decided on: a
		// command stamped before the aggregate's initial event would be
		// accepted and never apply.
		if a.initial != nil && !em.info.chars.IsInitial() && e.TimeKey().Before(*a.initial) {
			return nil, Reject(ReasonBeforeInitial, "%s began at %s; %s stamped %s is before it", a.ref,
				a.initial.Timestamp.Format(time.RFC3339Nano), req.Command, e.Timestamp.Format(time.RFC3339Nano))
		}
		events[i] = e
	}
	return events, nil
}

// stampAfter returns the timestamp of a command without one of its own,
// processed at now in stream: now, unless that would put its events
// before last, the end of the history in event time (another node's
// clock ahead of this one, a wall clock stepped back, a fact stamped
// ahead). The command was decided on the state after every event, so its
// events must come after them, or a switchOff decided on "on" would land
// before the switchOn it answered and change nothing. Then it is last's
// timestamp, or one TimePrecision later where the stream id alone would
// sort it first (its sequence is beyond every event's).
func stampAfter(last TimeKey, now time.Time, stream string) time.Time {
	switch {
	case now.After(last.Timestamp):
		return now
	case stream >= last.StreamID:
		return last.Timestamp
	default:
		return last.Timestamp.Add(TimePrecision)
	}
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
	return sortedNames(r.kinds)
}
