package node

import (
	"context"
	"time"

	"github.com/concursus-go/concursus/commandlog"
)

// startPruning runs a goroutine that deletes command records older than
// CommandRetention every PruneInterval, when the command log prunes on
// request. It runs until the node's background goroutines stop.
func (n *Node) startPruning() {
	p, ok := n.commands.(commandlog.Pruner)
	if !ok || n.cfg.CommandRetention < 0 {
		return
	}
	n.bg.Go(func(ctx context.Context) {
		tick := time.NewTicker(n.cfg.PruneInterval)
		defer tick.Stop()
		for {
			n.pruneOnce(ctx, p)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
}

// pruneOnce deletes the records decided before now - CommandRetention.
func (n *Node) pruneOnce(stop context.Context, p commandlog.Pruner) {
	cutoff := n.cfg.Clock().Add(-n.cfg.CommandRetention)
	ctx, cancel := context.WithTimeout(stop, time.Minute)
	defer cancel()
	removed, err := p.Prune(ctx, cutoff)
	switch {
	case err != nil && stop.Err() != nil:
		// the node is stopping
	case err != nil:
		n.log.Warn("pruning command records", "before", cutoff, "removed", removed, "err", err)
	case removed > 0:
		n.log.Info("pruned expired command records", "before", cutoff, "removed", removed)
	}
}
