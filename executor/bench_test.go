package executor_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

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

// BenchmarkColdLoads measures what the record repair costs where it
// runs: on every load. The cache holds one aggregate per shard, so nearly
// every increment over 10,000 counters loads its counter from the log,
// and each load with a recent command reads that command's record in the
// background. "repair=off" sets RepairWithin to a nanosecond, so that no
// command counts as recent: the baseline, measured in the same run. The
// stores are in memory: the figure is the executor's own cost; on
// Cassandra each repair check is one more (background) read per load.
func BenchmarkColdLoads(b *testing.B) {
	for _, repair := range []bool{false, true} {
		b.Run(map[bool]string{false: "repair=off", true: "repair=on"}[repair], func(b *testing.B) {
			cfg := executor.Config{MaxCached: 64}
			if !repair {
				cfg.RepairWithin = time.Nanosecond
			}
			h := newHarness(b, cfg, func(_ *harness, d *executor.Deps) { d.Clock = time.Now })
			const aggregates = 10_000
			for i := range aggregates {
				ref := counterRef("cold-" + strconv.Itoa(i))
				h.mustExec(b, ref, ref.ID, "create", "")
			}
			before := h.x.Stats()
			var seq atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background() // a long run outlasts ctxT's deadline
				for pb.Next() {
					n := seq.Add(1)
					req := executor.Request{
						Ref:       counterRef("cold-" + strconv.Itoa(int(n*7919)%aggregates)),
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
			b.ReportMetric(float64(s.Loads-before.Loads)/float64(b.N), "loads/cmd")
			b.ReportMetric(float64(s.RepairChecks-before.RepairChecks)/float64(b.N), "checks/cmd")
		})
	}
}
