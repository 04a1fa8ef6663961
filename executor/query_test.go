package executor_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/model"
)

func decode[V any](t *testing.T, qr executor.QueryResult) V {
	t.Helper()
	var v V
	if err := json.Unmarshal(qr.Value, &v); err != nil {
		t.Fatalf("decoding %s view %q (%s): %v", qr.Ref, qr.View, qr.Value, err)
	}
	return v
}

func TestQueries(t *testing.T) {
	h := newHarness(t, executor.Config{})
	bulb := model.Ref{Type: lightbulb.TypeName, ID: "bulb-q"}
	t0 := epoch
	run := func(id, command, args string, processing, eventTime time.Time) executor.Result {
		t.Helper()
		h.clock.Set(processing)
		res, err := h.x.Execute(ctxT(t), executor.Request{Ref: bulb, CommandID: id, Command: command, Args: []byte(args), Timestamp: eventTime})
		if err != nil {
			t.Fatalf("%s: %v", command, err)
		}
		return res
	}
	// Event time from the clock (no Timestamp) for the first two, from the
	// source for the others, which arrive later than they happened.
	created := run("q1", "create", `{"wattage":60}`, t0, time.Time{})
	run("q2", "screwIn", `{"location":"hall"}`, t0.Add(time.Minute), time.Time{})
	run("q3", "switchOn", ``, t0.Add(time.Hour), t0.Add(2*time.Minute))
	off := run("q4", "switchOff", ``, t0.Add(time.Hour), t0.Add(5*time.Minute))

	if e := created.Events[0]; !e.Timestamp.Equal(t0) || !e.ProcessingTime.Equal(t0) || e.ProcessingID == "" || e.EventID == "" || e.CommandID != "q1" {
		t.Errorf("created event %+v: want times from the injected clock, ids set", e)
	}
	if e := off.Events[0]; !e.Timestamp.Equal(t0.Add(5*time.Minute)) || !e.ProcessingTime.Equal(t0.Add(time.Hour)) {
		t.Errorf("switchedOff event times %v / %v", e.Timestamp, e.ProcessingTime)
	}

	// Primary state, from the cache.
	qr, err := h.x.Ask(ctxT(t), executor.Query{Ref: bulb})
	if err != nil {
		t.Fatal(err)
	}
	if b := decode[lightbulb.Bulb](t, qr); !qr.Exists || qr.Sequence != 4 || qr.View != model.StateView ||
		b != (lightbulb.Bulb{Wattage: 60, Location: "hall", ScrewedIn: true}) {
		t.Errorf("state %+v: %+v", qr, b)
	}
	// Primary state, reloaded from the log, is the same.
	h.idle(t)
	h.x.Invalidate(func(model.Ref) bool { return true })
	qr2, err := h.x.Ask(ctxT(t), executor.Query{Ref: bulb, View: model.StateView})
	if err != nil || string(qr2.Value) != string(qr.Value) || qr2.Sequence != 4 {
		t.Errorf("reloaded state %+v %v, want %s", qr2, err, qr.Value)
	}

	// The usage view rolls up event timestamps.
	qu, err := h.x.Ask(ctxT(t), executor.Query{Ref: bulb, View: "usage"})
	if err != nil {
		t.Fatal(err)
	}
	if u := decode[lightbulb.Usage](t, qu); qu.Sequence != 4 || u.OnMillis != (3*time.Minute).Milliseconds() || u.Switches != 1 || u.OnSince != nil {
		t.Errorf("usage %+v: %+v, want 3 minutes on, 1 switch", qu, u)
	}

	// As of a past instant: only events that had happened by then.
	asOf := t0.Add(3 * time.Minute)
	qa, err := h.x.Ask(ctxT(t), executor.Query{Ref: bulb, AsOf: asOf})
	if err != nil {
		t.Fatal(err)
	}
	if b := decode[lightbulb.Bulb](t, qa); qa.Sequence != 0 || qa.Prefix.Events != 3 || !qa.Prefix.Last.Timestamp.Equal(t0.Add(2*time.Minute)) || !b.On {
		t.Errorf("state as of %v: %+v %+v, want on after the first 3 events in event time (no log sequence)", asOf, qa, b)
	}
	qua, err := h.x.Ask(ctxT(t), executor.Query{Ref: bulb, View: "usage", AsOf: asOf})
	if err != nil {
		t.Fatal(err)
	}
	if u := decode[lightbulb.Usage](t, qua); u.OnSince == nil || !u.OnSince.Equal(t0.Add(2*time.Minute)) || u.OnMillis != 0 {
		t.Errorf("usage as of %v: %+v", asOf, u)
	}
	qb, err := h.x.Ask(ctxT(t), executor.Query{Ref: bulb, AsOf: t0.Add(-time.Second)})
	if err != nil || qb.Exists || qb.Sequence != 0 {
		t.Errorf("state before creation: %+v %v, want not existing", qb, err)
	}

	// An aggregate with no history exists in no view.
	qn, err := h.x.Ask(ctxT(t), executor.Query{Ref: model.Ref{Type: lightbulb.TypeName, ID: "never"}})
	if err != nil || qn.Exists || qn.Sequence != 0 {
		t.Errorf("unknown aggregate: %+v %v", qn, err)
	}
	h.checkLastSeq(t, model.Ref{Type: lightbulb.TypeName, ID: "never"}, 0, "a query wrote events")
}

func TestQueryErrors(t *testing.T) {
	h := newHarness(t, executor.Config{})
	for _, tc := range []struct {
		name string
		q    executor.Query
		want error
	}{
		{"unknown view", executor.Query{Ref: counterRef("c"), View: "usage"}, executor.ErrUnknownView},
		{"unknown type", executor.Query{Ref: model.Ref{Type: "teapot", ID: "t"}}, executor.ErrUnknownType},
		{"empty id", executor.Query{Ref: model.Ref{Type: counterType}}, executor.ErrInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := make(chan error, 1)
			h.x.SubmitQuery(ctxT(t), tc.q, func(_ executor.QueryResult, err error) { ch <- err })
			select {
			case err := <-ch:
				if !errors.Is(err, tc.want) {
					t.Fatalf("got %v, want %v", err, tc.want)
				}
				if tc.want == executor.ErrUnknownView && !strings.Contains(err.Error(), "state") {
					t.Errorf("error %q does not list the views", err)
				}
			default:
				t.Fatal("not answered before SubmitQuery returned")
			}
		})
	}
}

// A query runs in the mailbox after the commands queued before it.
func TestQuerySeesCommandsQueuedBeforeIt(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := h.newCounter(t, "q-order")
	g := h.blockStore(t)
	inc := h.stuckIncrement(t, g, ref, "inc")
	type qo struct {
		qr  executor.QueryResult
		err error
	}
	ch := make(chan qo, 1)
	h.x.SubmitQuery(ctxT(t), executor.Query{Ref: ref}, func(qr executor.QueryResult, err error) { ch <- qo{qr, err} })
	h.unblockStore(g)
	if o := await(t, inc); o.err != nil {
		t.Fatal(o.err)
	}
	select {
	case o := <-ch:
		if o.err != nil || o.qr.Sequence != 2 {
			t.Fatalf("query %+v %v, want sequence 2", o.qr, o.err)
		}
	case <-time.After(testDeadline):
		t.Fatal("query not answered")
	}
}
