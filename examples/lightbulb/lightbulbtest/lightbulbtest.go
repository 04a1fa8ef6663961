// Package lightbulbtest writes lightbulb histories out by hand for tests:
// events as a node records them, each stamped where the test says, so
// that a test can put facts in the log out of event-time order.
package lightbulbtest

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/model"
)

// Facts builds the events of lightbulb histories whose stamps count from
// one instant. It is safe for concurrent use.
type Facts struct {
	t0 time.Time
	l  *lightbulb.Lightbulb
}

// NewFacts returns a builder whose stamps count from t0.
func NewFacts(t0 time.Time) *Facts {
	return &Facts{t0: t0, l: lightbulb.Define()}
}

// Fact returns event seq of bulb id: the lightbulb event name (version 0)
// stamped at t0+at in the default stream, its payload the JSON given (""
// for {}) and its characteristics the ones lightbulb.Define gives the
// name. It was captured by processing "test" an hour after t0 and a
// second after the event before it in the log; its EventID is
// "<id>-<seq>".
//
// Fact panics on a name lightbulb.Define does not have or a payload that
// does not decode: a mistake in the test's own data.
func (f *Facts) Fact(id string, seq uint64, name string, at time.Duration, payload string) model.Event {
	if payload == "" {
		payload = "{}"
	}
	e := model.Event{
		AggregateType: lightbulb.TypeName, AggregateID: id, Sequence: seq,
		Timestamp: f.t0.Add(at), StreamID: model.DefaultStream,
		ProcessingID: "test", ProcessingTime: f.t0.Add(time.Hour + time.Duration(seq)*time.Second),
		Name: name, Payload: json.RawMessage(payload),
		EventID: fmt.Sprintf("%s-%d", id, seq),
	}
	// A new bulb has no terminal event: CheckFact only completes the
	// characteristics and checks the name and payload.
	if err := f.l.Type.NewAggregate(id).CheckFact(&e); err != nil {
		panic(fmt.Sprintf("lightbulbtest: fact %s-%d: %v", id, seq, err))
	}
	return e
}
