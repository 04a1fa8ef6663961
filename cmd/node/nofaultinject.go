//go:build !faultinject || !unix

package main

import (
	"log/slog"
	"os"

	"github.com/concursus-go/concursus/node"
)

// faultInjection is a no-op: this binary was built without -tags
// faultinject (see faultinject.go). It only warns when the environment asks
// for a fault, so a test that forgot the tag says why nothing happens.
func faultInjection(_ *node.Config, logger *slog.Logger) error {
	for _, env := range []string{"CONCURSUS_FAULT_KILL_BEFORE_PUBLISH", "CONCURSUS_FAULT_KILL_BEFORE_RECORD", "CONCURSUS_FAULT_CLOCK_SKEW"} {
		if v := os.Getenv(env); v != "" {
			logger.Warn("fault injection requested, but this binary was built without it (go build -tags faultinject); ignored",
				"env", env, "value", v)
		}
	}
	return nil
}
