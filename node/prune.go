package node

import (
	"context"
	"time"

	"github.com/concursus-go/concursus/commandlog"
)

// startPruning runs a goroutine that deletes command records older than
// CommandRetention every PruneInterval, when the command log prunes on
// request. It stops when stop is closed; Shutdown waits for it.
func (n *Node) startPruning() {
	p, ok := n.commands.(commandlog.Pruner)
	if !ok || n.cfg.CommandRetention < 0 {
		return
	}
	n.pruning.Add(1)
	go func() {
		defer n.pruning.Done()
		tick := time.NewTicker(n.cfg.PruneInterval)
		defer tick.Stop()
		for {
			n.pruneOnce(p)
			select {
			case <-n.stopPruning:
				return
			case <-tick.C:
			}
		}
	}()
}

// pruneOnce deletes the records decided before now - CommandRetention.
func (n *Node) pruneOnce(p commandlog.Pruner) {
	cutoff := n.cfg.Clock().Add(-n.cfg.CommandRetention)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	removed, err := p.Prune(ctx, cutoff)
	switch {
	case err != nil:
		n.log.Warn("pruning command records", "before", cutoff, "removed", removed, "err", err)
	case removed > 0:
		n.log.Info("pruned expired command records", "before", cutoff, "removed", removed)
	}
}
