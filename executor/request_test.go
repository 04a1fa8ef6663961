package executor_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/model"
)

// Bad input gets a typed error and never reaches either log.
func TestInvalidRequestsWriteNothing(t *testing.T) {
	h := newHarness(t, executor.Config{})
	existing := h.newCounter(t, "exists")

	for _, tc := range []struct {
		name       string
		req        executor.Request
		want       error
		beforeExec bool // refused before queueing: answered inside Submit
	}{
		{"unknown type", executor.Request{Ref: model.Ref{Type: "teapot", ID: "t1"}, CommandID: "c1", Command: "create"}, executor.ErrUnknownType, true},
		{"unknown command", executor.Request{Ref: counterRef("fresh"), CommandID: "c2", Command: "explode"}, model.ErrUnknownCommand, true},
		{"unknown command on existing", executor.Request{Ref: existing, CommandID: "c3", Command: "explode"}, model.ErrUnknownCommand, true},
		{"unknown argument field", executor.Request{Ref: counterRef("fresh"), CommandID: "c4", Command: "create", Args: []byte(`{"bogus":1}`)}, model.ErrInvalidArgs, false},
		{"malformed JSON", executor.Request{Ref: existing, CommandID: "c5", Command: "increment", Args: []byte(`{"times":`)}, model.ErrInvalidArgs, false},
		{"wrong argument type", executor.Request{Ref: existing, CommandID: "c6", Command: "increment", Args: []byte(`{"times":"two"}`)}, model.ErrInvalidArgs, false},
		{"argument fails Validate", executor.Request{Ref: existing, CommandID: "c7", Command: "increment", Args: []byte(`{"times":11}`)}, model.ErrInvalidArgs, false},
		{"empty aggregate id", executor.Request{Ref: model.Ref{Type: counterType}, CommandID: "c8", Command: "create"}, executor.ErrInvalidRequest, true},
		{"empty aggregate type", executor.Request{Ref: model.Ref{ID: "x"}, CommandID: "c9", Command: "create"}, executor.ErrInvalidRequest, true},
		{"oversized aggregate id", executor.Request{Ref: counterRef(strings.Repeat("x", model.MaxIDLen+1)), CommandID: "c10", Command: "create"}, executor.ErrInvalidRequest, true},
		{"aggregate id with a newline", executor.Request{Ref: counterRef("a\nb"), CommandID: "c11", Command: "create"}, executor.ErrInvalidRequest, true},
		{"empty command id", executor.Request{Ref: counterRef("fresh"), Command: "create"}, executor.ErrInvalidRequest, true},
		{"oversized command id", executor.Request{Ref: counterRef("fresh"), CommandID: strings.Repeat("c", 129), Command: "create"}, executor.ErrInvalidRequest, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := h.lastSeq(t, tc.req.Ref)
			ch := make(chan outcome, 1)
			h.x.Submit(ctxT(t), tc.req, func(r executor.Result, err error) { ch <- outcome{r, err} })
			var o outcome
			if tc.beforeExec {
				var ok bool
				if o, ok = answered(ch); !ok {
					t.Fatal("not answered before Submit returned")
				}
			} else {
				o = await(t, ch)
			}
			if !errors.Is(o.err, tc.want) {
				t.Fatalf("Submit: got %v, want %v", o.err, tc.want)
			}
			if _, err := h.x.Execute(ctxT(t), tc.req); !errors.Is(err, tc.want) {
				t.Fatalf("Execute: got %v, want %v", err, tc.want)
			}
			if tc.req.Ref.Validate() == nil {
				if got := h.lastSeq(t, tc.req.Ref); got != before {
					t.Errorf("event log moved from %d to %d", before, got)
				}
			}
			if tc.req.CommandID != "" {
				if rec, ok := h.recorded(t, tc.req.CommandID); ok {
					t.Errorf("command log has %+v", rec)
				}
			}
		})
	}
	h.checkLastSeq(t, counterRef("fresh"), 0, "a fresh aggregate has no events")
	h.checkLastSeq(t, existing, 1, "")
	// Twice each (Submit, then Execute), 13 cases.
	if s := h.x.Stats(); s.Invalid != 26 || s.Accepted != 1 {
		t.Errorf("stats %+v: want 26 invalid, 1 accepted", s)
	}
	if sizes := h.store.batchSizes(); len(sizes) != 1 {
		t.Errorf("%d appends, want only the create", len(sizes))
	}
}

func TestCommandIDAtLimitIsAccepted(t *testing.T) {
	h := newHarness(t, executor.Config{})
	h.mustExec(t, counterRef("limit"), strings.Repeat("c", 128), "create", "")
}

// Domain rules enforced by the model reach the caller as rejections.
func TestModelRejections(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := counterRef("rules")
	for _, tc := range []struct {
		id, command, reason string
	}{
		{"inc-before-create", "increment", model.ReasonNotFound},
		{"create", "create", ""},
		{"create-again", "create", model.ReasonAlreadyExists},
		{"refuse", "refuse", ReasonRefused},
	} {
		_, err := h.exec(t, ref, tc.id, tc.command, "")
		var rej *model.Rejection
		switch {
		case tc.reason == "" && err != nil:
			t.Fatalf("%s: %v", tc.id, err)
		case tc.reason != "" && (!errors.As(err, &rej) || rej.Reason != tc.reason):
			t.Fatalf("%s: %v, want rejection %q", tc.id, err, tc.reason)
		}
	}
	h.checkLastSeq(t, ref, 1, "")
}

// CountInvalid counts requests refused before they reached the executor.
func TestCountInvalid(t *testing.T) {
	h := newHarness(t, executor.Config{})
	h.x.CountInvalid()
	h.x.CountInvalid()
	if got := h.x.Stats().Invalid; got != 2 {
		t.Errorf("invalid %d, want 2", got)
	}
}
