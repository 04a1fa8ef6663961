package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/eventbus"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/node"
)

func TestEventsAreKeptInAJetStreamStream(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stream = &eventbus.StreamConfig{MaxAge: 24 * time.Hour}
	n := startNode(t, cfg)
	nc := testsupport.Connect(t, n.ClientURL())
	mustOK(t, nc, api.Command{AggregateID: "s1", Command: "create", Args: json.RawMessage(`{"wattage":60}`)})
	mustOK(t, nc, api.Command{AggregateID: "s1", Command: "screwIn", Args: json.RawMessage(`{"location":"hall"}`)})

	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	stream, err := js.Stream(ctx, "CONCURSUS_EVENTS")
	if err != nil {
		t.Fatalf("the node did not create the stream: %v", err)
	}
	testsupport.Eventually(t, 5*time.Second, "2 events in the stream", func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.Msgs == 2
	})
	info, _ := stream.Info(ctx)
	if info.Config.MaxAge != 24*time.Hour || info.Config.Subjects[0] != "concursus.events.>" {
		t.Errorf("stream config %+v", info.Config)
	}
	// An event published again (a catch-up after a crash would) is stored
	// once: its event id is its Nats-Msg-Id.
	events, _, err := n.EventLog().ReadPage(ctx, lbRef("s1"), 1, 10)
	if err != nil || len(events) != 2 {
		t.Fatalf("log: %d events, %v", len(events), err)
	}
	m, err := eventbus.Message(api.DefaultPrefix, &events[0])
	if err != nil {
		t.Fatal(err)
	}
	ack, err := js.PublishMsg(ctx, m)
	if err != nil || !ack.Duplicate {
		t.Errorf("republished event: ack %+v, %v; want a duplicate", ack, err)
	}
	info, _ = stream.Info(ctx)
	if info.State.Msgs != 2 {
		t.Errorf("stream has %d messages after a re-publication, want 2", info.State.Msgs)
	}
	// Replaying from the bus returns the history in order.
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"concursus.events.lightbulb.>"}})
	if err != nil {
		t.Fatal(err)
	}
	for want := uint64(1); want <= 2; want++ {
		msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if got := msg.Headers().Get(api.HeaderSequence); got != string(rune('0'+want)) {
			t.Errorf("replayed event %d has sequence %s", want, got)
		}
	}
}

func TestStreamNeedsJetStreamOnAnExternalServer(t *testing.T) {
	s := testsupport.NATS(t)
	cfg := testConfig(t)
	cfg.NATS = node.NATSConfig{URL: s.ClientURL()}
	cfg.Stream = &eventbus.StreamConfig{}
	_, reg := lightbulbRegistry(t)
	_, err := node.New(context.Background(), cfg, reg)
	if !errors.Is(err, eventbus.ErrNoJetStream) {
		t.Fatalf("New with a stream on a server without JetStream: %v, want ErrNoJetStream", err)
	}
}

func TestStreamName(t *testing.T) {
	for prefix, want := range map[string]string{"concursus": "CONCURSUS_EVENTS", "acme.prod": "ACME_PROD_EVENTS", "a-b_c": "A-B_C_EVENTS"} {
		if got := eventbus.StreamName(prefix); got != want {
			t.Errorf("StreamName(%q) = %q, want %q", prefix, got, want)
		}
	}
}

// TestNewHonoursItsContext: the context given to New bounds the start-up;
// one already cancelled fails the stream's creation at once, and New
// releases what it had built.
func TestNewHonoursItsContext(t *testing.T) {
	cfg := testConfig(t)
	cfg.Stream = &eventbus.StreamConfig{}
	_, reg := lightbulbRegistry(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n, err := node.New(ctx, cfg, reg)
	if err == nil {
		_ = n.Shutdown(context.Background())
		t.Fatal("New with a cancelled context started a node")
	}
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("New with a cancelled context: %v, want an error wrapping context.Canceled", err)
	}
	// The same configuration (the same data dir) starts with a live
	// context: the failed start-up left no lock on the embedded store.
	n = startNode(t, cfg)
	if ready, _ := n.Ready(); !ready {
		t.Fatal("the node started after the failed start-up is not ready")
	}
}
