package cassandra

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/gocql/gocql"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/eventlog/eventlogtest"
	"github.com/concursus-go/concursus/model"
)

// benchParallelism is the number of goroutines per GOMAXPROCS the
// benchmarks run: conditional writes are bound by round trips, not CPU, so
// at -cpu 2 sixteen are in flight.
const benchParallelism = 8

// runPerAggregate runs body in benchParallelism goroutines per GOMAXPROCS,
// each with an aggregate of its own (IDs name-1, name-2, …), and reports
// the rate of b.N operations in ops/s.
func runPerAggregate(b *testing.B, name string, body func(pb *testing.PB, ref model.Ref)) {
	var ids atomic.Int64
	b.SetParallelism(benchParallelism)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		body(pb, model.Ref{Type: "bench", ID: fmt.Sprintf("%s-%d", name, ids.Add(1))})
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}

// BenchmarkRawConditionalInsert measures the storage ceiling of the append
// path: the bare driver running, per op, one single-partition conditional
// batch of one event row and the head update, each goroutine on an
// aggregate of its own, with none of the store's logic.
func BenchmarkRawConditionalInsert(b *testing.B) {
	s := newKeyspace(b).open(b, nil)
	runPerAggregate(b, "raw", func(pb *testing.PB, ref model.Ref) {
		var last int64
		for pb.Next() {
			e := eventlogtest.NewEvent(ref, uint64(last+1), "raw")
			batch := s.session.NewBatch(gocql.UnloggedBatch).WithContext(b.Context())
			batch.SetConsistency(s.cons)
			batch.SerialConsistency(s.serial)
			batch.RetryPolicy(s.lwtRetry)
			if last == 0 {
				batch.Query(s.q.setHeadIfNull, last+1, ref.Type, ref.ID, int32(0))
			} else {
				batch.Query(s.q.setHead, last+1, ref.Type, ref.ID, int32(0), last)
			}
			batch.Query(s.q.insertEvent, eventValues(ref, 0, &e)...)
			applied, iter, err := s.session.ExecuteBatchCAS(batch)
			if iter != nil {
				if cerr := iter.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil || !applied {
				b.Errorf("conditional batch after %d: applied %v, %v", last, applied, err)
				return
			}
			last++
		}
	})
}

// BenchmarkAppend measures Append through the store, one event per call,
// each goroutine appending to an aggregate of its own (so with the default
// bucket size, the position cache and one conditional batch per append;
// every thousandth opens a bucket).
func BenchmarkAppend(b *testing.B) {
	l := newKeyspace(b).open(b, nil).EventLog()
	runPerAggregate(b, "append", func(pb *testing.PB, ref model.Ref) {
		var last uint64
		events := make([]model.Event, 1)
		batch := []eventlog.Append{{Ref: ref, Events: events}}
		for pb.Next() {
			events[0] = eventlogtest.NewEvent(ref, last+1, "append")
			batch[0].Expected = last
			if err := l.Append(b.Context(), batch)[0]; err != nil {
				b.Errorf("Append after %d: %v", last, err)
				return
			}
			last++
		}
	})
}

// BenchmarkOutboxMark measures Mark, the outbox write the event publisher
// adds before each batch the executor appends: one unlogged batch of
// size marks into the writer's current bucket, from one goroutine (the
// executor's flushers call it once per batch), with a new bucket — and so
// a write of the writer's row — every 64 calls.
func BenchmarkOutboxMark(b *testing.B) {
	for _, size := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			ks := newKeyspace(b)
			l := ks.open(b, nil).EventLog()
			marks := make([]eventlog.Mark, size)
			bucket, next := int64(352_000_000), uint64(0)
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if i%64 == 0 {
					bucket++
				}
				for j := range marks {
					next++
					marks[j] = eventlog.Mark{Ref: model.Ref{Type: "bench", ID: fmt.Sprintf("agg-%05d", next%4096)}, First: next, Last: next}
				}
				if err := l.Mark(b.Context(), "node-1", bucket, marks); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "marks/s")
		})
	}
}
