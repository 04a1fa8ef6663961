package executor

import (
	"sync/atomic"

	"github.com/concursus-go/concursus/api"
)

type counters struct {
	accepted, rejected, invalid, conflicts, unavailable   atomic.Int64
	timeouts, saturated, duplicates, loads                atomic.Int64
	batches, appended, filterFailures                     atomic.Int64
	headChecks, fenced, doubtedMisses, recordClashes      atomic.Int64
	facts, factDuplicates, factsRefused, lateEvents       atomic.Int64
	refolds, recordsMended, recordsRepaired, repairChecks atomic.Int64
}

// Stats are cumulative counters since the executor started. They are the
// wire form a node's info replies carry (api.ExecutorStats) under this
// package's name: one declaration, so the two cannot drift apart.
type Stats = api.ExecutorStats

// Stats returns a snapshot of the counters.
func (x *Executor) Stats() Stats {
	s := Stats{
		Accepted:        x.stats.accepted.Load(),
		Rejected:        x.stats.rejected.Load(),
		Invalid:         x.stats.invalid.Load(),
		Conflicts:       x.stats.conflicts.Load(),
		Unavailable:     x.stats.unavailable.Load(),
		Timeouts:        x.stats.timeouts.Load(),
		Saturated:       x.stats.saturated.Load(),
		Duplicates:      x.stats.duplicates.Load(),
		Loads:           x.stats.loads.Load(),
		Batches:         x.stats.batches.Load(),
		Appended:        x.stats.appended.Load(),
		FilterFailures:  x.stats.filterFailures.Load(),
		HeadChecks:      x.stats.headChecks.Load(),
		Fenced:          x.stats.fenced.Load(),
		DoubtedMisses:   x.stats.doubtedMisses.Load(),
		RecordClashes:   x.stats.recordClashes.Load(),
		RecordsMended:   x.stats.recordsMended.Load(),
		RecordsRepaired: x.stats.recordsRepaired.Load(),
		RepairChecks:    x.stats.repairChecks.Load(),
		Facts:           x.stats.facts.Load(),
		FactDuplicates:  x.stats.factDuplicates.Load(),
		FactsRefused:    x.stats.factsRefused.Load(),
		LateEvents:      x.stats.lateEvents.Load(),
		Refolds:         x.stats.refolds.Load(),
		InFlight:        x.inflight.Load(),
	}
	for i := range x.shards {
		sh := &x.shards[i]
		sh.mu.Lock()
		s.Cached += int64(len(sh.mu.entities))
		sh.mu.Unlock()
	}
	return s
}

// CountInvalid counts a request refused before it reached the executor
// (for example malformed JSON at the API), so Stats covers every request.
func (x *Executor) CountInvalid() { x.stats.invalid.Add(1) }
