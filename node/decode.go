package node

import (
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

// This file holds the parsers of what arrives from outside the process:
// command requests (envelope and header form), queries, history requests
// and facts. Each is a pure function of the message's bytes (and limits)
// to a typed request or a typed error, never touching the node, so that
// the fuzz targets (protocol_fuzz_test.go, facts_fuzz_test.go) drive them
// directly.

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

// decodeFacts is the whole parser of a facts request: one Fact, or
// {"facts":[…]}. A request it refuses as a whole comes back as apiErr
// (nothing is stored); a fact it refuses gets its error in results and
// the others go on.
func decodeFacts(data []byte, maxPayload int, defaultTimeout time.Duration) (wire []api.Fact, parsed []executor.Fact, results []api.FactResult, timeout time.Duration, apiErr *api.Error) {
	if len(data) > maxPayload {
		return nil, nil, nil, 0, invalid("request is %d bytes, limit %d", len(data), maxPayload)
	}
	if len(data) == 0 {
		return nil, nil, nil, 0, invalid(`empty request: send a fact {"aggregateId","event","timestamp","payload"} or {"facts":[…]}`)
	}
	var body struct {
		Facts *[]api.Fact `json:"facts"`
		api.Fact
		TimeoutMs int64 `json:"timeoutMs"`
	}
	if err := (model.JSON{}).Unmarshal(data, &body); err != nil {
		return nil, nil, nil, 0, invalid("facts: %v", err)
	}
	if err := model.CheckJSON(data); err != nil {
		return nil, nil, nil, 0, invalid("facts: %v", err)
	}
	switch {
	case body.Facts == nil:
		wire = []api.Fact{body.Fact}
	case body.AggregateID != "" || body.Event != "" || body.Timestamp != "" || body.StreamID != "" || body.Payload != nil:
		return nil, nil, nil, 0, invalid(`facts: send either one fact or {"facts":[…]}, not both`)
	default:
		wire = *body.Facts
	}
	switch {
	case len(wire) == 0:
		return nil, nil, nil, 0, invalid("facts: the list is empty")
	case len(wire) > api.MaxFactsPerRequest:
		return nil, nil, nil, 0, invalid("facts: %d facts, limit %d per request", len(wire), api.MaxFactsPerRequest)
	}
	timeout, apiErr = requestTimeout(body.TimeoutMs, defaultTimeout, false)
	if apiErr != nil {
		return nil, nil, nil, 0, apiErr
	}
	parsed = make([]executor.Fact, len(wire))
	results = make([]api.FactResult, len(wire))
	for i := range wire {
		// Every result names its fact from the start, so that each way of
		// answering it later (refused here, no owner, an executor error, a
		// timeout) keeps the name.
		results[i] = api.FactResult{AggregateID: wire[i].AggregateID, Event: wire[i].Event}
		f, err := parseFact(&wire[i])
		if err != nil {
			results[i].Error = err
			continue
		}
		parsed[i] = f
	}
	return wire, parsed, results, timeout, nil
}

// parseFact checks one fact's fields.
func parseFact(f *api.Fact) (executor.Fact, *api.Error) {
	var out executor.Fact
	if f.AggregateID == "" {
		return out, invalid("aggregate id is missing")
	}
	if err := model.CheckIdentifier("aggregate id", f.AggregateID, model.MaxIDLen); err != nil {
		return out, invalid("%v", err)
	}
	if f.Event == "" {
		return out, invalid(`event is missing (a versioned name such as "switchedOn_0")`)
	}
	if err := model.CheckIdentifier("event", f.Event, model.MaxNameLen); err != nil {
		return out, invalid("%v", err)
	}
	name, err := model.ParseVersionedName(f.Event)
	if err != nil {
		return out, invalid("%v", err)
	}
	if f.Timestamp == "" {
		return out, invalid("timestamp is missing: a fact's time is part of its identity (RFC 3339, e.g. 2026-11-22T18:03:00Z)")
	}
	ts, err := parseTimestamp(f.Timestamp)
	if err != nil {
		return out, invalid("%v", err)
	}
	if ts.IsZero() {
		// Go's zero instant means "no timestamp" further in.
		return out, invalid("timestamp %q is the zero instant; a fact needs the time it happened", f.Timestamp)
	}
	if err := model.CheckIdentifier("stream id", f.StreamID, model.MaxStreamIDLen); err != nil {
		return out, invalid("%v", err)
	}
	payload := []byte(f.Payload)
	if len(payload) == 0 || string(payload) == "null" {
		payload = []byte("{}")
	}
	return executor.Fact{Name: name, Timestamp: ts, StreamID: f.StreamID, Payload: payload}, nil
}
