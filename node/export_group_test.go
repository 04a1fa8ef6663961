package node

// FilterReady reports whether the node's idempotency filter serves lookups
// (idempotency.Group.Ready); false without one. While it does not, the
// executor answers every command id from the command log. For tests.
func (n *Node) FilterReady() bool { return n.group != nil && n.group.Ready() }
