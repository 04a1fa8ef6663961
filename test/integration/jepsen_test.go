//go:build integration

package integration

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/eventbus"
	"github.com/concursus-go/concursus/internal/testsupport"
)

// jepsenConfig is TestJepsen's configuration, read from the environment
// so that a run can be made longer or shorter without editing the test.
type jepsenConfig struct {
	seed     uint64        // CONCURSUS_JEPSEN_SEED; default random, always printed
	bulbs    int           // CONCURSUS_JEPSEN_BULBS (50): lightbulbs, created first
	workers  int           // CONCURSUS_JEPSEN_WORKERS (8): concurrent clients
	rate     float64       // CONCURSUS_JEPSEN_RATE (10): commands per second per worker, at most (0: as fast as replies come)
	reads    int           // CONCURSUS_JEPSEN_READS (20): percent of a worker's steps that are state queries instead of commands
	fault    time.Duration // CONCURSUS_JEPSEN_FAULT (20s): how long each fault lasts
	quiet    time.Duration // CONCURSUS_JEPSEN_QUIET (10s): quiet period before each fault
	budget   time.Duration // CONCURSUS_JEPSEN_BUDGET (90s): per command, all its retries
	attempt  time.Duration // CONCURSUS_JEPSEN_ATTEMPT (2s): per request
	grace    time.Duration // CONCURSUS_JEPSEN_RAFT_GRACE (10s): the nodes' --raft-failure-grace
	converge time.Duration // CONCURSUS_JEPSEN_CONVERGE (30s): how long to wait for one ring after a heal before moving on
	faults   []string      // CONCURSUS_JEPSEN_FAULTS ("kill,stop,partition,raftcut,nats,natspause,cassandra,storm"), in order
	storm    int           // CONCURSUS_JEPSEN_STORM_PARALLEL (32): requests in flight during the storm
	skew     time.Duration // CONCURSUS_JEPSEN_SKEW (-3s): how far n2's clock runs from the others' the whole test (0: no skew)
}

// jepsenLinearizeTimeout bounds porcupine's search per aggregate.
var jepsenLinearizeTimeout = 30 * time.Second

func jepsenConfigFromEnv(t *testing.T) jepsenConfig {
	t.Helper()
	c := jepsenConfig{
		bulbs: 50, workers: 8, rate: 10, reads: 20,
		fault: 20 * time.Second, quiet: 10 * time.Second, budget: 90 * time.Second, attempt: 2 * time.Second,
		grace: 10 * time.Second, converge: 30 * time.Second,
		faults: []string{"kill", "stop", "partition", "raftcut", "nats", "natspause", "cassandra", "storm"},
		storm:  32, skew: -3 * time.Second,
	}
	dur := func(name string, d *time.Duration) {
		if v := os.Getenv(name); v != "" {
			x, err := time.ParseDuration(v)
			if err != nil || x < 0 {
				t.Fatalf("%s=%q: want a duration such as 20s", name, v)
			}
			*d = x
		}
	}
	num := func(name string, n *int) {
		if v := os.Getenv(name); v != "" {
			x, err := strconv.Atoi(v)
			if err != nil || x <= 0 {
				t.Fatalf("%s=%q: want a positive whole number", name, v)
			}
			*n = x
		}
	}
	c.seed = testsupport.Seed(t, 0, "CONCURSUS_JEPSEN_SEED")
	if v := os.Getenv("CONCURSUS_JEPSEN_RATE"); v != "" {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || x < 0 {
			t.Fatalf("CONCURSUS_JEPSEN_RATE=%q: want commands per second per worker (0: unpaced)", v)
		}
		c.rate = x
	}
	num("CONCURSUS_JEPSEN_BULBS", &c.bulbs)
	num("CONCURSUS_JEPSEN_WORKERS", &c.workers)
	num("CONCURSUS_JEPSEN_STORM_PARALLEL", &c.storm)
	if v := os.Getenv("CONCURSUS_JEPSEN_READS"); v != "" {
		x, err := strconv.Atoi(v)
		if err != nil || x < 0 || x > 100 {
			t.Fatalf("CONCURSUS_JEPSEN_READS=%q: want a percentage, 0 to 100", v)
		}
		c.reads = x
	}
	dur("CONCURSUS_JEPSEN_FAULT", &c.fault)
	dur("CONCURSUS_JEPSEN_QUIET", &c.quiet)
	dur("CONCURSUS_JEPSEN_BUDGET", &c.budget)
	dur("CONCURSUS_JEPSEN_ATTEMPT", &c.attempt)
	dur("CONCURSUS_JEPSEN_RAFT_GRACE", &c.grace)
	dur("CONCURSUS_JEPSEN_CONVERGE", &c.converge)
	if v := os.Getenv("CONCURSUS_JEPSEN_SKEW"); v != "" {
		x, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("CONCURSUS_JEPSEN_SKEW=%q: want a duration such as -3s (0: none)", v)
		}
		c.skew = x
	}
	if v := os.Getenv("CONCURSUS_JEPSEN_FAULTS"); v != "" {
		c.faults = nil
		for f := range strings.SplitSeq(v, ",") {
			f = strings.TrimSpace(f)
			if !slices.Contains([]string{"kill", "stop", "partition", "raftcut", "nats", "natspause", "cassandra", "storm"}, f) {
				t.Fatalf("CONCURSUS_JEPSEN_FAULTS: unknown fault %q (kill, stop, partition, raftcut, nats, natspause, cassandra, storm)", f)
			}
			c.faults = append(c.faults, f)
		}
	}
	return c
}

// TestJepsen runs three cmd/node processes on Cassandra with an external
// nats-server (n2 with its clock skewed, CONCURSUS_JEPSEN_SKEW), drives a
// logged workload of lightbulb commands through plain NATS requests,
// injects faults one after another — SIGKILL and
// restart of a node, SIGSTOP past failure detection then SIGCONT, a
// gossip partition, the filter's raft leader cut from the other voters,
// nats-server SIGKILL and restart, nats-server SIGSTOP, Cassandra stop
// and start — then resends every answered command id to every node (the
// storm), and finally checks, from the Cassandra tables read directly,
// that the log and every reply agree (see jepsen_checker_test.go and
// jepsen_model_test.go). It prints figures per fault and fails on any
// violation; the figures themselves are never asserted.
func TestJepsen(t *testing.T) {
	addr := cassandraAddr(t)
	cfg := jepsenConfigFromEnv(t)
	t.Logf("seed %d (CONCURSUS_JEPSEN_SEED=%d reproduces the choices); %d bulbs, %d workers at %.0f/s each, faults %v of %v with %v quiet before each, budget %v per command; n2's clock skewed %v",
		cfg.seed, cfg.seed, cfg.bulbs, cfg.workers, cfg.rate, cfg.faults, cfg.fault, cfg.quiet, cfg.budget, cfg.skew)
	rng := rand.New(rand.NewPCG(cfg.seed, 0))
	began := time.Now()

	iptablesErr := prepareIptables(t)

	// nats-server with a config file: a client that stops answering
	// pings (a frozen node) is dropped after about 2-3 s.
	dir := t.TempDir()
	bins := buildBinaries(t, dir, "faultinject") // for the clock skew only
	conf := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(conf, []byte("ping_interval: \"1s\"\nping_max: 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	jsDir := filepath.Join(dir, "jetstream")
	natsArgs := []string{"-c", conf, "-js", "-sd", jsDir}
	natsProc, natsURL := startNATS(t, bins.natsServer, dir, natsArgs...)
	natsPort := natsURL[strings.LastIndex(natsURL, ":")+1:]
	h := newClusterHarnessOn(t, "it_jepsen", dir, bins, natsURL)
	h.args = []string{"--gossip-profile", "local", "--raft-failure-grace", cfg.grace.String(), "--stream", "--stream-max-age", "2h"}
	all := []string{"n1", "n2", "n3"}
	if cfg.skew != 0 {
		// n2's clock is off for the whole test, as a host's with a broken
		// time sync: the aggregates it takes over from the others carry
		// events stamped by clocks ahead of (or behind) its own.
		h.env["n2"] = []string{fmt.Sprintf("%s=%s", faultClockSkew, cfg.skew)}
	}
	h.start("n1", true)
	h.start("n2", false)
	h.start("n3", false)
	h.waitConverged(all...)
	leader := h.waitRaft(3, "", all...)
	t.Logf("keyspace %s, NATS %s, 3 nodes agree, raft leader %s (%.1fs)", h.keyspace, natsURL, leader, time.Since(began).Seconds())

	// The workload.
	nc := connectNATS(t, natsURL, "jepsen-client", nats.ReconnectWait(100*time.Millisecond), nats.ReconnectBufSize(64<<20))
	w := &jWorkload{nc: nc, prefix: clusterPrefix, start: time.Now(), attempt: cfg.attempt, budget: cfg.budget,
		readPct: cfg.reads, stop: make(chan struct{}), blown: make(map[string]bool)}
	if cfg.rate > 0 {
		w.interval = time.Duration(float64(time.Second) / cfg.rate)
	}
	for i := range cfg.bulbs {
		id := fmt.Sprintf("bulb-%d", i)
		w.bulbs = append(w.bulbs, id)
		if i >= cfg.bulbs-2 { // two bulbs end their life at once: every later command is "terminated"
			w.blown[id] = true
		}
	}
	w.setPhase("set-up")
	if err := w.setUp(); err != nil {
		t.Fatalf("creating the bulbs: %v", err)
	}
	w.setPhase("steady")
	w.startWorkers(cfg.workers, cfg.seed)
	t.Cleanup(func() { w.stopOnce.Do(func() { close(w.stop) }) })

	// A warm-up before the first fault's quiet period, so that the
	// throughput before it is not measured on cold caches.
	time.Sleep(cfg.quiet)

	var faults []*jFault
	var minorityChecks int
	var minorityViolations []string
	var raftViolations []string // the raft group did not come back after a raft cut
	pick := func() string { return all[rng.IntN(len(all))] }
	converge := func(f *jFault) {
		_, f.converged, _ = jepsenConverge(h, cfg.converge, all...)
		f.converge = time.Since(f.heal) // from the heal, which a restart may follow by some time
		if !f.converged {
			_, _, last := jepsenConverge(h, 0, all...)
			t.Logf("%s: the nodes do NOT agree on one ring %v after the heal: %s", f.name, cfg.converge, last)
			t.Logf("%s: views: %s", f.name, clusterView(h, 3))
		}
	}
	for _, name := range cfg.faults {
		if name == "storm" {
			continue // after the workload
		}
		w.setPhase("quiet before " + name)
		f := &jFault{name: name, before: time.Now()}
		time.Sleep(cfg.quiet)
		owners := h.info(all[0]).Owners
		// signalVictim picks the fault's victim node, notes the
		// aggregates it owns and the fault's start, and sends it sig.
		signalVictim := func(sig syscall.Signal) *process {
			f.victim = pick()
			f.affected = ownedBy(owners, f.victim, w.bulbs)
			f.start = time.Now()
			p := h.nodes[f.victim].proc
			if err := p.signal(sig); err != nil {
				t.Fatal(err)
			}
			return p
		}
		w.setPhase(name)
		switch name {
		case "kill":
			p := signalVictim(syscall.SIGKILL)
			if exited, _ := p.wait(10 * time.Second); !exited {
				t.Fatalf("%s did not exit after SIGKILL", f.victim)
			}
			delete(h.nodes, f.victim)
			time.Sleep(cfg.fault / 2)
			t.Logf("kill %s: views mid-fault: %s", f.victim, clusterView(h, 2))
			time.Sleep(cfg.fault - cfg.fault/2)
			f.heal = time.Now()
			h.start(f.victim, false)
			f.note = fmt.Sprintf("%s restarted (same flags and id) and ready %.1fs after the heal began", f.victim, time.Since(f.heal).Seconds())
		case "stop":
			p := signalVictim(syscall.SIGSTOP)
			t.Cleanup(func() { _ = p.signal(syscall.SIGCONT) })
			time.Sleep(cfg.fault / 2)
			t.Logf("stop %s: views mid-fault: %s", f.victim, clusterView(h, 2))
			time.Sleep(cfg.fault - cfg.fault/2)
			f.heal = time.Now()
			if err := p.signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
		case "partition", "raftcut":
			// partition: the victim's gossip cut from the others'; each
			// side rings itself. raftcut: its raft transport cut from
			// the other voters, its gossip left alone: the ring keeps it
			// as an owner while the group elects another leader without
			// it; it goes on deciding its aggregates' commands, its
			// filter does not serve. The victim is the raft leader, if
			// any: cutting it off is the hardest case.
			what, cut := "gossip partition", cutGossip
			if name == "raftcut" {
				what, cut = "raft cut", cutRaft
			}
			if iptablesErr != nil {
				t.Logf("!!!!! SKIPPING THE %s: iptables is not usable here (%v) !!!!!", strings.ToUpper(what), iptablesErr)
				continue
			}
			f.victim = pick()
			if r := raftOf(h.info(all[0])); r.Leader != "" && slices.Contains(all, r.Leader) {
				f.victim = r.Leader
			}
			f.affected = ownedBy(owners, f.victim, w.bulbs)
			f.start = time.Now()
			part, err := cut(t, h, f.victim, all)
			if err != nil {
				t.Logf("!!!!! SKIPPING THE %s: %v !!!!!", strings.ToUpper(what), err)
				continue
			}
			f.note = "cut: " + part.mode
			time.Sleep(cfg.fault / 2)
			t.Logf("%s %s: views mid-fault: %s", what, f.victim, clusterView(h, 3))
			time.Sleep(cfg.fault - cfg.fault/2)
			if name == "partition" {
				// The minority side must not have removed the majority's
				// raft voters (DESIGN: the idempotency group survives the
				// loss of a minority; a minority that reconfigures it
				// does not).
				if info, err := nodeClusterInfo(h.admin, clusterPrefix, f.victim, 2*time.Second); err == nil {
					r := raftOf(info)
					minorityChecks++
					var lost []string
					for _, id := range all {
						if id != f.victim && !slices.Contains(r.Voters, id) {
							lost = append(lost, id)
						}
					}
					if r.Role == "leader" && len(lost) > 0 {
						minorityViolations = append(minorityViolations, fmt.Sprintf(
							"the isolated %s, raft leader of a minority, removed voters %v during the %v partition: its voters are %v",
							f.victim, lost, cfg.fault, r.Voters))
					}
				}
			}
			f.heal = time.Now()
			for _, err := range part.heal() {
				t.Errorf("healing the %s: %v", what, err)
			}
		case "nats":
			f.victim = "nats"
			f.affected = w.bulbs
			f.start = time.Now()
			natsProc.kill()
			if exited, _ := natsProc.wait(10 * time.Second); !exited {
				t.Fatal("nats-server did not exit after SIGKILL")
			}
			time.Sleep(cfg.fault)
			f.heal = time.Now()
			natsProc, _ = startNATS(t, bins.natsServer, dir, append(natsArgs, "-p", natsPort)...)
		case "natspause":
			// nats-server frozen rather than gone: connections stay open
			// and go silent, so every client (nodes and workload) finds
			// out by its pings, and the server, resumed, finds its
			// clients' pings overdue.
			f.victim = "nats"
			f.affected = w.bulbs
			f.start = time.Now()
			if err := natsProc.signal(syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = natsProc.signal(syscall.SIGCONT) })
			time.Sleep(cfg.fault)
			f.heal = time.Now()
			if err := natsProc.signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
		case "cassandra":
			f.victim = "cass"
			f.affected = w.bulbs
			f.start = time.Now()
			script(t, "stop")
			t.Logf("cassandra stopped in %.1fs", time.Since(f.start).Seconds())
			time.Sleep(cfg.fault / 2)
			t.Logf("cassandra down: views mid-fault: %s", clusterView(h, 3))
			time.Sleep(cfg.fault - cfg.fault/2)
			starting := time.Now()
			script(t, "start")
			// The fault lasts until Cassandra answers CQL again.
			f.heal = time.Now()
			f.note = fmt.Sprintf("down %.1fs, then scripts/cassandra.sh start took %.1fs (in the fault's time)",
				starting.Sub(f.start).Seconds(), f.heal.Sub(starting).Seconds())
		}
		converge(f)
		if name == "raftcut" && f.victim != "" {
			// The group must take the victim back: one leader and the
			// three voters, seen alike by every node, within the
			// convergence time. A group that dropped the victim for
			// good, or two leaders, would leave the filter short.
			// (Checked after the ring's convergence, so that the ring
			// column measures the ring alone.)
			_, ok, last := raftConverge(h, cfg.converge, all...)
			f.note += fmt.Sprintf("; one raft group of %d voters again %.1fs after the heal (%v)", len(all), time.Since(f.heal).Seconds(), ok)
			if !ok {
				raftViolations = append(raftViolations, fmt.Sprintf("after the raft cut of %s the nodes did not agree on one raft group with a leader and voters %v within %v: %s",
					f.victim, all, cfg.converge, last))
			}
		}
		t.Logf("%s %s: fault %.1fs, nodes agree on one ring %.1fs after the heal (%v); %s",
			name, f.victim, f.heal.Sub(f.start).Seconds(), f.converge.Seconds(), f.converged, clusterView(h, 3))
		faults = append(faults, f)
	}
	w.setPhase("quiet after the faults")
	time.Sleep(cfg.quiet)
	last := time.Now()
	w.finish()
	// A fault's window ends where the next one is injected, after the
	// quiet period that follows it.
	for i, f := range faults {
		f.end = last
		if i+1 < len(faults) {
			f.end = faults[i+1].start
		}
	}

	// The storm: every answered command id again, to the queue and to
	// every node's own subject.
	if slices.Contains(cfg.faults, "storm") {
		infos, err := gatherClusterInfo(h.admin, clusterPrefix, 3, 2*time.Second)
		if err != nil || len(infos) == 0 {
			t.Fatalf("admin cluster info for the storm: %v (%d replies)", err, len(infos))
		}
		ids := slices.Sorted(func(yield func(string) bool) {
			for id := range infos {
				if !yield(id) {
					return
				}
			}
		})
		f := &jFault{name: "storm", victim: "-", start: time.Now(), before: time.Now()}
		sent, answered := w.storm(ids, cfg.storm)
		f.heal, f.end = time.Now(), time.Now()
		f.converge, f.converged, _ = jepsenConverge(h, cfg.converge, all...)
		f.note = fmt.Sprintf("%d resends of answered commands to the queue and to %v (%d answered) in %.1fs", sent, ids, answered, f.heal.Sub(f.start).Seconds())
		faults = append(faults, f)
	}

	// Liveness: whatever happened, the nodes must agree on one ring again
	// by now, minutes after the last heal.
	if took, ok, lastView := jepsenConverge(h, cfg.converge, all...); !ok {
		t.Errorf("LIVENESS: the nodes do not agree on one ring at the end of the test (waited %v): %s", took.Round(time.Second), lastView)
	}

	ops := w.snapshot()
	reportWorkload(t, ops, w.start)
	reportFaults(t, faults, ops)
	reportNodeLogs(t, dir, all)

	// The checks.
	l := readJepsenLog(t, addr, h.keyspace)
	streamIDs := jepsenStreamIDs(t, h, l)
	reads := w.readsSnapshot()
	reportReads(t, reads)
	v := checkJepsen(t, l, ops, reads, w.start, streamIDs)
	if minorityChecks > 0 {
		v.check(chkMinority, minorityChecks)
		for _, m := range minorityViolations {
			v.add(chkMinority, "%s", m)
		}
	}
	if slices.Contains(cfg.faults, "raftcut") && iptablesErr == nil {
		v.check(chkRaftBack, 1)
		for _, m := range raftViolations {
			v.add(chkRaftBack, "%s", m)
		}
	}
	t.Logf("raft at the end: %s", clusterView(h, 3))
	v.report(t, 8, true)
	if v.total() > 0 {
		if out := jepsenOutDir(t); out != "" {
			for _, id := range all {
				src := filepath.Join(dir, id+".log")
				if data, err := os.ReadFile(src); err == nil {
					_ = os.WriteFile(filepath.Join(out, id+".log"), data, 0o644)
				}
			}
			t.Logf("node logs copied to %s", out)
		}
	}
	t.Logf("whole test %v", time.Since(began).Round(time.Second))
}

// jepsenStreamIDs waits (up to two minutes) until the JetStream stream
// holds every event the log holds, and returns the event ids it holds.
func jepsenStreamIDs(t *testing.T, h *clusterHarness, l *jLog) map[string]bool {
	t.Helper()
	js, err := jetstream.New(h.admin)
	if err != nil {
		t.Fatal(err)
	}
	var ids map[string]bool
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ids = streamEventIDs(t, js, eventbus.StreamName(clusterPrefix))
		missing := 0
		for _, evs := range l.events {
			for _, e := range evs {
				if !ids[e.eventID] {
					missing++
				}
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			return ids
		}
		time.Sleep(2 * time.Second)
	}
}

// reportReads logs the state queries of the workload by what came back.
func reportReads(t *testing.T, reads []*jRead) {
	t.Helper()
	byKind := make(map[string]int)
	for _, r := range reads {
		switch {
		case r.answered() && r.err == "":
			byKind["answered"]++
		case r.reply != nil && r.reply.Error != nil:
			byKind[r.reply.Error.Code]++
		default:
			byKind[r.err]++
		}
	}
	t.Logf("reads: %d state queries: %v (the answered ones are checked for linearizability with the commands)", len(reads), byKind)
}

// reportWorkload logs what the workload did: commands by outcome,
// attempts, and the commands left without a definite reply.
func reportWorkload(t *testing.T, ops []*jOp, start time.Time) {
	t.Helper()
	outcomes := make(map[string]int)
	var attempts, storm, noReply int
	for _, op := range ops {
		for _, a := range op.attempts {
			if a.storm {
				storm++
			} else {
				attempts++
			}
		}
		fd := op.firstDefinite()
		switch {
		case fd < 0:
			noReply++
			outcomes["no definite reply within the budget"]++
			if noReply <= 5 {
				t.Logf("no definite reply: %s %s %s (phase %q): %s", op.id, op.aggregate, op.command, op.phase, op.attemptsLine(start))
			}
		case op.attempts[fd].reply.OK:
			outcomes["ok"]++
		default:
			e := op.attempts[fd].reply.Error
			outcomes[strings.TrimSpace(e.Code+" "+e.Reason)]++
		}
	}
	var parts []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range outcomes {
			if !yield(k) {
				return
			}
		}
	}) {
		parts = append(parts, fmt.Sprintf("%s %d", k, outcomes[k]))
	}
	t.Logf("workload: %d commands, %d attempts (+%d storm resends); first definite outcomes: %s", len(ops), attempts, storm, strings.Join(parts, ", "))
}

// reportNodeLogs logs, per node, its warnings and errors counted by
// message (messages cut to 90 characters, so that those differing only by
// addresses group together).
func reportNodeLogs(t *testing.T, dir string, ids []string) {
	t.Helper()
	for _, id := range ids {
		warn, errs := logSummary(filepath.Join(dir, id+".log"))
		line := func(m map[string]int) string {
			cut := make(map[string]int)
			for k, n := range m {
				if len(k) > 90 {
					k = k[:90] + "…"
				}
				cut[k] += n
			}
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(cut)) {
				parts = append(parts, fmt.Sprintf("%q×%d", k, cut[k]))
			}
			return strings.Join(parts, ", ")
		}
		t.Logf("%s log: warnings: %s", id, line(warn))
		t.Logf("%s log: errors: %s", id, line(errs))
	}
}
