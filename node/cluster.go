package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/cluster"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/router"
)

// ClusterConfig makes a node a member of a cluster: it gossips with the
// other nodes (package cluster), places every aggregate on a ring of the
// alive members (package router), executes the commands of the aggregates
// it owns and forwards the others to their owners.
//
// Every node of a cluster must use the same event and command logs (a
// cluster with the embedded store is refused: each node would keep its own
// history) and the same Ring settings.
type ClusterConfig struct {
	// Gossip configures membership. Its NodeID and Meta are set by the
	// node (Config.NodeID, the node's direct subject, its version and ring
	// settings); everything else is as documented on cluster.Config.
	Gossip cluster.Config
	// Ring configures partitioning; every node must use the same values.
	// Zero fields take router's defaults (1021 partitions).
	Ring router.Config
	// JoinTimeout bounds how long New tries to reach the seeds in
	// Gossip.Join before it gives up. Default 60s.
	JoinTimeout time.Duration
	// HandoverGrace is how long a node that leaves gracefully keeps
	// forwarding requests it receives after announcing its departure, so
	// that the others' rings move on before it stops listening. Default
	// 500ms.
	HandoverGrace time.Duration
	// MaxHops bounds how often one request is passed between nodes that
	// disagree about its owner (while the ring moves); past it the request
	// is answered "unavailable", which clients retry. Default 32.
	MaxHops int
	// Idempotency configures the replicated idempotency filter.
	Idempotency IdempotencyConfig
	// ReachProbe is how often a node checks over NATS that every other
	// member still listens on its direct subject. A member that does not
	// (NATS answers "no responders": its connection is gone, as when its
	// process died) is left out of the ring at once, without waiting for
	// gossip to declare it dead (4–8s on a LAN); it is taken back when it
	// listens again. Default 250ms; negative turns the probe off.
	ReachProbe time.Duration
}

func (c *ClusterConfig) fillDefaults() {
	c.Ring = c.Ring.WithDefaults()
	if c.JoinTimeout == 0 {
		c.JoinTimeout = 60 * time.Second
	}
	if c.HandoverGrace == 0 {
		c.HandoverGrace = 500 * time.Millisecond
	}
	if c.MaxHops == 0 {
		c.MaxHops = 32
	}
	if c.ReachProbe == 0 {
		c.ReachProbe = 250 * time.Millisecond
	}
}

func (c *ClusterConfig) validate() error {
	if err := c.Ring.Validate(); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	switch {
	case c.JoinTimeout < 0:
		return fmt.Errorf("node: cluster join timeout %v must not be negative", c.JoinTimeout)
	case c.HandoverGrace < 0:
		return fmt.Errorf("node: cluster handover grace %v must not be negative", c.HandoverGrace)
	case c.MaxHops < 1 || c.MaxHops > 1000:
		return fmt.Errorf("node: cluster max hops %d must be between 1 and 1000", c.MaxHops)
	}
	return nil
}

// ringSpec is the text members compare to make sure they partition alike.
func ringSpec(c router.Config) string {
	return fmt.Sprintf("%d/%d/%g", c.PartitionCount, c.ReplicationFactor, c.LoadFactor)
}

// routing is one ring a node acts on, with what it needs to reach the
// owners. Replaced whole on every membership change.
type routing struct {
	version  uint64 // of the view it was built from
	ring     *router.Ring
	subjects map[string]string // member id → direct subject base
	view     cluster.View
	excluded []string        // alive members left out: different ring settings
	down     map[string]bool // alive members NATS says are not listening
}

// owner returns the owner of an aggregate and its direct subject base; ok
// is false when the ring is empty.
func (r *routing) owner(aggType, id string) (owner, subject string, ok bool) {
	if r == nil || r.ring == nil {
		return "", "", false
	}
	owner = r.ring.Owner(aggType, id)
	return owner, r.subjects[owner], true
}

// directBase is the subject base of this node's direct subscriptions.
func directBase(prefix, nodeID string) string { return prefix + ".node." + nodeID }

// startCluster joins the cluster and builds the first ring. The direct
// subscriptions must exist before: others forward as soon as they see us.
func (n *Node) startCluster(ctx context.Context) error {
	cc := n.cfg.Cluster
	g := cc.Gossip
	g.NodeID = n.cfg.NodeID
	n.meta = cluster.Meta{NodeID: n.cfg.NodeID, Subject: n.directBase, Version: Version, Ring: n.ringSpec}
	if n.group != nil {
		n.meta.RaftAddr = n.group.Addr()
	}
	// A node whose store is still connecting joins without its subject:
	// the others (and its own ring) leave it out until it can serve.
	ready := true
	if n.lazy != nil {
		select {
		case <-n.lazy.ready:
		default:
			ready = false
			n.meta.Subject = ""
		}
	}
	g.Meta = n.meta
	c, err := cluster.New(g, n.cfg.Logger) // it adds the node attribute itself
	if err != nil {
		return fmt.Errorf("node: starting gossip: %w", err)
	}
	n.clus = c
	if !ready {
		n.bg.Go(n.announceWhenReady)
	}
	ctx, cancel := context.WithTimeout(ctx, cc.JoinTimeout)
	defer cancel()
	if err := c.Join(ctx); err != nil {
		return fmt.Errorf("node: joining the cluster: %w", err)
	}
	v := c.View()
	for _, m := range v.Alive() {
		if m.ID != n.cfg.NodeID && m.Meta.Ring != "" && m.Meta.Ring != n.ringSpec {
			return fmt.Errorf("node: member %s partitions with %q (partitions/replication/load), this node with %q: every node of a cluster needs the same ring settings",
				m.ID, m.Meta.Ring, n.ringSpec)
		}
	}
	n.applyView(v, false)
	if n.group != nil {
		// Only now: views from before the join could make this node
		// bootstrap a second group.
		n.group.Observe(v)
		n.bg.Go(n.announceGroup)
	}
	n.viewSub = c.Subscribe()
	n.bg.Go(n.watchViews)
	if cc.ReachProbe > 0 {
		n.bg.Go(func(ctx context.Context) { n.probeReach(ctx, cc.ReachProbe) })
	}
	n.bg.Go(n.watchPauses)
	return nil
}

// pingSubject is where a member answers reachability probes.
func pingSubject(base string) string { return base + ".ping" }

// probeReach asks every other member, over NATS, whether it still listens
// on its direct subject, and rebuilds the ring when the answer changes.
// Only NATS's "no responders" counts as down: a slow or lost answer proves
// nothing, and gossip still decides about members NATS cannot see at all.
func (n *Node) probeReach(stop context.Context, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-stop.Done():
			return
		case <-tick.C:
		}
		rt := n.route.Load()
		if rt == nil {
			continue
		}
		changed := false
		n.routeMu.Lock()
		for id := range n.down { // forget members that are gone for good
			if m, ok := rt.view.Member(id); !ok || m.State != cluster.StateAlive {
				delete(n.down, id)
			}
		}
		for id := range n.silent {
			if m, ok := rt.view.Member(id); !ok || m.State != cluster.StateAlive {
				delete(n.silent, id)
			}
		}
		n.routeMu.Unlock()
		for _, m := range rt.view.Alive() {
			if m.ID == n.cfg.NodeID || m.Meta.Subject == "" {
				continue
			}
			ctx, cancel := context.WithTimeout(stop, every)
			_, err := n.nc.RequestWithContext(ctx, pingSubject(m.Meta.Subject), nil)
			cancel()
			switch {
			case errors.Is(err, nats.ErrNoResponders):
				// Right after this node's own reconnect the others may
				// not have reconnected yet: their silence then proves
				// nothing. Otherwise two silent probes in a row count.
				if n.cfg.Clock().Sub(time.Unix(0, n.reconnectedAt.Load())) < reconnectGrace {
					continue
				}
				n.routeMu.Lock()
				n.silent[m.ID]++
				silent := n.silent[m.ID]
				n.routeMu.Unlock()
				if silent >= silentProbes {
					changed = n.setDown(m.ID, true) || changed
				}
			case err == nil:
				n.routeMu.Lock()
				delete(n.silent, m.ID)
				n.routeMu.Unlock()
				changed = n.setDown(m.ID, false) || changed
			}
		}
		if changed {
			n.applyView(n.clus.View(), true)
		}
	}
}

// silentProbes is how many probes in a row a member must leave unanswered
// ("no responders") to be left out of the ring, and reconnectGrace how long
// after this node's own NATS reconnect silence is not held against anyone:
// after a NATS server restart the nodes reconnect one after another, and
// the first back would otherwise drop the others from its ring.
const (
	silentProbes   = 2
	reconnectGrace = 2 * time.Second
)

// setDown records a member's reachability; it reports a change.
func (n *Node) setDown(id string, down bool) bool {
	n.routeMu.Lock()
	defer n.routeMu.Unlock()
	if n.down[id] == down {
		return false
	}
	if down {
		n.down[id] = true
		n.log.Warn("cluster: member not listening on NATS; leaving it out of the ring", "member", id)
		n.doubt("member " + id + " stopped listening on NATS")
	} else {
		delete(n.down, id)
		n.log.Info("cluster: member listening on NATS again", "member", id)
	}
	return true
}

// announceWhenReady gossips the node's subject once its store connects,
// which brings it into every ring.
func (n *Node) announceWhenReady(stop context.Context) {
	select {
	case <-n.lazy.ready:
	case <-stop.Done():
		return
	}
	n.metaMu.Lock()
	n.meta.Subject = n.directBase
	n.metaMu.Unlock()
	n.publishMeta(stop, "cluster: store connected; taking partitions")
}

// watchViews rebuilds the ring on every membership view.
func (n *Node) watchViews(stop context.Context) {
	for {
		select {
		case <-stop.Done():
			return
		case v, ok := <-n.viewSub.C():
			if !ok {
				return
			}
			n.applyView(v, false)
			if n.group != nil {
				n.group.Observe(v)
			}
		}
	}
}

// applyView builds the ring of a view and hands over the partitions that
// changed owner: the cached state of every aggregate in a partition this
// node lost or gained is dropped, so a gained aggregate is loaded fresh
// from the log and a lost one, if it comes back, too. Commands already
// queued for a lost partition finish here; the event log's fenced append
// turns any overlap with the new owner into a conflict, never a silent
// overwrite.
//
// Members that NATS reports as not listening are left out too (see
// probeReach); force rebuilds the ring for such a change, when the view
// itself is not new.
func (n *Node) applyView(v cluster.View, force bool) {
	n.routeMu.Lock()
	defer n.routeMu.Unlock()
	prev := n.route.Load()
	if prev != nil && (v.Version < prev.version || v.Version == prev.version && !force) {
		return
	}
	next := &routing{version: v.Version, subjects: make(map[string]string), view: v, down: maps.Clone(n.down)}
	var ids []string
	for _, m := range v.Alive() {
		switch {
		case m.Meta.Subject == "":
			continue // not a node (yet)
		case m.Meta.Ring != n.ringSpec:
			next.excluded = append(next.excluded, m.ID)
			continue
		case n.down[m.ID] && m.ID != n.cfg.NodeID:
			continue
		}
		ids = append(ids, m.ID)
		next.subjects[m.ID] = m.Meta.Subject
	}
	if len(next.excluded) > 0 && (prev == nil || len(prev.excluded) != len(next.excluded)) {
		n.log.Error("cluster: members with different ring settings are left out of the ring", "members", next.excluded, "ring", n.ringSpec)
	}
	if len(ids) > 0 {
		ring, err := router.New(n.cfg.Cluster.Ring, ids)
		if err != nil { // the config was validated; only a router bug gets here
			n.log.Error("cluster: building the ring", "err", err)
			return
		}
		next.ring = ring
	}
	var prevRing *router.Ring
	if prev != nil {
		prevRing = prev.ring
	}
	if prev != nil && sameTable(prevRing, next.ring) {
		n.route.Store(next) // subjects or tombstones may differ
		return
	}
	moved, err := router.Moved(prevRing, next.ring)
	if err != nil {
		n.log.Error("cluster: comparing rings", "err", err)
	}
	self := n.cfg.NodeID
	handover := make(map[int]bool)
	lost, gained := 0, 0
	for _, p := range moved {
		was, now := ownerOf(prevRing, p), ownerOf(next.ring, p)
		if was == self {
			lost++
			handover[p] = true
		}
		if now == self {
			gained++
			handover[p] = true
		}
	}
	// Publish the new ring before dropping state: from here on requests for
	// lost partitions are forwarded, so nothing re-fills the dropped state
	// on the old ring.
	n.route.Store(next)
	dropped := 0
	if len(handover) > 0 && n.exec != nil {
		parts := n.cfg.Cluster.Ring.PartitionCount
		dropped = n.exec.Invalidate(func(r model.Ref) bool {
			return handover[router.Partition(parts, r.Type, r.ID)]
		})
	}
	if prev != nil {
		n.counters.ringChanges.Add(1)
		n.counters.moved.Add(uint64(len(moved)))
	}
	if prev != nil {
		for _, m := range v.Members {
			if m.State != cluster.StateDead || m.ID == self {
				continue
			}
			if was, ok := prev.view.Member(m.ID); ok && was.State == cluster.StateAlive {
				n.doubt("member " + m.ID + " failed")
			}
		}
	}
	n.log.Info("cluster: ring changed", "members", len(ids), "moved", len(moved),
		"gained", gained, "lost", lost, "droppedState", dropped, "fingerprint", fingerprint(next.ring))
}

func sameTable(a, b *router.Ring) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Fingerprint() == b.Fingerprint()
}

func ownerOf(r *router.Ring, p int) string {
	if r == nil {
		return ""
	}
	return r.OwnerOf(p)
}

func fingerprint(r *router.Ring) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf("%016x", r.Fingerprint())
}

// leaveCluster announces this node's departure and gives the others'
// rings time to move on, while this node still forwards what reaches it.
func (n *Node) leaveCluster(ctx context.Context) {
	if n.clus == nil {
		return
	}
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl)/2)
	}
	if err := n.clus.Leave(timeout); err != nil && !errors.Is(err, cluster.ErrLeft) {
		n.log.Warn("cluster: leaving", "err", err)
	}
	// Our own view shows us as left once Leave returns; apply it now rather
	// than waiting for the watcher, so nothing new starts here.
	n.applyView(n.clus.View(), false)
	select {
	case <-time.After(n.cfg.Cluster.HandoverGrace):
	case <-ctx.Done():
	}
}

// Owner returns the node that owns an aggregate by this node's ring: its
// own id when it runs alone.
func (n *Node) Owner(aggregateType, aggregateID string) string {
	if owner, _, ok := n.route.Load().owner(aggregateType, aggregateID); ok {
		return owner
	}
	return n.cfg.NodeID
}

// NodeID is the node's id (its cluster member name in a cluster).
func (n *Node) NodeID() string { return n.cfg.NodeID }

// GossipAddr is the address ("host:port") other nodes join this one on;
// empty when the node runs alone.
func (n *Node) GossipAddr() string {
	if n.clus == nil {
		return ""
	}
	return n.clus.LocalMember().Addr
}
