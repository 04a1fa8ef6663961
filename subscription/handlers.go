package subscription

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/concursus-go/concursus/model"
)

// Source says where an event handed to a handler came from.
type Source uint8

const (
	// FromStream: delivered by the events stream.
	FromStream Source = iota
	// FromHistory: read from the history API to fill a gap (the stream
	// lacked it, or had not delivered it yet).
	FromHistory
	// FromReplay: replayed from the dead letters (ReplayDeadLetters).
	FromReplay
)

func (s Source) String() string {
	switch s {
	case FromHistory:
		return "history"
	case FromReplay:
		return "replay"
	}
	return "stream"
}

// Event is what a handler receives: the event as the nodes recorded it,
// and how it arrived.
//
// Its Late (model.Event.Late, not part of the event's JSON) is set by the
// subscription: the event changes a past the handler may have seen
// already.
//   - In EventTime order: the event comes after an event of its
//     aggregate stamped later (model.TimeKey) was handed over, as it
//     arrived after that one's settle window. It is handed over at once,
//     never dropped. Also when nothing of the aggregate was handed over
//     since the subscription resumed (or started anywhere but at the
//     beginning of a new consumer) and the node marked it late.
//   - In LogOrder: the node marked it late (api.HeaderLate: stamped
//     before an event of its aggregate recorded earlier). The mark is
//     absent on re-publications and on events read from history.
//   - For a replay: false.
type Event struct {
	model.Event
	// Source is where it came from.
	Source Source
	// StreamSeq is its sequence in the events stream; 0 when it was read
	// from the history API (also when such an event is replayed).
	StreamSeq uint64
	// Attempt counts the calls for this event, from 1; it restarts at 1
	// for a replay.
	Attempt int
}

// HandlerFunc handles one event. It is called from the subscription's one
// worker goroutine, never concurrently with another handler of the same
// subscription. A nil return acknowledges the event; an error (or a
// panic) is a failed attempt, retried after Config.Backoff up to
// Config.MaxAttempts times, after which the event goes to the dead
// letters. ctx ends when the subscription is stopped: an event whose
// handler returns an error then is neither acknowledged nor
// dead-lettered, but delivered again later.
type HandlerFunc func(ctx context.Context, e Event) error

// Handlers maps versioned event names to handlers. The zero value is
// ready to use. Registering is not safe for concurrent use, and a
// registration after Subscribe does not affect that subscription (it
// takes a copy).
//
// Registration errors (a bad or duplicated name) are kept and returned by
// Subscribe, so that registration reads as a list.
type Handlers struct {
	byName   map[string]HandlerFunc
	catchAll HandlerFunc
	err      error
}

// On registers fn for the events named eventName (a versioned name,
// "created_0"). The payload is decoded from JSON into a P; a payload that
// does not decode fails the event permanently (ErrPayload): it goes to
// the dead letters at once, as retrying would decode it the same way.
func On[P any](h *Handlers, eventName string, fn func(ctx context.Context, e Event, payload P) error) {
	h.add(eventName, func(ctx context.Context, e Event) error {
		var p P
		if len(e.Payload) > 0 {
			if err := json.Unmarshal(e.Payload, &p); err != nil {
				return Permanent(fmt.Errorf("%w: %s of %s as %T: %v", ErrPayload, eventName, e.Ref(), p, err))
			}
		}
		return fn(ctx, e, p)
	})
}

// OnEvent registers fn, which reads the payload itself (e.Payload), for
// the events named eventName.
func (h *Handlers) OnEvent(eventName string, fn HandlerFunc) { h.add(eventName, fn) }

// CatchAll registers fn for the events that have no handler of their
// own. Without it such events are acknowledged and counted
// (Stats.SkippedNoHandler).
func (h *Handlers) CatchAll(fn HandlerFunc) {
	if fn == nil {
		h.fail(fmt.Errorf("%w: CatchAll with a nil function", ErrInvalidHandlers))
		return
	}
	if h.catchAll != nil {
		h.fail(fmt.Errorf("%w: CatchAll registered twice", ErrInvalidHandlers))
		return
	}
	h.catchAll = fn
}

func (h *Handlers) add(eventName string, fn HandlerFunc) {
	if _, err := model.ParseVersionedName(eventName); err != nil || strings.ContainsAny(eventName, ". *>\t\r\n") {
		h.fail(fmt.Errorf("%w: %q is not a versioned event name like \"created_0\"", ErrInvalidHandlers, eventName))
		return
	}
	if fn == nil {
		h.fail(fmt.Errorf("%w: nil handler for %q", ErrInvalidHandlers, eventName))
		return
	}
	if h.byName == nil {
		h.byName = make(map[string]HandlerFunc)
	}
	if _, dup := h.byName[eventName]; dup {
		h.fail(fmt.Errorf("%w: two handlers for %q", ErrInvalidHandlers, eventName))
		return
	}
	h.byName[eventName] = fn
}

func (h *Handlers) fail(err error) {
	if h.err == nil {
		h.err = err
	}
}

// snapshot returns a copy for one subscription, after checking the
// registrations against the Events filter.
func (h *Handlers) snapshot(events []string) (*Handlers, error) {
	if h == nil {
		return nil, fmt.Errorf("%w: Handlers is nil", ErrInvalidHandlers)
	}
	if h.err != nil {
		return nil, h.err
	}
	if len(h.byName) == 0 && h.catchAll == nil {
		return nil, fmt.Errorf("%w: no handler registered", ErrInvalidHandlers)
	}
	if len(events) > 0 {
		wanted := make(map[string]bool, len(events))
		for _, e := range events {
			wanted[e] = true
		}
		for name := range h.byName {
			if !wanted[name] {
				return nil, fmt.Errorf("%w: a handler for %q, which Config.Events %q leaves out", ErrInvalidHandlers, name, events)
			}
		}
	}
	c := &Handlers{byName: make(map[string]HandlerFunc, len(h.byName)), catchAll: h.catchAll}
	for k, v := range h.byName {
		c.byName[k] = v
	}
	return c, nil
}

// lookup returns the handler of a versioned name, the catch-all, or nil.
func (h *Handlers) lookup(name string) HandlerFunc {
	if fn := h.byName[name]; fn != nil {
		return fn
	}
	return h.catchAll
}

// call runs fn, turning a panic into an error.
func call(ctx context.Context, fn HandlerFunc, e Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrHandlerPanic, r)
		}
	}()
	return fn(ctx, e)
}

// Permanent marks err as a failure that no retry can cure: the event goes
// to the dead letters after this attempt. errors.Is and errors.As see
// through it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (p permanentError) Error() string { return p.err.Error() }
func (p permanentError) Unwrap() error { return p.err }

func isPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
