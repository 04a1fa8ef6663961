package subscription

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/model"
)

// A resumed consumer starts after its ack floor with an empty tracker.
// Taking an aggregate's first event from then on as it comes is right as
// long as the stream holds each aggregate's events in sequence order, and
// it does not: an event published again from the outbox (its writer died
// before publishing it) lands after later events of its aggregate. Such a
// copy of event k, first after a restart, would anchor the aggregate at k
// although k+1.. were handled before the restart (each later one was then
// filled from history a second time); a later event j first after the
// restart, while k..j-1 come only after it, would anchor at j and drop
// k..j-1 as duplicates although they were never handled.
//
// So before it takes the first event of an aggregate it has not seen, a
// resumed subscription asks the stream where that aggregate stood: the
// highest sequence among the aggregate's messages on the consumer's
// subjects at or below the ack floor it resumed from (those were all
// handled, filled past or dead-lettered before). The event subject ends
// in the aggregate's token (api.EventSubject), so this is one JetStream
// direct get of the last message per subject up to a stream sequence,
// which the server answers from its subject index without reading the
// stream. Nothing there (a new aggregate, or one whose messages the
// stream's limits removed): the first event is taken as it comes.

// directGetPrefix is JetStream's direct get API; the stream allows it
// (eventbus.EnsureStream sets AllowDirect).
const directGetPrefix = "$JS.API.DIRECT.GET."

// The headers of a status reply (the client library's, not exported).
const (
	statusHeader      = "Status"
	descriptionHeader = "Description"
)

// errNoDirectGet: nothing answers the stream's direct get (a stream made
// without AllowDirect, by an older node). Not worth a retry.
var errNoDirectGet = errors.New("the events stream does not answer direct gets (AllowDirect is off)")

// resume anchors aggregate id at its last sequence at or below the
// resume floor (see above), retrying a failed lookup after Config.Backoff
// until Config.GapTimeout; then, or when the stream cannot be asked, it
// leaves the aggregate to be taken as it comes, with a warning. It
// returns false when the subscription was stopped first.
func (s *Subscription) resume(id string, keepalive func()) bool {
	started := s.cfg.Clock.Now()
	for try := 1; ; try++ {
		seq, err := s.lastBefore(id, s.resumeFloor)
		if err == nil {
			s.c.resumeLookups.Add(1)
			if seq > 0 {
				s.markDone(id, seq)
			}
			return true
		}
		next := retryGiveUp // a stream without direct gets: not worth a retry
		switch {
		case !errors.Is(err, errNoDirectGet):
			next = s.waitToRetry(started, try, keepalive)
		case s.ctx.Err() != nil:
			next = retryStopped
		}
		switch next {
		case retryStopped:
			return false
		case retryGiveUp:
			s.c.resumeLookupsFailed.Add(1)
			s.log.Warn("cannot tell where an aggregate stood when the subscription resumed; its first event is taken as it comes, and may repeat events handled before or pass over some not handled yet",
				"aggregate", model.Ref{Type: s.cfg.AggregateType, ID: id}.String(), "ackFloor", s.resumeFloor, "err", err)
			if errors.Is(err, errNoDirectGet) {
				s.resumeFloor = 0 // no lookups from now on
			}
			return true
		}
	}
}

// lastBefore is the highest event sequence of aggregate id among the
// last messages of its subjects on the consumer's filter at or below
// stream sequence floor; 0 when there are none.
func (s *Subscription) lastBefore(id string, floor uint64) (uint64, error) {
	req, err := json.Marshal(struct {
		MultiLast []string `json:"multi_last"`
		UpToSeq   uint64   `json:"up_to_seq"`
	}{s.cfg.aggregateSubjects(id), floor})
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.HistoryTimeout)
	defer cancel()
	if s.lookups == nil {
		// One subscription for every lookup, each with its own reply
		// subject under it: a subscription per lookup costs more than
		// the lookup.
		s.lookupInbox = s.cfg.Conn.NewRespInbox()
		if s.lookups, err = s.cfg.Conn.SubscribeSync(s.lookupInbox + ".*"); err != nil {
			s.lookups = nil
			return 0, err
		}
	}
	s.lookupSeq++
	reply := s.lookupInbox + "." + strconv.FormatUint(s.lookupSeq, 10)
	if err := s.cfg.Conn.PublishRequest(directGetPrefix+s.cfg.Stream, reply, req); err != nil {
		return 0, err
	}
	var last uint64
	for {
		m, err := s.lookups.NextMsgWithContext(ctx)
		switch {
		case err == nil && m.Subject != reply:
			continue // the rest of an earlier lookup's answer
		case errors.Is(err, nats.ErrNoResponders):
			return 0, errNoDirectGet
		case err != nil:
			return 0, fmt.Errorf("direct get: %w", err)
		}
		switch status := m.Header.Get(statusHeader); status {
		case "":
		case "204": // end of the batch
			return last, nil
		case "404": // no message
			return 0, nil
		default:
			return 0, fmt.Errorf("direct get: status %s %s", status, m.Header.Get(descriptionHeader))
		}
		if m.Header.Get(api.HeaderAggregateID) != id {
			continue // another aggregate with the same token
		}
		seq, err := strconv.ParseUint(m.Header.Get(api.HeaderSequence), 10, 64)
		if err != nil {
			e, derr := s.decode(m.Data)
			if derr != nil || e.AggregateID != id {
				continue // not an event of the type: it was dead-lettered, not handled
			}
			seq = e.Sequence
		}
		last = max(last, seq)
	}
}
