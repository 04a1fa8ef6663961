package idempotency

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/hashicorp/raft"

	"github.com/concursus-go/concursus/cluster"
	"github.com/concursus-go/concursus/internal/wire"
)

// Observe hands the group a cluster view. Feed it every view (it keeps
// the newest, by Version, and never blocks): the leader adds, promotes
// and removes servers from it; the other nodes note it (they need it the
// moment they become leader, and to decide whether to bootstrap).
//
// The views must come from a node that has joined the cluster (after
// cluster.Join succeeded, or on the first node of a new cluster): a view
// of a node that has not yet met the others could make it bootstrap a
// group of its own.
func (g *Group) Observe(v cluster.View) {
	g.viewMu.Lock()
	if g.hasView && v.Version < g.view.Version {
		g.viewMu.Unlock()
		return
	}
	g.view, g.hasView = v, true
	g.viewMu.Unlock()
	select {
	case g.viewC <- struct{}{}:
	default:
	}
}

func (g *Group) latestView() (cluster.View, bool) {
	g.viewMu.Lock()
	defer g.viewMu.Unlock()
	return g.view, g.hasView
}

// manager is the membership state owned by the manage goroutine.
type manager struct {
	// since records when each server or member was first seen not alive
	// (dead, left, missing from the view, or no longer eligible).
	since map[string]time.Time
	// sig is the bootstrap-relevant part of the latest view, and
	// stableSince when it last changed.
	sig         string
	stableSince time.Time
	// waitLogged limits the "waiting to bootstrap" debug line.
	waitLogged string
	conflicts  map[string]bool
	// Readiness: the commit index to reach after joining (0: not yet
	// sampled), whether it was reached (latched), and when a leader was
	// last known.
	joinTarget uint64
	caughtUp   bool
	lastLeader time.Time
}

// manage runs the membership logic on every new view, on leadership
// changes, and every ReconcileInterval.
func (g *Group) manage() {
	defer g.wg.Done()
	tick := time.NewTicker(g.cfg.ReconcileInterval)
	defer tick.Stop()
	leaderCh := g.raft.LeaderCh()
	m := &manager{since: make(map[string]time.Time), conflicts: make(map[string]bool)}
	for {
		select {
		case <-g.stop:
			return
		case <-g.viewC:
		case <-tick.C:
		case <-leaderCh:
		}
		g.step(m)
	}
}

// eligible reports whether a member may be a server of this group: alive,
// with a raft address, and not advertising another group.
func (g *Group) eligible(m cluster.Member, myGroup string) bool {
	if m.State != cluster.StateAlive || m.Meta.RaftAddr == "" {
		return false
	}
	other := g.cfg.MemberGroup(m)
	return other == "" || other == myGroup
}

func (g *Group) step(m *manager) {
	g.steps.Add(1)
	now := g.cfg.Clock()
	v, hasView := g.latestView()
	servers, err := g.servers()
	if err != nil {
		return // shutting down
	}
	myGroup := g.filter.GroupID()
	eligible := func(mem cluster.Member) bool { return g.eligible(mem, myGroup) }
	m.track(v, servers, now, eligible)
	g.noteConflicts(m, v, myGroup)
	ready := g.computeReady(m, servers, now, myGroup)
	if ready && !g.ready.Load() {
		g.readySince.Store(now.UnixNano())
	}
	g.ready.Store(ready)
	switch {
	case g.raft.State() == raft.Leader:
		if myGroup == "" {
			g.proposeGroupID()
		}
		if hasView {
			g.reconcile(planInput{
				self: g.cfg.NodeID, servers: servers, view: v, since: m.since, now: now,
				grace: g.cfg.FailureGrace, voters: g.cfg.Voters, eligible: eligible,
			})
		}
		g.tickIdle(now)
	case len(servers) == 0 && myGroup == "" && hasView:
		g.maybeBootstrap(m, v, now)
	}
}

func (g *Group) computeReady(m *manager, servers []raft.Server, now time.Time, myGroup string) bool {
	if myGroup == "" || !slices.ContainsFunc(servers, func(s raft.Server) bool { return string(s.ID) == g.cfg.NodeID }) {
		return false
	}
	if !m.caughtUp {
		if m.joinTarget == 0 {
			m.joinTarget = max(1, g.raft.CommitIndex())
		}
		if g.raft.AppliedIndex() < m.joinTarget {
			return false
		}
		m.caughtUp = true
	}
	if _, leader := g.raft.LeaderWithID(); leader != "" {
		m.lastLeader = now
	}
	return !m.lastLeader.IsZero() && now.Sub(m.lastLeader) < g.cfg.ProposeTimeout
}

// track updates since: members and servers that are alive and eligible are
// cleared, the others keep the time they were first seen otherwise.
func (m *manager) track(v cluster.View, servers []raft.Server, now time.Time, eligible func(cluster.Member) bool) {
	seen := make(map[string]bool, len(v.Members)+len(servers))
	note := func(id string) {
		if seen[id] {
			return
		}
		seen[id] = true
		if mem, ok := v.Member(id); ok && eligible(mem) {
			delete(m.since, id)
		} else if _, ok := m.since[id]; !ok {
			m.since[id] = now
		}
	}
	for _, s := range servers {
		note(string(s.ID))
	}
	for _, mem := range v.Members {
		note(mem.ID)
	}
	for id := range m.since {
		if !seen[id] {
			delete(m.since, id)
		}
	}
}

func (g *Group) noteConflicts(m *manager, v cluster.View, myGroup string) {
	if myGroup == "" {
		return
	}
	var found []string
	for _, mem := range v.Members {
		if mem.State != cluster.StateAlive {
			continue
		}
		if other := g.cfg.MemberGroup(mem); other != "" && other != myGroup && !slices.Contains(found, other) {
			found = append(found, other)
			if !m.conflicts[other] {
				m.conflicts[other] = true
				g.log.Error("idempotency: another raft group exists among the members; the two never merge by themselves (restart the nodes of one of them)",
					"group", myGroup, "other", other, "member", mem.ID)
			}
		}
	}
	slices.Sort(found)
	g.mu.Lock()
	g.mu.conflicts = found
	g.mu.Unlock()
}

// bootstrapSignature is what must stay unchanged for Settle before a node
// bootstraps: the alive members with a raft address and the groups they
// advertise.
func (g *Group) bootstrapSignature(v cluster.View) string {
	var b strings.Builder
	for _, mem := range v.Members {
		if mem.State == cluster.StateAlive && mem.Meta.RaftAddr != "" {
			fmt.Fprintf(&b, "%s=%s;", mem.ID, g.cfg.MemberGroup(mem))
		}
	}
	return b.String()
}

// bootstrapRule reports whether self may bootstrap a group given a view:
// self is alive in it with a raft address, no alive member with a raft
// address advertises a group, and self has the smallest id among them.
// The reason says why not.
func bootstrapRule(self string, v cluster.View, groupOf func(cluster.Member) string) (bool, string) {
	selfSeen := false
	for _, mem := range v.Members {
		if mem.State != cluster.StateAlive || mem.Meta.RaftAddr == "" {
			continue
		}
		if gid := groupOf(mem); gid != "" {
			return false, fmt.Sprintf("member %s is in group %s; waiting to be added", mem.ID, gid)
		}
		switch {
		case mem.ID == self:
			selfSeen = true
		case mem.ID < self:
			return false, fmt.Sprintf("member %s has a smaller id and bootstraps", mem.ID)
		}
	}
	if !selfSeen {
		return false, "this node is not alive with a raft address in its own view"
	}
	return true, ""
}

func (g *Group) maybeBootstrap(m *manager, v cluster.View, now time.Time) {
	if sig := g.bootstrapSignature(v); sig != m.sig || m.stableSince.IsZero() {
		m.sig, m.stableSince = sig, now
		return
	}
	if now.Sub(m.stableSince) < g.cfg.Settle {
		return
	}
	if ok, why := bootstrapRule(g.cfg.NodeID, v, g.cfg.MemberGroup); !ok {
		if why != m.waitLogged {
			m.waitLogged = why
			g.log.Debug("idempotency: not bootstrapping", "reason", why)
		}
		return
	}
	conf := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(g.cfg.NodeID), Address: raft.ServerAddress(g.addr)}}}
	if err := g.raft.BootstrapCluster(conf).Error(); err != nil {
		g.log.Debug("idempotency: bootstrap refused", "err", err) // it has state: it was added meanwhile
		return
	}
	id := fmt.Sprintf("%016x", xxhash.Sum64String(g.cfg.NodeID+"/"+strconv.FormatInt(now.UnixNano(), 10)))
	g.mu.Lock()
	g.mu.bootstrapID = id
	g.mu.Unlock()
	g.log.Info("idempotency: bootstrapped a new raft group", "group", id, "members", len(v.Alive()))
}

// proposeGroupID commits the group id: the one this node bootstrapped, or
// (when the bootstrapper died before committing it) one derived from this
// leader's id and term. The filter keeps the first one committed.
func (g *Group) proposeGroupID() {
	g.mu.Lock()
	id := g.mu.bootstrapID
	g.mu.Unlock()
	if id == "" {
		id = fmt.Sprintf("%016x", xxhash.Sum64String(g.cfg.NodeID+"/term/"+strconv.FormatUint(g.raft.CurrentTerm(), 10)))
	}
	if err := g.raft.Apply(wire.AppendString([]byte{kindGroup}, id), g.cfg.ProposeTimeout).Error(); err != nil {
		g.log.Debug("idempotency: group id not committed", "err", err)
	}
}

// tickIdle appends an empty batch when no batch was proposed for a bucket
// width, so that the filter's time (and expiry) advances on an idle
// cluster too.
func (g *Group) tickIdle(now time.Time) {
	width := g.cfg.Window / time.Duration(g.cfg.Buckets)
	if now.UnixNano()-g.lastBatch.Load() < int64(width) || g.filter.Stats().Entries == 0 {
		return
	}
	g.lastBatch.Store(now.UnixNano())
	g.batches.Add(1)
	data := appendBatchHeader(nil, batchHeader{at: now.UnixNano(), window: int64(g.cfg.Window), buckets: g.cfg.Buckets})
	if err := g.raft.Apply(data, g.cfg.ProposeTimeout).Error(); err != nil {
		g.log.Debug("idempotency: idle tick not committed", "err", err)
	}
}

// Configuration changes the leader makes.
type changeOp uint8

const (
	opRemove changeOp = iota + 1
	opAddNonvoter
	opAddVoter // promotes a non-voter, or updates a voter's address
	opDemote
)

func (o changeOp) String() string {
	switch o {
	case opRemove:
		return "remove"
	case opAddNonvoter:
		return "add-nonvoter"
	case opAddVoter:
		return "add-voter"
	case opDemote:
		return "demote"
	}
	return "unknown"
}

type change struct {
	op   changeOp
	id   string
	addr string
	why  string
}

func (c change) String() string { return c.op.String() + " " + c.id }

type planInput struct {
	self     string
	servers  []raft.Server
	view     cluster.View
	since    map[string]time.Time
	now      time.Time
	grace    time.Duration
	voters   int
	eligible func(cluster.Member) bool
}

// plan computes the configuration changes that bring the servers in line
// with the view, in the order to make them:
//
//  1. remove servers whose member left (at once) or has been dead, missing
//     or ineligible for the grace period — voters only while a majority of
//     the voters is healthy in this node's view, so the minority side of a
//     gossip partition never removes the majority's voters;
//  2. update the address of a server whose member advertises a new one;
//  3. add every eligible member that is not a server, as a non-voter;
//  4. promote non-voters (already servers, so they had a round to catch
//     up) in id order until there are min(voters, healthy servers)
//     voters; a dead voter is replaced only once it has been removed, so
//     the group never counts it and its replacement at once;
//  5. demote voters beyond the target (after Voters was lowered): unhealthy
//     ones first, then the largest ids, never the leader itself.
//
// Current voters are kept as long as they are healthy: the choice prefers
// them, so membership changes cause no churn.
func plan(in planInput) []change {
	var out []change
	healthy := func(id string) bool {
		if id == in.self {
			return true
		}
		m, ok := in.view.Member(id)
		return ok && in.eligible(m)
	}
	// A voter that gossip calls gone is removed only while this node sees
	// a majority of the voters healthy. A leader cut off from gossip but
	// not from raft (a partition of the gossip ports only) sees the others
	// dead while they still follow it: removing them would hand the group
	// to the minority side and leave the majority without a leader.
	voterCount, healthyVoters := 0, 0
	for _, s := range in.servers {
		if s.Suffrage == raft.Voter {
			voterCount++
			if healthy(string(s.ID)) {
				healthyVoters++
			}
		}
	}
	mayRemoveVoters := 2*healthyVoters > voterCount
	var keep []raft.Server
	inConfig := make(map[string]bool, len(in.servers))
	for _, s := range in.servers {
		id := string(s.ID)
		inConfig[id] = true
		if id == in.self {
			keep = append(keep, s)
			continue
		}
		m, ok := in.view.Member(id)
		switch {
		case ok && m.State == cluster.StateLeft:
			out = append(out, change{op: opRemove, id: id, why: "member left"})
		case ok && in.eligible(m):
			if m.Meta.RaftAddr != string(s.Address) {
				op := opAddNonvoter
				if s.Suffrage == raft.Voter {
					op = opAddVoter
				}
				out = append(out, change{op: op, id: id, addr: m.Meta.RaftAddr, why: "raft address changed"})
				s.Address = raft.ServerAddress(m.Meta.RaftAddr)
			}
			keep = append(keep, s)
		default:
			t, seen := in.since[id]
			if seen && in.now.Sub(t) >= in.grace && (s.Suffrage != raft.Voter || mayRemoveVoters) {
				out = append(out, change{op: opRemove, id: id, why: fmt.Sprintf("member gone for %v", in.now.Sub(t).Round(time.Millisecond))})
			} else {
				keep = append(keep, s)
			}
		}
	}
	for _, m := range in.view.Members { // sorted by id
		if m.ID != in.self && !inConfig[m.ID] && in.eligible(m) {
			out = append(out, change{op: opAddNonvoter, id: m.ID, addr: m.Meta.RaftAddr, why: "new member"})
		}
	}
	slices.SortFunc(keep, func(a, b raft.Server) int { return strings.Compare(string(a.ID), string(b.ID)) })
	voters, alive := 0, 0
	for _, s := range keep {
		if s.Suffrage == raft.Voter {
			voters++
		}
		if healthy(string(s.ID)) {
			alive++
		}
	}
	for _, s := range keep {
		if voters >= min(in.voters, alive) {
			break
		}
		if s.Suffrage != raft.Voter && healthy(string(s.ID)) {
			out = append(out, change{op: opAddVoter, id: string(s.ID), addr: string(s.Address), why: "promote"})
			voters++
		}
	}
	if voters > in.voters {
		var cands []raft.Server
		for _, s := range keep {
			if s.Suffrage == raft.Voter && string(s.ID) != in.self {
				cands = append(cands, s)
			}
		}
		slices.SortStableFunc(cands, func(a, b raft.Server) int {
			ha, hb := healthy(string(a.ID)), healthy(string(b.ID))
			if ha != hb {
				if !ha {
					return -1
				}
				return 1
			}
			return strings.Compare(string(b.ID), string(a.ID))
		})
		for _, s := range cands[:min(len(cands), voters-in.voters)] {
			out = append(out, change{op: opDemote, id: string(s.ID), why: "more voters than configured"})
		}
	}
	return out
}

// reconcile applies the plan, one change at a time (raft commits one
// configuration change at a time anyway); a failure ends this round and
// the next round plans again from the new configuration.
func (g *Group) reconcile(in planInput) {
	for _, c := range plan(in) {
		var f raft.IndexFuture
		id, addr := raft.ServerID(c.id), raft.ServerAddress(c.addr)
		switch c.op {
		case opRemove:
			f = g.raft.RemoveServer(id, 0, g.cfg.ProposeTimeout)
		case opAddNonvoter:
			f = g.raft.AddNonvoter(id, addr, 0, g.cfg.ProposeTimeout)
		case opAddVoter:
			f = g.raft.AddVoter(id, addr, 0, g.cfg.ProposeTimeout)
		case opDemote:
			f = g.raft.DemoteVoter(id, 0, g.cfg.ProposeTimeout)
		}
		if err := f.Error(); err != nil {
			g.log.Warn("idempotency: configuration change failed", "change", c.String(), "err", err)
			return
		}
		g.log.Info("idempotency: configuration changed", "change", c.op.String(), "server", c.id, "reason", c.why)
	}
}
