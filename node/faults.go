package node

import (
	"context"
	"time"

	"github.com/concursus-go/concursus/model"
)

// This file holds what a node does about faults it can notice in itself:
// a pause (the process was stopped, or starved of CPU, for longer than the
// cluster's failure detection) and interruptions of its links to the other
// members. Either may leave outcomes decided around it out of the
// idempotency filter, and its cached states may be stale.

// doubt tells the idempotency filter that its memory may be incomplete for
// a window, so the executor checks its misses against the command log.
func (n *Node) doubt(why string) {
	if n.group != nil {
		n.group.Doubt(why)
	}
}

// pauseTick is how often the pause watchdog looks at the clock, and
// pauseThreshold how late a tick must be to count as a pause: longer than
// a scheduling hiccup, shorter than the local gossip profile's failure
// detection.
const (
	pauseTick      = 100 * time.Millisecond
	pauseThreshold = time.Second
)

// watchPauses notices that this process was paused: a tick that comes much
// later than due. Other nodes may have taken this node's partitions (and
// decided commands on them) meanwhile, and this node's ring and caches
// are from before. It drops every cached state, so each aggregate is
// loaded fresh and its next decision reads the command log, and it makes
// the filter doubt its misses. Decisions made on stale state before the
// drop are still fenced at the store (appends and head checks).
func (n *Node) watchPauses(stop context.Context) {
	t := time.NewTicker(pauseTick)
	defer t.Stop()
	last := time.Now() // monotonic: a pause shows as a late tick
	for {
		select {
		case <-stop.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		late := now.Sub(last) - pauseTick
		last = now
		if late < pauseThreshold {
			continue
		}
		n.counters.pauses.Add(1)
		dropped := 0
		if n.exec != nil {
			dropped = n.exec.Invalidate(func(model.Ref) bool { return true })
		}
		n.doubt("this process was paused")
		n.log.Warn("cluster: this process was paused or starved; cached states dropped", "late", late.Round(time.Millisecond), "droppedState", dropped)
	}
}
