package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
)

// reqTimeout bounds one raw request in these tests. Replies come in
// milliseconds; the bound only keeps a broken node from hanging the run.
const reqTimeout = 5 * time.Second

// t0 is the instant the tests' source timestamps count from.
var t0 = time.Date(2026, 11, 21, 18, 0, 0, 0, time.UTC)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testConfig is a node configuration for one test: an embedded NATS server
// on a free port and a fresh data directory.
func testConfig(t *testing.T) node.Config {
	t.Helper()
	return node.Config{
		NodeID:  "test-node",
		DataDir: t.TempDir(),
		NATS:    node.NATSConfig{EmbeddedPort: -1},
		Logger:  quietLogger(),
	}
}

// lightbulbRegistry defines the lightbulb type afresh (Define builds new
// values every time) and registers it.
func lightbulbRegistry(t *testing.T) (*lightbulb.Lightbulb, *model.Registry) {
	t.Helper()
	lb := lightbulb.Define()
	reg, err := model.NewRegistry(lb.Type)
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	return lb, reg
}

// startNode starts a lightbulb node with cfg and shuts it down at cleanup.
func startNode(t *testing.T, cfg node.Config) *node.Node {
	t.Helper()
	_, reg := lightbulbRegistry(t)
	n, err := node.New(context.Background(), cfg, reg)
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	t.Cleanup(func() {
		if err := n.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return n
}

// cmdSubject is the default-prefix command subject of the lightbulb type.
var cmdSubject = api.CommandSubject(api.DefaultPrefix, lightbulb.TypeName)

// request sends body to subject and decodes the reply into v. It also
// returns the raw reply so that tests can check the wire field names.
func request(t *testing.T, nc *nats.Conn, subject string, body []byte, v any) []byte {
	t.Helper()
	m, err := nc.Request(subject, body, reqTimeout)
	if err != nil {
		t.Fatalf("request on %s %s: %v", subject, body, err)
	}
	if err := json.Unmarshal(m.Data, v); err != nil {
		t.Fatalf("reply to %s is not JSON: %v\n%s", body, err, m.Data)
	}
	return m.Data
}

// requestMsg sends a request with headers (nil: none) to subject
// (cmdSubject when empty), decodes the reply into v and returns it raw.
func requestMsg(t *testing.T, nc *nats.Conn, subject string, headers map[string]string, body []byte, v any) []byte {
	t.Helper()
	if subject == "" {
		subject = cmdSubject
	}
	m := nats.NewMsg(subject)
	for k, val := range headers {
		m.Header.Set(k, val)
	}
	m.Data = body
	reply, err := nc.RequestMsg(m, reqTimeout)
	if err != nil {
		t.Fatalf("request on %s: %v", subject, err)
	}
	if err := json.Unmarshal(reply.Data, v); err != nil {
		t.Fatalf("reply on %s is not JSON: %v\n%s", subject, err, reply.Data)
	}
	return reply.Data
}

// subscribe subscribes to subject and flushes, so that nothing published
// once it returns is missed.
func subscribe(t *testing.T, nc *nats.Conn, subject string) *nats.Subscription {
	t.Helper()
	sub, err := nc.SubscribeSync(subject)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return sub
}

// envelope encodes a command envelope.
func envelope(t *testing.T, c api.Command) []byte {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// command sends a command envelope and returns the decoded reply.
func command(t *testing.T, nc *nats.Conn, c api.Command) api.Reply {
	t.Helper()
	var r api.Reply
	request(t, nc, cmdSubject, envelope(t, c), &r)
	return r
}

// mustOK sends a command and fails the test unless it was accepted.
func mustOK(t *testing.T, nc *nats.Conn, c api.Command) api.Reply {
	t.Helper()
	r := command(t, nc, c)
	if !r.OK || r.Error != nil {
		t.Fatalf("%s on %s: want ok, got %+v", c.Command, c.AggregateID, r.Error)
	}
	return r
}

// query sends a state query for a lightbulb.
func query(t *testing.T, nc *nats.Conn, q api.Query) api.QueryReply {
	t.Helper()
	b, err := json.Marshal(q)
	if err != nil {
		t.Fatal(err)
	}
	var r api.QueryReply
	request(t, nc, api.QuerySubject(api.DefaultPrefix, lightbulb.TypeName), b, &r)
	return r
}

// wantError checks a failed reply's code, and that its message mentions
// every one of mention.
func wantError(t *testing.T, e *api.Error, ok bool, code api.Code, mention ...string) {
	t.Helper()
	if ok || e == nil {
		t.Fatalf("want error %s, got ok=%v error=%v", code, ok, e)
	}
	if e.Code != code {
		t.Fatalf("want code %s, got %s (%s)", code, e.Code, e.Message)
	}
	for _, m := range mention {
		if !strings.Contains(e.Message, m) {
			t.Errorf("error message %q does not mention %q", e.Message, m)
		}
	}
}

// assertNothingWritten checks that neither log holds anything for ref or
// for the command id.
func assertNothingWritten(t *testing.T, n *node.Node, ref model.Ref, commandID string) {
	t.Helper()
	ctx := context.Background()
	if ref.Type != "" && ref.ID != "" {
		last, err := n.EventLog().LastSequence(ctx, ref)
		if err != nil || last != 0 {
			t.Errorf("event log: LastSequence(%s) = %d, %v; want 0", ref, last, err)
		}
		events, _, err := n.EventLog().ReadPage(ctx, ref, 1, 10)
		if err != nil || len(events) != 0 {
			t.Errorf("event log: %s has %d events (%v); want none", ref, len(events), err)
		}
	}
	if commandID != "" {
		rec, err := n.CommandLog().Get(ctx, commandID)
		if !errors.Is(err, commandlog.ErrNotFound) {
			t.Errorf("command log: Get(%q) = %+v, %v; want ErrNotFound", commandID, rec, err)
		}
	}
}

// nextEvent reads the next published event from sub.
func nextEvent(t *testing.T, sub *nats.Subscription) (*nats.Msg, model.Event) {
	t.Helper()
	m, err := sub.NextMsg(reqTimeout)
	if err != nil {
		t.Fatalf("waiting for a published event: %v", err)
	}
	var e model.Event
	if err := json.Unmarshal(m.Data, &e); err != nil {
		t.Fatalf("published event is not JSON: %v\n%s", err, m.Data)
	}
	return m, e
}

func lbRef(id string) model.Ref { return model.Ref{Type: lightbulb.TypeName, ID: id} }
