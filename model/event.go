package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Characteristics mark an event's place in an aggregate's life.
type Characteristics uint8

const (
	// Initial events create an aggregate; one may only be emitted while the
	// aggregate does not exist yet.
	Initial Characteristics = 1 << iota
	// Terminal events end an aggregate's life; every later command is rejected.
	Terminal
)

// IsInitial reports whether the initial bit is set.
func (c Characteristics) IsInitial() bool { return c&Initial != 0 }

// IsTerminal reports whether the terminal bit is set.
func (c Characteristics) IsTerminal() bool { return c&Terminal != 0 }

// String renders the characteristics as "initial", "terminal",
// "initial|terminal" or "none".
func (c Characteristics) String() string {
	switch {
	case c.IsInitial() && c.IsTerminal():
		return "initial|terminal"
	case c.IsInitial():
		return "initial"
	case c.IsTerminal():
		return "terminal"
	}
	return "none"
}

// MarshalJSON writes the characteristics as a list of names, readable from
// any language: [], ["initial"], ["terminal"] or ["initial","terminal"].
func (c Characteristics) MarshalJSON() ([]byte, error) {
	switch {
	case c.IsInitial() && c.IsTerminal():
		return []byte(`["initial","terminal"]`), nil
	case c.IsInitial():
		return []byte(`["initial"]`), nil
	case c.IsTerminal():
		return []byte(`["terminal"]`), nil
	}
	return []byte(`[]`), nil
}

// UnmarshalJSON reads the list written by MarshalJSON (unknown names are
// an error).
func (c *Characteristics) UnmarshalJSON(data []byte) error {
	var names []string
	if err := json.Unmarshal(data, &names); err != nil {
		return fmt.Errorf("model: characteristics must be a list of \"initial\"/\"terminal\": %w", err)
	}
	var out Characteristics
	for _, n := range names {
		switch n {
		case "initial":
			out |= Initial
		case "terminal":
			out |= Terminal
		default:
			return fmt.Errorf("model: unknown characteristic %q", n)
		}
	}
	*c = out
	return nil
}

// VersionedName is an event name with a schema version, written "created_0".
// A new version is a new event type; old versions stay readable forever.
type VersionedName struct {
	Name    string
	Version int
}

// String renders the name as "<name>_<version>".
func (v VersionedName) String() string { return v.Name + "_" + strconv.Itoa(v.Version) }

// ParseVersionedName parses "created_0" into its name and version.
func ParseVersionedName(s string) (VersionedName, error) {
	i := strings.LastIndexByte(s, '_')
	if i <= 0 || i == len(s)-1 {
		return VersionedName{}, fmt.Errorf("model: versioned name %q is not <name>_<version>", s)
	}
	digits := s[i+1:]
	canonical := digits == "0" || digits[0] != '0'
	for _, c := range digits {
		canonical = canonical && c >= '0' && c <= '9'
	}
	v, err := strconv.Atoi(digits)
	if !canonical || err != nil {
		return VersionedName{}, fmt.Errorf("model: versioned name %q: has no valid version (decimal digits, no leading zero)", s)
	}
	return VersionedName{Name: s[:i], Version: v}, nil
}

// Ref names one aggregate: its type and its id.
type Ref struct {
	Type string `json:"aggregateType"`
	ID   string `json:"aggregateId"`
}

// String renders the ref as "type/id".
func (r Ref) String() string { return r.Type + "/" + r.ID }

// Limits on identifiers. They keep keys bounded in every store and on the wire.
const (
	MaxTypeLen = 128
	MaxIDLen   = 256
	// MaxCommandIDLen bounds command ids (the idempotency keys).
	MaxCommandIDLen = 128
	// DefaultStream is the stream id used when a source names none.
	DefaultStream = "default"
)

// ErrInvalidRef is returned by Ref.Validate for an empty or oversized type or id.
var ErrInvalidRef = errors.New("model: invalid aggregate reference")

// Validate checks that the type and id are present, not oversized, and free of
// characters that would break NATS subjects or store keys; the id follows
// the rules of CheckIdentifier.
func (r Ref) Validate() error {
	if r.Type == "" {
		return fmt.Errorf("%w: aggregate type is empty", ErrInvalidRef)
	}
	if r.ID == "" {
		return fmt.Errorf("%w: aggregate id is empty", ErrInvalidRef)
	}
	if len(r.Type) > MaxTypeLen {
		return fmt.Errorf("%w: aggregate type is %d bytes, limit %d", ErrInvalidRef, len(r.Type), MaxTypeLen)
	}
	if strings.ContainsAny(r.Type, ". *>\t\r\n\x00") {
		return fmt.Errorf("%w: aggregate type %q contains a character not allowed in a subject token", ErrInvalidRef, r.Type)
	}
	if !utf8.ValidString(r.Type) {
		return fmt.Errorf("%w: aggregate type must be valid UTF-8", ErrInvalidRef)
	}
	if p := identifierProblem("aggregate id", r.ID, MaxIDLen); p != "" {
		return fmt.Errorf("%w: %s", ErrInvalidRef, p)
	}
	return nil
}

// Event is one recorded fact about one aggregate, in the form every store,
// the bus and the wire share. Its payload is the codec's encoding of the
// event type's payload struct; use EventType.Decode for a typed view.
//
// Times are recorded at millisecond precision in UTC (see NormalizeTime):
// every store, Cassandra included, returns them in that form.
type Event struct {
	AggregateType string `json:"aggregateType"`
	AggregateID   string `json:"aggregateId"`
	// Sequence is the per-aggregate, gap-free position (1, 2, 3 …) assigned
	// by the owner at append.
	Sequence uint64 `json:"sequence"`
	// Timestamp is the event time given by the source (or the processing
	// time when the source gave none). Together with StreamID it forms the
	// paper's StreamTimestamp: two events in one millisecond from different
	// sources live in different streams.
	Timestamp time.Time `json:"timestamp"`
	StreamID  string    `json:"streamId"`
	// ProcessingID and ProcessingTime say when the node captured the event.
	ProcessingID   string    `json:"processingId"`
	ProcessingTime time.Time `json:"processingTime"`
	// Name and Version form the versioned event name ("created_0").
	Name            string          `json:"name"`
	Version         int             `json:"version"`
	Characteristics Characteristics `json:"characteristics"`
	Payload         json.RawMessage `json:"payload"`
	// CommandID is the id of the command that caused the event; empty for
	// events ingested directly.
	CommandID string `json:"commandId,omitempty"`
	// EventID is assigned once, when the event is captured, and stored with
	// it; consumers dedupe on it.
	EventID string `json:"eventId"`
	// Late is set by the owner on an event it has just appended when the
	// event is stamped before an event of the aggregate already recorded.
	// It is not stored and not part of the JSON form: the publisher sends
	// it as the header api.HeaderLate.
	Late bool `json:"-"`
}

// Ref returns the aggregate the event belongs to.
func (e *Event) Ref() Ref { return Ref{Type: e.AggregateType, ID: e.AggregateID} }

// VersionedName returns the event's versioned name.
func (e *Event) VersionedName() VersionedName {
	return VersionedName{Name: e.Name, Version: e.Version}
}
