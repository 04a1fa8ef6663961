package executor

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

// Config tunes an Executor. Zero fields take the documented default.
type Config struct {
	// MaxCached is the most aggregates whose state is kept in memory.
	// Idle aggregates are evicted least-recently-used first and reloaded
	// from the event log on their next command. Default 100,000.
	MaxCached int
	// MailboxSize is the most commands queued for one aggregate; one more
	// is answered ErrUnavailable at once. Default 256.
	MailboxSize int
	// MaxInFlight is the most commands accepted but not yet answered, for
	// the whole executor; past it new commands get ErrUnavailable at once
	// (back-pressure instead of an unbounded queue). Default 65,536.
	MaxInFlight int
	// Workers is the most goroutines running commands at once (each
	// drains one aggregate's mailbox at a time and waits for that
	// aggregate's writes, so this also bounds how many aggregates' writes
	// can share a batch). Workers start as load needs them and are kept.
	// Default 1024.
	Workers int
	// MaxBatch is the most appends handed to the event log in one call.
	// Under load, appends from many aggregates queue while the previous
	// batch is being written and go out together. Default 512.
	MaxBatch int
	// Flushers is how many batches may be written at once. 1 suits an
	// embedded single-writer store; a networked store (Cassandra) gains
	// from a few. Default 1.
	Flushers int
	// StoreTimeout bounds one event-log or command-log call. Default 10s.
	StoreTimeout time.Duration
	// UnfencedDecisions answers decisions that write no events
	// (rejections, commands that produced none), and current-state
	// queries from the cache, without checking the aggregate's head
	// first: what the executor did before head checks.
	// It exists so that cmd/bench -rejections can measure what the check
	// costs. Unsafe whenever two nodes may own one aggregate (a pause, a
	// partition, a ring change): never set it in production.
	UnfencedDecisions bool
	// LoadPageSize is the page size used to load a history. Default 512.
	LoadPageSize int
	// RepairWithin is how recent the last commands of a loaded history
	// must be for the executor to check that they have their records,
	// and to write the missing ones from the history (see "Idempotency"
	// in the package doc). Keep it at least the time within which clients
	// retry a command (the idempotency filter's window). Default 1h.
	RepairWithin time.Duration
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{
		MaxCached:    100_000,
		MailboxSize:  256,
		MaxInFlight:  65_536,
		Workers:      1024,
		MaxBatch:     512,
		Flushers:     1,
		StoreTimeout: 10 * time.Second,
		LoadPageSize: eventlog.DefaultPageSize,
		RepairWithin: time.Hour,
	}
}

func (c *Config) fillDefaults() {
	d := DefaultConfig()
	c.MaxCached = cmp.Or(c.MaxCached, d.MaxCached)
	c.MailboxSize = cmp.Or(c.MailboxSize, d.MailboxSize)
	c.MaxInFlight = cmp.Or(c.MaxInFlight, d.MaxInFlight)
	c.Workers = cmp.Or(c.Workers, d.Workers)
	c.MaxBatch = cmp.Or(c.MaxBatch, d.MaxBatch)
	c.Flushers = cmp.Or(c.Flushers, d.Flushers)
	c.StoreTimeout = cmp.Or(c.StoreTimeout, d.StoreTimeout)
	c.LoadPageSize = cmp.Or(c.LoadPageSize, d.LoadPageSize)
	c.RepairWithin = cmp.Or(c.RepairWithin, d.RepairWithin)
}

// Validate reports the first unusable value, naming it.
func (c Config) Validate() error {
	switch {
	case c.MaxCached < 1:
		return fmt.Errorf("executor: MaxCached %d must be at least 1", c.MaxCached)
	case c.MailboxSize < 1:
		return fmt.Errorf("executor: MailboxSize %d must be at least 1", c.MailboxSize)
	case c.MaxInFlight < 1:
		return fmt.Errorf("executor: MaxInFlight %d must be at least 1", c.MaxInFlight)
	case c.Workers < 1 || c.Workers > 1<<20:
		return fmt.Errorf("executor: Workers %d must be between 1 and 1048576", c.Workers)
	case c.MaxBatch < 1:
		return fmt.Errorf("executor: MaxBatch %d must be at least 1", c.MaxBatch)
	case c.Flushers < 1 || c.Flushers > 64:
		return fmt.Errorf("executor: Flushers %d must be between 1 and 64", c.Flushers)
	case c.StoreTimeout <= 0:
		return fmt.Errorf("executor: StoreTimeout %v must be positive", c.StoreTimeout)
	case c.LoadPageSize < 1:
		return fmt.Errorf("executor: LoadPageSize %d must be at least 1", c.LoadPageSize)
	case c.RepairWithin <= 0:
		return fmt.Errorf("executor: RepairWithin %v must be positive", c.RepairWithin)
	}
	return nil
}

// Publisher carries durable events to the bus (package eventbus).
//
// The executor tells it about every append twice: a flusher calls Prepare
// with one mark per append before it writes the batch, so the publisher can
// record in an outbox that these events may need publishing from the log;
// then the aggregate's worker calls Publish once the events are durable, or
// Discard when the append failed. Prepare failing fails the whole batch
// (nothing is written), so no event is ever durable without its mark.
//
// Publish is called from the aggregate's single worker, so the events of one
// aggregate arrive in sequence order. Publish and Discard must not block for
// long and must not retain the slice after returning (copy if needed).
type Publisher interface {
	Prepare(ctx context.Context, marks []eventlog.Mark) (Ticket, error)
	Publish(t Ticket, events []model.Event)
	// Discard settles a mark whose append failed. maybeWritten is true
	// when the outcome is unknown (the store failed part-way), so the
	// events may be durable and must then be published from the log.
	Discard(t Ticket, maybeWritten bool)
}

// Ticket is what Prepare returns for a batch's marks; Publish or Discard is
// called once per mark with it.
type Ticket int64

// Deps are the executor's collaborators.
type Deps struct {
	Registry *model.Registry // required
	Events   eventlog.Log    // required
	Commands commandlog.Log  // required
	// Decisions, when set, writes each batch's events and command records
	// in one transaction instead of one Events.Append and one
	// Commands.Put. It must write to the same logs as Events and Commands.
	Decisions commandlog.DecisionWriter // optional
	// Filter, when set, is the replicated idempotency filter (package
	// idempotency). It answers "was this command id decided?" from memory
	// in place of a command-log read per command, and learns every outcome
	// once it is durable. What it may have lost (it is rebuilt empty after
	// every node restarts, and forgets ids older than its window) is
	// covered by the aggregate's own history: events carry their command
	// ids, and the latest commands of a loaded aggregate are recognised.
	Filter  Filter           // optional
	Publish Publisher        // optional
	Clock   func() time.Time // optional; default time.Now
	IDs     IDs              // optional; default UUIDs (see UUIDs)
	Logger  *slog.Logger     // optional; default slog.Default()
}

// Filter is a cluster-wide record of decided command ids.
type Filter interface {
	// Lookup returns the outcome of a command id decided within the
	// filter's window, as this replica knows it.
	Lookup(commandID string) (commandlog.Record, bool)
	// Record adds durable outcomes; it returns when they are replicated.
	Record(ctx context.Context, records []commandlog.Record) error
	// Ready reports whether the filter serves: while it does not (its
	// group is still forming), the executor reads the command log instead
	// and does not feed the filter.
	Ready() bool
}

// IDs makes the ids of one captured event.
type IDs interface {
	// EventID returns a new unique event id.
	EventID() (string, error)
	// ProcessingID returns a new time-based processing id for instant t.
	ProcessingID(t time.Time) (string, error)
}
