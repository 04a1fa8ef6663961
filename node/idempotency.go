package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/concursus-go/concursus/cluster"
	"github.com/concursus-go/concursus/idempotency"
	"github.com/concursus-go/concursus/internal/backoff"
)

// IdempotencyConfig configures a clustered node's part in the replicated
// idempotency filter (package idempotency): a raft group of up to Voters
// voters among the nodes that remembers every command id decided in the
// last Window, so that a retry reaching any node, also after the first
// owner died, gets the original outcome without a store read.
type IdempotencyConfig struct {
	// Disabled runs the cluster without the filter: retries are then
	// recognised by a command-log read per command.
	Disabled bool
	// BindAddr is where the raft transport listens, "host:port"; port 0
	// picks a free one (others learn it by gossip). Default: the gossip
	// bind address, port 0.
	BindAddr string
	// AdvertiseAddr is what other nodes dial when it differs from
	// BindAddr. Default: the bound address.
	AdvertiseAddr string
	// Window is how long a command id is remembered. Default 10m.
	Window time.Duration
	// Voters is the number of raft voters (1 to 5). Default 3.
	Voters int
	// FailureGrace is how long a failed node stays a raft server before
	// it is removed. Default 30s.
	FailureGrace time.Duration
}

// startIdempotency starts this node's raft server; the executor uses it as
// its filter. It takes part in the group once the node has joined the
// cluster (startCluster feeds it the views).
func (n *Node) startIdempotency() error {
	cc := n.cfg.Cluster
	ic := cc.Idempotency
	g := idempotency.DefaultGroupConfig(n.cfg.NodeID)
	g.BindAddr = ic.BindAddr
	if g.BindAddr == "" {
		host := cc.Gossip.BindAddr
		if host == "" || host == "0.0.0.0" {
			host = "127.0.0.1"
		}
		g.BindAddr = host + ":0"
	}
	g.AdvertiseAddr = ic.AdvertiseAddr
	if ic.Window > 0 {
		g.Window = ic.Window
	}
	if ic.Voters > 0 {
		g.Voters = ic.Voters
	}
	if ic.FailureGrace > 0 {
		g.FailureGrace = ic.FailureGrace
	}
	if cc.Gossip.Profile == cluster.ProfileLocal {
		g.Profile = idempotency.ProfileLocal
		g.Settle, g.ReconcileInterval = 0, 0 // the profile's
	}
	g.Forward = idempotency.NATSForwarder(n.nc, n.cfg.Prefix)
	// The node's clock stamps the batches this node proposes as leader and
	// times its doubts: one clock for the node.
	g.Clock = n.cfg.Clock
	// Time between batches is measured on time.Now's monotonic reading,
	// which a step of the wall clock does not move: so the node notices
	// its own clock stepping ahead while it leads (Group.onAdvance).
	g.Monotonic = time.Now
	group, err := idempotency.NewGroup(g, n.cfg.Logger.With("node", n.cfg.NodeID))
	if err != nil {
		return fmt.Errorf("node: starting the idempotency group: %w", err)
	}
	stop, err := group.ServeNATS(n.nc, n.cfg.Prefix)
	if err != nil {
		_ = group.Shutdown()
		return fmt.Errorf("node: serving idempotency proposals: %w", err)
	}
	n.group, n.stopGroupNATS = group, stop
	return nil
}

// announceGroup gossips the raft group this node joined, which the
// bootstrap rule and the leaders' choice of servers read.
func (n *Node) announceGroup(stop context.Context) {
	select {
	case <-n.group.JoinedC():
	case <-stop.Done():
		return
	}
	n.metaMu.Lock()
	n.meta.Group = n.group.GroupID()
	n.metaMu.Unlock()
	n.publishMeta(stop, "cluster: joined the idempotency group", "group", n.group.GroupID())
}

// publishMeta gossips the node's current metadata, retrying while the
// broadcast fails for reasons other than leaving.
func (n *Node) publishMeta(stop context.Context, what string, args ...any) {
	for {
		n.metaMu.Lock()
		meta := n.meta
		n.metaMu.Unlock()
		err := n.clus.SetMeta(meta, 5*time.Second)
		if err == nil || errors.Is(err, cluster.ErrTimeout) { // applied; still spreading
			n.log.Info(what, args...)
			return
		}
		if errors.Is(err, cluster.ErrLeft) || errors.Is(err, cluster.ErrClosed) {
			return
		}
		n.log.Warn("cluster: announcing metadata", "err", err)
		if backoff.Wait(stop, time.Second) != nil {
			return
		}
	}
}

// stopIdempotency leaves the raft group (handing over leadership when it
// leads) once the executor no longer feeds it.
func (n *Node) stopIdempotency() {
	if n.group == nil {
		return
	}
	n.groupStop.Do(func() {
		n.stopGroupNATS()
		if err := n.group.Shutdown(); err != nil && !errors.Is(err, idempotency.ErrClosed) {
			n.log.Warn("idempotency: shutting down", "err", err)
		}
	})
}
