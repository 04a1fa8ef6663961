package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/internal/backoff"
	"github.com/concursus-go/concursus/model"
)

// Stores is what a StoreOpener returns: the two logs and how to close them.
type Stores struct {
	Events   eventlog.Log
	Commands commandlog.Log
	// Outbox is the store's outbox for the event publisher (package
	// eventbus). When nil, the event log is used if it is an
	// eventlog.Outbox; a store with neither keeps no outbox, and
	// publication is then best effort.
	Outbox eventlog.Outbox
	// Close releases both; called once, at shutdown.
	Close func() error
}

// StoreOpener connects to an external store (Cassandra). The node calls it
// at start and, while it fails, again with backoff; until it succeeds every
// command is answered "unavailable" and the node reports itself not ready.
type StoreOpener func(ctx context.Context) (Stores, error)

// WithStoreOpener makes the node keep its logs in the store opened by open
// (named in logs and admin replies) instead of the embedded store.
func WithStoreOpener(name string, open StoreOpener) Option {
	return func(o *options) { o.storeName, o.opener = name, open }
}

// ErrNotReady wraps the errors of a store that is not connected yet.
var ErrNotReady = errors.New("node: store not connected yet")

// lazyStore stands in for a store that is still connecting: both logs
// answer with an error wrapping ErrUnavailable until connect succeeds.
type lazyStore struct {
	name   string
	stores atomic.Pointer[Stores]
	ready  chan struct{} // closed once stores is set
	mu     struct {
		sync.Mutex
		lastErr  error
		attempts int
	}
}

func (l *lazyStore) get() (*Stores, error) {
	if s := l.stores.Load(); s != nil {
		return s, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return nil, fmt.Errorf("%w (%s, %d attempts, last: %v)", ErrNotReady, l.name, l.mu.attempts, l.mu.lastErr)
}

// status describes the store for admin replies.
func (l *lazyStore) status() (ready bool, text string) {
	if l.stores.Load() != nil {
		return true, l.name + ": connected"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return false, fmt.Sprintf("%s: connecting (attempt %d, last error: %v)", l.name, l.mu.attempts, l.mu.lastErr)
}

// connect retries open with backoff until it succeeds or ctx ends, logging
// one line per failed attempt.
func (l *lazyStore) connect(ctx context.Context, open StoreOpener, log *slog.Logger) {
	wait := backoff.Backoff{Min: 250 * time.Millisecond, Max: 15 * time.Second}
	for attempt := 1; ; attempt++ {
		s, err := open(ctx)
		if err == nil {
			l.stores.Store(&s)
			close(l.ready)
			log.Info("store connected", "store", l.name, "attempts", attempt)
			return
		}
		l.mu.Lock()
		l.mu.lastErr, l.mu.attempts = err, attempt
		l.mu.Unlock()
		pause := wait.Next()
		log.Warn("store unreachable; commands are answered 'unavailable' until it connects",
			"store", l.name, "attempt", attempt, "retryIn", pause.String(), "err", err)
		if backoff.Wait(ctx, pause) != nil {
			return
		}
	}
}

func (l *lazyStore) close() error {
	if s := l.stores.Load(); s != nil && s.Close != nil {
		return s.Close()
	}
	return nil
}

// lazyEvents is the event log of a lazyStore.
type lazyEvents struct{ l *lazyStore }

var _ eventlog.Log = lazyEvents{}

func (e lazyEvents) Append(ctx context.Context, batch []eventlog.Append) []error {
	s, err := e.l.get()
	if err != nil {
		return sameError(len(batch), fmt.Errorf("%w: %w", eventlog.ErrUnavailable, err))
	}
	return s.Events.Append(ctx, batch)
}

func (e lazyEvents) ReadPage(ctx context.Context, ref model.Ref, from uint64, limit int) ([]model.Event, uint64, error) {
	s, err := e.l.get()
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", eventlog.ErrUnavailable, err)
	}
	return s.Events.ReadPage(ctx, ref, from, limit)
}

func (e lazyEvents) LastSequence(ctx context.Context, ref model.Ref) (uint64, error) {
	s, err := e.l.get()
	if err != nil {
		return 0, fmt.Errorf("%w: %w", eventlog.ErrUnavailable, err)
	}
	return s.Events.LastSequence(ctx, ref)
}

// CheckHead implements eventlog.HeadChecker with the store's own check
// (a wrapper must not hide it: the fallback, LastSequence, is not
// linearizable on a networked store).
func (e lazyEvents) CheckHead(ctx context.Context, heads []eventlog.Head) []error {
	s, err := e.l.get()
	if err != nil {
		return sameError(len(heads), fmt.Errorf("%w: %w", eventlog.ErrUnavailable, err))
	}
	return eventlog.CheckHeads(ctx, s.Events, heads)
}

var _ eventlog.HeadChecker = lazyEvents{}

// ReadTimePage implements eventlog.TimeReader with the store's own
// event-time reads (hiding them would make every load sort whole
// histories in memory).
func (e lazyEvents) ReadTimePage(ctx context.Context, ref model.Ref, after model.TimeKey, limit int) ([]model.Event, bool, error) {
	s, err := e.l.get()
	if err != nil {
		return nil, false, fmt.Errorf("%w: %w", eventlog.ErrUnavailable, err)
	}
	return eventlog.ReadTimePage(ctx, s.Events, ref, after, limit)
}

var _ eventlog.TimeReader = lazyEvents{}

// Close does nothing: the node closes the store through lazyStore.close.
func (lazyEvents) Close() error { return nil }

// lazyCommands is the command log of a lazyStore.
type lazyCommands struct{ l *lazyStore }

var _ commandlog.Log = lazyCommands{}

func (c lazyCommands) Put(ctx context.Context, records []commandlog.Record) error {
	s, err := c.l.get()
	if err != nil {
		return fmt.Errorf("%w: %w", commandlog.ErrUnavailable, err)
	}
	return s.Commands.Put(ctx, records)
}

func (c lazyCommands) Get(ctx context.Context, commandID string) (commandlog.Record, error) {
	s, err := c.l.get()
	if err != nil {
		return commandlog.Record{}, fmt.Errorf("%w: %w", commandlog.ErrUnavailable, err)
	}
	return s.Commands.Get(ctx, commandID)
}

// Insert implements commandlog.Inserter with the store's own conditional
// insert; a store without one gets Put, as the executor would do.
func (c lazyCommands) Insert(ctx context.Context, records []commandlog.Record) []error {
	s, err := c.l.get()
	if err != nil {
		return sameError(len(records), fmt.Errorf("%w: %w", commandlog.ErrUnavailable, err))
	}
	if ins, ok := s.Commands.(commandlog.Inserter); ok {
		return ins.Insert(ctx, records)
	}
	return sameError(len(records), s.Commands.Put(ctx, records))
}

var _ commandlog.Inserter = lazyCommands{}

// Close does nothing: the node closes the store through lazyStore.close.
func (lazyCommands) Close() error { return nil }

// sameError is n results of one call that succeeded or failed as a whole.
func sameError(n int, err error) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// lazyOutbox is the outbox of a store that is still connecting: Stores.Outbox,
// or else the event log when it is an eventlog.Outbox. A store without one
// takes marks and keeps nothing.
type lazyOutbox struct{ l *lazyStore }

var _ eventlog.Outbox = lazyOutbox{}

func (o lazyOutbox) get() (eventlog.Outbox, error) {
	s, err := o.l.get()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", eventlog.ErrUnavailable, err)
	}
	if s.Outbox != nil {
		return s.Outbox, nil
	}
	ob, _ := s.Events.(eventlog.Outbox) // nil: the store keeps none
	return ob, nil
}

func (o lazyOutbox) Mark(ctx context.Context, writer string, bucket int64, marks []eventlog.Mark) error {
	ob, err := o.get()
	if err != nil || ob == nil {
		return err
	}
	return ob.Mark(ctx, writer, bucket, marks)
}

func (o lazyOutbox) Marks(ctx context.Context, writer string, bucket int64) ([]eventlog.Mark, error) {
	ob, err := o.get()
	if err != nil || ob == nil {
		return nil, err
	}
	return ob.Marks(ctx, writer, bucket)
}

func (o lazyOutbox) SetPublished(ctx context.Context, writer string, bucket int64) error {
	ob, err := o.get()
	if err != nil || ob == nil {
		return err
	}
	return ob.SetPublished(ctx, writer, bucket)
}

func (o lazyOutbox) Writers(ctx context.Context) ([]eventlog.OutboxWriter, error) {
	ob, err := o.get()
	if err != nil || ob == nil {
		return nil, err
	}
	return ob.Writers(ctx)
}

func (o lazyOutbox) Forget(ctx context.Context, writer string) error {
	ob, err := o.get()
	if err != nil || ob == nil {
		return err
	}
	return ob.Forget(ctx, writer)
}
