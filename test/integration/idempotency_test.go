//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/client"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/storage/cassandra"
)

// raftOf returns a node's view of the idempotency raft group
// (ClusterInfo.Idempotency; the zero value when it runs none).
func raftOf(info api.ClusterInfo) api.IdempotencyStats {
	if info.Idempotency != nil {
		return *info.Idempotency
	}
	return api.IdempotencyStats{}
}

// waitRaft waits until the nodes ids are in one raft group whose leader is
// not excluded, with voters voters, and returns the leader.
func (h *clusterHarness) waitRaft(voters int, excluded string, ids ...string) string {
	h.t.Helper()
	var leader string
	waitUntil(h.t, 60*time.Second, fmt.Sprintf("one raft group with a leader and %d voters on %v", voters, ids), func() bool {
		var group string
		for _, id := range ids {
			info, err := nodeClusterInfo(h.admin, clusterPrefix, id, time.Second)
			if err != nil {
				return false
			}
			r := raftOf(info)
			if r.GroupID == "" || r.Leader == "" || r.Leader == excluded || len(r.Voters) != voters ||
				(group != "" && (r.GroupID != group || r.Leader != leader)) {
				return false
			}
			group, leader = r.GroupID, r.Leader
		}
		return true
	})
	return leader
}

// TestIdempotencyProcesses shows, with real node processes, NATS and
// Cassandra, that a command id takes effect at most once cluster-wide:
//  1. the same command id sent at once to every node executes once, and
//     every sender gets the same outcome;
//  2. a command's retry after its owner — also the raft leader of the
//     idempotency filter — was SIGKILLed gets the original outcome, for an
//     accepted command (no new event) and a rejected one (same rejection);
//  3. after losing the raft leader (a minority) the survivors elect a new
//     one and the filter keeps recording.
func TestIdempotencyProcesses(t *testing.T) {
	h := newClusterHarness(t, "it_idem")
	addr, natsURL := h.cassandra, h.natsURL
	h.start("n1", true)
	h.start("n2", false)
	h.start("n3", false)
	h.waitConverged("n1", "n2", "n3")
	started := time.Now()
	leader := h.waitRaft(3, "", "n1", "n2", "n3")
	t.Logf("idempotency group formed with leader %s (%.1fs after the ring converged)", leader, time.Since(started).Seconds())

	nc := connectNATS(t, natsURL, "idem-client")
	c := newCommander(t, nc)
	send, mustSend := c.send, c.must
	setUp := func(id string) {
		mustSend(id, "create", id+"-create", `{"wattage":60}`)
		mustSend(id, "screwIn", id+"-screw", `{"location":"lab"}`)
	}

	// 1. The same id at once on every node's direct subject.
	const same = 10
	for i := range same {
		setUp(fmt.Sprintf("same-%d", i))
	}
	for i := range same {
		id, cid := fmt.Sprintf("same-%d", i), fmt.Sprintf("same-%d-on", i)
		body, _ := json.Marshal(api.Command{AggregateID: id, Command: "switchOn", CommandID: cid})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var replies []api.Reply
		for _, node := range []string{"n1", "n2", "n3", "n1", "n2", "n3"} {
			wg.Go(func() {
				m, err := nc.Request(clusterPrefix+".node."+node+".cmd."+lightbulb.TypeName, body, 10*time.Second)
				var r api.Reply
				if err == nil {
					err = json.Unmarshal(m.Data, &r)
				}
				if err != nil {
					t.Errorf("%s via %s: %v", cid, node, err)
					return
				}
				mu.Lock()
				replies = append(replies, r)
				mu.Unlock()
			})
		}
		wg.Wait()
		fresh := 0
		for _, r := range replies {
			if !r.OK || r.Sequence != 3 {
				t.Errorf("%s: a sender got %+v, want ok at sequence 3", cid, r)
			}
			if !r.Duplicate {
				fresh++
			}
		}
		if fresh != 1 {
			t.Errorf("%s: %d of %d replies were not duplicates, want exactly 1", cid, fresh, len(replies))
		}
	}

	// 2 and 3. Aggregates owned by the raft leader get an accepted and a
	// rejected command; once every replica holds the outcomes, the leader
	// (their owner) is killed and the commands are retried.
	owners := h.info("n1").Owners
	victimIDs := aggregatesOwnedBy(owners, leader, 10)
	accepted := make(map[string]*client.Result)
	rejected := make(map[string]error)
	for _, id := range victimIDs {
		setUp(id)
		accepted[id] = mustSend(id, "switchOn", id+"-on", `{}`)
		_, err := send(id, "switchOn", id+"-again", `{}`)
		if ce, ok := err.(*client.Error); !ok || ce.Code != api.CodeRejected {
			t.Fatalf("%s switched on twice: %v, want rejected", id, err)
		}
		rejected[id] = err
	}
	survivors := []string{"n1", "n2", "n3"}
	survivors = slicesDelete(survivors, leader)
	entries := func(id string) int { return raftOf(h.info(id)).Filter.Entries }
	recorded := entries(leader)
	waitUntil(t, 30*time.Second, "every replica to hold the outcomes", func() bool {
		for _, id := range survivors {
			if entries(id) < recorded {
				return false
			}
		}
		return true
	})
	killed := time.Now()
	if err := h.nodes[leader].proc.signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	delete(h.nodes, leader)
	h.waitConverged(survivors...)
	newLeader := h.waitRaft(3, leader, survivors...) // the dead voter stays until its failure grace
	t.Logf("raft leader %s (also the owner of the probed aggregates) SIGKILLed; %s elected leader among %v %.1fs later",
		leader, newLeader, survivors, time.Since(killed).Seconds())
	dupsBefore := executorDuplicates(t, h, survivors)
	for _, id := range victimIDs {
		res, err := send(id, "switchOn", id+"-on", `{}`)
		if err != nil || !res.Duplicate || res.Sequence != accepted[id].Sequence {
			t.Errorf("%s: retry of the accepted command after the kill: %+v, %v; want the original outcome at sequence %d", id, res, err, accepted[id].Sequence)
		}
		_, err = send(id, "switchOn", id+"-again", `{}`)
		ce, ok := err.(*client.Error)
		orig := rejected[id].(*client.Error)
		if !ok || ce.Code != api.CodeRejected || ce.Reason != orig.Reason {
			t.Errorf("%s: retry of the rejected command after the kill: %v; want the original rejection %v", id, err, orig)
		}
	}
	if got := executorDuplicates(t, h, survivors) - dupsBefore; got != int64(2*len(victimIDs)) {
		t.Errorf("the survivors answered %d retries as duplicates, want %d", got, 2*len(victimIDs))
	}
	// The filter keeps recording under the new leader.
	before := entries(survivors[0])
	for i := range 5 {
		setUp(fmt.Sprintf("after-%d", i))
	}
	waitUntil(t, 30*time.Second, "new outcomes on both survivors", func() bool {
		for _, id := range survivors {
			if entries(id) < before+10 {
				return false
			}
		}
		return true
	})
	t.Logf("filter entries on %v after the leader loss: %d and %d", survivors, entries(survivors[0]), entries(survivors[1]))

	// The log: one event per accepted command, none for the retries.
	verifyOnce(t, addr, h.keyspace, victimIDs, same)
}

func slicesDelete(ids []string, drop string) []string {
	var out []string
	for _, id := range ids {
		if id != drop {
			out = append(out, id)
		}
	}
	return out
}

// executorDuplicates sums the executor's duplicate counter over nodes.
func executorDuplicates(t *testing.T, h *clusterHarness, ids []string) int64 {
	t.Helper()
	var sum int64
	for _, id := range ids {
		sum += h.info(id).Stats.Duplicates
	}
	return sum
}

// verifyOnce checks from Cassandra that the victims' histories are create,
// screwIn, switchOn (three events, the retries added none) and the
// same-id aggregates' too.
func verifyOnce(t *testing.T, addr, keyspace string, victims []string, same int) {
	t.Helper()
	cfg := cassandra.DefaultConfig()
	cfg.Hosts = []string{addr}
	cfg.Keyspace = keyspace
	cfg.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := cassandra.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }()
	ids := append([]string(nil), victims...)
	for i := range same {
		ids = append(ids, fmt.Sprintf("same-%d", i))
	}
	for _, id := range ids {
		ref := model.Ref{Type: lightbulb.TypeName, ID: id}
		events, _, err := st.EventLog().ReadPage(ctx, ref, 1, 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) != 3 || events[2].Name != "switchedOn" {
			t.Errorf("%s has %d events in the log, want create, screwIn, switchOn", id, len(events))
		}
	}
	t.Logf("log check: %d aggregates, each exactly create/screwIn/switchOn", len(ids))
}
