package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/node"
)

// Defaults of -facts where -c and -k are not given: a batch of 100 facts
// is a request, so fewer requests in flight keep as many facts moving as
// the command path's 128 commands, and a thousand sources are a building.
const (
	factsDefaultC = 16
	factsDefaultK = 1000
)

// factsStep is the event time between one aggregate's in-order facts; a
// late fact lands inside one of these gaps, at a millisecond offset of its
// own.
const factsStep = time.Minute

// factsSetup is how many in-order facts each aggregate gets before the
// measured part: from the third on, a fact can be late after screwedIn_0.
const factsSetup = 3

// factsEpoch is the event time of every aggregate's first fact.
var factsEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// benchFacts measures fact ingestion beside the command path, each
// scenario on a fresh store with fresh aggregates: the command path
// (switchOn/switchOff, as the default scenario), then facts in batches of
// -facts-batch over K aggregates at concurrency C, in order (every
// aggregate's facts in increasing event time) and out of order (with
// -late-share of them late: stamped before facts already sent for their
// aggregate). The two fact scenarios run on two nodes at once, under
// prefixes of their own, and are measured in alternating rounds
// (-facts-rounds), so that both see the same background load on a shared
// machine. It checks every answer, prints facts/s beside commands/s and
// ends with "out-of-order/in-order ratio: X.XX". Any fact answered with an
// error, as a duplicate, or with another late mark than the one it was
// sent to get fails the run.
func benchFacts(p params, url string, conns []*nats.Conn, opener func() (node.StoreOpener, func())) error {
	fmt.Printf("facts: batches of %d, late share %.0f%%, event times %s apart per aggregate, %d alternating rounds\n\n",
		p.factsBatch, 100*p.lateShare, factsStep, p.factsRounds)

	cp := p
	cp.cpuProfile = "" // -cpuprofile profiles the facts rounds below
	op, done := opener()
	cmd, _, err := benchCommandsWith(cp, url, conns, op, nil)
	done()
	if err != nil {
		return fmt.Errorf("command path: %w", err)
	}
	cmd.print("command-path")
	fmt.Println()

	var scen [2]*factsScenario
	for i, name := range []string{"in-order", "out-of-order"} {
		op, done := opener()
		defer done()
		s, err := startFactsScenario(p, url, conns, op, name, []float64{0, p.lateShare}[i])
		if err != nil {
			return fmt.Errorf("facts %s: %w", name, err)
		}
		defer s.stop()
		scen[i] = s
	}
	if p.cpuProfile != "" {
		f, err := os.Create(p.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	for round := range p.factsRounds {
		rp := p
		rp.duration = p.duration / time.Duration(p.factsRounds)
		if round > 0 {
			rp.warmup = p.warmup / 4
		}
		fmt.Printf("round %d:", round+1)
		for _, s := range scen {
			r := s.round(rp, conns)
			fmt.Printf("  %s %.0f facts/s", s.name, float64(r.ok)*float64(s.batch)/r.elapsed.Seconds())
		}
		fmt.Println()
	}
	for _, s := range scen {
		if err := s.finish(); err != nil {
			return fmt.Errorf("facts %s: %w", s.name, err)
		}
		s.print()
	}

	fmt.Printf("\ncommands/s %9.0f   (command path, C=%d)\n", cmd.throughput(), p.c)
	fmt.Printf("facts/s    %9.0f   (in order, batches of %d, C=%d)\n", scen[0].factsPerSecond(), p.factsBatch, p.c)
	fmt.Printf("facts/s    %9.0f   (%.1f%% late: %d sent late, %d answered late)\n",
		scen[1].factsPerSecond(), 100*scen[1].lateShare(), scen[1].sentLate, scen[1].lateAnswered)
	var failed error
	for _, s := range scen {
		failed = errors.Join(failed, s.check())
	}
	if cmd.failed > 0 {
		failed = errors.Join(failed, fmt.Errorf("command path: %d commands failed", cmd.failed))
	}
	if failed != nil {
		fmt.Printf("\n!!! FAILED: the run had errors; its figures do not count:\n%v\n", failed)
		return failed
	}
	fmt.Printf("\nout-of-order/in-order ratio: %.2f\n", scen[1].factsPerSecond()/scen[0].factsPerSecond())
	return nil
}

// factsScenario is one facts workload on a node of its own: workers send
// batches of facts for their own aggregates (worker w owns every C-th
// one, so each aggregate's facts go out one batch at a time, and in order
// within a batch, whose facts of one aggregate the node ingests in
// order), a share late of them late. Counters are updated atomically by
// the workers and read once they stopped.
type factsScenario struct {
	name    string
	late    float64 // share of the facts sent late
	batch   int
	subject string
	n       *node.Node
	stop    func() error
	workers []*factsWorker

	measured result // one "op" per batch request, summed over the rounds' measured parts

	setup          int64 // facts sent in the set-up (none late)
	sent, sentLate int64 // facts sent after it (answered or not), those sent to be late
	acked          int64 // facts answered OK
	lateAnswered   int64 // of them, those answered late
	errs           int64 // facts answered with an error, or not answered
	wrong          int64 // answered OK, but as a duplicate, not applied, or with another late mark than sent
	firstErr       atomic.Value
	stored         int64 // facts the node recorded (executor stats)
	storedLate     int64 // late events the node recorded
	refolds        int64 // cached states the node refolded
}

// startFactsScenario starts the scenario's node under a prefix and node
// id of its own (the scenarios' nodes run side by side on one NATS
// server) and sends every aggregate's first factsSetup facts (checked, not
// measured), so that from the first measured batch on any fact can be
// late.
func startFactsScenario(p params, url string, conns []*nats.Conn, opener node.StoreOpener, name string, late float64) (*factsScenario, error) {
	prefix := "bench-" + name
	if p.dataDir != "" {
		p.dataDir = filepath.Join(p.dataDir, name)
	}
	n, stop, err := startBenchNode(p, url, opener, func(c *node.Config) {
		c.NodeID, c.Prefix = "bench-"+name, prefix
	})
	if err != nil {
		return nil, err
	}
	s := &factsScenario{name: name, late: late, batch: p.factsBatch, n: n, stop: stop,
		subject: api.FactsSubject(prefix, lightbulb.TypeName), workers: make([]*factsWorker, p.c)}
	runID := time.Now().UnixNano()
	for w := range s.workers {
		fw := &factsWorker{rng: rand.New(rand.NewPCG(uint64(w), uint64(runID)))}
		for i := w; i < p.k; i += p.c {
			fw.aggs = append(fw.aggs, factsAggregate{id: fmt.Sprintf("facts-%s-%x-%06d", name, runID, i)})
		}
		s.workers[w] = fw
	}
	fmt.Printf("%s: setting up %d lightbulbs (%d facts each)...\n", name, p.k, factsSetup)
	t0 := time.Now()
	var wg sync.WaitGroup
	for w, fw := range s.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left := factsSetup * len(fw.aggs); left > 0; {
				facts, isLate := fw.nextBatch(min(left, p.factsBatch), 0)
				left -= len(facts)
				atomic.AddInt64(&s.setup, int64(len(facts)))
				if s.send(conns[w%len(conns)], facts, isLate) != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if s.errs > 0 || s.wrong > 0 {
		_ = stop()
		return nil, fmt.Errorf("set-up: %d facts failed, %d answered wrongly (first: %v)", s.errs, s.wrong, s.firstErr.Load())
	}
	fmt.Printf("%s: set-up done in %s\n", name, time.Since(t0).Round(time.Millisecond))
	return s, nil
}

// round measures the scenario for p.warmup + p.duration, adds the
// measured part to s.measured and returns it.
func (s *factsScenario) round(p params, conns []*nats.Conn) *result {
	var r *result
	// A round measures at least one answered batch: on a machine so
	// loaded (or with a -duration so short) that none came back in time,
	// it measures again rather than report nothing.
	for range 50 {
		r = drive(p, func(w int, ctx context.Context) error {
			facts, isLate := s.workers[w].nextBatch(s.batch, s.late)
			atomic.AddInt64(&s.sent, int64(len(facts)))
			for _, l := range isLate {
				if l {
					atomic.AddInt64(&s.sentLate, 1)
				}
			}
			return s.send(conns[w%len(conns)], facts, isLate)
		})
		s.measured.ok += r.ok
		s.measured.failed += r.failed
		s.measured.elapsed += r.elapsed
		s.measured.latencies = append(s.measured.latencies, r.latencies...)
		if r.ok > 0 || r.failed > 0 {
			break
		}
	}
	return r
}

// finish reads the node's counters and stops it.
func (s *factsScenario) finish() error {
	st := s.n.Executor().Stats()
	s.stored, s.storedLate, s.refolds = st.Facts, st.LateEvents, st.Refolds
	return s.stop()
}

func (s *factsScenario) factsPerSecond() float64 {
	return float64(s.measured.ok) * float64(s.batch) / s.measured.elapsed.Seconds()
}

func (s *factsScenario) lateShare() float64 { return float64(s.sentLate) / float64(max(s.sent, 1)) }

func (s *factsScenario) fail(counter *int64, err error) {
	atomic.AddInt64(counter, 1)
	s.firstErr.CompareAndSwap(nil, err)
}

func (s *factsScenario) print() {
	s.measured.note = fmt.Sprintf("  (%.0f facts/s, batches of %d)", s.factsPerSecond(), s.batch)
	s.measured.print(s.name)
	fmt.Printf("  facts sent %d after %d in set-up (%d late = %.1f%%); answered ok %d, late %d; node recorded %d facts, %d late, %d refolds\n",
		s.sent, s.setup, s.sentLate, 100*s.lateShare(), s.acked, s.lateAnswered, s.stored, s.storedLate, s.refolds)
}

// check says what went wrong in the scenario, nil if nothing.
func (s *factsScenario) check() error {
	var errs []error
	if s.errs > 0 || s.wrong > 0 || s.measured.failed > 0 {
		first, _ := s.firstErr.Load().(error)
		errs = append(errs, fmt.Errorf("facts %s: %d facts failed, %d answered wrongly (first: %v)", s.name, s.errs, s.wrong, first))
	}
	if s.lateAnswered != s.sentLate {
		errs = append(errs, fmt.Errorf("facts %s: %d facts sent late, %d answered late", s.name, s.sentLate, s.lateAnswered))
	}
	if s.stored != s.acked || s.storedLate != s.lateAnswered {
		errs = append(errs, fmt.Errorf("facts %s: %d facts acknowledged (%d late), the node recorded %d (%d late)", s.name, s.acked, s.lateAnswered, s.stored, s.storedLate))
	}
	if s.measured.ok == 0 {
		errs = append(errs, fmt.Errorf("facts %s: no batch answered in the measured time", s.name))
	}
	return errors.Join(errs...)
}

// send sends one batch and checks the answer to every fact.
func (s *factsScenario) send(nc *nats.Conn, facts []api.Fact, isLate []bool) error {
	body, err := json.Marshal(api.FactsRequest{Facts: facts, TimeoutMs: 30_000})
	if err != nil {
		return err
	}
	failAll := func(err error) error {
		err = fmt.Errorf("batch of %d facts: %w", len(facts), err)
		atomic.AddInt64(&s.errs, int64(len(facts)))
		s.firstErr.CompareAndSwap(nil, err)
		return err
	}
	m, err := nc.Request(s.subject, body, 30*time.Second)
	if err != nil {
		return failAll(err)
	}
	var reply api.FactsReply
	if err := json.Unmarshal(m.Data, &reply); err != nil {
		return failAll(fmt.Errorf("reply unreadable: %w: %.200s", err, m.Data))
	}
	if reply.Error != nil || len(reply.Results) != len(facts) {
		return failAll(fmt.Errorf("refused (%d results): %v", len(reply.Results), reply.Error))
	}
	var bad error
	for i, res := range reply.Results {
		f := facts[i]
		switch {
		case !res.OK:
			bad = fmt.Errorf("%s %s at %s: %v", f.AggregateID, f.Event, f.Timestamp, res.Error)
			s.fail(&s.errs, bad)
			continue
		case res.Duplicate || res.Place != "applied" || res.AggregateID != f.AggregateID:
			bad = fmt.Errorf("%s %s at %s: answered %+v, want a new fact, applied", f.AggregateID, f.Event, f.Timestamp, res)
			s.fail(&s.wrong, bad)
		case res.Late != isLate[i]:
			bad = fmt.Errorf("%s %s at %s: answered late=%v, sent late=%v", f.AggregateID, f.Event, f.Timestamp, res.Late, isLate[i])
			s.fail(&s.wrong, bad)
		}
		atomic.AddInt64(&s.acked, 1)
		if res.Late {
			atomic.AddInt64(&s.lateAnswered, 1)
		}
	}
	return bad
}

// factsWorker makes the batches of one client; only its goroutine uses it.
type factsWorker struct {
	rng  *rand.Rand
	aggs []factsAggregate
	next int // the aggregate the next fact is for (round-robin)
}

// factsAggregate is what a worker has sent for one aggregate: inOrder
// facts at factsEpoch + i·factsStep (i < inOrder), and lates late ones.
type factsAggregate struct {
	id             string
	inOrder, lates int
}

// nextBatch returns the next n facts, walking the worker's aggregates
// round-robin, and which of them are late (a share late of them, once
// their aggregate has factsSetup facts).
//
// An aggregate's in-order facts are created_0, screwedIn_0, then
// switchedOn_0 and switchedOff_0 alternating, factsStep apart. A late fact
// (switchedOn_0 or switchedOff_0) goes into one of the last four gaps
// between in-order facts already sent (after screwedIn_0), at an offset of
// as many milliseconds as the aggregate's late facts so far plus one: its
// identity is new, and an event stamped after it was sent before it (in an
// earlier batch, answered, or earlier in this one, whose facts of one
// aggregate are ingested in order), so it is late when it arrives.
func (fw *factsWorker) nextBatch(n int, late float64) ([]api.Fact, []bool) {
	facts := make([]api.Fact, 0, n)
	isLate := make([]bool, 0, n)
	for range n {
		a := &fw.aggs[fw.next]
		fw.next = (fw.next + 1) % len(fw.aggs)
		if a.inOrder >= factsSetup && a.lates+1 < int(factsStep/time.Millisecond) && fw.rng.Float64() < late {
			gap := a.inOrder - 1 - fw.rng.IntN(min(4, a.inOrder-2)) // fact `gap` was sent; gap >= 2
			ts := factsEpoch.Add(time.Duration(gap-1)*factsStep + time.Duration(a.lates+1)*time.Millisecond)
			ev := "switchedOn_0"
			if a.lates%2 == 1 {
				ev = "switchedOff_0"
			}
			a.lates++
			facts = append(facts, api.Fact{AggregateID: a.id, Event: ev, Timestamp: ts.Format(time.RFC3339Nano)})
			isLate = append(isLate, true)
			continue
		}
		f := api.Fact{AggregateID: a.id, Timestamp: factsEpoch.Add(time.Duration(a.inOrder) * factsStep).Format(time.RFC3339Nano)}
		switch {
		case a.inOrder == 0:
			f.Event, f.Payload = "created_0", json.RawMessage(`{"wattage":60}`)
		case a.inOrder == 1:
			f.Event, f.Payload = "screwedIn_0", json.RawMessage(`{"location":"lab"}`)
		case a.inOrder%2 == 0:
			f.Event = "switchedOn_0"
		default:
			f.Event = "switchedOff_0"
		}
		a.inOrder++
		facts = append(facts, f)
		isLate = append(isLate, false)
	}
	return facts, isLate
}
