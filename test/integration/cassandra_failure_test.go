//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
	"github.com/concursus-go/concursus/storage/cassandra"
)

// repoRoot finds the repository from this file's location.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// cassandraAddr returns the address of the Cassandra node the suite runs
// against; see testsupport.CassandraAddr.
func cassandraAddr(t *testing.T) string {
	t.Helper()
	return testsupport.CassandraAddr(t, "the integration suite")
}

// script runs scripts/cassandra.sh with one verb and streams its output.
func script(t *testing.T, verb string) {
	t.Helper()
	cmd := exec.Command("bash", filepath.Join(repoRoot(t), "scripts", "cassandra.sh"), verb)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/cassandra.sh %s: %v", verb, err)
	}
}

// outcome is what one request saw.
type outcome struct {
	ok      bool
	code    api.Code
	events  []model.Event
	elapsed time.Duration
	phase   string
}

// TestCassandraOutageUnderLoad: with load running, Cassandra is stopped;
// commands must then fail with a retryable code within their deadline (no
// hang, never a false success). Cassandra is started again and the node —
// not restarted — serves again. Finally every acknowledged event is in the
// log exactly once and every history is gap-free.
func TestCassandraOutageUnderLoad(t *testing.T) {
	addr := cassandraAddr(t)
	ccfg := cassandra.DefaultConfig()
	ccfg.Hosts = []string{addr}
	ccfg.Keyspace = fmt.Sprintf("it_outage_%d", rand.Uint32())
	dropKeyspaceOnSuccess(t, addr, ccfg.Keyspace)
	ccfg.Timeout = 3 * time.Second
	ccfg.Logger = slog.New(slog.DiscardHandler)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	reg, err := model.NewRegistry(lightbulb.Define().Type)
	if err != nil {
		t.Fatal(err)
	}
	var store atomic.Pointer[cassandra.Store]
	n, err := node.New(context.Background(), node.Config{
		NodeID:         "outage",
		DataDir:        t.TempDir(),
		NATS:           node.NATSConfig{EmbeddedPort: -1},
		Logger:         logger,
		RequestTimeout: 5 * time.Second,
		Executor:       executorConfig(),
	}, reg, node.WithStoreOpener("cassandra", func(ctx context.Context) (node.Stores, error) {
		st, err := cassandra.Open(ctx, ccfg)
		if err != nil {
			return node.Stores{}, err
		}
		store.Store(st)
		return node.Stores{Events: st.EventLog(), Commands: st.CommandLog(), Close: st.Close}, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = n.Shutdown(context.Background()) }()
	waitUntil(t, 60*time.Second, "the node to connect to Cassandra", func() bool { ok, _ := n.Ready(); return ok })

	nc, err := nats.Connect(n.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()

	const bulbs = 40
	send := func(id, command, args, commandID string) outcome {
		body, _ := json.Marshal(api.Command{AggregateID: id, Command: command, CommandID: commandID, Args: json.RawMessage(args), TimeoutMs: 4000})
		start := time.Now()
		m, err := nc.Request(api.CommandSubject(api.DefaultPrefix, lightbulb.TypeName), body, 30*time.Second)
		o := outcome{elapsed: time.Since(start)}
		if err != nil {
			o.code = "nats:" + api.Code(err.Error())
			return o
		}
		var r api.Reply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			t.Errorf("undecodable reply %q", m.Data)
			return o
		}
		o.ok, o.events = r.OK, r.Events
		if r.Error != nil {
			o.code = r.Error.Code
		}
		return o
	}
	for i := range bulbs {
		id := fmt.Sprintf("bulb-%d", i)
		if o := send(id, "create", `{"wattage":40}`, id+"-create"); !o.ok {
			t.Fatalf("create %s: %+v", id, o)
		}
		if o := send(id, "screwIn", `{"location":"lab"}`, id+"-screw"); !o.ok {
			t.Fatalf("screwIn %s: %+v", id, o)
		}
	}

	var (
		phase   atomic.Value // "before", "outage", "after"
		stop    atomic.Bool
		mu      sync.Mutex
		results []outcome
		wg      sync.WaitGroup
		okAfter atomic.Int64
	)
	phase.Store("before")
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			on := map[int]bool{}
			for k := 0; !stop.Load(); k++ {
				i := w + 8*(k%(bulbs/8))
				cmd := "switchOn"
				if on[i] {
					cmd = "switchOff"
				}
				p := phase.Load().(string)
				o := send(fmt.Sprintf("bulb-%d", i), cmd, `{}`, fmt.Sprintf("w%d-%d", w, k))
				o.phase = p
				switch {
				case o.ok:
					on[i] = !on[i]
					if p == "after" {
						okAfter.Add(1)
					}
				case o.code == api.CodeRejected:
					// Our local view may be stale after an outcome we could
					// not learn; resync from the rejection.
					on[i] = !on[i]
				default:
					time.Sleep(20 * time.Millisecond) // back off, as a client would
				}
				mu.Lock()
				results = append(results, o)
				mu.Unlock()
			}
		}()
	}

	time.Sleep(3 * time.Second) // load before the outage
	t.Log("stopping Cassandra under load")
	phase.Store("outage")
	script(t, "stop")
	time.Sleep(10 * time.Second) // load during the outage
	t.Log("starting Cassandra again")
	script(t, "start")
	phase.Store("after")
	waitUntil(t, 120*time.Second, "commands to succeed again without a node restart", func() bool { return okAfter.Load() >= 20 })
	stop.Store(true)
	wg.Wait()

	// Every request was answered within its deadline (4s queue budget plus
	// a store timeout), with a success or a retryable code.
	counts := map[string]int{}
	for _, o := range results {
		key := o.phase + "/" + string(o.code)
		if o.ok {
			key = o.phase + "/ok"
		}
		counts[key]++
		if o.elapsed > 25*time.Second {
			t.Errorf("a request took %s (%s): hung", o.elapsed, key)
		}
		if !o.ok && o.code != api.CodeRejected && !o.code.Retryable() {
			t.Errorf("non-retryable failure during the outage test: %s", key)
		}
	}
	t.Logf("outcomes by phase: %v", counts)
	if counts["outage/unavailable"]+counts["outage/timeout"] == 0 {
		t.Errorf("no command failed with unavailable/timeout while Cassandra was down: %v", counts)
	}

	// No false success: every acknowledged event is in the log, once.
	st := store.Load()
	ctx := context.Background()
	acked := 0
	for _, o := range results {
		for _, e := range o.events {
			acked++
			page, _, err := st.EventLog().ReadPage(ctx, e.Ref(), e.Sequence, 1)
			if err != nil || len(page) != 1 || page[0].EventID != e.EventID {
				t.Errorf("acknowledged event %s #%d (%s) not in the log: %v %v", e.Ref(), e.Sequence, e.EventID, page, err)
			}
		}
	}
	for i := range bulbs {
		ref := model.Ref{Type: lightbulb.TypeName, ID: fmt.Sprintf("bulb-%d", i)}
		var want uint64 = 1
		for e, err := range eventlog.Events(ctx, st.EventLog(), ref, 1, 0) {
			if err != nil {
				t.Fatalf("reading %s: %v", ref, err)
			}
			if e.Sequence != want {
				t.Fatalf("%s: sequence %d where %d was expected (gap or duplicate)", ref, e.Sequence, want)
			}
			want++
		}
	}
	t.Logf("%d acknowledged events verified in the log", acked)
}

func waitUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
