package subscription_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/subscription"
)

// BenchmarkResumeLookups measures what a restart costs: the first event of
// each aggregate after it needs a direct get (resume.go). Baseline: one
// event per known aggregate through a running subscription; resumed: the
// same count through a subscription that resumed, every event an
// aggregate's first. Same server, same run.
//
//	go test ./subscription -run '^$' -bench ResumeLookups -benchtime 3x
func BenchmarkResumeLookups(b *testing.B) {
	const aggregates = 2000
	var known, resumed time.Duration
	for i := 0; b.Loop(); i++ {
		e := newEnv(b)
		batch := func(seq uint64) []model.Event {
			out := make([]model.Event, aggregates)
			for a := range out {
				out[a] = ev(fmt.Sprintf("r%d-%d", i, a), seq, "created", "")
			}
			return out
		}
		e.publish(batch(1)...)
		var rec recorder
		cfg := e.config("bench")
		s, err := subscription.Subscribe(b.Context(), cfg, rec.catchAll())
		if err != nil {
			b.Fatal(err)
		}
		wait := func(n int) {
			testsupport.Eventually(b, time.Minute, "the events", func() bool { return rec.count() >= n })
		}
		wait(aggregates)

		start := time.Now()
		e.publish(batch(2)...)
		wait(2 * aggregates)
		known += time.Since(start)
		s.Stop()

		start = time.Now()
		e.publish(batch(3)...)
		s2, err := subscription.Subscribe(b.Context(), cfg, rec.catchAll())
		if err != nil {
			b.Fatal(err)
		}
		wait(3 * aggregates)
		resumed += time.Since(start)
		if st := s2.Stats(); st.ResumeLookups != aggregates || st.Duplicates != 0 {
			b.Fatalf("stats %+v", st)
		}
		s2.Stop()
	}
	perSec := func(d time.Duration) float64 { return float64(aggregates*b.N) / d.Seconds() }
	b.ReportMetric(perSec(known), "known-events/s")
	b.ReportMetric(perSec(resumed), "resumed-events/s")
	b.ReportMetric(perSec(resumed)/perSec(known), "ratio")
}
