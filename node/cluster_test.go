package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/client"
	"github.com/concursus-go/concursus/cluster"
	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
	"github.com/concursus-go/concursus/storage/memory"
)

// testCluster is several nodes in this process sharing one NATS server and
// one pair of in-memory logs, gossiping on loopback.
type testCluster struct {
	t        *testing.T
	url      string
	events   *memory.EventLog
	commands *countingCommands
	mu       sync.Mutex
	nodes    map[string]*node.Node
}

func newTestCluster(t *testing.T, size int) *testCluster {
	t.Helper()
	s := testsupport.NATS(t) // registered first, so shut down after the nodes
	c := &testCluster{t: t, url: s.ClientURL(), events: memory.NewEventLog(),
		commands: &countingCommands{CommandLog: memory.NewCommandLog()}, nodes: make(map[string]*node.Node)}
	t.Cleanup(func() {
		c.mu.Lock()
		nodes := c.nodes
		c.mu.Unlock()
		// One at a time: when every member leaves at once, the last one
		// waits out its leave timeout for peers that are gone.
		for _, n := range nodes {
			_ = n.Shutdown(context.Background())
		}
	})
	for i := range size {
		c.add(fmt.Sprintf("n%d", i+1))
	}
	c.waitConverged()
	return c
}

// countingCommands counts command-log reads.
type countingCommands struct {
	*memory.CommandLog
	gets atomic.Int64
}

func (c *countingCommands) Get(ctx context.Context, id string) (commandlog.Record, error) {
	c.gets.Add(1)
	return c.CommandLog.Get(ctx, id)
}

// add starts a node that joins the others.
func (c *testCluster) add(id string) *node.Node {
	c.t.Helper()
	var seeds []string
	c.mu.Lock()
	for _, n := range c.nodes {
		seeds = append(seeds, n.GossipAddr())
	}
	c.mu.Unlock()
	cfg := node.Config{
		NodeID: id,
		NATS:   node.NATSConfig{URL: c.url},
		Logger: quietLogger(),
		Cluster: &node.ClusterConfig{
			Gossip: cluster.Config{BindAddr: "127.0.0.1", Profile: cluster.ProfileLocal, Join: seeds,
				JoinBackoff: 50 * time.Millisecond},
			HandoverGrace: 100 * time.Millisecond,
		},
	}
	_, reg := lightbulbRegistry(c.t)
	n, err := node.New(context.Background(), cfg, reg, node.WithEventLog(c.events), node.WithCommandLog(c.commands))
	if err != nil {
		c.t.Fatalf("starting node %s: %v", id, err)
	}
	c.mu.Lock()
	c.nodes[id] = n
	c.mu.Unlock()
	return n
}

func (c *testCluster) node(id string) *node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

func (c *testCluster) remove(id string) *node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.nodes[id]
	delete(c.nodes, id)
	return n
}

func (c *testCluster) list() []*node.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*node.Node
	for _, n := range c.nodes {
		out = append(out, n)
	}
	return out
}

// waitConverged waits until every node's ring holds exactly the nodes of
// the cluster and all tables agree.
func (c *testCluster) waitConverged() {
	c.t.Helper()
	nodes := c.list()
	testsupport.Eventually(c.t, 20*time.Second, fmt.Sprintf("%d nodes to agree on the ring", len(nodes)), func() bool {
		var fp string
		for _, n := range nodes {
			info := n.ClusterInfo()
			if info.InRing() != len(nodes) || info.Fingerprint == "" || (fp != "" && info.Fingerprint != fp) {
				return false
			}
			fp = info.Fingerprint
		}
		return true
	})
}

// checkHistories reads every aggregate's history from the shared log and
// checks that it is gap-free and that each accepted command's events are
// there exactly once.
func (c *testCluster) checkHistories(accepted map[model.Ref][]string) int {
	c.t.Helper()
	total := 0
	for ref, ids := range accepted {
		seen := make(map[string]int)
		var seq uint64
		for e, err := range eventlog.Events(context.Background(), c.events, ref, 1, 256) {
			if err != nil {
				c.t.Fatalf("reading %s: %v", ref, err)
			}
			seq++
			if e.Sequence != seq {
				c.t.Fatalf("%s: event %d has sequence %d: a gap", ref, seq, e.Sequence)
			}
			seen[e.CommandID]++
			total++
		}
		for _, id := range ids {
			if seen[id] != 1 {
				c.t.Errorf("%s: accepted command %s has %d events in the log, want 1", ref, id, seen[id])
			}
		}
		if len(seen) != len(ids) {
			c.t.Errorf("%s: %d commands in the log, %d acknowledged", ref, len(seen), len(ids))
		}
	}
	return total
}

func TestClusterNodesAgreeAndRouteToOwners(t *testing.T) {
	c := newTestCluster(t, 3)
	nc := testsupport.Connect(t, c.url)
	// Every node computes the same owner for every aggregate.
	nodes := c.list()
	for i := range 200 {
		id := fmt.Sprintf("bulb-%d", i)
		want := nodes[0].Owner(lightbulb.TypeName, id)
		for _, n := range nodes[1:] {
			if got := n.Owner(lightbulb.TypeName, id); got != want {
				t.Fatalf("%s: node %s says owner %s, node %s says %s", id, nodes[0].NodeID(), want, n.NodeID(), got)
			}
		}
	}
	// Commands through the queue group run on their owners only.
	owned := make(map[string]int)
	for i := range 60 {
		id := fmt.Sprintf("bulb-%d", i)
		mustOK(t, nc, api.Command{AggregateID: id, Command: "create", Args: json.RawMessage(`{"wattage":60}`)})
		mustOK(t, nc, api.Command{AggregateID: id, Command: "screwIn", Args: json.RawMessage(`{"location":"hall"}`)})
		owned[nodes[0].Owner(lightbulb.TypeName, id)] += 2
	}
	var forwarded uint64
	for _, n := range nodes {
		st := n.Executor().Stats()
		if int(st.Accepted) != owned[n.NodeID()] {
			t.Errorf("node %s accepted %d commands, owns aggregates that got %d", n.NodeID(), st.Accepted, owned[n.NodeID()])
		}
		r := n.ClusterInfo().Routing
		forwarded += r.Forwarded
		if r.Exhausted != 0 {
			t.Errorf("node %s: %d requests exhausted on a stable ring", n.NodeID(), r.Exhausted)
		}
	}
	if forwarded == 0 {
		t.Error("no request was forwarded: the queue group always hit the owner (120 requests over 3 nodes)?")
	}
	// A request sent to a node that does not own the aggregate, on its
	// direct subject, is passed on and answered by the owner.
	id := "bulb-7"
	owner := nodes[0].Owner(lightbulb.TypeName, id)
	var other *node.Node
	for _, n := range nodes {
		if n.NodeID() != owner {
			other = n
		}
	}
	var r api.Reply
	request(t, nc, "concursus.node."+other.NodeID()+".cmd."+lightbulb.TypeName, envelope(t, api.Command{AggregateID: id, Command: "switchOn"}), &r)
	if !r.OK {
		t.Fatalf("switchOn sent to non-owner %s: %+v", other.NodeID(), r.Error)
	}
	if got := other.ClusterInfo().Routing.Rerouted; got != 1 {
		t.Errorf("non-owner rerouted %d requests, want 1", got)
	}
	// Queries are answered by the owner too.
	q := query(t, nc, api.Query{AggregateID: id})
	if !q.OK || q.Sequence != 3 {
		t.Fatalf("query: %+v (want sequence 3)", q)
	}
}

func TestClusterInfoOverNATS(t *testing.T) {
	c := newTestCluster(t, 2)
	nc := testsupport.Connect(t, c.url)
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest(api.AdminClusterSubject(api.DefaultPrefix), inbox, nil); err != nil {
		t.Fatal(err)
	}
	seen := make(map[string]api.ClusterInfo)
	for len(seen) < 2 {
		m, err := sub.NextMsg(reqTimeout)
		if err != nil {
			t.Fatalf("after %d replies: %v", len(seen), err)
		}
		var info api.ClusterInfo
		if err := json.Unmarshal(m.Data, &info); err != nil {
			t.Fatal(err)
		}
		seen[info.NodeID] = info
	}
	for id, info := range seen {
		if !info.Clustered || len(info.Owners) != 1021 || len(info.Members) != 2 || info.Ring != "1021/20/1.25" {
			t.Errorf("%s: clustered=%v owners=%d members=%d ring=%q", id, info.Clustered, len(info.Owners), len(info.Members), info.Ring)
		}
		sum := 0
		for _, m := range info.Members {
			sum += m.Partitions
			if m.State != "alive" || !m.InRing || !strings.HasPrefix(m.Subject, "concursus.node.") {
				t.Errorf("%s sees member %+v", id, m)
			}
		}
		if sum != 1021 {
			t.Errorf("%s: members own %d partitions, want 1021", id, sum)
		}
	}
	var one api.ClusterInfo
	request(t, nc, api.NodeAdminSubject(api.DefaultPrefix, "n2"), nil, &one)
	if one.NodeID != "n2" {
		t.Errorf("direct admin request answered by %q", one.NodeID)
	}
}

// load drives commands over many aggregates through the Go client (which
// retries with the same command id) until stop is closed, and records
// every acknowledged command. Each worker owns its aggregates, so it knows
// what each command must do.
type load struct {
	mu       sync.Mutex
	accepted map[model.Ref][]string
	failures []error
	sent     atomic.Int64
	wg       sync.WaitGroup
}

func startLoad(t *testing.T, url string, workers, perWorker int, stop <-chan struct{}) *load {
	t.Helper()
	l := &load{accepted: make(map[model.Ref][]string)}
	nc := testsupport.Connect(t, url)
	cl := client.New(nc, client.Options{Timeout: 20 * time.Second, Attempt: 2 * time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	for w := range workers {
		l.wg.Go(func() {
			bulbs := testsupport.NewLightbulbs(w, perWorker)
			for {
				select {
				case <-stop:
					return
				default:
				}
				c := bulbs.Next()
				_, err := cl.SendRaw(context.Background(), lightbulb.TypeName, c.AggregateID, c.Command, c.Args, client.WithCommandID(c.CommandID))
				l.sent.Add(1)
				if err != nil {
					l.mu.Lock()
					l.failures = append(l.failures, fmt.Errorf("%s %s (%s): %w", c.Command, c.AggregateID, c.CommandID, err))
					l.mu.Unlock()
					return
				}
				bulbs.Accepted()
				l.mu.Lock()
				ref := lbRef(c.AggregateID)
				l.accepted[ref] = append(l.accepted[ref], c.CommandID)
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *load) waitSent(t *testing.T, n int64) {
	t.Helper()
	testsupport.Eventually(t, 30*time.Second, fmt.Sprintf("%d commands sent", n), func() bool { return l.sent.Load() >= n || l.failed() })
}

func (l *load) failed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.failures) > 0
}

func (l *load) finish(t *testing.T, stop chan struct{}) map[model.Ref][]string {
	t.Helper()
	close(stop)
	l.wg.Wait()
	for _, err := range l.failures {
		t.Errorf("client request failed: %v", err)
	}
	return l.accepted
}

func movedFraction(nodes []*node.Node) float64 {
	var max uint64
	for _, n := range nodes {
		max = maxU(max, n.ClusterInfo().Routing.PartitionsMoved)
	}
	return float64(max) / 1021
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

func TestClusterScalesOutUnderLoad(t *testing.T) {
	c := newTestCluster(t, 2)
	stop := make(chan struct{})
	l := startLoad(t, c.url, 8, 20, stop)
	l.waitSent(t, 300)
	before := c.node("n1").ClusterInfo().Routing.PartitionsMoved
	n3 := c.add("n3")
	c.waitConverged()
	moved := float64(c.node("n1").ClusterInfo().Routing.PartitionsMoved-before) / 1021
	l.waitSent(t, l.sent.Load()+300)
	accepted := l.finish(t, stop)
	total := c.checkHistories(accepted)
	t.Logf("%d events from %d aggregates; adding a third node moved %.3f of the partitions", total, len(accepted), moved)
	if moved < 0.15 || moved > 0.55 {
		t.Errorf("adding the 3rd node moved %.3f of the partitions; consistent hashing should move about 1/3", moved)
	}
	if n3.Executor().Stats().Accepted == 0 {
		t.Error("the new node ran no command")
	}
}

func TestClusterGracefulLeaveUnderLoad(t *testing.T) {
	testClusterLosesMemberUnderLoad(t, "n2", "left", func(t *testing.T, n *node.Node) {
		if err := n.Shutdown(context.Background()); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	})
}

func TestClusterNodeFailureUnderLoad(t *testing.T) {
	testClusterLosesMemberUnderLoad(t, "n3", "dead", func(_ *testing.T, n *node.Node) { n.Kill() })
}

// testClusterLosesMemberUnderLoad takes member victim out of a 3-node
// cluster under load with stop (a graceful shutdown or a kill): the
// survivors must agree on a ring without it, keep serving, see it in
// state want, and every acknowledged command must be in the histories.
func testClusterLosesMemberUnderLoad(t *testing.T, victim, want string, stop func(*testing.T, *node.Node)) {
	c := newTestCluster(t, 3)
	done := make(chan struct{})
	l := startLoad(t, c.url, 8, 20, done)
	l.waitSent(t, 300)
	began := time.Now()
	stop(t, c.remove(victim))
	c.waitConverged()
	t.Logf("survivors agreed on a ring without %s %v after it went", victim, time.Since(began).Round(time.Millisecond))
	l.waitSent(t, l.sent.Load()+300)
	accepted := l.finish(t, done)
	c.checkHistories(accepted)
	for _, n := range c.list() {
		for _, m := range n.ClusterInfo().Members {
			if m.ID == victim && m.State != want {
				t.Errorf("%s sees %s as %s, want %s", n.NodeID(), victim, m.State, want)
			}
		}
	}
}

func TestClusterRefusesEmbeddedStore(t *testing.T) {
	cfg := testConfig(t)
	cfg.Cluster = &node.ClusterConfig{Gossip: cluster.Config{BindPort: 0, Profile: cluster.ProfileLocal}}
	_, reg := lightbulbRegistry(t)
	_, err := node.New(context.Background(), cfg, reg)
	if err == nil || !strings.Contains(err.Error(), "shared") {
		t.Fatalf("New with the embedded store in a cluster: %v, want an error about a shared log", err)
	}
}

func TestClusterRefusesDifferentRingSettings(t *testing.T) {
	c := newTestCluster(t, 1)
	cfg := node.Config{
		NodeID: "odd",
		NATS:   node.NATSConfig{URL: c.url},
		Logger: quietLogger(),
		Cluster: &node.ClusterConfig{
			Gossip: cluster.Config{BindAddr: "127.0.0.1", Profile: cluster.ProfileLocal, Join: []string{c.node("n1").GossipAddr()}},
		},
	}
	cfg.Cluster.Ring.PartitionCount = 509
	_, reg := lightbulbRegistry(t)
	_, err := node.New(context.Background(), cfg, reg, node.WithEventLog(c.events), node.WithCommandLog(c.commands))
	if err == nil || !strings.Contains(err.Error(), "ring settings") {
		t.Fatalf("joining with 509 partitions: %v, want an error naming the ring settings", err)
	}
}

func TestClusterForwardedBadInputIsAnsweredByTheOwner(t *testing.T) {
	c := newTestCluster(t, 2)
	nc := testsupport.Connect(t, c.url)
	nodes := c.list()
	// An aggregate n1 does not own, sent to n1's direct subject with a
	// field the strict decoder refuses: n1 routes on the id alone, the
	// owner decodes in full and answers.
	var id string
	for i := 0; ; i++ {
		id = fmt.Sprintf("bad-%d", i)
		if nodes[0].Owner(lightbulb.TypeName, id) != "n1" {
			break
		}
	}
	body := []byte(`{"aggregateId":"` + id + `","command":"create","commandId":"bad-1","args":{"wattage":60},"bogus":1}`)
	var r api.Reply
	request(t, nc, "concursus.node.n1.cmd."+lightbulb.TypeName, body, &r)
	wantError(t, r.Error, r.OK, api.CodeInvalidRequest, "bogus")
	if got := c.node("n1").ClusterInfo().Routing.Rerouted; got != 1 {
		t.Errorf("n1 rerouted %d requests, want 1", got)
	}
	assertNothingWritten(t, nodes[0], lbRef(id), "bad-1")
	// Malformed JSON cannot be routed: the receiving node answers.
	request(t, nc, cmdSubject, []byte(`{"aggregateId":`), &r)
	wantError(t, r.Error, r.OK, api.CodeInvalidRequest)
}

func TestClusterRequestsOutOfHopsOrTimeGetRetryableErrors(t *testing.T) {
	c := newTestCluster(t, 2)
	nc := testsupport.Connect(t, c.url)
	var id string
	for i := 0; ; i++ {
		id = fmt.Sprintf("hop-%d", i)
		if c.node("n1").Owner(lightbulb.TypeName, id) == "n2" {
			break
		}
	}
	send := func(hops, budgetMs string) api.Reply {
		t.Helper()
		var r api.Reply
		requestMsg(t, nc, "concursus.node.n1.cmd."+lightbulb.TypeName, map[string]string{"Concursus-Hops": hops, "Concursus-Budget-Ms": budgetMs},
			envelope(t, api.Command{AggregateID: id, Command: "create", CommandID: "hop-" + hops, Args: json.RawMessage(`{"wattage":60}`)}), &r)
		return r
	}
	r := send("32", "5000")
	wantError(t, r.Error, r.OK, api.CodeUnavailable, "hops")
	if !r.Error.Code.Retryable() {
		t.Error("out of hops is not retryable")
	}
	assertNothingWritten(t, c.node("n1"), lbRef(id), "hop-32")
	// With hops to spare the same request is passed on and runs.
	if r := send("1", "5000"); !r.OK {
		t.Fatalf("forwarded with one hop: %+v", r.Error)
	}
	// A request that has bounced (two hops) waits once for the rings to
	// settle and is then passed on (a regression: it used to wait again
	// at every turn until it ran out of hops).
	// (The owner answers: the bulb exists already.)
	if r := send("2", "5000"); r.Error == nil || r.Error.Reason != "already_exists" {
		t.Fatalf("forwarded after two hops: %+v", r)
	}
	routing := c.node("n1").ClusterInfo().Routing
	if routing.Exhausted != 1 || routing.Delayed != 1 {
		t.Errorf("n1 counted %d exhausted and %d delayed requests, want 1 and 1", routing.Exhausted, routing.Delayed)
	}
}

func TestClusterNodeJoinsTheRingOnlyOnceItsStoreConnects(t *testing.T) {
	c := newTestCluster(t, 1)
	gate := make(chan struct{})
	cfg := node.Config{
		NodeID: "late",
		NATS:   node.NATSConfig{URL: c.url},
		Logger: quietLogger(),
		Cluster: &node.ClusterConfig{Gossip: cluster.Config{BindAddr: "127.0.0.1", Profile: cluster.ProfileLocal,
			Join: []string{c.node("n1").GossipAddr()}}},
	}
	_, reg := lightbulbRegistry(t)
	late, err := node.New(context.Background(), cfg, reg, node.WithStoreOpener("gated", func(ctx context.Context) (node.Stores, error) {
		select {
		case <-gate:
			return node.Stores{Events: c.events, Commands: c.commands}, nil
		case <-ctx.Done():
			return node.Stores{}, ctx.Err()
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = late.Shutdown(context.Background()) })
	inRing := func(n *node.Node, id string) bool {
		for _, m := range n.ClusterInfo().Members {
			if m.ID == id {
				return m.InRing
			}
		}
		return false
	}
	testsupport.Eventually(t, 10*time.Second, "n1 to see the new member", func() bool {
		return len(c.node("n1").ClusterInfo().Members) == 2
	})
	if inRing(c.node("n1"), "late") || inRing(late, "late") {
		t.Fatal("a node whose store is not connected is in the ring")
	}
	// Meanwhile its requests are served by n1.
	nc := testsupport.Connect(t, c.url)
	mustOK(t, nc, api.Command{AggregateID: "early", Command: "create", Args: json.RawMessage(`{"wattage":60}`)})
	close(gate)
	testsupport.Eventually(t, 10*time.Second, "the node to join the rings once its store connected", func() bool {
		return inRing(c.node("n1"), "late") && inRing(late, "late")
	})
}

func TestClusterLeavesOutAMemberNATSCannotReach(t *testing.T) {
	c := newTestCluster(t, 3)
	// n3 stays alive in gossip but loses its NATS connection, as a node
	// whose process died does at once (gossip needs seconds to notice).
	c.node("n3").Conn().Close()
	survivors := []*node.Node{c.node("n1"), c.node("n2")}
	testsupport.Eventually(t, 10*time.Second, "n1 and n2 to leave n3 out of their rings", func() bool {
		for _, n := range survivors {
			for _, m := range n.ClusterInfo().Members {
				if m.ID == "n3" && (m.InRing || !m.Unreachable || m.State != "alive") {
					return false
				}
			}
		}
		return survivors[0].ClusterInfo().Fingerprint == survivors[1].ClusterInfo().Fingerprint
	})
	nc := testsupport.Connect(t, c.url)
	for i := range 30 {
		mustOK(t, nc, api.Command{AggregateID: fmt.Sprintf("reach-%d", i), Command: "create", Args: json.RawMessage(`{"wattage":60}`)})
	}
}

// groupOf returns n's view of the idempotency group (the zero value when
// it runs none).
func groupOf(n *node.Node) api.IdempotencyStats {
	if g := n.ClusterInfo().Idempotency; g != nil {
		return *g
	}
	return api.IdempotencyStats{}
}

// waitGroup waits until every node is in one raft group with a leader and
// the wanted number of voters.
func (c *testCluster) waitGroup(voters int) string {
	c.t.Helper()
	var leader string
	testsupport.Eventually(c.t, 30*time.Second, "one idempotency group with a leader on every node", func() bool {
		var id string
		for _, n := range c.list() {
			g := groupOf(n)
			if g.GroupID == "" || g.Leader == "" || (id != "" && g.GroupID != id) || len(g.Voters) != voters {
				return false
			}
			id, leader = g.GroupID, g.Leader
		}
		return true
	})
	return leader
}

func TestClusterIdempotencyFilterAnswersRetriesEverywhere(t *testing.T) {
	c := newTestCluster(t, 3)
	c.waitGroup(3)
	// A node's filter serves once its replica has caught up with the
	// group, which it notices on its next membership step, a moment after
	// the group shows a leader and its voters. Until then every command
	// id is looked up in the command log (and no filter miss is counted).
	testsupport.Eventually(t, 10*time.Second, "every node's filter to serve", func() bool {
		for _, n := range c.list() {
			if !n.FilterReady() {
				return false
			}
		}
		return true
	})
	nc := testsupport.Connect(t, c.url)
	gets := c.commands.gets.Load()
	// The same command id sent at once to every node's direct subject
	// takes effect once, and every sender gets the same outcome.
	mustOK(t, nc, api.Command{AggregateID: "same", Command: "create", CommandID: "same-create", Args: json.RawMessage(`{"wattage":60}`)})
	mustOK(t, nc, api.Command{AggregateID: "same", Command: "screwIn", CommandID: "same-screw", Args: json.RawMessage(`{"location":"hall"}`)})
	var wg sync.WaitGroup
	replies := make([]api.Reply, 0, 9)
	var errs []error
	var mu sync.Mutex
	body := envelope(t, api.Command{AggregateID: "same", Command: "switchOn", CommandID: "same-on"})
	for range 3 {
		for _, n := range c.list() {
			wg.Go(func() {
				var r api.Reply
				subject := "concursus.node." + n.NodeID() + ".cmd." + lightbulb.TypeName
				m, err := nc.Request(subject, body, reqTimeout)
				if err == nil {
					err = json.Unmarshal(m.Data, &r)
				}
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: %w", subject, err))
					return
				}
				replies = append(replies, r)
			})
		}
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("sending same-on: %v", errs)
	}
	dups := 0
	for _, r := range replies {
		if !r.OK || r.Sequence != 3 {
			t.Fatalf("a sender of same-on got %+v, want ok at sequence 3", r)
		}
		if r.Duplicate {
			dups++
		}
	}
	if dups != len(replies)-1 {
		t.Errorf("%d of %d replies are duplicates, want all but one", dups, len(replies))
	}
	if last, _ := c.events.LastSequence(context.Background(), lbRef("same")); last != 3 {
		t.Fatalf("log at %d, want 3", last)
	}
	// Every replica learns the outcome; after the owner dies, a retry at
	// the new owner is answered from the filter.
	testsupport.Eventually(t, 10*time.Second, "every replica to hold the outcomes", func() bool {
		for _, n := range c.list() {
			if groupOf(n).Filter.Entries < 3 {
				return false
			}
		}
		return true
	})
	// The group formed moments ago, so its memory may lack outcomes from
	// before (executor.Completer): its misses, and the first load of the
	// aggregate, are checked against the command log. Nothing else reads
	// it.
	var explained int64
	for _, n := range c.list() {
		st := n.Executor().Stats()
		explained += st.DoubtedMisses + st.Loads
	}
	if got := c.commands.gets.Load() - gets; got > explained {
		t.Errorf("the command log was read %d times, more than the %d misses of a young filter and loads", got, explained)
	}
	owner := c.list()[0].Owner(lightbulb.TypeName, "same")
	c.remove(owner).Kill()
	c.waitConverged()
	r := mustOK(t, nc, api.Command{AggregateID: "same", Command: "switchOn", CommandID: "same-on"})
	if !r.Duplicate || r.Sequence != 3 {
		t.Errorf("retry after the owner died: %+v, want the original outcome", r)
	}
	if last, _ := c.events.LastSequence(context.Background(), lbRef("same")); last != 3 {
		t.Errorf("log at %d after the retry, want 3", last)
	}
}

func TestClusterIdempotencySurvivesLosingTheRaftLeader(t *testing.T) {
	c := newTestCluster(t, 3)
	leader := c.waitGroup(3)
	nc := testsupport.Connect(t, c.url)
	mustOK(t, nc, api.Command{AggregateID: "lead", Command: "create", CommandID: "lead-1", Args: json.RawMessage(`{"wattage":60}`)})
	c.remove(leader).Kill()
	c.waitConverged()
	// A minority is gone and with it the leader: the two survivors elect
	// one and keep recording.
	testsupport.Eventually(t, 30*time.Second, "a new raft leader among the survivors", func() bool {
		for _, n := range c.list() {
			if g := groupOf(n); g.Leader == "" || g.Leader == leader {
				return false
			}
		}
		return true
	})
	mustOK(t, nc, api.Command{AggregateID: "lead", Command: "screwIn", CommandID: "lead-2", Args: json.RawMessage(`{"location":"hall"}`)})
	testsupport.Eventually(t, 30*time.Second, "the new outcome on both survivors", func() bool {
		for _, n := range c.list() {
			if groupOf(n).Filter.Entries < 2 {
				return false
			}
		}
		return true
	})
	for _, id := range []string{"lead-1", "lead-2"} {
		cmd := map[string]string{"lead-1": "create", "lead-2": "screwIn"}[id]
		args := map[string]string{"lead-1": `{"wattage":60}`, "lead-2": `{"location":"hall"}`}[id]
		r := command(t, nc, api.Command{AggregateID: "lead", Command: cmd, CommandID: id, Args: json.RawMessage(args)})
		if !r.Duplicate {
			t.Errorf("retry of %s after losing the raft leader: %+v", id, r)
		}
	}
}
