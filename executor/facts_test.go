package executor_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/model"
)

// fact builds a lightbulb fact stamped at minute m of the epoch.
func fact(name string, m int, payload string) executor.Fact {
	if payload == "" {
		payload = "{}"
	}
	return executor.Fact{Name: model.VersionedName{Name: name, Version: 0}, Timestamp: epoch.Add(time.Duration(m) * time.Minute), Payload: []byte(payload)}
}

// bulbFacts is the example: created 18:00, screwedIn 18:05,
// switchedOn 18:20, then switchedOff 18:10 and switchedOn 18:12, late.
func bulbFacts() []executor.Fact {
	return []executor.Fact{
		fact("created", 0, `{"wattage":60}`),
		fact("screwedIn", 5, `{"location":"hall"}`),
		fact("switchedOn", 20, ""),
		fact("switchedOff", 10, ""),
		fact("switchedOn", 12, ""),
	}
}

// views answers, for one bulb, the state, the usage view and the state and
// usage as of several instants, as strings that must not depend on the
// order the facts arrived in.
func views(t *testing.T, h *harness, ref model.Ref) []string {
	t.Helper()
	var out []string
	for _, asOf := range []time.Time{{}, epoch.Add(-time.Minute), epoch.Add(7 * time.Minute), epoch.Add(11 * time.Minute), epoch.Add(15 * time.Minute), epoch.Add(time.Hour)} {
		for _, view := range []string{model.StateView, "usage"} {
			q, err := h.x.Ask(ctxT(t), executor.Query{Ref: ref, View: view, AsOf: asOf})
			if err != nil {
				t.Fatalf("%s %s as of %v: %v", ref, view, asOf, err)
			}
			out = append(out, fmt.Sprintf("%s@%v exists=%v events=%d applied=%d waiting=%d last=%v %s",
				view, asOf, q.Exists, q.Prefix.Events, q.Prefix.Applied, q.Prefix.Waiting, q.Prefix.Last.Timestamp, q.Value))
		}
	}
	return out
}

func TestFactsArrivalOrderDoesNotMatter(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	h := newHarness(t, executor.Config{})
	in := model.Ref{Type: lightbulb.TypeName, ID: "in-order"}
	facts := bulbFacts()
	sorted := append([]executor.Fact(nil), facts...)
	// In event-time order, one fact per request.
	for _, f := range []int{0, 1, 3, 4, 2} {
		if _, err := h.x.Ingest(ctxT(t), in, []executor.Fact{sorted[f]}); err != nil {
			t.Fatal(err)
		}
	}
	want := views(t, h, in)
	q, _ := h.x.Ask(ctxT(t), executor.Query{Ref: in, View: "usage"})
	var u lightbulb.Usage
	// In event time: off at 18:10, on at 18:12 and again at 18:20; the
	// usage view counts closed on→off spans, so none, and on since 18:20.
	if err := json.Unmarshal(q.Value, &u); err != nil || u.OnMillis != 0 || u.Switches != 2 || u.OnSince == nil || !u.OnSince.Equal(epoch.Add(20*time.Minute)) {
		t.Errorf("usage in event time: %+v (%s)", u, q.Value)
	}
	for round := range 20 {
		shuffled := append([]executor.Fact(nil), facts...)
		rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		ref := model.Ref{Type: lightbulb.TypeName, ID: fmt.Sprintf("shuffled-%d", round)}
		// Random batching: some facts together, some alone.
		for len(shuffled) > 0 {
			n := 1 + rng.IntN(len(shuffled))
			if _, err := h.x.Ingest(ctxT(t), ref, shuffled[:n]); err != nil {
				t.Fatal(err)
			}
			shuffled = shuffled[n:]
		}
		if round%2 == 1 {
			h.idle(t)
			h.x.Invalidate(func(model.Ref) bool { return true }) // also from a fresh load
		}
		got := views(t, h, ref)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("seed %d round %d: %s\n got %s", seed, round, want[i], got[i])
			}
		}
	}
}

func TestFactsAreIdempotentOnTheirIdentity(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := model.Ref{Type: lightbulb.TypeName, ID: "dup"}
	first, err := h.x.Ingest(ctxT(t), ref, bulbFacts())
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range first {
		if r.Err != nil || r.Duplicate || r.Sequence != uint64(i+1) {
			t.Fatalf("fact %d: %+v", i, r)
		}
	}
	if !first[3].Late || !first[4].Late || first[2].Late {
		t.Errorf("late marks %v %v %v, want the 18:10 and 18:12 facts late", first[2].Late, first[3].Late, first[4].Late)
	}
	// Sent again (also with another payload, and twice in one request),
	// before and after the state was dropped: duplicates, stored once.
	again := append(bulbFacts(), fact("switchedOn", 12, `{}`))
	for _, drop := range []bool{false, true} {
		if drop {
			h.idle(t)
			h.x.Invalidate(func(model.Ref) bool { return true })
		}
		res, err := h.x.Ingest(ctxT(t), ref, again)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if !r.Duplicate || r.Err != nil || r.Sequence != first[min(i, 4)].Sequence {
				t.Errorf("resend %d (dropped=%v): %+v, want duplicate of %+v", i, drop, r, first[min(i, 4)])
			}
		}
	}
	if n := len(h.history(t, ref)); n != 5 {
		t.Errorf("history has %d events, want 5", n)
	}
	// Another stream or another instant is another fact.
	other := fact("switchedOn", 12, "")
	other.StreamID = "sensor-2"
	if res, err := h.x.Ingest(ctxT(t), ref, []executor.Fact{other, fact("switchedOn", 13, "")}); err != nil || res[0].Duplicate || res[1].Duplicate {
		t.Errorf("distinct facts: %+v %v", res, err)
	}
}

func TestFactsOutsideTheLife(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := model.Ref{Type: lightbulb.TypeName, ID: "life"}
	ingest := func(f ...executor.Fact) []executor.FactResult {
		t.Helper()
		res, err := h.x.Ingest(ctxT(t), ref, f)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// Before any initial event: stored, waiting.
	if r := ingest(fact("screwedIn", 5, `{"location":"hall"}`))[0]; r.Err != nil || r.Place != model.Waiting {
		t.Errorf("screwedIn before created: %+v, want stored and waiting", r)
	}
	q, _ := h.x.Ask(ctxT(t), executor.Query{Ref: ref})
	if q.Exists || q.Prefix.Waiting != 1 {
		t.Errorf("state with only a waiting fact: %+v", q)
	}
	// The initial event, stamped earlier, arrives: the waiting fact applies.
	if r := ingest(fact("created", 0, `{"wattage":40}`))[0]; r.Err != nil || r.Place != model.Applied || !r.Late {
		t.Errorf("created: %+v", r)
	}
	q, _ = h.x.Ask(ctxT(t), executor.Query{Ref: ref})
	var b lightbulb.Bulb
	_ = json.Unmarshal(q.Value, &b)
	if !q.Exists || !b.ScrewedIn || b.Location != "hall" || q.Prefix.Waiting != 0 {
		t.Errorf("after the initial event: %+v %s", q, q.Value)
	}
	// A second initial event, later: stored, never applies.
	if r := ingest(fact("created", 1, `{"wattage":100}`))[0]; r.Err != nil || r.Place != model.SecondInitial {
		t.Errorf("second created: %+v", r)
	}
	// The terminal event; a fact stamped after it is refused, one stamped
	// before it is taken (late).
	ingest(fact("blown", 30, ""))
	res := ingest(fact("switchedOn", 31, ""), fact("switchedOn", 20, ""))
	var rej *model.Rejection
	if !errors.As(res[0].Err, &rej) || rej.Reason != model.ReasonTerminated {
		t.Errorf("fact after the terminal event: %+v, want rejected terminated", res[0])
	}
	if res[1].Err != nil || !res[1].Late || res[1].Place != model.Applied {
		t.Errorf("late fact before the terminal event: %+v", res[1])
	}
	// Bad input: unknown event, payload of the wrong type; nothing stored.
	before := len(h.history(t, ref))
	res = ingest(fact("exploded", 9, ""), fact("created", 2, `{"wattage":"sixty"}`))
	if !errors.Is(res[0].Err, model.ErrUnknownEvent) || !errors.Is(res[1].Err, model.ErrInvalidArgs) {
		t.Errorf("bad facts: %+v", res)
	}
	if after := len(h.history(t, ref)); after != before {
		t.Errorf("bad facts wrote %d events", after-before)
	}
	if _, err := h.x.Ingest(ctxT(t), ref, []executor.Fact{{Name: model.VersionedName{Name: "switchedOn"}}}); !errors.Is(err, executor.ErrInvalidRequest) {
		t.Errorf("fact without a timestamp: %v", err)
	}
}

// A command decides on everything known in event time, also when a late
// fact landed before recorded events; its events carry the command's
// timestamp, and one stamped before the initial event is refused.
func TestCommandsMeetLateFacts(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := model.Ref{Type: lightbulb.TypeName, ID: "mixed"}
	if _, err := h.x.Ingest(ctxT(t), ref, []executor.Fact{fact("created", 0, `{"wattage":60}`), fact("screwedIn", 1, `{"location":"hall"}`), fact("switchedOn", 10, "")}); err != nil {
		t.Fatal(err)
	}
	// Late: switched off at minute 5, before the switch-on at 10: still on.
	if _, err := h.x.Ingest(ctxT(t), ref, []executor.Fact{fact("switchedOff", 5, "")}); err != nil {
		t.Fatal(err)
	}
	h.clock.Set(epoch.Add(time.Hour))
	if _, err := h.exec(t, ref, "c1", "switchOn", ""); err == nil {
		t.Error("switchOn on a bulb that is on (in event time) was accepted")
	}
	// Late: switched off at minute 20, after the switch-on: now off.
	if _, err := h.x.Ingest(ctxT(t), ref, []executor.Fact{fact("switchedOff", 20, "")}); err != nil {
		t.Fatal(err)
	}
	res := h.mustExec(t, ref, "c2", "switchOn", "")
	if !res.Events[0].Timestamp.Equal(epoch.Add(time.Hour)) {
		t.Errorf("command's event stamped %v, want the processing time", res.Events[0].Timestamp)
	}
	// A command stamped before the bulb was created.
	_, err := h.x.Execute(ctxT(t), executor.Request{Ref: ref, CommandID: "c3", Command: "switchOff", Timestamp: epoch.Add(-time.Minute)})
	var rej *model.Rejection
	if !errors.As(err, &rej) || rej.Reason != model.ReasonBeforeInitial {
		t.Errorf("command stamped before the initial event: %v", err)
	}
	st := h.x.Stats()
	if st.LateEvents != 1 || st.Refolds != 1 || st.Facts != 5 {
		t.Errorf("stats %+v", st)
	}
}

// A fact stamped after a terminal event sent earlier in the same request is
// refused, exactly as if it had come in a later request; one sent before
// the terminal event in the request arrived before it and is stored.
func TestFactsAfterATerminalEventInTheSameRequest(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := model.Ref{Type: lightbulb.TypeName, ID: "one-request"}
	res, err := h.x.Ingest(ctxT(t), ref, []executor.Fact{
		fact("switchedOn", 25, ""), fact("created", 0, `{"wattage":60}`), fact("blown", 10, ""), fact("switchedOn", 20, ""), fact("switchedOff", 5, ""),
	})
	if err != nil {
		t.Fatal(err)
	}
	var rej *model.Rejection
	if !errors.As(res[3].Err, &rej) || rej.Reason != model.ReasonTerminated {
		t.Errorf("fact after the terminal event in the same request: %+v, want refused (terminated)", res[3])
	}
	if res[0].Err != nil || res[0].Place != model.AfterEnd {
		t.Errorf("fact sent before the terminal event, stamped after it: %+v, want stored, after_end", res[0])
	}
	if res[4].Err != nil || res[4].Place != model.Applied || !res[4].Late {
		t.Errorf("late fact before the terminal event: %+v", res[4])
	}
	if n := len(h.history(t, ref)); n != 4 {
		t.Errorf("history holds %d events, want 4", n)
	}
}

// A command without a timestamp is decided on the state after every event
// of its aggregate, so its events must come after them in event time, also
// when the deciding node's clock is behind the history's: another node's
// clock (ownership moved between nodes whose clocks disagree), a wall
// clock stepped back, or a fact stamped ahead of this clock. Stamped at
// its own clock's now, a switchOff decided on "on" landed before the
// switchOn it answered: accepted, and the bulb stayed on.
func TestCommandIsStampedAfterTheHistoryItWasDecidedOn(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref, on := switchedOnBulb(t, h, "skewed")

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
	ref, _ := switchedOnBulb(t, h, "stamped")
	source := h.clock.Now().Add(-time.Second)
	res, err := h.x.Execute(ctxT(t), executor.Request{Ref: ref, CommandID: "c4", Command: "switchOff", Timestamp: source})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 1 || !res.Events[0].Timestamp.Equal(model.NormalizeTime(source)) {
		t.Fatalf("events %+v: want one stamped at the source's %v", res.Events, source)
	}
}

// switchedOnBulb creates bulb id, screws it in a minute later and switches
// it on a minute after that (commands c1-c3, on the harness's clock), and
// returns it with the switchOn's result.
func switchedOnBulb(t *testing.T, h *harness, id string) (model.Ref, executor.Result) {
	t.Helper()
	ref := model.Ref{Type: lightbulb.TypeName, ID: id}
	h.mustExec(t, ref, "c1", "create", `{"wattage":60}`)
	h.clock.Advance(time.Minute)
	h.mustExec(t, ref, "c2", "screwIn", `{"location":"hall"}`)
	h.clock.Advance(time.Minute)
	return ref, h.mustExec(t, ref, "c3", "switchOn", "")
}
