package node

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/cluster"
	"github.com/concursus-go/concursus/eventbus"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

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

// startPublisher builds the event publisher on the store's outbox.
func (n *Node) startPublisher() error {
	var ob eventlog.Outbox
	if n.cfg.NoOutbox {
		n.log.Warn("outbox off: events are published best effort")
	} else if ob = n.outbox(); ob == nil {
		n.log.Warn("the event store keeps no outbox: events are published best effort (a crash between append and publish can leave one off the bus)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
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
	n.pub, n.outboxStore = p, ob
	return nil
}

// startSweeper starts taking over departed writers' outboxes; New calls
// it once the node is complete (cluster included).
func (n *Node) startSweeper() {
	if n.outboxStore == nil {
		return
	}
	n.sweeping.Add(1)
	go n.sweepOutbox(n.outboxStore)
}

// closePublisher stops the outbox sweeper, then lets the publisher send
// and record what it has; safe to call more than once.
func (n *Node) closePublisher(ctx context.Context) error {
	n.sweepStop.Do(func() { close(n.stopSweeping) })
	n.sweeping.Wait()
	if n.pub == nil {
		return nil
	}
	return n.pub.Close(ctx)
}

// publisherStats is the publisher's counters for admin replies.
func (n *Node) publisherStats() json.RawMessage {
	if n.pub == nil {
		return nil
	}
	data, err := json.Marshal(n.pub.Stats())
	if err != nil {
		return nil
	}
	return data
}

// Publisher returns the node's event publisher (for its stats).
func (n *Node) Publisher() *eventbus.Publisher { return n.pub }

// sweepInterval is how often a node looks for other writers' unpublished
// outbox buckets; forgetAfter is how long a writer must be absent from
// the cluster before its outbox position is dropped.
const (
	sweepInterval = 2 * time.Second
	forgetAfter   = time.Minute
)

// sweepOutbox takes over the outbox of writers that are gone: a lone node
// takes every other writer (earlier runs under other ids); in a cluster the
// owner of the writer's id on the ring takes it once the writer is no
// longer a member, so exactly one live node republishes a dead node's
// events (two at worst while rings disagree, and JetStream drops the
// duplicates).
func (n *Node) sweepOutbox(ob eventlog.Outbox) {
	defer n.sweeping.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-n.stopSweeping
		cancel()
	}()
	absent := make(map[string]time.Time)
	t := time.NewTicker(sweepInterval)
	defer t.Stop()
	for {
		n.sweepOnce(ctx, ob, absent)
		select {
		case <-n.stopSweeping:
			return
		case <-t.C:
		}
	}
}

func (n *Node) sweepOnce(ctx context.Context, ob eventlog.Outbox, absent map[string]time.Time) {
	if !n.nc.IsConnected() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ws, err := ob.Writers(ctx)
	if err != nil {
		return // the store is down or connecting; the next sweep retries
	}
	r := n.route.Load()
	now := time.Now()
	for _, w := range ws {
		if w.Writer == n.cfg.NodeID {
			continue
		}
		if n.clus != nil {
			if r == nil || r.ring == nil {
				return // no ring yet
			}
			if m, ok := r.view.Member(w.Writer); ok && m.State == cluster.StateAlive && !r.down[w.Writer] {
				delete(absent, w.Writer)
				continue
			}
			if owner, _, _ := r.owner(outboxOwnerType, w.Writer); owner != n.cfg.NodeID {
				continue
			}
		}
		if w.Pending() {
			start := time.Now()
			published, err := n.pub.Recover(ctx, w.Writer)
			if err != nil {
				n.log.Warn("outbox: taking over a departed writer's events failed; will retry", "writer", w.Writer, "published", published, "err", err)
				continue
			}
			n.log.Info("outbox: published a departed writer's unacknowledged events from the log",
				"writer", w.Writer, "events", published, "took", time.Since(start).Round(time.Millisecond).String())
		}
		first, seen := absent[w.Writer]
		if !seen {
			absent[w.Writer] = now
			continue
		}
		if now.Sub(first) >= forgetAfter {
			if err := ob.Forget(ctx, w.Writer); err == nil {
				delete(absent, w.Writer)
			}
		}
	}
}

// outboxOwnerType is the aggregate type under which writer ids are placed
// on the ring to choose who takes over a writer's outbox.
const outboxOwnerType = "concursus.outbox"

// onHistory answers a history read from the event log. Any node answers:
// the log is shared. The request is parsed by decodeHistory; a successful
// reply always carries events (maybe none) and next (see api.HistoryReply).
func (n *Node) onHistory(m *nats.Msg) {
	aggType := m.Subject[len(n.historySubjectPrefix):]
	fail := func(e *api.Error) { n.respond(m, &api.HistoryReply{AggregateType: aggType, Error: e}) }
	q, apiErr := decodeHistory(m.Data, n.cfg.MaxPayload)
	if apiErr != nil {
		fail(apiErr)
		return
	}
	if _, ok := n.reg.Lookup(aggType); !ok {
		fail(&api.Error{Code: api.CodeUnknownAggregateType, Message: fmt.Sprintf("unknown aggregate type %q", aggType)})
		return
	}
	ref := model.Ref{Type: aggType, ID: q.AggregateID}
	if err := ref.Validate(); err != nil {
		fail(invalid("%v", err))
		return
	}
	limit := q.Limit
	if limit == 0 || limit > api.MaxHistoryPage {
		limit = api.MaxHistoryPage
	}
	from := max(q.From, 1)
	if q.To != 0 {
		limit = int(min(uint64(limit), q.To-from+1))
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.RequestTimeout)
	defer cancel()
	events, next, err := n.events.ReadPage(ctx, ref, from, limit)
	if err != nil {
		fail(&api.Error{Code: api.CodeUnavailable, Message: "reading the event log: " + err.Error()})
		return
	}
	if q.To != 0 && next > q.To {
		next = 0
	}
	if next != 0 && len(events) < limit {
		next = 0 // the history ended inside the page
	}
	n.respond(m, &api.HistoryReply{OK: true, AggregateType: aggType, AggregateID: q.AggregateID, Events: events, Next: next})
}

// lazyOutbox is the outbox of a store that is still connecting: Stores.Outbox,
// or else the event log when it is an eventlog.Outbox. A store without one
// takes marks and keeps nothing.
type lazyOutbox struct{ l *lazyStore }

var _ eventlog.Outbox = lazyOutbox{}

func (o lazyOutbox) get() (eventlog.Outbox, error) {
	s, err := o.l.get()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", eventlog.ErrUnavailable, err)
	}
	if s.Outbox != nil {
		return s.Outbox, nil
	}
	ob, _ := s.Events.(eventlog.Outbox) // nil: the store keeps none
	return ob, nil
}

func (o lazyOutbox) Mark(ctx context.Context, writer string, bucket int64, marks []eventlog.Mark) error {
	ob, err := o.get()
	if err != nil || ob == nil {
		return err
	}
	return ob.Mark(ctx, writer, bucket, marks)
}

func (o lazyOutbox) Marks(ctx context.Context, writer string, bucket int64) ([]eventlog.Mark, error) {
	ob, err := o.get()
	if err != nil || ob == nil {
		return nil, err
	}
	return ob.Marks(ctx, writer, bucket)
}

func (o lazyOutbox) SetPublished(ctx context.Context, writer string, bucket int64) error {
	ob, err := o.get()
	if err != nil || ob == nil {
		return err
	}
	return ob.SetPublished(ctx, writer, bucket)
}

func (o lazyOutbox) Writers(ctx context.Context) ([]eventlog.OutboxWriter, error) {
	ob, err := o.get()
	if err != nil || ob == nil {
		return nil, err
	}
	return ob.Writers(ctx)
}

func (o lazyOutbox) Forget(ctx context.Context, writer string) error {
	ob, err := o.get()
	if err != nil || ob == nil {
		return err
	}
	return ob.Forget(ctx, writer)
}
