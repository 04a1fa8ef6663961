package cassandra

import (
	"testing"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/commandlog/commandlogtest"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/eventlog/eventlogtest"
)

func TestEventLogConformance(t *testing.T) {
	ks := newKeyspace(t)
	eventlogtest.Run(t, func(t *testing.T) eventlog.Log {
		return ks.open(t, nil).EventLog()
	}, eventlogtest.WithLargeHistory(3000))
}

// TestEventLogConformanceSmallBuckets runs the suite with ten events per
// bucket, so that appends, reads, paging and races all cross buckets.
func TestEventLogConformanceSmallBuckets(t *testing.T) {
	ks := newKeyspace(t)
	eventlogtest.Run(t, func(t *testing.T) eventlog.Log {
		return ks.open(t, func(c *Config) { c.BucketSize = 10 }).EventLog()
	}, eventlogtest.WithLargeHistory(2000))
}

// TestEventLogConformanceNoCache runs the suite with the position cache
// off and buckets of three events, so that every append finds its bucket
// in the index.
func TestEventLogConformanceNoCache(t *testing.T) {
	ks := newKeyspace(t)
	eventlogtest.Run(t, func(t *testing.T) eventlog.Log {
		return ks.open(t, func(c *Config) { c.BucketSize = 3; c.CacheSize = -1 }).EventLog()
	})
}

func TestCommandLogConformance(t *testing.T) {
	ks := newKeyspace(t)
	commandlogtest.Run(t, func(t *testing.T) commandlog.Log {
		return ks.open(t, nil).CommandLog()
	})
}
