package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/cluster"
)

// This file holds the node's end: Shutdown leaves the cluster, drains the
// subscriptions and the requests waiting on timers, closes the executor
// (which waits for running commands) and the idempotency group, stops
// every background goroutine (one lifecycle.Group), lets the publisher
// finish, and closes NATS, the stores and the embedded server: the
// reverse of the order New built them in.

// Shutdown stops taking requests, lets queued and running commands finish
// and reply, then closes NATS, the stores and the embedded server. It
// returns when everything is closed or ctx (bounded by ShutdownTimeout) ends;
// it is safe to call more than once.
func (n *Node) Shutdown(ctx context.Context) error {
	n.shutdownOnce.Do(func() {
		ctx, cancel := context.WithTimeout(ctx, n.cfg.ShutdownTimeout)
		defer cancel()
		if n.clus != nil {
			n.log.Info("shutting down: leaving the cluster")
			n.leaveCluster(ctx)
		}
		n.log.Info("shutting down: draining requests")
		n.shutdownErr = n.drain(ctx)
		n.closeResources()
		n.log.Info("shut down")
	})
	return n.shutdownErr
}

// drain stops the subscriptions after their delivered messages are handled,
// then waits for the executor to finish what it accepted.
func (n *Node) drain(ctx context.Context) error {
	for _, s := range n.subs {
		if err := s.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
			n.log.Warn("draining subscription", "subject", s.Subject, "err", err)
		}
	}
	for _, s := range n.subs {
		for s.IsValid() {
			select {
			case <-ctx.Done():
				return fmt.Errorf("node: draining subscriptions: %w", ctx.Err())
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
	done := make(chan struct{})
	go func() {
		n.delayed.Wait()
		_ = n.exec.Close()
		n.stopIdempotency() // the executor no longer feeds it
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("node: waiting for in-flight commands: %w", ctx.Err())
	}
	n.bg.Stop() // the background goroutines, the outbox sweep among them
	if err := n.closePublisher(ctx); err != nil {
		return err
	}
	if err := n.nc.FlushWithContext(ctx); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		return fmt.Errorf("node: flushing NATS: %w", err)
	}
	return nil
}

// Ready reports whether the node's store is connected (always true for the
// embedded store), with a line describing it.
func (n *Node) Ready() (bool, string) {
	if n.lazy == nil {
		if n.db != nil {
			return true, "embedded: " + n.db.Path()
		}
		return true, "injected"
	}
	return n.lazy.status()
}

func (n *Node) closeResources() {
	n.bg.Stop()
	if n.clus != nil {
		if err := n.clus.Close(); err != nil && !errors.Is(err, cluster.ErrClosed) {
			n.log.Warn("cluster: closing", "err", err)
		}
	}
	if n.exec != nil {
		_ = n.exec.Close() // idempotent; waits for running commands
	}
	n.stopIdempotency()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := n.closePublisher(ctx); err != nil {
		n.log.Warn("events left unacknowledged at shutdown stay in the outbox", "err", err)
	}
	cancel()
	if n.nc != nil {
		n.nc.Close()
	}
	if n.db != nil {
		if err := n.db.Close(); err != nil {
			n.log.Error("closing embedded store", "err", err)
		}
	}
	if n.lazy != nil {
		if err := n.lazy.close(); err != nil {
			n.log.Error("closing store", "store", n.lazy.name, "err", err)
		}
	}
	if n.server != nil {
		n.server.Shutdown()
		n.server.WaitForShutdown()
	}
}
