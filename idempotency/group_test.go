package idempotency

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/concursus-go/concursus/cluster"
	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/internal/testsupport"
)

// TestThreeStartedAtOnceFormOneGroup: three nodes that start together and
// see each other bootstrap exactly one group (the smallest id does), the
// leader adds the other two, and records proposed on a follower reach
// every replica.
func TestThreeStartedAtOnceFormOneGroup(t *testing.T) {
	n := newTestNet(t, nil)
	for _, g := range n.start("n1", "n2", "n3") {
		if g.Ready() || g.Joined() {
			t.Fatalf("%s ready before any group formed", g.cfg.NodeID)
		}
	}
	leader := n.waitConfig([]string{"n1", "n2", "n3"}, nil) // all ready
	bootstrapped := 0
	for _, g := range n.live() {
		g.mu.Lock()
		if g.mu.bootstrapID != "" {
			bootstrapped++
			if g.cfg.NodeID != "n1" {
				t.Errorf("%s bootstrapped; the smallest id, n1, should have", g.cfg.NodeID)
			}
		}
		g.mu.Unlock()
		if c := g.Stats().Conflicts; len(c) > 0 {
			t.Errorf("%s sees conflicting groups %v", g.cfg.NodeID, c)
		}
	}
	if bootstrapped != 1 {
		t.Fatalf("%d nodes bootstrapped a group, want 1", bootstrapped)
	}
	var follower *Group
	for _, g := range n.live() {
		if g != leader {
			follower = g
			break
		}
	}
	recs, ids := records("follower", 5)
	recs[2].Outcome, recs[2].Code, recs[2].Reason, recs[2].Message = commandlog.Rejected, "rejected", "not_screwed_in", "screw it in first"
	if err := follower.Record(ctxTimeout(t, 10*time.Second), recs); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids { // read-your-writes on the proposing node
		if _, ok := follower.Lookup(id); !ok {
			t.Fatalf("Record returned on %s before its replica held %s", follower.cfg.NodeID, id)
		}
	}
	n.waitHeld(ids...)
	for _, g := range n.live() {
		got, _ := g.Lookup(ids[2])
		if got.Outcome != commandlog.Rejected || got.Reason != "not_screwed_in" || !got.At.Equal(recs[2].At) {
			t.Fatalf("%s holds %+v", g.cfg.NodeID, got)
		}
	}
	if s := follower.Stats(); s.Forwarded == 0 || s.Role != "follower" || s.Leader != leader.cfg.NodeID {
		t.Fatalf("follower stats %+v", s)
	}
}

// TestLateSmallerNodeJoinsExistingGroup: a node that arrives later with
// the smallest id does not bootstrap a second group: members advertise a
// group, so it waits and the leader adds it (as a non-voter: three voters
// already).
func TestLateSmallerNodeJoinsExistingGroup(t *testing.T) {
	n := newTestNet(t, nil)
	n.start("n1", "n2", "n3")
	n.waitConfig([]string{"n1", "n2", "n3"}, nil)
	n.start("n0")
	n.waitConfig([]string{"n1", "n2", "n3"}, []string{"n0"})
	g0 := n.group("n0")
	g0.mu.Lock()
	bootstrapped := g0.mu.bootstrapID != ""
	g0.mu.Unlock()
	if bootstrapped {
		t.Fatal("n0 bootstrapped a group of its own")
	}
	n.recordHeld(g0, "via-n0", 3)
}

// TestLeaderKilled: the leader crashes (no leadership transfer); the
// other two elect a new leader and Record keeps working on both.
func TestLeaderKilled(t *testing.T) {
	n := newTestNet(t, nil)
	n.start("n1", "n2", "n3")
	old := n.waitConfig([]string{"n1", "n2", "n3"}, nil)
	_, beforeIDs := n.recordHeld(old, "before", 3)
	n.kill(old.cfg.NodeID)
	var next *Group
	testsupport.EventuallyErr(t, 10*time.Second, "a new leader", func() error {
		l, err := n.leader()
		if err != nil {
			return err
		}
		next = l
		return nil
	})
	if next == old {
		t.Fatal("the killed node still leads")
	}
	var all []string
	for _, g := range n.live() {
		recs, ids := records("after-"+g.cfg.NodeID, 4)
		if err := g.Record(ctxTimeout(t, 10*time.Second), recs); err != nil {
			t.Fatalf("record on %s: %v", g.cfg.NodeID, err)
		}
		all = append(all, ids...)
	}
	n.waitHeld(append(all, beforeIDs...)...)
	// After the grace period the dead server leaves the configuration.
	var rest []string
	for _, g := range n.live() {
		rest = append(rest, g.cfg.NodeID)
	}
	n.waitConfig(rest, nil)
}

// TestMinorityLossAndVoterReplacement: four members make three voters and
// a non-voter. A voter crashes: the group keeps working at once
// (minority loss); the dead voter stays in the configuration for the
// grace period (measured on the injected clock, which the test holds
// still) and is then replaced by the non-voter. A member that leaves
// gracefully is removed without waiting for the grace period.
func TestMinorityLossAndVoterReplacement(t *testing.T) {
	n := newTestNet(t, func(c *GroupConfig) { c.FailureGrace = 30 * time.Second })
	n.clock = testsupport.NewClock(t0)
	n.start("n1", "n2", "n3", "n4")
	leader := n.waitConfig([]string{"n1", "n2", "n3"}, []string{"n4"})

	var victim string
	for _, id := range []string{"n1", "n2", "n3"} {
		if id != leader.cfg.NodeID {
			victim = id
			break
		}
	}
	n.kill(victim)
	n.recordHeld(n.group("n4"), "minority-loss", 5) // with one voter down

	// The clock stands still: however many rounds the leader runs, the
	// dead voter stays.
	steps := func() int64 { l, _ := n.leader(); return l.steps.Load() }
	start := steps()
	testsupport.EventuallyErr(t, 10*time.Second, "leader rounds", func() error {
		if s := steps(); s < start+5 {
			return fmt.Errorf("%d rounds", s-start)
		}
		return nil
	})
	if s := leader.Stats(); !slices.Contains(s.Voters, victim) {
		t.Fatalf("dead voter %s removed before its grace period: %+v", victim, s)
	}

	// After the grace period it is replaced by the non-voter.
	n.clock.Advance(30 * time.Second)
	var want []string
	for _, id := range []string{"n1", "n2", "n3", "n4"} {
		if id != victim {
			want = append(want, id)
		}
	}
	leader = n.waitConfig(want, nil)

	// A fifth member joins as a non-voter, then leaves gracefully: it is
	// removed at once (the clock still stands).
	n.start("n5")
	testsupport.EventuallyErr(t, 10*time.Second, "n5 added", func() error {
		if s := leader.Stats(); !slices.Contains(s.NonVoters, "n5") {
			return fmt.Errorf("non-voters %v", s.NonVoters)
		}
		return nil
	})
	n.leave("n5")
	testsupport.EventuallyErr(t, 10*time.Second, "n5 removed", func() error {
		if s := leader.Stats(); slices.Contains(s.NonVoters, "n5") {
			return fmt.Errorf("non-voters %v", s.NonVoters)
		}
		return nil
	})
	n.recordHeld(n.group(want[0]), "after-replacement", 3)
}

// TestRecordBatches: many goroutines recording one record at a time, on
// the leader and on a follower, share raft entries.
func TestRecordBatches(t *testing.T) {
	n := newTestNet(t, nil)
	n.start("n1", "n2", "n3")
	n.waitConfig([]string{"n1", "n2", "n3"}, nil)
	const workers, each = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	idsC := make(chan []string, workers)
	groups := n.live()
	for w := range workers {
		g := groups[w%len(groups)]
		wg.Go(func() {
			var mine []string
			for range each {
				recs, ids := records(fmt.Sprintf("batch-%d", w), 1)
				if err := g.Record(ctxTimeout(t, 20*time.Second), recs); err != nil {
					errs <- err
					return
				}
				mine = append(mine, ids...)
			}
			idsC <- mine
		})
	}
	wg.Wait()
	close(errs)
	close(idsC)
	for err := range errs {
		t.Fatal(err)
	}
	var all []string
	for ids := range idsC {
		all = append(all, ids...)
	}
	n.waitHeld(all...)
	var batches, recs int64
	for _, g := range n.live() {
		s := g.Stats()
		batches += s.Batches
		recs += s.Records
	}
	t.Logf("%d records in %d raft entries", recs, batches)
	if recs < workers*each || batches >= recs {
		t.Fatalf("%d records in %d raft entries: no batching", recs, batches)
	}
}

// TestShutdown: a leader that shuts down hands leadership over; calls
// after Shutdown fail with ErrClosed.
func TestShutdown(t *testing.T) {
	n := newTestNet(t, nil)
	n.start("n1", "n2", "n3")
	leader := n.waitConfig([]string{"n1", "n2", "n3"}, nil)
	id := leader.cfg.NodeID
	n.leave(id)
	if err := leader.Shutdown(); err != nil { // twice is fine
		t.Fatal(err)
	}
	recs, _ := records("closed", 1)
	if err := leader.Record(context.Background(), recs); !errors.Is(err, ErrClosed) {
		t.Fatalf("Record after Shutdown: %v", err)
	}
	if err := leader.HandleForwarded(context.Background(), forwardPayload([]*proposal{{data: appendRecord(nil, &recs[0]), n: 1}})); !errors.Is(err, ErrClosed) {
		t.Fatalf("HandleForwarded after Shutdown: %v", err)
	}
	if s := leader.Stats(); s.Role != "shutdown" || leader.Ready() {
		t.Fatalf("role %q, ready %v", s.Role, leader.Ready())
	}
	var rest []string
	for _, g := range n.live() {
		rest = append(rest, g.cfg.NodeID)
	}
	n.waitConfig(rest, nil) // left: removed at once
	n.recordHeld(n.live()[0], "after-shutdown", 2)
}

func TestRecordRefusesBadRecords(t *testing.T) {
	n := newTestNet(t, nil)
	g := n.start("n1")[0]
	if err := g.Record(context.Background(), []commandlog.Record{{}}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("empty id: %v", err)
	}
	big := rec("big")
	big.Message = strings.Repeat("x", MaxRecordBytes)
	if err := g.Record(context.Background(), []commandlog.Record{big}); !errors.Is(err, ErrInvalidRecord) {
		t.Fatalf("oversized: %v", err)
	}
	if err := g.Record(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if err := g.HandleForwarded(context.Background(), []byte{fwdVersion, 1, 0}); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("forwarded to a non-leader: %v", err)
	}
	n.waitConfig([]string{"n1"}, nil)
	if err := g.HandleForwarded(context.Background(), []byte{fwdVersion, 1, 0}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("corrupt forwarded payload: %v", err)
	}
}

// TestRecordUnavailable: without a group (no view, so no bootstrap), Record
// gives up after ProposeTimeout with ErrUnavailable, and a caller's
// context ends its wait sooner.
func TestRecordUnavailable(t *testing.T) {
	n := newTestNet(t, func(c *GroupConfig) { c.ProposeTimeout = 300 * time.Millisecond })
	g, err := NewGroup(n.config("lonely"), n.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.close(false) })
	recs, _ := records("lonely", 1)
	if err := g.Record(context.Background(), recs); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("got %v, want ErrUnavailable", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := g.Record(ctx, recs); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestLargeRecordCallSplits: one call larger than MaxBatch goes in several
// entries.
func TestLargeRecordCallSplits(t *testing.T) {
	n := newTestNet(t, func(c *GroupConfig) { c.MaxBatch = 10 })
	g := n.start("n1")[0]
	n.waitConfig([]string{"n1"}, nil)
	n.recordHeld(g, "split", 35)
	if s := g.Stats(); s.Batches < 4 || s.Records != 35 {
		t.Fatalf("stats %+v", s)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := func(c *GroupConfig) {}
	cases := []struct {
		name  string
		tweak func(*GroupConfig)
		want  string
	}{
		{"defaults", ok, ""},
		{"no node id", func(c *GroupConfig) { c.NodeID = "" }, "NodeID"},
		{"six voters", func(c *GroupConfig) { c.Voters = 6 }, "Voters 6"},
		{"negative voters", func(c *GroupConfig) { c.Voters = -1 }, "Voters -1"},
		{"tiny window", func(c *GroupConfig) { c.Window = time.Millisecond }, "Window"},
		{"bad bind", func(c *GroupConfig) { c.BindAddr = "nowhere" }, "BindAddr"},
		{"bad advertise", func(c *GroupConfig) { c.AdvertiseAddr = "10.0.0.1:99999" }, "AdvertiseAddr"},
		{"bad profile", func(c *GroupConfig) { c.Profile = "fast" }, "Profile"},
		{"lease too long", func(c *GroupConfig) { c.LeaderLeaseTimeout = time.Hour }, "LeaderLeaseTimeout"},
		{"small batch bytes", func(c *GroupConfig) { c.MaxBatchBytes = 10 }, "MaxBatchBytes"},
	}
	for _, tc := range cases {
		c := GroupConfig{NodeID: "n1", MemberGroup: func(cluster.Member) string { return "" }}
		tc.tweak(&c)
		c.fill()
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (!errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want an ErrInvalidConfig naming %s", tc.name, err, tc.want)
		}
	}
	d := DefaultGroupConfig("n1")
	if got := d.MemberGroup(cluster.Member{Meta: cluster.Meta{Group: "g7"}}); got != "g7" {
		t.Fatalf("default MemberGroup read %q, want Meta.Group", got)
	}
	if d.Window != 10*time.Minute || d.Voters != 3 || d.FailureGrace != 30*time.Second || d.Buckets != 10 || d.HeartbeatTimeout != time.Second {
		t.Fatalf("defaults %+v", d)
	}
	if _, err := NewGroup(GroupConfig{NodeID: "x", MemberGroup: func(cluster.Member) string { return "" }, BindAddr: "0.0.0.0:0"}, nil); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("unadvertisable address: %v", err)
	}
}

func alive(id string, group string) cluster.Member {
	return cluster.Member{ID: id, State: cluster.StateAlive, Meta: cluster.Meta{NodeID: id, RaftAddr: "addr-" + id, Version: group}}
}

// groupInVersion reads the test members' group from Meta.Version.
func groupInVersion(m cluster.Member) string { return m.Meta.Version }

func TestBootstrapRule(t *testing.T) {
	dead := alive("a0", "")
	dead.State = cluster.StateDead
	noRaft := alive("a1", "")
	noRaft.Meta.RaftAddr = ""
	cases := []struct {
		name    string
		self    string
		members []cluster.Member
		want    bool
	}{
		{"smallest of three", "b", []cluster.Member{alive("b", ""), alive("c", ""), alive("d", "")}, true},
		{"not the smallest", "c", []cluster.Member{alive("b", ""), alive("c", ""), alive("d", "")}, false},
		{"alone", "b", []cluster.Member{alive("b", "")}, true},
		{"a group exists", "b", []cluster.Member{alive("b", ""), alive("c", "g1")}, false},
		{"smaller ones dead or without raft", "b", []cluster.Member{dead, noRaft, alive("b", ""), alive("c", "")}, true},
		{"self not in view", "b", []cluster.Member{alive("c", "")}, false},
	}
	for _, tc := range cases {
		ok, why := bootstrapRule(tc.self, cluster.View{Members: tc.members}, groupInVersion)
		if ok != tc.want {
			t.Errorf("%s: got %v (%s), want %v", tc.name, ok, why, tc.want)
		}
	}
}

func TestPlan(t *testing.T) {
	now := t0
	voter := func(id string) raft.Server {
		return raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(id), Address: raft.ServerAddress("addr-" + id)}
	}
	nonvoter := func(id string) raft.Server {
		s := voter(id)
		s.Suffrage = raft.Nonvoter
		return s
	}
	state := func(m cluster.Member, s cluster.State) cluster.Member { m.State = s; return m }
	eligible := func(m cluster.Member) bool {
		return m.State == cluster.StateAlive && m.Meta.RaftAddr != "" && m.Meta.Version != "other"
	}
	cases := []struct {
		name    string
		servers []raft.Server
		members []cluster.Member
		since   map[string]time.Time
		voters  int
		want    []string
	}{
		{"new members join as non-voters", []raft.Server{voter("a")},
			[]cluster.Member{alive("a", ""), alive("b", ""), alive("c", "")}, nil, 3,
			[]string{"add-nonvoter b", "add-nonvoter c"}},
		{"then get promoted", []raft.Server{voter("a"), nonvoter("b"), nonvoter("c")},
			[]cluster.Member{alive("a", ""), alive("b", ""), alive("c", "")}, nil, 3,
			[]string{"add-voter b", "add-voter c"}},
		{"stable", []raft.Server{voter("a"), voter("b"), voter("c"), nonvoter("d")},
			[]cluster.Member{alive("a", ""), alive("b", ""), alive("c", ""), alive("d", "")}, nil, 3, nil},
		{"dead voter within grace stays, no promotion yet", []raft.Server{voter("a"), voter("b"), voter("c"), nonvoter("d")},
			[]cluster.Member{alive("a", ""), state(alive("b", ""), cluster.StateDead), alive("c", ""), alive("d", "")},
			map[string]time.Time{"b": now.Add(-10 * time.Second)}, 3, nil},
		{"dead voter after grace is replaced", []raft.Server{voter("a"), voter("b"), voter("c"), nonvoter("d")},
			[]cluster.Member{alive("a", ""), state(alive("b", ""), cluster.StateDead), alive("c", ""), alive("d", "")},
			map[string]time.Time{"b": now.Add(-30 * time.Second)}, 3, []string{"remove b", "add-voter d"}},
		{"cut off from gossip: the majority's voters stay", []raft.Server{voter("a"), voter("b"), voter("c"), nonvoter("d")},
			[]cluster.Member{alive("a", ""), state(alive("b", ""), cluster.StateDead), state(alive("c", ""), cluster.StateDead), state(alive("d", ""), cluster.StateDead)},
			map[string]time.Time{"b": now.Add(-time.Minute), "c": now.Add(-time.Minute), "d": now.Add(-time.Minute)}, 3, []string{"remove d"}},
		{"half the voters healthy is no majority", []raft.Server{voter("a"), voter("b"), voter("c"), voter("e")},
			[]cluster.Member{alive("a", ""), alive("b", ""), state(alive("c", ""), cluster.StateDead), state(alive("e", ""), cluster.StateDead)},
			map[string]time.Time{"c": now.Add(-time.Minute), "e": now.Add(-time.Minute)}, 5, nil},
		{"left member removed at once", []raft.Server{voter("a"), voter("b"), voter("c"), nonvoter("d")},
			[]cluster.Member{alive("a", ""), state(alive("b", ""), cluster.StateLeft), alive("c", ""), alive("d", "")},
			map[string]time.Time{"b": now}, 3, []string{"remove b", "add-voter d"}},
		{"missing from the view after grace", []raft.Server{voter("a"), nonvoter("x")},
			[]cluster.Member{alive("a", "")}, map[string]time.Time{"x": now.Add(-time.Minute)}, 3, []string{"remove x"}},
		{"member of another group is not added", []raft.Server{voter("a")},
			[]cluster.Member{alive("a", ""), alive("b", "other")}, nil, 3, nil},
		{"address change", []raft.Server{voter("a"), voter("b")},
			[]cluster.Member{alive("a", ""), func() cluster.Member { m := alive("b", ""); m.Meta.RaftAddr = "new"; return m }()}, nil, 3,
			[]string{"add-voter b"}},
		{"too many voters: demote the largest", []raft.Server{voter("a"), voter("b"), voter("c"), voter("d"), voter("e")},
			[]cluster.Member{alive("a", ""), alive("b", ""), alive("c", ""), alive("d", ""), alive("e", "")}, nil, 3,
			[]string{"demote e", "demote d"}},
		{"five voters", []raft.Server{voter("a"), nonvoter("b"), nonvoter("c"), nonvoter("d"), nonvoter("e"), nonvoter("f")},
			[]cluster.Member{alive("a", ""), alive("b", ""), alive("c", ""), alive("d", ""), alive("e", ""), alive("f", "")}, nil, 5,
			[]string{"add-voter b", "add-voter c", "add-voter d", "add-voter e"}},
	}
	for _, tc := range cases {
		since := tc.since
		if since == nil {
			since = map[string]time.Time{}
		}
		changes := plan(planInput{self: "a", servers: tc.servers, view: cluster.View{Members: tc.members}, since: since,
			now: now, grace: 30 * time.Second, voters: tc.voters, eligible: eligible})
		var got []string
		for _, c := range changes {
			got = append(got, c.String())
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestReadyFollowsQuorum: a group that lost its quorum stops being ready
// once no leader was known for ProposeTimeout (on the injected clock), and
// the survivor's lookups still answer from its replica.
func TestReadyFollowsQuorum(t *testing.T) {
	n := newTestNet(t, nil)
	n.clock = testsupport.NewClock(t0)
	n.start("n1", "n2", "n3")
	leader := n.waitConfig([]string{"n1", "n2", "n3"}, nil)
	_, ids := n.recordHeld(leader, "quorum", 2)
	survivor := "n3"
	for _, id := range []string{"n1", "n2", "n3"} {
		if id != survivor {
			n.kill(id)
		}
	}
	g := n.group(survivor)
	testsupport.EventuallyErr(t, 10*time.Second, "no leader", func() error {
		if _, l := g.raft.LeaderWithID(); l != "" {
			return fmt.Errorf("leader %s", l)
		}
		return nil
	})
	if !g.Ready() {
		t.Fatal("not ready right after losing the leader; a routine election should not flip it")
	}
	n.clock.Advance(11 * time.Second) // ProposeTimeout is 10s in tests
	testsupport.EventuallyErr(t, 10*time.Second, "not ready", func() error {
		if g.Ready() {
			return fmt.Errorf("still ready")
		}
		return nil
	})
	if _, ok := g.Lookup(ids[0]); !ok {
		t.Fatal("the survivor lost its replica")
	}
}

// TestCompleteAfterAWindow: a group that just became ready cannot vouch for
// its misses until a whole window has passed (outcomes from before it
// formed may be missing), and a Doubt takes that away for another window.
func TestCompleteAfterAWindow(t *testing.T) {
	n := newTestNet(t, nil)
	n.clock = testsupport.NewClock(t0)
	n.start("n1")
	n.waitConfig([]string{"n1"}, nil)
	g := n.group("n1")
	testsupport.EventuallyErr(t, 10*time.Second, "ready", func() error {
		if !g.Ready() {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	if g.Complete() {
		t.Fatal("complete right after it became ready")
	}
	n.clock.Advance(g.cfg.Window + time.Second)
	testsupport.EventuallyErr(t, 10*time.Second, "complete", func() error {
		if !g.Complete() {
			return fmt.Errorf("not complete a window after it became ready")
		}
		return nil
	})
	g.Doubt("test")
	if g.Complete() {
		t.Fatal("complete right after a doubt")
	}
	n.clock.Advance(g.cfg.Window)
	if !g.Complete() {
		t.Fatal("still doubting a window after the doubt")
	}
}

// A leader whose clock is ahead stamps its batches ahead, and the filter's
// time (the largest batch time) jumps with them: every record of the last
// window expires at once, on every replica, although the window has not
// passed. A miss the filter vouches for must be a true miss, so each
// replica that lost records this way must stop vouching for a window.
func TestLeaderClockAheadMakesTheFilterDoubt(t *testing.T) {
	sk := newSkewedNet(t)
	n, leader, groups, follower := sk.n, sk.leader, sk.groups, sk.follower()
	_, early := n.recordHeld(follower, "early", 3)

	// The leader's clock steps a window and two buckets ahead; the next
	// batch carries its time.
	width := leader.cfg.Window / time.Duration(leader.cfg.Buckets)
	sk.ahead.Store(leader.cfg.NodeID, leader.cfg.Window+2*width)
	n.recordHeld(follower, "late", 1)

	for _, g := range groups {
		_, held := g.Lookup(early[0])
		if !held && g.Complete() {
			t.Errorf("%s: %s (recorded a moment ago) is gone, and the replica vouches for the miss", g.cfg.NodeID, early[0])
		}
		if held {
			t.Logf("%s still holds %s", g.cfg.NodeID, early[0])
		}
	}
	// (That the doubt ends a window later is TestCompleteAfterAWindow's:
	// moving this clock a window on at once would be another jump.)
}

// skewedNet is three replicas whose wall clocks run ahead of a shared fake
// clock by what ahead holds for their node id (nothing at first); their
// Monotonic clocks are the shared clock itself, as a wall clock's step
// leaves the monotonic one alone. newSkewedNet returns once every replica
// vouches for its misses.
type skewedNet struct {
	n      *testNet
	base   *testsupport.Clock
	ahead  *sync.Map // node id → time.Duration its wall clock runs ahead
	leader *Group
	groups []*Group
}

func newSkewedNet(t *testing.T) *skewedNet {
	sk := &skewedNet{base: testsupport.NewClock(t0), ahead: new(sync.Map)}
	sk.n = newTestNet(t, func(c *GroupConfig) {
		id := c.NodeID
		c.Clock = func() time.Time {
			d, _ := sk.ahead.Load(id)
			off, _ := d.(time.Duration)
			return sk.base.Now().Add(off)
		}
		c.Monotonic = sk.base.Now
	})
	sk.n.start("n1", "n2", "n3")
	// Bootstrapping waits for a settle period on the clock: move it on
	// until the group has formed.
	testsupport.EventuallyErr(t, 20*time.Second, "a leader with three voters", func() error {
		sk.base.Advance(100 * time.Millisecond)
		l, err := sk.n.leader()
		if err != nil {
			return err
		}
		if f := l.raft.GetConfiguration(); f.Error() != nil || len(f.Configuration().Servers) != 3 {
			return fmt.Errorf("configuration %+v", f.Configuration())
		}
		return nil
	})
	sk.leader = sk.n.waitConfig([]string{"n1", "n2", "n3"}, nil)
	sk.base.Advance(sk.leader.cfg.Window + time.Second)
	sk.groups = sk.n.live()
	testsupport.EventuallyErr(t, 10*time.Second, "every replica complete", func() error {
		for _, g := range sk.groups {
			if !g.Complete() {
				return fmt.Errorf("%s not complete", g.cfg.NodeID)
			}
		}
		return nil
	})
	return sk
}

// follower returns a replica that is not the leader.
func (sk *skewedNet) follower() *Group {
	for _, g := range sk.groups {
		if g != sk.leader {
			return g
		}
	}
	sk.n.t.Fatal("no follower")
	return nil
}

// advanceTicking moves the shared clock on by d, a bucket width at a time,
// and waits after each whole width for the leader's idle tick to reach
// every replica, so the filter's time follows the clock without a jump.
func (sk *skewedNet) advanceTicking(d time.Duration) {
	width := sk.leader.cfg.Window / time.Duration(sk.leader.cfg.Buckets)
	for d > 0 {
		step := min(d, width)
		d -= step
		sk.base.Advance(step)
		if step < width {
			return // no tick is due
		}
		want := sk.base.Now()
		testsupport.EventuallyErr(sk.n.t, 10*time.Second, "the idle tick applied everywhere", func() error {
			for _, g := range sk.groups {
				if now := g.Filter().Stats().Now; now.Before(want) {
					return fmt.Errorf("%s: filter time %s, clock %s", g.cfg.NodeID, now, want)
				}
			}
			return nil
		})
	}
}

// A leader whose clock is ahead of the last leader's by less than a jump
// (jumpLimit: two bucket widths and 10 s) moves the filter's time on by
// its skew: the records at the end of their window expire that much
// early, on every replica. Here the leader's clock steps 70 s ahead (a
// bucket width is 60 s) a second before some records' window ends, and
// they are gone: each replica, the leader too, must notice that the time
// ran ahead of its own clock and stop vouching for misses.
func TestLeaderClockAheadByLessThanAJumpMakesTheFilterDoubt(t *testing.T) {
	sk := newSkewedNet(t)
	n, leader, follower := sk.n, sk.leader, sk.follower()
	const skew = 70 * time.Second
	if limit := time.Duration(jumpLimit(int64(leader.cfg.Window), leader.cfg.Buckets)); skew >= limit {
		t.Fatalf("skew %v is not below the jump limit %v", skew, limit)
	}

	_, early := n.recordHeld(follower, "early", 3)
	recorded := sk.base.Now()
	sk.advanceTicking(leader.cfg.Window - time.Second)
	n.recordHeld(follower, "before", 1) // the last batch before the step
	for _, g := range sk.groups {
		if !g.Complete() {
			t.Fatalf("%s does not vouch for its misses before the step", g.cfg.NodeID)
		}
	}

	sk.ahead.Store(leader.cfg.NodeID, skew)
	n.recordHeld(follower, "after", 1) // stamped 70 s ahead
	age := sk.base.Now().Sub(recorded)
	if age >= leader.cfg.Window {
		t.Fatalf("the records are %v old: not within the window any more", age)
	}
	for _, g := range sk.groups {
		st := g.Stats()
		_, held := g.Lookup(early[0])
		t.Logf("%s: holds %s %v, time jumps %d, time steps %d, complete %v", g.cfg.NodeID, early[0], held, st.Filter.TimeJumps, st.TimeSteps, st.Complete)
		if st.Filter.TimeJumps != 0 {
			t.Errorf("%s counted a jump: the step is meant to stay below one", g.cfg.NodeID)
		}
		if held {
			t.Errorf("%s still holds %s: the step did not expire it, so the test proves nothing", g.cfg.NodeID, early[0])
		} else if g.Complete() {
			t.Errorf("%s: %s, recorded %v ago (within the window), is gone, and the replica vouches for the miss", g.cfg.NodeID, early[0], age)
		}
	}
}

// A replica that joins catches up on batches stamped seconds apart in a
// moment. That is not the filter's time running ahead of its clock: it
// must count no step (the cluster report would blame the clocks) and not
// doubt for it.
func TestCatchingUpIsNotAStep(t *testing.T) {
	n := newTestNet(t, nil)
	n.clock = testsupport.NewClock(t0)
	n.start("n1", "n2", "n3")
	leader := n.waitConfig([]string{"n1", "n2", "n3"}, nil)
	tol := stepTolerance(leader.cfg.Window, leader.cfg.Buckets)
	for i := range 5 {
		n.recordHeld(leader, fmt.Sprintf("spaced-%d", i), 1)
		n.clock.Advance(2 * tol) // beyond the tolerance, within a bucket: no idle tick
	}
	n.start("n4")
	n.waitConfig([]string{"n1", "n2", "n3"}, []string{"n4"})
	joined := n.group("n4")
	testsupport.EventuallyErr(t, 10*time.Second, "n4 ready", func() error {
		if !joined.Ready() {
			return fmt.Errorf("not ready")
		}
		return nil
	})
	n.recordHeld(leader, "after-1", 1)
	n.recordHeld(leader, "after-2", 1)
	if st := joined.Stats(); st.TimeSteps != 0 || joined.doubtUntil.Load() != 0 {
		t.Errorf("n4 counted %d steps (doubting until %d) catching up on batches %v apart", st.TimeSteps, joined.doubtUntil.Load(), 2*tol)
	}
}
