//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/eventbus"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/storage/cassandra"
	"github.com/concursus-go/concursus/subscription"
)

// TestEventDeliveryProcesses checks that every persisted event reaches the
// bus and the consumers, against real processes: a standalone nats-server
// with JetStream, two cmd/node processes with --stream on the Cassandra
// log, and a consumer (package subscription) in the test, under load from
// the Go client.
//
//  1. n2 kills itself (SIGKILL, fault injection) right after one of its
//     batches is durable and before it is published. Its outbox is taken
//     over by n1, and the event reaches the stream.
//  2. nats-server is killed and restarted on the same port and store
//     while the load goes on.
//  3. The consumer is stopped and started again. n1 takes over n2's
//     outbox only while the consumer is stopped (fault injection holds the
//     takeover back until then), so the event n2 did not publish reaches
//     the stream after later events of its aggregate that the consumer
//     handled, filling the gap from history, before its stop: the
//     restarted consumer must know it handled them.
//  4. The consumer's handler keeps failing on one event (poison): it
//     lands in the dead letters, the aggregate's later events flow on.
//
// At the end the stream holds every event of the Cassandra log, and the
// consumer handled every event but the poison once, in sequence order.
func TestEventDeliveryProcesses(t *testing.T) {
	dir := t.TempDir()
	bins := buildBinaries(t, dir, "faultinject")
	jsDir := filepath.Join(dir, "jetstream")
	natsProc, natsURL := startNATS(t, bins.natsServer, dir, "-js", "-sd", jsDir)
	natsPort := natsURL[strings.LastIndex(natsURL, ":")+1:]
	h := newClusterHarnessOn(t, "itdelivery", dir, bins, natsURL)
	h.args = []string{"--stream", "--stream-max-age", "1h"}
	const killAt = 150 // n2 dies before publishing its 150th batch
	h.env["n2"] = []string{faultKillBeforePublish + "=" + fmt.Sprint(killAt)}
	holdTakeover := filepath.Join(dir, "hold-takeover")
	if err := os.WriteFile(holdTakeover, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	h.env["n1"] = []string{faultHoldTakeover + "=" + holdTakeover}
	h.start("n1", true)
	h.start("n2", false)
	h.waitConverged("n1", "n2")

	nc := connectNATS(t, natsURL, "consumer", nats.ReconnectWait(100*time.Millisecond))
	con := newTestConsumer(t, nc)
	con.start()

	load := startClusterLoad(t, natsURL, 12, 10, "steady")
	defer load.finish()
	load.waitProgress(t, 2*time.Second, 200)

	// 1. n2 dies between append and publish.
	load.setPhase("n2 killed")
	n2 := h.nodes["n2"]
	waitUntil(t, 120*time.Second, "n2 to kill itself before a publication", n2.proc.exited)
	killedEvent := faultInjected(t, n2.proc.logPath).EventID
	t.Logf("n2 died before publishing %s", killedEvent)
	delete(h.nodes, "n2")
	h.waitConverged("n1")
	load.waitProgress(t, settle, settleAcks)

	// 2. NATS restarts under load.
	load.setPhase("NATS restart")
	natsProc.kill()
	if exited, _ := natsProc.wait(10 * time.Second); !exited {
		t.Fatal("nats-server did not exit after SIGKILL")
	}
	down := time.Now()
	// Longer than the publisher's 5 s acknowledgement timeout, so that
	// publications in flight fail and are republished from the log.
	time.Sleep(6 * time.Second)
	natsProc, _ = startNATS(t, bins.natsServer, dir, "-js", "-sd", jsDir, "-p", natsPort)
	t.Logf("nats-server restarted after %v", time.Since(down).Round(time.Millisecond))
	load.waitProgress(t, settle, settleAcks)
	if log, err := os.ReadFile(filepath.Join(dir, "n1.log")); err != nil || !strings.Contains(string(log), "NATS reconnected") {
		t.Fatalf("n1 did not see NATS go away and come back (%v)", err)
	}

	// 3. The consumer stops and starts again. With the load paused, it
	// takes everything in the stream, stops, and the events n2 did not
	// publish come first after its ack floor.
	load.setPhase("consumer restart")
	load.pause()
	waitUntil(t, 60*time.Second, "the consumer to take every event in the stream", con.drained)
	con.logState(t, "before its stop")
	con.stop()
	con.logState(t, "after its stop")
	if err := os.Remove(holdTakeover); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 60*time.Second, "n1 to take over n2's outbox", func() bool {
		ps := h.info("n1").Publisher
		return ps != nil && ps.Recovered > 0
	})
	load.resume()
	load.waitProgress(t, 2*time.Second, settleAcks)
	con.start()
	load.waitProgress(t, settle, settleAcks)

	load.finish()
	load.report(t, nil)
	verifyClusterLog(t, h.cassandra, h.keyspace, load)

	// Every event of the log reaches the stream.
	logEvents := readLog(t, h.cassandra, h.keyspace, load)
	total := 0
	for _, evs := range logEvents {
		total += len(evs)
	}
	js, err := jetstream.New(h.admin)
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	waitUntil(t, 60*time.Second, "every logged event in the stream", func() bool {
		inStream := streamEventIDs(t, js, eventbus.StreamName(clusterPrefix))
		missing = missing[:0]
		for _, evs := range logEvents {
			for _, e := range evs {
				if !inStream[e.EventID] {
					missing = append(missing, fmt.Sprintf("%s#%d", e.Ref(), e.Sequence))
				}
			}
		}
		if len(missing) > 0 {
			t.Logf("%d of %d logged events not in the stream yet, e.g. %v", len(missing), total, missing[:min(5, len(missing))])
		}
		return len(missing) == 0
	})
	inStream := streamEventIDs(t, js, eventbus.StreamName(clusterPrefix))
	if !inStream[killedEvent] {
		t.Errorf("the event n2 died before publishing (%s) is not in the stream", killedEvent)
	}
	t.Logf("stream: all %d logged events of %d aggregates present", total, len(logEvents))

	// The consumer handled every event but the poison once, in order.
	var poison model.Event
	waitUntil(t, 60*time.Second, "the consumer to handle every event", func() bool {
		return con.caughtUp(logEvents)
	})
	con.check(t, logEvents)
	// The attack happened: the consumer's first run handled the event n2
	// did not publish from history (the stream did not have it yet).
	if run, ok := con.historyRun(killedEvent); !ok || run != 1 {
		t.Errorf("the event n2 did not publish (%s): handled from history in run %d (%v), want in run 1, before the stop", killedEvent, run, ok)
	}
	poison = con.poisonEvent(logEvents)
	dead, err := subscription.ListDeadLetters(context.Background(), h.admin, clusterPrefix, con.name)
	if err != nil {
		t.Fatalf("listing dead letters: %v", err)
	}
	if len(dead) != 1 || dead[0].Event.EventID != poison.EventID || !strings.Contains(dead[0].Error, "poison") {
		t.Fatalf("dead letters %+v, want exactly the poison event %s#%d with its error", dead, poison.Ref(), poison.Sequence)
	}
	t.Logf("dead letter: %s#%d after %d attempts: %s", poison.Ref(), poison.Sequence, dead[0].Attempts, dead[0].Error)
	con.report(t)
	waitUntil(t, 60*time.Second, "n1's publisher to have nothing left to republish", func() bool {
		ps := h.info("n1").Publisher
		return ps != nil && ps.DirtyBuckets == 0 && ps.Outstanding == 0
	})
	publisherReport(t, h)
	h.reportLogs()
}

// The fault-injection variables cmd/node built with -tags faultinject
// reads (cmd/node/faultinject.go), each set to N: the node SIGKILLs itself
// when its Nth batch of events is durable and about to be published, or
// when it is about to write its Nth batch of command records that holds a
// command with events (the events are durable, the records never written).
const (
	faultKillBeforePublish = "CONCURSUS_FAULT_KILL_BEFORE_PUBLISH"
	faultKillBeforeRecord  = "CONCURSUS_FAULT_KILL_BEFORE_RECORD"
	faultClockSkew         = "CONCURSUS_FAULT_CLOCK_SKEW" // a duration: the node's clock runs that far off
	// A file path: the node takes over no dead writer's outbox while it exists.
	faultHoldTakeover = "CONCURSUS_FAULT_HOLD_TAKEOVER"
	// A file path: the node's clock runs ahead by the duration written in it.
	faultClockFile = "CONCURSUS_FAULT_CLOCK_FILE"
)

// faultLine is what a node logged as it killed itself: the event id of
// the batch it did not publish, or the command id of the records it did
// not write.
type faultLine struct {
	EventID   string `json:"eventId"`
	CommandID string `json:"commandId"`
	Aggregate string `json:"aggregate"`
}

// faultInjected reads, from a node's JSON log, the line it wrote as the
// fault injection killed it.
func faultInjected(t *testing.T, logPath string) faultLine {
	t.Helper()
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg string `json:"msg"`
			faultLine
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && strings.HasPrefix(line.Msg, "fault injection: killing") {
			return line.faultLine
		}
	}
	t.Fatalf("%s has no fault-injection line:\n%s", logPath, tail(logPath, 20))
	return faultLine{}
}

// readLog reads the whole history of every aggregate the load touched.
func readLog(t *testing.T, addr, keyspace string, l *clusterLoad) map[model.Ref][]model.Event {
	t.Helper()
	l.mu.Lock()
	refs := make([]model.Ref, 0, len(l.mu.refs))
	for r := range l.mu.refs {
		refs = append(refs, r)
	}
	l.mu.Unlock()
	return readRefs(t, addr, keyspace, refs)
}

// readRefs reads the whole history of each of refs from Cassandra, with
// the storage package, not through a node.
func readRefs(t *testing.T, addr, keyspace string, refs []model.Ref) map[model.Ref][]model.Event {
	t.Helper()
	cfg := cassandra.DefaultConfig()
	cfg.Hosts = []string{addr}
	cfg.Keyspace = keyspace
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := cassandra.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	out := make(map[model.Ref][]model.Event, len(refs))
	for _, ref := range refs {
		for e, err := range eventlog.Events(ctx, st.EventLog(), ref, 1, 0) {
			if err != nil {
				t.Fatalf("reading %s: %v", ref, err)
			}
			out[ref] = append(out[ref], e)
		}
	}
	return out
}

// streamEventIDs returns the event ids the stream holds.
func streamEventIDs(t *testing.T, js jetstream.JetStream, name string) map[string]bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := js.Stream(ctx, name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := make(map[string]bool, info.State.Msgs)
	if info.State.Msgs == 0 {
		return ids
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for uint64(len(ids)) < info.State.Msgs {
		batch, err := cons.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			ids[m.Headers().Get("Concursus-Event-Id")] = true
			if md, err := m.Metadata(); err == nil && md.Sequence.Stream >= info.State.LastSeq {
				return ids
			}
		}
		if n == 0 {
			break
		}
	}
	return ids
}

// publisherReport logs the survivors' publisher counters.
func publisherReport(t *testing.T, h *clusterHarness) {
	for id := range h.nodes {
		t.Logf("%s publisher: %+v", id, h.info(id).Publisher)
	}
}

// testConsumer is a subscription that records what its handler saw per
// aggregate and keeps failing on one event, the poison: the third event
// (the first switchedOn) of aggregate w0-b0.
type testConsumer struct {
	t    *testing.T
	nc   *nats.Conn
	name string
	sub  *subscription.Subscription

	mu      sync.Mutex
	handled map[model.Ref][]uint64
	dupes   int
	stats   []subscription.Stats
	// fromHistory: the run (1, 2 …) that handled an event, by event id,
	// read from history.
	fromHistory map[string]int
}

const poisonID, poisonSeq = "w0-b0", 3

func newTestConsumer(t *testing.T, nc *nats.Conn) *testConsumer {
	return &testConsumer{t: t, nc: nc, name: "itconsumer", handled: make(map[model.Ref][]uint64), fromHistory: make(map[string]int)}
}

func (c *testConsumer) start() {
	c.t.Helper()
	var hs subscription.Handlers
	hs.CatchAll(func(_ context.Context, e subscription.Event) error {
		if e.AggregateID == poisonID && e.Sequence == poisonSeq {
			return errors.New("poison: this handler cannot take it")
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		ref := e.Ref()
		c.handled[ref] = append(c.handled[ref], e.Sequence)
		if e.Source == subscription.FromHistory {
			c.fromHistory[e.EventID] = len(c.stats) + 1
		}
		return nil
	})
	cfg := subscription.DefaultConfig()
	cfg.Conn = c.nc
	cfg.Prefix = clusterPrefix
	cfg.Name = c.name
	cfg.AggregateType = lightbulb.TypeName
	cfg.MaxAttempts = 3
	cfg.Backoff = subscription.Backoff{Initial: 20 * time.Millisecond, Max: 100 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sub, err := subscription.Subscribe(ctx, cfg, &hs)
	if err != nil {
		c.t.Fatalf("subscribing: %v", err)
	}
	c.sub = sub
	c.t.Cleanup(func() { c.stop() })
}

// drained reports whether the consumer has nothing pending and nothing
// waiting for an acknowledgement.
func (c *testConsumer) drained() bool {
	info, err := c.info()
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

// info reads the consumer's state from JetStream.
func (c *testConsumer) info() (*jetstream.ConsumerInfo, error) {
	js, err := jetstream.New(c.nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cons, err := js.Consumer(ctx, eventbus.StreamName(clusterPrefix), c.name)
	if err != nil {
		return nil, err
	}
	return cons.Info(ctx)
}

// logState logs the consumer's state as JetStream sees it: what it
// delivered, its ack floor and what it waits to be acknowledged.
func (c *testConsumer) logState(t *testing.T, when string) {
	t.Helper()
	info, err := c.info()
	if err != nil {
		t.Logf("consumer %s %s: %v", c.name, when, err)
		return
	}
	t.Logf("consumer %s %s: delivered stream seq %d, ack floor %d, %d waiting for an ack, %d redelivered",
		c.name, when, info.Delivered.Stream, info.AckFloor.Stream, info.NumAckPending, info.NumRedelivered)
}

func (c *testConsumer) stop() {
	if c.sub == nil {
		return
	}
	c.sub.Stop()
	c.mu.Lock()
	c.stats = append(c.stats, c.sub.Stats())
	c.mu.Unlock()
	c.sub = nil
}

// caughtUp reports whether every logged event but the poison was handled.
func (c *testConsumer) caughtUp(logEvents map[model.Ref][]model.Event) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for ref, evs := range logEvents {
		want := len(evs)
		if ref.ID == poisonID && want >= poisonSeq {
			want--
		}
		if len(c.handled[ref]) < want {
			return false
		}
	}
	return true
}

// check compares what the handler saw with the log: each aggregate's
// events once, in sequence order, the poison left out.
func (c *testConsumer) check(t *testing.T, logEvents map[model.Ref][]model.Event) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for ref, evs := range logEvents {
		var want []uint64
		for _, e := range evs {
			if ref.ID == poisonID && e.Sequence == poisonSeq {
				continue
			}
			want = append(want, e.Sequence)
		}
		if got := c.handled[ref]; !slices.Equal(got, want) {
			t.Errorf("%s: handled %v, want %v", ref, got, want)
		}
	}
}

// historyRun tells which run handled event id from history, if one did.
func (c *testConsumer) historyRun(id string) (int, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	run, ok := c.fromHistory[id]
	return run, ok
}

func (c *testConsumer) poisonEvent(logEvents map[model.Ref][]model.Event) model.Event {
	for ref, evs := range logEvents {
		if ref.ID == poisonID && len(evs) >= poisonSeq {
			return evs[poisonSeq-1]
		}
	}
	c.t.Fatalf("aggregate %s never reached sequence %d", poisonID, poisonSeq)
	return model.Event{}
}

func (c *testConsumer) report(t *testing.T) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sub != nil {
		c.stats = append(c.stats, c.sub.Stats())
	}
	for i, s := range c.stats {
		t.Logf("consumer run %d: %+v", i+1, s)
	}
}
