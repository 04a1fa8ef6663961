package idempotency

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
)

// A ready-made carrier for forwarded proposals over NATS request/reply.
//
// The leader serves "<prefix>.raft.<node id>.propose" (ServeNATS); a
// follower's Forward (NATSForwarder) sends the proposal there as a
// request. The reply is one line of text:
//
//	ok                      committed
//	not-leader: <detail>    the node is not the leader (any more)
//	error: <detail>         anything else (corrupt payload, closed, timeout)
//
// Each proposal is at most GroupConfig.MaxBatchBytes plus a few bytes,
// which must fit the server's max_payload (1 MiB by default).

// ProposeSubject returns the subject on which the node takes forwarded
// proposals.
func ProposeSubject(prefix, nodeID string) string {
	return prefix + ".raft." + nodeID + ".propose"
}

// maxServing bounds the forwarded proposals one node handles at once (each
// waits for a commit; they share the leader's batches).
const maxServing = 256

var (
	replyOK        = []byte("ok")
	replyNotLeader = []byte("not-leader: ")
	replyError     = []byte("error: ")
)

// ServeNATS subscribes the group to its propose subject and hands every
// request to HandleForwarded, each in its own goroutine (at most 256 at
// once; beyond that the subscription waits). stop unsubscribes and waits
// for the requests in progress; call it before Shutdown. The subscription
// belongs to nc; closing nc ends it too.
func (g *Group) ServeNATS(nc *nats.Conn, subjectPrefix string) (stop func(), err error) {
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		stopped bool
	)
	sem := make(chan struct{}, maxServing)
	subject := ProposeSubject(subjectPrefix, g.cfg.NodeID)
	sub, err := nc.Subscribe(subject, func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		// Unsubscribe does not wait for a callback in progress: count the
		// request under the lock, or drop it once stop has begun.
		mu.Lock()
		if stopped {
			mu.Unlock()
			return
		}
		wg.Add(1)
		mu.Unlock()
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), g.cfg.ProposeTimeout)
			defer cancel()
			err := g.HandleForwarded(ctx, m.Data)
			var reply []byte
			switch {
			case err == nil:
				reply = replyOK
			case errors.Is(err, ErrNotLeader):
				reply = append(append([]byte{}, replyNotLeader...), err.Error()...)
			default:
				reply = append(append([]byte{}, replyError...), err.Error()...)
			}
			if err := m.Respond(reply); err != nil {
				g.log.Debug("idempotency: reply to a forwarded proposal failed", "err", err)
			}
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("idempotency: subscribe %s: %w", subject, err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			mu.Lock()
			stopped = true
			mu.Unlock()
			_ = sub.Unsubscribe()
			wg.Wait()
		})
	}, nil
}

// NATSForwarder returns a ForwardFunc that sends proposals to the leader's
// propose subject over nc. It returns an error wrapping ErrNotLeader when
// the addressed node is not the leader or nobody serves its subject, and
// ErrUnavailable for other failures (both retried by the group).
func NATSForwarder(nc *nats.Conn, subjectPrefix string) ForwardFunc {
	return func(ctx context.Context, leaderID string, payload []byte) error {
		subject := ProposeSubject(subjectPrefix, leaderID)
		m, err := nc.RequestWithContext(ctx, subject, payload)
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			return fmt.Errorf("%w: nobody serves %s", ErrNotLeader, subject)
		case err != nil:
			return fmt.Errorf("%w: forward to %s: %v", ErrUnavailable, leaderID, err)
		case bytes.Equal(m.Data, replyOK):
			return nil
		case bytes.HasPrefix(m.Data, replyNotLeader):
			return fmt.Errorf("%w: %s", ErrNotLeader, m.Data[len(replyNotLeader):])
		default:
			return fmt.Errorf("%w: %s: %s", ErrUnavailable, leaderID, bytes.TrimPrefix(m.Data, replyError))
		}
	}
}
