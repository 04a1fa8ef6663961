package bolt_test

import (
	"testing"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/storage/internal/storetest"
)

func TestDecisionWriter(t *testing.T) {
	storetest.RunDecisionWriter(t, func(t *testing.T) (commandlog.DecisionWriter, eventlog.Log, commandlog.Log) {
		db := openDB(t)
		return db, db.EventLog(), db.CommandLog()
	})
}

// BenchmarkDecisions measures the executor's write path with fsync on; see
// storetest.RunDecisionBenchmark.
func BenchmarkDecisions(b *testing.B) {
	storetest.RunDecisionBenchmark(b, func(b *testing.B) (commandlog.DecisionWriter, eventlog.Log, commandlog.Log) {
		db := openDB(b)
		return db, db.EventLog(), db.CommandLog()
	})
}
