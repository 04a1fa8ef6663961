package node

// Routing: where a request runs. decideRoute is the whole decision, a pure
// function of the ring, the request's hops and deadline, and the time; it
// reads no clock, counts nothing and sends nothing. (*Node).dispatch
// performs a decision: it counts it, runs the request here, answers it,
// publishes it to the owner (forward), or waits and dispatches it again.
//
//	arrival ──parse once──▶ request ──▶ dispatch ◀──────────────┐
//	                                      │ decideRoute          │ AfterFunc(wait),
//	                  ┌─────────┬─────────┼──────────┐           │ hops+1, waited
//	                  ▼         ▼         ▼          ▼           │
//	               Local     Forward     Fail      Delay ────────┘
//	             request.run  publish   request.fail
//	                        to owner

import (
	"fmt"
	"math"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/internal/backoff"
)

// routeKind is what to do with a request.
type routeKind uint8

const (
	// routeLocal: this node owns the aggregate (or runs alone); run it here.
	routeLocal routeKind = iota
	// routeForward: pass it to the owner's direct subject.
	routeForward
	// routeDelay: wait for the rings to settle, then decide again.
	routeDelay
	// routeFail: answer it with the (retryable) error.
	routeFail
)

func (k routeKind) String() string {
	switch k {
	case routeLocal:
		return "local"
	case routeForward:
		return "forward"
	case routeDelay:
		return "delay"
	case routeFail:
		return "fail"
	}
	return "routeKind(" + strconv.Itoa(int(k)) + ")"
}

// route is a routing decision.
type route struct {
	kind routeKind
	// owner is the aggregate's owner by the ring and subject its direct
	// subject base, whatever the kind, as far as the ring names them:
	// both are empty when the ring is empty, subject alone when the owner
	// does not serve yet. A forward goes to subject.
	owner, subject string
	// wait is how long a delay lasts.
	wait time.Duration
	// err is the answer of a failure.
	err *api.Error
}

// A request that bounced waits delayBase, then twice as long at each
// further hop, at most delayMax, and never more than half the time it has
// left.
const (
	delayBase = 10 * time.Millisecond
	delayMax  = 250 * time.Millisecond
)

// decideRoute decides where a request for the aggregate aggType/id runs,
// by the ring r (nil when the node is not clustered: everything runs here),
// on the node self.
//
// hops is how often the request was passed between nodes or waited
// already; waited is true when it already waited here for the rings to
// settle, once it arrived: it is then passed on at once. deadline is when
// the client stops waiting (zero: the caller bounds the time itself, none
// is checked here) and now the time of the decision. maxHops bounds hops.
//
// In order: an aggregate this node owns runs here, whatever its hops or
// time; a request out of time or of hops fails; one that finds no owner,
// or an owner not serving yet, or that has been passed on twice (the nodes
// on its way disagree about the owner) and not waited here yet, waits a
// little for the rings to converge; any other is forwarded to its owner.
func decideRoute(r *routing, self, aggType, id string, hops int, waited bool, deadline, now time.Time, maxHops int) route {
	if r == nil {
		return route{kind: routeLocal, owner: self}
	}
	owner, subject, ok := r.owner(aggType, id)
	d := route{owner: owner, subject: subject}
	if ok && owner == self {
		d.kind = routeLocal
		return d
	}
	remaining := time.Duration(math.MaxInt64)
	if !deadline.IsZero() {
		remaining = deadline.Sub(now)
	}
	switch {
	case remaining <= 0:
		d.kind = routeFail
		d.err = &api.Error{Code: api.CodeTimeout, Message: "the request's time ran out while its aggregate changed owner"}
	case hops >= maxHops:
		d.kind = routeFail
		d.err = &api.Error{Code: api.CodeUnavailable, Message: fmt.Sprintf("the nodes did not agree on the owner of %s/%s within %d hops (the cluster is changing); retry", aggType, id, hops)}
	case !ok || subject == "" || (hops >= 2 && !waited):
		d.kind = routeDelay
		d.wait = min(backoff.Nth(delayBase, delayMax, hops-2), remaining/2)
	default:
		d.kind = routeForward
	}
	return d
}

// decideFactRoute is decideRoute for one fact of a facts request, whose
// parts go to several owners at once. Facts are never held back: where a
// command would wait for an owner, a fact fails at once and its client
// sends it again; and the time is not checked here, the request passed on
// to an owner carries it. As before decideRoute existed, a fact without an
// owner reports that, even when it is out of hops too.
func decideFactRoute(r *routing, self, aggType, id string, hops, maxHops int) route {
	d := decideRoute(r, self, aggType, id, hops, true, time.Time{}, time.Time{}, maxHops)
	switch {
	case d.kind == routeLocal || d.kind == routeForward:
		return d
	case d.subject == "": // a delay for want of an owner, or out of hops and without one
		d.kind, d.wait = routeFail, 0
		d.err = &api.Error{Code: api.CodeUnavailable, Message: "no owner known for " + aggType + "/" + id + " (the cluster is changing); send it again"}
	default: // out of hops: there is no deadline to run out of
		d.err = &api.Error{Code: api.CodeUnavailable, Message: fmt.Sprintf("the nodes did not agree on the owner of %s/%s within %d hops (the cluster is changing); send it again", aggType, id, hops)}
	}
	return d
}

// routeCounters count what the router did with requests.
type routeCounters struct {
	local, direct, forwarded, rerouted, delayed, exhausted atomic.Uint64
	ringChanges, moved, pauses                             atomic.Uint64
}

// of returns the counter of requests routed as k. direct is true for a
// request that came on this node's direct subject, passed on by a node
// that took this one for the owner: run here it counts as direct, passed
// on again as rerouted.
func (c *routeCounters) of(k routeKind, direct bool) *atomic.Uint64 {
	switch k {
	case routeLocal:
		if direct {
			return &c.direct
		}
		return &c.local
	case routeForward:
		if direct {
			return &c.rerouted
		}
		return &c.forwarded
	case routeDelay:
		return &c.delayed
	}
	return &c.exhausted
}

// request is a command or query request on its way to where it runs, read
// once when it arrived: what routing needs and the continuations that
// finish it. A delay keeps it and dispatches it again; nothing is parsed
// again.
type request struct {
	m *nats.Msg
	// kind is "cmd" or "query": a forward goes to <owner>.<kind>.<aggType>.
	kind    string
	aggType string
	id      string // the aggregate id it is placed by
	direct  bool   // it came on this node's direct subject
	// hops counts how often it was passed between nodes or waited.
	hops int
	// waited is true once it waited here for the rings to settle.
	waited bool
	// deadline is when its client stops waiting.
	deadline time.Time
	// run runs it on this node and answers it.
	run func()
	// fail answers it with an error.
	fail func(*api.Error)
}

// dispatch decides where rq runs, on the ring of the moment, and does it.
// It never blocks: a delay is a timer (counted in n.delayed, which a drain
// waits for) that dispatches rq again.
func (n *Node) dispatch(rq *request) {
	rt := n.route.Load()
	if rt == nil {
		rq.run() // not clustered: everything is ours, nothing to count
		return
	}
	now := time.Now()
	d := decideRoute(rt, n.cfg.NodeID, rq.aggType, rq.id, rq.hops, rq.waited, rq.deadline, now, n.cfg.Cluster.MaxHops)
	n.counters.of(d.kind, rq.direct).Add(1)
	switch d.kind {
	case routeLocal:
		rq.run()
	case routeFail:
		rq.fail(d.err)
	case routeDelay:
		// The wait counts as a hop, so that waits too end within MaxHops.
		rq.hops++
		rq.waited = true
		n.delayed.Add(1)
		time.AfterFunc(d.wait, func() {
			defer n.delayed.Done()
			n.dispatch(rq)
		})
	case routeForward:
		n.forward(rq, d.owner, d.subject, rq.deadline.Sub(now))
	}
}

// forward publishes rq, as it came, to its owner's direct subject base,
// with one hop more and the time it has left; the owner answers the
// client. A failed publish is answered here.
func (n *Node) forward(rq *request, owner, subject string, remaining time.Duration) {
	m := rq.m
	out := &nats.Msg{Subject: subject + "." + rq.kind + "." + rq.aggType, Reply: m.Reply, Data: m.Data, Header: cloneHeader(m.Header)}
	setHops(out, rq.hops+1, remaining)
	if err := n.nc.PublishMsg(out); err != nil {
		n.log.Warn("forwarding a request", "owner", owner, "err", err)
		rq.fail(&api.Error{Code: api.CodeUnavailable, Message: "forwarding to the owner failed: " + err.Error()})
	}
}

// Internal headers of forwarded requests. They never reach clients.
const (
	// headerHops counts how often a request was passed between nodes.
	headerHops = "Concursus-Hops"
	// headerBudget is what is left of the client's time, in milliseconds,
	// when a node passes the request on.
	headerBudget = "Concursus-Budget-Ms"
)

func hopsOf(m *nats.Msg) int {
	if m.Header == nil {
		return 0
	}
	h, err := strconv.Atoi(m.Header.Get(headerHops))
	if err != nil || h < 0 {
		return 0
	}
	return h
}

// budgetOf returns the time left according to a forwarding node, if any.
func budgetOf(m *nats.Msg) (time.Duration, bool) {
	if m.Header == nil {
		return 0, false
	}
	v := m.Header.Get(headerBudget)
	if v == "" {
		return 0, false
	}
	ms, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false
	}
	// The header comes from outside too (any client can set it): clamp
	// before multiplying, so no value wraps round to an instant timeout.
	return time.Duration(min(max(ms, 1), maxBudgetMs)) * time.Millisecond, true
}

// maxBudgetMs bounds a forwarded budget: a day, far above any request's
// own timeout (api.MaxTimeoutMs).
const maxBudgetMs = int64(24 * time.Hour / time.Millisecond)

func setHops(m *nats.Msg, hops int, budget time.Duration) {
	if m.Header == nil {
		m.Header = nats.Header{}
	}
	m.Header.Set(headerHops, strconv.Itoa(hops))
	m.Header.Set(headerBudget, strconv.FormatInt(max(budget.Milliseconds(), 1), 10))
}

func cloneHeader(h nats.Header) nats.Header {
	out := make(nats.Header, len(h)+2)
	for k, v := range h {
		out[k] = append([]string(nil), v...)
	}
	return out
}
