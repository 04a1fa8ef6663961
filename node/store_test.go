package node_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/node"
	"github.com/concursus-go/concursus/storage/memory"
)

// A node whose external store cannot be reached yet starts anyway, answers
// every command "unavailable" (never a false success), reports itself not
// ready, keeps retrying, and serves normally once the store connects.
func TestNodeWaitsForItsStore(t *testing.T) {
	var reachable atomic.Bool
	var attempts atomic.Int32
	events, commands := memory.NewEventLog(), memory.NewCommandLog()
	opener := func(ctx context.Context) (node.Stores, error) {
		attempts.Add(1)
		if !reachable.Load() {
			return node.Stores{}, errors.New("connection refused")
		}
		return node.Stores{Events: events, Commands: commands}, nil
	}
	_, reg := lightbulbRegistry(t)
	cfg := testConfig(t)
	n, err := node.New(context.Background(), cfg, reg, node.WithStoreOpener("fake", opener))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	nc := testsupport.Connect(t, n.ClientURL())

	testsupport.Eventually(t, 10*time.Second, "a second connection attempt", func() bool { return attempts.Load() >= 2 })
	if ready, status := n.Ready(); ready {
		t.Fatalf("Ready() = true (%s) before the store connected", status)
	}
	var info api.Info
	request(t, nc, api.AdminInfoSubject(api.DefaultPrefix), nil, &info)
	if info.Ready {
		t.Errorf("admin info says ready before the store connected: %+v", info)
	}
	r := command(t, nc, api.Command{AggregateID: "b1", Command: "create", CommandID: "c1", Args: []byte(`{"wattage":60}`)})
	wantError(t, r.Error, r.OK, api.CodeUnavailable, "not connected")
	if last, err := events.LastSequence(context.Background(), lbRef("b1")); err != nil || last != 0 {
		t.Fatalf("event log at %d (%v) after an unavailable reply", last, err)
	}
	// Facts too, each answered by name: a client matches results to the
	// facts it sent (and retries those not settled).
	var fr api.FactsReply
	request(t, nc, api.FactsSubject(api.DefaultPrefix, "lightbulb"), []byte(`{"facts":[
		{"aggregateId":"b1","event":"created_0","timestamp":"2026-01-01T00:00:00Z","payload":{"wattage":60}},
		{"aggregateId":"b2","event":"screwedIn_0","timestamp":"2026-01-01T00:01:00Z","payload":{"location":"hall"}}]}`), &fr)
	if len(fr.Results) != 2 {
		t.Fatalf("facts reply while the store is unreachable: %+v", fr)
	}
	for i, want := range [][2]string{{"b1", "created_0"}, {"b2", "screwedIn_0"}} {
		res := fr.Results[i]
		if res.OK || res.Error == nil || res.Error.Code != api.CodeUnavailable || res.AggregateID != want[0] || res.Event != want[1] {
			t.Errorf("fact %d while the store is unreachable: %+v (error %+v), want unavailable naming %s %s", i, res, res.Error, want[0], want[1])
		}
	}

	reachable.Store(true)
	testsupport.Eventually(t, 30*time.Second, "the store to connect", func() bool { ready, _ := n.Ready(); return ready })
	r = command(t, nc, api.Command{AggregateID: "b1", Command: "create", CommandID: "c1", Args: []byte(`{"wattage":60}`)})
	if !r.OK || r.Sequence != 1 {
		t.Fatalf("after connecting: %+v", r)
	}
	request(t, nc, api.AdminInfoSubject(api.DefaultPrefix), nil, &info)
	if !info.Ready || info.Store != "fake: connected" {
		t.Errorf("admin info after connecting: ready %v, store %q", info.Ready, info.Store)
	}
}
