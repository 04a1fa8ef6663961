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

// onCommand takes a command request from the queue group. It runs on the
// subscription's goroutine and never blocks on the command: the reply is
// sent from the executor's callback.
func (n *Node) onCommand(m *nats.Msg) {
	n.handleCommand(m, strings.TrimPrefix(m.Subject, n.cmdSubjectPrefix), false)
}

// onDirectCommand takes a command another node forwarded to this one.
func (n *Node) onDirectCommand(m *nats.Msg) {
	n.handleCommand(m, strings.TrimPrefix(m.Subject, n.directBase+".cmd."), true)
}

// handleCommand reads a command request once and dispatches it: run here
// (runCommand), passed to its owner, delayed or answered. A request whose
// aggregate id or timeout cannot be read is not routed: this node answers
// it.
func (n *Node) handleCommand(m *nats.Msg, aggType string, direct bool) {
	arrived := time.Now()
	c := n.readCommandRequest(m, n.route.Load() != nil)
	rq := &request{m: m, kind: "cmd", aggType: aggType, id: c.id, direct: direct, hops: hopsOf(m),
		deadline: arrived.Add(c.timeout)}
	rq.fail = func(e *api.Error) {
		n.respond(m, &api.Reply{AggregateType: aggType, AggregateID: c.id, CommandID: c.commandID, Error: e})
	}
	rq.run = func() { n.runCommand(rq, c) }
	if !c.routable {
		rq.run()
		return
	}
	n.dispatch(rq)
}

// runCommand checks a command request read by readCommandRequest, on the
// node that runs it, and hands it to the executor.
func (n *Node) runCommand(rq *request, c *commandRequest) {
	m := rq.m
	req, apiErr := executor.Request{Ref: model.Ref{Type: rq.aggType}}, c.readErr
	if apiErr == nil {
		req, _, apiErr = checkCommand(rq.aggType, c.env, c.headerMode, m.Data, n.cfg.RequestTimeout)
	}
	if apiErr != nil {
		n.exec.CountInvalid()
		n.respond(m, &api.Reply{AggregateType: rq.aggType, AggregateID: req.Ref.ID, CommandID: req.CommandID, Error: apiErr})
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), rq.deadline)
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

// isHeaderMode reports whether a command request uses the header form: as
// soon as any of the identifying headers is present, so that a missing one
// is reported as such rather than the body misread as an envelope. (NATS
// header names are case-sensitive.)
func isHeaderMode(h nats.Header) bool {
	return h != nil && (h.Get(api.HeaderCommand) != "" || h.Get(api.HeaderAggregateID) != "" || h.Get(api.HeaderCommandID) != "")
}

// decodeCommand is the whole parser of a command request: h and data are
// the message's headers and body, maxPayload the size limit, and
// defaultTimeout the time a request that names none gets. A refused request
// comes back with a CodeInvalidRequest error (CodeUnavailable only when no
// command id could be generated); the request returned with it holds the
// ids that were readable and valid, for the reply.
//
// It is readCommand and then checkCommand; a node reads every request, but
// checks only those it runs (see commandRequest).
func decodeCommand(aggType string, h nats.Header, data []byte, maxPayload int, defaultTimeout time.Duration) (executor.Request, time.Duration, *api.Error) {
	env, headerMode, apiErr := readCommand(h, data, maxPayload)
	if apiErr != nil {
		return executor.Request{Ref: model.Ref{Type: aggType}}, 0, apiErr
	}
	return checkCommand(aggType, env, headerMode, data, defaultTimeout)
}

// readCommand is the first half of decodeCommand: it takes a request's
// fields from its headers or decodes its envelope (strictly: an unknown
// field or a wrong type is refused), and checks nothing else. A refused
// request comes back with a CodeInvalidRequest error.
func readCommand(h nats.Header, data []byte, maxPayload int) (env api.Command, headerMode bool, apiErr *api.Error) {
	headerMode = isHeaderMode(h)
	if len(data) > maxPayload {
		return env, headerMode, invalid("request is %d bytes, limit %d", len(data), maxPayload)
	}
	if headerMode {
		env = api.Command{
			AggregateID: h.Get(api.HeaderAggregateID),
			Command:     h.Get(api.HeaderCommand),
			CommandID:   h.Get(api.HeaderCommandID),
			Timestamp:   h.Get(api.HeaderTimestamp),
			StreamID:    h.Get(api.HeaderStream),
			Args:        data,
		}
		if t := h.Get(api.HeaderTimeout); t != "" {
			ms, err := strconv.ParseInt(t, 10, 64)
			if err != nil {
				return api.Command{}, true, invalid("header %s: %q is not a whole number of milliseconds (0 to %d)", api.HeaderTimeout, t, api.MaxTimeoutMs)
			}
			env.TimeoutMs = ms
		}
		return env, true, nil
	}
	if len(data) == 0 {
		return env, false, invalid("empty request: send a JSON envelope {\"aggregateId\",\"command\",\"args\"} or the %s header", api.HeaderCommand)
	}
	if err := (model.JSON{}).Unmarshal(data, &env); err != nil {
		return api.Command{}, false, invalid("request envelope: %v", err)
	}
	return env, false, nil
}

// checkCommand is the second half of decodeCommand: it checks the fields
// readCommand read from a request whose body is data, everything that can
// be checked without the aggregate's state, and gives the request a
// command id if it has none.
func checkCommand(aggType string, env api.Command, headerMode bool, data []byte, defaultTimeout time.Duration) (executor.Request, time.Duration, *api.Error) {
	req := executor.Request{Ref: model.Ref{Type: aggType}}
	if !headerMode {
		// After the decode, which names unknown fields and wrong types:
		// what encoding/json lets through (a key twice, text that is not
		// UTF-8) anywhere in the envelope, arguments included.
		if err := model.CheckJSON(data); err != nil {
			return req, 0, invalid("request envelope: %v", err)
		}
	}
	// The ids go into the reply only once they are known to be valid.
	if err := checkIDs(env.AggregateID, env.Command, env.CommandID, env.StreamID, headerMode); err != nil {
		if model.CheckIdentifier("", env.AggregateID, model.MaxIDLen) == nil {
			req.Ref.ID = env.AggregateID
		}
		if model.CheckIdentifier("", env.CommandID, model.MaxCommandIDLen) == nil {
			req.CommandID = env.CommandID
		}
		return req, 0, err
	}
	req.Ref.ID = env.AggregateID
	req.Command = env.Command
	req.CommandID = env.CommandID
	req.Args = env.Args
	req.StreamID = env.StreamID
	timeout, apiErr := requestTimeout(env.TimeoutMs, defaultTimeout, headerMode)
	if apiErr != nil {
		return req, 0, apiErr
	}
	if len(req.Args) > 0 {
		trimmed := strings.TrimSpace(string(req.Args))
		if trimmed == "" || trimmed == "null" {
			req.Args = nil
		} else if trimmed[0] != '{' {
			return req, 0, invalid("args must be a JSON object")
		} else if headerMode {
			// The envelope's arguments were checked with the envelope.
			if err := model.CheckJSON(req.Args); err != nil {
				return req, 0, invalid("args: %v", err)
			}
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
	return req, timeout, nil
}

// checkIDs applies the identifier rules (model.CheckIdentifier) to the ids
// of a command request; aggregate id and command are required.
func checkIDs(aggregateID, command, commandID, streamID string, headerMode bool) *api.Error {
	where := func(field, header string) string {
		if headerMode {
			return "header " + header
		}
		return "envelope field \"" + field + "\""
	}
	switch {
	case aggregateID == "":
		return invalid("aggregate id is missing (the envelope's \"aggregateId\" or the %s header)", api.HeaderAggregateID)
	case command == "":
		return invalid("command name is missing (the envelope's \"command\" or the %s header)", api.HeaderCommand)
	}
	for _, id := range []struct {
		what, value   string
		field, header string
		limit         int
	}{
		{"aggregate id", aggregateID, "aggregateId", api.HeaderAggregateID, model.MaxIDLen},
		{"command name", command, "command", api.HeaderCommand, model.MaxNameLen},
		{"command id", commandID, "commandId", api.HeaderCommandID, model.MaxCommandIDLen},
		{"stream id", streamID, "streamId", api.HeaderStream, model.MaxStreamIDLen},
	} {
		if err := model.CheckIdentifier(id.what, id.value, id.limit); err != nil {
			return invalid("%s: %v", where(id.field, id.header), err)
		}
	}
	return nil
}

// requestTimeout turns a request's timeoutMs (or header) into the time it
// may wait: 0 means def; negative values and values above api.MaxTimeoutMs
// (which would overflow a time.Duration further up) are refused.
func requestTimeout(ms int64, def time.Duration, headerMode bool) (time.Duration, *api.Error) {
	name := "timeoutMs"
	if headerMode {
		name = "header " + api.HeaderTimeout
	}
	switch {
	case ms < 0:
		return 0, invalid("%s: timeout %d ms is negative", name, ms)
	case ms > api.MaxTimeoutMs:
		return 0, invalid("%s: timeout %d ms is out of range (at most %d, one hour)", name, ms, api.MaxTimeoutMs)
	case ms == 0:
		return def, nil
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// commandRequest is a command request as read once, on arrival, by
// readCommandRequest: the fields for the node that runs it and what
// routing needs.
//
// Every node reads a request (readCommand: the headers, or a strict decode
// of the envelope) and routes it on what it read; only the node that runs
// it checks it (checkCommand: identifiers, arguments, timestamp, a fresh
// command id). A node that passes a request on thus stays cheap, and
// forwards the message as it came, and the owner reads it once — not once
// to route and again to run. When the strict decode refuses an envelope
// (an unknown field, a wrong type, a key in the wrong case), a lenient
// decode of the routing fields alone (peekEnvelope) still places it, so
// that the owner answers the refusal as it answers every other request of
// its aggregates: that second read is for bad input only. (An id read so
// from an envelope the owner refuses, say one with a key twice, only
// decides which node answers.) A request without a readable aggregate id
// or timeout is not routed: the node it reached answers.
type commandRequest struct {
	env        api.Command // the fields as read, unchecked
	headerMode bool
	// readErr is why readCommand refused the request: the answer of the
	// node that runs it.
	readErr *api.Error
	// routable is true when the aggregate id and the timeout could be
	// read; id and commandID (unchecked: for the answers routing gives)
	// are then set. Otherwise this node answers: the checks refuse it.
	routable      bool
	id, commandID string
	// timeout is the time the client allows, shortened to the budget a
	// forwarding node gave.
	timeout time.Duration
}

// readCommandRequest reads a command request for routing and running it;
// clustered is false when the node runs alone and needs nothing for
// routing.
func (n *Node) readCommandRequest(m *nats.Msg, clustered bool) *commandRequest {
	c := &commandRequest{}
	c.env, c.headerMode, c.readErr = readCommand(m.Header, m.Data, n.cfg.MaxPayload)
	id, commandID, ms, read := c.env.AggregateID, c.env.CommandID, c.env.TimeoutMs, c.readErr == nil
	if !read && clustered && !c.headerMode && len(m.Data) <= n.cfg.MaxPayload {
		// The header form fails only on what routing needs (the
		// timeout); an oversized request is answered at once.
		id, commandID, ms, read = peekEnvelope(m.Data)
	}
	timeout, apiErr := requestTimeout(ms, n.cfg.RequestTimeout, false)
	if apiErr != nil {
		timeout = n.cfg.RequestTimeout // the checks refuse it
	}
	if budget, ok := budgetOf(m); ok {
		timeout = min(timeout, budget)
	}
	c.timeout = timeout
	if read && apiErr == nil && id != "" && model.CheckIdentifier("", id, model.MaxIDLen) == nil {
		c.routable, c.id, c.commandID = true, id, commandID
	}
	return c
}

// peekEnvelope reads the fields routing needs from an envelope, leniently:
// other fields and their types do not matter. ok is false when even that
// fails. Where the strict decode succeeds, the two read the same values.
func peekEnvelope(data []byte) (id, commandID string, timeoutMs int64, ok bool) {
	var env struct {
		AggregateID string `json:"aggregateId"`
		CommandID   string `json:"commandId"`
		TimeoutMs   int64  `json:"timeoutMs"`
	}
	if json.Unmarshal(data, &env) != nil {
		return "", "", 0, false
	}
	return env.AggregateID, env.CommandID, env.TimeoutMs, true
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
	case errors.Is(err, model.ErrUnknownEvent):
		return &api.Error{Code: api.CodeUnknownEvent, Message: err.Error()}
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
	n.handleQuery(m, strings.TrimPrefix(m.Subject, n.directBase+".query."), true)
}

// handleQuery decodes a query once and dispatches it. A query is small and
// decoded whole where it arrives: a refused one is answered there.
func (n *Node) handleQuery(m *nats.Msg, aggType string, direct bool) {
	arrived := time.Now()
	fail := func(e *api.Error) { n.respond(m, &api.QueryReply{AggregateType: aggType, Error: e}) }
	eq, apiErr := decodeQuery(aggType, m.Data, n.cfg.MaxPayload)
	if apiErr != nil {
		fail(apiErr)
		return
	}
	timeout := n.cfg.RequestTimeout
	if budget, ok := budgetOf(m); ok {
		timeout = min(timeout, budget)
	}
	rq := &request{m: m, kind: "query", aggType: aggType, id: eq.Ref.ID, direct: direct, hops: hopsOf(m),
		deadline: arrived.Add(timeout), fail: fail}
	rq.run = func() { n.runQuery(rq, eq) }
	n.dispatch(rq)
}

// runQuery hands a decoded query to the executor.
func (n *Node) runQuery(rq *request, eq executor.Query) {
	ctx, cancel := context.WithDeadline(context.Background(), rq.deadline)
	n.exec.SubmitQuery(ctx, eq, func(res executor.QueryResult, err error) {
		cancel()
		if err != nil {
			rq.fail(toAPIError(err))
			return
		}
		reply := &api.QueryReply{OK: true, AggregateType: rq.aggType, AggregateID: eq.Ref.ID,
			View: res.View, Exists: res.Exists, Sequence: res.Sequence, State: res.Value,
			Prefix: &api.QueryPrefix{Events: res.Prefix.Events, Waiting: res.Prefix.Waiting}}
		if res.Prefix.Events > 0 {
			last := res.Prefix.Last.Timestamp.UTC()
			reply.Prefix.LastTimestamp = &last
		}
		n.respond(rq.m, reply)
	})
}

// decodeQuery is the whole parser of a state query's body. A refused query
// comes back with a CodeInvalidRequest error.
func decodeQuery(aggType string, data []byte, maxPayload int) (executor.Query, *api.Error) {
	eq := executor.Query{Ref: model.Ref{Type: aggType}}
	if len(data) > maxPayload {
		return eq, invalid("request is %d bytes, limit %d", len(data), maxPayload)
	}
	var q api.Query
	if err := (model.JSON{}).Unmarshal(data, &q); err != nil {
		return eq, invalid("query: %v", err)
	}
	if err := model.CheckJSON(data); err != nil {
		return eq, invalid("query: %v", err)
	}
	if q.AggregateID == "" {
		return eq, invalid("aggregate id is missing")
	}
	if err := model.CheckIdentifier("aggregate id", q.AggregateID, model.MaxIDLen); err != nil {
		return eq, invalid("query: %v", err)
	}
	if err := model.CheckIdentifier("view name", q.View, model.MaxNameLen); err != nil {
		return eq, invalid("query: %v", err)
	}
	eq.Ref.ID, eq.View = q.AggregateID, q.View
	if q.AsOf != "" {
		ts, err := parseTimestamp(q.AsOf)
		if err != nil {
			return eq, invalid("asOf: %v", err)
		}
		eq.AsOf = ts
	}
	return eq, nil
}

// decodeHistory is the whole parser of a history request's body. A refused
// request comes back with a CodeInvalidRequest error.
func decodeHistory(data []byte, maxPayload int) (api.HistoryRequest, *api.Error) {
	var q api.HistoryRequest
	if len(data) > maxPayload {
		return q, invalid("request is %d bytes, limit %d", len(data), maxPayload)
	}
	if err := (model.JSON{}).Unmarshal(data, &q); err != nil {
		return api.HistoryRequest{}, invalid("history: %v", err)
	}
	if err := model.CheckJSON(data); err != nil {
		return api.HistoryRequest{}, invalid("history: %v", err)
	}
	switch {
	case q.AggregateID == "":
		return q, invalid("aggregate id is missing")
	case q.Limit < 0:
		return q, invalid("limit %d is negative", q.Limit)
	case q.To != 0 && q.To < q.From:
		return q, invalid("to %d is before from %d", q.To, q.From)
	}
	if err := model.CheckIdentifier("aggregate id", q.AggregateID, model.MaxIDLen); err != nil {
		return api.HistoryRequest{}, invalid("history: %v", err)
	}
	return q, nil
}

// onInfo answers an admin info request.
func (n *Node) onInfo(m *nats.Msg) {
	ready, store := n.Ready()
	n.respond(m, &api.Info{NodeID: n.cfg.NodeID, Version: Version, Prefix: n.cfg.Prefix,
		AggregateTypes: n.reg.Names(), Started: n.started, Ready: ready, Store: store, Stats: api.ExecutorStats(n.exec.Stats()),
		Publisher: n.publisherStats()})
}
