package subscription

// tracker is the dedup and order state of one subscription: the last
// sequence handled (or dead-lettered) per aggregate. It is a pure state
// machine, owned by the subscription's worker goroutine; it does no I/O.
//
//	                 seq <= last            seq == last+1          seq > last+1
//	known aggregate  duplicate: ack, drop   in order: handle       gap last+1..seq-1
//	unknown          (expectFirst: last = 0, as if known)          else: in order, whatever seq
//
// An aggregate is known once one of its events was handled; the table
// lives in memory only.
type tracker struct {
	last map[string]uint64
	// expectFirst: an aggregate not in the table starts at sequence 1
	// (the subscription reads its stream from the beginning, with a
	// consumer it created). Otherwise its first event is taken as it
	// comes: earlier events were handled before a restart, or precede
	// the start position.
	expectFirst bool
}

func newTracker(expectFirst bool) *tracker {
	return &tracker{last: make(map[string]uint64), expectFirst: expectFirst}
}

type verdict uint8

const (
	inOrder verdict = iota
	duplicate
	gap
)

func (v verdict) String() string {
	switch v {
	case duplicate:
		return "duplicate"
	case gap:
		return "gap"
	}
	return "in order"
}

// check classifies event seq of aggregate id; for a gap it also returns
// the first missing sequence (the last is seq-1). It changes nothing.
func (t *tracker) check(id string, seq uint64) (verdict, uint64) {
	last, known := t.last[id]
	if !known && !t.expectFirst {
		return inOrder, 0
	}
	switch {
	case seq <= last:
		return duplicate, 0
	case seq > last+1:
		return gap, last + 1
	}
	return inOrder, 0
}

// knows tells whether aggregate id is in the table.
func (t *tracker) knows(id string) bool {
	_, ok := t.last[id]
	return ok
}

// done records that event seq of id was handled or dead-lettered.
func (t *tracker) done(id string, seq uint64) {
	if last, ok := t.last[id]; !ok || seq > last {
		t.last[id] = seq
	}
}

// size is the number of aggregates tracked.
func (t *tracker) size() int { return len(t.last) }
