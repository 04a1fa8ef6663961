package main

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/internal/testsupport"
)

// tinyFactsParams is a facts run of a few hundred facts: it checks the
// workload and its checks, not throughput (nothing here asserts on time).
func tinyFactsParams(t *testing.T) params {
	return params{
		c: 2, k: 20, conns: 1,
		duration: 100 * time.Millisecond, warmup: 20 * time.Millisecond,
		dataDir: t.TempDir(), store: "embedded",
		facts: true, factsBatch: 10, factsRounds: 2, lateShare: 0.1,
	}
}

func benchNATS(t *testing.T) (string, []*nats.Conn) {
	t.Helper()
	url := testsupport.NATS(t).ClientURL()
	return url, []*nats.Conn{testsupport.Connect(t, url)}
}

// TestFactsScenarioLate runs the out-of-order scenario and checks that
// the facts meant to be late were answered late, each of them, and that
// the node recorded every acknowledged fact once.
func TestFactsScenarioLate(t *testing.T) {
	p := tinyFactsParams(t)
	url, conns := benchNATS(t)
	s, err := startFactsScenario(p, url, conns, nil, "out-of-order", 0.5)
	if err != nil {
		t.Fatal(err)
	}
	s.round(p, conns)
	if err := s.finish(); err != nil {
		t.Fatal(err)
	}
	if err := s.check(); err != nil {
		t.Fatal(err)
	}
	if s.setup != factsSetup*int64(p.k) || s.sentLate == 0 || s.lateAnswered != s.sentLate || s.storedLate != s.sentLate ||
		s.acked != s.setup+s.sent || s.stored != s.acked {
		t.Fatalf("set-up %d, sent %d (%d late), acknowledged %d (%d late), recorded %d (%d late)",
			s.setup, s.sent, s.sentLate, s.acked, s.lateAnswered, s.stored, s.storedLate)
	}
	t.Logf("sent %d facts after %d in set-up, %d late; %d refolds", s.sent, s.setup, s.sentLate, s.refolds)
}

// TestFactsBatchesAreGenuinelyLate checks the workload itself: every fact
// marked late is stamped before an in-order fact of its aggregate sent
// before it, no identity repeats, and in-order facts increase.
func TestFactsBatchesAreGenuinelyLate(t *testing.T) {
	fw := &factsWorker{rng: rand.New(rand.NewPCG(1, 2)), aggs: []factsAggregate{{id: "a"}, {id: "b"}, {id: "c"}}}
	seen := map[string]bool{}
	latest := map[string]time.Time{}
	lates := 0
	for range 50 {
		facts, isLate := fw.nextBatch(7, 0.3)
		for i, f := range facts {
			key := f.AggregateID + "|" + f.Event + "|" + f.Timestamp
			if seen[key] {
				t.Fatalf("fact %s sent twice", key)
			}
			seen[key] = true
			ts, err := time.Parse(time.RFC3339Nano, f.Timestamp)
			if err != nil {
				t.Fatal(err)
			}
			if isLate[i] {
				lates++
				if !ts.Before(latest[f.AggregateID]) || ts.Before(factsEpoch.Add(factsStep)) {
					t.Fatalf("late fact %+v is not before %s or not after screwedIn_0", f, latest[f.AggregateID])
				}
				continue
			}
			if !ts.After(latest[f.AggregateID]) && !latest[f.AggregateID].IsZero() {
				t.Fatalf("in-order fact %+v is not after %s", f, latest[f.AggregateID])
			}
			latest[f.AggregateID] = ts
		}
	}
	if lates == 0 {
		t.Fatal("no late facts")
	}
}

// TestBenchFacts runs the whole -facts mode tiny: command path, both fact
// scenarios, the checks and the ratio line.
func TestBenchFacts(t *testing.T) {
	p := tinyFactsParams(t)
	url, conns := benchNATS(t)
	if err := benchFacts(p, url, conns, freshStores(p, "facts")); err != nil {
		t.Fatal(err)
	}
}

// TestFactsScenarioFailsOnWrongAnswers makes the workload send facts
// again (duplicates): the scenario's check must fail, so that the run
// says so and exits non-zero.
func TestFactsScenarioFailsOnWrongAnswers(t *testing.T) {
	p := tinyFactsParams(t)
	url, conns := benchNATS(t)
	s, err := startFactsScenario(p, url, conns, nil, "in-order", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, fw := range s.workers {
		for i := range fw.aggs {
			fw.aggs[i].inOrder = 0 // forget what was sent: the next facts are duplicates
		}
	}
	s.round(p, conns)
	if err := s.finish(); err != nil {
		t.Fatal(err)
	}
	err = s.check()
	if err == nil || s.wrong == 0 {
		t.Fatalf("duplicates went unnoticed: wrong %d, check %v", s.wrong, err)
	}
	t.Logf("check: %v", err)
}
