package node

import (
	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/cluster"
)

// This file answers the admin subjects: a node's info and its account of
// the cluster, with the stats of its executor, publisher and idempotency
// group.

// onInfo answers an admin info request.
func (n *Node) onInfo(m *nats.Msg) {
	ready, store := n.Ready()
	n.respond(m, &api.Info{NodeID: n.cfg.NodeID, Version: Version, Prefix: n.cfg.Prefix,
		AggregateTypes: n.reg.Names(), Started: n.started, Ready: ready, Store: store, Stats: n.exec.Stats(),
		Publisher: n.publisherStats()})
}

// ClusterInfo returns this node's account of the cluster (what the admin
// subjects answer).
func (n *Node) ClusterInfo() api.ClusterInfo {
	c := &n.counters
	ready, _ := n.Ready()
	info := api.ClusterInfo{NodeID: n.cfg.NodeID, Version: Version, Ready: ready,
		Routing: api.RoutingCounters{
			Local: c.local.Load(), Direct: c.direct.Load(), Forwarded: c.forwarded.Load(),
			Rerouted: c.rerouted.Load(), Delayed: c.delayed.Load(), Exhausted: c.exhausted.Load(),
			RingChanges: c.ringChanges.Load(), PartitionsMoved: c.moved.Load(), Pauses: c.pauses.Load(),
		}}
	info.Stats = n.exec.Stats()
	info.Idempotency = n.groupStats()
	info.Publisher = n.publisherStats()
	rt := n.route.Load()
	if rt == nil {
		return info
	}
	info.Clustered = true
	info.Ring = n.ringSpec
	info.ViewVersion = rt.version
	owned := make(map[string]int)
	if rt.ring != nil {
		info.Owners = rt.ring.Partitions()
		info.Fingerprint = fingerprint(rt.ring)
		for _, o := range info.Owners {
			owned[o]++
		}
	}
	for _, m := range rt.view.Members {
		_, in := rt.subjects[m.ID]
		info.Members = append(info.Members, api.ClusterMember{ID: m.ID, Addr: m.Addr, State: m.State.String(),
			Subject: m.Meta.Subject, RaftAddr: m.Meta.RaftAddr, Version: m.Meta.Version,
			Partitions: owned[m.ID], InRing: in, Unreachable: rt.down[m.ID] && m.State == cluster.StateAlive})
	}
	return info
}

// onClusterInfo answers the admin cluster subjects.
func (n *Node) onClusterInfo(m *nats.Msg) { n.respond(m, n.ClusterInfo()) }

// groupStats is the idempotency group's counters for admin replies (nil
// when the node runs no group).
func (n *Node) groupStats() *api.IdempotencyStats {
	if n.group == nil {
		return nil
	}
	s := n.group.Stats()
	return &s
}

// publisherStats is the publisher's counters for admin replies (nil when
// the node has no publisher).
func (n *Node) publisherStats() *api.PublisherStats {
	if n.pub == nil {
		return nil
	}
	s := n.pub.Stats()
	return &s
}
