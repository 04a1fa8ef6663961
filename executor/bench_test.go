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
			before := runIncrements(b, h, "bench-", aggregates, 64, func(n int64) int64 { return n })
			if s := h.x.Stats(); s.Batches > before.Batches {
				b.ReportMetric(float64(s.Appended-before.Appended)/float64(s.Batches-before.Batches), "appends/batch")
			}
		})
	}
}

// runIncrements creates the counters prefix0 … prefix<aggregates-1>, then
// runs b.N increments from parallel clients (parallelism per GOMAXPROCS),
// the n-th on counter pick(n) mod aggregates, each with its own command
// id. It reports cmds/s and returns the stats from before the timed part.
func runIncrements(b *testing.B, h *harness, prefix string, aggregates, parallelism int, pick func(n int64) int64) executor.Stats {
	for i := range aggregates {
		ref := counterRef(prefix + strconv.Itoa(i))
		h.mustExec(b, ref, ref.ID, "create", "")
	}
	before := h.x.Stats()
	var seq atomic.Int64
	b.SetParallelism(parallelism)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background() // a long run outlasts ctxT's deadline
		for pb.Next() {
			n := seq.Add(1)
			req := executor.Request{
				Ref:       counterRef(prefix + strconv.FormatInt(pick(n)%int64(aggregates), 10)),
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
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cmds/s")
	return before
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
			before := runIncrements(b, h, "cold-", 10_000, 16, func(n int64) int64 { return n * 7919 })
			s := h.x.Stats()
			b.ReportMetric(float64(s.Loads-before.Loads)/float64(b.N), "loads/cmd")
			b.ReportMetric(float64(s.RepairChecks-before.RepairChecks)/float64(b.N), "checks/cmd")
		})
	}
}
