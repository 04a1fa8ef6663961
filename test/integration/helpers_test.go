//go:build integration

package integration

import (
	"time"

	"github.com/concursus-go/concursus/executor"
)

// executorConfig is the executor configuration of the Cassandra suites: a
// few batches in flight, as cmd/node uses for Cassandra.
func executorConfig() executor.Config {
	c := executor.DefaultConfig()
	c.Flushers = 4
	c.StoreTimeout = 5 * time.Second
	return c
}
