package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
)

// startNode starts a lightbulb node with an embedded NATS server and
// returns a connection to it.
func startNode(t *testing.T) *nats.Conn {
	t.Helper()
	reg, err := model.NewRegistry(lightbulb.Define().Type)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.New(context.Background(), node.Config{
		NodeID:  "test-node",
		DataDir: t.TempDir(),
		NATS:    node.NATSConfig{EmbeddedPort: -1},
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, reg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return testsupport.Connect(t, n.ClientURL())
}

// TestFactsShuffledSameAsOrdered runs the -facts demo with several seeds
// (printed) on one node: every run must find the shuffled bulbs the same
// as the ordered ones.
func TestFactsShuffledSameAsOrdered(t *testing.T) {
	nc := startNode(t)
	base := uint64(time.Now().UnixNano())
	for i := range uint64(5) {
		seed := base + i
		var out bytes.Buffer
		d := newFactsDemo(nc, "concursus", "t"+string(rune('a'+i)), 4, &out)
		same, err := d.run(t.Context(), seed)
		if err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, out.String())
		}
		if !same || !strings.Contains(out.String(), "same state and usage: yes") {
			t.Fatalf("seed %d: not the same\n%s", seed, out.String())
		}
		if i == 0 {
			t.Logf("seed %d:\n%s", seed, out.String())
		}
	}
}

// TestFactsComparisonSeesADifference adds one fact to a shuffled bulb
// after a run: the comparison must say so.
func TestFactsComparisonSeesADifference(t *testing.T) {
	nc := startNode(t)
	var out bytes.Buffer
	d := newFactsDemo(nc, "concursus", "diff", 2, &out)
	if same, err := d.run(t.Context(), 1); err != nil || !same {
		t.Fatalf("run: same %v, %v\n%s", same, err, out.String())
	}
	extra := bulbFacts(d.shuffled[1], 1)[2]  // switchedOn_0 at 18:13 …
	extra.Timestamp = "2026-11-21T18:14:30Z" // … a minute and a half later, a new fact
	if _, err := d.send(t.Context(), []api.Fact{extra}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	same, err := d.compare(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if same || !strings.Contains(out.String(), "same state and usage: NO") || !strings.Contains(out.String(), "DIFFERENT") {
		t.Fatalf("an extra fact went unnoticed:\n%s", out.String())
	}
}
