package executor_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/internal/testsupport"
)

// Past MaxInFlight a command is refused at once, without waiting for the
// blocked store; once the store moves, the accepted ones complete.
func TestMaxInFlightRefusesAtOnce(t *testing.T) {
	const maxInFlight = 8
	h := newHarness(t, executor.Config{MaxInFlight: maxInFlight})
	g := h.blockStore(t)

	var accepted []<-chan outcome
	for i := range maxInFlight {
		ref := counterRef(fmt.Sprintf("bp-%d", i))
		accepted = append(accepted, h.submit(ctxT(t), ref, ref.ID, "create"))
	}
	g.waitEntered(t, 1) // at least one is stuck in the store

	// The ninth is answered before Submit returns: the callback has run.
	over := h.submit(ctxT(t), counterRef("bp-over"), "bp-over", "create")
	o, ok := answered(over)
	if !ok {
		t.Fatal("the command past MaxInFlight was queued instead of refused")
	}
	if !errors.Is(o.err, executor.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", o.err)
	}
	// So is a query: it takes a slot too.
	if _, err := h.x.Ask(ctxT(t), executor.Query{Ref: counterRef("bp-0")}); !errors.Is(err, executor.ErrUnavailable) {
		t.Errorf("query past MaxInFlight: %v, want ErrUnavailable", err)
	}
	if s := h.x.Stats(); s.InFlight != maxInFlight || s.Saturated != 2 {
		t.Errorf("stats %+v: want %d in flight, 2 saturated", s, maxInFlight)
	}
	for _, ch := range accepted {
		if _, done := answered(ch); done {
			t.Fatal("a command finished while the store was blocked")
		}
	}

	h.unblockStore(g)
	for _, ch := range accepted {
		if o := await(t, ch); o.err != nil || o.res.Sequence != 1 {
			t.Fatalf("accepted command: %+v", o)
		}
	}
	if _, ok := h.recorded(t, "bp-over"); ok {
		t.Error("the refused command was recorded")
	}
	h.checkLastSeq(t, counterRef("bp-over"), 0, "the refused command wrote events")
	// Capacity is back: a retry of the refused command is accepted.
	h.idle(t)
	if _, err := h.exec(t, counterRef("bp-over"), "bp-over", "create", ""); err != nil {
		t.Fatalf("retry after the store recovered: %v", err)
	}
}

// A full mailbox refuses the next command for that aggregate only.
func TestMailboxOverflowRefusesAtOnce(t *testing.T) {
	const mailbox = 2
	h := newHarness(t, executor.Config{MailboxSize: mailbox})
	ref := h.newCounter(t, "mb")
	g := h.blockStore(t)

	running := h.stuckIncrement(t, g, ref, "running") // taken off the mailbox
	var queued []<-chan outcome
	for i := range mailbox {
		queued = append(queued, h.submit(ctxT(t), ref, fmt.Sprintf("queued-%d", i), "increment"))
	}
	over := h.submit(ctxT(t), ref, "over", "increment")
	o, ok := answered(over)
	if !ok || !errors.Is(o.err, executor.ErrUnavailable) {
		t.Fatalf("mailbox overflow: answered=%v err=%v, want ErrUnavailable at once", ok, o.err)
	}
	// Another aggregate is unaffected (its write queues behind the gate).
	otherCh := h.submit(ctxT(t), counterRef("mb-other"), "mb-other", "create")
	if _, done := answered(otherCh); done {
		t.Fatal("another aggregate's command was refused")
	}

	h.unblockStore(g)
	for _, ch := range append([]<-chan outcome{running, otherCh}, queued...) {
		if o := await(t, ch); o.err != nil {
			t.Fatal(o.err)
		}
	}
	if n := h.checkCounterHistory(t, ref); n != 1+mailbox {
		t.Errorf("%d increments, want %d", n, 1+mailbox)
	}
	if _, ok := h.recorded(t, "over"); ok {
		t.Error("the refused command was recorded")
	}
	if s := h.x.Stats(); s.Saturated != 1 {
		t.Errorf("saturated %d, want 1", s.Saturated)
	}
}

// A command whose deadline passed while it waited in the mailbox is not run.
func TestExpiredCommandIsNotRun(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := h.newCounter(t, "deadline")
	g := h.blockStore(t)

	first := h.stuckIncrement(t, g, ref, "first")
	ctx, cancel := context.WithCancel(context.Background())
	late := h.submit(ctx, ref, "late", "increment")
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancel2()
	lateToo := h.submit(expired, ref, "late-too", "increment")
	cancel() // its deadline passes while it waits behind the first
	h.unblockStore(g)

	if o := await(t, first); o.err != nil {
		t.Fatal(o.err)
	}
	for _, ch := range []<-chan outcome{late, lateToo} {
		if o := await(t, ch); !errors.Is(o.err, executor.ErrTimeout) {
			t.Fatalf("got %+v, want ErrTimeout", o)
		}
	}
	for _, id := range []string{"late", "late-too"} {
		if _, ok := h.recorded(t, id); ok {
			t.Errorf("%s was recorded", id)
		}
	}
	if n := h.checkCounterHistory(t, ref); n != 1 {
		t.Errorf("%d increments, want only the first", n)
	}
	if s := h.x.Stats(); s.Timeouts != 2 {
		t.Errorf("timeouts %d, want 2", s.Timeouts)
	}
	// The same ids may run later: nothing was decided for them.
	if _, err := h.exec(t, ref, "late", "increment", ""); err != nil {
		t.Fatal(err)
	}
}

// Execute gives up when its context ends, but a command that already
// started still runs; a retry with its id learns the outcome.
func TestExecuteTimeoutThenRetryLearnsOutcome(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := h.newCounter(t, "retry")
	g := h.blockStore(t)

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := h.x.Execute(ctx, executor.Request{Ref: ref, CommandID: "slow", Command: "increment"})
		errc <- err
	}()
	g.waitEntered(t, 1)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, executor.ErrTimeout) {
			t.Fatalf("Execute: %v, want ErrTimeout", err)
		}
	case <-time.After(testDeadline):
		t.Fatal("Execute did not return when its context ended")
	}
	h.unblockStore(g)
	testsupport.Eventually(t, testDeadline, "the started command to be recorded", func() bool {
		_, ok := h.recorded(t, "slow")
		return ok
	})
	res, err := h.exec(t, ref, "slow", "increment", "")
	if err != nil || !res.Duplicate || res.Sequence != 2 {
		t.Fatalf("retry: %+v %v, want the recorded outcome (duplicate, sequence 2)", res, err)
	}
	h.checkLastSeq(t, ref, 2, "")
}

// Ask gives up when its context ends; the query stays queued behind the
// command that blocks it and is answered to nobody.
func TestAskTimeout(t *testing.T) {
	h := newHarness(t, executor.Config{})
	ref := h.newCounter(t, "ask-timeout")
	g := h.blockStore(t)
	blocked := h.stuckIncrement(t, g, ref, "inc")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.x.Ask(ctx, executor.Query{Ref: ref}); !errors.Is(err, executor.ErrTimeout) {
		t.Fatalf("got %v, want ErrTimeout", err)
	}
	h.unblockStore(g)
	if o := await(t, blocked); o.err != nil {
		t.Fatal(o.err)
	}
	h.idle(t)
	if s := h.x.Stats(); s.InFlight != 0 || s.Timeouts != 1 {
		t.Errorf("stats %+v: want nothing in flight, the expired query counted as a timeout", s)
	}
}
