package storetest

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

// BenchOpener returns a fresh, empty store for one benchmark; it must
// register the store's Close with b.Cleanup. Benchmarks should open stores
// with their durable (fsync) defaults.
type BenchOpener func(b *testing.B) (commandlog.DecisionWriter, eventlog.Log, commandlog.Log)

// BenchAggregates is how many aggregates the decision benchmark creates
// before it starts timing, and spreads its appends over.
const BenchAggregates = 10_000

// BenchBatchSizes are the batch sizes RunDecisionBenchmark measures.
var BenchBatchSizes = []int{1, 16, 128}

// RunDecisionBenchmark measures the executor's write path, one sub-benchmark
// per batch size in BenchBatchSizes. Each decision
//
//   - looks up its fresh, UUIDv7-like command id in the command log and
//     misses (the executor's recall check),
//   - appends one event to one of BenchAggregates pre-created aggregates,
//     chosen at random (distinct within a batch), so keys are random and
//     histories grow, and
//   - writes its command record, in one WriteDecisions call per batch.
//
// One op is one batch. The metrics to compare are ns/decision,
// decisions/s, and cpu-µs/decision: the process's user+system CPU time
// (every goroutine, the store's background work included) over the timed
// loop, divided by the decisions made; user-µs/decision is its user-mode
// part (at small batches most of the rest is the kernel's work in fsync).
// The random choices are seeded and the seed logged.
func RunDecisionBenchmark(b *testing.B, open BenchOpener) {
	for _, size := range BenchBatchSizes {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) { benchDecisions(b, open, size) })
	}
}

func benchDecisions(b *testing.B, open BenchOpener, size int) {
	w, _, commands := open(b)
	ctx := b.Context()
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0x636f6e6375727375))
	ids := newIDGen(rng)

	refs := make([]model.Ref, BenchAggregates)
	last := make([]uint64, BenchAggregates)
	for i := range refs {
		refs[i] = model.Ref{Type: "lightbulb", ID: fmt.Sprintf("bulb-%05d", i)}
	}
	// Create the aggregates, 1000 per batch, untimed.
	for start := 0; start < len(refs); start += 1000 {
		var ds []commandlog.Decision
		for i := start; i < min(start+1000, len(refs)); i++ {
			ds = append(ds, benchDecision(refs[i], 0, ids.next(), ids.next(), ids.now()))
			last[i] = 1
		}
		for i, err := range w.WriteDecisions(ctx, ds) {
			if err != nil {
				b.Fatalf("creating aggregates: decision %d: %v", i, err)
			}
		}
	}

	decisions := make([]commandlog.Decision, size)
	appends := make([]eventlog.Append, size)
	events := make([]model.Event, size)
	picked := make([]int, size)
	inBatch := make(map[int]bool, size)
	b.ReportAllocs()
	user0, sys0, cpuOK := processCPU()
	b.ResetTimer()
	batches := 0
	for b.Loop() {
		batches++
		clear(inBatch)
		for i := range decisions {
			a := rng.IntN(BenchAggregates)
			for inBatch[a] {
				a = rng.IntN(BenchAggregates)
			}
			inBatch[a] = true
			picked[i] = a
			cmd := ids.next()
			// The recall check: the command is new, so this misses.
			if _, err := commands.Get(ctx, cmd); !errors.Is(err, commandlog.ErrNotFound) {
				b.Fatalf("Get of a new command id %s: %v, want ErrNotFound", cmd, err)
			}
			d := benchDecision(refs[a], last[a], cmd, ids.next(), ids.now())
			events[i] = d.Append.Events[0]
			appends[i] = *d.Append
			appends[i].Events = events[i : i+1]
			d.Append = &appends[i]
			decisions[i] = d
		}
		for i, err := range w.WriteDecisions(ctx, decisions) {
			if err != nil {
				b.Fatalf("decision %d: %v", i, err)
			}
			last[picked[i]]++
		}
	}
	b.StopTimer()
	b.Logf("seed %d: %d batches of %d after %d setup decisions", seed, batches, size, BenchAggregates)
	n := float64(batches) * float64(size)
	if user1, sys1, ok := processCPU(); ok && cpuOK {
		user, sys := float64(user1-user0)/float64(time.Microsecond), float64(sys1-sys0)/float64(time.Microsecond)
		b.ReportMetric((user+sys)/n, "cpu-µs/decision")
		b.ReportMetric(user/n, "user-µs/decision")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/decision")
	b.ReportMetric(n/b.Elapsed().Seconds(), "decisions/s")
}

// benchDecision builds the decision of command cmd appending one event to
// ref after expected.
func benchDecision(ref model.Ref, expected uint64, cmd, eventID string, at time.Time) commandlog.Decision {
	seq := expected + 1
	return commandlog.Decision{
		Append: &eventlog.Append{Ref: ref, Expected: expected, Events: []model.Event{{
			AggregateType: ref.Type, AggregateID: ref.ID, Sequence: seq,
			Timestamp: at, StreamID: model.DefaultStream, ProcessingID: "node-1", ProcessingTime: at,
			Name: "switchedOn", Payload: []byte(`{"wattage":60,"room":"hall"}`),
			CommandID: cmd, EventID: eventID,
		}}},
		Record: commandlog.Record{
			CommandID: cmd, Ref: ref, Command: "switchOn", Outcome: commandlog.Accepted,
			FirstSequence: seq, LastSequence: seq, At: at,
		},
	}
}

// idGen makes time-ordered, UUIDv7-like ids from a synthetic clock that
// advances one millisecond every 16 ids.
type idGen struct {
	rng   *rand.Rand
	ms    int64
	count uint64
}

func newIDGen(rng *rand.Rand) *idGen {
	return &idGen{rng: rng, ms: base.UnixMilli()}
}

// now returns the synthetic clock's time.
func (g *idGen) now() time.Time { return time.UnixMilli(g.ms).UTC() }

// next returns a new id: 48 bits of milliseconds, version 7, a 12-bit
// counter, the RFC 9562 variant and random bits.
func (g *idGen) next() string {
	g.count++
	if g.count%16 == 0 {
		g.ms++
	}
	var u [16]byte
	ms := uint64(g.ms)
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	seq := uint16(g.count & 0xfff)
	u[6] = 0x70 | byte(seq>>8)
	u[7] = byte(seq)
	r := g.rng.Uint64()
	for i := range 8 {
		u[8+i] = byte(r >> (8 * i))
	}
	u[8] = 0x80 | u[8]&0x3f
	var s [36]byte
	hex.Encode(s[0:8], u[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], u[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], u[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], u[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], u[10:16])
	return string(s[:])
}
