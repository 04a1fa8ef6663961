package subscription

import (
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/model"
)

// orderer is the event-time order of one subscription (Config.Order
// EventTime): it holds each aggregate's accepted events for the settle
// window and releases them in event-time order (model.TimeKey). It is a
// pure state machine owned by the worker goroutine: time comes in as an
// argument, the events to hand over come out, and it does no I/O (the
// messages it keeps are acknowledged by the caller).
//
//	add(e) ─► e.key < released key of its aggregate? ─► release e at once, late
//	   │
//	   ▼
//	held (per aggregate sorted by key; all in one list by arrival = by due time)
//	   │
//	   ├─ due(now): the first arrival's window has passed ──┐
//	   ├─ add: more than max held: the first arrival ───────┤ (overflow)
//	   │                                                    ▼
//	   └──────────── release every held event of that aggregate with key <= its key,
//	                 in key order; released key = the largest released
//
// Since due times grow with arrival, the arrival list is also the due
// list. Releasing the events stamped before a due one along with it keeps
// each aggregate's releases in key order: only an event that arrives
// after a later-stamped one was released is out of order, and it is
// marked late.
type orderer struct {
	window time.Duration
	max    int
	// hint: the subscription does not know what was handed over before
	// it started (a resumed consumer, or a start other than a new one
	// FromBeginning), so the node's late mark (api.HeaderLate) on an
	// event of an aggregate with nothing released yet makes it late.
	hint bool

	aggs       map[string]*aggOrder
	head, tail *heldEvent // arrival order
	n          int
}

// aggOrder is one aggregate's place in the orderer.
type aggOrder struct {
	held        []*heldEvent // sorted by key
	released    model.TimeKey
	anyReleased bool
}

// heldEvent is one accepted event in the orderer.
type heldEvent struct {
	d   *delivery
	key model.TimeKey
	// msgs are the stream messages that carry the event, acknowledged
	// once it is handled: none for an event read from history (until the
	// stream delivers it too), several when the stream stored it again.
	msgs    []jetstream.Msg
	due     time.Time
	touched time.Time // last keep-alive (or arrival)
	// hinted: the node marked it late and nothing of its aggregate had
	// been released when it arrived (see orderer.hint).
	hinted bool

	agg        *aggOrder
	prev, next *heldEvent
}

// released is an event the orderer hands over.
type released struct {
	h    *heldEvent
	late bool
	// overflow: released before its window passed because of the cap.
	overflow bool
}

func newOrderer(window time.Duration, maxHeld int, hint bool) *orderer {
	return &orderer{window: window, max: maxHeld, hint: hint, aggs: make(map[string]*aggOrder)}
}

// add takes an accepted event received at now, marked late by the node
// or not, and returns what is released at once: the event itself when it
// is late, or the oldest held events when the cap is exceeded.
func (o *orderer) add(h *heldEvent, now time.Time, nodeLate bool) []released {
	id := h.d.event.AggregateID
	a := o.aggs[id]
	if a == nil {
		a = &aggOrder{}
		o.aggs[id] = a
	}
	h.key, h.agg = h.d.event.TimeKey(), a
	if a.anyReleased && h.key.Before(a.released) {
		return []released{{h: h, late: true}}
	}
	h.due, h.touched = now.Add(o.window), now
	h.hinted = o.hint && nodeLate && !a.anyReleased
	i, _ := slices.BinarySearchFunc(a.held, h.key, func(x *heldEvent, k model.TimeKey) int { return x.key.Compare(k) })
	a.held = slices.Insert(a.held, i, h)
	o.link(h)
	var out []released
	for o.n > o.max {
		out = o.releaseUpTo(o.head, out, true)
	}
	return out
}

// due releases the events whose window has passed by now (with the
// events of their aggregates stamped before them).
func (o *orderer) due(now time.Time) []released {
	var out []released
	for o.head != nil && !o.head.due.After(now) {
		out = o.releaseUpTo(o.head, out, false)
	}
	return out
}

// next returns when the next held event is due.
func (o *orderer) next() (time.Time, bool) {
	if o.head == nil {
		return time.Time{}, false
	}
	return o.head.due, true
}

// releaseUpTo releases the held events of h's aggregate whose key is at
// most h's, in key order, appending them to out.
func (o *orderer) releaseUpTo(h *heldEvent, out []released, overflow bool) []released {
	a := h.agg
	n := 0
	for n < len(a.held) && a.held[n].key.Compare(h.key) <= 0 {
		x := a.held[n]
		o.unlink(x)
		late := x.hinted || a.anyReleased && x.key.Before(a.released)
		out = append(out, released{h: x, late: late, overflow: overflow})
		if !a.anyReleased || a.released.Before(x.key) {
			a.released, a.anyReleased = x.key, true
		}
		n++
	}
	clear(a.held[:n])
	a.held = a.held[n:]
	if len(a.held) == 0 {
		a.held = nil // let the array go
	}
	return out
}

// find returns the held event seq of aggregate id, or nil.
func (o *orderer) find(id string, seq uint64) *heldEvent {
	a := o.aggs[id]
	if a == nil {
		return nil
	}
	for _, h := range a.held {
		if h.d.event.Sequence == seq {
			return h
		}
	}
	return nil
}

// attach gives h one more stream message to acknowledge once h is
// handled; a redelivery of a message h has replaces it.
func (h *heldEvent) attach(msg jetstream.Msg, streamSeq uint64) {
	for i, m := range h.msgs {
		if msgStreamSeq(m) == streamSeq {
			h.msgs[i] = msg
			return
		}
	}
	h.msgs = append(h.msgs, msg)
}

// stale calls f for each held event with messages not touched for
// every, and marks it touched at now. It returns when the next one will
// be stale (false: none held with messages).
func (o *orderer) stale(now time.Time, every time.Duration, f func(*heldEvent)) (time.Time, bool) {
	var next time.Time
	found := false
	for h := o.head; h != nil; h = h.next {
		if len(h.msgs) == 0 {
			continue
		}
		if !now.Before(h.touched.Add(every)) {
			f(h)
			h.touched = now
		}
		if at := h.touched.Add(every); !found || at.Before(next) {
			next, found = at, true
		}
	}
	return next, found
}

// lowestStreamSeq returns the lowest stream sequence among the held
// events' messages, 0 when none.
func (o *orderer) lowestStreamSeq() uint64 {
	var low uint64
	for h := o.head; h != nil; h = h.next {
		for _, m := range h.msgs {
			if s := msgStreamSeq(m); s > 0 && (low == 0 || s < low) {
				low = s
			}
		}
	}
	return low
}

// held is the number of events held.
func (o *orderer) held() int { return o.n }

func (o *orderer) link(h *heldEvent) {
	h.prev, h.next = o.tail, nil
	if o.tail != nil {
		o.tail.next = h
	} else {
		o.head = h
	}
	o.tail = h
	o.n++
}

func (o *orderer) unlink(h *heldEvent) {
	if h.prev != nil {
		h.prev.next = h.next
	} else {
		o.head = h.next
	}
	if h.next != nil {
		h.next.prev = h.prev
	} else {
		o.tail = h.prev
	}
	h.prev, h.next = nil, nil
	o.n--
}

// msgStreamSeq is a message's sequence in its stream, 0 when unknown.
func msgStreamSeq(m jetstream.Msg) uint64 {
	if m == nil {
		return 0
	}
	meta, err := m.Metadata()
	if err != nil {
		return 0
	}
	return meta.Sequence.Stream
}
