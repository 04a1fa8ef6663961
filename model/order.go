package model

import (
	"strings"
	"time"
)

// TimeKey is an event's place in its history's event-time order: event
// timestamp, then stream id, then sequence. It is a total order over one
// history (sequences are unique), and it does not depend on the order in
// which events arrived: two histories holding the same events sort them
// alike, except for the sequence, which only breaks ties between events
// of one stream stamped in the same millisecond.
//
// The log order (Sequence alone) is the other order of a history; see
// DESIGN.md, "Two orders of one history".
type TimeKey struct {
	Timestamp time.Time
	StreamID  string
	Sequence  uint64
}

// TimeKey returns the event's key in event-time order.
func (e *Event) TimeKey() TimeKey {
	return TimeKey{Timestamp: e.Timestamp, StreamID: e.StreamID, Sequence: e.Sequence}
}

// IsZero reports whether k is the zero key, which sorts before every
// event's key.
func (k TimeKey) IsZero() bool { return k.Timestamp.IsZero() && k.StreamID == "" && k.Sequence == 0 }

// Compare returns -1, 0 or +1 as k sorts before, with or after o.
func (k TimeKey) Compare(o TimeKey) int {
	if c := k.Timestamp.Compare(o.Timestamp); c != 0 {
		return c
	}
	if c := strings.Compare(k.StreamID, o.StreamID); c != 0 {
		return c
	}
	switch {
	case k.Sequence < o.Sequence:
		return -1
	case k.Sequence > o.Sequence:
		return 1
	}
	return 0
}

// Before reports whether k sorts strictly before o.
func (k TimeKey) Before(o TimeKey) bool { return k.Compare(o) < 0 }

// FactID is a fact's identity, the paper's idempotent event filter: the
// same versioned event about the same aggregate, from the same stream, at
// the same instant, is the same fact however often it is sent. Its
// payload is not part of it (a resend with another payload is still a
// duplicate).
type FactID struct {
	Name      VersionedName
	Timestamp time.Time
	StreamID  string
}

// IsFact reports whether the event was ingested as a fact (no command
// caused it). Only facts are idempotent on their FactID; a command's events
// are idempotent through the command id.
func (e *Event) IsFact() bool { return e.CommandID == "" }

// FactID returns the event's identity as a fact.
func (e *Event) FactID() FactID {
	return FactID{Name: e.VersionedName(), Timestamp: e.Timestamp, StreamID: e.StreamID}
}
