//go:build integration

package integration

import (
	"bufio"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/router"
)

// This file holds TestJepsen's faults and the figures measured around
// each: the gossip partition (iptables on the loopback ports, plus a
// cgroup match for the connections the isolated node dials itself), the
// convergence wait that does not fail the test, and the per-fault table.

// jepsenRuleTag marks every iptables rule the suite adds, so that any
// rule a crashed run left behind can be found and removed.
const jepsenRuleTag = "concursus-jepsen"

// iptablesUsable reports whether iptables can be listed and changed here.
func iptablesUsable() error {
	if _, err := exec.LookPath("iptables"); err != nil {
		return err
	}
	if out, err := exec.Command("iptables", "-S", "OUTPUT").CombinedOutput(); err != nil {
		return fmt.Errorf("iptables -S: %v: %s", err, out)
	}
	return nil
}

// removeTaggedRules deletes every rule carrying jepsenRuleTag from INPUT
// and OUTPUT, found by listing them.
func removeTaggedRules() (removed int, err error) {
	for _, chain := range []string{"INPUT", "OUTPUT"} {
		out, err := exec.Command("iptables", "-S", chain).Output()
		if err != nil {
			return removed, fmt.Errorf("iptables -S %s: %w", chain, err)
		}
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "-A ") || !strings.Contains(line, jepsenRuleTag) {
				continue
			}
			args, ok := splitRule(strings.TrimPrefix(line, "-A "))
			if !ok {
				return removed, fmt.Errorf("cannot parse rule %q", line)
			}
			if out, err := exec.Command("iptables", append([]string{"-D"}, args...)...).CombinedOutput(); err != nil {
				return removed, fmt.Errorf("iptables -D %s: %v: %s", strings.Join(args, " "), err, out)
			}
			removed++
		}
	}
	return removed, nil
}

// splitRule splits an iptables -S line into arguments (double quotes
// group words, as iptables prints comments).
func splitRule(s string) ([]string, bool) {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			inQuote, have = !inQuote, true
		case r == ' ' && !inQuote:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out, !inQuote
}

// cgroup2Root returns where the cgroup v2 hierarchy is mounted, or "".
func cgroup2Root() string {
	data, err := os.ReadFile("/proc/mounts")
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == "cgroup2" {
			return f[1]
		}
	}
	return ""
}

// prepareIptables reports whether the gossip partition can be made here
// (nil: it can); if so it removes the rules an earlier run left and, at
// cleanup, fails t if any rule of this run is left.
func prepareIptables(t *testing.T) error {
	t.Helper()
	if err := iptablesUsable(); err != nil {
		return err
	}
	if n, err := removeTaggedRules(); err != nil {
		return err
	} else if n > 0 {
		t.Logf("removed %d iptables rules tagged %q that an earlier run left", n, jepsenRuleTag)
	}
	t.Cleanup(func() {
		if n, err := removeTaggedRules(); err != nil || n > 0 {
			t.Errorf("iptables rules left at cleanup: removed %d, error %v", n, err)
		}
	})
	return nil
}

// cutGossip isolates the gossip of node victim from the other nodes of
// ids (partitionPort), and heals it at cleanup if the test has not.
func cutGossip(t *testing.T, h *clusterHarness, victim string, ids []string) (*portPartition, error) {
	t.Helper()
	return cutPort(t, h, victim, ids, "gossip", func(id string) string { return h.nodes[id].gossip })
}

// cutRaft isolates the idempotency filter's raft transport of node victim
// from the other nodes of ids, leaving its gossip, NATS and Cassandra
// traffic alone: the filter's group loses the victim while the ring keeps
// it. The raft addresses are those the victim's ClusterInfo lists.
func cutRaft(t *testing.T, h *clusterHarness, victim string, ids []string) (*portPartition, error) {
	t.Helper()
	raft := map[string]string{}
	for _, m := range h.info(victim).Members {
		raft[m.ID] = m.RaftAddr
	}
	return cutPort(t, h, victim, ids, "raft", func(id string) string { return raft[id] })
}

// cutPort isolates node victim's port named what (at addr(id), host:port)
// from the other nodes' of ids, and heals it at cleanup if the test has
// not.
func cutPort(t *testing.T, h *clusterHarness, victim string, ids []string, what string, addr func(id string) string) (*portPartition, error) {
	t.Helper()
	port := func(id string) int {
		_, p, _ := strings.Cut(addr(id), ":")
		n, err := strconv.Atoi(p)
		if err != nil {
			t.Fatalf("%s address of %s: %q", what, id, addr(id))
		}
		return n
	}
	var others []int
	for _, id := range ids {
		if id != victim {
			others = append(others, port(id))
		}
	}
	part, err := partitionPort(h.nodes[victim].proc.pid(), port(victim), others, what)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { part.heal() })
	return part, nil
}

// portPartition cuts one node's port (its gossip or its raft transport)
// from the others', both ways, leaving the rest of its traffic alone.
type portPartition struct {
	rules  [][]string // iptables arguments after -I/-D
	cgroup string     // directory of the cgroup the node was moved into
	root   string     // cgroup2 root
	pid    int
	mode   string
}

// partitionPort isolates the port (what: gossip or raft) of the process
// pid listening on port from the members on others: it drops what arrives at the port and
// what leaves from it (UDP and TCP), and — since memberlist dials TCP
// from an ephemeral port — the TCP connections the process opens to the
// others' ports, matched by a cgroup the process is moved into.
// Without a usable cgroup v2 hierarchy the port rules alone are used,
// which leaves the node's own TCP dials through (said in mode).
func partitionPort(pid, port int, others []int, what string) (*portPartition, error) {
	p := &portPartition{pid: pid, mode: what + " port rules, UDP and TCP, both directions"}
	tag := []string{"-m", "comment", "--comment", jepsenRuleTag}
	ps := strconv.Itoa(port)
	for _, proto := range []string{"udp", "tcp"} {
		p.rules = append(p.rules,
			append([]string{"INPUT", "-p", proto, "--dport", ps}, append(slices.Clone(tag), "-j", "DROP")...),
			append([]string{"OUTPUT", "-p", proto, "--sport", ps}, append(slices.Clone(tag), "-j", "DROP")...))
	}
	if root := cgroup2Root(); root != "" && len(others) > 0 {
		dir := filepath.Join(root, fmt.Sprintf("%s-%d", jepsenRuleTag, pid))
		if err := os.Mkdir(dir, 0o755); err == nil || os.IsExist(err) {
			if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err == nil {
				p.cgroup, p.root = dir, root
				var ports []string
				for _, o := range others {
					ports = append(ports, strconv.Itoa(o))
				}
				p.rules = append(p.rules, append([]string{"OUTPUT", "-p", "tcp", "-m", "cgroup", "--path", filepath.Base(dir),
					"-m", "multiport", "--dports", strings.Join(ports, ",")}, append(slices.Clone(tag), "-j", "DROP")...))
				p.mode += ", plus the node's own TCP dials to the others' " + what + " ports (cgroup match)"
			} else {
				_ = os.Remove(dir)
			}
		}
	}
	// A socket keeps the cgroup it was made in: connections the process
	// dialled before its move (raft keeps a pool of them) escape the
	// cgroup rule, so each is cut by its own ports.
	conns, err := establishedTo(pid, others)
	if err != nil {
		return nil, err
	}
	for _, c := range conns {
		l, r := strconv.Itoa(c[0]), strconv.Itoa(c[1])
		p.rules = append(p.rules,
			append([]string{"OUTPUT", "-p", "tcp", "--sport", l, "--dport", r}, append(slices.Clone(tag), "-j", "DROP")...),
			append([]string{"OUTPUT", "-p", "tcp", "--sport", r, "--dport", l}, append(slices.Clone(tag), "-j", "DROP")...))
	}
	if len(conns) > 0 {
		p.mode += fmt.Sprintf(", plus %d connections it had dialled before (their ports)", len(conns))
	}
	for i, r := range p.rules {
		if out, err := exec.Command("iptables", append([]string{"-I"}, r...)...).CombinedOutput(); err != nil {
			p.rules = p.rules[:i]
			p.heal()
			return nil, fmt.Errorf("iptables -I %s: %v: %s", strings.Join(r, " "), err, out)
		}
	}
	return p, nil
}

// establishedTo returns the (local, remote) ports of the established TCP
// connections of process pid whose remote port is one of ports, read from
// /proc: the process's socket inodes, matched in its network namespace's
// TCP tables.
func establishedTo(pid int, ports []int) ([][2]int, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	port := func(addr string) int { // "0100007F:B2C3"
		_, h, _ := strings.Cut(addr, ":")
		n, _ := strconv.ParseInt(h, 16, 32)
		return int(n)
	}
	var conns [][2]int
	for _, table := range []string{"tcp", "tcp6"} {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue // no IPv6
		}
		for line := range strings.SplitSeq(string(data), "\n") {
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
			f := strings.Fields(line)
			if len(f) < 10 || f[3] != "01" || !inodes[f[9]] { // 01: ESTABLISHED
				continue
			}
			if r := port(f[2]); slices.Contains(ports, r) {
				conns = append(conns, [2]int{port(f[1]), r})
			}
		}
	}
	return conns, nil
}

// heal removes the rules and moves the process back to the root cgroup.
// It may be called more than once.
func (p *portPartition) heal() []error {
	var errs []error
	for _, r := range p.rules {
		if out, err := exec.Command("iptables", append([]string{"-D"}, r...)...).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("iptables -D %s: %v: %s", strings.Join(r, " "), err, out))
		}
	}
	p.rules = nil
	if p.cgroup != "" {
		// The process may have exited: then the write fails and the
		// cgroup is empty anyway.
		_ = os.WriteFile(filepath.Join(p.root, "cgroup.procs"), []byte(strconv.Itoa(p.pid)), 0o644)
		if err := os.Remove(p.cgroup); err != nil {
			errs = append(errs, err)
		}
		p.cgroup = ""
	}
	return errs
}

// jepsenConverge waits up to within for nodes ids to answer, ready, each
// routing to exactly ids and all with one fingerprint. It never fails the
// test: it returns how long it took and whether it happened, and what it
// saw last otherwise.
func jepsenConverge(h *clusterHarness, within time.Duration, ids ...string) (time.Duration, bool, string) {
	want := slices.Sorted(slices.Values(ids))
	began := time.Now()
	last := ""
	for {
		infos, err := gatherClusterInfo(h.admin, clusterPrefix, len(ids), 500*time.Millisecond)
		ok := err == nil
		last = fmt.Sprintf("%d replies (err %v)", len(infos), err)
		fp := ""
		var views []string
		for _, id := range want {
			info, found := infos[id]
			ring := slices.Sorted(slices.Values(inRing(info)))
			views = append(views, fmt.Sprintf("%s routes to %v (fingerprint %.8s, ready %v)", id, ring, info.Fingerprint, info.Ready))
			switch {
			case !found:
				ok = false
			case !info.Ready || !slices.Equal(ring, want) || (fp != "" && info.Fingerprint != fp):
				ok = false
			}
			if found {
				fp = info.Fingerprint
			}
		}
		if ok {
			return time.Since(began), true, ""
		}
		last = strings.Join(views, "; ")
		if time.Since(began) > within {
			return time.Since(began), false, last
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// raftConverge waits up to within for nodes ids to answer, each seeing
// one raft group (the same group id and leader) whose voters are exactly
// ids. Like jepsenConverge it never fails the test: it returns how long
// it took, whether it happened, and what it saw last otherwise.
func raftConverge(h *clusterHarness, within time.Duration, ids ...string) (time.Duration, bool, string) {
	want := slices.Sorted(slices.Values(ids))
	began := time.Now()
	for {
		infos, err := gatherClusterInfo(h.admin, clusterPrefix, len(ids), 500*time.Millisecond)
		ok := err == nil
		var group, leader string
		var views []string
		for _, id := range want {
			info, found := infos[id]
			r := raftOf(info)
			voters := slices.Sorted(slices.Values(r.Voters))
			views = append(views, fmt.Sprintf("%s: group %.8s role %s leader %q voters %v", id, r.GroupID, r.Role, r.Leader, voters))
			switch {
			case !found || r.GroupID == "" || r.Leader == "" || !slices.Equal(voters, want):
				ok = false
			case group == "":
				group, leader = r.GroupID, r.Leader
			case r.GroupID != group || r.Leader != leader:
				ok = false
			}
		}
		if ok {
			return time.Since(began), true, ""
		}
		if time.Since(began) > within {
			return time.Since(began), false, fmt.Sprintf("%d replies (err %v): %s", len(infos), err, strings.Join(views, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clusterView describes how each answering node sees the cluster: its
// ring, partitions per member and raft role — logged during faults.
func clusterView(h *clusterHarness, want int) string {
	infos, err := gatherClusterInfo(h.admin, clusterPrefix, want, time.Second)
	var parts []string
	for _, id := range slices.Sorted(maps.Keys(infos)) {
		info := infos[id]
		var members []string
		for _, m := range info.Members {
			st := m.State
			if m.Unreachable {
				st += ",unreachable"
			}
			members = append(members, fmt.Sprintf("%s:%s/%d", m.ID, st, m.Partitions))
		}
		r := raftOf(info)
		parts = append(parts, fmt.Sprintf("%s sees [%s] fp %.8s raft %s leader %q voters %v",
			id, strings.Join(members, " "), info.Fingerprint, r.Role, r.Leader, r.Voters))
	}
	if err != nil {
		parts = append(parts, "error: "+err.Error())
	}
	return strings.Join(parts, " | ")
}

// jFault is one fault as run: when it was injected, healed, and when its
// quiet period ended, and what was measured directly.
type jFault struct {
	name, victim, note string
	before             time.Time // start of the quiet period before it
	start, heal, end   time.Time
	converge           time.Duration
	converged          bool
	affected           []string // aggregates the fault cut off
}

// ownedBy returns the bulbs whose partition node owns in owners.
func ownedBy(owners []string, node string, bulbs []string) []string {
	var out []string
	for _, b := range bulbs {
		if len(owners) > 0 && owners[router.Partition(len(owners), lightbulb.TypeName, b)] == node {
			out = append(out, b)
		}
	}
	return out
}

// jFigures are the per-fault figures computed from the attempts.
type jFigures struct {
	errors                    map[string]int
	longestGap                time.Duration
	before, during            float64 // acknowledgements per second
	servedP50, servedMax      time.Duration
	servedAfterHeal           time.Duration
	affected, neverServed     int
	attempts, acked, definite int
}

// figures computes f's figures from the ops' attempts.
func (f *jFault) figures(ops []*jOp) jFigures {
	g := jFigures{errors: make(map[string]int), affected: len(f.affected)}
	var acks []time.Time
	var beforeN, duringN int
	affected := make(map[string]bool, len(f.affected))
	for _, a := range f.affected {
		affected[a] = true
	}
	firstServed := make(map[string]time.Time)
	firstAfterHeal := make(map[string]time.Time)
	for _, op := range ops {
		for i := range op.attempts {
			a := &op.attempts[i]
			if a.storm != (f.name == "storm") {
				continue
			}
			inWindow := !a.complete.Before(f.start) && a.complete.Before(f.end)
			if inWindow {
				g.attempts++
				if k := a.errorKey(); k != "" {
					g.errors[k]++
				}
				if a.definite() {
					g.definite++
				}
			}
			if !a.acked() {
				continue
			}
			switch {
			case inWindow:
				g.acked++
				acks = append(acks, a.complete)
			}
			if !a.complete.Before(f.before) && a.complete.Before(f.start) {
				beforeN++
			}
			if !a.complete.Before(f.start) && a.complete.Before(f.heal) {
				duringN++
			}
			if affected[op.aggregate] && !a.invoke.Before(f.start) {
				if t, ok := firstServed[op.aggregate]; !ok || a.complete.Before(t) {
					firstServed[op.aggregate] = a.complete
				}
			}
			if affected[op.aggregate] && !a.invoke.Before(f.heal) {
				if t, ok := firstAfterHeal[op.aggregate]; !ok || a.complete.Before(t) {
					firstAfterHeal[op.aggregate] = a.complete
				}
			}
		}
	}
	sort.Slice(acks, func(i, j int) bool { return acks[i].Before(acks[j]) })
	prev := f.start
	for _, t := range acks {
		g.longestGap = max(g.longestGap, t.Sub(prev))
		prev = t
	}
	g.longestGap = max(g.longestGap, f.end.Sub(prev))
	if d := f.start.Sub(f.before).Seconds(); d > 0 {
		g.before = float64(beforeN) / d
	}
	if d := f.heal.Sub(f.start).Seconds(); d > 0 {
		g.during = float64(duringN) / d
	}
	var served []time.Duration
	for _, a := range f.affected {
		t, ok := firstServed[a]
		if !ok {
			g.neverServed++
			continue
		}
		served = append(served, t.Sub(f.start))
		if th, ok := firstAfterHeal[a]; ok {
			g.servedAfterHeal = max(g.servedAfterHeal, th.Sub(f.heal))
		}
	}
	slices.Sort(served)
	if len(served) > 0 {
		g.servedP50, g.servedMax = served[len(served)/2], served[len(served)-1]
	}
	return g
}

// reportFaults logs the per-fault figures as a table.
func reportFaults(t *testing.T, faults []*jFault, ops []*jOp) {
	t.Helper()
	t.Logf("%-10s %-6s %6s %6s %9s %9s %9s %9s %7s %-24s %s",
		"fault", "victim", "fault", "acked", "ack gap", "served50", "servedmax", "afterheal", "ring", "acks/s before->during", "client-visible errors")
	for _, f := range faults {
		g := f.figures(ops)
		ring := "never"
		if f.converged {
			ring = fmt.Sprintf("%.1fs", f.converge.Seconds())
		}
		var errs []string
		for _, k := range slices.Sorted(maps.Keys(g.errors)) {
			errs = append(errs, fmt.Sprintf("%s=%d", k, g.errors[k]))
		}
		served := fmt.Sprintf("%9s %9s %9s", secs(g.servedP50), secs(g.servedMax), secs(g.servedAfterHeal))
		if g.neverServed > 0 {
			served += fmt.Sprintf(" (%d of %d affected never served)", g.neverServed, g.affected)
		}
		change := "n/a"
		if g.before > 0 {
			change = fmt.Sprintf("%+.0f%%", 100*(g.during-g.before)/g.before)
		}
		t.Logf("%-10s %-6s %6s %6d %9s %s %7s %7.1f->%-7.1f %-6s %s",
			f.name, f.victim, secs(f.heal.Sub(f.start)), g.acked, secs(g.longestGap), served, ring, g.before, g.during, change, strings.Join(errs, " "))
		if f.note != "" {
			t.Logf("%-10s note: %s", f.name, f.note)
		}
	}
	t.Logf("columns: fault = injection to heal; acked = decisions (ok or rejected) completed from injection to the next injection (heal, ring wait and the next quiet period); " +
		"ack gap = longest time without a decision in that window; served50/servedmax = time from injection until each aggregate the fault cut off " +
		"(the victim's, or all) got a decision for a request sent after the injection (median, max); afterheal = the same, counted from the heal (max); " +
		"ring = time from the heal until all nodes agree on one ring; acks/s before = in the quiet period before, during = injection to heal")
}

func secs(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
