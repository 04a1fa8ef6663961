package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
	"github.com/concursus-go/concursus/storage/bolt"
)

// gate is an aggregate type whose command handler blocks until the test
// opens the gate, so that commands are provably running (or queued behind a
// running one) when Shutdown is called. Handlers must not block in real
// code; here it stands for a slow decision.
type gate struct {
	entered atomic.Int64
	release chan struct{}
	typ     *model.Type[gateState]
}

type gateState struct {
	Passes int `json:"passes"`
}

type gateArgs struct{}

func newGate() *gate {
	g := &gate{release: make(chan struct{})}
	g.typ = model.NewType[gateState]("gate", model.JSON{})
	opened := model.DefineEvent[struct{}](g.typ, "opened", 0, model.Initial)
	passed := model.DefineEvent[struct{}](g.typ, "passed", 0, 0)
	model.On(g.typ.State(), passed, func(s *gateState, _ model.Recorded[struct{}]) { s.Passes++ })
	model.DefineCommand(g.typ, "pass", func(s model.Snapshot[gateState], _ gateArgs) ([]model.Emit, error) {
		g.entered.Add(1)
		<-g.release
		if !s.Exists {
			return []model.Emit{opened.New(struct{}{})}, nil
		}
		return []model.Emit{passed.New(struct{}{})}, nil
	}, model.Creates)
	return g
}

// openStore opens a stopped node's data file directly.
func openStore(t *testing.T, dataDir string) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dataDir, "concursus.db"), bolt.DefaultOptions())
	if err != nil {
		t.Fatalf("reopening the data file: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// assertDurable checks that every accepted reply's events are in the store,
// exactly as replied, and its command is recorded.
func assertDurable(t *testing.T, db *bolt.DB, replies []api.Reply) {
	t.Helper()
	ctx := context.Background()
	for _, r := range replies {
		if !r.OK {
			continue
		}
		ref := model.Ref{Type: r.AggregateType, ID: r.AggregateID}
		if len(r.Events) > 0 {
			got, _, err := db.EventLog().ReadPage(ctx, ref, r.Events[0].Sequence, len(r.Events))
			if err != nil {
				t.Fatalf("reading %s: %v", ref, err)
			}
			if testsupport.MustJSON(t, got) != testsupport.MustJSON(t, r.Events) {
				t.Errorf("%s: acknowledged events are not in the log as replied:\n log %s\nreply %s", ref, testsupport.MustJSON(t, got), testsupport.MustJSON(t, r.Events))
			}
		}
		if _, err := db.CommandLog().Get(ctx, r.CommandID); err != nil {
			t.Errorf("acknowledged command %s on %s not in the command log: %v", r.CommandID, ref, err)
		}
	}
}

// TestShutdownAnswersInFlightCommands: commands running or queued when
// Shutdown is called finish, reply, and are durable; Shutdown waits for them.
func TestShutdownAnswersInFlightCommands(t *testing.T) {
	g := newGate()
	reg, err := model.NewRegistry(g.typ)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	n, err := node.New(context.Background(), cfg, reg)
	if err != nil {
		t.Fatal(err)
	}
	released := false
	t.Cleanup(func() {
		if !released {
			close(g.release)
		}
		_ = n.Shutdown(context.Background())
	})
	nc := testsupport.Connect(t, n.ClientURL())

	// 10 aggregates with one running command each, and on 5 of them a second
	// command queued in the mailbox behind it.
	const running, queued = 10, 5
	replies := make(chan api.Reply, running+queued)
	failures := make(chan error, running+queued)
	send := func(id, cmdID string) {
		body := fmt.Sprintf(`{"aggregateId":%q,"command":"pass","commandId":%q}`, id, cmdID)
		m, err := nc.Request(api.CommandSubject("concursus", "gate"), []byte(body), 10*time.Second)
		if err != nil {
			failures <- fmt.Errorf("%s: %w", cmdID, err)
			return
		}
		var r api.Reply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			failures <- fmt.Errorf("%s: reply %s: %w", cmdID, m.Data, err)
			return
		}
		replies <- r
	}
	var wg sync.WaitGroup
	for i := range running {
		wg.Go(func() { send(fmt.Sprintf("g%d", i), fmt.Sprintf("first-%d", i)) })
	}
	testsupport.Eventually(t, 5*time.Second, "every first command to be running", func() bool { return g.entered.Load() == running })
	for i := range queued {
		wg.Go(func() { send(fmt.Sprintf("g%d", i), fmt.Sprintf("second-%d", i)) })
	}
	testsupport.Eventually(t, 5*time.Second, "the second commands to be queued", func() bool { return n.Executor().Stats().InFlight == running+queued })

	shutdown := make(chan error, 1)
	go func() { shutdown <- n.Shutdown(context.Background()) }()

	// Once the node stops taking requests, open the gate.
	testsupport.Eventually(t, 5*time.Second, "the node to stop taking requests", func() bool {
		_, err := nc.Request(api.AdminInfoSubject("concursus"), nil, time.Second)
		return errors.Is(err, nats.ErrNoResponders)
	})
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned (%v) while commands were still running", err)
	default:
	}
	close(g.release)
	released = true
	if err := <-shutdown; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	wg.Wait()
	close(replies)
	close(failures)
	for err := range failures {
		t.Errorf("an in-flight command got no reply: %v", err)
	}
	var got []api.Reply
	for r := range replies {
		if !r.OK {
			t.Errorf("in-flight command %s failed: %v", r.CommandID, r.Error)
		}
		got = append(got, r)
	}
	if len(got) != running+queued {
		t.Fatalf("%d replies, want %d", len(got), running+queued)
	}
	assertDurable(t, openStore(t, cfg.DataDir), got)
}

// TestShutdownUnderLoad calls Shutdown while many clients are sending
// commands. Every reply that arrives is well formed, and every accepted
// command's events are in the data file afterwards, gap-free.
func TestShutdownUnderLoad(t *testing.T) {
	cfg := testConfig(t)
	n := startNode(t, cfg)
	url := n.ClientURL()

	const clients = 16
	var (
		mu       sync.Mutex
		replies  []api.Reply
		answered atomic.Int64
		wg       sync.WaitGroup
	)
	cmds := []string{`"command":"create","args":{"wattage":60}`, `"command":"screwIn","args":{"location":"hall"}`,
		`"command":"switchOn"`, `"command":"switchOff"`, `"command":"switchOn"`, `"command":"unscrew"`}
	var lost atomic.Int64
	for c := range clients {
		// No reconnecting: once the embedded server is gone, requests
		// fail at once instead of waiting in the reconnect buffer.
		nc, err := nats.Connect(url, nats.NoReconnect())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		wg.Go(func() {
			for i := 0; ; i++ {
				id := fmt.Sprintf("load-%d-%d", c, i/len(cmds))
				body := fmt.Sprintf(`{"aggregateId":%q,"commandId":"%s-%d",%s}`, id, id, i, cmds[i%len(cmds)])
				m, err := nc.Request(cmdSubject, []byte(body), 5*time.Second)
				if errors.Is(err, nats.ErrTimeout) {
					lost.Add(1) // delivered, perhaps, but never answered
				}
				if err != nil {
					return // the node stopped taking requests (no responders, or the server is gone)
				}
				var r api.Reply
				if err := json.Unmarshal(m.Data, &r); err != nil {
					t.Errorf("malformed reply %s: %v", m.Data, err)
					return
				}
				switch {
				case r.OK && (r.Error != nil || r.CommandID == "" || r.Sequence == 0 || len(r.Events) == 0):
					t.Errorf("malformed ok reply: %s", m.Data)
				case !r.OK && (r.Error == nil || r.Error.Code == "" || r.Error.Message == "" || len(r.Events) != 0):
					t.Errorf("malformed error reply: %s", m.Data)
				case !r.OK && r.Error.Code != api.CodeUnavailable:
					t.Errorf("unexpected error during shutdown: %s", m.Data)
				}
				mu.Lock()
				replies = append(replies, r)
				mu.Unlock()
				answered.Add(1)
			}
		})
	}
	testsupport.Eventually(t, 5*time.Second, "some commands to be answered", func() bool { return answered.Load() >= 200 })
	if err := n.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	wg.Wait()

	db := openStore(t, cfg.DataDir)
	assertDurable(t, db, replies)
	// Every history touched is gap-free.
	seen := map[string]bool{}
	for _, r := range replies {
		if r.OK && !seen[r.AggregateID] {
			seen[r.AggregateID] = true
			assertGapFree(t, db, lbRef(r.AggregateID))
		}
	}
	if lost.Load() != 0 {
		t.Errorf("%d requests timed out: the node took them and never answered", lost.Load())
	}
	t.Logf("%d replies, %d aggregates", len(replies), len(seen))
}

// assertGapFree checks that ref's sequence numbers are 1, 2, 3 …
func assertGapFree(t *testing.T, db *bolt.DB, ref model.Ref) {
	t.Helper()
	events, next, err := db.EventLog().ReadPage(context.Background(), ref, 1, 1000)
	if err != nil || next != 0 {
		t.Fatalf("reading %s: next %d, %v", ref, next, err)
	}
	for i, e := range events {
		if e.Sequence != uint64(i+1) {
			t.Fatalf("%s: event %d has sequence %d: the history has a gap", ref, i, e.Sequence)
		}
	}
}

// TestRestartKeepsHistory stops a node and starts another on the same data
// directory: state, sequence numbers and recorded command ids survive.
func TestRestartKeepsHistory(t *testing.T) {
	cfg := testConfig(t)
	n1 := startNode(t, cfg)
	nc1 := testsupport.Connect(t, n1.ClientURL())
	create := mustOK(t, nc1, api.Command{AggregateID: "rb1", Command: "create", CommandID: "r-1", Args: json.RawMessage(`{"wattage":60}`)})
	mustOK(t, nc1, api.Command{AggregateID: "rb1", Command: "screwIn", CommandID: "r-2", Args: json.RawMessage(`{"location":"hall"}`)})
	mustOK(t, nc1, api.Command{AggregateID: "rb1", Command: "switchOn", CommandID: "r-3"})
	before := query(t, nc1, api.Query{AggregateID: "rb1"})
	if err := n1.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := n1.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}

	n2 := startNode(t, cfg) // on the same data dir
	nc2 := testsupport.Connect(t, n2.ClientURL())

	after := query(t, nc2, api.Query{AggregateID: "rb1"})
	if !after.OK || !after.Exists || after.Sequence != 3 || string(after.State) != string(before.State) {
		t.Fatalf("state after restart %+v (%s), before %s", after, after.State, before.State)
	}
	// The rule still holds against the reloaded state …
	r := command(t, nc2, api.Command{AggregateID: "rb1", Command: "switchOn", CommandID: "r-4"})
	wantError(t, r.Error, r.OK, api.CodeRejected)
	// … the history continues where it stopped …
	if r := mustOK(t, nc2, api.Command{AggregateID: "rb1", Command: "switchOff", CommandID: "r-5"}); r.Sequence != 4 {
		t.Fatalf("sequence after restart %d, want 4", r.Sequence)
	}
	// … and a command decided before the restart is still a duplicate.
	dup := mustOK(t, nc2, api.Command{AggregateID: "rb1", Command: "create", CommandID: "r-1", Args: json.RawMessage(`{"wattage":60}`)})
	if !dup.Duplicate || testsupport.MustJSON(t, dup.Events) != testsupport.MustJSON(t, create.Events) {
		t.Fatalf("retry after restart: %+v, want the original %s", dup, testsupport.MustJSON(t, create.Events))
	}
}
