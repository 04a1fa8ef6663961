package executor_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/model"
)

func TestSameCommandIDReturnsRecordedOutcome(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := h.newCounter(t, "idem")
	first := h.mustExec(t, ref, "twice", "increment", `{"times":2}`)
	if first.Duplicate || first.Sequence != 3 || len(first.Events) != 2 {
		t.Fatalf("first run: %+v", first)
	}
	h.clock.Set(epoch.Add(1e9)) // a re-run would produce other times

	again := h.mustExec(t, ref, "twice", "increment", `{"times":2}`)
	if !again.Duplicate {
		t.Error("second run not marked Duplicate")
	}
	if again.Sequence != first.Sequence || again.Ref != first.Ref || again.CommandID != first.CommandID {
		t.Errorf("second run %+v, first %+v", again, first)
	}
	if !reflect.DeepEqual(again.Events, first.Events) {
		t.Errorf("second run's events differ:\n got %+v\nwant %+v", again.Events, first.Events)
	}
	h.checkLastSeq(t, ref, 3, "after a duplicate")
	// The same arguments written differently are the same request; other
	// arguments under the same id are refused, not answered with the
	// outcome of another request.
	if res := h.mustExec(t, ref, "twice", "increment", ` { "times" : 2 } `); !res.Duplicate || res.Sequence != 3 {
		t.Errorf("duplicate with the arguments spaced differently: %+v", res)
	}
	if _, err := h.exec(t, ref, "twice", "increment", `{"times":5}`); !errors.Is(err, executor.ErrCommandIDReused) {
		t.Errorf("duplicate with other args: %v, want ErrCommandIDReused", err)
	}
	s := h.x.Stats()
	if s.Duplicates != 3 || s.Accepted != 4 {
		t.Errorf("stats %+v: want 3 duplicates, 4 accepted", s)
	}
	// The duplicate is answered from the log even after the state is gone.
	h.idle(t)
	h.x.Invalidate(func(model.Ref) bool { return true })
	if res := h.mustExec(t, ref, "twice", "increment", `{"times":2}`); !res.Duplicate || !reflect.DeepEqual(res.Events, first.Events) {
		t.Errorf("duplicate after invalidation: %+v", res)
	}
}

func TestCommandWithNoEventsIsRecordedAndDeduplicated(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := h.newCounter(t, "noop")
	res := h.mustExec(t, ref, "nothing", "noop", "")
	if len(res.Events) != 0 || res.Sequence != 1 {
		t.Fatalf("noop: %+v", res)
	}
	rec, ok := h.recorded(t, "nothing")
	if !ok || rec.Outcome != commandlog.Accepted || rec.FirstSequence != 2 || rec.LastSequence != 1 {
		t.Fatalf("record %+v (found %v): want accepted with the empty range 2..1", rec, ok)
	}
	if !rec.At.Equal(epoch) {
		t.Errorf("record time %v, want the injected clock's %v", rec.At, epoch)
	}
	again := h.mustExec(t, ref, "nothing", "noop", "")
	if !again.Duplicate || again.Sequence != 1 || len(again.Events) != 0 {
		t.Errorf("duplicate noop: %+v", again)
	}
}

func TestRejectedCommandIDReturnsSameRejection(t *testing.T) {
	h := newHarness(t, executor.Config{})
	bulb := model.Ref{Type: lightbulb.TypeName, ID: "bulb-1"}
	h.mustExec(t, bulb, "create", "create", `{"wattage":60}`)

	_, err := h.exec(t, bulb, "on", "switchOn", "")
	var rej *model.Rejection
	if !errors.As(err, &rej) || rej.Reason != lightbulb.ReasonNotScrewedIn {
		t.Fatalf("switchOn unscrewed: %v, want rejection %s", err, lightbulb.ReasonNotScrewedIn)
	}
	rec, ok := h.recorded(t, "on")
	if !ok || rec.Outcome != commandlog.Rejected || rec.Reason != rej.Reason || rec.Message != rej.Message || rec.Code != "rejected" {
		t.Fatalf("record %+v (found %v)", rec, ok)
	}

	// Now the bulb could be switched on, but the id was decided: rejected.
	h.mustExec(t, bulb, "screw", "screwIn", `{"location":"hall"}`)
	_, err2 := h.exec(t, bulb, "on", "switchOn", "")
	var rej2 *model.Rejection
	if !errors.As(err2, &rej2) || *rej2 != *rej {
		t.Fatalf("retry of a rejected id: %v, want the same rejection %v", err2, rej)
	}
	h.checkLastSeq(t, bulb, 2, "")
	if s := h.x.Stats(); s.Rejected != 2 || s.Duplicates != 1 {
		t.Errorf("stats %+v: want 2 rejected, 1 duplicate", s)
	}
}

func TestCommandIDReusedElsewhereIsRefused(t *testing.T) {
	h := newHarness(t, executor.Config{})
	a, b := counterRef("reuse-a"), counterRef("reuse-b")
	h.mustExec(t, a, "create-a", "create", "")
	h.mustExec(t, b, "create-b", "create", "")
	h.mustExec(t, a, "id-1", "increment", "")

	for _, tc := range []struct {
		name    string
		ref     model.Ref
		command string
	}{
		{"other aggregate", b, "increment"},
		{"other command", a, "noop"},
		{"other aggregate and command", b, "noop"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.exec(t, tc.ref, "id-1", tc.command, "")
			if !errors.Is(err, executor.ErrCommandIDReused) {
				t.Fatalf("got %v, want ErrCommandIDReused", err)
			}
		})
	}
	h.checkLastSeq(t, b, 1, "")
	h.checkLastSeq(t, a, 2, "")
	if rec, _ := h.recorded(t, "id-1"); rec.Ref != a || rec.Command != "increment" {
		t.Errorf("the original record was overwritten: %+v", rec)
	}
}

// A command log that cannot be read: the command is not run on a guess.
func TestUnreadableCommandLogIsUnavailable(t *testing.T) {
	h, cl, ref := newFlakyHarness(t, "cl")
	cl.failGet.Store(true)
	if _, err := h.exec(t, ref, "inc", "increment", ""); !errors.Is(err, executor.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	h.checkLastSeq(t, ref, 1, "")
}

// A command id the API generated (FreshID) cannot have been decided before:
// the command-log lookup is skipped. A client's id is always looked up.
func TestFreshIDSkipsTheCommandLogLookup(t *testing.T) {
	h, flaky, ref := newFlakyHarness(t, "fresh")

	flaky.failGet.Store(true) // any lookup now fails the command
	if _, err := h.exec(t, ref, "client-id", "increment", ""); !errors.Is(err, executor.ErrUnavailable) {
		t.Fatalf("client id with a failing lookup: err = %v, want ErrUnavailable (the lookup must run)", err)
	}
	res, err := h.x.Execute(ctxT(t), executor.Request{Ref: ref, CommandID: "generated-1", FreshID: true, Command: "increment"})
	if err != nil || len(res.Events) != 1 {
		t.Fatalf("fresh id with a failing lookup: %+v, %v; want the command to run without a lookup", res, err)
	}
}
