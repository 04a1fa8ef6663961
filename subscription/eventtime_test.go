package subscription_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/subscription"
)

// fakeClock is the shared fake clock as a subscription.Clock: the settle
// window passes when a test says so, however fast the machine.
type fakeClock struct{ *testsupport.Clock }

func newFakeClock() fakeClock {
	return fakeClock{testsupport.NewClock(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))}
}

func (c fakeClock) NewTimer(d time.Duration) (subscription.Timer, <-chan time.Time) {
	return c.Clock.NewTimer(d)
}

// evAt builds event seq of id stamped stamp seconds after t0.
func evAt(id string, seq uint64, stamp int) model.Event {
	e := ev(id, seq, "switchedOn", "")
	e.Timestamp = t0.Add(time.Duration(stamp) * time.Second)
	return e
}

// eventTimeConfig is the tests' configuration in event-time order, with
// a fake clock.
func (e *env) eventTimeConfig(name string, clock fakeClock) subscription.Config {
	cfg := e.config(name)
	cfg.Order = subscription.EventTime
	cfg.SettleWindow = 2 * time.Second
	cfg.Clock = clock
	return cfg
}

// waitStats polls the subscription's stats until cond holds.
func waitStats(t *testing.T, s *subscription.Subscription, what string, cond func(subscription.Stats) bool) {
	t.Helper()
	testsupport.Eventually(t, 20*time.Second, what, func() bool { return cond(s.Stats()) })
}

// timeKeys lists, per aggregate, the keys received, in the order received.
func timeKeys(events []subscription.Event) map[string][]model.TimeKey {
	out := map[string][]model.TimeKey{}
	for _, e := range events {
		out[e.AggregateID] = append(out[e.AggregateID], e.TimeKey())
	}
	return out
}

// TestEventTimeOrdersEachAggregateWithinTheWindow: events of several
// aggregates, stamped out of sequence order and published shuffled (so
// that gaps are filled from history and their stream copies are
// duplicates), are held unacknowledged until the window passes, then come
// out per aggregate in event-time order, each once, none late; then every
// message is acknowledged.
func TestEventTimeOrdersEachAggregateWithinTheWindow(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	e := newEnv(t)
	var all []model.Event
	for _, id := range []string{"a", "b", "c"} {
		stamps := rng.Perm(6)
		for i, st := range stamps {
			all = append(all, evAt(id, uint64(i+1), st))
		}
	}
	e.serveHistory(100, all...)
	shuffled := slices.Clone(all)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	e.publish(shuffled...)

	clock := newFakeClock()
	var rec recorder
	s := e.subscribe(e.eventTimeConfig("settle", clock), rec.catchAll())
	waitStats(t, s, "every event held and every message delivered", func(st subscription.Stats) bool {
		return st.Held == uint64(len(all)) && st.Delivered == uint64(len(all))
	})
	if n := rec.count(); n != 0 {
		t.Fatalf("%d events handed over before the window passed", n)
	}
	if info := e.consumerInfo("settle"); info.NumAckPending != len(all) || info.AckFloor.Stream != 0 {
		t.Fatalf("held events: %d unacknowledged, ack floor %d; want %d and 0", info.NumAckPending, info.AckFloor.Stream, len(all))
	}

	// Nothing but the clock can release the held events now (every
	// message is in hand, and AckWait is far off), and the clock wakes
	// the subscription only by firing a timer: a move that fires none
	// changes nothing.
	fired := clock.Fired()
	clock.Advance(2*time.Second - time.Millisecond)
	if n := rec.count(); n != 0 || clock.Fired() != fired {
		t.Fatalf("a millisecond before the window passed: %d events handed over, %d timers fired", n, clock.Fired()-fired)
	}
	clock.Advance(time.Millisecond)
	testsupport.Eventually(t, 20*time.Second, "every event handed over", func() bool { return rec.count() == len(all) })
	for id, keys := range timeKeys(rec.events()) {
		if len(keys) != 6 || !slices.IsSortedFunc(keys, model.TimeKey.Compare) {
			t.Errorf("%s: %d events, in event-time order %v", id, len(keys), slices.IsSortedFunc(keys, model.TimeKey.Compare))
		}
	}
	for _, x := range rec.events() {
		if x.Late {
			t.Errorf("%s#%d marked late", x.AggregateID, x.Sequence)
		}
	}
	testsupport.Eventually(t, 20*time.Second, "every message acknowledged", func() bool {
		info := e.consumerInfo("settle")
		return info.NumAckPending == 0 && info.AckFloor.Stream == uint64(len(all))
	})
	st := s.Stats()
	if st.Held != 0 || st.Released != uint64(len(all)) || st.Late != 0 || st.Handled != uint64(len(all)) || st.HeldOverflow != 0 {
		t.Errorf("stats %+v", st)
	}
	t.Logf("gaps filled %d (%d events), duplicates %d", st.GapsFilled, st.GapEvents, st.Duplicates)
}

// TestEventTimeLateEventIsMarkedNotDropped: an event stamped before one
// already handed over comes at once, marked late; one stamped before a
// held event goes before it, unmarked.
func TestEventTimeLateEventIsMarkedNotDropped(t *testing.T) {
	e := newEnv(t)
	clock := newFakeClock()
	var rec recorder
	s := e.subscribe(e.eventTimeConfig("late", clock), rec.catchAll())

	e.publish(evAt("a", 1, 10), evAt("a", 2, 20))
	waitStats(t, s, "two held", func(st subscription.Stats) bool { return st.Held == 2 })
	clock.Advance(2 * time.Second)
	testsupport.Eventually(t, 20*time.Second, "two handed over", func() bool { return rec.count() == 2 })

	// Stamped between the two: its window cannot help, it comes at once.
	e.publishLate(evAt("a", 3, 15))
	// The same without the node's mark (a re-publication): late all the same.
	e.publish(evAt("a", 4, 5))
	testsupport.Eventually(t, 20*time.Second, "the late events handed over without the clock moving", func() bool { return rec.count() == 4 })

	// Within the window: reordered, not late.
	e.publish(evAt("a", 5, 30), evAt("a", 6, 25))
	waitStats(t, s, "two held", func(st subscription.Stats) bool { return st.Held == 2 })
	clock.Advance(2 * time.Second)
	testsupport.Eventually(t, 20*time.Second, "all handed over", func() bool { return rec.count() == 6 })

	var got []string
	for _, x := range rec.events() {
		k := key(x.AggregateID, x.Sequence)
		if x.Late {
			k += "(late)"
		}
		got = append(got, k)
	}
	wantKeys(t, "handed over", got, "a#1", "a#2", "a#3(late)", "a#4(late)", "a#6", "a#5")
	if st := s.Stats(); st.Late != 2 || st.Released != 6 || st.Held != 0 {
		t.Errorf("stats %+v", st)
	}
	testsupport.Eventually(t, 20*time.Second, "every message acknowledged", func() bool {
		info := e.consumerInfo("late")
		return info.NumAckPending == 0 && info.AckFloor.Stream == 6
	})
}

// TestEventTimeDuplicatesAndRedeliveriesOfHeldEvents: a held event whose
// message JetStream delivers again (AckWait passed; the fake clock sends
// no keep-alive) or that the stream stored twice is handed over once, and
// none of its messages is acknowledged before it is handled.
func TestEventTimeDuplicatesAndRedeliveriesOfHeldEvents(t *testing.T) {
	e := newEnv(t)
	clock := newFakeClock()
	cfg := e.eventTimeConfig("redeliver", clock)
	cfg.SettleWindow = 100 * time.Millisecond
	cfg.AckWait = 300 * time.Millisecond // real time, on the server
	var rec recorder
	s := e.subscribe(cfg, rec.catchAll())

	events := []model.Event{evAt("a", 1, 3), evAt("a", 2, 2), evAt("a", 3, 1)}
	e.publish(events...)
	e.republish(events[1])
	waitStats(t, s, "held messages delivered again", func(st subscription.Stats) bool {
		return st.Held == 3 && st.Delivered >= 4+3
	})
	if n := rec.count(); n != 0 {
		t.Fatalf("%d handed over before the window", n)
	}
	if info := e.consumerInfo("redeliver"); info.AckFloor.Stream != 0 || info.NumAckPending != 4 {
		t.Fatalf("ack floor %d, %d pending: a held event's message was acknowledged", info.AckFloor.Stream, info.NumAckPending)
	}
	clock.Advance(100 * time.Millisecond)
	testsupport.Eventually(t, 20*time.Second, "every message acknowledged", func() bool {
		info := e.consumerInfo("redeliver")
		return info.NumAckPending == 0 && info.AckFloor.Stream == 4
	})
	settle(t, e, s)
	wantKeys(t, "handed over", rec.keys(), "a#3", "a#2", "a#1")
}

// TestEventTimeOverflowReleasesTheOldestEarly: past MaxHeld the oldest
// held event is handed over before its window, counted.
func TestEventTimeOverflowReleasesTheOldestEarly(t *testing.T) {
	e := newEnv(t)
	clock := newFakeClock()
	cfg := e.eventTimeConfig("overflow", clock)
	cfg.MaxHeld = 2
	var rec recorder
	s := e.subscribe(cfg, rec.catchAll())
	e.publish(evAt("a", 1, 1), evAt("a", 2, 2), evAt("a", 3, 3), evAt("a", 4, 4))
	waitStats(t, s, "two released early, two held", func(st subscription.Stats) bool {
		return st.Delivered == 4 && st.Held == 2 && st.HeldOverflow == 2
	})
	wantKeys(t, "before the window", rec.keys(), "a#1", "a#2")
	clock.Advance(2 * time.Second)
	testsupport.Eventually(t, 20*time.Second, "all handed over", func() bool { return rec.count() == 4 })
	wantKeys(t, "after the window", rec.keys(), "a#1", "a#2", "a#3", "a#4")
}

// TestEventTimeHeldEventsSurviveARestart: events held when the
// subscription stops were not acknowledged; the next Subscribe receives
// them again and hands them over in event-time order. The resumed
// subscription takes the node's late mark for an aggregate it has handed
// nothing of yet.
func TestEventTimeHeldEventsSurviveARestart(t *testing.T) {
	e := newEnv(t)
	clock := newFakeClock()
	cfg := e.eventTimeConfig("restart", clock)
	var first recorder
	s, err := subscription.Subscribe(context.Background(), cfg, first.catchAll())
	if err != nil {
		t.Fatal(err)
	}
	e.publish(evAt("a", 1, 1), evAt("a", 2, 9))
	waitStats(t, s, "two held", func(st subscription.Stats) bool { return st.Held == 2 })
	clock.Advance(2 * time.Second)
	testsupport.Eventually(t, 20*time.Second, "two handed over", func() bool { return first.count() == 2 })
	e.publish(evAt("a", 3, 12), evAt("a", 4, 11))
	waitStats(t, s, "two more held", func(st subscription.Stats) bool { return st.Held == 2 })
	s.Stop()
	if first.count() != 2 {
		t.Fatalf("held events handed over at Stop: %v", first.keys())
	}

	// Stamped before everything, marked late by the node: the second run
	// does not know what the first handed over, so it trusts the mark.
	e.publishLate(evAt("a", 5, 0))

	var second recorder
	s2 := e.subscribe(cfg, second.catchAll())
	waitStats(t, s2, "the unacknowledged events held again", func(st subscription.Stats) bool { return st.Held == 3 })
	clock.Advance(2 * time.Second)
	testsupport.Eventually(t, 20*time.Second, "handed over", func() bool { return second.count() == 3 })
	var got []string
	for _, x := range second.events() {
		got = append(got, fmt.Sprintf("%s late=%v", key(x.AggregateID, x.Sequence), x.Late))
	}
	wantKeys(t, "second run", got, "a#5 late=true", "a#4 late=false", "a#3 late=false")
}

// TestLogOrderIgnoresEventTime: the default order hands events over in
// sequence order at once, whatever their stamps; Late is the node's mark.
func TestLogOrderIgnoresEventTime(t *testing.T) {
	e := newEnv(t)
	var rec recorder
	s := e.subscribe(e.config("logorder"), rec.catchAll())
	e.publish(evAt("a", 1, 5), evAt("a", 2, 9))
	e.publishLate(evAt("a", 3, 1))
	e.publish(evAt("a", 4, 0)) // late too, but not marked
	testsupport.Eventually(t, 20*time.Second, "four handed over", func() bool { return rec.count() == 4 })
	var got []string
	for _, x := range rec.events() {
		got = append(got, fmt.Sprintf("%s late=%v", key(x.AggregateID, x.Sequence), x.Late))
	}
	wantKeys(t, "log order", got, "a#1 late=false", "a#2 late=false", "a#3 late=true", "a#4 late=false")
	if st := s.Stats(); st.Held != 0 || st.Released != 0 || st.Late != 0 {
		t.Errorf("stats %+v", st)
	}
}

// publishLate publishes an event as its owner does when it knows the
// event is late (api.HeaderLate).
func (e *env) publishLate(x model.Event) {
	e.t.Helper()
	x.Late = true
	m, err := api.EventMessage(e.prefix, &x)
	if err != nil {
		e.t.Fatal(err)
	}
	if m.Header.Get(api.HeaderLate) != "true" {
		e.t.Fatal("api.EventMessage did not set the late header of a late event")
	}
	if _, err := e.js.PublishMsg(context.Background(), m); err != nil {
		e.t.Fatalf("publishing %s#%d: %v", x.AggregateID, x.Sequence, err)
	}
}
