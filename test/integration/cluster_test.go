//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/client"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/router"
	"github.com/concursus-go/concursus/storage/cassandra"
)

// Settings of the multi-process cluster suite.
const (
	// clusterPrefix is the subject prefix of the test's cluster (not the
	// default, so that --prefix is exercised end to end).
	clusterPrefix = "itc"
	// gossipProfile is the memberlist timing the nodes run with: the
	// realistic LAN profile, whose failure detection (1s probes, at least
	// 4s of suspicion) is what the takeover time measures.
	gossipProfile = "lan"
	// nodeShutdownTimeout is --shutdown-timeout: a node sent SIGTERM must
	// have exited 0 within it.
	nodeShutdownTimeout = 15 * time.Second
	// settle is how long load keeps running after each transition (at
	// least; also until settleAcks more commands were acknowledged).
	settle     = 4 * time.Second
	settleAcks = 300
	// convergeWithin bounds the wait for the nodes to agree on a ring.
	convergeWithin = 30 * time.Second
)

// TestClusterProcessesUnderLoad runs real cmd/node processes on loopback
// against a standalone nats-server and the Cassandra event log. Three
// nodes form a cluster; a client drives commands over many aggregates
// while (a) a fourth node joins, (b) a node leaves gracefully (SIGTERM)
// and (c) a node is killed (SIGKILL). After each change the survivors must
// converge on one ring, and load keeps going. It measures the moved
// fraction of partitions and the takeover time after the SIGKILL, then
// checks from the Cassandra log itself that every acknowledged command's
// event is there exactly once, every history is gap-free, and no event
// exists for a command the client did not see acknowledged unless the
// client saw that command fail; and that the client library absorbed
// every error with retries of the same command id.
func TestClusterProcessesUnderLoad(t *testing.T) {
	h := newClusterHarness(t, "it_cluster")
	addr, natsURL := h.cassandra, h.natsURL
	t.Logf("keyspace %s, NATS %s, gossip profile %s", h.keyspace, natsURL, gossipProfile)

	// Three nodes. The first creates the schema in the fresh keyspace
	// before the others start, since Cassandra handles concurrent schema
	// changes badly (see cassandra.Config.CreateSchema).
	started := time.Now()
	h.start("n1", true)
	h.start("n2", false)
	h.start("n3", false)
	three := h.waitConverged("n1", "n2", "n3")
	t.Logf("3 nodes up and agreeing on ring %s (%d partitions) after %v",
		three.Fingerprint, len(three.Owners), time.Since(started).Round(100*time.Millisecond))

	// The clients' replies come to _LOAD.> and _PROBE.>, which the tracer
	// also watches: it sees the outcome of every attempt, including the
	// ones the clients' retries replaced, and every forwarding hop.
	tr := newTracer(t, natsURL, clusterPrefix, map[string]string{"_LOAD": "load", "_PROBE": "probe"})
	ld := startClusterLoad(t, natsURL, 8, 25, "3 nodes")
	t.Cleanup(ld.stopNow)
	ld.waitProgress(t, settle, settleAcks)

	// (a) A fourth node joins.
	ld.setPhase("join n4")
	before := h.info("n1")
	joinStart := time.Now()
	h.start("n4", false)
	four := h.waitConverged("n1", "n2", "n3", "n4")
	joinTook := time.Since(joinStart)
	movedJoin, toNew := movedPartitions(before.Owners, four.Owners, "n4")
	counterDelta := h.info("n1").Routing.PartitionsMoved - before.Routing.PartitionsMoved
	t.Logf("join: 4 nodes agree %v after starting n4; moved %d of %d partitions (%.3f; %d of them to n4; n1's PartitionsMoved counter +%d)",
		joinTook.Round(100*time.Millisecond), movedJoin, len(four.Owners), frac(movedJoin, len(four.Owners)), toNew, counterDelta)
	if f := frac(movedJoin, len(four.Owners)); f < 0.15 || f > 0.40 {
		t.Errorf("adding a 4th node moved %.3f of the partitions; consistent hashing should move about 1/4", f)
	}
	ld.setPhase("4 nodes")
	ld.waitProgress(t, settle, settleAcks)

	// (b) n2 leaves gracefully.
	ld.setPhase("leave n2")
	before = four
	leaveStart := time.Now()
	if err := h.nodes["n2"].proc.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	exited, err := h.nodes["n2"].proc.wait(nodeShutdownTimeout + 5*time.Second)
	switch {
	case !exited:
		t.Fatalf("n2 still running %v after SIGTERM (--shutdown-timeout %v)", time.Since(leaveStart).Round(100*time.Millisecond), nodeShutdownTimeout)
	case err != nil:
		t.Errorf("n2 exited with %v after SIGTERM, want status 0", err)
	}
	exitTook := time.Since(leaveStart)
	if exitTook > nodeShutdownTimeout {
		t.Errorf("n2 took %v to exit after SIGTERM, more than its --shutdown-timeout %v", exitTook.Round(100*time.Millisecond), nodeShutdownTimeout)
	}
	delete(h.nodes, "n2")
	afterLeave := h.waitConverged("n1", "n3", "n4")
	movedLeave, ofN2 := movedPartitions(before.Owners, afterLeave.Owners, "n2")
	t.Logf("leave: n2 exited %v after SIGTERM; survivors agree %v after it; moved %d of %d partitions (%.3f; %d of them n2's)",
		exitTook.Round(100*time.Millisecond), time.Since(leaveStart).Round(100*time.Millisecond),
		movedLeave, len(afterLeave.Owners), frac(movedLeave, len(afterLeave.Owners)), ofN2)
	for _, id := range []string{"n1", "n3", "n4"} {
		if st := memberState(h.info(id), "n2"); st != "left" {
			t.Errorf("%s sees n2 as %q after its graceful leave, want left", id, st)
		}
	}
	ld.setPhase("3 nodes again")
	ld.waitProgress(t, settle, settleAcks)

	// (c) n3 is killed. Aggregates it owned (by the table all agree on)
	// are created first, so n3 holds their state; after the kill each
	// probe sends screwIn to a fresh one of them, with a short timeout,
	// until one succeeds on the node that took the partition over.
	ld.setPhase("kill n3")
	before = h.info("n1")
	probes := aggregatesOwnedBy(before.Owners, "n3", 300) // 30s of probes
	ld.createAll(t, probes)
	killed := time.Now()
	if err := h.nodes["n3"].proc.signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	tk := measureTakeover(t, h, natsURL, killed, "n3", []string{"n1", "n4"}, probes, ld)
	delete(h.nodes, "n3")
	afterKill := h.waitConverged("n1", "n4")
	movedKill, ofN3 := movedPartitions(before.Owners, afterKill.Owners, "n3")
	t.Logf("takeover after SIGKILL: ring %.1fs, first command on a moved aggregate %.1fs (gossip profile %s; %d probes sent, %d failed)",
		tk.ring.Seconds(), tk.command.Seconds(), gossipProfile, tk.probes, tk.probeErrors)
	t.Logf("kill: moved %d of %d partitions (%.3f; %d of them n3's)", movedKill, len(afterKill.Owners), frac(movedKill, len(afterKill.Owners)), ofN3)
	ld.setPhase("2 nodes")
	ld.waitProgress(t, settle, settleAcks)
	// The ring moves as soon as NATS reports n3's connection gone; gossip
	// declares it dead within its suspicion time (4-8s on the LAN
	// profile).
	for _, id := range []string{"n1", "n4"} {
		deadline := time.Now().Add(30 * time.Second)
		for memberState(h.info(id), "n3") != "dead" {
			if time.Now().After(deadline) {
				t.Errorf("%s sees n3 as %q 30s after SIGKILL, want dead", id, memberState(h.info(id), "n3"))
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	t.Logf("gossip declared n3 dead %.1fs after the SIGKILL", time.Since(killed).Seconds())

	ld.finish()
	tr.close()
	for _, id := range []string{"n1", "n4"} {
		r := h.info(id).Routing
		t.Logf("%s routing: local %d, direct %d, forwarded %d, rerouted %d, delayed %d, exhausted %d, ring changes %d",
			id, r.Local, r.Direct, r.Forwarded, r.Rerouted, r.Delayed, r.Exhausted, r.RingChanges)
		if id == "n4" && r.Local+r.Direct == 0 {
			t.Error("the node that joined ran no command")
		}
	}
	ld.report(t, tr)
	tr.report(t)
	h.reportLogs()

	// The log itself.
	verifyClusterLog(t, addr, h.keyspace, ld)
	t.Logf("whole test %v", time.Since(started).Round(100*time.Millisecond))
}

// requireClusterFlags fails the test early, with a clear message, when
// cmd/node has no cluster flags.
func requireClusterFlags(t *testing.T, bin string) {
	t.Helper()
	out, _ := exec.Command(bin, "--help").CombinedOutput()
	for _, flag := range []string{"-cluster", "-join", "-gossip-addr", "-gossip-port", "-gossip-profile"} {
		if !strings.Contains(string(out), flag+" ") && !strings.Contains(string(out), flag+"\n") {
			t.Fatalf("cmd/node has no %s flag; its --help:\n%s", flag, out)
		}
	}
}

// dropKeyspaceOnSuccess drops the test's keyspace at cleanup when the test
// passed; a failed test leaves it for inspection.
func dropKeyspaceOnSuccess(t *testing.T, addr, keyspace string) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("keyspace %s kept for inspection", keyspace)
			return
		}
		c := gocql.NewCluster(addr)
		c.Timeout = 30 * time.Second
		s, err := c.CreateSession()
		if err != nil {
			t.Logf("dropping keyspace %s: %v", keyspace, err)
			return
		}
		defer s.Close()
		if err := s.Query("DROP KEYSPACE IF EXISTS " + keyspace).Exec(); err != nil {
			t.Logf("dropping keyspace %s: %v", keyspace, err)
		}
	})
}

// clusterHarness is the node processes of one test. Only the test's
// goroutine uses it.
// newClusterHarness builds the binaries, starts a NATS server and names a
// fresh keyspace (dropped if the test passes) for a cluster of node
// processes; nodes are started with start.
func newClusterHarness(t *testing.T, keyspacePrefix string) *clusterHarness {
	t.Helper()
	dir := t.TempDir()
	bins := buildBinaries(t, dir)
	_, natsURL := startNATS(t, bins.natsServer, dir)
	return newClusterHarnessOn(t, keyspacePrefix, dir, bins, natsURL)
}

// newClusterHarnessOn is newClusterHarness on a NATS server the caller
// started.
func newClusterHarnessOn(t *testing.T, keyspacePrefix, dir string, bins binaries, natsURL string) *clusterHarness {
	t.Helper()
	addr := cassandraAddr(t)
	requireClusterFlags(t, bins.node)
	h := &clusterHarness{
		t: t, dir: dir, bin: bins.node, natsURL: natsURL, cassandra: addr,
		keyspace: fmt.Sprintf("%s_%d", keyspacePrefix, rand.Uint32()),
		nodes:    make(map[string]*clusterNode),
		env:      make(map[string][]string),
	}
	h.admin = connectNATS(t, natsURL, "admin")
	dropKeyspaceOnSuccess(t, addr, h.keyspace)
	return h
}

type clusterHarness struct {
	t                            *testing.T
	dir, bin, natsURL, cassandra string
	keyspace                     string
	admin                        *nats.Conn
	nodes                        map[string]*clusterNode
	// args are added to every node's command line; env[id] to one
	// node's environment.
	args []string
	env  map[string][]string
}

type clusterNode struct {
	id     string
	proc   *process
	gossip string // host:port it gossips on
}

// start runs a node process that joins the running ones (through all their
// gossip addresses) and waits until it answers with its store connected.
// Its gossip port is free-picked (--gossip-port 0) and read back from its
// admin reply, so no port is guessed.
func (h *clusterHarness) start(id string, createSchema bool) *clusterNode {
	t := h.t
	t.Helper()
	var seeds []string
	for _, n := range slices.Sorted(maps.Keys(h.nodes)) {
		seeds = append(seeds, h.nodes[n].gossip)
	}
	args := []string{
		"--cluster", "--node-id", id, "--nats-url", h.natsURL, "--prefix", clusterPrefix,
		"--store", "cassandra", "--cassandra-hosts", h.cassandra, "--cassandra-keyspace", h.keyspace,
		"--cassandra-create-schema=" + strconv.FormatBool(createSchema),
		"--gossip-addr", "127.0.0.1", "--gossip-port", "0", "--gossip-profile", gossipProfile,
		"--shutdown-timeout", nodeShutdownTimeout.String(), "--log-format", "json", "--log-level", "info",
	}
	if len(seeds) > 0 {
		args = append(args, "--join", strings.Join(seeds, ","))
	}
	args = append(args, h.args...)
	n := &clusterNode{id: id, proc: startProcess(t, h.dir, id, h.bin, args, h.env[id])}
	waitUntil(t, 90*time.Second, id+" to join with its store connected", func() bool {
		if n.proc.exited() {
			t.Fatalf("%s exited: %v\n%s", id, n.proc.err, tail(n.proc.logPath, 30))
		}
		info, err := nodeClusterInfo(h.admin, clusterPrefix, id, time.Second)
		if err != nil || !info.Clustered {
			return false
		}
		for _, m := range info.Members {
			if m.ID == id {
				n.gossip = m.Addr
			}
		}
		return n.gossip != "" && info.Ready
	})
	h.nodes[id] = n
	return n
}

// info asks one node for its ClusterInfo.
func (h *clusterHarness) info(id string) api.ClusterInfo {
	h.t.Helper()
	info, err := nodeClusterInfo(h.admin, clusterPrefix, id, 5*time.Second)
	if err != nil {
		h.t.Fatalf("cluster info of %s: %v", id, err)
	}
	return info
}

// waitConverged waits until exactly the nodes ids answer on the admin
// cluster subject, ready, each with exactly ids in its ring and all with
// one fingerprint; it returns the first node's info.
func (h *clusterHarness) waitConverged(ids ...string) api.ClusterInfo {
	h.t.Helper()
	want := slices.Sorted(slices.Values(ids))
	var last string
	var out api.ClusterInfo
	deadline := time.Now().Add(convergeWithin)
	for {
		infos, err := gatherClusterInfo(h.admin, clusterPrefix, len(ids), time.Second)
		ok := err == nil
		var fp string
		last = fmt.Sprintf("%d replies (err %v)", len(infos), err)
		for _, id := range want {
			info, found := infos[id]
			ring := slices.Sorted(slices.Values(inRing(info)))
			switch {
			case !found:
				ok, last = false, id+" did not answer"
			case !info.Ready:
				ok, last = false, id+" is not ready"
			case !slices.Equal(ring, want):
				ok, last = false, fmt.Sprintf("%s routes to %v", id, ring)
			case fp != "" && info.Fingerprint != fp:
				ok, last = false, fmt.Sprintf("fingerprints differ (%s: %s, others %s)", id, info.Fingerprint, fp)
			}
			fp = info.Fingerprint
		}
		if ok {
			out = infos[ids[0]]
			return out
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("nodes %v did not converge within %v: %s", want, convergeWithin, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// reportLogs logs each node's warnings and errors, counted by message.
func (h *clusterHarness) reportLogs() {
	for _, id := range []string{"n1", "n2", "n3", "n4"} {
		path := fmt.Sprintf("%s/%s.log", h.dir, id)
		if _, err := os.Stat(path); err != nil {
			continue // no such node in this test
		}
		warn, errs := logSummary(path)
		if len(warn)+len(errs) > 0 {
			h.t.Logf("%s log: warnings %v, errors %v", id, warn, errs)
		}
	}
}

// movedPartitions counts the partitions whose owner differs between two
// tables, and how many of them moved to or from node.
func movedPartitions(before, after []string, node string) (moved, ofNode int) {
	for p := range min(len(before), len(after)) {
		if before[p] != after[p] {
			moved++
			if after[p] == node || before[p] == node {
				ofNode++
			}
		}
	}
	return moved, ofNode
}

func frac(a, b int) float64 { return float64(a) / float64(max(b, 1)) }

// aggregatesOwnedBy returns n lightbulb ids that the table assigns to
// owner.
func aggregatesOwnedBy(owners []string, owner string, n int) []string {
	var ids []string
	for i := 0; len(ids) < n; i++ {
		id := fmt.Sprintf("probe-%d", i)
		if owners[router.Partition(len(owners), lightbulb.TypeName, id)] == owner {
			ids = append(ids, id)
		}
	}
	return ids
}

// takeover is what measureTakeover saw.
type takeover struct {
	ring, command       time.Duration
	probes, probeErrors int
}

// measureTakeover measures, from the kill, how long until (1) every
// survivor's ring has dropped the dead node and (2) a command to an
// aggregate the dead node owned succeeds. A probe starts every 100ms, each
// on its own aggregate (a timed-out probe may still run later, so none is
// reused) with a 1s timeout.
func measureTakeover(t *testing.T, h *clusterHarness, url string, killed time.Time, dead string, survivors, probes []string, ld *clusterLoad) takeover {
	t.Helper()
	var out takeover
	nc := connectNATS(t, url, "probe", nats.CustomInboxPrefix("_PROBE"))
	cl := client.New(nc, client.Options{Prefix: clusterPrefix, Timeout: time.Second, Attempt: time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	var (
		first   atomic.Int64 // nanoseconds after the kill; 0 until a probe succeeded
		wg      sync.WaitGroup
		errs    atomic.Int64
		sent    int
		tick    = time.NewTicker(100 * time.Millisecond)
		giveUp  = killed.Add(60 * time.Second)
		ringSet bool
	)
	defer tick.Stop()
	for first.Load() == 0 || !ringSet {
		if time.Now().After(giveUp) {
			t.Fatalf("no takeover within 60s of killing %s (ring converged: %v; %d of %d probes sent, none succeeded)", dead, ringSet, sent, len(probes))
		}
		if !ringSet {
			gone := true
			for _, id := range survivors {
				info, err := nodeClusterInfo(h.admin, clusterPrefix, id, 500*time.Millisecond)
				if err != nil || slices.Contains(inRing(info), dead) {
					gone = false
				}
			}
			if gone {
				out.ring, ringSet = time.Since(killed), true
			}
		}
		if first.Load() == 0 && sent < len(probes) {
			id := probes[sent]
			sent++
			wg.Go(func() {
				cid := id + "-probe"
				res, err := cl.SendRaw(context.Background(), lightbulb.TypeName, id, "screwIn", json.RawMessage(`{"location":"probe"}`), client.WithCommandID(cid))
				at := time.Since(killed)
				ld.recordProbe(id, cid, res, err)
				if err != nil {
					errs.Add(1)
					return
				}
				first.CompareAndSwap(0, int64(at))
			})
		}
		<-tick.C
	}
	wg.Wait()
	out.command, out.probes, out.probeErrors = time.Duration(first.Load()), sent, int(errs.Load())
	return out
}

// ackedCommand is a command the cluster acknowledged as accepted.
type ackedCommand struct {
	id        string
	sequence  uint64 // the aggregate's sequence after it, as the reply said
	duplicate bool
}

// retriedCommand is a command the client sent more than once.
type retriedCommand struct {
	phase, command, aggregate, id string
	attempts                      int
	latency                       time.Duration
	failed                        bool
}

// phaseStats describe the commands acknowledged in one phase of the test.
type phaseStats struct {
	acked, retried, extraAttempts, duplicates int
	maxLatency                                time.Duration
}

// clusterLoad drives commands through the Go client like node's in-process
// cluster tests: each worker owns its aggregates and sends each one create,
// screwIn, then alternating switchOn and switchOff, every command with a
// unique id that the client's retries reuse. It records every
// acknowledgement and every error the client returned, with the attempts
// the client made (Result.Attempts, Error.Attempts).
type clusterLoad struct {
	cl       *client.Client
	stop     chan struct{}
	stopOnce sync.Once
	// gate: each worker holds it for reading while it sends; pause takes
	// it for writing.
	gate    sync.RWMutex
	wg      sync.WaitGroup
	acks    atomic.Int64
	running atomic.Int64 // workers still sending

	mu struct {
		sync.Mutex
		phase    string
		phases   []string // in order
		stats    map[string]*phaseStats
		acked    map[model.Ref][]ackedCommand
		failed   map[string]error // command id → the error the client returned
		refs     map[model.Ref]bool
		failures []string
		retried  []retriedCommand
	}
}

// startClusterLoad starts workers, each sending to perWorker aggregates of
// its own; phase names the first phase.
func startClusterLoad(t *testing.T, url string, workers, perWorker int, phase string) *clusterLoad {
	t.Helper()
	nc := connectNATS(t, url, "load", nats.CustomInboxPrefix("_LOAD"))
	l := &clusterLoad{
		cl: client.New(nc, client.Options{Prefix: clusterPrefix, Timeout: 30 * time.Second, Attempt: 2 * time.Second,
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}),
		stop: make(chan struct{}),
	}
	l.mu.stats = make(map[string]*phaseStats)
	l.mu.acked = make(map[model.Ref][]ackedCommand)
	l.mu.failed = make(map[string]error)
	l.mu.refs = make(map[model.Ref]bool)
	l.setPhase(phase)
	for w := range workers {
		l.running.Add(1)
		l.wg.Go(func() {
			defer l.running.Add(-1)
			bulbs := testsupport.NewLightbulbs(w, perWorker)
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				c := bulbs.Next()
				l.gate.RLock()
				ok := l.send(c.AggregateID, c.Command, c.Args, c.CommandID)
				l.gate.RUnlock()
				if !ok {
					return // the aggregate's state is unknown now
				}
				bulbs.Accepted()
			}
		})
	}
	return l
}

// send sends one command and records its outcome; false if it failed.
func (l *clusterLoad) send(id, cmd string, args json.RawMessage, cid string) bool {
	phase := l.phase()
	start := time.Now()
	res, err := l.cl.SendRaw(context.Background(), lightbulb.TypeName, id, cmd, args, client.WithCommandID(cid))
	latency := time.Since(start)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.noteLocked(id, cid, res, err)
	if err != nil {
		l.mu.failures = append(l.mu.failures, fmt.Sprintf("%s %s (%s) in phase %q after %v: %v", cmd, id, cid, phase, latency.Round(time.Millisecond), err))
		attempts := 0
		var ce *client.Error
		if errors.As(err, &ce) {
			attempts = ce.Attempts
		}
		l.mu.retried = append(l.mu.retried, retriedCommand{phase: phase, command: cmd, aggregate: id, id: cid, attempts: attempts, latency: latency, failed: true})
		return false
	}
	l.acks.Add(1)
	st := l.mu.stats[phase]
	st.acked++
	if res.Attempts > 1 {
		st.retried++
		st.extraAttempts += res.Attempts - 1
		l.mu.retried = append(l.mu.retried, retriedCommand{phase: phase, command: cmd, aggregate: id, id: cid, attempts: res.Attempts, latency: latency})
	}
	if res.Duplicate {
		st.duplicates++
	}
	st.maxLatency = max(st.maxLatency, latency)
	return true
}

// recordProbe records a takeover probe: its acknowledgement, or its error,
// which is expected while the dead node still owns the aggregate.
func (l *clusterLoad) recordProbe(id, cid string, res *client.Result, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.noteLocked(id, cid, res, err)
}

// noteLocked records what the log check needs of command cid on bulb id:
// its acknowledgement, or its error.
func (l *clusterLoad) noteLocked(id, cid string, res *client.Result, err error) {
	ref := model.Ref{Type: lightbulb.TypeName, ID: id}
	l.mu.refs[ref] = true
	if err != nil {
		l.mu.failed[cid] = err
		return
	}
	l.mu.acked[ref] = append(l.mu.acked[ref], ackedCommand{id: cid, sequence: res.Sequence, duplicate: res.Duplicate})
}

// createAll creates the given lightbulbs (in parallel, outside the load's
// workers), each acknowledgement recorded like the load's.
func (l *clusterLoad) createAll(t *testing.T, ids []string) {
	t.Helper()
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(ids) {
					return
				}
				l.send(ids[i], "create", json.RawMessage(`{"wattage":40}`), ids[i]+"-create")
			}
		})
	}
	wg.Wait()
	if n := l.failureCount(); n > 0 {
		t.Fatalf("creating the probe aggregates: %d requests failed: %v", n, l.failureList())
	}
}

func (l *clusterLoad) phase() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.phase
}

func (l *clusterLoad) setPhase(p string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.phase = p
	if l.mu.stats[p] == nil {
		l.mu.stats[p] = &phaseStats{}
		l.mu.phases = append(l.mu.phases, p)
	}
}

func (l *clusterLoad) failureCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.mu.failures)
}

func (l *clusterLoad) failureList() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.mu.failures)
}

// waitProgress waits at least d and until n more commands were
// acknowledged.
func (l *clusterLoad) waitProgress(t *testing.T, d time.Duration, n int64) {
	t.Helper()
	target := l.acks.Load() + n
	start := time.Now()
	waitUntil(t, d+60*time.Second, fmt.Sprintf("%d more acknowledged commands", n), func() bool {
		if l.running.Load() == 0 {
			t.Fatalf("every load worker stopped; client failures: %v", l.failureList())
		}
		return time.Since(start) >= d && l.acks.Load() >= target
	})
}

// pause waits for the commands in flight and holds the workers back until
// resume.
func (l *clusterLoad) pause() { l.gate.Lock() }

func (l *clusterLoad) resume() { l.gate.Unlock() }

func (l *clusterLoad) stopNow() { l.stopOnce.Do(func() { close(l.stop) }) }

// finish stops the workers and waits for their last commands.
func (l *clusterLoad) finish() {
	l.stopNow()
	l.wg.Wait()
}

// report logs the per-phase statistics and the routes of some retried
// commands (as tr saw them), and fails the test on every request the
// client's retries did not save.
func (l *clusterLoad) report(t *testing.T, tr *tracer) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var total phaseStats
	for _, p := range l.mu.phases {
		s := l.mu.stats[p]
		t.Logf("phase %-14q acked %5d, retried %4d (%d extra attempts), duplicates %d, max latency %v",
			p, s.acked, s.retried, s.extraAttempts, s.duplicates, s.maxLatency.Round(time.Millisecond))
		total.acked += s.acked
		total.retried += s.retried
		total.extraAttempts += s.extraAttempts
		total.duplicates += s.duplicates
		total.maxLatency = max(total.maxLatency, s.maxLatency)
	}
	t.Logf("client: %d commands acknowledged over %d aggregates, %d retried (%d extra attempts, %d acknowledged as duplicates), %d failed after retries; max latency %v",
		total.acked, len(l.mu.refs), total.retried, total.extraAttempts, total.duplicates, len(l.mu.failures), total.maxLatency.Round(time.Millisecond))
	shown := make(map[string]int)
	for _, r := range l.mu.retried {
		if shown[r.phase]++; shown[r.phase] > 4 && !r.failed {
			continue
		}
		t.Logf("retried in %q: %s %s (%s), %d attempts, %v: %s", r.phase, r.command, r.aggregate, r.id,
			r.attempts, r.latency.Round(time.Millisecond), tr.route(r.id))
	}
	for _, f := range l.mu.failures {
		t.Errorf("client request failed after retries: %s", f)
	}
}

// verifyClusterLog reads every aggregate the test touched from the
// Cassandra log and checks it against what the client saw.
func verifyClusterLog(t *testing.T, addr, keyspace string, l *clusterLoad) {
	t.Helper()
	cfg := cassandra.DefaultConfig()
	cfg.Hosts = []string{addr}
	cfg.Keyspace = keyspace
	cfg.CreateSchema = false
	cfg.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := cassandra.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("opening keyspace %s: %v", keyspace, err)
	}
	defer func() { _ = st.Close() }()

	l.mu.Lock()
	defer l.mu.Unlock()
	refs := slices.SortedFunc(maps.Keys(l.mu.refs), func(a, b model.Ref) int { return strings.Compare(a.ID, b.ID) })
	var events, checked, unackedAfterError, gaps int
	problems := 0
	problem := func(format string, args ...any) {
		problems++
		if problems <= 30 {
			t.Errorf(format, args...)
		}
	}
	for _, ref := range refs {
		byCommand := make(map[string][]uint64) // command id → sequences of its events
		var want uint64 = 1
		for e, err := range eventlog.Events(ctx, st.EventLog(), ref, 1, 0) {
			if err != nil {
				t.Fatalf("reading %s: %v", ref, err)
			}
			if e.Sequence != want {
				gaps++
				problem("%s: event #%d has sequence %d: a gap or a duplicate", ref.ID, want, e.Sequence)
				want = e.Sequence
			}
			want++
			events++
			byCommand[e.CommandID] = append(byCommand[e.CommandID], e.Sequence)
		}
		acked := make(map[string]bool)
		for _, a := range l.mu.acked[ref] {
			acked[a.id] = true
			checked++
			seqs := byCommand[a.id]
			switch {
			case len(seqs) != 1:
				problem("%s: acknowledged command %s has %d events in the log (sequences %v), want exactly 1", ref.ID, a.id, len(seqs), seqs)
			case a.sequence != 0 && seqs[0] != a.sequence:
				problem("%s: command %s was acknowledged at sequence %d, its event in the log is #%d", ref.ID, a.id, a.sequence, seqs[0])
			}
		}
		for cid, seqs := range byCommand {
			if acked[cid] {
				continue
			}
			if _, sawError := l.mu.failed[cid]; sawError {
				unackedAfterError++
				continue
			}
			problem("%s: events %v of command %q, which the client never saw acknowledged nor failing", ref.ID, seqs, cid)
		}
	}
	t.Logf("log check: %d aggregates, %d events, %d acknowledged commands each found exactly once; %d gaps; %d commands with events that the client saw fail (%d client errors in all, probes included); %d problems",
		len(refs), events, checked, gaps, unackedAfterError, len(l.mu.failed), problems)
}
