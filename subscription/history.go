package subscription

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/model"
)

// readHistory asks the nodes for the events from..to of aggregate id (one
// page: the reply may stop short, with Next set).
func (s *Subscription) readHistory(id string, from, to uint64) (api.HistoryReply, error) {
	var r api.HistoryReply
	body, err := json.Marshal(api.HistoryRequest{AggregateID: id, From: from, To: to, Limit: api.MaxHistoryPage})
	if err != nil {
		return r, err
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.cfg.HistoryTimeout)
	defer cancel()
	m, err := s.cfg.Conn.RequestWithContext(ctx, api.HistorySubject(s.cfg.Prefix, s.cfg.AggregateType), body)
	if err != nil {
		return r, fmt.Errorf("history request: %w", err)
	}
	if err := json.Unmarshal(m.Data, &r); err != nil {
		return r, fmt.Errorf("history reply is not JSON: %w", err)
	}
	if !r.OK {
		if r.Error != nil {
			return r, fmt.Errorf("history reply: %w", r.Error)
		}
		return r, errors.New("history reply: not ok, and no error")
	}
	return r, nil
}

// fillGap hands the events from..to of aggregate id, read from the
// history API, to the handler in order (those the Events filter leaves
// out only move the aggregate on). A failed read is retried after
// Config.Backoff until Config.GapTimeout has passed since the gap was
// found; then what is still missing is skipped (logged, counted) and the
// caller goes on with the event after the gap. It returns false when the
// subscription was stopped first.
func (s *Subscription) fillGap(id string, from, to uint64, keepalive func()) bool {
	started := s.cfg.Clock.Now()
	ref := model.Ref{Type: s.cfg.AggregateType, ID: id}
	s.log.Debug("gap: reading the missing events from history", "aggregate", ref.String(), "from", from, "to", to)
	next := from
	var lastErr error
	for try := 1; next <= to; {
		r, err := s.readHistory(id, next, to)
		if err == nil {
			progressed := false
			for i := range r.Events {
				e := &r.Events[i]
				if e.AggregateType != s.cfg.AggregateType || e.AggregateID != id || e.Sequence < next {
					continue // not asked for
				}
				if e.Sequence > to {
					break
				}
				if e.Sequence != next {
					err = fmt.Errorf("history jumps from sequence %d to %d", next, e.Sequence)
					break
				}
				s.c.gapEvents.Add(1)
				if s.wanted == nil || s.wanted[e.VersionedName().String()] {
					d := &delivery{event: Event{Event: *e, Source: FromHistory}, subject: api.EventSubject(s.cfg.Prefix, e.AggregateType, e.VersionedName(), e.AggregateID)}
					d.msgID = s.cfg.Name + ":history:" + e.EventID
					if s.order != nil {
						if !s.hold(d, nil, false) {
							return false
						}
					} else if !s.handle(d, keepalive) {
						return false
					}
				}
				s.markDone(id, e.Sequence)
				next, progressed = e.Sequence+1, true
			}
			switch {
			case err != nil:
			case next > to:
				continue // filled
			case !progressed:
				err = fmt.Errorf("history has no events from sequence %d (up to %d)", next, to)
			case r.Next != 0:
				try = 1
				continue // the next page
			default:
				err = fmt.Errorf("history ends before sequence %d (up to %d)", next, to)
			}
		}
		lastErr = err
		if next := s.waitToRetry(started, try, keepalive); next == retryStopped {
			return false
		} else if next == retryGiveUp {
			break
		}
		try++
	}
	if next <= to {
		s.c.gapsSkipped.Add(1)
		s.log.Warn("gap skipped: events missing from the stream could not be read from history",
			"aggregate", ref.String(), "missing", fmt.Sprintf("%d..%d", next, to), "after", s.cfg.Clock.Now().Sub(started).Round(time.Millisecond), "err", lastErr)
		return true
	}
	s.c.gapsFilled.Add(1)
	s.log.Debug("gap filled from history", "aggregate", ref.String(), "from", from, "to", to)
	return true
}

// retryStep is what waitToRetry decided.
type retryStep uint8

const (
	retryNow     retryStep = iota // the wait is over: try again
	retryGiveUp                   // the next try would end past GapTimeout
	retryStopped                  // the subscription was stopped first
)

// waitToRetry waits Config.Backoff before try+1 of a read (history, a
// resume lookup) that may be retried until Config.GapTimeout after
// started, keeping the message in hand alive.
func (s *Subscription) waitToRetry(started time.Time, try int, keepalive func()) retryStep {
	if s.ctx.Err() != nil {
		return retryStopped
	}
	wait := s.cfg.Backoff.delay(try)
	if s.cfg.Clock.Now().Sub(started)+wait > s.cfg.GapTimeout {
		return retryGiveUp
	}
	keepalive()
	if !s.wait(wait) {
		return retryStopped
	}
	return retryNow
}
