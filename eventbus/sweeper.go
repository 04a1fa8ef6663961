package eventbus

import (
	"context"
	"log/slog"
	"time"

	"github.com/concursus-go/concursus/eventlog"
)

// Claim is what the sweeper's caller says about another writer of the
// outbox: whether it is still there, and if not, who takes its events over.
type Claim int

const (
	// ClaimUnknown: the caller cannot tell yet (a cluster node before its
	// first ring); the sweep ends its round and tries again later.
	ClaimUnknown Claim = iota
	// ClaimPresent: the writer is alive; its own publisher publishes its
	// events, and its absence clock restarts.
	ClaimPresent
	// ClaimOther: the writer is gone and another node takes it over.
	ClaimOther
	// ClaimMine: the writer is gone and this publisher takes it over:
	// republishes its unacknowledged events and, once it has been absent
	// for ForgetAfter, drops its outbox position.
	ClaimMine
)

// SweeperConfig configures a Sweeper.
type SweeperConfig struct {
	// Publisher republishes a departed writer's events (Publisher.Recover);
	// it must have been built on Outbox. Required.
	Publisher *Publisher
	// Outbox lists the writers. Required.
	Outbox eventlog.Outbox
	// Claim decides about every writer but the publisher's own. Required.
	// A lone node claims every other writer (they are its earlier runs
	// under other ids); a cluster node claims a writer that is no longer a
	// member and that the ring gives it (see package node).
	Claim func(writer string) Claim
	// Connected reports whether the bus is reachable; a sweep while it is
	// not is skipped. Nil: always.
	Connected func() bool
	// Interval between sweeps (default 2 s); ForgetAfter is how long a
	// claimed writer must have been absent before its position is dropped
	// (default 1 min).
	Interval, ForgetAfter time.Duration
	// Clock reads the time (default time.Now).
	Clock  func() time.Time
	Logger *slog.Logger
}

// Sweeper takes over the outboxes of writers that are gone: on each sweep
// it lists the outbox's writers and republishes, from the log, the
// unacknowledged events of every writer it is given (see Claim). It is
// the delivery side of a dead node: its events are in the log and marked
// in the outbox, and one live node must put them on the bus.
type Sweeper struct {
	cfg    SweeperConfig
	self   string
	absent map[string]time.Time // claimed writers: first seen absent
}

// NewSweeper returns a sweeper; Run runs it.
func NewSweeper(cfg SweeperConfig) *Sweeper {
	if cfg.Interval <= 0 {
		cfg.Interval = 2 * time.Second
	}
	if cfg.ForgetAfter <= 0 {
		cfg.ForgetAfter = time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Connected == nil {
		cfg.Connected = func() bool { return true }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Sweeper{cfg: cfg, self: cfg.Publisher.cfg.Writer, absent: make(map[string]time.Time)}
}

// Run sweeps at once and then every Interval until ctx ends.
func (s *Sweeper) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		s.Sweep(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep makes one round over the outbox's writers. A failure leaves the
// rest to the next round. Not safe for concurrent use (Run calls it).
func (s *Sweeper) Sweep(ctx context.Context) {
	if !s.cfg.Connected() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ws, err := s.cfg.Outbox.Writers(ctx)
	if err != nil {
		return // the store is down or connecting; the next round retries
	}
	now := s.cfg.Clock()
	for _, w := range ws {
		if w.Writer == s.self {
			continue
		}
		switch s.cfg.Claim(w.Writer) {
		case ClaimUnknown:
			return
		case ClaimPresent:
			delete(s.absent, w.Writer)
			continue
		case ClaimOther:
			continue
		}
		if w.Pending() {
			start := s.cfg.Clock()
			published, err := s.cfg.Publisher.Recover(ctx, w.Writer)
			if err != nil {
				s.cfg.Logger.Warn("outbox: taking over a departed writer's events failed; will retry", "writer", w.Writer, "published", published, "err", err)
				continue
			}
			s.cfg.Logger.Info("outbox: published a departed writer's unacknowledged events from the log",
				"writer", w.Writer, "events", published, "took", s.cfg.Clock().Sub(start).Round(time.Millisecond).String())
		}
		first, seen := s.absent[w.Writer]
		if !seen {
			s.absent[w.Writer] = now
			continue
		}
		if now.Sub(first) >= s.cfg.ForgetAfter {
			if err := s.cfg.Outbox.Forget(ctx, w.Writer); err == nil {
				delete(s.absent, w.Writer)
			}
		}
	}
}
