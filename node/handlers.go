package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/model"
)

// This file holds the request handlers, one pair per kind of request
// (commands, queries, facts: from the queue group and from another node;
// history: any node answers, the log is shared). Each handler reads its
// request once (decode.go), routes it (route.go) and runs it here or
// passes it on; the reply goes straight to the client.

// handleCommand reads a command request once and dispatches it: run here
// (runCommand), passed to its owner, delayed or answered. direct: another
// node forwarded it to this one. It runs on the subscription's goroutine
// and never blocks on the command: the reply is sent from the executor's
// callback. A request whose
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

// handleQuery decodes a state query once and dispatches it to the
// aggregate's mailbox, here or at its owner. A query is small and
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

// handleHistory answers a history read from the event log. Any node
// answers: the log is shared. The request is parsed by decodeHistory; a
// successful reply always carries events (maybe none) and next (see
// api.HistoryReply).
func (n *Node) handleHistory(m *nats.Msg, aggType string) {
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

// handleFacts splits a facts request by aggregate, ingests the facts of
// the aggregates this node owns, passes the others to their owners (one
// request per owner), and answers fact by fact once every part is back.
// It never blocks the subscription: the gathering runs on its own
// goroutine, counted in n.delayed so that a drain waits for it.
func (n *Node) handleFacts(m *nats.Msg, aggType string) {
	arrived := time.Now()
	fail := func(e *api.Error) {
		n.exec.CountInvalid()
		n.respond(m, &api.FactsReply{AggregateType: aggType, Error: e})
	}
	if _, ok := n.reg.Lookup(aggType); !ok {
		fail(&api.Error{Code: api.CodeUnknownAggregateType, Message: fmt.Sprintf("no aggregate type %q (types: %v)", aggType, n.reg.Names())})
		return
	}
	wire, parsed, results, timeout, apiErr := decodeFacts(m.Data, n.cfg.MaxPayload, n.cfg.RequestTimeout)
	if apiErr != nil {
		fail(apiErr)
		return
	}
	if budget, ok := budgetOf(m); ok {
		timeout = min(timeout, budget)
	}
	deadline := arrived.Add(timeout)
	hops := hopsOf(m)

	// Facts of one aggregate keep their order; aggregates are answered in
	// any order.
	local := map[string][]int{}  // aggregate id → fact indices
	remote := map[string][]int{} // owner's subject base → fact indices
	var localOrder []string
	rt := n.route.Load()
	for i := range wire {
		if results[i].Error != nil {
			continue
		}
		id := wire[i].AggregateID
		if rt != nil {
			switch d := decideFactRoute(rt, n.cfg.NodeID, aggType, id, hops, n.cfg.Cluster.MaxHops); d.kind {
			case routeFail:
				results[i].Error = d.err
				continue
			case routeForward:
				remote[d.subject] = append(remote[d.subject], i)
				continue
			}
		}
		if _, seen := local[id]; !seen {
			localOrder = append(localOrder, id)
		}
		local[id] = append(local[id], i)
	}

	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	var parts sync.WaitGroup
	for _, id := range localOrder {
		idx := local[id]
		facts := make([]executor.Fact, len(idx))
		for k, i := range idx {
			facts[k] = parsed[i]
		}
		parts.Add(1)
		n.exec.SubmitFacts(ctx, model.Ref{Type: aggType, ID: id}, facts, func(res []executor.FactResult, err error) {
			defer parts.Done()
			for k, i := range idx {
				if err != nil {
					results[i].Error = toAPIError(err)
					continue
				}
				results[i] = factResult(wire[i], res[k])
			}
		})
	}
	for subject, idx := range remote {
		parts.Add(1)
		n.counters.forwarded.Add(uint64(len(idx)))
		go func() {
			defer parts.Done()
			n.forwardFacts(ctx, subject+".facts."+aggType, hops, deadline, wire, idx, results)
		}()
	}
	n.delayed.Add(1)
	go func() {
		defer n.delayed.Done()
		parts.Wait()
		cancel()
		reply := &api.FactsReply{OK: true, AggregateType: aggType, Results: results}
		for i := range results {
			reply.OK = reply.OK && results[i].OK
		}
		n.respond(m, reply)
	}()
}

// forwardFacts passes the facts idx to their owner and copies its answers
// into results.
func (n *Node) forwardFacts(ctx context.Context, subject string, hops int, deadline time.Time, wire []api.Fact, idx []int, results []api.FactResult) {
	body := api.FactsRequest{Facts: make([]api.Fact, len(idx))}
	for k, i := range idx {
		body.Facts[k] = wire[i]
	}
	failAll := func(e *api.Error) {
		for _, i := range idx {
			results[i] = api.FactResult{AggregateID: wire[i].AggregateID, Event: wire[i].Event, Error: e}
		}
	}
	data, err := json.Marshal(body)
	if err != nil {
		failAll(&api.Error{Code: api.CodeUnavailable, Message: "encoding forwarded facts: " + err.Error()})
		return
	}
	out := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	setHops(out, hops+1, time.Until(deadline))
	msg, err := n.nc.RequestMsgWithContext(ctx, out)
	if err != nil {
		code := api.CodeUnavailable
		if errors.Is(err, context.DeadlineExceeded) {
			code = api.CodeTimeout
		}
		failAll(&api.Error{Code: code, Message: "passing facts to their owner: " + err.Error() + "; send them again"})
		return
	}
	var reply api.FactsReply
	switch err := json.Unmarshal(msg.Data, &reply); {
	case err != nil:
		failAll(&api.Error{Code: api.CodeUnavailable, Message: "owner's reply unreadable: " + err.Error()})
	case reply.Error != nil:
		failAll(reply.Error)
	case len(reply.Results) != len(idx):
		failAll(&api.Error{Code: api.CodeUnavailable, Message: fmt.Sprintf("owner answered %d facts of %d", len(reply.Results), len(idx))})
	default:
		for k, i := range idx {
			results[i] = reply.Results[k]
		}
	}
}

// factResult is the wire form of one fact's outcome.
func factResult(f api.Fact, r executor.FactResult) api.FactResult {
	out := api.FactResult{AggregateID: f.AggregateID, Event: f.Event}
	if r.Err != nil {
		out.Error = toAPIError(r.Err)
		return out
	}
	out.OK, out.Sequence, out.Duplicate, out.Late, out.Place = true, r.Sequence, r.Duplicate, r.Late, r.Place.String()
	return out
}
