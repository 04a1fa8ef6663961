//go:build faultinject && unix

package main

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
)

// Fault injection for the multi-process tests (test/integration), compiled
// into cmd/node only with -tags faultinject. The library has no such code:
// this binary sets node.Config.TestHooks, and the process ends here, in
// the command, never in package node.

// faultKillBeforePublish names an environment variable: set to N, the node
// kills its own process (SIGKILL) when the Nth batch of events is durable
// and about to be published, so the batch is in the log and on no bus.
const faultKillBeforePublish = "CONCURSUS_FAULT_KILL_BEFORE_PUBLISH"

// faultInjection sets the test hooks that the environment asks for.
func faultInjection(cfg *node.Config, logger *slog.Logger) error {
	v := os.Getenv(faultKillBeforePublish)
	if v == "" {
		return nil
	}
	at, err := strconv.ParseInt(v, 10, 64)
	if err != nil || at < 1 {
		return fmt.Errorf("$%s=%q: want a batch number from 1", faultKillBeforePublish, v)
	}
	logger.Warn("fault injection: this node kills itself before publishing a batch of events", "env", faultKillBeforePublish, "batch", at)
	cfg.TestHooks = &node.TestHooks{Publisher: func(p executor.Publisher) executor.Publisher {
		return &killBeforePublish{Publisher: p, at: at, log: logger}
	}}
	return nil
}

// killBeforePublish SIGKILLs the process instead of publishing batch at.
type killBeforePublish struct {
	executor.Publisher
	at    int64
	count atomic.Int64
	log   *slog.Logger
}

func (k *killBeforePublish) Publish(t executor.Ticket, events []model.Event) {
	if k.count.Add(1) == k.at && len(events) > 0 {
		e := events[0]
		k.log.Error("fault injection: killing the process before publishing", "aggregate", e.Ref().String(),
			"sequence", e.Sequence, "eventId", e.EventID, "events", len(events))
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
	k.Publisher.Publish(t, events)
}
