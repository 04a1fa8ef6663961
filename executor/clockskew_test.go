package executor_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/model"
)

// A command without a timestamp is decided on the state after every event
// of its aggregate, so its events must come after them in event time, also
// when the deciding node's clock is behind the history's: another node's
// clock (ownership moved between nodes whose clocks disagree), a wall
// clock stepped back, or a fact stamped ahead of this clock. Stamped at
// its own clock's now, a switchOff decided on "on" landed before the
// switchOn it answered: accepted, and the bulb stayed on.
func TestCommandIsStampedAfterTheHistoryItWasDecidedOn(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := model.Ref{Type: lightbulb.TypeName, ID: "skewed"}
	h.mustExec(t, ref, "c1", "create", `{"wattage":60}`)
	h.clock.Advance(time.Minute)
	h.mustExec(t, ref, "c2", "screwIn", `{"location":"hall"}`)
	h.clock.Advance(time.Minute)
	on := h.mustExec(t, ref, "c3", "switchOn", "")

	// The aggregate moves to a node whose clock is 5 s behind.
	h.clock.Set(h.clock.Now().Add(-5 * time.Second))
	off := h.mustExec(t, ref, "c4", "switchOff", "")
	if len(off.Events) != 1 || len(on.Events) != 1 {
		t.Fatalf("switchOn gave %d events, switchOff %d: want one each", len(on.Events), len(off.Events))
	}
	last, got := on.Events[0].TimeKey(), off.Events[0].TimeKey()
	if !last.Before(got) {
		t.Errorf("switchedOff stamped %v, before the switchedOn %v it was decided after", got, last)
	}
	if got.Timestamp.After(last.Timestamp.Add(model.TimePrecision)) {
		t.Errorf("switchedOff stamped %v: moved further than the switchedOn's %v", got.Timestamp, last.Timestamp)
	}
	qr, err := h.x.Ask(ctxT(t), executor.Query{Ref: ref})
	if err != nil {
		t.Fatal(err)
	}
	var b lightbulb.Bulb
	if err := json.Unmarshal(qr.Value, &b); err != nil {
		t.Fatal(err)
	}
	if b.On {
		t.Errorf("after an accepted switchOff the bulb is on: %s", qr.Value)
	}
	// A second switchOff is refused: the first one took effect.
	if _, err := h.exec(t, ref, "c5", "switchOff", ""); err == nil {
		t.Errorf("a second switchOff was accepted: the first had no effect")
	}
}

// A command with its own timestamp keeps it, late or not: the source said
// when it happened.
func TestCommandWithATimestampKeepsIt(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := model.Ref{Type: lightbulb.TypeName, ID: "stamped"}
	h.mustExec(t, ref, "c1", "create", `{"wattage":60}`)
	h.clock.Advance(time.Minute)
	h.mustExec(t, ref, "c2", "screwIn", `{"location":"hall"}`)
	h.clock.Advance(time.Minute)
	h.mustExec(t, ref, "c3", "switchOn", "")
	source := h.clock.Now().Add(-time.Second)
	res, err := h.x.Execute(ctxT(t), executor.Request{Ref: ref, CommandID: "c4", Command: "switchOff", Timestamp: source})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 1 || !res.Events[0].Timestamp.Equal(model.NormalizeTime(source)) {
		t.Fatalf("events %+v: want one stamped at the source's %v", res.Events, source)
	}
}
