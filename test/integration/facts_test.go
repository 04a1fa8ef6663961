//go:build integration

package integration

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gocql/gocql"
	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
)

// This file is TestFacts: invariant 7 of DESIGN.md ("state does not
// depend on arrival order") and the facts API end to end, on three node
// processes and the Cassandra log, with a node SIGKILLed, another
// SIGSTOPped and one's gossip cut in the middle.
//
// A seeded plan gives about 100 bulbs their facts (created, screwedIn, a
// dozen switches from one or two sensor streams, some switches stamped
// before the bulb was created, on some bulbs a blown_0 near the end with
// facts after it, a few facts twice in the set, one of those with a
// timestamp differing below the millisecond) and three switch commands
// each, stamped with an explicit event time on the stream "cmd". Twelve
// workers send it all shuffled — facts in batches of 1 to 100, many bulbs
// per batch — retrying a batch whose reply is missing or holds a fact not
// yet settled with the very same facts, and a command with the same
// command id. After about a third of the requests, while a facts request
// is in flight, one node is SIGKILLed; the survivors take its partitions
// over; at half of the requests one survivor is SIGSTOPped for 8 s (past
// failure detection) and resumed with stale caches; later a fresh node (n4)
// joins and takes some back; then the gossip of one of the three is cut
// from the others' for 8 s (iptables on the loopback gossip ports; NATS,
// raft and Cassandra untouched), so that each side rings without the
// other and both may take an aggregate, and healed. Then every fact and
// command is sent once more (every answer must be the original one), and
// the checker
//
//   - reads the events table with gocql (not through storage/cassandra)
//     and requires, per bulb, a gap-free history holding every
//     acknowledged fact exactly once, at the sequence its replies gave,
//     with the payload sent, the events of exactly the commands
//     acknowledged ok, and nothing else; facts refused as "terminated"
//     must be absent and stamped after the bulb's terminal event as
//     recorded; and once the life has ended in the log (terminal event
//     and an earlier initial event recorded), only facts stamped before
//     its end may follow (checkFactsLog);
//   - folds, for every bulb, the set of acknowledged facts and the events
//     of acknowledged commands with model.View.Replay and ReplayAsOf (in
//     a shuffled order) and requires the node's state and usage answers,
//     whole and as of several instants, to equal it: existence, events
//     folded, waiting events, last event time and the value.
//
// CONCURSUS_FACTS_SEED reproduces a run's plan (the interleaving of the
// workers and the kill is not reproducible). TestFactsCheckerSelf shows
// checkFactsLog finding planted faults without any service.

const (
	factsBulbs    = 100
	factsWorkers  = 12
	factsSwitches = 12
	factsCommands = 3
	// factsSpread is about how long the first sending takes without
	// faults; the kill comes after factsKillAt of the requests started.
	factsSpread      = 24 * time.Second
	factsKillAt      = 0.35
	factsPauseAt     = 0.50
	factsRejoinAt    = 0.60
	factsPartitionAt = 0.70
	// factsPause is how long a survivor is stopped (SIGSTOP), and
	// factsPartition how long a node's gossip is cut: longer than the
	// local gossip profile's failure detection, so that the others take
	// its partitions (and it takes theirs, for the cut one) and it comes
	// back with stale caches.
	factsPause     = 8 * time.Second
	factsPartition = 8 * time.Second
	// factsAttempt bounds one request; factsBudget all attempts of one.
	factsAttempt = 5 * time.Second
	factsBudget  = 90 * time.Second
	// factsCmdStream is the stream of the commands' events: no fact uses
	// it, so no command event shares a (timestamp, stream) with a fact.
	factsCmdStream = "cmd"
)

// factsEpoch is the first planned event time.
var factsEpoch = time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)

// factKey is a fact's identity: model.FactID with its aggregate, the
// timestamp in milliseconds and the stream normalised.
type factKey struct {
	bulb, event string
	ms          int64
	stream      string
}

func (k factKey) String() string {
	return fmt.Sprintf("%s %s@%s/%s", k.bulb, k.event, time.UnixMilli(k.ms).UTC().Format(time.RFC3339Nano), k.stream)
}

func keyOfFact(f api.Fact) factKey {
	ts, err := time.Parse(time.RFC3339Nano, f.Timestamp)
	if err != nil {
		panic(err) // the plan's own timestamps
	}
	return factKey{bulb: f.AggregateID, event: f.Event, ms: ts.UnixMilli(), stream: cmp.Or(f.StreamID, model.DefaultStream)}
}

// factsCommand is one planned command.
type factsCommand struct {
	id, bulb, command string
	at                time.Time
}

// event is the event the command emits when accepted (switchOn and
// switchOff emit exactly one).
func (c *factsCommand) event() string {
	if c.command == "switchOn" {
		return "switchedOn_0"
	}
	return "switchedOff_0"
}

// factsPlan is what the test sends.
type factsPlan struct {
	bulbs []string
	facts []api.Fact // with the intended copies
	cmds  []*factsCommand
}

// planFacts draws the plan from seed. Within one bulb no two events
// (facts or commands) share a timestamp and a stream, except a fact's
// copies: the event-time order (timestamp, stream, sequence) then never
// depends on the sequences the log assigned.
func planFacts(seed uint64, bulbs int) *factsPlan {
	rng := rand.New(rand.NewPCG(seed, 12))
	p := &factsPlan{}
	for b := range bulbs {
		id := fmt.Sprintf("fb-%03d", b)
		p.bulbs = append(p.bulbs, id)
		used := make(map[string]bool)
		var mine []api.Fact
		add := func(event string, ts time.Time, stream, payload string) bool {
			k := fmt.Sprintf("%d|%s", ts.UnixMilli(), cmp.Or(stream, model.DefaultStream))
			if used[k] {
				return false
			}
			used[k] = true
			f := api.Fact{AggregateID: id, Event: event, Timestamp: ts.Format(time.RFC3339Nano), StreamID: stream}
			if payload != "" {
				f.Payload = json.RawMessage(payload)
			}
			mine = append(mine, f)
			return true
		}
		ms := func(lo, hi time.Duration) time.Duration {
			return lo + time.Duration(rng.Int64N(int64((hi-lo)/time.Millisecond)))*time.Millisecond
		}
		created := factsEpoch.Add(ms(0, 30*time.Minute))
		streams := []string{"sensor-a"}
		if rng.IntN(3) == 0 {
			streams = append(streams, "sensor-b")
		}
		add("created_0", created, []string{"", "registry"}[rng.IntN(2)], fmt.Sprintf(`{"wattage":%d}`, 25*(1+rng.IntN(8))))
		add("screwedIn_0", created.Add(ms(time.Minute, 5*time.Minute)), streams[0], fmt.Sprintf(`{"location":"room-%d"}`, rng.IntN(50)))
		var switches []time.Time
		for len(switches) < factsSwitches {
			ts := created.Add(ms(6*time.Minute, 126*time.Minute))
			if add([]string{"switchedOn_0", "switchedOff_0"}[rng.IntN(2)], ts, streams[rng.IntN(len(streams))], "") {
				switches = append(switches, ts)
			}
		}
		slices.SortFunc(switches, time.Time.Compare)
		if len(streams) == 2 && rng.IntN(2) == 0 {
			// Two sensors report in the same millisecond: the stream
			// id orders them.
			at := switches[rng.IntN(len(switches))]
			add("switchedOn_0", at, "sensor-a", "")
			add("switchedOff_0", at, "sensor-b", "")
		}
		if rng.IntN(10) == 0 { // before the bulb was created: waits for ever
			add("switchedOn_0", created.Add(-ms(time.Minute, 10*time.Minute)), streams[0], "")
		}
		last := switches[len(switches)-1]
		if rng.IntN(4) == 0 { // blows near the end; what follows is refused or never applies
			add("blown_0", switches[len(switches)-3].Add(20*time.Second), streams[0], "")
			add("unscrewed_0", last.Add(10*time.Minute), streams[0], "")
		}
		if rng.IntN(10) == 0 { // a fact twice in the set, maybe below the millisecond apart
			f := mine[rng.IntN(len(mine))]
			if rng.IntN(3) == 0 {
				ts, _ := time.Parse(time.RFC3339Nano, f.Timestamp)
				f.Timestamp = ts.Add(321 * time.Microsecond).Format(time.RFC3339Nano)
			}
			mine = append(mine, f)
		}
		p.facts = append(p.facts, mine...)
		for k := range factsCommands {
			for {
				ts := created.Add(ms(-3*time.Minute, 140*time.Minute))
				if add("", ts, factsCmdStream, "") { // reserves the instant; dropped below
					mine = mine[:len(mine)-1]
					p.cmds = append(p.cmds, &factsCommand{id: fmt.Sprintf("%s-c%d", id, k), bulb: id,
						command: []string{"switchOn", "switchOff"}[rng.IntN(2)], at: ts})
					break
				}
			}
		}
	}
	return p
}

// factRecord is everything the replies said about one fact (all its
// copies and attempts).
type factRecord struct {
	key     factKey
	fact    api.Fact
	copies  int
	seq     uint64 // the sequence ok replies gave; 0 if none
	stored  int    // ok replies not marked duplicate
	dupAcks int
	refused map[string]int // rejection reason → replies
	bad     []string       // replies that contradict others or are not expected at all
}

// cmdRecord is everything the replies said about one command.
type cmdRecord struct {
	cmd     *factsCommand
	outcome string // "ok", "rejected", or "" (undecided)
	reason  string
	seq     uint64
	dupAcks int
	bad     []string
}

// factsCounts are the figures of one phase.
type factsCounts struct {
	requests, attempts, retries, noReply     atomic.Int64
	factOK, factDup, factLate, factWait      atomic.Int64
	factRefused, factRetryable               atomic.Int64
	cmdOK, cmdRejected, cmdDup, cmdRetryable atomic.Int64
}

// factsRun is the client side of the test: it sends, retries and
// records. Workers share it; mu guards the records.
type factsRun struct {
	nc      *nats.Conn
	started atomic.Int64 // items whose first attempt went out
	// factsInFlight counts fact requests awaiting their reply.
	factsInFlight atomic.Int64
	mu            struct {
		sync.Mutex
		facts map[factKey]*factRecord
		cmds  map[string]*cmdRecord
	}
}

func newFactsRun(nc *nats.Conn, p *factsPlan) *factsRun {
	r := &factsRun{nc: nc}
	r.mu.facts = make(map[factKey]*factRecord)
	r.mu.cmds = make(map[string]*cmdRecord)
	for _, f := range p.facts {
		k := keyOfFact(f)
		rec := r.mu.facts[k]
		if rec == nil {
			rec = &factRecord{key: k, fact: f, refused: make(map[string]int)}
			r.mu.facts[k] = rec
		}
		rec.copies++
	}
	for _, c := range p.cmds {
		r.mu.cmds[c.id] = &cmdRecord{cmd: c}
	}
	return r
}

// retryable reports whether an error code leaves the outcome open.
func retryable(e *api.Error) bool {
	return e != nil && (e.Code == api.CodeUnavailable || e.Code == api.CodeTimeout || e.Code == api.CodeConflict)
}

// request sends one attempt and decodes the reply into out; false when no
// reply came.
func (r *factsRun) request(subject string, body, out any, c *factsCounts) bool {
	data, err := json.Marshal(body)
	if err != nil {
		panic(err) // plain structs
	}
	c.attempts.Add(1)
	m, err := r.nc.Request(subject, data, factsAttempt)
	if err == nil {
		err = json.Unmarshal(m.Data, out)
	}
	if err != nil {
		c.noReply.Add(1)
		return false
	}
	return true
}

// retry runs attempt until it reports the outcome settled or the budget
// is spent, with a jittered back-off.
func retry(rng *rand.Rand, c *factsCounts, attempt func() bool) {
	c.requests.Add(1)
	deadline := time.Now().Add(factsBudget)
	backoff := 50 * time.Millisecond
	for !attempt() && time.Now().Before(deadline) {
		c.retries.Add(1)
		time.Sleep(time.Duration(rng.Int64N(int64(backoff))) + time.Millisecond)
		backoff = min(2*backoff, time.Second)
	}
}

// sendFacts sends one batch until every fact in one attempt's reply is
// settled (ok or refused), always the same facts.
func (r *factsRun) sendFacts(batch []api.Fact, rng *rand.Rand, c *factsCounts) {
	subject := api.FactsSubject(clusterPrefix, lightbulb.TypeName)
	retry(rng, c, func() bool {
		var reply api.FactsReply
		r.factsInFlight.Add(1)
		defer r.factsInFlight.Add(-1)
		if !r.request(subject, api.FactsRequest{Facts: batch, TimeoutMs: (factsAttempt - time.Second).Milliseconds()}, &reply, c) {
			return false
		}
		if reply.Error != nil {
			if !retryable(reply.Error) {
				r.noteFact(keyOfFact(batch[0]), "the request was refused as a whole: %v", reply.Error)
				return true
			}
			return false
		}
		if len(reply.Results) != len(batch) {
			r.noteFact(keyOfFact(batch[0]), "a reply answered %d facts of %d", len(reply.Results), len(batch))
			return false
		}
		settled := true
		for i, res := range reply.Results {
			if !r.recordFact(batch[i], res, c) {
				settled = false
			}
		}
		return settled
	})
}

func (r *factsRun) noteFact(k factKey, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.mu.facts[k]
	rec.bad = append(rec.bad, fmt.Sprintf(format, args...))
}

// recordFact records one fact's answer; false if it leaves the outcome
// open.
func (r *factsRun) recordFact(f api.Fact, res api.FactResult, c *factsCounts) bool {
	k := keyOfFact(f)
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.mu.facts[k]
	bad := func(format string, args ...any) { rec.bad = append(rec.bad, fmt.Sprintf(format, args...)) }
	if res.AggregateID != f.AggregateID || res.Event != f.Event {
		bad("answered as %s %s", res.AggregateID, res.Event)
	}
	switch {
	case res.OK:
		c.factOK.Add(1)
		if res.Duplicate {
			c.factDup.Add(1)
			rec.dupAcks++
		} else {
			rec.stored++
			if rec.stored > 1 {
				bad("stored again (a second ok reply not marked duplicate, at sequence %d)", res.Sequence)
			}
		}
		if res.Late && !res.Duplicate {
			c.factLate.Add(1)
		}
		if res.Place == model.Waiting.String() {
			c.factWait.Add(1)
		}
		switch {
		case res.Sequence == 0:
			bad("ok without a sequence")
		case rec.seq == 0:
			rec.seq = res.Sequence
		case rec.seq != res.Sequence:
			bad("acknowledged at sequence %d, then at %d", rec.seq, res.Sequence)
		}
		return true
	case res.Error != nil && res.Error.Code == api.CodeRejected:
		c.factRefused.Add(1)
		rec.refused[res.Error.Reason]++
		return true
	case retryable(res.Error):
		c.factRetryable.Add(1)
		return false
	default:
		bad("unexpected answer %+v", res)
		return true
	}
}

// sendCommand sends one command until it is accepted or rejected, with
// the same command id every time.
func (r *factsRun) sendCommand(cmd *factsCommand, rng *rand.Rand, c *factsCounts) {
	subject := api.CommandSubject(clusterPrefix, lightbulb.TypeName)
	body := api.Command{AggregateID: cmd.bulb, Command: cmd.command, CommandID: cmd.id, Args: json.RawMessage(`{}`),
		Timestamp: cmd.at.Format(time.RFC3339Nano), StreamID: factsCmdStream, TimeoutMs: (factsAttempt - time.Second).Milliseconds()}
	retry(rng, c, func() bool {
		var reply api.Reply
		if !r.request(subject, body, &reply, c) {
			return false
		}
		if !reply.OK && retryable(reply.Error) {
			c.cmdRetryable.Add(1)
			return false
		}
		r.recordCommand(cmd, &reply, c)
		return true
	})
}

func (r *factsRun) recordCommand(cmd *factsCommand, reply *api.Reply, c *factsCounts) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec := r.mu.cmds[cmd.id]
	bad := func(format string, args ...any) { rec.bad = append(rec.bad, fmt.Sprintf(format, args...)) }
	outcome, reason := "ok", ""
	switch {
	case reply.OK:
		c.cmdOK.Add(1)
	case reply.Error != nil && reply.Error.Code == api.CodeRejected:
		c.cmdRejected.Add(1)
		outcome, reason = "rejected", reply.Error.Reason
	default:
		bad("unexpected reply %+v", reply)
		return
	}
	if reply.Duplicate {
		c.cmdDup.Add(1)
		rec.dupAcks++
	}
	if rec.outcome != "" && (rec.outcome != outcome || rec.reason != reason) {
		bad("first %s %s, then %s %s", rec.outcome, rec.reason, outcome, reason)
	}
	if rec.outcome == "" {
		rec.outcome, rec.reason = outcome, reason
	}
	if outcome != "ok" {
		return
	}
	if rec.seq != 0 && reply.Sequence != rec.seq {
		bad("acknowledged at sequence %d, then at %d", rec.seq, reply.Sequence)
	}
	rec.seq = cmp.Or(rec.seq, reply.Sequence)
	for _, e := range reply.Events {
		if e.VersionedName().String() != cmd.event() || !e.Timestamp.Equal(cmd.at) || e.StreamID != factsCmdStream || e.Sequence != reply.Sequence {
			bad("reply event %s at %s in %q seq %d, want %s at %s in %q seq %d", e.VersionedName(), e.Timestamp, e.StreamID, e.Sequence,
				cmd.event(), cmd.at, factsCmdStream, reply.Sequence)
		}
	}
}

// factsItem is one request of the workload: a batch of facts or a command.
type factsItem struct {
	facts []api.Fact
	cmd   *factsCommand
}

// itemsOf shuffles the plan's facts into batches of 1 to max and mixes
// the commands in, each after the first cmdsFrom (a fraction) of the fact
// batches, so that fewer of them find their bulb not created yet.
func itemsOf(rng *rand.Rand, facts []api.Fact, cmds []*factsCommand, max int, cmdsFrom float64) []factsItem {
	facts = slices.Clone(facts)
	rng.Shuffle(len(facts), func(i, j int) { facts[i], facts[j] = facts[j], facts[i] })
	type placed struct {
		at float64
		it factsItem
	}
	var order []placed
	for len(facts) > 0 {
		n := min(1+rng.IntN(max), len(facts))
		order = append(order, placed{rng.Float64(), factsItem{facts: facts[:n:n]}})
		facts = facts[n:]
	}
	for _, c := range cmds {
		order = append(order, placed{cmdsFrom + (1-cmdsFrom)*rng.Float64(), factsItem{cmd: c}})
	}
	slices.SortFunc(order, func(a, b placed) int { return cmp.Compare(a.at, b.at) })
	items := make([]factsItem, len(order))
	for i := range order {
		items[i] = order[i].it
	}
	return items
}

// drive sends items from workers goroutines, each waiting pace (on
// average; uniform in [0, 2·pace)) between its items, and returns a channel closed when all are settled.
func (r *factsRun) drive(items []factsItem, workers int, pace time.Duration, seed uint64, c *factsCounts) <-chan struct{} {
	done := make(chan struct{})
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			for {
				i := int(next.Add(1)) - 1
				if i >= len(items) {
					return
				}
				r.started.Add(1)
				if it := items[i]; it.cmd != nil {
					r.sendCommand(it.cmd, rng, c)
				} else {
					r.sendFacts(it.facts, rng, c)
				}
				if pace > 0 {
					time.Sleep(time.Duration(rng.Int64N(2 * int64(pace))))
				}
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	return done
}

// TestFacts: see the comment at the top of this file.
func TestFacts(t *testing.T) {
	seed := testsupport.Seed(t, 0, "CONCURSUS_FACTS_SEED")
	cassandraAddr(t) // skips without Cassandra
	t.Logf("seed %d (CONCURSUS_FACTS_SEED=%d reproduces the plan)", seed, seed)
	began := time.Now()
	plan := planFacts(seed, factsBulbs)
	rng := rand.New(rand.NewPCG(seed, 34))

	iptablesErr := prepareIptables(t)
	h := newClusterHarness(t, "it_facts")
	h.args = []string{"--gossip-profile", "local"}
	all := []string{"n1", "n2", "n3"}
	h.start("n1", true)
	h.start("n2", false)
	h.start("n3", false)
	h.waitConverged(all...)
	t.Logf("keyspace %s, NATS %s, 3 nodes agree after %.1fs", h.keyspace, h.natsURL, time.Since(began).Seconds())

	nc := connectNATS(t, h.natsURL, "facts-client", nats.ReconnectWait(100*time.Millisecond))
	run := newFactsRun(nc, plan)
	items := itemsOf(rng, plan.facts, plan.cmds, 100, 0.5)
	var first, resend factsCounts
	sendStart := time.Now()
	done := run.drive(items, factsWorkers, factsSpread*factsWorkers/time.Duration(len(items)), seed, &first)
	progress := func() float64 { return float64(run.started.Load()) / float64(len(items)) }
	finished := func() bool {
		select {
		case <-done:
			return true
		default:
			return false
		}
	}

	// SIGKILL one node in the middle; the survivors take over.
	waitUntil(t, 2*time.Minute, fmt.Sprintf("%.0f%% of the requests started", 100*factsKillAt), func() bool {
		return progress() >= factsKillAt || finished()
	})
	victim := all[rng.IntN(len(all))]
	var survivors []string
	for _, id := range all {
		if id != victim {
			survivors = append(survivors, id)
		}
	}
	// At a moment when fact requests are in flight, so that some are
	// cut short on the victim.
	inFlightWait := time.Now()
	for run.factsInFlight.Load() < 1 && time.Since(inFlightWait) < 10*time.Second && !finished() {
		time.Sleep(time.Millisecond)
	}
	inFlight := run.factsInFlight.Load()
	killedAt, killedProgress := time.Now(), progress()
	p := h.nodes[victim].proc
	if err := p.signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if exited, _ := p.wait(10 * time.Second); !exited {
		t.Fatalf("%s did not exit after SIGKILL", victim)
	}
	delete(h.nodes, victim)
	h.waitConverged(survivors...)
	t.Logf("SIGKILL %s at %.0f%% of the requests, %d fact requests in flight; %v agree on a ring without it %.1fs later",
		victim, 100*killedProgress, inFlight, survivors, time.Since(killedAt).Seconds())

	// A survivor is paused past failure detection while the load goes on:
	// the other takes its partitions, and when it resumes its cached states
	// and ring are from before (the log's fence and the history must keep
	// every fact once and every answer true).
	pauseAt := factsPauseAt
	if v := os.Getenv("CONCURSUS_FACTS_PAUSE_AT"); v != "" { // to put the pause right after the kill, say
		var err error
		if pauseAt, err = strconv.ParseFloat(v, 64); err != nil {
			t.Fatalf("CONCURSUS_FACTS_PAUSE_AT=%q: %v", v, err)
		}
	}
	waitUntil(t, 3*time.Minute, fmt.Sprintf("%.0f%% of the requests started", 100*pauseAt), func() bool {
		return progress() >= pauseAt || finished()
	})
	paused := survivors[rng.IntN(len(survivors))]
	pauseProgress := progress()
	pp := h.nodes[paused].proc
	if err := pp.signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pp.signal(syscall.SIGCONT) })
	time.Sleep(factsPause / 2)
	t.Logf("SIGSTOP %s: views mid-pause: %s", paused, clusterView(h, 1))
	time.Sleep(factsPause - factsPause/2)
	if err := pp.signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	h.waitConverged(survivors...)
	t.Logf("SIGSTOP %s at %.0f%% of the requests for %v (load still running: %v); %v agree again %.1fs after SIGCONT",
		paused, 100*pauseProgress, factsPause, !finished(), survivors, time.Since(resumed).Seconds())

	// A fresh node joins while the load goes on: partitions move again.
	waitUntil(t, 3*time.Minute, fmt.Sprintf("%.0f%% of the requests started", 100*factsRejoinAt), func() bool {
		return progress() >= factsRejoinAt || finished()
	})
	joinProgress := progress()
	h.start("n4", false)
	now := append(slices.Clone(survivors), "n4")
	h.waitConverged(now...)
	t.Logf("n4 joined at %.0f%% of the requests (load still running: %v); %v agree", 100*joinProgress, !finished(), now)

	// One node's gossip is cut from the others' while the load goes on:
	// each side sees the other dead and rings without it, so both sides
	// may decide on one aggregate until the heal. The log's fence, the
	// facts' identity and the replicated filter must keep every fact once
	// and every answer true.
	waitUntil(t, 3*time.Minute, fmt.Sprintf("%.0f%% of the requests started", 100*factsPartitionAt), func() bool {
		return progress() >= factsPartitionAt || finished()
	})
	partProgress, cut := progress(), "nobody (iptables not usable)"
	if iptablesErr != nil {
		t.Logf("!!!!! SKIPPING THE GOSSIP PARTITION: iptables is not usable here (%v) !!!!!", iptablesErr)
	} else {
		cut = now[rng.IntN(len(now))]
		part, err := cutGossip(t, h, cut, now)
		if err != nil {
			t.Fatalf("cutting the gossip of %s: %v", cut, err)
		}
		time.Sleep(factsPartition / 2)
		t.Logf("gossip of %s cut (%s): views mid-partition: %s", cut, part.mode, clusterView(h, len(now)))
		time.Sleep(factsPartition - factsPartition/2)
		healed := time.Now()
		for _, err := range part.heal() {
			t.Errorf("healing the partition: %v", err)
		}
		h.waitConverged(now...)
		t.Logf("gossip of %s cut at %.0f%% of the requests for %v (load still running: %v); %v agree again %.1fs after the heal",
			cut, 100*partProgress, factsPartition, !finished(), now, time.Since(healed).Seconds())
	}
	select {
	case <-done:
	case <-time.After(4 * time.Minute):
		t.Fatalf("the load did not finish within 4 minutes (%.0f%% started)", 100*progress())
	}
	sendTook := time.Since(sendStart)

	// Everything once more, in batches of up to 100: every answer must be
	// the original one.
	var unique []api.Fact
	run.mu.Lock()
	for _, rec := range run.mu.facts {
		unique = append(unique, rec.fact)
	}
	run.mu.Unlock()
	slices.SortFunc(unique, func(a, b api.Fact) int { return strings.Compare(keyOfFact(a).String(), keyOfFact(b).String()) })
	resendStart := time.Now()
	<-run.drive(itemsOf(rng, unique, plan.cmds, 100, 0), factsWorkers, 0, seed+1, &resend)
	resendTook := time.Since(resendStart)
	if n := resend.factOK.Load() - resend.factDup.Load(); n > 0 {
		t.Errorf("resending every fact stored %d of them again (every one should be a duplicate or refused)", n)
	}
	if n := resend.cmdOK.Load() + resend.cmdRejected.Load() - resend.cmdDup.Load(); n > 0 {
		t.Errorf("resending every command decided %d of them again (every one should get its original outcome)", n)
	}

	// The log, read with gocql.
	logRows := readFactsLog(t, h.cassandra, h.keyspace)
	run.mu.Lock()
	violations, summary := checkFactsLog(run.mu.facts, run.mu.cmds, logRows)
	run.mu.Unlock()
	t.Logf("log check: %s", summary)
	for i, v := range violations {
		if i == 40 {
			t.Errorf("… %d more violations", len(violations)-i)
			break
		}
		t.Errorf("seed %d: %s", seed, v)
	}

	// The node's answers against the oracle.
	queries, mismatches := checkFactsAnswers(t, nc, plan, run, rng)
	for i, m := range mismatches {
		if i == 20 {
			t.Errorf("… %d more mismatches", len(mismatches)-i)
			break
		}
		t.Errorf("seed %d: %s", seed, m)
	}

	var refusedTerm int
	run.mu.Lock()
	for _, rec := range run.mu.facts {
		if rec.refused[model.ReasonTerminated] > 0 {
			refusedTerm++
		}
	}
	rejected := make(map[string]int)
	for _, rec := range run.mu.cmds {
		if rec.outcome == "rejected" {
			rejected[rec.reason]++
		}
	}
	run.mu.Unlock()
	t.Logf("sent %d facts (%d distinct, %d copies in the set) about %d bulbs and %d commands in %d requests, %v (node %s SIGKILLed at %.0f%%, %s SIGSTOPped at %.0f%%, n4 joined at %.0f%%, gossip of %s cut at %.0f%%)",
		len(plan.facts), len(unique), len(plan.facts)-len(unique), len(plan.bulbs), len(plan.cmds), first.requests.Load(),
		sendTook.Round(100*time.Millisecond), victim, 100*killedProgress, paused, 100*pauseProgress, 100*joinProgress, cut, 100*partProgress)
	t.Logf("first sending: %d attempts, %d retries (%d without a reply), fact answers: %d ok (%d duplicates), %d late, %d placed waiting, %d refused, %d retryable; commands: %d ok, %d rejected, %d duplicates, %d retryable",
		first.attempts.Load(), first.retries.Load(), first.noReply.Load(), first.factOK.Load(), first.factDup.Load(), first.factLate.Load(),
		first.factWait.Load(), first.factRefused.Load(), first.factRetryable.Load(), first.cmdOK.Load(), first.cmdRejected.Load(), first.cmdDup.Load(), first.cmdRetryable.Load())
	t.Logf("resending everything (%v): %d attempts, %d retries, %d fact answers ok (%d duplicates), %d refused; commands %d ok, %d rejected, %d duplicates",
		resendTook.Round(100*time.Millisecond), resend.attempts.Load(), resend.retries.Load(), resend.factOK.Load(), resend.factDup.Load(),
		resend.factRefused.Load(), resend.cmdOK.Load(), resend.cmdRejected.Load(), resend.cmdDup.Load())
	t.Logf("%d distinct facts refused as terminated; commands rejected by reason %v; %d queries compared with the oracle, %d mismatches; %d log violations; whole test %v",
		refusedTerm, rejected, queries, len(mismatches), len(violations), time.Since(began).Round(100*time.Millisecond))
	h.reportLogs()
}

// factsLogRow is one row of the events table.
type factsLogRow struct {
	bucket    int
	seq       int64
	at        time.Time
	stream    string
	name      string
	version   int
	payload   []byte
	commandID string
	processed time.Time // processing_time: the events of one append share it
}

func (r factsLogRow) event() string { return r.name + "_" + strconv.Itoa(r.version) }

// readFactsLog reads every lightbulb event of keyspace, each history in
// log order.
func readFactsLog(t *testing.T, addr, keyspace string) map[string][]factsLogRow {
	t.Helper()
	c := gocql.NewCluster(addr)
	c.Timeout = 30 * time.Second
	c.Consistency = gocql.Quorum
	s, err := c.CreateSession()
	if err != nil {
		t.Fatalf("a gocql session for the checker: %v", err)
	}
	defer s.Close()
	out := make(map[string][]factsLogRow)
	it := s.Query("SELECT aggregate_type, aggregate_id, bucket, sequence, event_time, stream_id, name, version, payload, command_id, processing_time FROM " +
		keyspace + ".events").PageSize(2000).Iter()
	var (
		typ, id string
		seq     *int64
		row     factsLogRow
	)
	for it.Scan(&typ, &id, &row.bucket, &seq, &row.at, &row.stream, &row.name, &row.version, &row.payload, &row.commandID, &row.processed) {
		if typ == lightbulb.TypeName && seq != nil { // not a partition holding only its static head
			row.seq = *seq
			row.at = row.at.UTC()
			out[id] = append(out[id], row)
		}
		seq, row = nil, factsLogRow{}
	}
	if err := it.Close(); err != nil {
		t.Fatalf("reading %s.events: %v", keyspace, err)
	}
	for id := range out {
		slices.SortStableFunc(out[id], func(a, b factsLogRow) int { return cmp.Compare(a.seq, b.seq) })
	}
	return out
}

// checkFactsLog compares the histories with what the replies said. It
// returns the violations and a summary of what it checked.
func checkFactsLog(facts map[factKey]*factRecord, cmds map[string]*cmdRecord, log map[string][]factsLogRow) ([]string, string) {
	var v []string
	bad := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	byBulb := make(map[string][]*factRecord)
	for _, rec := range facts {
		byBulb[rec.key.bulb] = append(byBulb[rec.key.bulb], rec)
		for _, b := range rec.bad {
			bad("fact %s: %s", rec.key, b)
		}
		switch {
		case rec.seq != 0 && len(rec.refused) > 0:
			bad("fact %s: acknowledged at sequence %d and refused %v", rec.key, rec.seq, rec.refused)
		case rec.seq == 0 && len(rec.refused) == 0:
			bad("fact %s: never settled (no ok, no refusal) after the retries", rec.key)
		}
		for reason := range rec.refused {
			if reason != model.ReasonTerminated {
				bad("fact %s: refused with reason %q (only %q is possible for a fact)", rec.key, reason, model.ReasonTerminated)
			}
		}
	}
	cmdsByBulb := make(map[string][]*cmdRecord)
	for _, rec := range cmds {
		cmdsByBulb[rec.cmd.bulb] = append(cmdsByBulb[rec.cmd.bulb], rec)
		for _, b := range rec.bad {
			bad("command %s: %s", rec.cmd.id, b)
		}
		if rec.outcome == "" {
			bad("command %s: never decided after the retries", rec.cmd.id)
		}
	}
	var events, factRows, cmdRows, refusedChecked int
	for _, bulb := range slices.Sorted(maps.Keys(log)) {
		if byBulb[bulb] == nil && cmdsByBulb[bulb] == nil {
			bad("%s: %d events of a bulb the test never sent anything about", bulb, len(log[bulb]))
		}
	}
	for _, bulb := range slices.Sorted(maps.Keys(byBulb)) {
		rows := log[bulb]
		events += len(rows)
		var terminal, initial *factsLogRow // the earliest in event time
		inLog := make(map[factKey]int64)
		cmdEvents := make(map[string][]factsLogRow)
		for i := range rows {
			r := &rows[i]
			if r.seq != int64(i+1) {
				bad("%s: event #%d has sequence %d (a gap or a repeated sequence)", bulb, i+1, r.seq)
			}
			if r.name == "blown" && (terminal == nil || before(r, terminal)) {
				terminal = r
			}
			if r.name == "created" && (initial == nil || before(r, initial)) {
				initial = r
			}
			if r.commandID != "" {
				cmdRows++
				cmdEvents[r.commandID] = append(cmdEvents[r.commandID], *r)
				continue
			}
			factRows++
			k := factKey{bulb: bulb, event: r.event(), ms: r.at.UnixMilli(), stream: r.stream}
			if s, dup := inLog[k]; dup {
				bad("fact %s stored twice, at sequences %d and %d", k, s, r.seq)
				continue
			}
			inLog[k] = r.seq
			rec := facts[k]
			switch {
			case rec == nil:
				bad("%s: sequence %d holds fact %s, which was never sent", bulb, r.seq, k)
			case rec.seq == 0 && len(rec.refused) > 0:
				bad("fact %s was refused %v, yet the log holds it at sequence %d", k, rec.refused, r.seq)
			case rec.seq == 0:
				bad("fact %s is in the log at sequence %d but was never acknowledged", k, r.seq)
			case int64(rec.seq) != r.seq:
				bad("fact %s was acknowledged at sequence %d, the log holds it at %d", k, rec.seq, r.seq)
			case !sameJSON(orEmpty(rec.fact.Payload), r.payload):
				bad("fact %s: payload %s in the log, %s sent", k, r.payload, rec.fact.Payload)
			}
		}
		// Once the life has ended in the log (its terminal event and an
		// initial event stamped before it are recorded), nothing stamped
		// after the end is appended, and no command is accepted.
		var ended int64
		if initial != nil && terminal != nil && before(initial, terminal) {
			ended = max(initial.seq, terminal.seq)
		}
		for i := range rows {
			r := &rows[i]
			if ended == 0 || r.seq <= ended {
				continue
			}
			switch {
			case r.commandID != "":
				bad("%s: command %s has its event at sequence %d, after the life ended (terminal event recorded at sequence %d, initial at %d)",
					bulb, r.commandID, r.seq, terminal.seq, initial.seq)
			case before(terminal, r):
				same := ""
				if r.processed.Equal(terminal.processed) {
					same = "; it has the terminal event's processing time: one append, one facts request"
				}
				bad("%s: fact %s@%s/%s stamped after the terminal event is at sequence %d, after the life ended (terminal event recorded at sequence %d, initial at %d)%s",
					bulb, r.event(), r.at.Format(time.RFC3339Nano), r.stream, r.seq, terminal.seq, initial.seq, same)
			}
		}
		for _, rec := range byBulb[bulb] {
			_, there := inLog[rec.key]
			if rec.seq != 0 && !there {
				bad("fact %s was acknowledged at sequence %d and is not in the log (lost)", rec.key, rec.seq)
			}
			if rec.refused[model.ReasonTerminated] == 0 {
				continue
			}
			refusedChecked++
			switch ts := time.UnixMilli(rec.key.ms).UTC(); {
			case terminal == nil:
				bad("fact %s was refused as terminated, but the log holds no terminal event for %s", rec.key, bulb)
			case !before(terminal, &factsLogRow{at: ts, stream: rec.key.stream, seq: terminal.seq + 1}):
				bad("fact %s was refused as terminated, but the terminal event is stamped %s in %q (sequence %d), not before it",
					rec.key, terminal.at.Format(time.RFC3339Nano), terminal.stream, terminal.seq)
			}
		}
		for _, rec := range cmdsByBulb[bulb] {
			got := cmdEvents[rec.cmd.id]
			delete(cmdEvents, rec.cmd.id)
			switch {
			case rec.outcome != "ok" && len(got) > 0:
				bad("command %s (%s) was %s %s, yet the log holds %d events of it", rec.cmd.id, rec.cmd.command, cmp.Or(rec.outcome, "undecided"), rec.reason, len(got))
			case rec.outcome != "ok":
			case len(got) != 1:
				bad("command %s (%s) was acknowledged; the log holds %d events of it, want 1", rec.cmd.id, rec.cmd.command, len(got))
			case got[0].event() != rec.cmd.event() || !got[0].at.Equal(rec.cmd.at) || got[0].stream != factsCmdStream:
				bad("command %s: the log holds %s at %s in %q, want %s at %s in %q", rec.cmd.id, got[0].event(), got[0].at.Format(time.RFC3339Nano),
					got[0].stream, rec.cmd.event(), rec.cmd.at.Format(time.RFC3339Nano), factsCmdStream)
			case rec.seq != 0 && int64(rec.seq) != got[0].seq:
				bad("command %s was acknowledged at sequence %d, its event is at %d", rec.cmd.id, rec.seq, got[0].seq)
			}
		}
		for cid, rows := range cmdEvents {
			bad("%s: %d events of command %q, which the test never sent", bulb, len(rows), cid)
		}
	}
	return v, fmt.Sprintf("%d bulbs, %d events (%d facts, %d of commands), %d refused facts checked absent and after the terminal event, %d violations",
		len(byBulb), events, factRows, cmdRows, refusedChecked, len(v))
}

// orEmpty is a payload, {} when absent (as the node stores it).
func orEmpty(p json.RawMessage) json.RawMessage {
	if len(p) == 0 {
		return json.RawMessage(`{}`)
	}
	return p
}

// before reports whether a sorts before b in event-time order.
func before(a, b *factsLogRow) bool {
	return model.TimeKey{Timestamp: a.at, StreamID: a.stream, Sequence: uint64(a.seq)}.Before(
		model.TimeKey{Timestamp: b.at, StreamID: b.stream, Sequence: uint64(b.seq)})
}

// sameJSON compares two JSON values ignoring insignificant white space.
func sameJSON(a, b []byte) bool {
	var x, y bytes.Buffer
	return json.Compact(&x, a) == nil && json.Compact(&y, b) == nil && bytes.Equal(x.Bytes(), y.Bytes())
}

// oracleEvents is a bulb's history as the replies acknowledged it: its
// acknowledged facts and the events of its commands acknowledged ok, in a
// shuffled order, numbered 1..n in that order.
func oracleEvents(rng *rand.Rand, bulb string, facts []*factRecord, cmds []*cmdRecord) []model.Event {
	var out []model.Event
	add := func(event string, at time.Time, stream string, payload json.RawMessage, cid string) {
		name, err := model.ParseVersionedName(event)
		if err != nil {
			panic(err)
		}
		out = append(out, model.Event{AggregateType: lightbulb.TypeName, AggregateID: bulb, Timestamp: model.NormalizeTime(at),
			StreamID: stream, Name: name.Name, Version: name.Version, Payload: orEmpty(payload), CommandID: cid})
	}
	for _, rec := range facts {
		if rec.seq != 0 {
			add(rec.key.event, time.UnixMilli(rec.key.ms), rec.key.stream, rec.fact.Payload, "")
		}
	}
	for _, rec := range cmds {
		if rec.outcome == "ok" {
			add(rec.cmd.event(), rec.cmd.at, factsCmdStream, nil, rec.cmd.id)
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	for i := range out {
		out[i].Sequence = uint64(i + 1)
	}
	return out
}

// oracleAnswer renders what a query over events must answer: asOf zero
// means the whole history.
func oracleAnswer(lb *lightbulb.Lightbulb, events []model.Event, view string, asOf time.Time) (string, error) {
	var prefix []model.Event
	for _, e := range events {
		if asOf.IsZero() || !e.Timestamp.After(asOf) {
			prefix = append(prefix, e)
		}
	}
	slices.SortFunc(prefix, func(a, b model.Event) int { return a.TimeKey().Compare(b.TimeKey()) })
	exists, waiting := false, 0
	var last time.Time
	for _, e := range prefix {
		switch {
		case e.Name == "created":
			exists = true
		case !exists:
			waiting++
		}
		last = e.Timestamp
	}
	var value any
	var err error
	switch {
	case view == "" && asOf.IsZero():
		value, err = lb.Type.State().Replay(events)
	case view == "":
		value, err = lb.Type.State().ReplayAsOf(events, asOf)
	case asOf.IsZero():
		value, err = lb.Usage.Replay(events)
	default:
		value, err = lb.Usage.ReplayAsOf(events, asOf)
	}
	if err != nil {
		return "", err
	}
	return renderAnswer(exists, len(prefix), waiting, last, value), nil
}

func renderAnswer(exists bool, events, waiting int, last time.Time, value any) string {
	data, err := json.Marshal(value)
	if err != nil {
		panic(err)
	}
	lastS := "-"
	if !last.IsZero() {
		lastS = last.UTC().Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("exists=%v events=%d waiting=%d last=%s %s", exists, events, waiting, lastS, data)
}

// queryAnswer asks the cluster and renders its answer like oracleAnswer;
// it also returns the reply's sequence.
func queryAnswer(nc *nats.Conn, bulb, view string, asOf time.Time) (string, uint64, error) {
	q := api.Query{AggregateID: bulb, View: view}
	if !asOf.IsZero() {
		q.AsOf = asOf.Format(time.RFC3339Nano)
	}
	data, err := json.Marshal(q)
	if err != nil {
		return "", 0, err
	}
	var reply api.QueryReply
	for attempt := 0; ; attempt++ {
		m, err := nc.Request(api.QuerySubject(clusterPrefix, lightbulb.TypeName), data, factsAttempt)
		if err == nil {
			reply = api.QueryReply{}
			err = json.Unmarshal(m.Data, &reply)
		}
		if err == nil && reply.OK {
			break
		}
		if err == nil && !retryable(reply.Error) || attempt == 10 {
			return "", 0, fmt.Errorf("query %+v: %v %+v", q, err, reply.Error)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var value any
	if view == "" {
		value = new(lightbulb.Bulb)
	} else {
		value = new(lightbulb.Usage)
	}
	if len(reply.State) > 0 {
		if err := json.Unmarshal(reply.State, value); err != nil {
			return "", 0, fmt.Errorf("query %+v: state %s: %v", q, reply.State, err)
		}
	}
	if reply.Prefix == nil {
		return "", 0, fmt.Errorf("query %+v: no prefix in the reply", q)
	}
	var last time.Time
	if reply.Prefix.LastTimestamp != nil {
		last = *reply.Prefix.LastTimestamp
	}
	return renderAnswer(reply.Exists, reply.Prefix.Events, reply.Prefix.Waiting, last, value), reply.Sequence, nil
}

// instantsOf picks the asOf instants of a bulb: before everything, at and
// just before random events' timestamps, at the terminal event and after
// it, and far in the future.
func instantsOf(rng *rand.Rand, events []model.Event) []time.Time {
	if len(events) == 0 {
		return []time.Time{factsEpoch}
	}
	var out []time.Time
	first, lastTS := events[0].Timestamp, events[0].Timestamp
	for _, e := range events {
		first, lastTS = minTime(first, e.Timestamp), maxTime(lastTS, e.Timestamp)
		if e.Name == "blown" {
			out = append(out, e.Timestamp, e.Timestamp.Add(time.Minute))
		}
	}
	out = append(out, first.Add(-time.Millisecond), lastTS.Add(24*time.Hour))
	for range 3 {
		e := events[rng.IntN(len(events))]
		out = append(out, e.Timestamp, e.Timestamp.Add(-time.Millisecond))
	}
	span := lastTS.Sub(first)
	out = append(out, first.Add(time.Duration(rng.Int64N(int64(span)+1))))
	return out
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// checkFactsAnswers queries every bulb's state and usage, whole and as of
// several instants, and compares each answer with the oracle's; it
// returns how many queries it compared and the mismatches.
func checkFactsAnswers(t *testing.T, nc *nats.Conn, plan *factsPlan, run *factsRun, rng *rand.Rand) (int, []string) {
	t.Helper()
	lb := lightbulb.Define()
	type job struct {
		bulb   string
		events []model.Event
		asOf   []time.Time
	}
	var jobs []job
	run.mu.Lock()
	byBulbF := make(map[string][]*factRecord)
	for _, rec := range run.mu.facts {
		byBulbF[rec.key.bulb] = append(byBulbF[rec.key.bulb], rec)
	}
	byBulbC := make(map[string][]*cmdRecord)
	for _, rec := range run.mu.cmds {
		byBulbC[rec.cmd.bulb] = append(byBulbC[rec.cmd.bulb], rec)
	}
	for _, b := range plan.bulbs {
		slices.SortFunc(byBulbF[b], func(x, y *factRecord) int { return strings.Compare(x.key.String(), y.key.String()) })
		slices.SortFunc(byBulbC[b], func(x, y *cmdRecord) int { return strings.Compare(x.cmd.id, y.cmd.id) })
		events := oracleEvents(rng, b, byBulbF[b], byBulbC[b])
		jobs = append(jobs, job{bulb: b, events: events, asOf: append([]time.Time{{}}, instantsOf(rng, events)...)})
	}
	run.mu.Unlock()

	var (
		mu         sync.Mutex
		mismatches []string
		queries    atomic.Int64
		next       atomic.Int64
		wg         sync.WaitGroup
	)
	mismatch := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		mismatches = append(mismatches, fmt.Sprintf(format, args...))
	}
	for range 4 {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(jobs) {
					return
				}
				j := jobs[i]
				for _, asOf := range j.asOf {
					for _, view := range []string{"", "usage"} {
						queries.Add(1)
						at := "now"
						if !asOf.IsZero() {
							at = asOf.Format(time.RFC3339Nano)
						}
						want, err := oracleAnswer(lb, j.events, view, asOf)
						if err != nil {
							mismatch("%s: the oracle cannot fold its events: %v", j.bulb, err)
							continue
						}
						got, seq, err := queryAnswer(nc, j.bulb, view, asOf)
						switch {
						case err != nil:
							mismatch("%s: %v", j.bulb, err)
						case got != want:
							mismatch("%s view %q as of %s:\n\twant %s\n\t got %s", j.bulb, cmp.Or(view, "state"), at, want, got)
						case asOf.IsZero() && seq != uint64(len(j.events)):
							mismatch("%s view %q: folded to sequence %d, the oracle has %d events", j.bulb, cmp.Or(view, "state"), seq, len(j.events))
						case !asOf.IsZero() && seq != 0:
							mismatch("%s view %q as of %s: the reply claims sequence %d", j.bulb, cmp.Or(view, "state"), at, seq)
						}
					}
				}
			}
		})
	}
	wg.Wait()
	slices.Sort(mismatches)
	return int(queries.Load()), mismatches
}

// TestFactsCheckerSelf plants faults into a small history and shows that
// checkFactsLog finds each of them, and that the oracle notices a
// missing event; it needs no service.
func TestFactsCheckerSelf(t *testing.T) {
	at := func(m int) time.Time { return factsEpoch.Add(time.Duration(m) * time.Minute) }
	fact := func(event string, m int, stream, payload string) api.Fact {
		f := api.Fact{AggregateID: "b", Event: event, Timestamp: at(m).Format(time.RFC3339Nano), StreamID: stream}
		if payload != "" {
			f.Payload = json.RawMessage(payload)
		}
		return f
	}
	sent := []api.Fact{
		fact("created_0", 0, "", `{"wattage":60}`),
		fact("screwedIn_0", 1, "s", `{"location":"hall"}`),
		fact("switchedOn_0", 2, "s", ""),
		fact("blown_0", 3, "s", ""),
		fact("switchedOff_0", 4, "s", ""), // refused: after the terminal event
	}
	cmd := &factsCommand{id: "b-c0", bulb: "b", command: "switchOff", at: at(2).Add(30 * time.Second)}
	rejectedCmd := &factsCommand{id: "b-c1", bulb: "b", command: "switchOn", at: at(5)}
	// The records as a clean run leaves them, and the matching log.
	clean := func() (map[factKey]*factRecord, map[string]*cmdRecord, map[string][]factsLogRow) {
		facts := make(map[factKey]*factRecord)
		log := map[string][]factsLogRow{}
		for i, f := range sent {
			k := keyOfFact(f)
			rec := &factRecord{key: k, fact: f, copies: 1, refused: map[string]int{}}
			facts[k] = rec
			if i == 4 {
				rec.refused[model.ReasonTerminated] = 1
				continue
			}
			if i == 3 { // the command's event, before the terminal one
				log["b"] = append(log["b"], factsLogRow{seq: int64(len(log["b"]) + 1), at: cmd.at, stream: factsCmdStream,
					name: "switchedOff", payload: []byte(`{}`), commandID: cmd.id})
			}
			rec.seq, rec.stored = uint64(len(log["b"])+1), 1
			name, _ := model.ParseVersionedName(f.Event)
			log["b"] = append(log["b"], factsLogRow{seq: int64(rec.seq), at: time.UnixMilli(k.ms).UTC(), stream: k.stream,
				name: name.Name, version: name.Version, payload: orEmpty(f.Payload)})
		}
		cmds := map[string]*cmdRecord{
			cmd.id:         {cmd: cmd, outcome: "ok", seq: 4},
			rejectedCmd.id: {cmd: rejectedCmd, outcome: "rejected", reason: model.ReasonTerminated},
		}
		return facts, cmds, log
	}
	if v, _ := checkFactsLog(clean()); len(v) > 0 {
		t.Fatalf("violations in a clean history: %v", v)
	}
	plants := []struct {
		name, want string
		plant      func(map[factKey]*factRecord, map[string]*cmdRecord, map[string][]factsLogRow)
	}{
		{"lost fact", "not in the log (lost)", func(_ map[factKey]*factRecord, _ map[string]*cmdRecord, l map[string][]factsLogRow) {
			l["b"] = append(l["b"][:2], l["b"][3:]...)
			for i := range l["b"] {
				l["b"][i].seq = int64(i + 1)
			}
		}},
		{"fact stored twice", "stored twice", func(_ map[factKey]*factRecord, _ map[string]*cmdRecord, l map[string][]factsLogRow) {
			r := l["b"][2]
			r.seq = int64(len(l["b"]) + 1)
			l["b"] = append(l["b"], r)
		}},
		{"gap", "a gap", func(_ map[factKey]*factRecord, _ map[string]*cmdRecord, l map[string][]factsLogRow) {
			l["b"][4].seq = 7
		}},
		{"extra fact", "never sent", func(_ map[factKey]*factRecord, _ map[string]*cmdRecord, l map[string][]factsLogRow) {
			r := l["b"][2]
			r.seq, r.at = int64(len(l["b"])+1), r.at.Add(time.Second)
			l["b"] = append(l["b"], r)
		}},
		{"refused fact stored", "yet the log holds it", func(f map[factKey]*factRecord, _ map[string]*cmdRecord, l map[string][]factsLogRow) {
			k := keyOfFact(sent[4])
			l["b"] = append(l["b"], factsLogRow{seq: int64(len(l["b"]) + 1), at: time.UnixMilli(k.ms).UTC(), stream: k.stream, name: "switchedOff", payload: []byte(`{}`)})
		}},
		{"refused before the terminal event", "not before it", func(f map[factKey]*factRecord, _ map[string]*cmdRecord, l map[string][]factsLogRow) {
			l["b"][4].at = at(10) // the terminal event as recorded is later than the refused fact
		}},
		{"wrong sequence", "the log holds it at", func(f map[factKey]*factRecord, _ map[string]*cmdRecord, _ map[string][]factsLogRow) {
			f[keyOfFact(sent[1])].seq = 3
		}},
		{"wrong payload", "payload", func(_ map[factKey]*factRecord, _ map[string]*cmdRecord, l map[string][]factsLogRow) {
			l["b"][0].payload = []byte(`{"wattage":61}`)
		}},
		{"rejected command stored", "yet the log holds", func(_ map[factKey]*factRecord, _ map[string]*cmdRecord, l map[string][]factsLogRow) {
			l["b"] = append(l["b"], factsLogRow{seq: int64(len(l["b"]) + 1), at: rejectedCmd.at, stream: factsCmdStream, name: "switchedOn", payload: []byte(`{}`), commandID: rejectedCmd.id})
		}},
		{"acknowledged command lost", "want 1", func(_ map[factKey]*factRecord, _ map[string]*cmdRecord, l map[string][]factsLogRow) {
			l["b"][3].commandID = "b-c9"
		}},
		{"fact stored after the terminal event", "after the life ended", func(f map[factKey]*factRecord, _ map[string]*cmdRecord, l map[string][]factsLogRow) {
			rec := f[keyOfFact(sent[4])]
			rec.refused, rec.seq, rec.stored = map[string]int{}, 6, 1
			l["b"] = append(l["b"], factsLogRow{seq: 6, at: time.UnixMilli(rec.key.ms).UTC(), stream: rec.key.stream, name: "switchedOff", payload: []byte(`{}`)})
		}},
		{"command accepted after the terminal event", "after the life ended", func(_ map[factKey]*factRecord, c map[string]*cmdRecord, l map[string][]factsLogRow) {
			c[rejectedCmd.id].outcome, c[rejectedCmd.id].reason, c[rejectedCmd.id].seq = "ok", "", 6
			l["b"] = append(l["b"], factsLogRow{seq: 6, at: rejectedCmd.at, stream: factsCmdStream, name: "switchedOn", payload: []byte(`{}`), commandID: rejectedCmd.id})
		}},
		{"ok and refused", "acknowledged at sequence", func(f map[factKey]*factRecord, _ map[string]*cmdRecord, _ map[string][]factsLogRow) {
			f[keyOfFact(sent[2])].refused[model.ReasonTerminated] = 1
		}},
	}
	for _, p := range plants {
		facts, cmds, log := clean()
		p.plant(facts, cmds, log)
		v, _ := checkFactsLog(facts, cmds, log)
		if !slices.ContainsFunc(v, func(s string) bool { return strings.Contains(s, p.want) }) {
			t.Errorf("%s: not found (want a violation containing %q); violations: %q", p.name, p.want, v)
		}
	}

	// The oracle: the clean history folds to an off, blown bulb that was
	// on from minute 2 to minute 2.5; without the command's event it
	// would still count the bulb on until it blew.
	facts, cmds, _ := clean()
	lb := lightbulb.Define()
	var fs []*factRecord
	for _, rec := range facts {
		fs = append(fs, rec)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	all := oracleEvents(rng, "b", fs, []*cmdRecord{cmds[cmd.id], cmds[rejectedCmd.id]})
	withoutCmd := oracleEvents(rng, "b", fs, nil)
	want := `exists=true events=5 waiting=0 last=2026-12-03T18:03:00Z {"onMillis":30000,"switches":1}`
	if got, err := oracleAnswer(lb, all, "usage", time.Time{}); err != nil || got != want {
		t.Errorf("oracle usage: %q (%v), want %q", got, err, want)
	}
	if a, _ := oracleAnswer(lb, all, "usage", at(3)); a == mustAnswer(t, lb, withoutCmd, "usage", at(3)) {
		t.Errorf("the oracle does not see a missing command event: %s", a)
	}
}

func mustAnswer(t *testing.T, lb *lightbulb.Lightbulb, events []model.Event, view string, asOf time.Time) string {
	t.Helper()
	a, err := oracleAnswer(lb, events, view, asOf)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
