package subscription_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/subscription"
)

type created struct {
	Wattage int `json:"wattage"`
}

type screwedIn struct {
	Location string `json:"location"`
}

// On decodes each event's payload into the handler's type, and the
// Event carries where it came from.
func TestTypedHandlersDecodePayloads(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var wattages []int
	var locations []string
	var events []subscription.Event
	var h subscription.Handlers
	subscription.On(&h, "created_0", func(_ context.Context, x subscription.Event, p created) error {
		mu.Lock()
		defer mu.Unlock()
		wattages = append(wattages, p.Wattage)
		events = append(events, x)
		return nil
	})
	subscription.On(&h, "screwedIn_0", func(_ context.Context, x subscription.Event, p screwedIn) error {
		mu.Lock()
		defer mu.Unlock()
		locations = append(locations, p.Location)
		events = append(events, x)
		return nil
	})
	seqs := e.publish(ev("b1", 1, "created", `{"wattage":60}`), ev("b1", 2, "screwedIn", `{"location":"hall"}`),
		ev("b1", 3, "switchedOn", ""))
	s := e.subscribe(e.config("typed"), &h)
	testsupport.Eventually(t, 5*time.Second, "3 events delivered", func() bool { return s.Stats().Delivered == 3 })
	settle(t, e, s)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(wattages, []int{60}) || !slices.Equal(locations, []string{"hall"}) {
		t.Errorf("decoded wattages %v, locations %v", wattages, locations)
	}
	if len(events) != 2 || events[0].Source != subscription.FromStream || events[0].StreamSeq != seqs[0] ||
		events[1].StreamSeq != seqs[1] || events[0].Attempt != 1 || events[1].Sequence != 2 {
		t.Errorf("events %+v", events)
	}
	if st := s.Stats(); st.Handled != 2 || st.SkippedNoHandler != 1 {
		t.Errorf("stats %+v: want 2 handled, switchedOn_0 skipped without a handler", st)
	}
}

// Registration mistakes come back from Subscribe, which creates nothing.
func TestHandlerRegistrationErrors(t *testing.T) {
	e := newEnv(t)
	noop := func(context.Context, subscription.Event, created) error { return nil }
	for name, tc := range map[string]struct {
		register func(*subscription.Handlers)
		events   []string
	}{
		"no handler": {register: func(*subscription.Handlers) {}},
		"bad name":   {register: func(h *subscription.Handlers) { subscription.On(h, "created", noop) }},
		"twice": {register: func(h *subscription.Handlers) {
			subscription.On(h, "created_0", noop)
			subscription.On(h, "created_0", noop)
		}},
		"not filtered": {register: func(h *subscription.Handlers) { subscription.On(h, "created_0", noop) }, events: []string{"screwedIn_0"}},
	} {
		t.Run(name, func(t *testing.T) {
			var h subscription.Handlers
			tc.register(&h)
			cfg := e.config("bad")
			cfg.Events = tc.events
			_, err := subscription.Subscribe(context.Background(), cfg, &h)
			if !errors.Is(err, subscription.ErrInvalidHandlers) {
				t.Fatalf("Subscribe: %v, want ErrInvalidHandlers", err)
			}
		})
	}
	if _, err := e.js.Consumer(context.Background(), "CONCURSUS_EVENTS", "bad"); err == nil {
		t.Error("a consumer was created for invalid handlers")
	}
}

// With Events, only those names are delivered. The sequence jumps the
// filter makes are closed from history without handing over the events
// left out; with DisableGapFill they are simply accepted.
func TestEventsFilter(t *testing.T) {
	e := newEnv(t)
	log := []model.Event{ev("b1", 1, "created", ""), ev("b1", 2, "screwedIn", ""), ev("b1", 3, "switchedOn", ""),
		ev("b2", 1, "created", ""), ev("b1", 4, "screwedIn", ""), ev("b1", 5, "switchedOn", "")}
	e.publish(log...)

	t.Run("gap fill", func(t *testing.T) {
		hist := e.serveHistory(api.MaxHistoryPage, log...)
		var rec recorder
		cfg := e.config("filtered")
		cfg.Events = []string{"created_0", "switchedOn_0"}
		s := e.subscribe(cfg, rec.catchAll())
		testsupport.Eventually(t, 5*time.Second, "4 events", func() bool { return rec.count() == 4 })
		settle(t, e, s)
		wantKeys(t, "handled", rec.keys(), "b1#1", "b1#3", "b2#1", "b1#5")
		if st := s.Stats(); st.Delivered != 4 || st.GapsFilled != 2 || st.GapEvents != 2 || st.Handled != 4 {
			t.Errorf("stats %+v: want 4 delivered and handled, 2 jumps filled with the 2 screwedIn events", st)
		}
		if hist.requests.Load() != 2 {
			t.Errorf("%d history requests, want 2", hist.requests.Load())
		}
	})
	t.Run("no gap fill", func(t *testing.T) {
		var rec recorder
		cfg := e.config("filtered-nofill")
		cfg.Events = []string{"screwedIn_0"}
		cfg.DisableGapFill = true
		s := e.subscribe(cfg, rec.catchAll())
		testsupport.Eventually(t, 5*time.Second, "2 events", func() bool { return rec.count() == 2 })
		settle(t, e, s)
		wantKeys(t, "handled", rec.keys(), "b1#2", "b1#4")
	})
}

// Start positions of a new consumer: beginning, live, a stream sequence,
// a time. A consumer that exists ignores Start.
func TestStartPositions(t *testing.T) {
	e := newEnv(t)
	first := e.publish(history("b1", 3, "created")...)
	time.Sleep(5 * time.Millisecond) // stream timestamps are the server's clock
	mid := time.Now()
	time.Sleep(5 * time.Millisecond)
	e.publish(ev("b1", 4, "created", ""))

	for _, tc := range []struct {
		name  string
		start subscription.Start
		after uint64 // the sequence of b1 published after subscribing
		want  []string
	}{
		{"beginning", subscription.FromBeginning(), 5, []string{"b1#1", "b1#2", "b1#3", "b1#4", "b1#5"}},
		{"sequence", subscription.FromSequence(first[1]), 6, []string{"b1#2", "b1#3", "b1#4", "b1#5", "b1#6"}},
		{"time", subscription.FromTime(mid), 7, []string{"b1#4", "b1#5", "b1#6", "b1#7"}},
		{"live", subscription.Live(), 8, []string{"b1#8"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rec recorder
			cfg := e.config("start-" + tc.name)
			cfg.Start = tc.start
			s := e.subscribe(cfg, rec.catchAll())
			testsupport.Eventually(t, 5*time.Second, "the events already in the stream", func() bool { return rec.count() >= len(tc.want)-1 })
			e.publish(ev("b1", tc.after, "created", ""))
			testsupport.Eventually(t, 5*time.Second, "the event published after", func() bool { return rec.count() >= len(tc.want) })
			settle(t, e, s)
			wantKeys(t, "handled", rec.keys(), tc.want...)
			if st := s.Stats(); st.GapsFilled+st.GapsSkipped != 0 {
				t.Errorf("stats %+v: a later start is no gap", st)
			}
		})
	}

	// The live consumer exists now: subscribing again "from the
	// beginning" resumes it, and there is nothing new.
	var rec recorder
	cfg := e.config("start-live")
	cfg.Start = subscription.FromBeginning()
	s := e.subscribe(cfg, rec.catchAll())
	settle(t, e, s)
	if rec.count() != 0 {
		t.Errorf("a resumed consumer delivered %v", rec.keys())
	}
}

// A subscription stopped in the middle of a handler, and subscribed
// again, goes on where it stopped: nothing lost, nothing acknowledged
// delivered again.
func TestRestartResumesAfterTheLastAcknowledgedEvent(t *testing.T) {
	e := newEnv(t)
	events := twoBulbs(5)
	e.publish(events[:6]...)

	var first recorder
	var h subscription.Handlers
	blocked := make(chan struct{})
	h.CatchAll(func(ctx context.Context, x subscription.Event) error {
		if first.count() == 3 { // the fourth blocks until Stop
			close(blocked)
			<-ctx.Done()
			return ctx.Err()
		}
		first.record(x)
		return nil
	})
	cfg := e.config("restart")
	cfg.MaxAckPending = 4 // some fetched ahead when it stops
	s, err := subscription.Subscribe(context.Background(), cfg, &h)
	if err != nil {
		t.Fatal(err)
	}
	<-blocked
	s.Stop()
	if s.Err() != nil {
		t.Errorf("Err after Stop: %v", s.Err())
	}
	wantKeys(t, "before the stop", first.keys(), "b1#1", "b2#1", "b1#2")
	e.publish(events[6:]...)

	var second recorder
	s2 := e.subscribe(cfg, second.catchAll())
	testsupport.Eventually(t, 10*time.Second, "the other 7 events", func() bool { return second.count() >= 7 })
	settle(t, e, s2)
	wantKeys(t, "after the restart", second.keys(), "b2#2", "b1#3", "b2#3", "b1#4", "b2#4", "b1#5", "b2#5")
	info := e.consumerInfo("restart")
	if info.NumAckPending != 0 || info.NumPending != 0 || info.AckFloor.Stream != 10 {
		t.Errorf("consumer: %d ack pending, %d pending, ack floor %d; want 0, 0, 10", info.NumAckPending, info.NumPending, info.AckFloor.Stream)
	}
	if st := s2.Stats(); st.Duplicates != 0 || st.GapsFilled+st.GapsSkipped != 0 {
		t.Errorf("stats after the restart %+v", st)
	}
}

// A restarted subscription knows where each aggregate stood, although the
// stream holds some events after later ones of their aggregate: copies
// published again from the outbox by the node that took over a writer
// that died before publishing them. Such a copy, first after the restart,
// must not be handed over again nor make the events after it look missing
// (they were handled before the restart); a later event first after the
// restart must not make the events published again after it look handled
// (they were not).
func TestRestartKnowsWhereEachAggregateStood(t *testing.T) {
	t.Run("every event", func(t *testing.T) {
		e := newEnv(t)
		b1, b2, b3 := history("b1", 5, "created"), history("b2", 4, "created"), history("b3", 1, "created")
		e.serveHistory(api.MaxHistoryPage, slices.Concat(b1, b2, b3)...)
		// b1#2's writer died before publishing it.
		e.publish(b1[0], b1[2], b1[3], b2[0])
		cfg := e.config("resume")
		first, _ := e.runToTheEnd(cfg)
		wantKeys(t, "before the restart", first, "b1#1", "b1#2", "b1#3", "b1#4", "b2#1")

		// While it is stopped: b1#2 published again from the outbox; b2#4
		// published live while b2#2 and b2#3, whose writer died, come after
		// it from the outbox; new events of b1 and of a new b3.
		e.publish(b1[1], b2[3], b2[1], b2[2], b1[4], b3[0])
		second, st := e.runToTheEnd(cfg)
		wantKeys(t, "after the restart", second, "b2#2", "b2#3", "b2#4", "b1#5", "b3#1")
		if st.Duplicates != 3 || st.GapsFilled != 1 || st.GapEvents != 2 || st.ResumeLookups != 3 || st.ResumeLookupsFailed != 0 {
			t.Errorf("stats %+v: want 3 duplicates (b1#2, b2#2, b2#3), b2#2..3 filled from history, 3 aggregates looked up", st)
		}
	})
	// In event-time order the same: what the stream says decides what
	// was handed over, whatever the settle window then holds.
	t.Run("event time", func(t *testing.T) {
		e := newEnv(t)
		b1, b2 := history("b1", 5, "created"), history("b2", 4, "created")
		e.serveHistory(api.MaxHistoryPage, slices.Concat(b1, b2)...)
		e.publish(b1[0], b1[2], b1[3], b2[0])
		cfg := e.config("resume-et")
		cfg.Order, cfg.SettleWindow = subscription.EventTime, time.Millisecond
		first, _ := e.runToTheEnd(cfg)
		slices.Sort(first)
		wantKeys(t, "before the restart", first, "b1#1", "b1#2", "b1#3", "b1#4", "b2#1")
		e.publish(b1[1], b2[3], b2[1], b2[2], b1[4])
		second, st := e.runToTheEnd(cfg)
		slices.Sort(second)
		wantKeys(t, "after the restart", second, "b1#5", "b2#2", "b2#3", "b2#4")
		if st.ResumeLookups != 2 || st.Late != 0 {
			t.Errorf("stats %+v: want 2 lookups, nothing late", st)
		}
	})
	t.Run("one name", func(t *testing.T) {
		e := newEnv(t)
		log := []model.Event{ev("b4", 1, "created", ""), ev("b4", 2, "switchedOn", ""), ev("b4", 3, "switchedOff", ""),
			ev("b4", 4, "switchedOn", ""), ev("b4", 5, "switchedOff", ""), ev("b4", 6, "switchedOn", "")}
		e.serveHistory(api.MaxHistoryPage, log...)
		e.publish(log[0], log[2], log[3]) // b4#2's writer died
		cfg := e.config("resume-on")
		cfg.Events = []string{"switchedOn_0"}
		first, _ := e.runToTheEnd(cfg)
		wantKeys(t, "before the restart", first, "b4#2", "b4#4")

		e.publish(log[1], log[5]) // b4#2 from the outbox; b4#5's writer died too
		second, st := e.runToTheEnd(cfg)
		wantKeys(t, "after the restart", second, "b4#6")
		if st.Duplicates != 1 || st.GapsFilled != 1 || st.GapEvents != 1 || st.ResumeLookups != 1 {
			t.Errorf("stats %+v: want b4#2 a duplicate, b4#5 passed over from history, 1 lookup", st)
		}
	})
	// A stream an older node made, without direct gets: the subscription
	// says so and takes first events as they come, as it did before.
	t.Run("no direct gets", func(t *testing.T) {
		e := newEnv(t)
		b1 := history("b1", 3, "created")
		e.publish(b1[0])
		cfg := e.config("resume-old")
		first, _ := e.runToTheEnd(cfg)
		wantKeys(t, "before the restart", first, "b1#1")
		st, err := e.js.Stream(context.Background(), api.StreamName(e.prefix))
		if err != nil {
			t.Fatal(err)
		}
		sc := st.CachedInfo().Config
		sc.AllowDirect = false
		if _, err := e.js.UpdateStream(context.Background(), sc); err != nil {
			t.Fatal(err)
		}
		e.publish(b1[2], ev("b2", 1, "created", ""))
		second, stats := e.runToTheEnd(cfg)
		wantKeys(t, "after the restart", second, "b1#3", "b2#1")
		if stats.ResumeLookupsFailed != 1 || stats.ResumeLookups != 0 {
			t.Errorf("stats %+v: want one failed lookup, then none", stats)
		}
	})
}

// Drain lets the event in hand finish and acknowledges it.
func TestDrainFinishesTheEventInHand(t *testing.T) {
	e := newEnv(t)
	e.publish(history("b1", 3, "created")...)
	var h subscription.Handlers
	var rec recorder
	started, release := make(chan struct{}), make(chan struct{})
	h.CatchAll(func(ctx context.Context, x subscription.Event) error {
		if x.Sequence == 2 {
			close(started)
			<-release
		}
		rec.record(x)
		return ctx.Err()
	})
	s, err := subscription.Subscribe(context.Background(), e.config("drain"), &h)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	drained := make(chan error)
	go func() { drained <- s.Drain(context.Background()) }()
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) while a handler ran", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-drained; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	<-s.Done()
	wantKeys(t, "handled", rec.keys(), "b1#1", "b1#2")
	testsupport.Eventually(t, 5*time.Second, "the ack of b1#2", func() bool { return e.consumerInfo("drain").AckFloor.Stream == 2 })
}

// Members of a group share the aggregates: each aggregate's events are
// handled by one member, in order, and every event once.
func TestGroupSharesTheAggregates(t *testing.T) {
	e := newEnv(t)
	const members, aggregates, perAggregate = 3, 12, 4
	var events []model.Event
	for seq := uint64(1); seq <= perAggregate; seq++ {
		for a := range aggregates {
			events = append(events, ev(fmt.Sprintf("g%02d", a), seq, "created", ""))
		}
	}
	e.publish(events...)
	recs := make([]*recorder, members)
	subs := make([]*subscription.Subscription, members)
	for m := range members {
		recs[m] = &recorder{}
		cfg := e.config("billing")
		cfg.Group = subscription.Group{Members: members, Member: m}
		subs[m] = e.subscribe(cfg, recs[m].catchAll())
		if want := fmt.Sprintf("billing-%dof%d", m, members); subs[m].Durable() != want {
			t.Errorf("member %d durable %q, want %q", m, subs[m].Durable(), want)
		}
	}
	total := func() int {
		n := 0
		for _, r := range recs {
			n += r.count()
		}
		return n
	}
	testsupport.Eventually(t, 10*time.Second, "every event handled", func() bool { return total() >= len(events) })
	for _, s := range subs {
		settle(t, e, s)
	}
	if total() != len(events) {
		t.Fatalf("%d events handled, want %d", total(), len(events))
	}
	owner := make(map[string]int)
	for m, r := range recs {
		next := make(map[string]uint64)
		for _, x := range r.events() {
			if o, ok := owner[x.AggregateID]; ok && o != m {
				t.Errorf("%s handled by members %d and %d", x.AggregateID, o, m)
			}
			owner[x.AggregateID] = m
			if want := api.Partition(members, bulb, x.AggregateID); want != m {
				t.Errorf("%s handled by member %d, its partition is %d", x.AggregateID, m, want)
			}
			if x.Sequence != next[x.AggregateID]+1 {
				t.Errorf("member %d: %s#%d after #%d", m, x.AggregateID, x.Sequence, next[x.AggregateID])
			}
			next[x.AggregateID] = x.Sequence
		}
		st := subs[m].Stats()
		if st.Delivered != uint64(len(events)) || st.AckedNotMine+st.Handled != st.Delivered {
			t.Errorf("member %d stats %+v", m, st)
		}
	}
	if len(owner) != aggregates {
		t.Errorf("%d aggregates handled, want %d", len(owner), aggregates)
	}
	shares := map[int]bool{}
	for _, m := range owner {
		shares[m] = true
	}
	if len(shares) < 2 {
		t.Errorf("one member handled everything: %v", owner)
	}
}

// An event stored twice (republished beyond the duplicates window) is
// handled once.
func TestDuplicatesAreDropped(t *testing.T) {
	e := newEnv(t)
	b := history("b1", 3, "created")
	e.publish(b[0], b[1])
	e.republish(b[0])
	e.republish(b[1])
	e.publish(b[2])
	var rec recorder
	s := e.subscribe(e.config("dedup"), rec.catchAll())
	testsupport.Eventually(t, 5*time.Second, "5 deliveries", func() bool { return s.Stats().Delivered == 5 })
	settle(t, e, s)
	wantKeys(t, "handled", rec.keys(), "b1#1", "b1#2", "b1#3")
	if st := s.Stats(); st.Duplicates != 2 || st.Handled != 3 || st.Tracked != 1 {
		t.Errorf("stats %+v: want 2 duplicates, 3 handled, 1 aggregate tracked", st)
	}
}

// Events missing from the stream are read from history (over several
// pages) and handed over in order before the event after the gap; when
// they reach the stream later they are duplicates.
func TestGapIsFilledFromHistory(t *testing.T) {
	e := newEnv(t)
	log := history("b1", 8, "created")
	hist := e.serveHistory(2, log...)
	e.publish(log[0], log[1], log[6])
	var rec recorder
	s := e.subscribe(e.config("gaps"), rec.catchAll())
	testsupport.Eventually(t, 5*time.Second, "7 events", func() bool { return rec.count() >= 7 })
	wantKeys(t, "handled", rec.keys(), "b1#1", "b1#2", "b1#3", "b1#4", "b1#5", "b1#6", "b1#7")
	for i, x := range rec.events() {
		want := subscription.FromStream
		if i >= 2 && i < 6 {
			want = subscription.FromHistory
		}
		if x.Source != want || (want == subscription.FromHistory) != (x.StreamSeq == 0) {
			t.Errorf("%s: source %v, stream seq %d", key(x.AggregateID, x.Sequence), x.Source, x.StreamSeq)
		}
	}
	if n := hist.requests.Load(); n != 2 {
		t.Errorf("%d history requests for 4 events in pages of 2, want 2", n)
	}
	// The late arrivals are duplicates; the next event is in order.
	e.publish(log[2], log[3], log[7])
	testsupport.Eventually(t, 5*time.Second, "b1#8", func() bool { return rec.count() >= 8 })
	settle(t, e, s)
	if st := s.Stats(); st.GapsFilled != 1 || st.GapEvents != 4 || st.Duplicates != 2 || st.GapsSkipped != 0 {
		t.Errorf("stats %+v", st)
	}
	// A new aggregate, read from the beginning, starts at 1: a first
	// event at 3 is a gap too.
	hist.add(history("b2", 3, "created")...)
	e.publish(ev("b2", 3, "created", `{"n":3}`))
	testsupport.Eventually(t, 5*time.Second, "b2#1..3", func() bool { return rec.count() >= 11 })
	wantKeys(t, "b2", rec.keys()[8:], "b2#1", "b2#2", "b2#3")
}

// Without a history responder a gap is retried until GapTimeout, then
// skipped, and the events go on. GapTimeout runs on the subscription's
// clock: while the fake clock stands still the gap waits however long the
// test does; once it has moved GapTimeout on, the gap is skipped.
func TestGapIsSkippedAfterGapTimeout(t *testing.T) {
	e := newEnv(t)
	log := history("b1", 4, "created")
	e.publish(log[0], log[1], log[3])
	var rec recorder
	clock := newFakeClock()
	began := clock.Now()
	cfg := e.config("skip")
	cfg.Clock = clock
	cfg.GapTimeout = 300 * time.Millisecond
	cfg.HistoryTimeout = 50 * time.Millisecond
	s := e.subscribe(cfg, rec.catchAll())
	testsupport.Eventually(t, 5*time.Second, "the 2 events before the gap", func() bool { return rec.count() >= 2 })
	time.Sleep(2 * cfg.GapTimeout) // longer than GapTimeout in real time; history reads fail at once (no responder)
	if st := s.Stats(); st.GapsSkipped != 0 || rec.count() != 2 {
		t.Fatalf("the clock has not moved, yet: stats %+v, handled %v", st, rec.keys())
	}
	testsupport.Eventually(t, 5*time.Second, "the gap skipped as the clock moves", func() bool {
		if rec.count() >= 3 {
			return true
		}
		clock.Advance(10 * time.Millisecond)
		return false
	})
	wantKeys(t, "handled", rec.keys(), "b1#1", "b1#2", "b1#4")
	if st := s.Stats(); st.GapsSkipped != 1 || st.GapsFilled != 0 {
		t.Errorf("stats %+v: want one gap skipped", st)
	}
	// The skip may come one wait early (the next wait would end past it).
	if moved := clock.Now().Sub(began); moved < cfg.GapTimeout-cfg.Backoff.Max {
		t.Errorf("the gap was skipped after the clock moved %v, before GapTimeout %v", moved, cfg.GapTimeout)
	}
	// b1#3 arriving now is a duplicate: its place was passed.
	e.publish(log[2])
	testsupport.Eventually(t, 5*time.Second, "the late event", func() bool { return s.Stats().Duplicates == 1 })
}

// A handler that keeps failing on one event: after MaxAttempts the event
// is in the dead letters with the error, and the events after it (of
// its aggregate too) flow on with no gap.
func TestPoisonEventGoesToTheDeadLetters(t *testing.T) {
	e := newEnv(t)
	var rec recorder
	attempts := 0
	var h subscription.Handlers
	h.CatchAll(func(_ context.Context, x subscription.Event) error {
		if x.AggregateID == "b1" && x.Sequence == 2 {
			attempts++
			return fmt.Errorf("bulb b1 is cursed (attempt %d)", x.Attempt)
		}
		rec.record(x)
		return nil
	})
	subscription.On(&h, "broken_0", func(context.Context, subscription.Event, created) error {
		t.Error("the handler ran with a payload that does not decode")
		return nil
	})
	seqs := e.publish(ev("b1", 1, "created", ""), ev("b1", 2, "created", ""), ev("b2", 1, "created", ""),
		ev("b1", 3, "created", ""), ev("b2", 2, "broken", `{"wattage":"sixty"}`), ev("b2", 3, "created", ""))
	cfg := e.config("poison")
	cfg.MaxAttempts = 3
	s := e.subscribe(cfg, &h)
	testsupport.Eventually(t, 5*time.Second, "the other events", func() bool { return rec.count() >= 4 })
	settle(t, e, s)
	wantKeys(t, "handled", rec.keys(), "b1#1", "b2#1", "b1#3", "b2#3")
	if attempts != 3 {
		t.Errorf("%d attempts on the poison event, want 3", attempts)
	}
	if st := s.Stats(); st.DeadLettered != 2 || st.Retries != 2 || st.GapsFilled+st.GapsSkipped != 0 {
		t.Errorf("stats %+v: want 2 dead letters, 2 retries, no gap", st)
	}

	dlq, err := e.js.Stream(context.Background(), subscription.DeadLetterStreamName(e.prefix))
	if err != nil {
		t.Fatal(err)
	}
	m, err := dlq.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		api.HeaderDeadError:     "bulb b1 is cursed (attempt 3)",
		api.HeaderDeadAttempts:  "3",
		api.HeaderDeadConsumer:  "poison",
		api.HeaderDeadSubject:   "concursus.events.lightbulb.created_0." + api.AggregateToken(bulb, "b1"),
		api.HeaderDeadStreamSeq: fmt.Sprint(seqs[1]),
		api.HeaderAggregateID:   "b1",
		api.HeaderSequence:      "2",
		api.HeaderEventID:       "b1-2",
	}
	for k, v := range want {
		if got := m.Header.Get(k); got != v {
			t.Errorf("dead letter header %s = %q, want %q", k, got, v)
		}
	}
	if m.Subject != api.DeadLetterSubject(e.prefix, "poison", bulb, model.VersionedName{Name: "created"}) {
		t.Errorf("dead letter subject %s", m.Subject)
	}

	letters, err := subscription.ListDeadLetters(context.Background(), e.nc, e.prefix, "poison")
	if err != nil || len(letters) != 2 {
		t.Fatalf("ListDeadLetters: %+v, %v", letters, err)
	}
	bad := letters[1]
	if bad.Attempts != 1 || bad.Event == nil || bad.Event.AggregateID != "b2" || bad.StreamSeq != seqs[4] {
		t.Errorf("the undecodable payload's dead letter: %+v", bad)
	}
	if want := "does not decode"; !strings.Contains(bad.Error, want) {
		t.Errorf("dead letter error %q does not say %q", bad.Error, want)
	}
}

// Dead letters can be listed and replayed: the handler, fixed meanwhile,
// gets the replay, and the dead letter is gone. A replay that fails again
// is dead-lettered again.
func TestListAndReplayDeadLetters(t *testing.T) {
	e := newEnv(t)
	var rec recorder
	var mu sync.Mutex
	broken := true
	var h subscription.Handlers
	h.CatchAll(func(_ context.Context, x subscription.Event) error {
		mu.Lock()
		defer mu.Unlock()
		if broken && x.Sequence == 2 {
			return errors.New("database down")
		}
		rec.record(x)
		return nil
	})
	seqs := e.publish(history("b1", 3, "created")...)
	cfg := e.config("replayed")
	cfg.MaxAttempts = 2
	s := e.subscribe(cfg, &h)
	testsupport.Eventually(t, 5*time.Second, "the dead letter", func() bool { return s.Stats().DeadLettered == 1 })

	letters, err := subscription.ListDeadLetters(context.Background(), e.nc, e.prefix, "replayed")
	if err != nil || len(letters) != 1 {
		t.Fatalf("ListDeadLetters: %+v, %v", letters, err)
	}
	d := letters[0]
	if d.Seq == 0 || d.Consumer != "replayed" || d.Error != "database down" || d.Attempts != 2 || d.StreamSeq != seqs[1] ||
		d.Subject != api.EventSubject(e.prefix, bulb, model.VersionedName{Name: "created"}, "b1") || d.Event == nil || d.Event.EventID != "b1-2" || d.Time.IsZero() {
		t.Errorf("dead letter %+v", d)
	}
	if other, err := subscription.ListDeadLetters(context.Background(), e.nc, e.prefix, "someone-else"); err != nil || len(other) != 0 {
		t.Errorf("another consumer's dead letters: %+v, %v", other, err)
	}
	if _, err := subscription.ReplayDeadLetters(context.Background(), e.nc, e.prefix, "replayed", d.Seq+100); !errors.Is(err, subscription.ErrDeadLetterNotFound) {
		t.Errorf("replaying an unknown sequence: %v", err)
	}

	// Replayed while still broken: dead-lettered again.
	if n, err := subscription.ReplayDeadLetters(context.Background(), e.nc, e.prefix, "replayed", d.Seq); n != 1 || err != nil {
		t.Fatalf("ReplayDeadLetters: %d, %v", n, err)
	}
	testsupport.Eventually(t, 5*time.Second, "the second dead letter", func() bool { return s.Stats().DeadLettered == 2 })
	letters, err = subscription.ListDeadLetters(context.Background(), e.nc, e.prefix, "replayed")
	if err != nil || len(letters) != 1 || letters[0].Seq == d.Seq || letters[0].StreamSeq != seqs[1] || letters[0].Attempts != 2 {
		t.Fatalf("after a failed replay: %+v, %v", letters, err)
	}

	mu.Lock()
	broken = false
	mu.Unlock()
	if n, err := subscription.ReplayDeadLetters(context.Background(), e.nc, e.prefix, "replayed"); n != 1 || err != nil {
		t.Fatalf("ReplayDeadLetters (all): %d, %v", n, err)
	}
	testsupport.Eventually(t, 5*time.Second, "the replay handled", func() bool { return rec.count() == 3 })
	got := rec.events()[2]
	if got.Source != subscription.FromReplay || got.Sequence != 2 || got.StreamSeq != seqs[1] || got.Attempt != 1 {
		t.Errorf("replayed event %+v", got)
	}
	if letters, err := subscription.ListDeadLetters(context.Background(), e.nc, e.prefix, "replayed"); err != nil || len(letters) != 0 {
		t.Errorf("dead letters after the replay: %+v, %v", letters, err)
	}
	// The handled replays are deleted: the dead-letter stream is empty.
	testsupport.Eventually(t, 5*time.Second, "an empty dead-letter stream", func() bool {
		st, err := e.js.Stream(context.Background(), subscription.DeadLetterStreamName(e.prefix))
		if err != nil {
			return false
		}
		info, err := st.Info(context.Background())
		return err == nil && info.State.Msgs == 0
	})
	if st := s.Stats(); st.Replayed != 2 || st.Handled != 3 {
		t.Errorf("stats %+v", st)
	}
}

// A message on an events subject that is not an event goes to the dead
// letters unhandled.
func TestMalformedMessagesAreDeadLettered(t *testing.T) {
	e := newEnv(t)
	if _, err := e.js.Publish(context.Background(), "concursus.events.lightbulb.created_0.0123456789abcdef", []byte("not json")); err != nil {
		t.Fatal(err)
	}
	e.publish(ev("b1", 1, "created", ""))
	var rec recorder
	s := e.subscribe(e.config("strict"), rec.catchAll())
	testsupport.Eventually(t, 5*time.Second, "b1#1", func() bool { return rec.count() == 1 })
	if st := s.Stats(); st.Malformed != 1 || st.DeadLettered != 1 {
		t.Errorf("stats %+v", st)
	}
	letters, err := subscription.ListDeadLetters(context.Background(), e.nc, e.prefix, "strict")
	if err != nil || len(letters) != 1 || letters[0].Event != nil || string(letters[0].Body) != "not json" || letters[0].Attempts != 0 {
		t.Fatalf("dead letters %+v, %v", letters, err)
	}
	// Filed under the name its subject gave.
	dlq, err := e.js.Stream(context.Background(), subscription.DeadLetterStreamName(e.prefix))
	if err != nil {
		t.Fatal(err)
	}
	m, err := dlq.GetMsg(context.Background(), letters[0].Seq)
	if err != nil {
		t.Fatal(err)
	}
	if want := api.DeadLetterSubject(e.prefix, "strict", bulb, model.VersionedName{Name: "created"}); m.Subject != want {
		t.Errorf("dead letter on %s, want %s", m.Subject, want)
	}
}

// Subscribe needs the events stream, and JetStream.
func TestSubscribeNeedsTheStream(t *testing.T) {
	e := newEnv(t)
	var rec recorder
	cfg := e.config("x")
	cfg.Prefix = "other"
	if _, err := subscription.Subscribe(context.Background(), cfg, rec.catchAll()); !errors.Is(err, subscription.ErrNoStream) {
		t.Errorf("Subscribe without the stream: %v, want ErrNoStream", err)
	}
	if _, err := subscription.ListDeadLetters(context.Background(), e.nc, "other", "x"); !errors.Is(err, subscription.ErrNoDeadLetterStream) {
		t.Errorf("ListDeadLetters without the stream: %v, want ErrNoDeadLetterStream", err)
	}
}

// A subscription whose connection closes stops by itself and says why.
func TestConnectionLossStopsTheSubscription(t *testing.T) {
	e := newEnv(t)
	nc := testsupport.Connect(t, e.srv.ClientURL())
	var rec recorder
	cfg := e.config("lost")
	cfg.Conn = nc
	s, err := subscription.Subscribe(context.Background(), cfg, rec.catchAll())
	if err != nil {
		t.Fatal(err)
	}
	nc.Close()
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the subscription did not stop")
	}
	if s.Err() == nil {
		t.Error("Err is nil after the connection closed")
	}
	s.Stop() // harmless
}

// A subscription whose process dies with events in hand (connection gone,
// nothing more acknowledged): subscribing again receives them at once and
// in stream order, not after AckWait behind the newer events.
func TestCrashedSubscriptionResumesInOrder(t *testing.T) {
	e := newEnv(t)
	events := twoBulbs(4)
	e.publish(events[:6]...)
	nc := testsupport.Connect(t, e.srv.ClientURL())
	var first recorder
	blocked, release := make(chan struct{}), make(chan struct{})
	var h subscription.Handlers
	h.CatchAll(func(_ context.Context, x subscription.Event) error {
		if first.count() == 2 {
			close(blocked)
			<-release
			return errors.New("the process is dead")
		}
		first.record(x)
		return nil
	})
	cfg := e.config("crash")
	cfg.Conn, cfg.MaxAckPending, cfg.AckWait = nc, 4, time.Minute
	s, err := subscription.Subscribe(context.Background(), cfg, &h)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { close(release); <-s.Done() }()
	<-blocked
	testsupport.Eventually(t, 5*time.Second, "the first two acknowledgements", func() bool { return e.consumerInfo("crash").AckFloor.Stream == 2 })
	nc.Close() // the crash: the events in hand stay unacknowledged
	// The server must have noticed: until then the dead connection's pull
	// requests still take new events, which come back only after AckWait
	// (seen once under load). A process that dies closes its socket, and
	// the server drops its requests at once.
	testsupport.Eventually(t, 10*time.Second, "the server to drop the crashed connection's pull requests", func() bool {
		return e.consumerInfo("crash").NumWaiting == 0
	})
	e.publish(events[6:]...)

	var second recorder
	cfg.Conn = e.nc
	s2 := e.subscribe(cfg, second.catchAll())
	testsupport.Eventually(t, 10*time.Second, "the 6 other events, well before AckWait", func() bool { return second.count() >= 6 })
	settle(t, e, s2)
	wantKeys(t, "after the crash", second.keys(), "b1#2", "b2#2", "b1#3", "b2#3", "b1#4", "b2#4")
}

// A connection whose acknowledgements were lost on the way (as when
// nats-server dies before it has stored them) and that then comes back:
// the ack floor would stay below the handled events until AckWait, and a
// Stop then a Subscribe would hand all of them over again. After the
// reconnect the subscription resets its consumer to the ack floor while it
// still knows what it handled: the events come again, are recognised as
// duplicates and acknowledged, and the next run starts after them.
func TestReconnectRecoversLostAcknowledgements(t *testing.T) {
	e := newEnv(t)
	proxy := testsupport.NewProxy(t, e.srv.Addr().String())
	nc := testsupport.Connect(t, "nats://"+proxy.Addr(), nats.ReconnectWait(20*time.Millisecond), nats.MaxReconnects(-1))
	var first recorder
	cfg := e.config("lostacks")
	cfg.Conn, cfg.AckWait = nc, time.Minute
	s, err := subscription.Subscribe(context.Background(), cfg, first.catchAll())
	if err != nil {
		t.Fatal(err)
	}
	e.publish(ev("b1", 1, "created", ""), ev("b2", 1, "created", ""))
	testsupport.Eventually(t, 10*time.Second, "the first two events acknowledged", func() bool {
		return e.consumerInfo("lostacks").AckFloor.Stream == 2
	})

	proxy.Blackhole(true) // from here what the subscription sends is lost
	e.publish(ev("b1", 2, "switchedOn", ""), ev("b2", 2, "switchedOn", ""), ev("b3", 1, "created", ""))
	testsupport.Eventually(t, 10*time.Second, "the three events handled", func() bool { return first.count() == 5 })
	if floor := e.consumerInfo("lostacks").AckFloor.Stream; floor != 2 {
		t.Fatalf("ack floor %d while the acknowledgements are dropped, want 2", floor)
	}
	proxy.Cut() // the connection comes back through the proxy

	testsupport.Eventually(t, 10*time.Second, "the ack floor to reach the handled events after the reconnect, well before AckWait", func() bool {
		return e.consumerInfo("lostacks").AckFloor.Stream == 5
	})
	// The reset's reply may come after the events it brought back were
	// handled: it counts once the reply is in.
	testsupport.Eventually(t, 10*time.Second, "the reset to be counted", func() bool { return s.Stats().Resyncs > 0 })
	s.Stop()
	st := s.Stats()
	if st.Resyncs == 0 || st.Duplicates != 3 || st.Handled != 5 {
		t.Errorf("stats %+v: want at least one resync, the 3 events again as duplicates, 5 handled", st)
	}
	wantKeys(t, "the first run", first.keys(), "b1#1", "b2#1", "b1#2", "b2#2", "b3#1")

	e.publish(ev("b1", 3, "switchedOff", ""))
	var second recorder
	cfg.Conn = e.nc
	s2 := e.subscribe(cfg, second.catchAll())
	testsupport.Eventually(t, 10*time.Second, "the new event", func() bool { return second.count() >= 1 })
	settle(t, e, s2)
	wantKeys(t, "after the restart", second.keys(), "b1#3")
}

// Delete stops a subscription and removes its consumers: subscribing
// again under the name starts afresh at Start.
func TestDeleteStartsTheNameAfresh(t *testing.T) {
	e := newEnv(t)
	e.publish(history("b1", 2, "created")...)
	var rec recorder
	cfg := e.config("rebuilt")
	s := e.subscribe(cfg, rec.catchAll())
	testsupport.Eventually(t, 5*time.Second, "2 events", func() bool { return rec.count() == 2 })
	if err := s.Delete(context.Background()); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := e.js.Consumer(context.Background(), "CONCURSUS_EVENTS", "rebuilt"); err == nil {
		t.Error("the events consumer is still there")
	}
	if _, err := e.js.Consumer(context.Background(), subscription.DeadLetterStreamName(e.prefix), "rebuilt-replay"); err == nil {
		t.Error("the replay consumer is still there")
	}
	if err := s.Delete(context.Background()); err != nil {
		t.Errorf("a second Delete: %v", err)
	}
	var again recorder
	e.subscribe(cfg, again.catchAll())
	testsupport.Eventually(t, 5*time.Second, "the 2 events from the beginning again", func() bool { return again.count() == 2 })

	// A group member leaves the shared replay consumer.
	cfg.Name, cfg.Group = "grouped", subscription.Group{Members: 2, Member: 0}
	m := e.subscribe(cfg, (&recorder{}).catchAll())
	if err := m.Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.Consumer(context.Background(), subscription.DeadLetterStreamName(e.prefix), "grouped-replay"); err != nil {
		t.Errorf("a member deleted the group's replay consumer: %v", err)
	}
}
