package subscription_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/eventbus"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/subscription"
)

// bulb is the aggregate type of these tests.
const bulb = "lightbulb"

// t0 is the instant the tests' event timestamps count from.
var t0 = time.Date(2026, 11, 21, 18, 0, 0, 0, time.UTC)

// env is one embedded NATS server with JetStream and the events stream
// of a prefix.
type env struct {
	t      testing.TB
	srv    *server.Server
	nc     *nats.Conn
	js     jetstream.JetStream
	prefix string
}

// newEnv starts an embedded JetStream server on a free port, with its
// store in a fresh directory, and creates the events stream.
func newEnv(t testing.TB) *env {
	t.Helper()
	s := testsupport.NATS(t, testsupport.JetStream())
	nc := testsupport.Connect(t, s.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, srv: s, nc: nc, js: js, prefix: api.DefaultPrefix}
	if _, err := eventbus.EnsureStream(context.Background(), nc, e.prefix, eventbus.StreamConfig{}); err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	return e
}

// config is a subscription configuration for the tests: fast retries and
// a short gap timeout.
func (e *env) config(name string) subscription.Config {
	return subscription.Config{
		Conn:          e.nc,
		Prefix:        e.prefix,
		Name:          name,
		AggregateType: bulb,
		Backoff:       subscription.Backoff{Initial: 5 * time.Millisecond, Max: 40 * time.Millisecond},
		GapTimeout:    5 * time.Second,
		Logger:        testLogger(),
	}
}

// testLogger logs to stderr with -v when SUBSCRIPTION_TEST_LOG is set;
// otherwise nowhere.
func testLogger() *slog.Logger {
	if os.Getenv("SUBSCRIPTION_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// subscribe starts a subscription and stops it at cleanup.
func (e *env) subscribe(cfg subscription.Config, h *subscription.Handlers) *subscription.Subscription {
	e.t.Helper()
	s, err := subscription.Subscribe(context.Background(), cfg, h)
	if err != nil {
		e.t.Fatalf("Subscribe %s: %v", cfg.Name, err)
	}
	e.t.Cleanup(s.Stop)
	return s
}

// ev builds event seq of aggregate id.
func ev(id string, seq uint64, name string, payload string) model.Event {
	if payload == "" {
		payload = "{}"
	}
	return model.Event{
		AggregateType:  bulb,
		AggregateID:    id,
		Sequence:       seq,
		Timestamp:      t0.Add(time.Duration(seq) * time.Second),
		StreamID:       model.DefaultStream,
		ProcessingID:   "test",
		ProcessingTime: t0.Add(time.Duration(seq) * time.Second),
		Name:           name,
		Payload:        json.RawMessage(payload),
		EventID:        fmt.Sprintf("%s-%d", id, seq),
	}
}

// history builds events 1..n of id, all named name.
func history(id string, n int, name string) []model.Event {
	out := make([]model.Event, n)
	for i := range out {
		out[i] = ev(id, uint64(i+1), name, fmt.Sprintf(`{"n":%d}`, i+1))
	}
	return out
}

// publish puts events in the events stream as the nodes do, and returns
// their stream sequences.
func (e *env) publish(events ...model.Event) []uint64 {
	e.t.Helper()
	var seqs []uint64
	for i := range events {
		m, err := api.EventMessage(e.prefix, &events[i])
		if err != nil {
			e.t.Fatal(err)
		}
		ack, err := e.js.PublishMsg(context.Background(), m)
		if err != nil {
			e.t.Fatalf("publishing %s#%d: %v", events[i].AggregateID, events[i].Sequence, err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	return seqs
}

// republish stores an event again under another message id, as a node
// that published it again outside the duplicates window would.
func (e *env) republish(x model.Event) {
	e.t.Helper()
	m, err := api.EventMessage(e.prefix, &x)
	if err != nil {
		e.t.Fatal(err)
	}
	m.Header.Set(api.HeaderMsgID, x.EventID+"-again")
	if ack, err := e.js.PublishMsg(context.Background(), m); err != nil || ack.Duplicate {
		e.t.Fatalf("republishing %s#%d: %+v, %v", x.AggregateID, x.Sequence, ack, err)
	}
}

// historyServer answers <prefix>.history.<type> from an in-memory event
// log, pageSize events per reply at most.
type historyServer struct {
	mu       sync.Mutex
	log      map[string][]model.Event
	requests atomic.Int64
}

func (e *env) serveHistory(pageSize int, events ...model.Event) *historyServer {
	e.t.Helper()
	h := &historyServer{log: make(map[string][]model.Event)}
	h.add(events...)
	sub, err := e.nc.Subscribe(api.HistorySubject(e.prefix, bulb), func(m *nats.Msg) {
		h.requests.Add(1)
		var req api.HistoryRequest
		var reply api.HistoryReply
		if err := json.Unmarshal(m.Data, &req); err != nil {
			reply.Error = &api.Error{Code: api.CodeInvalidRequest, Message: err.Error()}
		} else {
			reply = h.read(req, pageSize)
		}
		b, _ := json.Marshal(reply)
		_ = m.Respond(b)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = sub.Unsubscribe() })
	return h
}

func (h *historyServer) add(events ...model.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, x := range events {
		h.log[x.AggregateID] = append(h.log[x.AggregateID], x)
	}
}

func (h *historyServer) read(req api.HistoryRequest, pageSize int) api.HistoryReply {
	h.mu.Lock()
	defer h.mu.Unlock()
	limit := min(pageSize, api.MaxHistoryPage)
	if req.Limit > 0 {
		limit = min(limit, req.Limit)
	}
	r := api.HistoryReply{OK: true, AggregateType: bulb, AggregateID: req.AggregateID}
	for _, x := range h.log[req.AggregateID] {
		if x.Sequence < req.From || (req.To != 0 && x.Sequence > req.To) {
			continue
		}
		if len(r.Events) == limit {
			r.Next = x.Sequence
			break
		}
		r.Events = append(r.Events, x)
	}
	return r
}

// recorder keeps what handlers received.
type recorder struct {
	mu   sync.Mutex
	seen []subscription.Event
}

func (r *recorder) record(e subscription.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, e)
}

func (r *recorder) events() []subscription.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

// keys lists what was received as "id#seq", in order.
func (r *recorder) keys() []string {
	var out []string
	for _, e := range r.events() {
		out = append(out, key(e.AggregateID, e.Sequence))
	}
	return out
}

func key(id string, seq uint64) string { return fmt.Sprintf("%s#%d", id, seq) }

// catchAll is a Handlers that records every event.
func (r *recorder) catchAll() *subscription.Handlers {
	var h subscription.Handlers
	h.CatchAll(func(_ context.Context, e subscription.Event) error {
		r.record(e)
		return nil
	})
	return &h
}

// settle waits until the subscription's consumer has nothing left for
// it: no message it is to be given is pending or unacknowledged, and
// nothing is held for event time. A handler runs, and the counters move,
// before its event is acknowledged, so from then on nothing more comes
// and the subscription's stats and what its handlers saw are final.
func settle(t testing.TB, e *env, s *subscription.Subscription) {
	t.Helper()
	testsupport.EventuallyErr(t, 10*time.Second, "the consumer to be drained", func() error {
		c, err := e.js.Consumer(context.Background(), api.StreamName(e.prefix), s.Durable())
		if err != nil {
			return err
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if held := s.Stats().Held; info.NumPending != 0 || info.NumAckPending != 0 || held != 0 {
			return fmt.Errorf("pending %d, unacknowledged %d, held %d", info.NumPending, info.NumAckPending, held)
		}
		return nil
	})
}

// runToTheEnd subscribes with cfg, lets the subscription take everything
// the stream holds for it, stops it, and returns what its handlers got
// ("id#seq", in order) and its final stats.
func (e *env) runToTheEnd(cfg subscription.Config) ([]string, subscription.Stats) {
	e.t.Helper()
	var rec recorder
	s := e.subscribe(cfg, rec.catchAll())
	settle(e.t, e, s)
	s.Stop()
	return rec.keys(), s.Stats()
}

// twoBulbs is n events of b1 and of b2, interleaved: b1#1 b2#1 b1#2 …
func twoBulbs(n uint64) []model.Event {
	var events []model.Event
	for seq := uint64(1); seq <= n; seq++ {
		events = append(events, ev("b1", seq, "created", ""), ev("b2", seq, "created", ""))
	}
	return events
}

func wantKeys(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: got %s\nwant %s", what, strings.Join(got, " "), strings.Join(want, " "))
	}
}

// consumerInfo reads a consumer of the events stream.
func (e *env) consumerInfo(name string) *jetstream.ConsumerInfo {
	e.t.Helper()
	c, err := e.js.Consumer(context.Background(), api.StreamName(e.prefix), name)
	if err != nil {
		e.t.Fatalf("consumer %s: %v", name, err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}
