package idempotency

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/concursus-go/concursus/cluster"
	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/internal/testsupport"
)

// testLogger logs warnings and errors into the test's log until the test
// ends (raft's transport goroutines may still say something while they
// wind down; that is dropped).
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop) // registered first, so it runs last
	level := testLogLevel
	if _, ok := t.(*testing.B); ok {
		level = slog.LevelError // keep benchmark output to the figures
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Logf("%s", p)
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

var _ io.Writer = (*testWriter)(nil)

// testNet is an in-process cluster: groups on loopback raft transports, a
// member table standing in for gossip (views are pushed to every live
// group on each change), and forwarding by direct call.
type testNet struct {
	t       testing.TB
	log     *slog.Logger
	tweak   func(*GroupConfig)
	clock   *testsupport.Clock // nil: real time
	mu      sync.Mutex
	groups  map[string]*Group
	members map[string]cluster.Member
	version uint64
	// forwardHook, when set, replaces direct forwarding (NATS tests).
	forwardHook ForwardFunc
}

func newTestNet(t testing.TB, tweak func(*GroupConfig)) *testNet {
	n := &testNet{t: t, log: testLogger(t), tweak: tweak, groups: map[string]*Group{}, members: map[string]cluster.Member{}}
	t.Cleanup(n.closeAll)
	return n
}

func (n *testNet) config(id string) GroupConfig {
	c := GroupConfig{
		NodeID: id, Profile: ProfileLocal, FailureGrace: 500 * time.Millisecond,
		ProposeTimeout: 10 * time.Second,
		Forward:        n.forward, MemberGroup: n.memberGroup,
	}
	if n.clock != nil {
		c.Clock = n.clock.Now
	}
	if n.tweak != nil {
		n.tweak(&c)
	}
	return c
}

func (n *testNet) group(id string) *Group {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.groups[id]
}

func (n *testNet) live() []*Group {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*Group
	for _, g := range n.groups {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b *Group) int {
		if a.cfg.NodeID < b.cfg.NodeID {
			return -1
		}
		return 1
	})
	return out
}

func (n *testNet) forward(ctx context.Context, leaderID string, payload []byte) error {
	if n.forwardHook != nil {
		return n.forwardHook(ctx, leaderID, payload)
	}
	g := n.group(leaderID)
	if g == nil {
		return fmt.Errorf("%w: %s is unreachable", ErrUnavailable, leaderID)
	}
	return g.HandleForwarded(ctx, payload)
}

// memberGroup stands in for the group id a member gossips in its Meta.
func (n *testNet) memberGroup(m cluster.Member) string {
	if g := n.group(m.ID); g != nil {
		return g.GroupID()
	}
	return ""
}

// start creates groups and announces them alive, all in one view.
func (n *testNet) start(ids ...string) []*Group {
	n.t.Helper()
	out := n.add(ids...)
	n.publish()
	return out
}

// publish pushes a new view to every live group.
func (n *testNet) publish() {
	n.mu.Lock()
	n.version++
	v := cluster.View{Version: n.version}
	for _, m := range n.members {
		v.Members = append(v.Members, m)
	}
	slices.SortFunc(v.Members, func(a, b cluster.Member) int {
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	var gs []*Group
	for _, g := range n.groups {
		gs = append(gs, g)
	}
	n.mu.Unlock()
	for _, g := range gs {
		g.Observe(v)
	}
}

// kill stops a group without grace (like a crash) and marks its member
// dead.
func (n *testNet) kill(id string) {
	g := n.drop(id, cluster.StateDead)
	_ = g.close(false)
	n.publish()
}

// drop takes member id's group out of the net and gives the member state.
func (n *testNet) drop(id string, state cluster.State) *Group {
	n.mu.Lock()
	defer n.mu.Unlock()
	g := n.groups[id]
	delete(n.groups, id)
	m := n.members[id]
	m.State = state
	n.members[id] = m
	return g
}

// leave marks a member left (as cluster.Leave would) and shuts its group
// down gracefully.
func (n *testNet) leave(id string) {
	g := n.drop(id, cluster.StateLeft)
	n.publish()
	if err := g.Shutdown(); err != nil {
		n.t.Errorf("shutdown %s: %v", id, err)
	}
}

func (n *testNet) closeAll() {
	for _, g := range n.live() {
		_ = g.close(false)
	}
}

// leader returns the single live leader, or an error.
func (n *testNet) leader() (*Group, error) {
	var leaders []*Group
	for _, g := range n.live() {
		if g.raft.State() == raft.Leader {
			leaders = append(leaders, g)
		}
	}
	if len(leaders) != 1 {
		return nil, fmt.Errorf("%d leaders", len(leaders))
	}
	return leaders[0], nil
}

// waitConfig waits until one leader's configuration has exactly these
// voters and non-voters, and every live group has joined its group.
func (n *testNet) waitConfig(voters, nonVoters []string) *Group {
	n.t.Helper()
	var leader *Group
	// Every 20ms: each look moves the fake clock on by 50ms, so the
	// interval sets how fast fake time runs against raft's real timers.
	testsupport.EventuallyEvery(n.t, 20*time.Second, 20*time.Millisecond, fmt.Sprintf("voters %v, non-voters %v", voters, nonVoters), func() error {
		if n.clock != nil {
			n.clock.Advance(50 * time.Millisecond)
		}
		l, err := n.leader()
		if err != nil {
			return err
		}
		s := l.Stats()
		if !slices.Equal(s.Voters, voters) || !slices.Equal(s.NonVoters, nonVoters) {
			return fmt.Errorf("leader %s has voters %v, non-voters %v", s.NodeID, s.Voters, s.NonVoters)
		}
		for _, g := range n.live() {
			if g.GroupID() == "" || g.GroupID() != s.GroupID {
				return fmt.Errorf("%s is in group %q, the leader in %q", g.cfg.NodeID, g.GroupID(), s.GroupID)
			}
			if !g.Ready() {
				return fmt.Errorf("%s is not ready", g.cfg.NodeID)
			}
		}
		leader = l
		return nil
	})
	return leader
}

// waitHeld waits until every live group's replica holds the command ids.
func (n *testNet) waitHeld(ids ...string) {
	n.t.Helper()
	testsupport.EventuallyErr(n.t, 10*time.Second, "records replicated", func() error {
		for _, g := range n.live() {
			for _, id := range ids {
				if _, ok := g.Lookup(id); !ok {
					return fmt.Errorf("%s does not hold %s", g.cfg.NodeID, id)
				}
			}
		}
		return nil
	})
}

// recordHeld records count fresh records (see records) through g and
// waits until every live group's replica holds them.
func (n *testNet) recordHeld(g *Group, prefix string, count int) ([]commandlog.Record, []string) {
	n.t.Helper()
	recs, ids := records(prefix, count)
	if err := g.Record(ctxTimeout(n.t, 10*time.Second), recs); err != nil {
		n.t.Fatalf("record %s on %s: %v", prefix, g.cfg.NodeID, err)
	}
	n.waitHeld(ids...)
	return recs, ids
}

var recordSeq atomic.Int64

// records makes n records with fresh command ids.
func records(prefix string, n int) ([]commandlog.Record, []string) {
	var recs []commandlog.Record
	var ids []string
	for range n {
		id := fmt.Sprintf("%s-%d", prefix, recordSeq.Add(1))
		recs = append(recs, rec(id))
		ids = append(ids, id)
	}
	return recs, ids
}

func ctxTimeout(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

var testLogLevel = slog.LevelWarn

// publishPartial pushes to the given groups a view holding only the given
// members (a gossip partition).
func (n *testNet) publishPartial(to []string, members ...string) {
	n.mu.Lock()
	n.version++
	v := cluster.View{Version: n.version}
	for _, id := range members {
		v.Members = append(v.Members, n.members[id])
	}
	slices.SortFunc(v.Members, func(a, b cluster.Member) int {
		if a.ID < b.ID {
			return -1
		}
		return 1
	})
	var gs []*Group
	for _, id := range to {
		gs = append(gs, n.groups[id])
	}
	n.mu.Unlock()
	for _, g := range gs {
		g.Observe(v)
	}
}

// add creates groups and records them as alive members without
// publishing a view.
func (n *testNet) add(ids ...string) []*Group {
	n.t.Helper()
	var out []*Group
	for _, id := range ids {
		g, err := NewGroup(n.config(id), n.log)
		if err != nil {
			n.t.Fatal(err)
		}
		n.mu.Lock()
		n.groups[id] = g
		n.members[id] = cluster.Member{ID: id, Addr: "gossip-" + id, State: cluster.StateAlive, Meta: cluster.Meta{NodeID: id, RaftAddr: g.Addr()}}
		n.mu.Unlock()
		out = append(out, g)
	}
	return out
}
