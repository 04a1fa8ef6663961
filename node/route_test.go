package node

// Routing as a table: decideRoute and decideFactRoute on fixed rings and
// times, what each decision is counted as, how a command request is read
// once for routing and running, and the dispatcher performing decisions
// (a delay under testing/synctest, a forward on a real embedded NATS).

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/router"
)

// testRouting is a ring of members, each serving on c.node.<id> unless
// listed in notServing.
func testRouting(t *testing.T, members []string, notServing ...string) *routing {
	t.Helper()
	ring, err := router.New(router.Config{}.WithDefaults(), members)
	if err != nil {
		t.Fatal(err)
	}
	r := &routing{ring: ring, subjects: map[string]string{}}
	for _, m := range members {
		r.subjects[m] = "c.node." + m
	}
	for _, m := range notServing {
		delete(r.subjects, m)
	}
	return r
}

// idOwnedBy returns an aggregate id of type T that owner owns on r.
func idOwnedBy(t *testing.T, r *routing, owner string) string {
	t.Helper()
	for i := range 10000 {
		id := fmt.Sprintf("agg-%d", i)
		if r.ring.Owner("T", id) == owner {
			return id
		}
	}
	t.Fatalf("no id of the first 10000 is owned by %s", owner)
	return ""
}

// wantRoute is an expected decision; the error is compared by its code
// and a part of its message.
type wantRoute struct {
	kind           routeKind
	owner, subject string
	wait           time.Duration
	code           api.Code
	msg            string
}

func checkRoute(t *testing.T, got route, want wantRoute) {
	t.Helper()
	if got.kind != want.kind || got.owner != want.owner || got.subject != want.subject || got.wait != want.wait {
		t.Errorf("got %v owner %q subject %q wait %v, want %v owner %q subject %q wait %v",
			got.kind, got.owner, got.subject, got.wait, want.kind, want.owner, want.subject, want.wait)
	}
	switch {
	case want.code == "" && got.err != nil:
		t.Errorf("error %+v, want none", got.err)
	case want.code != "" && got.err == nil:
		t.Errorf("no error, want %s %q", want.code, want.msg)
	case want.code != "" && (got.err.Code != want.code || !strings.Contains(got.err.Message, want.msg)):
		t.Errorf("error %s %q, want %s containing %q", got.err.Code, got.err.Message, want.code, want.msg)
	}
	if got.err != nil && !got.err.Code.Retryable() {
		t.Errorf("error %s is not retryable: a client could not get past a moving ring", got.err.Code)
	}
}

func TestDecideRoute(t *testing.T) {
	const maxHops = 32
	now := time.Date(2026, 11, 22, 6, 30, 0, 0, time.UTC)
	in := func(d time.Duration) time.Time { return now.Add(d) }
	ring := testRouting(t, []string{"a", "b", "c"})
	idA, idB := idOwnedBy(t, ring, "a"), idOwnedBy(t, ring, "b")
	empty := &routing{} // every member left, or none serves yet
	bIdle := testRouting(t, []string{"a", "b", "c"}, "b")
	const bSubject = "c.node.b"

	for _, tc := range []struct {
		name     string
		r        *routing
		id       string
		hops     int
		waited   bool
		deadline time.Time
		want     wantRoute
	}{
		// Ours: run here, whatever the hops and the time.
		{"not clustered", nil, idB, 0, false, in(time.Second), wantRoute{kind: routeLocal, owner: "a"}},
		{"owned here", ring, idA, 0, false, in(time.Second), wantRoute{kind: routeLocal, owner: "a", subject: "c.node.a"}},
		{"owned here, bounced", ring, idA, 5, false, in(time.Second), wantRoute{kind: routeLocal, owner: "a", subject: "c.node.a"}},
		{"owned here, out of hops and time", ring, idA, maxHops + 3, false, in(-time.Second), wantRoute{kind: routeLocal, owner: "a", subject: "c.node.a"}},

		// Another's: forward.
		{"forward", ring, idB, 0, false, in(time.Second), wantRoute{kind: routeForward, owner: "b", subject: bSubject}},
		{"forward after one hop", ring, idB, 1, false, in(time.Second), wantRoute{kind: routeForward, owner: "b", subject: bSubject}},
		{"forward at once after waiting", ring, idB, 2, true, in(time.Second), wantRoute{kind: routeForward, owner: "b", subject: bSubject}},
		{"forward with the last hop", ring, idB, maxHops - 1, true, in(time.Second), wantRoute{kind: routeForward, owner: "b", subject: bSubject}},
		{"forward, 1ns left", ring, idB, 0, false, in(time.Nanosecond), wantRoute{kind: routeForward, owner: "b", subject: bSubject}},
		{"forward, no deadline", ring, idB, 0, false, time.Time{}, wantRoute{kind: routeForward, owner: "b", subject: bSubject}},

		// Fail: time first, then hops.
		{"deadline reached", ring, idB, 0, false, now, wantRoute{kind: routeFail, owner: "b", subject: bSubject, code: api.CodeTimeout, msg: "time ran out"}},
		{"deadline passed", ring, idB, 0, false, in(-time.Millisecond), wantRoute{kind: routeFail, owner: "b", subject: bSubject, code: api.CodeTimeout, msg: "time ran out"}},
		{"deadline passed and out of hops: time first", ring, idB, maxHops, false, in(-time.Millisecond), wantRoute{kind: routeFail, owner: "b", subject: bSubject, code: api.CodeTimeout, msg: "time ran out"}},
		{"deadline passed, no owner", empty, idB, 0, false, in(-time.Millisecond), wantRoute{kind: routeFail, code: api.CodeTimeout, msg: "time ran out"}},
		{"out of hops", ring, idB, maxHops, true, in(time.Second), wantRoute{kind: routeFail, owner: "b", subject: bSubject, code: api.CodeUnavailable, msg: "owner of T/" + idB + " within 32 hops"}},
		{"beyond the hops", ring, idB, maxHops + 8, false, in(time.Second), wantRoute{kind: routeFail, owner: "b", subject: bSubject, code: api.CodeUnavailable, msg: "within 40 hops"}},
		{"out of hops, no owner: hops bound the waits", empty, idB, maxHops, true, in(time.Second), wantRoute{kind: routeFail, code: api.CodeUnavailable, msg: "within 32 hops"}},

		// Delay: no owner, an owner not serving, or bounced and not waited.
		{"empty ring", empty, idB, 0, false, in(time.Second), wantRoute{kind: routeDelay, wait: 10 * time.Millisecond}},
		{"empty ring, waited", empty, idB, 3, true, in(time.Second), wantRoute{kind: routeDelay, wait: 20 * time.Millisecond}},
		{"owner not serving", bIdle, idB, 0, false, in(time.Second), wantRoute{kind: routeDelay, owner: "b", wait: 10 * time.Millisecond}},
		{"owner not serving, waited", bIdle, idB, 2, true, in(time.Second), wantRoute{kind: routeDelay, owner: "b", wait: 10 * time.Millisecond}},
		{"bounced twice", ring, idB, 2, false, in(time.Second), wantRoute{kind: routeDelay, owner: "b", subject: bSubject, wait: 10 * time.Millisecond}},
		{"backoff 3 hops", ring, idB, 3, false, in(time.Second), wantRoute{kind: routeDelay, owner: "b", subject: bSubject, wait: 20 * time.Millisecond}},
		{"backoff 4 hops", ring, idB, 4, false, in(time.Second), wantRoute{kind: routeDelay, owner: "b", subject: bSubject, wait: 40 * time.Millisecond}},
		{"backoff 5 hops", ring, idB, 5, false, in(time.Second), wantRoute{kind: routeDelay, owner: "b", subject: bSubject, wait: 80 * time.Millisecond}},
		{"backoff 6 hops", ring, idB, 6, false, in(time.Second), wantRoute{kind: routeDelay, owner: "b", subject: bSubject, wait: 160 * time.Millisecond}},
		{"backoff 7 hops: capped at 250ms", ring, idB, 7, false, in(time.Second), wantRoute{kind: routeDelay, owner: "b", subject: bSubject, wait: 250 * time.Millisecond}},
		{"backoff 31 hops: capped at 250ms", ring, idB, maxHops - 1, false, in(time.Hour), wantRoute{kind: routeDelay, owner: "b", subject: bSubject, wait: 250 * time.Millisecond}},
		{"wait capped by half the time left", ring, idB, 6, false, in(100 * time.Millisecond), wantRoute{kind: routeDelay, owner: "b", subject: bSubject, wait: 50 * time.Millisecond}},
		{"wait capped, 4ms left", ring, idB, 2, false, in(4 * time.Millisecond), wantRoute{kind: routeDelay, owner: "b", subject: bSubject, wait: 2 * time.Millisecond}},
		{"wait capped, 1ns left", empty, idB, 0, false, in(time.Nanosecond), wantRoute{kind: routeDelay}},
		{"no deadline: wait not capped", ring, idB, 7, false, time.Time{}, wantRoute{kind: routeDelay, owner: "b", subject: bSubject, wait: 250 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := decideRoute(tc.r, "a", "T", tc.id, tc.hops, tc.waited, tc.deadline, now, maxHops)
			checkRoute(t, got, tc.want)
		})
	}
}

func TestDecideFactRoute(t *testing.T) {
	const maxHops = 32
	ring := testRouting(t, []string{"a", "b", "c"})
	idA, idB := idOwnedBy(t, ring, "a"), idOwnedBy(t, ring, "b")
	bIdle := testRouting(t, []string{"a", "b", "c"}, "b")
	noOwner := wantRoute{kind: routeFail, code: api.CodeUnavailable, msg: "no owner known for T/" + idB + " (the cluster is changing); send it again"}

	for _, tc := range []struct {
		name string
		r    *routing
		id   string
		hops int
		want wantRoute
	}{
		{"not clustered", nil, idB, 0, wantRoute{kind: routeLocal, owner: "a"}},
		{"owned here", ring, idA, 0, wantRoute{kind: routeLocal, owner: "a", subject: "c.node.a"}},
		{"owned here, out of hops", ring, idA, maxHops, wantRoute{kind: routeLocal, owner: "a", subject: "c.node.a"}},
		{"forward", ring, idB, 0, wantRoute{kind: routeForward, owner: "b", subject: "c.node.b"}},
		{"forward, bounced: facts never wait", ring, idB, 5, wantRoute{kind: routeForward, owner: "b", subject: "c.node.b"}},
		{"out of hops", ring, idB, maxHops, wantRoute{kind: routeFail, owner: "b", subject: "c.node.b", code: api.CodeUnavailable,
			msg: "the nodes did not agree on the owner of T/" + idB + " within 32 hops (the cluster is changing); send it again"}},
		{"empty ring: fail, not wait", &routing{}, idB, 0, noOwner},
		{"owner not serving", bIdle, idB, 0, withOwner(noOwner, "b")},
		{"no owner and out of hops: no owner first", &routing{}, idB, maxHops, noOwner},
		{"owner not serving and out of hops", bIdle, idB, maxHops + 1, withOwner(noOwner, "b")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkRoute(t, decideFactRoute(tc.r, "a", "T", tc.id, tc.hops, maxHops), tc.want)
		})
	}
}

func withOwner(w wantRoute, owner string) wantRoute {
	w.owner = owner
	return w
}

func TestRouteCounters(t *testing.T) {
	var c routeCounters
	names := map[*atomic.Uint64]string{&c.local: "local", &c.direct: "direct", &c.forwarded: "forwarded",
		&c.rerouted: "rerouted", &c.delayed: "delayed", &c.exhausted: "exhausted"}
	for _, tc := range []struct {
		kind   routeKind
		direct bool
		want   string
	}{
		{routeLocal, false, "local"}, // came via the queue group, ours
		{routeLocal, true, "direct"}, // forwarded to us, ours
		{routeForward, false, "forwarded"},
		{routeForward, true, "rerouted"}, // forwarded to us, passed on by our newer ring
		{routeDelay, false, "delayed"},
		{routeDelay, true, "delayed"},
		{routeFail, false, "exhausted"},
		{routeFail, true, "exhausted"},
	} {
		if got := names[c.of(tc.kind, tc.direct)]; got != tc.want {
			t.Errorf("%v (direct %v) counted as %q, want %q", tc.kind, tc.direct, got, tc.want)
		}
	}
}

// TestReadCommandRequest: what routing reads from a command request, and
// what is left for the node that runs it.
func TestReadCommandRequest(t *testing.T) {
	n := &Node{cfg: Config{MaxPayload: 1024, RequestTimeout: 5 * time.Second}}
	long := strings.Repeat("x", model.MaxIDLen+1)
	hdr := func(kv ...string) nats.Header {
		h := nats.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	for _, tc := range []struct {
		name      string
		header    nats.Header
		body      string
		clustered bool
		routable  bool
		id, cid   string
		timeout   time.Duration
		readErr   string // part of readCommand's refusal; "" none
	}{
		{name: "envelope", body: `{"aggregateId":"b1","command":"create","commandId":"c1"}`, clustered: true,
			routable: true, id: "b1", cid: "c1", timeout: 5 * time.Second},
		{name: "envelope alone", body: `{"aggregateId":"b1","command":"create"}`,
			routable: true, id: "b1", timeout: 5 * time.Second},
		{name: "envelope timeout", body: `{"aggregateId":"b1","command":"create","timeoutMs":1500}`, clustered: true,
			routable: true, id: "b1", timeout: 1500 * time.Millisecond},
		{name: "budget shortens", header: hdr(headerBudget, "700", headerHops, "1"), body: `{"aggregateId":"b1","command":"create","timeoutMs":1500}`,
			clustered: true, routable: true, id: "b1", timeout: 700 * time.Millisecond},
		{name: "budget longer than the timeout", header: hdr(headerBudget, "9000"), body: `{"aggregateId":"b1","command":"create","timeoutMs":1500}`,
			clustered: true, routable: true, id: "b1", timeout: 1500 * time.Millisecond},
		{name: "unknown field: routed to the owner, who refuses it", body: `{"aggregateId":"b1","command":"create","commandId":"c1","bogus":1}`,
			clustered: true, routable: true, id: "b1", cid: "c1", timeout: 5 * time.Second, readErr: "bogus"},
		{name: "wrong type elsewhere: routed", body: `{"aggregateId":"b1","command":7,"timeoutMs":300}`,
			clustered: true, routable: true, id: "b1", timeout: 300 * time.Millisecond, readErr: "command"},
		{name: "unknown field alone: answered here", body: `{"aggregateId":"b1","command":"create","bogus":1}`,
			timeout: 5 * time.Second, readErr: "bogus"},
		{name: "malformed", body: `{"aggregateId":`, clustered: true, timeout: 5 * time.Second, readErr: "request envelope"},
		{name: "empty", clustered: true, timeout: 5 * time.Second, readErr: "empty request"},
		{name: "no id", body: `{"command":"create"}`, clustered: true, timeout: 5 * time.Second},
		{name: "id too long", body: `{"aggregateId":"` + long + `","command":"create"}`, clustered: true, timeout: 5 * time.Second},
		{name: "negative timeout", body: `{"aggregateId":"b1","command":"create","timeoutMs":-1}`, clustered: true, timeout: 5 * time.Second},
		{name: "timeout above the limit", body: fmt.Sprintf(`{"aggregateId":"b1","command":"create","timeoutMs":%d}`, api.MaxTimeoutMs+1),
			clustered: true, timeout: 5 * time.Second},
		{name: "oversized", body: `{"aggregateId":"b1","command":"create","args":{"x":"` + strings.Repeat("y", 1024) + `"}}`,
			clustered: true, timeout: 5 * time.Second, readErr: "limit 1024"},
		{name: "headers", header: hdr(api.HeaderAggregateID, "b2", api.HeaderCommand, "create", api.HeaderCommandID, "c2", api.HeaderTimeout, "2000"),
			body: `{"wattage":60}`, clustered: true, routable: true, id: "b2", cid: "c2", timeout: 2 * time.Second},
		{name: "headers, command missing: routed, the owner refuses", header: hdr(api.HeaderAggregateID, "b2"),
			clustered: true, routable: true, id: "b2", timeout: 5 * time.Second},
		{name: "headers, bad timeout", header: hdr(api.HeaderAggregateID, "b2", api.HeaderCommand, "create", api.HeaderTimeout, "soon"),
			clustered: true, timeout: 5 * time.Second, readErr: "not a whole number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := n.readCommandRequest(&nats.Msg{Subject: "s", Header: tc.header, Data: []byte(tc.body)}, tc.clustered)
			if c.routable != tc.routable || c.id != tc.id || c.commandID != tc.cid || c.timeout != tc.timeout {
				t.Errorf("routable %v id %q command id %q timeout %v, want %v %q %q %v",
					c.routable, c.id, c.commandID, c.timeout, tc.routable, tc.id, tc.cid, tc.timeout)
			}
			switch {
			case tc.readErr == "" && c.readErr != nil:
				t.Errorf("read refused: %+v", c.readErr)
			case tc.readErr != "" && (c.readErr == nil || c.readErr.Code != api.CodeInvalidRequest || !strings.Contains(c.readErr.Message, tc.readErr)):
				t.Errorf("read error %+v, want invalid request containing %q", c.readErr, tc.readErr)
			}
		})
	}
}

// FuzzPeekEnvelope: where the strict read of an envelope succeeds, the
// lenient peek reads the same routing fields, so routing on the strict
// read places every request where the peek alone placed it before.
func FuzzPeekEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"aggregateId":"b1","command":"create","commandId":"c1","timeoutMs":250}`,
		`{"AggregateID":"b1","COMMAND":"create","commandid":"c1"}`,
		`{"aggregateId":"b1","aggregateId":"b2","command":"create"}`,
		`{"aggregateId":"b1","command":"create","args":{"aggregateId":"nested"}}`,
		`null`,
		`{"aggregateId":"\u00e9t\u00e9","command":"x","timeoutMs":1e3}`,
		`{"aggregateId":"b1"} {}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, headerMode, apiErr := readCommand(nil, data, len(data))
		if headerMode {
			t.Fatal("no headers, yet header mode")
		}
		if apiErr != nil {
			return
		}
		id, cid, ms, ok := peekEnvelope(data)
		if !ok || id != env.AggregateID || cid != env.CommandID || ms != env.TimeoutMs {
			t.Fatalf("strict read %q %q %d; peek %q %q %d ok %v", env.AggregateID, env.CommandID, env.TimeoutMs, id, cid, ms, ok)
		}
	})
}

// dispatchNode is a node with just what dispatch needs, routing as "a".
func dispatchNode(r *routing, nc *nats.Conn) *Node {
	n := &Node{cfg: Config{NodeID: "a", Cluster: &ClusterConfig{MaxHops: 32}}, nc: nc,
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	n.route.Store(r)
	return n
}

// recorder is a request's continuations, counting their calls.
type recorder struct {
	runs  atomic.Int32
	fails atomic.Pointer[api.Error]
}

func (rec *recorder) attach(rq *request) *request {
	rq.run = func() { rec.runs.Add(1) }
	rq.fail = func(e *api.Error) { rec.fails.Store(e) }
	return rq
}

// TestDispatchDelayThenLocal: a request without an owner waits, counted as
// delayed, with one hop more; when the timer fires it is routed again on
// the ring of that moment and its own continuation runs it, without being
// read again.
func TestDispatchDelayThenLocal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := dispatchNode(&routing{}, nil)
		var rec recorder
		rq := rec.attach(&request{kind: "cmd", aggType: "T", id: "x", deadline: time.Now().Add(time.Second)})
		n.dispatch(rq)
		if rec.runs.Load() != 0 || rec.fails.Load() != nil {
			t.Fatal("a request without an owner did not wait")
		}
		if rq.hops != 1 || !rq.waited {
			t.Errorf("waiting: hops %d waited %v, want 1 true", rq.hops, rq.waited)
		}
		n.route.Store(testRouting(t, []string{"a"})) // the ring settles: ours
		time.Sleep(10 * time.Millisecond)
		n.delayed.Wait()
		if rec.runs.Load() != 1 || rec.fails.Load() != nil {
			t.Fatalf("after the wait: %d runs, failure %+v; want one run", rec.runs.Load(), rec.fails.Load())
		}
		if d, l := n.counters.delayed.Load(), n.counters.local.Load(); d != 1 || l != 1 {
			t.Errorf("counted %d delayed and %d local, want 1 and 1", d, l)
		}
	})
}

// TestDispatchFails: out of hops, the request is answered and counted as
// exhausted.
func TestDispatchFails(t *testing.T) {
	r := testRouting(t, []string{"a", "b"})
	n := dispatchNode(r, nil)
	var rec recorder
	n.dispatch(rec.attach(&request{kind: "cmd", aggType: "T", id: idOwnedBy(t, r, "b"), direct: true, hops: 32, deadline: time.Now().Add(time.Second)}))
	if e := rec.fails.Load(); e == nil || e.Code != api.CodeUnavailable || rec.runs.Load() != 0 {
		t.Fatalf("failure %+v, %d runs; want unavailable and none", e, rec.runs.Load())
	}
	if got := n.counters.exhausted.Load(); got != 1 {
		t.Errorf("counted %d exhausted, want 1", got)
	}
}

// TestDispatchForwards: a request for another's aggregate goes to the
// owner's direct subject as it came, with the client's reply subject, one
// hop more and the time it has left.
func TestDispatchForwards(t *testing.T) {
	s := testsupport.NATS(t)
	nc := testsupport.Connect(t, s.ClientURL())
	r := testRouting(t, []string{"a", "b"})
	id := idOwnedBy(t, r, "b")
	sub, err := nc.SubscribeSync("c.node.b.query.T")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	n := dispatchNode(r, nc)
	body, _ := json.Marshal(api.Query{AggregateID: id})
	in := &nats.Msg{Subject: "concursus.query.T", Reply: "_INBOX.client", Data: body, Header: nats.Header{"X-Client": {"kept"}, headerHops: {"1"}}}
	var rec recorder
	n.dispatch(rec.attach(&request{m: in, kind: "query", aggType: "T", id: id, direct: true, hops: 1, deadline: time.Now().Add(3 * time.Second)}))
	out, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rec.runs.Load() != 0 || rec.fails.Load() != nil {
		t.Errorf("forwarded, yet %d runs and failure %+v", rec.runs.Load(), rec.fails.Load())
	}
	if out.Reply != in.Reply || string(out.Data) != string(body) || out.Header.Get("X-Client") != "kept" {
		t.Errorf("forwarded reply %q data %s header %v; want the request as it came", out.Reply, out.Data, out.Header)
	}
	if h := hopsOf(out); h != 2 {
		t.Errorf("forwarded with %d hops, want 2", h)
	}
	if b, ok := budgetOf(out); !ok || b <= 0 || b > 3*time.Second {
		t.Errorf("forwarded with budget %v (%v), want at most 3s", b, ok)
	}
	if in.Header.Get(headerHops) != "1" {
		t.Errorf("the incoming request's headers changed: %v", in.Header)
	}
	if got := n.counters.rerouted.Load(); got != 1 {
		t.Errorf("counted %d rerouted, want 1", got)
	}
}
