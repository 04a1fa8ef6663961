//go:build integration

package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// This file is the workload client of TestJepsen. It is deliberately
// independent of the project's client and api packages: it speaks the
// documented NATS protocol (a JSON envelope on <prefix>.cmd.lightbulb, a
// JSON reply) with plain nats.go requests and its own structs, so that a
// bug shared by the node and the Go client cannot hide itself. Every
// attempt of every command is logged with its times and what came back.

// jCommand is the request envelope as the README documents it.
type jCommand struct {
	AggregateID string          `json:"aggregateId"`
	Command     string          `json:"command"`
	CommandID   string          `json:"commandId"`
	Args        json.RawMessage `json:"args,omitempty"`
	TimeoutMs   int64           `json:"timeoutMs,omitempty"`
}

// jReply is the reply as the README documents it; only what the checker
// uses is decoded.
type jReply struct {
	OK        bool     `json:"ok"`
	CommandID string   `json:"commandId"`
	Sequence  uint64   `json:"sequence"`
	Duplicate bool     `json:"duplicate"`
	Events    []jEvent `json:"events"`
	Error     *jError  `json:"error"`
}

// jError is a reply's error.
type jError struct {
	Code    string `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message"`
}

// codeOr returns the error's code, or def for a nil error.
func (e *jError) codeOr(def string) string {
	if e == nil {
		return def
	}
	return e.Code
}

// jEvent is an event in a reply.
type jEvent struct {
	Sequence  uint64 `json:"sequence"`
	Name      string `json:"name"`
	Version   int    `json:"version"`
	CommandID string `json:"commandId"`
	EventID   string `json:"eventId"`
}

// Reply codes of the protocol (README, "Error codes").
const (
	codeInvalid     = "invalid_request"
	codeUnknownType = "unknown_aggregate_type"
	codeUnknownCmd  = "unknown_command"
	codeRejected    = "rejected"
)

// definiteFailure reports whether a code means the request was refused
// before any decision: nothing may ever be written for it.
func definiteFailure(code string) bool {
	return code == codeInvalid || code == codeUnknownType || code == codeUnknownCmd
}

// jAttempt is one request of a command and what came back.
type jAttempt struct {
	via              string // "queue" or the node id whose own subject was used
	invoke, complete time.Time
	reply            *jReply // nil when no reply came
	err              string  // "timeout", "no_responders", … when reply is nil
	storm            bool    // sent by the storm, after the workload
}

// definite reports whether the attempt got an answer that settles the
// command: ok, rejected, or a refusal before decision.
func (a *jAttempt) definite() bool {
	if a.reply == nil {
		return false
	}
	if a.reply.OK {
		return true
	}
	return a.reply.Error != nil && (a.reply.Error.Code == codeRejected || definiteFailure(a.reply.Error.Code))
}

// acked reports whether the attempt got ok or a rejection: a decision.
func (a *jAttempt) acked() bool {
	return a.reply != nil && (a.reply.OK || (a.reply.Error != nil && a.reply.Error.Code == codeRejected))
}

// errorKey names what a failed attempt saw, for the per-fault figures.
func (a *jAttempt) errorKey() string {
	switch {
	case a.reply == nil:
		return a.err
	case a.reply.OK:
		return ""
	case a.reply.Error == nil:
		return "not ok without error"
	case a.reply.Error.Code == codeRejected || definiteFailure(a.reply.Error.Code):
		return ""
	default:
		return a.reply.Error.Code
	}
}

// jOp is one command: one command id, sent until a definite reply or the
// budget ran out.
type jOp struct {
	id        string
	worker    int
	aggregate string
	command   string
	args      json.RawMessage
	phase     string
	attempts  []jAttempt
}

// firstDefinite returns the index of the first attempt with a definite
// reply (by completion time), or -1.
func (o *jOp) firstDefinite() int {
	best := -1
	for i := range o.attempts {
		a := &o.attempts[i]
		if a.definite() && (best < 0 || a.complete.Before(o.attempts[best].complete)) {
			best = i
		}
	}
	return best
}

// jRead is one state query of a bulb (<prefix>.query.lightbulb, the
// primary state, no asOf) and what came back: one attempt, never retried
// (a read changes nothing, so a failed one tells nothing).
type jRead struct {
	id               string
	worker           int
	aggregate        string
	invoke, complete time.Time
	reply            *jQueryReply // nil when no reply came
	state            jBulb        // reply.State decoded
	err              string
}

// jQueryReply is a query's reply as the README documents it; only what
// the checker uses is decoded.
type jQueryReply struct {
	OK       bool            `json:"ok"`
	Exists   bool            `json:"exists"`
	Sequence uint64          `json:"sequence"`
	State    json.RawMessage `json:"state"`
	Error    *jError         `json:"error"`
}

// jBulb is the lightbulb state in a query's reply.
type jBulb struct {
	ScrewedIn bool `json:"screwedIn"`
	On        bool `json:"on"`
	Blown     bool `json:"blown"`
}

// answered reports whether the read got a state.
func (r *jRead) answered() bool { return r.reply != nil && r.reply.OK }

// jWorkload drives commands at the cluster and logs every attempt.
type jWorkload struct {
	nc       *nats.Conn
	prefix   string
	bulbs    []string
	blown    map[string]bool // bulbs blown at set-up: every command is rejected
	start    time.Time
	attempt  time.Duration // per-request timeout
	budget   time.Duration // per command, all attempts
	interval time.Duration // per worker, between commands (0: none)
	readPct  int           // share of a worker's steps that are state queries
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	acks     atomic.Int64

	mu struct {
		sync.Mutex
		phase string
		ops   []*jOp
		reads []*jRead
	}
}

// Subject of the command queue and of one node's own command subject.
func (w *jWorkload) queueSubject() string { return w.prefix + ".cmd.lightbulb" }
func (w *jWorkload) nodeSubject(id string) string {
	return w.prefix + ".node." + id + ".cmd.lightbulb"
}

func (w *jWorkload) setPhase(p string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.mu.phase = p
}

func (w *jWorkload) phase() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.mu.phase
}

// request sends one attempt of op to subject and returns it.
func (w *jWorkload) request(op *jOp, subject, via string, timeout time.Duration) jAttempt {
	body, err := json.Marshal(jCommand{AggregateID: op.aggregate, Command: op.command, CommandID: op.id, Args: op.args,
		TimeoutMs: (timeout - timeout/4).Milliseconds()})
	if err != nil {
		panic(err) // plain structs: cannot happen
	}
	a := jAttempt{via: via, invoke: time.Now()}
	m, err := w.nc.Request(subject, body, timeout)
	a.complete = time.Now()
	switch {
	case errors.Is(err, nats.ErrTimeout):
		a.err = "timeout (no reply)"
	case errors.Is(err, nats.ErrNoResponders):
		a.err = "no responders"
	case err != nil:
		a.err = "nats: " + err.Error()
	default:
		var r jReply
		if err := json.Unmarshal(m.Data, &r); err != nil {
			a.err = fmt.Sprintf("undecodable reply %q", m.Data)
		} else {
			a.reply = &r
		}
	}
	return a
}

// read sends one state query of bulb and records it.
func (w *jWorkload) read(id string, worker int, bulb string) {
	body, err := json.Marshal(map[string]string{"aggregateId": bulb})
	if err != nil {
		panic(err) // a map of strings: cannot happen
	}
	r := &jRead{id: id, worker: worker, aggregate: bulb, invoke: time.Now()}
	m, err := w.nc.Request(w.prefix+".query.lightbulb", body, w.attempt)
	r.complete = time.Now()
	switch {
	case err != nil:
		r.err = err.Error()
	default:
		var q jQueryReply
		if err := json.Unmarshal(m.Data, &q); err != nil {
			r.err = fmt.Sprintf("undecodable reply %q", m.Data)
			break
		}
		r.reply = &q
		if q.OK {
			if err := json.Unmarshal(q.State, &r.state); err != nil {
				r.err = fmt.Sprintf("undecodable state %q", q.State)
			}
		}
	}
	w.mu.Lock()
	w.mu.reads = append(w.mu.reads, r)
	w.mu.Unlock()
}

// run sends op until a definite reply or the budget is spent, retrying
// with the same command id, and records it. It returns the op.
func (w *jWorkload) run(op *jOp, rng *rand.Rand) *jOp {
	op.phase = w.phase()
	w.mu.Lock()
	w.mu.ops = append(w.mu.ops, op)
	w.mu.Unlock()
	deadline := time.Now().Add(w.budget)
	backoff := 20 * time.Millisecond
	for {
		a := w.request(op, w.queueSubject(), "queue", w.attempt)
		w.mu.Lock()
		op.attempts = append(op.attempts, a)
		w.mu.Unlock()
		if a.definite() {
			if a.acked() {
				w.acks.Add(1)
			}
			return op
		}
		if time.Now().Add(backoff).After(deadline) {
			return op
		}
		// Full jitter: a random wait up to the current back-off.
		time.Sleep(time.Duration(rng.Int64N(int64(backoff))) + time.Millisecond)
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

// Workload command mix, by percentage of the random commands: switchOn
// and switchOff at random give about half rejections (already_on,
// already_off); the rest exercise the other rules and the refusals.
var jMix = []struct {
	pct     int
	command string
	args    string
}{
	{40, "switchOn", `{}`},
	{38, "switchOff", `{}`},
	{6, "screwIn", `{"location":"lab"}`},    // already_screwed_in, or accepted after an unscrew
	{5, "unscrew", `{}`},                    // one or two events
	{3, "create", `{"wattage":75}`},         // already_exists
	{3, "screwIn", `{"location":""}`},       // invalid_request: nothing may be written
	{3, "explode", `{}`},                    // unknown_command
	{2, "switchOn", `{"unexpected":[1,2]}`}, // extra fields: whatever the node says, its outcome is checked
}

// setUp creates every bulb and screws it in (and blows the ones in blown),
// from 8 goroutines, each command run to a definite reply.
func (w *jWorkload) setUp() error {
	var wg sync.WaitGroup
	var failed atomic.Int64
	next := atomic.Int64{}
	for g := range 8 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 99))
			for {
				i := int(next.Add(1)) - 1
				if i >= len(w.bulbs) {
					return
				}
				id := w.bulbs[i]
				steps := []struct{ cmd, args string }{{"create", `{"wattage":60}`}, {"screwIn", `{"location":"hall"}`}}
				if w.blown[id] {
					steps = append(steps, struct{ cmd, args string }{"blow", `{}`})
				}
				for _, s := range steps {
					op := w.run(&jOp{id: id + "-" + s.cmd, worker: -1, aggregate: id, command: s.cmd, args: json.RawMessage(s.args)}, rng)
					if i := op.firstDefinite(); i < 0 || !op.attempts[i].reply.OK {
						failed.Add(1)
					}
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d set-up commands were not accepted", n)
	}
	return nil
}

// startWorkers starts n workers, each with its own random source derived
// from seed.
func (w *jWorkload) startWorkers(n int, seed uint64) {
	for wk := range n {
		w.wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(wk)+1))
			next := time.Now()
			for step := 0; ; step++ {
				if w.interval > 0 {
					next = next.Add(w.interval)
					if d := time.Until(next); d > 0 {
						select {
						case <-w.stop:
							return
						case <-time.After(d):
						}
					} else {
						next = time.Now()
					}
				}
				select {
				case <-w.stop:
					return
				default:
				}
				bulb := w.bulbs[rng.IntN(len(w.bulbs))]
				if rng.IntN(100) < w.readPct {
					w.read(fmt.Sprintf("r%d-%d", wk, step), wk, bulb)
					continue
				}
				p := rng.IntN(100)
				m := jMix[len(jMix)-1]
				for _, c := range jMix {
					if p < c.pct {
						m = c
						break
					}
					p -= c.pct
				}
				w.run(&jOp{id: fmt.Sprintf("w%d-%d", wk, step), worker: wk, aggregate: bulb, command: m.command, args: json.RawMessage(m.args)}, rng)
			}
		})
	}
}

// finish stops the workers and waits for their last commands.
func (w *jWorkload) finish() {
	w.stopOnce.Do(func() { close(w.stop) })
	w.wg.Wait()
}

// snapshot returns the ops recorded so far (the ops themselves are not
// copied: call it once the workers have stopped to read their attempts).
func (w *jWorkload) snapshot() []*jOp {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.mu.ops)
}

// readsSnapshot returns the reads recorded so far.
func (w *jWorkload) readsSnapshot() []*jRead {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.mu.reads)
}

// storm resends every answered command of the workload (same id, command
// and args) to the queue subject and to each node's own subject, with
// parallel senders, and records the replies as extra attempts. A resend
// must get the original outcome and must not run again.
func (w *jWorkload) storm(nodeIDs []string, parallel int) (sent, answered int) {
	type job struct {
		op      *jOp
		subject string
		via     string
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	var n, got atomic.Int64
	for range parallel {
		wg.Go(func() {
			for j := range jobs {
				var a jAttempt
				// A resend that times out (or finds no responder) is sent
				// again a few times: the storm wants an answer to compare.
				for try := 0; try < 5; try++ {
					a = w.request(j.op, j.subject, j.via, w.attempt)
					if a.reply != nil && a.errorKey() == "" {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				a.storm = true
				n.Add(1)
				if a.reply != nil {
					got.Add(1)
				}
				w.mu.Lock()
				j.op.attempts = append(j.op.attempts, a)
				w.mu.Unlock()
			}
		})
	}
	for _, op := range w.snapshot() {
		if op.firstDefinite() < 0 {
			continue
		}
		jobs <- job{op, w.queueSubject(), "queue"}
		for _, id := range nodeIDs {
			jobs <- job{op, w.nodeSubject(id), id}
		}
	}
	close(jobs)
	wg.Wait()
	return int(n.Load()), int(got.Load())
}
