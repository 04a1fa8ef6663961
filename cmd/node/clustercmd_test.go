package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/cluster"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
	"github.com/concursus-go/concursus/storage/memory"
)

// startTestCluster starts clustered nodes n1…nN in this process on one NATS
// server, sharing in-memory logs and gossiping on loopback, and waits until
// they agree on the ring.
func startTestCluster(t *testing.T, url string, size int) []*node.Node {
	t.Helper()
	reg, err := model.NewRegistry(lightbulb.Define().Type)
	if err != nil {
		t.Fatal(err)
	}
	events, commands := memory.NewEventLog(), memory.NewCommandLog()
	var nodes []*node.Node
	t.Cleanup(func() {
		// One at a time: the last one would otherwise wait out its leave
		// timeout for peers that are gone.
		for _, n := range nodes {
			_ = n.Shutdown(context.Background())
		}
	})
	for i := range size {
		var seeds []string
		for _, n := range nodes {
			seeds = append(seeds, n.GossipAddr())
		}
		cfg := node.Config{
			NodeID: fmt.Sprintf("n%d", i+1),
			NATS:   node.NATSConfig{URL: url},
			Logger: slog.New(slog.DiscardHandler),
			Cluster: &node.ClusterConfig{
				Gossip: cluster.Config{BindAddr: "127.0.0.1", Profile: cluster.ProfileLocal, Join: seeds,
					JoinBackoff: 50 * time.Millisecond},
				HandoverGrace: 50 * time.Millisecond,
			},
		}
		n, err := node.New(context.Background(), cfg, reg, node.WithEventLog(events), node.WithCommandLog(commands))
		if err != nil {
			t.Fatalf("starting node %s: %v", cfg.NodeID, err)
		}
		nodes = append(nodes, n)
	}
	testsupport.Eventually(t, 20*time.Second, fmt.Sprintf("%d nodes to agree on the ring", size), func() bool { return converged(nodes) })
	return nodes
}

func converged(nodes []*node.Node) bool {
	var fp, leader string
	for _, n := range nodes {
		info := n.ClusterInfo()
		if inRing(info) != len(nodes) || info.Fingerprint == "" || (fp != "" && info.Fingerprint != fp) {
			return false
		}
		fp = info.Fingerprint
		g := info.Idempotency // and one idempotency group with a leader
		if g == nil || g.Leader == "" || g.GroupID == "" || (leader != "" && g.Leader != leader) {
			return false
		}
		leader = g.Leader
	}
	return true
}

// runClusterCmd runs `node cluster args…` and returns its exit code,
// standard output and standard error.
func runClusterCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(append([]string{"cluster"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// `node cluster` against two clustered nodes: both answer, agree on the
// ring, and the partition table lists both owners; --json returns the two
// raw replies. A standalone node on the same server shows as standalone.
func TestClusterCommand(t *testing.T) {
	s := testsupport.NATS(t)
	nodes := startTestCluster(t, s.ClientURL(), 2)

	start := time.Now()
	code, out, errOut := runClusterCmd(t, "--nats-url", s.ClientURL(), "--wait", "60s", "--partitions")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	t.Logf("output:\n%s", out)
	// Both alive members answered, so it stops well before --wait (the
	// bound is loose on purpose: a loaded machine is slow, not wrong).
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("took %v: did not stop once every alive member had answered", took)
	}
	for _, want := range []string{
		"2 nodes answered: 2 in a cluster, 0 standalone",
		"ring: both nodes agree on the partition table",
		"members, as both nodes see them:",
		"partitions: owner of each of the 1021, as both nodes route them",
		"A = n1 (", "B = n2 (",
		"idempotency filter (raft):", "all nodes are in one group with one leader",
		"     0  ", "  1000  ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	info := nodes[0].ClusterInfo()
	for _, m := range info.Members {
		row := fmt.Sprintf("%s  alive  %s", m.ID, m.Addr)
		if !strings.Contains(out, row) {
			t.Errorf("members table lacks %q", row)
		}
	}
	if strings.Contains(out, "DISAGREE") || strings.Contains(out, "standalone:") {
		t.Errorf("unexpected disagreement or standalone node")
	}

	code, out, errOut = runClusterCmd(t, "--nats-url", s.ClientURL(), "--json")
	if code != 0 {
		t.Fatalf("--json: exit %d; stderr:\n%s", code, errOut)
	}
	var replies []api.ClusterInfo
	if err := json.Unmarshal([]byte(out), &replies); err != nil {
		t.Fatalf("--json output is not a JSON array of ClusterInfo: %v\n%s", err, out)
	}
	if len(replies) != 2 || replies[0].NodeID != "n1" || replies[1].NodeID != "n2" ||
		len(replies[0].Owners) != 1021 || replies[0].Fingerprint != replies[1].Fingerprint {
		t.Errorf("--json replies = %+v", replies)
	}

	// A node alone on the same server and prefix: a misconfiguration the
	// report points out.
	reg, err := model.NewRegistry(lightbulb.Define().Type)
	if err != nil {
		t.Fatal(err)
	}
	alone, err := node.New(context.Background(), node.Config{NodeID: "solo", NATS: node.NATSConfig{URL: s.ClientURL()}, Logger: slog.New(slog.DiscardHandler)},
		reg, node.WithEventLog(memory.NewEventLog()), node.WithCommandLog(memory.NewCommandLog()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alone.Shutdown(context.Background()) })
	code, out, errOut = runClusterCmd(t, "--nats-url", s.ClientURL())
	if code != 0 {
		t.Fatalf("with a standalone node: exit %d; stderr:\n%s", code, errOut)
	}
	for _, want := range []string{"3 nodes answered: 2 in a cluster, 1 standalone", "standalone: solo", "WARNING: standalone nodes share"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// No node answering is exit status 1 with a message naming what to check;
// so is a NATS server that cannot be reached. Usage errors are 2.
func TestClusterCommandFailures(t *testing.T) {
	s := testsupport.NATS(t)
	tests := []struct {
		name    string
		args    []string
		code    int
		mention string
	}{
		{name: "no node", args: []string{"--nats-url", s.ClientURL()}, code: 1, mention: "no node answered on concursus.admin.cluster"},
		{name: "no NATS", args: []string{"--nats-url", "nats://127.0.0.1:1"}, code: 1, mention: "connecting to NATS at nats://127.0.0.1:1"},
		{name: "help", args: []string{"--help"}, code: 0, mention: "Usage: node cluster"},
		{name: "bad wait", args: []string{"--wait", "0s"}, code: 2, mention: "--wait 0s must be positive"},
		{name: "bad prefix", args: []string{"--prefix", "a.*"}, code: 2, mention: "not a NATS subject prefix"},
		{name: "two credentials", args: []string{"--nats-token", "t", "--nats-user", "u", "--nats-password", "p"}, code: 2, mention: "at most one of"},
		{name: "stray argument", args: []string{"members"}, code: 2, mention: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			code, _, errOut := runClusterCmd(t, tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.mention) {
				t.Errorf("exit %d, want %d; stderr (want %q):\n%s", code, tt.code, tt.mention, errOut)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("took %v", took)
			}
		})
	}

	// A server where nodes run, but under another prefix.
	startTestCluster(t, s.ClientURL(), 1)
	code, _, errOut := runClusterCmd(t, "--nats-url", s.ClientURL(), "--prefix", "other", "--wait", "200ms")
	if code != 1 || !strings.Contains(errOut, "no node answered on other.admin.cluster") {
		t.Errorf("wrong prefix: exit %d; stderr:\n%s", code, errOut)
	}
}

// The report of nodes that disagree names the ones in the minority and
// prints one members table per distinct view; no NATS needed.
func TestClusterReportDisagreement(t *testing.T) {
	member := func(id, state string, parts int) api.ClusterMember {
		return api.ClusterMember{ID: id, Addr: "127.0.0.1:79" + id[1:], State: state, Partitions: parts, InRing: state == "alive", Version: "v1"}
	}
	agreed := api.ClusterInfo{Clustered: true, Ring: "4/20/1.25", ViewVersion: 5, Fingerprint: "aaaa",
		Owners:  []string{"n1", "n2", "n1", "n2"},
		Members: []api.ClusterMember{member("n1", "alive", 2), member("n2", "alive", 2), member("n3", "dead", 0)}}
	stale := api.ClusterInfo{Clustered: true, Ring: "4/20/1.25", ViewVersion: 4, Fingerprint: "bbbb",
		Owners:  []string{"n1", "n3", "n2", "n3"},
		Members: []api.ClusterMember{member("n1", "alive", 1), member("n2", "alive", 1), member("n3", "alive", 2)}}
	var replies []clusterReply
	for _, r := range []struct {
		id   string
		info api.ClusterInfo
	}{{"n1", agreed}, {"n2", agreed}, {"n3", stale}} {
		r.info.NodeID = r.id
		r.info.Stats = api.ExecutorStats{Accepted: 7, InFlight: 1}
		replies = append(replies, clusterReply{info: r.info})
	}
	var out bytes.Buffer
	if err := writeClusterReport(&out, replies, true); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", out.String())
	for _, want := range []string{
		"ring: the nodes DISAGREE on the partition table: n3 differs from n1, n2",
		"fingerprint aaaa, 4 partitions, ring 4/20/1.25, view 5: n1, n2",
		"fingerprint bbbb, 4 partitions, ring 4/20/1.25, view 4: n3",
		"members, as n1, n2 see them:",
		"members, as n3 sees them:",
		"n3  dead   127.0.0.1:793  0           no       v1       yes",
		"partitions: owner of each of the 4, as n1, n2 route them (fingerprint aaaa)",
		"     0  ABAB",
		"     0  ACBC",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// Departed members do not split the members table: a node that joined
// later knows fewer of them. The table lists the union, cut at
// maxDeparted.
func TestClusterReportDepartedMembers(t *testing.T) {
	alive := []api.ClusterMember{
		{ID: "n1", Addr: "127.0.0.1:7946", State: "alive", Partitions: 3, InRing: true},
		{ID: "n2", Addr: "127.0.0.1:7947", State: "alive", Partitions: 2, InRing: true},
	}
	old := slices.Clone(alive)
	for i := range maxDeparted + 2 {
		old = append(old, api.ClusterMember{ID: fmt.Sprintf("gone%02d", i), Addr: "127.0.0.1:7948", State: "left"})
	}
	replies := []clusterReply{
		{info: api.ClusterInfo{NodeID: "n1", Clustered: true, Fingerprint: "f", Owners: []string{"n1", "n1", "n2", "n2", "n1"}, Members: old}},
		{info: api.ClusterInfo{NodeID: "n2", Clustered: true, Fingerprint: "f", Owners: []string{"n1", "n1", "n2", "n2", "n1"}, Members: alive}},
	}
	var out bytes.Buffer
	if err := writeClusterReport(&out, replies, false); err != nil {
		t.Fatal(err)
	}
	report := out.String()
	t.Logf("report:\n%s", report)
	if n := strings.Count(report, "members, as"); n != 1 {
		t.Errorf("%d members tables, want 1", n)
	}
	for _, want := range []string{"members, as both nodes see them:", "gone00", fmt.Sprintf("gone%02d", maxDeparted-1), "… and 2 more departed members"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Contains(report, fmt.Sprintf("gone%02d", maxDeparted)) {
		t.Errorf("report lists more than %d departed members", maxDeparted)
	}
}

// A node that has joined the raft group's configuration but not yet
// learnt the group id is forming, not a second group.
func TestIdempotencyReportJoiningIsNotAConflict(t *testing.T) {
	reply := func(id, group string) clusterReply {
		return clusterReply{info: api.ClusterInfo{NodeID: id, Idempotency: &api.IdempotencyStats{GroupID: group, Role: "follower", Leader: "n1"}}}
	}
	var out bytes.Buffer
	writeIdempotency(&out, []clusterReply{reply("n1", "g1"), reply("n2", "")})
	if strings.Contains(out.String(), "WARNING") || !strings.Contains(out.String(), "forming") {
		t.Errorf("joining node reported as:\n%s", out.String())
	}
	out.Reset()
	writeIdempotency(&out, []clusterReply{reply("n1", "g1"), reply("n2", "g2")})
	if !strings.Contains(out.String(), "WARNING: more than one raft group") {
		t.Errorf("two groups reported as:\n%s", out.String())
	}
	out.Reset()
	writeIdempotency(&out, []clusterReply{reply("n1", "g1"), reply("n2", "g1")})
	if !strings.Contains(out.String(), "all nodes are in one group with one leader") || strings.Contains(out.String(), "WARNING") {
		t.Errorf("one group reported as:\n%s", out.String())
	}
}

// A node whose filter's time jumped or ran ahead is named in a warning
// about the clocks; whether each node vouches for its misses is a column.
func TestIdempotencyReportClockWarning(t *testing.T) {
	steady := api.IdempotencyStats{GroupID: "g1", Role: "leader", Leader: "n1", Complete: true}
	stepped := api.IdempotencyStats{GroupID: "g1", Role: "follower", Leader: "n1", TimeSteps: 2}
	stepped.Filter.TimeJumps = 1
	var out bytes.Buffer
	writeIdempotency(&out, []clusterReply{
		{info: api.ClusterInfo{NodeID: "n1", Idempotency: &steady}},
		{info: api.ClusterInfo{NodeID: "n2", Idempotency: &stepped}},
	})
	report := out.String()
	for _, want := range []string{"VOUCHES", "WARNING: the filter's time jumped or ran ahead of the node's clock on n2 (jumps 1, steps 2)"} {
		if !strings.Contains(report, want) {
			t.Errorf("report lacks %q:\n%s", want, report)
		}
	}
	for _, line := range strings.Split(report, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "n1":
			if f[len(f)-1] != "yes" {
				t.Errorf("n1 vouches, reported as %q", line)
			}
		case "n2":
			if f[len(f)-1] != "no" {
				t.Errorf("n2 does not vouch, reported as %q", line)
			}
		}
	}
	if strings.Contains(report, "n1 (") {
		t.Errorf("n1 named in the clock warning:\n%s", report)
	}
}
