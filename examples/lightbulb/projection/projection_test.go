package projection_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/eventbus"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/examples/lightbulb/projection"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
)

// startNode runs a lightbulb node with its events in a JetStream stream.
// With lateBy > 0 each batch of events reaches the bus that long after its
// command was answered (see lateBus).
func startNode(t *testing.T, lateBy time.Duration) *node.Node {
	t.Helper()
	reg, err := model.NewRegistry(lightbulb.Define().Type)
	if err != nil {
		t.Fatal(err)
	}
	cfg := node.Config{
		NodeID: "projection-test", DataDir: t.TempDir(), NATS: node.NATSConfig{EmbeddedPort: -1},
		Stream: &eventbus.StreamConfig{}, Logger: slog.New(slog.DiscardHandler),
	}
	if lateBy > 0 {
		cfg.TestHooks = &node.TestHooks{Publisher: func(p executor.Publisher) executor.Publisher {
			l := &lateBus{Publisher: p, by: lateBy, queue: make(chan lateBatch, 1024), done: make(chan struct{})}
			go l.run()
			// Registered before the node's Shutdown, so it runs after it:
			// the executor publishes nothing more by then.
			t.Cleanup(func() { close(l.queue); <-l.done })
			return l
		}}
	}
	n, err := node.New(context.Background(), cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	return n
}

// lateBus hands each batch of events to the node's publisher a fixed time
// after the executor did, in order: the commands are answered (their
// events durable in the log) well before their events reach the bus, as
// on a loaded machine.
type lateBus struct {
	executor.Publisher
	by    time.Duration
	queue chan lateBatch
	done  chan struct{}
}

type lateBatch struct {
	ticket executor.Ticket
	events []model.Event
	due    time.Time
}

func (l *lateBus) Publish(t executor.Ticket, events []model.Event) {
	l.queue <- lateBatch{ticket: t, events: slices.Clone(events), due: time.Now().Add(l.by)}
}

func (l *lateBus) run() {
	defer close(l.done)
	for b := range l.queue {
		<-time.After(time.Until(b.due))
		l.Publisher.Publish(b.ticket, b.events)
	}
}

// send sends a command that must be accepted and returns how many events
// it produced.
func send(t *testing.T, nc *nats.Conn, id, command, args string) int {
	t.Helper()
	body, _ := json.Marshal(api.Command{AggregateID: id, Command: command, Args: json.RawMessage(args)})
	m, err := nc.Request(api.CommandSubject(api.DefaultPrefix, lightbulb.TypeName), body, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var r api.Reply
	if err := json.Unmarshal(m.Data, &r); err != nil || !r.OK {
		t.Fatalf("%s %s: %s", command, id, m.Data)
	}
	return len(r.Events)
}

// onBus waits until the events stream holds want events. A node answers a
// command once its events are durable in the log and publishes them after
// that, so an event can reach the stream a moment after its command's
// reply: a projection that has caught up with the stream has not
// necessarily seen it yet.
func onBus(t *testing.T, nc *nats.Conn, want int) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Every 10ms: each look is a request to the server.
	testsupport.EventuallyEvery(t, 30*time.Second, 10*time.Millisecond, fmt.Sprintf("the events stream to hold %d events", want), func() error {
		st, err := js.Stream(ctx, eventbus.StreamName(api.DefaultPrefix))
		if err != nil {
			return err
		}
		if held := st.CachedInfo().State.Msgs; held < uint64(want) {
			return fmt.Errorf("it holds %d", held)
		}
		return nil
	})
}

func ask(t *testing.T, nc *nats.Conn, subject string, q any) projection.Reply {
	t.Helper()
	body, _ := json.Marshal(q)
	m, err := nc.Request(subject, body, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var r projection.Reply
	if err := json.Unmarshal(m.Data, &r); err != nil {
		t.Fatalf("reply %s: %v", m.Data, err)
	}
	return r
}

// startProjection starts a projection reading nc's events stream, with
// the given settle window; the caller stops it.
func startProjection(t *testing.T, ctx context.Context, nc *nats.Conn, settle time.Duration) *projection.Projection {
	t.Helper()
	p, err := projection.Start(ctx, projection.Config{Conn: nc, SettleWindow: settle, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// caughtUp waits until p has taken in everything the stream holds.
func caughtUp(t *testing.T, ctx context.Context, p *projection.Projection) {
	t.Helper()
	if err := p.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
}

func summary(r projection.Reply) string {
	if r.Location != "" {
		return fmt.Sprintf("%s:%v", r.Location, r.Bulbs)
	}
	return fmt.Sprint(r.Locations)
}

// The index answers by location, live, after a rebuild and in a fresh
// projection; also when the events reach the bus well after their
// commands were answered.
func TestBulbsByLocation(t *testing.T) {
	for _, lateBy := range []time.Duration{0, 100 * time.Millisecond} {
		t.Run(fmt.Sprintf("bus late by %v", lateBy), func(t *testing.T) { testBulbsByLocation(t, lateBy) })
	}
}

func testBulbsByLocation(t *testing.T, lateBy time.Duration) {
	n := startNode(t, lateBy)
	nc := testsupport.Connect(t, n.ClientURL())
	produced := 0 // events the commands produced
	for i, loc := range []string{"hall", "hall", "kitchen", "porch"} {
		id := fmt.Sprintf("b%d", i+1)
		produced += send(t, nc, id, "create", fmt.Sprintf(`{"wattage":%d}`, 40+i*20))
		produced += send(t, nc, id, "screwIn", fmt.Sprintf(`{"location":%q}`, loc))
	}
	produced += send(t, nc, "b2", "switchOn", "")
	produced += send(t, nc, "b4", "unscrew", "")
	produced += send(t, nc, "b5", "create", `{"wattage":10}`) // never screwed in
	onBus(t, nc, produced)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := startProjection(t, ctx, nc, 200*time.Millisecond)
	defer p.Stop()
	caughtUp(t, ctx, p)

	subject := projection.QuerySubject(api.DefaultPrefix)
	const wantLocations = "[{hall 2 1} {kitchen 1 0}]"
	const wantHall = "hall:[{b1 40 false} {b2 60 true}]"
	if got := summary(ask(t, nc, subject, projection.Query{})); got != wantLocations {
		t.Errorf("locations %s, want %s", got, wantLocations)
	}
	if got := summary(ask(t, nc, subject, projection.Query{Location: "hall"})); got != wantHall {
		t.Errorf("hall %s, want %s", got, wantHall)
	}
	if r := ask(t, nc, subject, projection.Query{Location: "attic"}); !r.OK || len(r.Bulbs) != 0 {
		t.Errorf("attic: %+v, want ok and no bulbs", r)
	}

	// Live: new events change the index.
	produced += send(t, nc, "b1", "switchOn", "")
	produced += send(t, nc, "b2", "blow", "")
	onBus(t, nc, produced)
	caughtUp(t, ctx, p)
	if got := summary(ask(t, nc, subject, projection.Query{Location: "hall"})); got != "hall:[{b1 40 true}]" {
		t.Errorf("hall after switchOn b1 and blow b2: %s", got)
	}
	events := p.Index().Events()
	if events != int64(produced) {
		t.Errorf("the index took in %d events, want the %d the commands produced", events, produced)
	}

	// Rebuilt from scratch by replay: the same index.
	r := ask(t, nc, projection.RebuildSubject(api.DefaultPrefix), struct{}{})
	if !r.OK || r.Events != events {
		t.Fatalf("rebuild: %+v, want ok with %d events", r, events)
	}
	if got := summary(ask(t, nc, subject, projection.Query{})); got != "[{hall 1 1} {kitchen 1 0}]" {
		t.Errorf("locations after rebuild %s", got)
	}

	// A second process starting from nothing agrees.
	p.Stop()
	q := startProjection(t, ctx, nc, 200*time.Millisecond)
	defer q.Stop()
	caughtUp(t, ctx, q)
	if got := summary(ask(t, nc, subject, projection.Query{Location: "hall"})); got != "hall:[{b1 40 true}]" {
		t.Errorf("hall in a fresh projection: %s", got)
	}

	// Bad input gets a clear error.
	m, err := nc.Request(subject, []byte(`{"location":`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var bad projection.Reply
	if json.Unmarshal(m.Data, &bad) != nil || bad.OK || bad.Error == "" {
		t.Errorf("malformed query: %s", m.Data)
	}
}

// An event the bus holds twice (a node republished it from its outbox after
// the stream's duplicates window, under a message id of its own) is taken
// in once: live, on rebuild, and by a fresh projection.
func TestRepublishedEventTakenInOnce(t *testing.T) {
	n := startNode(t, 0)
	nc := testsupport.Connect(t, n.ClientURL())
	produced := send(t, nc, "b1", "create", `{"wattage":60}`)
	produced += send(t, nc, "b1", "screwIn", `{"location":"hall"}`)
	onBus(t, nc, produced)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := startProjection(t, ctx, nc, 200*time.Millisecond)
	defer p.Stop()

	// Both events again, the newer first, then a new one.
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(ctx, eventbus.StreamName(api.DefaultPrefix))
	if err != nil {
		t.Fatal(err)
	}
	for _, seq := range []uint64{2, 1} {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		m := nats.NewMsg(raw.Subject)
		m.Header, m.Data = raw.Header, raw.Data
		m.Header.Set(api.HeaderMsgID, fmt.Sprintf("republished-%d", seq))
		if ack, err := js.PublishMsg(ctx, m); err != nil || ack.Duplicate {
			t.Fatalf("republishing stream message %d: %+v, %v", seq, ack, err)
		}
	}
	produced += send(t, nc, "b1", "switchOn", "")
	onBus(t, nc, produced+2)
	caughtUp(t, ctx, p)
	if got, dups := p.Index().Events(), p.Subscription().Stats().Duplicates; got != int64(produced) || dups != 2 {
		t.Errorf("live: %d events taken in, %d duplicates dropped; want %d and 2", got, dups, produced)
	}
	subject := projection.QuerySubject(api.DefaultPrefix)
	if got := summary(ask(t, nc, subject, projection.Query{Location: "hall"})); got != "hall:[{b1 60 true}]" {
		t.Errorf("hall: %s", got)
	}

	r := ask(t, nc, projection.RebuildSubject(api.DefaultPrefix), struct{}{})
	if !r.OK || r.Events != int64(produced) {
		t.Errorf("rebuild: %+v, want ok with %d events", r, produced)
	}
	p.Stop()
	q := startProjection(t, ctx, nc, 200*time.Millisecond)
	defer q.Stop()
	caughtUp(t, ctx, q)
	if got := q.Index().Events(); got != int64(produced) {
		t.Errorf("a fresh projection took in %d events, want %d", got, produced)
	}
}
