package node

import (
	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventbus"
	"github.com/concursus-go/concursus/executor"
)

// TestHooks let a test binary reach into a node at the points where a
// fault is worth injecting, without the library doing it itself: the
// library never reads fault settings from the environment and never stops
// the process. cmd/node built with -tags faultinject sets them from its
// environment (see cmd/node/faultinject.go); production leaves
// Config.TestHooks nil.
type TestHooks struct {
	// Publisher, when set, wraps the publisher the executor hands each
	// batch of events to once the batch is durable in the event log and
	// before it is published. The wrapper must pass every call on to p
	// unless it means to inject a fault there; it is called from the
	// executor's goroutines and must be safe for concurrent use. Returning
	// nil keeps p.
	Publisher func(p executor.Publisher) executor.Publisher
	// Commands, when set, wraps the command log the executor writes
	// records to and reads them from, the same way: it must pass every
	// call on unless it means to inject a fault there, and keep
	// commandlog.Inserter when l has it. Returning nil keeps l.
	Commands func(l commandlog.Log) commandlog.Log
	// Claim, when set, has the last word on whether this node takes over
	// another writer's outbox: it gets the node's own decision and returns
	// the one to act on (eventbus.ClaimUnknown waits, and asks again at
	// the next sweep). Called from the sweep's goroutine.
	Claim func(writer string, c eventbus.Claim) eventbus.Claim
}

// claim is the outbox sweep's decision for writer: the node's, passed
// through Config.TestHooks.Claim when a test asks for it.
func (n *Node) claim(writer string) eventbus.Claim {
	c := n.claimWriter(writer)
	if h := n.cfg.TestHooks; h != nil && h.Claim != nil {
		return h.Claim(writer, c)
	}
	return c
}

// executorCommands is the command log the executor uses: the node's,
// wrapped by Config.TestHooks when a test asks for it.
func (n *Node) executorCommands() commandlog.Log {
	if h := n.cfg.TestHooks; h != nil {
		return hooked(n, n.commands, h.Commands, "writes command records")
	}
	return n.commands
}

// executorPublisher is what the executor publishes through: the node's
// publisher, wrapped by Config.TestHooks when a test asks for it.
func (n *Node) executorPublisher() executor.Publisher {
	if h := n.cfg.TestHooks; h != nil {
		return hooked(n, executor.Publisher(n.pub), h.Publisher, "publishes")
	}
	return n.pub
}

// hooked returns what hook wraps v in, or v when there is no hook or it
// returned nil, and logs that a wrapper is in use.
func hooked[T comparable](n *Node, v T, hook func(T) T, what string) T {
	var none T
	if hook == nil {
		return v
	}
	if w := hook(v); w != none {
		n.log.Warn("test hook: the executor " + what + " through a wrapper")
		return w
	}
	return v
}
