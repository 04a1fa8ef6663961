package node

import (
	"context"
	"fmt"
	"time"

	"github.com/concursus-go/concursus/cluster"
	"github.com/concursus-go/concursus/eventbus"
	"github.com/concursus-go/concursus/eventlog"
)

// This file assembles delivery: the publisher on the store's outbox and the
// sweeper that takes over departed writers' outboxes. Both live in package
// eventbus; the node only decides which departed writer is its own
// (claimWriter), from its ring.

// outbox returns the store's outbox, nil when the store has none (then
// publication is best effort).
func (n *Node) outbox() eventlog.Outbox {
	if n.lazy != nil {
		return lazyOutbox{n.lazy}
	}
	if o, ok := n.events.(eventlog.Outbox); ok {
		return o
	}
	if n.db != nil {
		if o, ok := any(n.db).(eventlog.Outbox); ok && n.events == n.db.EventLog() {
			return o
		}
	}
	return nil
}

// startPublisher builds the event publisher on the store's outbox, and the
// sweeper beside it (New starts the sweeper once the node is complete,
// cluster included).
func (n *Node) startPublisher(ctx context.Context) error {
	var ob eventlog.Outbox
	if n.cfg.NoOutbox {
		n.log.Warn("outbox off: events are published best effort")
	} else if ob = n.outbox(); ob == nil {
		n.log.Warn("the event store keeps no outbox: events are published best effort (a crash between append and publish can leave one off the bus)")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	p, err := eventbus.NewPublisher(ctx, eventbus.PublisherConfig{
		Conn:         n.nc,
		Prefix:       n.cfg.Prefix,
		Writer:       n.cfg.NodeID,
		Outbox:       ob,
		Log:          n.events,
		JetStream:    n.cfg.Stream != nil,
		BucketLength: n.cfg.OutboxBucket,
		Logger:       n.log,
		Clock:        n.cfg.Clock,
	})
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.pub = p
	if ob != nil {
		n.sweeper = eventbus.NewSweeper(eventbus.SweeperConfig{
			Publisher: p,
			Outbox:    ob,
			Claim:     n.claim,
			Connected: n.nc.IsConnected,
			Clock:     n.cfg.Clock,
			Logger:    n.log,
		})
	}
	return nil
}

// claimWriter decides who takes over another writer's outbox: a lone node
// takes every other writer (earlier runs under other ids); in a cluster the
// owner of the writer's id on the ring takes it once the writer is no
// longer a member (or NATS says it stopped listening), so exactly one live
// node republishes a dead node's events (two at worst while rings
// disagree, and JetStream drops the duplicates).
func (n *Node) claimWriter(writer string) eventbus.Claim {
	if n.clus == nil {
		return eventbus.ClaimMine
	}
	r := n.route.Load()
	if r == nil || r.ring == nil {
		return eventbus.ClaimUnknown // no ring yet
	}
	if m, ok := r.view.Member(writer); ok && m.State == cluster.StateAlive && !r.down[writer] {
		return eventbus.ClaimPresent
	}
	if owner, _, _ := r.owner(outboxOwnerType, writer); owner != n.cfg.NodeID {
		return eventbus.ClaimOther
	}
	return eventbus.ClaimMine
}

// outboxOwnerType is the aggregate type under which writer ids are placed
// on the ring to choose who takes over a writer's outbox.
const outboxOwnerType = "concursus.outbox"

// closePublisher lets the publisher send and record what it has; the
// outbox sweep, which republishes through it, must have stopped (n.bg).
// Safe to call more than once.
func (n *Node) closePublisher(ctx context.Context) error {
	if n.pub == nil {
		return nil
	}
	return n.pub.Close(ctx)
}

// Publisher returns the node's event publisher (for its stats).
func (n *Node) Publisher() *eventbus.Publisher { return n.pub }
