package projection_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/eventbus"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/examples/lightbulb/lightbulbtest"
	"github.com/concursus-go/concursus/examples/lightbulb/projection"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
)

// r0 is the instant the reorder tests' stamps count from.
var r0 = time.Date(2026, 6, 1, 20, 0, 0, 0, time.UTC)

// fact builds event seq of bulb id, stamped at r0+at.
var fact = lightbulbtest.NewFacts(r0).Fact

// histories are bulbs whose log order differs from their event time:
// facts that arrived at their owner late.
func histories() map[string][]model.Event {
	const m, s = time.Minute, time.Second
	return map[string][]model.Event{
		// In order: on 2m..5m, on again since 7m.
		"b1": {
			fact("b1", 1, "created", 0, `{"wattage":60}`),
			fact("b1", 2, "screwedIn", m, `{"location":"hall"}`),
			fact("b1", 3, "switchedOn", 2*m, ""),
			fact("b1", 4, "switchedOff", 5*m, ""),
			fact("b1", 5, "switchedOn", 7*m, ""),
		},
		// A switchedOff stamped between two switchedOn, appended last: in
		// log order its span is negative (4m - 6m); in event time it
		// closes 1m..4m, and the bulb is on since 6m.
		"b2": {
			fact("b2", 1, "created", 0, `{"wattage":40}`),
			fact("b2", 2, "screwedIn", 10*s, `{"location":"hall"}`),
			fact("b2", 3, "switchedOn", m, ""),
			fact("b2", 4, "switchedOn", 6*m, ""),
			fact("b2", 5, "switchedOff", 4*m, ""),
		},
		// Unscrewed (stamped 3m) reported after it blew (5m): on 2m..3m,
		// and no longer anywhere.
		"b3": {
			fact("b3", 1, "created", 0, `{"wattage":100}`),
			fact("b3", 2, "screwedIn", m, `{"location":"garage"}`),
			fact("b3", 3, "switchedOn", 2*m, ""),
			fact("b3", 4, "blown", 5*m, ""),
			fact("b3", 5, "unscrewed", 3*m, ""),
		},
		// Created reported after the bulb was screwed in and switched on.
		"b4": {
			fact("b4", 1, "screwedIn", 2*m, `{"location":"porch"}`),
			fact("b4", 2, "switchedOn", 3*m, ""),
			fact("b4", 3, "created", m, `{"wattage":25}`),
		},
		// Moved: the move to the kitchen reported before the unscrewing
		// from the hall; in log order it would end up nowhere.
		"b5": {
			fact("b5", 1, "created", 0, `{"wattage":60}`),
			fact("b5", 2, "screwedIn", m, `{"location":"hall"}`),
			fact("b5", 3, "screwedIn", 3*m, `{"location":"kitchen"}`),
			fact("b5", 4, "unscrewed", 2*m, ""),
			fact("b5", 5, "switchedOn", 4*m, ""),
		},
	}
}

// allEvents lists the histories in log order, bulb after bulb.
func allEvents(h map[string][]model.Event) []model.Event {
	var out []model.Event
	for _, id := range ids(h) {
		out = append(out, h[id]...)
	}
	return out
}

// snapshot is what the projection answers, as comparable text.
type snapshot struct {
	Locations []projection.LocationCount
	At        map[string][]projection.Bulb
	Usage     map[string]lightbulb.Usage
}

func (s snapshot) String() string {
	b, _ := json.MarshalIndent(s, "", " ")
	return string(b)
}

// indexSnapshot reads an index.
func indexSnapshot(x *projection.Index, ids []string) snapshot {
	s := snapshot{Locations: x.Locations(), At: map[string][]projection.Bulb{}, Usage: map[string]lightbulb.Usage{}}
	for _, l := range s.Locations {
		s.At[l.Location] = x.At(l.Location)
	}
	for _, id := range ids {
		if u, ok := x.Usage(id); ok {
			s.Usage[id] = u
		}
	}
	return s
}

// index takes events into a new index, in the order given.
func index(t *testing.T, events []model.Event) *projection.Index {
	t.Helper()
	x := projection.NewIndex()
	for _, e := range events {
		if err := x.Take(&e); err != nil {
			t.Fatal(err)
		}
	}
	return x
}

// reference is what the domain's own views say: each history folded by
// the model (in event-time order, whatever order it is given in).
func reference(t *testing.T, h map[string][]model.Event) snapshot {
	t.Helper()
	l := lightbulb.Define()
	s := snapshot{At: map[string][]projection.Bulb{}, Usage: map[string]lightbulb.Usage{}}
	counts := map[string]*projection.LocationCount{}
	for id, events := range h {
		state, err := l.Type.State().Replay(events)
		if err != nil {
			t.Fatalf("%s: state: %v", id, err)
		}
		usage, err := l.Usage.Replay(events)
		if err != nil {
			t.Fatalf("%s: usage: %v", id, err)
		}
		s.Usage[id] = usage
		if state.Blown || state.Location == "" {
			continue
		}
		s.At[state.Location] = append(s.At[state.Location], projection.Bulb{ID: id, Wattage: state.Wattage, On: state.On})
		c := counts[state.Location]
		if c == nil {
			c = &projection.LocationCount{Location: state.Location}
			counts[state.Location] = c
		}
		c.Bulbs++
		if state.On {
			c.On++
		}
	}
	for loc, c := range counts {
		s.Locations = append(s.Locations, *c)
		slices.SortFunc(s.At[loc], func(a, b projection.Bulb) int { return strings.Compare(a.ID, b.ID) })
	}
	slices.SortFunc(s.Locations, func(a, b projection.LocationCount) int { return strings.Compare(a.Location, b.Location) })
	return s
}

// ids lists the bulbs of the histories, sorted.
func ids(h map[string][]model.Event) []string {
	var out []string
	for id := range h {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// TestIndexDoesNotDependOnArrivalOrder: the index of the same events
// taken in any order (log order, shuffled, with repeats) is the domain's
// own fold in event time, and a late switchedOff counts where it belongs.
func TestIndexDoesNotDependOnArrivalOrder(t *testing.T) {
	h := histories()
	want := reference(t, h)

	// The reference itself is the event-time answer, not the log-order one.
	const m = time.Minute
	since6 := r0.Add(6 * m)
	if u := want.Usage["b2"]; u.OnMillis != (3*m).Milliseconds() || u.Switches != 2 || u.OnSince == nil || !u.OnSince.Equal(since6) {
		t.Fatalf("reference usage of b2 = %+v, want 3m, 2 switches, on since %v", u, since6)
	}
	if u := want.Usage["b3"]; u.OnMillis != m.Milliseconds() || u.OnSince != nil {
		t.Fatalf("reference usage of b3 = %+v, want 1m", u)
	}

	inOrder := index(t, allEvents(h))
	if got := indexSnapshot(inOrder, ids(h)); got.String() != want.String() {
		t.Fatalf("in log order:\n%s\nwant\n%s", got, want)
	}

	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 2))
	for round := 0; round < 200; round++ {
		events := allEvents(h)
		// Some events twice, as a bus delivers them at least once.
		for i := 0; i < 3; i++ {
			events = append(events, events[rng.IntN(len(events))])
		}
		rng.Shuffle(len(events), func(i, j int) { events[i], events[j] = events[j], events[i] })
		x := index(t, events)
		if got := indexSnapshot(x, ids(h)); got.String() != want.String() {
			t.Fatalf("round %d (seed %d):\n%s\nwant\n%s", round, seed, got, want)
		}
		if n := x.Events(); n != int64(len(allEvents(h))) {
			t.Fatalf("round %d: %d events taken in, want %d (repeats count once)", round, n, len(allEvents(h)))
		}
	}
}

// TestProjectionSameWhateverTheArrivalOrder: the running projection,
// fed by a real JetStream stream in event-time order, answers the same
// queries whether the stream holds the events in log order, shuffled
// (gaps filled from history, reordered within the settle window), or with
// the late facts published only after the rest was handed over (so they
// come marked late, and the index refolds their bulbs).
func TestProjectionSameWhateverTheArrivalOrder(t *testing.T) {
	h := histories()
	want := reference(t, h)
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 3))

	inOrder := allEvents(h)
	shuffled := slices.Clone(inOrder)
	rng.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	// The facts stamped before events of their bulb recorded earlier (and
	// b5's last event, which follows one of them in the log).
	lateKeys := map[string]bool{"b2-5": true, "b3-5": true, "b4-3": true, "b5-4": true, "b5-5": true}
	var early, late []model.Event
	for _, e := range inOrder {
		if lateKeys[e.EventID] {
			late = append(late, e)
		} else {
			early = append(early, e)
		}
	}
	for _, run := range []struct {
		name   string
		events []model.Event
		later  []model.Event // published once the projection caught up
	}{{"log order", inOrder, nil}, {"shuffled", shuffled, nil}, {"late after the window", early, late}} {
		t.Run(run.name, func(t *testing.T) {
			nc := startStream(t, inOrder)
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			publish(t, js, run.events)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			p := startProjection(t, ctx, nc, 100*time.Millisecond)
			defer p.Stop()
			caughtUp(t, ctx, p)
			if len(run.later) > 0 {
				publish(t, js, run.later)
				caughtUp(t, ctx, p)
				if st := p.Subscription().Stats(); st.Late != 4 || p.Index().Late() != 4 {
					t.Errorf("%d events handed over late, %d refolds; want 4 and 4", st.Late, p.Index().Late())
				}
			}
			got := snapshot{At: map[string][]projection.Bulb{}, Usage: map[string]lightbulb.Usage{}}
			got.Locations = ask(t, nc, projection.QuerySubject(api.DefaultPrefix), projection.Query{}).Locations
			for _, l := range got.Locations {
				got.At[l.Location] = ask(t, nc, projection.QuerySubject(api.DefaultPrefix), projection.Query{Location: l.Location}).Bulbs
			}
			for _, id := range ids(h) {
				if u := ask(t, nc, projection.QuerySubject(api.DefaultPrefix), projection.Query{Usage: id}).Usage; u != nil {
					got.Usage[id] = *u
				}
			}
			// Logged before the comparison, so that a failure shows how
			// the events came in.
			st := p.Subscription().Stats()
			t.Logf("index: %d events, %d refolded; subscription: %+v", p.Index().Events(), p.Index().Late(), st)
			if got.String() != want.String() {
				t.Fatalf("seed %d:\n%s\nwant\n%s", seed, got, want)
			}
		})
	}
}

// publish puts events on the events stream, in the order given.
func publish(t *testing.T, js jetstream.JetStream, events []model.Event) {
	t.Helper()
	for i := range events {
		msg, err := api.EventMessage(api.DefaultPrefix, &events[i])
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishMsg(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
}

// startStream runs an embedded JetStream server with the events stream,
// and a history API answering from log (as the nodes would); it returns a
// connection.
func startStream(t *testing.T, log []model.Event) *nats.Conn {
	t.Helper()
	nc := testsupport.Connect(t, testsupport.NATS(t, testsupport.JetStream()).ClientURL())
	if _, err := eventbus.EnsureStream(context.Background(), nc, api.DefaultPrefix, eventbus.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	sub, err := nc.Subscribe(api.HistorySubject(api.DefaultPrefix, lightbulb.TypeName), func(m *nats.Msg) {
		mu.Lock()
		defer mu.Unlock()
		var req api.HistoryRequest
		reply := api.HistoryReply{OK: true, AggregateType: lightbulb.TypeName}
		if err := json.Unmarshal(m.Data, &req); err != nil {
			reply = api.HistoryReply{Error: &api.Error{Code: api.CodeInvalidRequest, Message: err.Error()}}
		} else {
			reply.AggregateID = req.AggregateID
			for _, e := range log {
				if e.AggregateID == req.AggregateID && e.Sequence >= req.From && (req.To == 0 || e.Sequence <= req.To) {
					reply.Events = append(reply.Events, e)
				}
			}
			slices.SortFunc(reply.Events, func(a, b model.Event) int { return int(a.Sequence) - int(b.Sequence) })
		}
		b, err := json.Marshal(reply)
		if err != nil {
			t.Error(err)
			return
		}
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return nc
}
