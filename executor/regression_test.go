package executor_test

// Regression tests for defects found while writing this suite. Each states
// the behaviour the package documents.

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/executor"
)

// ErrUnavailable's doc: "The command may be retried with the same command
// id; if it was in fact written, the retry returns the recorded outcome."
// Here the append lands but the store reports a failure (a timeout after
// the write, as a networked store can). The flusher records nothing for a
// failed append, so the retry finds no record, decides again on the
// reloaded state and writes the command's effect a second time.
func TestRetryAfterAppendOfUnknownOutcomeRunsOnce(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := h.newCounter(t, "landed")
	h.store.setHook(func(ctx context.Context, batch []eventlog.Append) []error {
		errs := h.events.Append(ctx, batch) // it lands…
		for i := range errs {
			if errs[i] == nil { // …but the caller hears otherwise
				errs[i] = fmt.Errorf("%w: timed out after writing", eventlog.ErrUnavailable)
			}
		}
		return errs
	})
	if _, err := h.exec(t, ref, "inc", "increment", ""); !errors.Is(err, executor.ErrUnavailable) {
		t.Fatalf("first attempt: %v, want ErrUnavailable", err)
	}
	h.store.setHook(nil)

	res, err := h.exec(t, ref, "inc", "increment", "")
	if err != nil {
		t.Fatal(err)
	}
	hist := h.history(t, ref)
	n := 0
	for _, e := range hist {
		if e.CommandID == "inc" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("command inc wrote %d events over two attempts, want 1 (history length %d)", n, len(hist))
	}
	if !res.Duplicate || res.Sequence != 2 {
		t.Errorf("retry: %+v, want the outcome of the write that landed (duplicate, sequence 2)", res)
	}
}

// Same hole from the other side: the events are durable but the
// command-log write fails (the flusher logs it and answers success). A
// retry of the acknowledged command id runs it again.
func TestRetryAfterCommandLogFailureRunsOnce(t *testing.T) {
	h, cl, ref := newFlakyHarness(t, "unrecorded")
	cl.failPut.Store(true)
	first, err := h.exec(t, ref, "inc", "increment", "")
	if err != nil {
		t.Fatalf("first attempt: %v", err)
	}
	cl.failPut.Store(false)
	again, err := h.exec(t, ref, "inc", "increment", "")
	if err != nil {
		t.Fatal(err)
	}
	h.checkLastSeq(t, ref, 2, "after an acknowledged command and its retry")
	if !again.Duplicate || again.Sequence != first.Sequence {
		t.Errorf("retry %+v, want duplicate of %+v", again, first)
	}
}

// MaxInFlight counts commands "accepted but not yet answered". The slot is
// released only after the callback returns, so a caller that submits its
// next command as soon as it has the answer (from the callback, or right
// after Execute returns) can be refused although nothing is in flight.
func TestInFlightSlotIsFreeOnceAnswered(t *testing.T) {
	h := newHarness(t, executor.Config{MaxInFlight: 1})
	ref := h.newCounter(t, "chain")
	second := make(chan error, 1)
	first := make(chan error, 1)
	h.x.Submit(ctxT(t), executor.Request{Ref: ref, CommandID: "first", Command: "increment"},
		func(_ executor.Result, err error) {
			first <- err
			// The first command is answered: submit the next one.
			h.x.Submit(context.Background(), executor.Request{Ref: ref, CommandID: "second", Command: "increment"},
				func(_ executor.Result, err error) { second <- err })
		})
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if o := await(t, wrapErr(second)); o.err != nil {
		t.Fatalf("next command after an answer, with MaxInFlight 1: %v", o.err)
	}
}

func wrapErr(ch <-chan error) <-chan outcome {
	out := make(chan outcome, 1)
	go func() { out <- outcome{err: <-ch} }()
	return out
}
