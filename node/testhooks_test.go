package node_test

import (
	"encoding/json"
	"sync"
	"testing"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
)

// recordingPublisher passes everything on and remembers the batches.
type recordingPublisher struct {
	executor.Publisher
	mu      sync.Mutex
	batches [][]model.Event
}

func (r *recordingPublisher) Publish(t executor.Ticket, events []model.Event) {
	r.mu.Lock()
	r.batches = append(r.batches, append([]model.Event(nil), events...))
	r.mu.Unlock()
	r.Publisher.Publish(t, events)
}

// A test hook sees every durable batch before it is published, and what it
// passes on still reaches the bus.
func TestTestHooksWrapThePublisher(t *testing.T) {
	rec := &recordingPublisher{}
	cfg := testConfig(t)
	cfg.TestHooks = &node.TestHooks{Publisher: func(p executor.Publisher) executor.Publisher {
		rec.Publisher = p
		return rec
	}}
	n := startNode(t, cfg)
	nc := testsupport.Connect(t, n.ClientURL())
	sub, err := nc.SubscribeSync(api.DefaultPrefix + ".events.>")
	if err != nil {
		t.Fatal(err)
	}
	r := mustOK(t, nc, api.Command{AggregateID: "hooked", Command: "create", Args: json.RawMessage(`{"wattage":60}`)})
	if _, e := nextEvent(t, sub); e.EventID != r.Events[0].EventID {
		t.Errorf("published %s, want %s", e.EventID, r.Events[0].EventID)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.batches) != 1 || len(rec.batches[0]) != 1 || rec.batches[0][0].EventID != r.Events[0].EventID {
		t.Errorf("the hook saw %v, want the one batch of event %s", rec.batches, r.Events[0].EventID)
	}
}
