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
// ahead (fault injection, CONCURSUS_FAULT_CLOCK_FILE), and its batches
// move the filter's time on with it: outcomes expire before their window
// has passed, on every replica. A retry of a command decided within the
// window, older than the 16 commands the owner recognises in a cached
// aggregate's history, must still get its original outcome: the nodes
// must stop vouching for their filter's misses and ask the command log.
//
//   - jump: a minute ahead with a 20 s window. The next batch expires
//     every outcome of the window at once (a jump, FilterStats.TimeJumps).
//     Before the jump rule, the retried switchOn was decided again on the
//     bulb, off by then, and switched it on a second time.
//   - step: 18 s ahead with a 60 s window, below a jump (two buckets and
//     10 s: 22 s; a command just before the step keeps the last batch
//     time close). The outcomes expire 18 s early; the retry comes when
//     they have, within their window. Each node must notice that the
//     filter's time ran ahead of its own monotonic clock (TimeSteps).
//     Before that rule, the retries were decided again, as above.
func TestLeaderClockStepsAhead(t *testing.T) {
	for _, tc := range []struct {
		name   string
		window time.Duration
		step   time.Duration
		jump   bool // the step is a jump, not just a step
	}{
		{name: "jump", window: 20 * time.Second, step: time.Minute, jump: true},
		{name: "step", window: time.Minute, step: 18 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) { testLeaderClockStep(t, tc.window, tc.step, tc.jump) })
	}
}

func testLeaderClockStep(t *testing.T, window, step time.Duration, jump bool) {
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
	}
	// The first switchOn of every bulb at once (the commands the test
	// retries), then 19 more commands each: past the history the owner
	// recognises.
	firstSent := time.Now()
	for _, id := range ids {
		must(id, "switchOn", id+"-0", "")
	}
	firstDone := time.Now()
	for _, id := range ids {
		for i := 1; i < 20; i++ {
			cmd := "switchOn"
			if i%2 == 1 {
				cmd = "switchOff"
			}
			must(id, cmd, fmt.Sprintf("%s-%d", id, i), "")
		}
	}

	// The leader's clock steps ahead; the next batch it stamps (the
	// outcome of one more command) moves the filter's time with it. A
	// command just before makes the batch before it recent, so that the
	// step alone is what the filter's time moves by.
	must("step-before", "create", "step-before-create", `{"wattage":60}`)
	if err := os.WriteFile(clockFile(leader), []byte(step.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the fault reads the file every 50 ms
	must("step-probe", "create", "step-probe-create", `{"wattage":60}`)
	waitUntil(t, 10*time.Second, "every node to notice the step", func() bool {
		return everyRaft(h, nodes, func(r api.IdempotencyStats) bool {
			if jump {
				return r.Filter.TimeJumps > 0
			}
			return r.TimeSteps > 0
		})
	})
	if !jump {
		// The switchOns' outcomes sit in the filter's bucket of their
		// batch time (buckets are a tenth of the window, aligned on Unix
		// time; a second's margin for the batch coming after the reply),
		// and expire once the filter's time is a window past its end. As
		// soon as the leader's clock, 18 s ahead, is there, one more
		// command moves the filter's time there (idle ticks come only
		// once a bucket width).
		width := int64(window / 10)
		bucketEnd := time.Unix(0, (firstDone.Add(time.Second).UnixNano()/width+1)*width)
		expired := bucketEnd.Add(window)
		time.Sleep(time.Until(expired.Add(-step + 500*time.Millisecond)))
		must("expiry-probe", "create", "expiry-probe-create", `{"wattage":60}`)
		waitUntil(t, 10*time.Second, "the first switchOns' outcomes to expire in every filter", func() bool {
			return everyRaft(h, nodes, func(r api.IdempotencyStats) bool { return !r.Filter.Now.Before(expired) })
		})
		if age := time.Since(firstSent); age >= window {
			t.Logf("WARNING: the retries come %v after the commands, past their %v window: this run does not show the early expiry", age, window)
		} else {
			t.Logf("the retries come %v after the commands, within their %v window", age, window)
		}
	}
	everyRaft(h, nodes, func(r api.IdempotencyStats) bool {
		t.Logf("%s after the step: filter %d entries, time %s, %d jumps, %d steps, complete %v", r.NodeID, r.Filter.Entries, r.Filter.Now.Format(time.RFC3339), r.Filter.TimeJumps, r.TimeSteps, r.Complete)
		if !jump && r.Filter.TimeJumps > 0 {
			t.Errorf("%s counted a jump: this step is meant to stay below one", r.NodeID)
		}
		return true
	})

	// Within the window: the first switchOn of each bulb again, now that
	// the bulb is off, through the Go client and on every node's own
	// subject. Decided again, it would be accepted and switch the bulb on
	// a second time.
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
