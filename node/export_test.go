package node

// Kill stops the node as a crash would: it leaves no one a goodbye (the
// others detect a failure), drops its NATS connection with whatever it had
// not yet answered, and stops its executor. For tests.
func (n *Node) Kill() {
	n.shutdownOnce.Do(func() {
		if n.clus != nil {
			_ = n.clus.Close()
		}
		n.nc.Close()
		n.closeResources()
	})
}
