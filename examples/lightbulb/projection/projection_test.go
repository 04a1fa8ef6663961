package projection_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/eventbus"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/examples/lightbulb/projection"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
)

// startNode runs a lightbulb node with its events in a JetStream stream.
func startNode(t *testing.T) *node.Node {
	t.Helper()
	reg, err := model.NewRegistry(lightbulb.Define().Type)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(node.Config{
		NodeID: "projection-test", DataDir: t.TempDir(), NATS: node.NATSConfig{EmbeddedPort: -1},
		Stream: &eventbus.StreamConfig{}, Logger: slog.New(slog.DiscardHandler),
	}, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	return n
}

func send(t *testing.T, nc *nats.Conn, id, command, args string) {
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

func summary(r projection.Reply) string {
	if r.Location != "" {
		return fmt.Sprintf("%s:%v", r.Location, r.Bulbs)
	}
	return fmt.Sprint(r.Locations)
}

func TestBulbsByLocation(t *testing.T) {
	n := startNode(t)
	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	for i, loc := range []string{"hall", "hall", "kitchen", "porch"} {
		id := fmt.Sprintf("b%d", i+1)
		send(t, nc, id, "create", fmt.Sprintf(`{"wattage":%d}`, 40+i*20))
		send(t, nc, id, "screwIn", fmt.Sprintf(`{"location":%q}`, loc))
	}
	send(t, nc, "b2", "switchOn", "")
	send(t, nc, "b4", "unscrew", "")
	send(t, nc, "b5", "create", `{"wattage":10}`) // never screwed in

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := projection.Start(ctx, projection.Config{Conn: nc, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if err := p.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}

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
	send(t, nc, "b1", "switchOn", "")
	send(t, nc, "b2", "blow", "")
	if err := p.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
	if got := summary(ask(t, nc, subject, projection.Query{Location: "hall"})); got != "hall:[{b1 40 true}]" {
		t.Errorf("hall after switchOn b1 and blow b2: %s", got)
	}
	events := p.Index().Events()

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
	q, err := projection.Start(ctx, projection.Config{Conn: nc, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Stop()
	if err := q.CaughtUp(ctx); err != nil {
		t.Fatal(err)
	}
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
