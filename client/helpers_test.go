package client_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/client"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
)

// fast are client options for tests: short back-offs so retries happen
// within milliseconds.
var fast = client.Options{MinBackoff: 2 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Timeout: 5 * time.Second}

// startNode starts a lightbulb node. With url empty it runs its own
// embedded server; otherwise it connects to url.
func startNode(t *testing.T, url string) (*node.Node, *lightbulb.Lightbulb) {
	t.Helper()
	lb := lightbulb.Define()
	reg, err := model.NewRegistry(lb.Type)
	if err != nil {
		t.Fatal(err)
	}
	cfg := node.Config{
		NodeID:  "client-test",
		DataDir: t.TempDir(),
		NATS:    node.NATSConfig{URL: url, EmbeddedPort: -1},
		Logger:  slog.New(slog.DiscardHandler),
	}
	if url != "" {
		cfg.NATS.EmbeddedPort = 0
	}
	n, err := node.New(context.Background(), cfg, reg)
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	return n, lb
}

// fake answers command requests on <prefix>.cmd.lightbulb in place of a
// node: respond decides, per attempt (1, 2, …), what to send back. It
// records every request it saw.
type fake struct {
	mu       sync.Mutex
	requests []api.Command
}

func newFake(t *testing.T, nc *nats.Conn, prefix string, respond func(attempt int, m *nats.Msg) []byte) *fake {
	t.Helper()
	f := &fake{}
	sub, err := nc.Subscribe(api.CommandSubject(prefix, lightbulb.TypeName), func(m *nats.Msg) {
		var c api.Command
		if err := json.Unmarshal(m.Data, &c); err != nil {
			t.Errorf("fake got a request that is not an envelope: %v %s", err, m.Data)
			return
		}
		f.mu.Lock()
		f.requests = append(f.requests, c)
		attempt := len(f.requests)
		f.mu.Unlock()
		if reply := respond(attempt, m); reply != nil {
			if err := m.Respond(reply); err != nil {
				t.Errorf("fake reply: %v", err)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

// seen returns a copy of the requests so far.
func (f *fake) seen() []api.Command {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.Command(nil), f.requests...)
}

// errorReply is a node's error reply with code.
func errorReply(code api.Code, reason string) []byte {
	b, err := json.Marshal(api.Reply{AggregateType: lightbulb.TypeName, Error: &api.Error{Code: code, Reason: reason, Message: "fake says " + string(code)}})
	if err != nil {
		panic(err)
	}
	return b
}

// forward sends a request on to the real node under the default prefix and
// returns its reply.
func forward(t *testing.T, nc *nats.Conn, m *nats.Msg) []byte {
	reply, err := nc.Request(api.CommandSubject(api.DefaultPrefix, lightbulb.TypeName), m.Data, 5*time.Second)
	if err != nil {
		t.Errorf("forwarding to the node: %v", err)
		return nil
	}
	return reply.Data
}
