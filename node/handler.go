package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/model"
)

// onCommand decodes a command request and hands it to the executor. It runs
// on the subscription's goroutine and never blocks on the command: the reply
// is sent from the executor's callback.
func (n *Node) onCommand(m *nats.Msg) {
	n.handleCommand(m, strings.TrimPrefix(m.Subject, n.cmdSubjectPrefix), false)
}

// onDirectCommand takes a command another node forwarded to this one.
func (n *Node) onDirectCommand(m *nats.Msg) {
	n.handleCommand(m, strings.TrimPrefix(m.Subject, n.directBase+".cmd."), false)
}

func (n *Node) handleCommand(m *nats.Msg, aggType string, waited bool) {
	arrived := time.Now()
	routed := n.route.Load() == nil // alone: everything is ours
	if !routed {
		// In a cluster, most requests belong to another node: read just
		// enough to route them and leave the full decode to the owner.
		if id, cid, timeout, ok := n.peekCommand(m); ok {
			routed = true
			fail := func(e *api.Error) {
				n.respond(m, &api.Reply{AggregateType: aggType, AggregateID: id, CommandID: cid, Error: e})
			}
			if n.routeRequest(m, "cmd", aggType, id, arrived.Add(timeout), waited, fail) {
				return
			}
		}
	}
	req, timeout, apiErr := n.decodeCommand(aggType, m)
	if apiErr != nil {
		n.exec.CountInvalid()
		n.respond(m, &api.Reply{AggregateType: aggType, AggregateID: req.Ref.ID, CommandID: req.CommandID, Error: apiErr})
		return
	}
	if budget, ok := budgetOf(m); ok {
		timeout = min(timeout, budget)
	}
	fail := func(e *api.Error) {
		n.respond(m, &api.Reply{AggregateType: aggType, AggregateID: req.Ref.ID, CommandID: req.CommandID, Error: e})
	}
	if !routed && n.routeRequest(m, "cmd", aggType, req.Ref.ID, arrived.Add(timeout), waited, fail) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	n.exec.Submit(ctx, req, func(res executor.Result, err error) {
		cancel()
		reply := &api.Reply{AggregateType: req.Ref.Type, AggregateID: req.Ref.ID, CommandID: req.CommandID}
		if err != nil {
			reply.Error = toAPIError(err)
			reply.Duplicate = errors.Is(err, executor.ErrRecalled)
		} else {
			reply.OK = true
			reply.Sequence = res.Sequence
			reply.Events = res.Events
			reply.Duplicate = res.Duplicate
		}
		n.respond(m, reply)
	})
}

func invalid(format string, args ...any) *api.Error {
	return &api.Error{Code: api.CodeInvalidRequest, Message: fmt.Sprintf(format, args...)}
}

// decodeCommand reads a request in either form (headers + JSON args, or a
// JSON envelope) and checks everything that can be checked without the
// aggregate's state.
func (n *Node) decodeCommand(aggType string, m *nats.Msg) (executor.Request, time.Duration, *api.Error) {
	req := executor.Request{Ref: model.Ref{Type: aggType}}
	if len(m.Data) > n.cfg.MaxPayload {
		return req, 0, invalid("request is %d bytes, limit %d", len(m.Data), n.cfg.MaxPayload)
	}
	var env api.Command
	// Header mode as soon as any of the identifying headers is present, so a
	// missing one is reported as such rather than the body misread as an
	// envelope. (NATS header names are case-sensitive.)
	if h := m.Header; h != nil && (h.Get(api.HeaderCommand) != "" || h.Get(api.HeaderAggregateID) != "" || h.Get(api.HeaderCommandID) != "") {
		h := m.Header
		env = api.Command{
			AggregateID: h.Get(api.HeaderAggregateID),
			Command:     h.Get(api.HeaderCommand),
			CommandID:   h.Get(api.HeaderCommandID),
			Timestamp:   h.Get(api.HeaderTimestamp),
			StreamID:    h.Get(api.HeaderStream),
			Args:        m.Data,
		}
		if t := h.Get(api.HeaderTimeout); t != "" {
			ms, err := strconv.ParseInt(t, 10, 64)
			if err != nil {
				return req, 0, invalid("header %s: %q is not a whole number of milliseconds", api.HeaderTimeout, t)
			}
			env.TimeoutMs = ms
		}
	} else {
		if len(m.Data) == 0 {
			return req, 0, invalid("empty request: send a JSON envelope {\"aggregateId\",\"command\",\"args\"} or the %s header", api.HeaderCommand)
		}
		if err := (model.JSON{}).Unmarshal(m.Data, &env); err != nil {
			return req, 0, invalid("request envelope: %v", err)
		}
	}
	req.Ref.ID = env.AggregateID
	req.Command = env.Command
	req.CommandID = env.CommandID
	req.Args = env.Args
	req.StreamID = env.StreamID
	switch {
	case env.AggregateID == "":
		return req, 0, invalid("aggregate id is missing (the envelope's \"aggregateId\" or the %s header)", api.HeaderAggregateID)
	case env.Command == "":
		return req, 0, invalid("command name is missing (the envelope's \"command\" or the %s header)", api.HeaderCommand)
	case env.TimeoutMs < 0:
		return req, 0, invalid("timeout %d ms is negative", env.TimeoutMs)
	case len(env.StreamID) > model.MaxIDLen:
		return req, 0, invalid("stream id is %d bytes, limit %d", len(env.StreamID), model.MaxIDLen)
	}
	if len(req.Args) > 0 {
		trimmed := strings.TrimSpace(string(req.Args))
		if trimmed == "" || trimmed == "null" {
			req.Args = nil
		} else if trimmed[0] != '{' {
			return req, 0, invalid("args must be a JSON object")
		}
	}
	if env.Timestamp != "" {
		ts, err := parseTimestamp(env.Timestamp)
		if err != nil {
			return req, 0, invalid("%v", err)
		}
		req.Timestamp = ts
	}
	if req.CommandID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return req, 0, &api.Error{Code: api.CodeUnavailable, Message: "generating a command id: " + err.Error()}
		}
		req.CommandID = id.String()
		req.FreshID = true
	}
	timeout := n.cfg.RequestTimeout
	if env.TimeoutMs > 0 {
		timeout = time.Duration(env.TimeoutMs) * time.Millisecond
	}
	return req, timeout, nil
}

// peekCommand reads what routing needs from a command request — the
// aggregate id, the command id and the time the client allows — without
// decoding or checking the rest. ok is false when the request is not
// readable that way; the full decode then reports what is wrong.
func (n *Node) peekCommand(m *nats.Msg) (id, commandID string, timeout time.Duration, ok bool) {
	if len(m.Data) > n.cfg.MaxPayload {
		return "", "", 0, false // the full decode answers at once
	}
	timeout = n.cfg.RequestTimeout
	if h := m.Header; h != nil && (h.Get(api.HeaderCommand) != "" || h.Get(api.HeaderAggregateID) != "" || h.Get(api.HeaderCommandID) != "") {
		id, commandID = h.Get(api.HeaderAggregateID), h.Get(api.HeaderCommandID)
		if t := h.Get(api.HeaderTimeout); t != "" {
			ms, err := strconv.ParseInt(t, 10, 64)
			if err != nil || ms < 0 {
				return "", "", 0, false
			}
			if ms > 0 {
				timeout = time.Duration(ms) * time.Millisecond
			}
		}
	} else {
		var env struct {
			AggregateID string `json:"aggregateId"`
			CommandID   string `json:"commandId"`
			TimeoutMs   int64  `json:"timeoutMs"`
		}
		if json.Unmarshal(m.Data, &env) != nil || env.TimeoutMs < 0 {
			return "", "", 0, false
		}
		id, commandID = env.AggregateID, env.CommandID
		if env.TimeoutMs > 0 {
			timeout = time.Duration(env.TimeoutMs) * time.Millisecond
		}
	}
	if id == "" || len(id) > model.MaxIDLen {
		return "", "", 0, false
	}
	if budget, ok := budgetOf(m); ok {
		timeout = min(timeout, budget)
	}
	return id, commandID, timeout, true
}

// parseTimestamp accepts RFC 3339 with an optional fraction, years 1 to 9999.
func parseTimestamp(s string) (time.Time, error) {
	ts, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q is not RFC 3339 (e.g. 2026-11-22T06:30:00Z)", s)
	}
	if ts.Year() < 1 || ts.Year() > 9999 {
		return time.Time{}, fmt.Errorf("timestamp %q is out of range", s)
	}
	return ts, nil
}

// toAPIError maps executor and model errors onto the stable codes.
func toAPIError(err error) *api.Error {
	var rej *model.Rejection
	switch {
	case errors.As(err, &rej):
		return &api.Error{Code: api.CodeRejected, Reason: rej.Reason, Message: rej.Message}
	case errors.Is(err, executor.ErrUnknownType):
		return &api.Error{Code: api.CodeUnknownAggregateType, Message: err.Error()}
	case errors.Is(err, model.ErrUnknownCommand):
		return &api.Error{Code: api.CodeUnknownCommand, Message: err.Error()}
	case errors.Is(err, model.ErrInvalidArgs), errors.Is(err, executor.ErrInvalidRequest),
		errors.Is(err, executor.ErrCommandIDReused), errors.Is(err, executor.ErrUnknownView):
		return &api.Error{Code: api.CodeInvalidRequest, Message: err.Error()}
	case errors.Is(err, executor.ErrConflict):
		return &api.Error{Code: api.CodeConflict, Message: err.Error()}
	case errors.Is(err, executor.ErrTimeout):
		return &api.Error{Code: api.CodeTimeout, Message: err.Error()}
	default: // executor.ErrUnavailable, executor.ErrClosed, anything unforeseen
		return &api.Error{Code: api.CodeUnavailable, Message: err.Error()}
	}
}

// respond sends a reply if the request asked for one.
func (n *Node) respond(m *nats.Msg, v any) {
	if m.Reply == "" {
		return // a plain publish: the command ran, nobody listens
	}
	data, err := json.Marshal(v)
	if err != nil {
		n.log.Error("encoding reply", "err", err)
		data = []byte(`{"ok":false,"error":{"code":"unavailable","message":"reply could not be encoded"}}`)
	}
	if err := m.Respond(data); err != nil {
		n.log.Warn("sending reply", "subject", m.Subject, "err", err)
	}
}

// onQuery answers a state query through the aggregate's mailbox.
func (n *Node) onQuery(m *nats.Msg) {
	n.handleQuery(m, strings.TrimPrefix(m.Subject, n.querySubjectPrefix), false)
}

// onDirectQuery takes a query another node forwarded to this one.
func (n *Node) onDirectQuery(m *nats.Msg) {
	n.handleQuery(m, strings.TrimPrefix(m.Subject, n.directBase+".query."), false)
}

func (n *Node) handleQuery(m *nats.Msg, aggType string, waited bool) {
	arrived := time.Now()
	fail := func(e *api.Error) { n.respond(m, &api.QueryReply{AggregateType: aggType, Error: e}) }
	if len(m.Data) > n.cfg.MaxPayload {
		fail(invalid("request is %d bytes, limit %d", len(m.Data), n.cfg.MaxPayload))
		return
	}
	var q api.Query
	if err := (model.JSON{}).Unmarshal(m.Data, &q); err != nil {
		fail(invalid("query: %v", err))
		return
	}
	if q.AggregateID == "" {
		fail(invalid("aggregate id is missing"))
		return
	}
	eq := executor.Query{Ref: model.Ref{Type: aggType, ID: q.AggregateID}, View: q.View}
	if q.AsOf != "" {
		ts, err := parseTimestamp(q.AsOf)
		if err != nil {
			fail(invalid("asOf: %v", err))
			return
		}
		eq.AsOf = ts
	}
	timeout := n.cfg.RequestTimeout
	if budget, ok := budgetOf(m); ok {
		timeout = min(timeout, budget)
	}
	if n.routeRequest(m, "query", aggType, q.AggregateID, arrived.Add(timeout), waited, fail) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	n.exec.SubmitQuery(ctx, eq, func(res executor.QueryResult, err error) {
		cancel()
		if err != nil {
			fail(toAPIError(err))
			return
		}
		n.respond(m, &api.QueryReply{OK: true, AggregateType: aggType, AggregateID: q.AggregateID,
			View: res.View, Exists: res.Exists, Sequence: res.Sequence, State: res.Value})
	})
}

// onInfo answers an admin info request.
func (n *Node) onInfo(m *nats.Msg) {
	stats, err := json.Marshal(n.exec.Stats())
	if err != nil {
		n.log.Error("encoding stats", "err", err)
	}
	ready, store := n.Ready()
	n.respond(m, &api.Info{NodeID: n.cfg.NodeID, Version: Version, Prefix: n.cfg.Prefix,
		AggregateTypes: n.reg.Names(), Started: n.started, Ready: ready, Store: store, Stats: stats,
		Publisher: n.publisherStats()})
}
