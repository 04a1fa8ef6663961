package idempotency

import (
	"fmt"
	"slices"
	"testing"

	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/internal/testsupport"
)

// TestRestartedNodeGetsFreshIdentity: a process that restarts comes back
// as a new member with a new id (the cluster default). Its old identity is
// dead and is removed after the grace period; the new one joins, catches
// up from a snapshot (the leader's log was compacted) and is promoted.
// No raft server ever reuses an id, so no vote is ever forgotten.
func TestRestartedNodeGetsFreshIdentity(t *testing.T) {
	n := newTestNet(t, func(c *GroupConfig) { c.TrailingLogs = 1; c.SnapshotThreshold = 1 })
	n.start("n1", "n2", "n3")
	leader := n.waitConfig([]string{"n1", "n2", "n3"}, nil)
	_, ids := n.recordHeld(leader, "before-restart", 50)
	victim := "n2"
	if leader.cfg.NodeID == victim {
		victim = "n3"
	}
	n.kill(victim)
	if err := leader.raft.Snapshot().Error(); err != nil { // compact the log
		t.Fatal(err)
	}
	reborn := victim + "-b"
	n.start(reborn)
	var want []string
	for _, id := range []string{"n1", "n2", "n3", reborn} {
		if id != victim {
			want = append(want, id)
		}
	}
	slices.Sort(want)
	n.waitConfig(want, nil)
	n.waitHeld(ids...) // the new incarnation holds what was recorded before
}

// TestAllNodesRestart: when every node restarts at once, the new
// incarnations find no member in a group and bootstrap a new, empty group.
// What the old group held is gone (a retry of those ids is caught by the
// second line of defence, the aggregates' history), and new records work.
func TestAllNodesRestart(t *testing.T) {
	n := newTestNet(t, nil)
	n.start("a1", "a2", "a3")
	leader := n.waitConfig([]string{"a1", "a2", "a3"}, nil)
	old := leader.GroupID()
	_, ids := n.recordHeld(leader, "old-life", 5)
	for _, id := range []string{"a1", "a2", "a3"} {
		n.kill(id)
	}
	n.start("b1", "b2", "b3")
	leader = n.waitConfig([]string{"b1", "b2", "b3"}, nil)
	if leader.GroupID() == old {
		t.Fatal("the new incarnations claim the old group")
	}
	for _, g := range n.live() {
		if _, ok := g.Lookup(ids[0]); ok {
			t.Fatalf("%s holds a record of the previous group", g.cfg.NodeID)
		}
	}
	n.recordHeld(n.group("b3"), "new-life", 5)
}

// TestWindowExpiresOnAllReplicas: on an idle cluster the leader appends
// time-only entries, so every replica drops expired buckets at the same
// log position; a command id recorded again after its window is a new
// entry (the documented behaviour after the window).
func TestWindowExpiresOnAllReplicas(t *testing.T) {
	n := newTestNet(t, nil)
	n.clock = testsupport.NewClock(t0)
	n.start("n1", "n2", "n3")
	leader := n.waitConfig([]string{"n1", "n2", "n3"}, nil)
	recs, _ := n.recordHeld(leader, "expiring", 10)
	n.clock.Advance(DefaultWindow + DefaultWindow/DefaultBuckets)
	testsupport.EventuallyErr(t, 10*time.Second, "expiry on every replica", func() error {
		for _, g := range n.live() {
			if s := g.Filter().Stats(); s.Entries != 0 {
				return fmt.Errorf("%s holds %d entries at %v", g.cfg.NodeID, s.Entries, s.Now)
			}
		}
		return nil
	})
	// A retry with the same id after the window is recorded afresh, with
	// whatever outcome it gets now.
	again := recs[0]
	again.FirstSequence, again.LastSequence = 9, 9
	if err := leader.Record(ctxTimeout(t, 10*time.Second), []commandlog.Record{again}); err != nil {
		t.Fatal(err)
	}
	testsupport.EventuallyErr(t, 10*time.Second, "re-recorded", func() error {
		for _, g := range n.live() {
			if r, ok := g.Lookup(again.CommandID); !ok || r.FirstSequence != 9 {
				return fmt.Errorf("%s: %v %+v", g.cfg.NodeID, ok, r)
			}
		}
		return nil
	})
}

// TestPartitionAtBootstrapIsReported: nodes that cannot see each other for
// longer than the settle period (here: a gossip partition from the start)
// each bootstrap a group. When they meet, each reports the conflict and
// neither leader adds the other's members; the groups never merge by
// themselves. This is the failure mode the settle period guards against.
func TestPartitionAtBootstrapIsReported(t *testing.T) {
	n := newTestNet(t, nil)
	n.add("n1", "n2")
	n.publishPartial([]string{"n1"}, "n1")
	n.publishPartial([]string{"n2"}, "n2")
	testsupport.EventuallyErr(t, 10*time.Second, "two groups", func() error {
		if !n.group("n1").Joined() || !n.group("n2").Joined() {
			return fmt.Errorf("not both joined")
		}
		return nil
	})
	n.publish() // the partition heals
	testsupport.EventuallyErr(t, 10*time.Second, "conflict reported", func() error {
		for _, id := range []string{"n1", "n2"} {
			s := n.group(id).Stats()
			if len(s.Conflicts) != 1 {
				return fmt.Errorf("%s reports conflicts %v", id, s.Conflicts)
			}
			if len(s.Voters) != 1 || len(s.NonVoters) != 0 {
				return fmt.Errorf("%s has voters %v non-voters %v", id, s.Voters, s.NonVoters)
			}
		}
		return nil
	})
	if n.group("n1").GroupID() == n.group("n2").GroupID() {
		t.Fatal("same group id")
	}
}
