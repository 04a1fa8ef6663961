package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
)

// tallyRegistry defines "tally": every "add" is accepted, the first one
// also creates the tally, so concurrent commands all produce events.
func tallyRegistry(t *testing.T) *model.Registry {
	t.Helper()
	tally := model.NewType[Counter]("tally", model.JSON{})
	started := model.DefineEvent[struct{}](tally, "started", 0, model.Initial)
	added := model.DefineEvent[Added](tally, "added", 0, 0)
	model.On(tally.State(), added, func(c *Counter, e model.Recorded[Added]) { c.Total += e.Payload.N })
	model.DefineCommand(tally, "add", func(s model.Snapshot[Counter], a AddArgs) ([]model.Emit, error) {
		if !s.Exists {
			return []model.Emit{started.New(struct{}{}), added.New(Added(a))}, nil
		}
		return []model.Emit{added.New(Added(a))}, nil
	}, model.Creates)
	reg, err := model.NewRegistry(tally)
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestConcurrentCommands sends many commands at once to a few aggregates:
// each aggregate's replies carry distinct, gap-free sequence numbers, the
// bus carries its events in sequence order, and the same command id sent
// concurrently takes effect once.
func TestConcurrentCommands(t *testing.T) {
	n, err := node.New(context.Background(), testConfig(t), tallyRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(t.Context()) })
	nc := testsupport.Connect(t, n.ClientURL())
	sub, err := nc.SubscribeSync("concursus.events.tally.>")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	const aggregates, perAggregate, dupes = 4, 40, 10
	subject := api.CommandSubject("concursus", "tally")
	var (
		mu      sync.Mutex
		replies []api.Reply
		wg      sync.WaitGroup
	)
	send := func(agg, cmdID string) {
		body := fmt.Sprintf(`{"aggregateId":%q,"command":"add","commandId":%q,"args":{"n":1}}`, agg, cmdID)
		m, err := nc.Request(subject, []byte(body), reqTimeout)
		if err != nil {
			t.Errorf("%s: %v", cmdID, err)
			return
		}
		var r api.Reply
		if err := json.Unmarshal(m.Data, &r); err != nil || !r.OK {
			t.Errorf("%s: %s (%v)", cmdID, m.Data, err)
			return
		}
		mu.Lock()
		replies = append(replies, r)
		mu.Unlock()
	}
	for a := range aggregates {
		for i := range perAggregate {
			wg.Go(func() { send(fmt.Sprintf("t%d", a), fmt.Sprintf("t%d-%d", a, i)) })
		}
	}
	for range dupes {
		wg.Go(func() { send("t0", "t0-dup") })
	}
	wg.Wait()

	// Replies: per aggregate, the event sequences are exactly 1..N.
	seqs := map[string]map[uint64]bool{}
	fresh := 0
	for _, r := range replies {
		if seqs[r.AggregateID] == nil {
			seqs[r.AggregateID] = map[uint64]bool{}
		}
		if r.Duplicate {
			continue // the recorded outcome of the command that ran
		}
		if r.CommandID == "t0-dup" {
			fresh++
		}
		for _, e := range r.Events {
			if seqs[r.AggregateID][e.Sequence] {
				t.Fatalf("%s: sequence %d given twice", r.AggregateID, e.Sequence)
			}
			seqs[r.AggregateID][e.Sequence] = true
		}
	}
	if fresh != 1 {
		t.Fatalf("the command id sent %d times at once ran %d times, want once", dupes, fresh)
	}
	var dupEvents []string
	for _, r := range replies {
		if r.CommandID == "t0-dup" {
			dupEvents = append(dupEvents, testsupport.MustJSON(t, r.Events))
		}
	}
	for _, e := range dupEvents {
		if e != dupEvents[0] {
			t.Fatalf("replies to one command id differ:\n%s\n%s", e, dupEvents[0])
		}
	}
	total := 0
	for a := range aggregates {
		id := fmt.Sprintf("t%d", a)
		want := perAggregate + 1 // the first add also starts the tally
		if a == 0 {
			want++ // and t0-dup, once
		}
		got := seqs[id]
		if len(got) != want {
			t.Fatalf("%s: %d sequence numbers replied, want %d", id, len(got), want)
		}
		for s := uint64(1); s <= uint64(want); s++ {
			if !got[s] {
				t.Fatalf("%s: sequence %d missing from the replies", id, s)
			}
		}
		total += want
	}

	// The bus: every event once, in sequence order per aggregate.
	last := map[string]uint64{}
	for range total {
		_, e := nextEvent(t, sub)
		if e.Sequence != last[e.AggregateID]+1 {
			t.Fatalf("%s: event %d published after %d", e.AggregateID, e.Sequence, last[e.AggregateID])
		}
		last[e.AggregateID] = e.Sequence
	}
}
