package cluster

import (
	"slices"
	"strings"
)

// State is a member's state as this node knows it.
//
// memberlist also has a "suspect" state (a probe failed and the member
// has a little time to refute), but it reports no event for it, so it
// cannot be observed without racing memberlist's internals; a suspect
// member stays StateAlive here until it is declared dead or refutes. That
// is also what the ring wants: suspicion alone moves no partition.
type State uint8

const (
	// StateAlive: the member answers probes (or is suspected but not yet
	// declared dead).
	StateAlive State = iota + 1
	// StateDead: the member stopped answering and was declared failed.
	StateDead
	// StateLeft: the member announced its departure with Leave.
	StateLeft
)

// String returns "alive", "dead" or "left".
func (s State) String() string {
	switch s {
	case StateAlive:
		return "alive"
	case StateDead:
		return "dead"
	case StateLeft:
		return "left"
	}
	return "unknown"
}

// Member is one cluster member as this node knows it.
type Member struct {
	// ID is the member's NodeID (its memberlist name).
	ID string
	// Addr is the member's gossip address, "host:port".
	Addr string
	// State is alive, dead or left.
	State State
	// Meta is the member's decoded metadata.
	Meta Meta
}

// View is one version of this node's member table: every member it has
// seen alive, the departed ones (dead or left) among them kept as
// tombstones up to Config.Tombstones.
//
// Views are values shared between subscribers: Members must not be
// modified.
type View struct {
	// Version grows by one with each change of the table (a join, leave,
	// failure, or metadata or address update). It is local to this node:
	// two nodes' versions are not comparable.
	Version uint64
	// Members lists the members sorted by ID.
	Members []Member
}

// Alive returns the alive members, sorted by ID.
func (v View) Alive() []Member {
	out := make([]Member, 0, len(v.Members))
	for _, m := range v.Members {
		if m.State == StateAlive {
			out = append(out, m)
		}
	}
	return out
}

// AliveIDs returns the IDs of the alive members, sorted: the input the
// router builds its ring from.
func (v View) AliveIDs() []string {
	out := make([]string, 0, len(v.Members))
	for _, m := range v.Members {
		if m.State == StateAlive {
			out = append(out, m.ID)
		}
	}
	return out
}

// Member returns the member with the given ID.
func (v View) Member(id string) (Member, bool) {
	i, ok := slices.BinarySearchFunc(v.Members, id, func(m Member, id string) int {
		return strings.Compare(m.ID, id)
	})
	if !ok {
		return Member{}, false
	}
	return v.Members[i], true
}

// EventKind says how a member changed between two views.
type EventKind uint8

const (
	// EventJoin: the member became alive: it is new, or it came back after
	// failing or leaving.
	EventJoin EventKind = iota + 1
	// EventLeave: the member left gracefully (Leave).
	EventLeave
	// EventFailed: the member was declared dead. Also reported for a
	// member that vanished from the view altogether, which happens only
	// when its tombstone was pruned before the consumer looked again.
	EventFailed
	// EventUpdate: an alive member's metadata or address changed.
	EventUpdate
)

// String returns "join", "leave", "failed" or "update".
func (k EventKind) String() string {
	switch k {
	case EventJoin:
		return "join"
	case EventLeave:
		return "leave"
	case EventFailed:
		return "failed"
	case EventUpdate:
		return "update"
	}
	return "unknown"
}

// Event is one member's change between two views.
type Event struct {
	Kind EventKind
	// Member is the member as the newer view has it (as the older one had
	// it when it vanished).
	Member Member
}

// Diff returns the changes from prev to next, sorted by member ID: what a
// consumer that saw prev and now sees next has missed. Views coalesce
// changes, so a member that failed and came back between the two with the
// same metadata shows no event, and one that joined and departed between
// them shows none either: Diff reports what differs, not everything that
// happened. Pass the zero View as prev for the first view.
func Diff(prev, next View) []Event {
	var out []Event
	i, j := 0, 0
	for i < len(prev.Members) || j < len(next.Members) {
		switch {
		case j == len(next.Members) || i < len(prev.Members) && prev.Members[i].ID < next.Members[j].ID:
			// Gone from next (tombstone pruned).
			if p := prev.Members[i]; p.State == StateAlive {
				out = append(out, Event{Kind: EventFailed, Member: p})
			}
			i++
		case i == len(prev.Members) || next.Members[j].ID < prev.Members[i].ID:
			// New in next.
			if n := next.Members[j]; n.State == StateAlive {
				out = append(out, Event{Kind: EventJoin, Member: n})
			}
			j++
		default:
			p, n := prev.Members[i], next.Members[j]
			if k, ok := change(p, n); ok {
				out = append(out, Event{Kind: k, Member: n})
			}
			i++
			j++
		}
	}
	return out
}

func change(p, n Member) (EventKind, bool) {
	switch {
	case p.State != StateAlive && n.State == StateAlive:
		return EventJoin, true
	case p.State == StateAlive && n.State == StateLeft:
		return EventLeave, true
	case p.State == StateAlive && n.State == StateDead:
		return EventFailed, true
	case p.State == StateAlive && n.State == StateAlive && (p.Meta != n.Meta || p.Addr != n.Addr):
		return EventUpdate, true
	}
	return 0, false
}
