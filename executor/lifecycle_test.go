package executor_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/storage/memory"
)

// goroutinesSettle waits until the goroutine count is back to at most
// base+slack.
func goroutinesSettle(t *testing.T, base, slack int) {
	t.Helper()
	testsupport.Eventually(t, testDeadline, fmt.Sprintf("goroutines to return to %d (+%d)", base, slack), func() bool {
		return runtime.NumGoroutine() <= base+slack
	})
}

func TestCloseFinishesQueuedCommandsThenRefuses(t *testing.T) {
	base := runtime.NumGoroutine()
	h := newHarness(t, executor.Config{})
	a, b := counterRef("close-a"), counterRef("close-b")
	h.mustExec(t, a, "a-create", "create", "")
	g := h.blockStore(t)

	var pending []<-chan outcome
	pending = append(pending, h.stuckIncrement(t, g, a, "a-1"))
	pending = append(pending,
		h.submit(ctxT(t), a, "a-2", "increment"), // in a's mailbox
		h.submit(ctxT(t), b, "b-create", "create"),
		h.submit(ctxT(t), b, "b-1", "increment"))

	closed := make(chan error, 1)
	go func() { closed <- h.x.Close() }()

	// Wait until Close has started: new work is refused. (Probe with
	// queries, which never reach the blocked store.)
	probe := model.Ref{Type: counterType, ID: "probe"}
	testsupport.Eventually(t, testDeadline, "Close to start refusing", func() bool {
		_, err := h.x.Ask(ctxT(t), executor.Query{Ref: probe})
		return errors.Is(err, executor.ErrClosed)
	})
	late := h.submit(ctxT(t), a, "a-late", "increment")
	if o, ok := answered(late); !ok || !errors.Is(o.err, executor.ErrClosed) {
		t.Fatalf("command during Close: answered=%v %v, want ErrClosed at once", ok, o.err)
	}
	select {
	case <-closed:
		t.Fatal("Close returned while a command was still running")
	default:
	}
	for _, ch := range pending {
		if _, ok := answered(ch); ok {
			t.Fatal("a queued command finished while the store was blocked")
		}
	}

	h.unblockStore(g)
	for _, ch := range pending {
		if o := await(t, ch); o.err != nil {
			t.Fatalf("queued command failed during Close: %v", o.err)
		}
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(testDeadline):
		t.Fatal("Close did not return")
	}
	if n := h.checkCounterHistory(t, a); n != 2 {
		t.Errorf("%s: %d increments, want 2", a, n)
	}
	if n := h.checkCounterHistory(t, b); n != 1 {
		t.Errorf("%s: %d increments, want 1", b, n)
	}
	if _, ok := h.recorded(t, "a-late"); ok {
		t.Error("the refused command was recorded")
	}

	// After Close everything is refused, and Close is idempotent.
	if _, err := h.exec(t, a, "after", "increment", ""); !errors.Is(err, executor.ErrClosed) {
		t.Errorf("Execute after Close: %v, want ErrClosed", err)
	}
	if _, err := h.x.Ask(ctxT(t), executor.Query{Ref: a}); !errors.Is(err, executor.ErrClosed) {
		t.Errorf("Ask after Close: %v, want ErrClosed", err)
	}
	if err := h.x.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if s := h.x.Stats(); s.InFlight != 0 {
		t.Errorf("%d in flight after Close", s.InFlight)
	}
	goroutinesSettle(t, base, 2)
}

func TestNoGoroutineLeakUnderLoad(t *testing.T) {
	base := runtime.NumGoroutine()
	h := newHarness(t, executor.Config{Flushers: 4, MaxCached: 10})
	done := make(chan error, 200)
	for i := range 200 {
		ref := counterRef(fmt.Sprintf("leak-%d", i%37))
		h.x.Submit(ctxT(t), executor.Request{Ref: ref, CommandID: fmt.Sprintf("leak-%d", i), Command: "create"},
			func(_ executor.Result, err error) { done <- err })
	}
	for range 200 {
		select {
		case <-done: // accepted or already_exists; either way answered
		case <-time.After(testDeadline):
			t.Fatal("a command was never answered")
		}
	}
	if err := h.x.Close(); err != nil {
		t.Fatal(err)
	}
	goroutinesSettle(t, base, 2)
}

func TestConfigValidateNamesTheBadValue(t *testing.T) {
	if err := executor.DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for _, tc := range []struct {
		mutate func(*executor.Config)
		want   []string
	}{
		{func(c *executor.Config) { c.MaxCached = -1 }, []string{"MaxCached", "-1"}},
		{func(c *executor.Config) { c.MailboxSize = -2 }, []string{"MailboxSize", "-2"}},
		{func(c *executor.Config) { c.MaxInFlight = -3 }, []string{"MaxInFlight", "-3"}},
		{func(c *executor.Config) { c.Workers = -6 }, []string{"Workers", "-6"}},
		{func(c *executor.Config) { c.MaxBatch = -4 }, []string{"MaxBatch", "-4"}},
		{func(c *executor.Config) { c.Flushers = 65 }, []string{"Flushers", "65"}},
		{func(c *executor.Config) { c.Flushers = -1 }, []string{"Flushers", "-1"}},
		{func(c *executor.Config) { c.StoreTimeout = -time.Second }, []string{"StoreTimeout", "-1s"}},
		{func(c *executor.Config) { c.LoadPageSize = -5 }, []string{"LoadPageSize", "-5"}},
	} {
		cfg := executor.DefaultConfig()
		tc.mutate(&cfg)
		err := cfg.Validate()
		if err == nil {
			t.Errorf("%v: no error", tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not name %q", err, w)
			}
		}
		// New validates too, after filling defaults.
		if _, err := executor.New(cfg, validDeps(t)); err == nil || !strings.Contains(err.Error(), tc.want[0]) {
			t.Errorf("New with %v: %v", tc.want, err)
		}
	}
	// Zero values take the defaults.
	x, err := executor.New(executor.Config{}, validDeps(t))
	if err != nil {
		t.Fatalf("New with a zero Config: %v", err)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
}

func validDeps(t *testing.T) executor.Deps {
	t.Helper()
	reg, err := model.NewRegistry(defineCounter().typ)
	if err != nil {
		t.Fatal(err)
	}
	return executor.Deps{Registry: reg, Events: memory.NewEventLog(), Commands: memory.NewCommandLog(), Logger: quietLogger()}
}

func TestNewRejectsMissingDeps(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*executor.Deps)
	}{
		{"Registry", func(d *executor.Deps) { d.Registry = nil }},
		{"Events", func(d *executor.Deps) { d.Events = nil }},
		{"Commands", func(d *executor.Deps) { d.Commands = nil }},
	} {
		d := validDeps(t)
		tc.mutate(&d)
		x, err := executor.New(executor.Config{}, d)
		if err == nil {
			_ = x.Close()
			t.Errorf("New without %s: no error", tc.name)
			continue
		}
		if !strings.Contains(err.Error(), tc.name) {
			t.Errorf("New without %s: %q does not name it", tc.name, err)
		}
	}
	// Optional deps default: no Clock, IDs, Logger or Publisher.
	d := validDeps(t)
	d.Logger = nil
	x, err := executor.New(executor.Config{}, d)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	res, err := x.Execute(ctxT(t), executor.Request{Ref: counterRef("defaults"), CommandID: "c", Command: "create"})
	if err != nil {
		t.Fatal(err)
	}
	e := res.Events[0]
	if e.EventID == "" || e.ProcessingID == "" || e.ProcessingTime.IsZero() {
		t.Errorf("default ids/clock not applied: %+v", e)
	}
}

// Close racing with Submit: every Submit is answered exactly once, either
// ErrClosed or a durable outcome; no send on a closed channel, no leak.
// (Regression test for a race in an earlier version, where enqueue checked
// closing before registering the worker Close waits for.)
func TestCloseRacingSubmit(t *testing.T) {
	for round := range 50 {
		h := newHarness(t, executor.Config{})
		var wg sync.WaitGroup
		answers := make(chan error, 8*20)
		start := make(chan struct{})
		for g := range 8 {
			wg.Go(func() {
				<-start
				for i := range 20 {
					ref := counterRef(fmt.Sprintf("r%d-g%d-%d", round, g, i))
					h.x.Submit(context.Background(), executor.Request{Ref: ref, CommandID: ref.ID, Command: "create"},
						func(_ executor.Result, err error) { answers <- err })
				}
			})
		}
		close(start)
		if err := h.x.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		for range 8 * 20 {
			err := <-answers // every Submit answered: Close waited, or refused
			if err != nil && !errors.Is(err, executor.ErrClosed) {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		select {
		case err := <-answers:
			t.Fatalf("round %d: an extra answer %v", round, err)
		default:
		}
	}
}

// Workers bounds how many aggregates run at once; with one worker every
// aggregate is still served, and no batch can hold more appends than there
// are workers (each waits for its own write).
func TestSmallWorkerPool(t *testing.T) {
	const workers = 2
	h := newHarness(t, executor.Config{Workers: workers})
	var wg sync.WaitGroup
	for a := range 20 {
		ref := counterRef(fmt.Sprintf("pool-%d", a))
		wg.Go(func() {
			h.mustExec(t, ref, ref.ID, "create", "")
			for i := range 10 {
				h.mustExec(t, ref, fmt.Sprintf("%s-%d", ref.ID, i), "increment", "")
			}
		})
	}
	wg.Wait()
	for a := range 20 {
		if n := h.checkCounterHistory(t, counterRef(fmt.Sprintf("pool-%d", a))); n != 10 {
			t.Fatalf("pool-%d: %d increments", a, n)
		}
	}
	for _, n := range h.store.batchSizes() {
		if n > workers {
			t.Fatalf("a batch of %d appends with %d workers", n, workers)
		}
	}
}
