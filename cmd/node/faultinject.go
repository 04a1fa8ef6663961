//go:build faultinject && unix

package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventbus"
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

// faultKillBeforeRecord names an environment variable: set to N, the node
// kills its own process (SIGKILL) when it is about to write the Nth batch
// of command records that holds a command with events: those events are
// durable and their records are never written (on a store without a
// DecisionWriter, where the two are separate writes).
const faultKillBeforeRecord = "CONCURSUS_FAULT_KILL_BEFORE_RECORD"

// faultClockSkew names an environment variable: set to a duration such as
// -10s, the node's clock (node.Config.Clock: processing time, and the
// stamp of a command that brings none) runs that far from the machine's,
// as a host whose clock is off would.
const faultClockSkew = "CONCURSUS_FAULT_CLOCK_SKEW"

// faultClockFile names an environment variable: set to a file path, the
// node's clock (node.Config.Clock, which also stamps the idempotency
// filter's batches when this node leads its raft group) runs ahead by the
// duration written in that file, such as 1m, from the moment it is
// written (read every 50 ms; no file or an empty one: 0). A test steps a
// running node's clock forward this way, as an NTP step would.
const faultClockFile = "CONCURSUS_FAULT_CLOCK_FILE"

// faultHoldTakeover names an environment variable: set to a file path,
// the node takes over no dead writer's outbox while that file exists (its
// sweep waits, as if it could not tell yet). A test holds a dead node's
// unpublished events back this way until the moment it wants them
// republished.
const faultHoldTakeover = "CONCURSUS_FAULT_HOLD_TAKEOVER"

// faultInjection sets the test hooks that the environment asks for.
func faultInjection(cfg *node.Config, logger *slog.Logger) error {
	if v := os.Getenv(faultClockSkew); v != "" {
		skew, err := time.ParseDuration(v)
		if err != nil {
			return fmt.Errorf("$%s=%q: want a duration such as -10s", faultClockSkew, v)
		}
		logger.Warn("fault injection: this node's clock is skewed", "env", faultClockSkew, "skew", skew)
		cfg.Clock = func() time.Time { return time.Now().Add(skew) }
	}
	if path := os.Getenv(faultClockFile); path != "" {
		logger.Warn("fault injection: this node's clock runs ahead by what a file says", "env", faultClockFile, "path", path)
		base := cfg.Clock
		if base == nil {
			base = time.Now
		}
		ahead := stepClock(path, logger)
		cfg.Clock = func() time.Time { return base().Add(time.Duration(ahead.Load())) }
	}
	var hooks node.TestHooks
	if at, ok, err := faultAt(faultKillBeforePublish); err != nil {
		return err
	} else if ok {
		logger.Warn("fault injection: this node kills itself before publishing a batch of events", "env", faultKillBeforePublish, "batch", at)
		hooks.Publisher = func(p executor.Publisher) executor.Publisher {
			return &killBeforePublish{Publisher: p, at: at, log: logger}
		}
	}
	if at, ok, err := faultAt(faultKillBeforeRecord); err != nil {
		return err
	} else if ok {
		logger.Warn("fault injection: this node kills itself before writing a batch of command records", "env", faultKillBeforeRecord, "batch", at)
		hooks.Commands = func(l commandlog.Log) commandlog.Log {
			k := &killBeforeRecord{Log: l, at: at, log: logger}
			if ins, ok := l.(commandlog.Inserter); ok {
				return killBeforeInsert{k, ins}
			}
			return k
		}
	}
	if path := os.Getenv(faultHoldTakeover); path != "" {
		logger.Warn("fault injection: this node takes over no outbox while a file exists", "env", faultHoldTakeover, "path", path)
		hooks.Claim = holdTakeover(path, logger)
	}
	if hooks.Publisher != nil || hooks.Commands != nil || hooks.Claim != nil {
		cfg.TestHooks = &hooks
	}
	return nil
}

// stepClock reads the duration in the file at path every 50 ms, for the
// life of the process, into the offset it returns.
func stepClock(path string, logger *slog.Logger) *atomic.Int64 {
	var ahead atomic.Int64
	read := func() {
		var d time.Duration
		if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) > 0 {
			if d, err = time.ParseDuration(strings.TrimSpace(string(b))); err != nil {
				logger.Error("fault injection: the clock file does not hold a duration", "path", path, "err", err)
				return
			}
		}
		if old := ahead.Swap(int64(d)); old != int64(d) {
			logger.Warn("fault injection: the clock steps", "ahead", d, "before", time.Duration(old))
		}
	}
	read()
	go func() {
		for range time.Tick(50 * time.Millisecond) {
			read()
		}
	}()
	return &ahead
}

// holdTakeover turns the node's decision to take over a writer's outbox
// into a wait while the file at path exists, and logs each writer it holds
// back once.
func holdTakeover(path string, logger *slog.Logger) func(string, eventbus.Claim) eventbus.Claim {
	var mu sync.Mutex
	held := make(map[string]bool)
	return func(writer string, c eventbus.Claim) eventbus.Claim {
		if c != eventbus.ClaimMine {
			return c
		}
		_, err := os.Stat(path)
		mu.Lock()
		defer mu.Unlock()
		if err == nil {
			if !held[writer] {
				held[writer] = true
				logger.Warn("fault injection: holding back the takeover of an outbox", "writer", writer, "path", path)
			}
			return eventbus.ClaimUnknown
		}
		if held[writer] {
			delete(held, writer)
			logger.Warn("fault injection: taking over the outbox held back", "writer", writer)
		}
		return c
	}
}

// faultAt reads a batch number from the environment variable env.
func faultAt(env string) (at int64, ok bool, err error) {
	v := os.Getenv(env)
	if v == "" {
		return 0, false, nil
	}
	at, err = strconv.ParseInt(v, 10, 64)
	if err != nil || at < 1 {
		return 0, false, fmt.Errorf("$%s=%q: want a batch number from 1", env, v)
	}
	return at, true, nil
}

// die logs what the fault injection stops and SIGKILLs the process.
func die(log *slog.Logger, msg string, args ...any) {
	log.Error("fault injection: killing the process "+msg, args...)
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // the signal is on its way
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
		die(k.log, "before publishing", "aggregate", e.Ref().String(),
			"sequence", e.Sequence, "eventId", e.EventID, "events", len(events))
	}
	k.Publisher.Publish(t, events)
}

// killBeforeRecord SIGKILLs the process instead of writing batch at of
// the record batches that hold a command with events.
type killBeforeRecord struct {
	commandlog.Log
	at    int64
	count atomic.Int64
	log   *slog.Logger
}

func (k *killBeforeRecord) Put(ctx context.Context, records []commandlog.Record) error {
	k.check(records)
	return k.Log.Put(ctx, records)
}

func (k *killBeforeRecord) check(records []commandlog.Record) {
	var ids []string
	for _, r := range records {
		if r.Outcome == commandlog.Accepted && r.FirstSequence > 0 && r.FirstSequence <= r.LastSequence {
			ids = append(ids, r.CommandID)
		}
	}
	if len(ids) > 0 && k.count.Add(1) == k.at {
		r := records[0]
		die(k.log, "before writing command records", "aggregate", r.Ref.String(), "commandId", ids[0], "commandIds", ids)
	}
}

// killBeforeInsert is killBeforeRecord over a log that inserts.
type killBeforeInsert struct {
	*killBeforeRecord
	ins commandlog.Inserter
}

func (k killBeforeInsert) Insert(ctx context.Context, records []commandlog.Record) []error {
	k.check(records)
	return k.ins.Insert(ctx, records)
}
