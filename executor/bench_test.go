package executor_test

import (
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/concursus-go/concursus/executor"
)

// BenchmarkExecute runs increments from many concurrent clients (64 per
// GOMAXPROCS) over memory stores. It reports throughput and the mean
// number of appends per event-log call; it asserts nothing about time.
func BenchmarkExecute(b *testing.B) {
	for _, aggregates := range []int{1, 64, 10_000} {
		b.Run(fmt.Sprintf("aggregates=%d", aggregates), func(b *testing.B) {
			h := newHarness(b, executor.Config{})
			for i := range aggregates {
				ref := counterRef("bench-" + strconv.Itoa(i))
				h.mustExec(b, ref, ref.ID, "create", "")
			}
			before := h.x.Stats()
			var seq atomic.Int64
			b.SetParallelism(64)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := ctxT(b)
				for pb.Next() {
					n := seq.Add(1)
					req := executor.Request{
						Ref:       counterRef("bench-" + strconv.Itoa(int(n)%aggregates)),
						CommandID: "c-" + strconv.FormatInt(n, 10),
						Command:   "increment",
					}
					if _, err := h.x.Execute(ctx, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			s := h.x.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cmds/s")
			if batches := s.Batches - before.Batches; batches > 0 {
				b.ReportMetric(float64(s.Appended-before.Appended)/float64(batches), "appends/batch")
			}
		})
	}
}
