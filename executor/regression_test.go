package executor_test

// Regression tests for defects found while writing this suite. Each states
// the behaviour the package documents.

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/internal/testsupport"
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

// A node dies between its events' append and its record's write: the
// mender, which would have written the record, dies with it. The next
// owner's first load finds the command at the end of the history without
// a record and writes it from the history; however many commands reach
// the aggregate before the retry does, the retry is then recognised, not
// run again. (Without the repair the late retry ran a second time.)
func TestRecordLostInACrashIsRepairedByTheNextLoad(t *testing.T) {
	dead, cl, ref := newFlakyHarness(t, "crashed")
	cl.failPut.Store(true)
	dead.mustExec(t, ref, "old", "increment", "")
	dead.clock.Advance(2 * time.Hour) // past RepairWithin (1h) for "old"
	lost := dead.mustExec(t, ref, "lost", "increment", "")
	if err := dead.x.Close(); err != nil { // the mender gives up: both records are lost
		t.Fatal(err)
	}
	records := dead.commands
	for _, id := range []string{"old", "lost"} {
		if _, err := records.Get(context.Background(), id); !errors.Is(err, commandlog.ErrNotFound) {
			t.Fatalf("record of %s: %v, want not found", id, err)
		}
	}

	next := newHarness(t, executor.Config{}, withStores(dead.events, records, nil))
	next.clock.Set(dead.clock.Now())
	next.mustExec(t, ref, "later-0", "increment", "") // the cold load
	testsupport.Eventually(t, 10*time.Second, "the load's records checked", func() bool { return next.x.Stats().RepairChecks > 0 })
	// Only "lost" is recent enough to be checked: reading on to "old"
	// would find it missing too, and write it, and go on to "create".
	if st := next.x.Stats(); st.RepairChecks != 1 || st.RecordsRepaired != 1 {
		t.Errorf("stats %+v: want 1 record read and repaired", st)
	}
	testsupport.Eventually(t, 10*time.Second, "the record of lost written from the history", func() bool {
		rec, err := records.Get(context.Background(), "lost")
		return err == nil && rec.Outcome == commandlog.Accepted && rec.FirstSequence == lost.Sequence && rec.LastSequence == lost.Sequence
	})
	if _, err := records.Get(context.Background(), "old"); !errors.Is(err, commandlog.ErrNotFound) {
		t.Errorf("record of old: %v, want not found (older than RepairWithin)", err)
	}
	for i := 1; i < 20; i++ {
		next.mustExec(t, ref, fmt.Sprintf("later-%d", i), "increment", "")
	}
	again, err := next.exec(t, ref, "lost", "increment", "")
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.Sequence != lost.Sequence {
		t.Errorf("late retry %+v, want the duplicate of %+v", again, lost)
	}
	if n := next.checkCounterHistory(t, ref); n != 22 {
		t.Errorf("%d increments, want 22 (old, lost, later-0..19)", n)
	}

	// Records that stand are not written again: the next load finds the
	// newest command's record and stops there.
	third := newHarness(t, executor.Config{}, withStores(dead.events, records, nil))
	third.clock.Set(dead.clock.Now())
	third.mustExec(t, ref, "later-20", "increment", "")
	testsupport.Eventually(t, 10*time.Second, "the load's records checked", func() bool { return third.x.Stats().RepairChecks > 0 })
	if st := third.x.Stats(); st.RepairChecks != 1 || st.RecordsRepaired != 0 {
		t.Errorf("stats %+v: want 1 record read, none repaired", st)
	}
}
