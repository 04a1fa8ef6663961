//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"

	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/client"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/model"
)

// TestLeaderClockStepsAhead: the idempotency filter's time is the largest
// batch time, stamped by the raft leader's clock. The leader's clock steps
// a minute ahead (fault injection, CONCURSUS_FAULT_CLOCK_FILE) with a 20 s
// window; its next batch expires every outcome of the last window on every
// replica at once. A retry of a command decided seconds before, older than
// the 16 commands the owner recognises in a cached aggregate's history,
// must still get its original outcome: the nodes must stop vouching for
// their filter's misses and ask the command log. Before the jump rule, the
// retried switchOn was decided again on the bulb, off by then, and switched
// it on a second time.
func TestLeaderClockStepsAhead(t *testing.T) {
	const window = 20 * time.Second
	dir := t.TempDir()
	bins := buildBinaries(t, dir, "faultinject")
	_, natsURL := startNATS(t, bins.natsServer, dir)
	h := newClusterHarnessOn(t, "itstep", dir, bins, natsURL)
	h.args = []string{"--idempotency-window", window.String()}
	clockFile := func(id string) string { return filepath.Join(dir, id+".clock") }
	for _, id := range []string{"n1", "n2", "n3"} {
		h.env[id] = []string{faultClockFile + "=" + clockFile(id)}
	}
	h.start("n1", true)
	h.start("n2", false)
	h.start("n3", false)
	info := h.waitConverged("n1", "n2", "n3")
	leader := h.waitRaft(3, "", "n1", "n2", "n3")
	// Bulbs another node owns, so the retry is decided away from the
	// leader (on the leader the test would hold too).
	var ids []string
	for _, owner := range []string{"n1", "n2", "n3"} {
		if owner != leader {
			ids = append(ids, aggregatesOwnedBy(info.Owners, owner, 2)...)
		}
	}

	nc := connectNATS(t, natsURL, "step")
	c := newCommander(t, nc)
	send, must := c.send, c.must

	// Every filter vouches for its misses once it has served a window.
	nodes := []string{"n1", "n2", "n3"}
	waitUntil(t, 3*window, "every node's filter complete", func() bool {
		return everyRaft(h, nodes, func(r api.IdempotencyStats) bool { return r.Complete })
	})
	for _, id := range ids {
		must(id, "create", id+"-create", `{"wattage":60}`)
		must(id, "screwIn", id+"-screw", `{"location":"lab"}`)
		for i := range 20 { // past the history the owner recognises
			cmd := "switchOn"
			if i%2 == 1 {
				cmd = "switchOff"
			}
			must(id, cmd, fmt.Sprintf("%s-%d", id, i), "")
		}
	}

	// The leader's clock steps a minute ahead; the next batch it stamps
	// (the outcome of one more command) moves the filter's time with it.
	if err := os.WriteFile(clockFile(leader), []byte("1m"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the fault reads the file every 50 ms
	must("step-probe", "create", "step-probe-create", `{"wattage":60}`)
	waitUntil(t, 10*time.Second, "the jump applied on every node", func() bool {
		return everyRaft(h, nodes, func(r api.IdempotencyStats) bool { return r.Filter.TimeJumps > 0 })
	})
	everyRaft(h, nodes, func(r api.IdempotencyStats) bool {
		t.Logf("%s after the step: filter %d entries, time %s, %d jumps, complete %v", r.NodeID, r.Filter.Entries, r.Filter.Now.Format(time.RFC3339), r.Filter.TimeJumps, r.Complete)
		return true
	})

	// Seconds later, well within the window: the first switchOn of each
	// bulb again, now that the bulb is off, through the Go client and on
	// every node's own subject. Decided again, it would be accepted and
	// switch the bulb on a second time.
	for _, id := range ids {
		cid := id + "-0"
		res, err := send(id, "switchOn", cid, "")
		if err != nil {
			t.Errorf("retried switchOn %s: %v, want its original outcome (accepted at 3)", id, err)
		} else if !res.Duplicate || res.Sequence != 3 {
			t.Errorf("retried switchOn %s: %+v, want the original outcome (a duplicate, accepted at 3)", id, res)
		}
		body, _ := json.Marshal(api.Command{AggregateID: id, Command: "switchOn", CommandID: cid})
		for _, node := range nodes {
			var r api.Reply
			m, err := nc.Request(clusterPrefix+".node."+node+".cmd."+lightbulb.TypeName, body, 10*time.Second)
			if err == nil {
				err = json.Unmarshal(m.Data, &r)
			}
			if err != nil || !r.OK || !r.Duplicate || r.Sequence != 3 {
				t.Errorf("retried switchOn %s via %s: %+v, %v; want the original outcome (a duplicate, accepted at 3)", id, node, r, err)
			}
		}
		b, st, err := client.QueryAs[lightbulb.Bulb](context.Background(), c.cl, lightbulb.TypeName, id)
		if err != nil {
			t.Fatalf("query %s: %v", id, err)
		}
		if b.On || st.Sequence != 22 {
			t.Errorf("%s after the retries: on %v at sequence %d, want off at 22", id, b.On, st.Sequence)
		}
	}
	// The log, read from Cassandra by the test: each bulb's 22 events,
	// one per command, the first switchOn at 3 only.
	var refs []model.Ref
	for _, id := range ids {
		refs = append(refs, model.Ref{Type: lightbulb.TypeName, ID: id})
	}
	for ref, evs := range readRefs(t, h.cassandra, h.keyspace, refs) {
		seen := make(map[string]uint64)
		for _, e := range evs {
			if at, twice := seen[e.CommandID]; twice {
				t.Errorf("%s: command %s has events at %d and %d", ref, e.CommandID, at, e.Sequence)
			}
			seen[e.CommandID] = e.Sequence
		}
		if len(evs) != 22 || seen[ref.ID+"-0"] != 3 {
			t.Errorf("%s: %d events in the log, the first switchOn at %d; want 22, at 3", ref, len(evs), seen[ref.ID+"-0"])
		}
	}
	h.reportLogs()
}

// commander sends lightbulb commands under chosen command ids through the
// Go client, as the tests' clients do.
type commander struct {
	t  *testing.T
	cl *client.Client
}

func newCommander(t *testing.T, nc *nats.Conn) *commander {
	return &commander{t: t, cl: client.New(nc, client.Options{Prefix: clusterPrefix, Timeout: 30 * time.Second, Attempt: 2 * time.Second})}
}

// send sends command cmd with id cid to bulb id; args is its JSON ("":
// none).
func (c *commander) send(id, cmd, cid, args string) (*client.Result, error) {
	var raw json.RawMessage
	if args != "" {
		raw = json.RawMessage(args)
	}
	return c.cl.SendRaw(context.Background(), lightbulb.TypeName, id, cmd, raw, client.WithCommandID(cid))
}

// must is send that fails the test on an error.
func (c *commander) must(id, cmd, cid, args string) *client.Result {
	c.t.Helper()
	res, err := c.send(id, cmd, cid, args)
	if err != nil {
		c.t.Fatalf("%s %s (%s): %v", cmd, id, cid, err)
	}
	return res
}

// everyRaft tells whether ok holds for every node's view of the
// idempotency group (false when a node does not answer).
func everyRaft(h *clusterHarness, ids []string, ok func(api.IdempotencyStats) bool) bool {
	for _, id := range ids {
		info, err := nodeClusterInfo(h.admin, clusterPrefix, id, time.Second)
		if err != nil || !ok(raftOf(info)) {
			return false
		}
	}
	return true
}
