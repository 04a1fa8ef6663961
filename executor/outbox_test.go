package executor_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/executor"
)

// Every append is announced to the publisher as a mark before it is
// written, and every mark is settled: published when the append landed,
// discarded when it conflicted (the reload-and-decide-again writes a new
// mark).
func TestEveryAppendIsMarkedAndSettled(t *testing.T) {
	pub := newRecordingPublisher()
	h := newHarness(t, executor.Config{}, withPublisher(pub))
	ref := h.newCounter(t, "marked")
	h.mustExec(t, ref, "inc-1", "increment", `{"times":3}`)
	h.idle(t)
	h.appendBehindBack(t, ref, 1) // the next append conflicts once
	h.mustExec(t, ref, "inc-2", "increment", "")
	if _, err := h.exec(t, ref, "refuse", "refuse", ""); err == nil {
		t.Fatal("refuse was accepted")
	}

	pub.mu.Lock()
	defer pub.mu.Unlock()
	want := []eventlog.Mark{
		{Ref: ref, First: 1, Last: 1},
		{Ref: ref, First: 2, Last: 4},
		{Ref: ref, First: 5, Last: 5}, // conflicted: the foreign event took 5
		{Ref: ref, First: 6, Last: 6},
	}
	if len(pub.marks) != len(want) {
		t.Fatalf("marks %v, want %v", pub.marks, want)
	}
	for i := range want {
		if pub.marks[i] != want[i] {
			t.Errorf("mark %d is %v, want %v", i, pub.marks[i], want[i])
		}
	}
	if pub.discarded != 1 || pub.maybeWritten != 0 {
		t.Errorf("%d marks discarded (%d maybe written), want 1 (the conflicted append, surely not written)", pub.discarded, pub.maybeWritten)
	}
	if len(pub.tickets) != 0 {
		t.Errorf("unsettled marks: %v", pub.tickets)
	}
	if got := pub.byRef[ref]; len(got) != 5 { // 1 + 3 + 1 of ours; the foreign one is not ours to publish
		t.Errorf("published %d events, want 5", len(got))
	}
}

// When the outbox cannot be written the batch is not written either: the
// command is answered unavailable and the log stays empty, so no event is
// ever durable without its mark.
func TestOutboxFailureWritesNothing(t *testing.T) {
	pub := newRecordingPublisher()
	pub.prepareErr = errors.New("outbox down")
	h := newHarness(t, executor.Config{}, withPublisher(pub))
	ref := counterRef("unmarked")
	_, err := h.exec(t, ref, "create", "create", "")
	if !errors.Is(err, executor.ErrUnavailable) {
		t.Fatalf("err %v, want ErrUnavailable", err)
	}
	if n := h.lastSeq(t, ref); n != 0 {
		t.Fatalf("log is at %d, want nothing written", n)
	}
	if _, ok := h.recorded(t, "create"); ok {
		t.Error("the command was recorded")
	}

	pub.mu.Lock()
	pub.prepareErr = nil
	pub.mu.Unlock()
	if res := h.mustExec(t, ref, "create", "create", ""); res.Sequence != 1 {
		t.Fatalf("retry: %+v", res)
	}
}

// A write of unknown outcome is discarded as "maybe written": the
// publisher must then look in the log, because the events may be durable.
func TestUnknownOutcomeIsDiscardedAsMaybeWritten(t *testing.T) {
	pub := newRecordingPublisher()
	h := newHarness(t, executor.Config{}, withPublisher(pub))
	ref := h.newCounter(t, "unknown")
	h.store.setHook(func(_ context.Context, batch []eventlog.Append) []error {
		return errsFor(batch, func(a *eventlog.Append) error {
			return fmt.Errorf("%w: injected failure for %s", eventlog.ErrUnavailable, a.Ref)
		})
	})
	if _, err := h.exec(t, ref, "inc", "increment", ""); !errors.Is(err, executor.ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	pub.mu.Lock()
	defer pub.mu.Unlock()
	if pub.discarded != 1 || pub.maybeWritten != 1 {
		t.Errorf("%d discarded, %d maybe written; want 1 and 1", pub.discarded, pub.maybeWritten)
	}
	if len(pub.tickets) != 0 {
		t.Errorf("unsettled marks: %v", pub.tickets)
	}
}
