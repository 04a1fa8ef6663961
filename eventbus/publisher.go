// Package eventbus carries durable events to consumers over NATS.
//
// Publisher puts each event on <prefix>.events.<aggregateType>.<name_version>
// with the aggregate id, sequence and event id in headers (and the event id
// as Nats-Msg-Id, so a JetStream stream over those subjects drops
// re-publications). The body is the event as JSON (model.Event).
//
// The executor calls Publish after the events are durable, from the
// aggregate's single worker, so events of one aggregate leave in sequence
// order on one connection, which NATS preserves.
//
// With a StreamConfig (node.Config.Stream, cmd/node --stream) the events
// are also kept in a JetStream stream over <prefix>.events.>, created or
// updated by EnsureStream; an event published twice within the stream's
// Duplicates window is stored once, so consumers can replay history from
// the bus.
//
// Delivery today is best effort after persistence: if NATS is down longer
// than the client's reconnect buffer covers, or the node dies between append
// and publish, events are in the log but not on the bus. Catch-up from the
// log (a publication position per partition) closes that gap and is the
// subject of the event-delivery work; Publisher counts failures so the gap
// is visible meanwhile.
package eventbus

import (
	"encoding/json"
	"log/slog"
	"strconv"
	"sync/atomic"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/model"
)

// Publisher publishes events on a NATS connection it does not own.
type Publisher struct {
	nc        *nats.Conn
	prefix    string
	log       *slog.Logger
	published atomic.Int64
	failed    atomic.Int64
}

var _ executor.Publisher = (*Publisher)(nil)

// NewPublisher returns a publisher on nc under the subject prefix.
func NewPublisher(nc *nats.Conn, prefix string, log *slog.Logger) *Publisher {
	if log == nil {
		log = slog.Default()
	}
	return &Publisher{nc: nc, prefix: prefix, log: log}
}

// Message builds the NATS message for one event.
func Message(prefix string, e *model.Event) (*nats.Msg, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(api.EventSubject(prefix, e.AggregateType, e.VersionedName()))
	m.Header.Set(api.HeaderType, e.AggregateType)
	m.Header.Set(api.HeaderAggregateID, e.AggregateID)
	m.Header.Set(api.HeaderSequence, strconv.FormatUint(e.Sequence, 10))
	m.Header.Set(api.HeaderEventID, e.EventID)
	m.Header.Set(api.HeaderMsgID, e.EventID)
	m.Data = body
	return m, nil
}

// Publish implements executor.Publisher.
func (p *Publisher) Publish(events []model.Event) {
	for i := range events {
		e := &events[i]
		m, err := Message(p.prefix, e)
		if err == nil {
			err = p.nc.PublishMsg(m)
		}
		if err != nil {
			p.failed.Add(1)
			p.log.Error("event not published", "aggregate", e.Ref().String(), "sequence", e.Sequence, "eventId", e.EventID, "err", err)
			continue
		}
		p.published.Add(1)
	}
}

// Counts returns how many events were published and how many failed.
func (p *Publisher) Counts() (published, failed int64) {
	return p.published.Load(), p.failed.Load()
}
