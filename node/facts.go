package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/model"
)

// onFacts takes a facts request from the queue group.
func (n *Node) onFacts(m *nats.Msg) {
	n.handleFacts(m, strings.TrimPrefix(m.Subject, n.factsSubjectPrefix))
}

// onDirectFacts takes facts another node passed to this one, their owner.
func (n *Node) onDirectFacts(m *nats.Msg) {
	n.handleFacts(m, strings.TrimPrefix(m.Subject, n.directBase+".facts."))
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
		f, err := parseFact(&wire[i])
		if err != nil {
			results[i] = api.FactResult{AggregateID: wire[i].AggregateID, Event: wire[i].Event, Error: err}
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
