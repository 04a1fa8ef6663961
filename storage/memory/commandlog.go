package memory

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/concursus-go/concursus/commandlog"
)

var (
	_ commandlog.Log    = (*CommandLog)(nil)
	_ commandlog.Pruner = (*CommandLog)(nil)
)

// errNoCommandID is returned by Put for a record without a command id.
var errNoCommandID = errors.New("memory: command record has no command id")

// CommandLog is an in-memory commandlog.Log that also implements
// commandlog.Pruner. The zero value is not usable; call NewCommandLog.
type CommandLog struct {
	mu struct {
		sync.Mutex
		closed  bool
		records map[string]commandlog.Record
	}
}

// NewCommandLog returns an empty, open in-memory command log.
func NewCommandLog() *CommandLog {
	l := &CommandLog{}
	l.mu.records = make(map[string]commandlog.Record)
	return l
}

// Put implements commandlog.Log. Records are applied in order, so of two
// records with one command id in a batch the later wins. A record without a
// command id fails the whole batch and nothing is stored.
func (l *CommandLog) Put(ctx context.Context, records []commandlog.Record) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: put %d records: %w", commandlog.ErrUnavailable, len(records), err)
	}
	for i := range records {
		if records[i].CommandID == "" {
			return fmt.Errorf("put record %d (%s %s): %w", i, records[i].Ref, records[i].Command, errNoCommandID)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return fmt.Errorf("put %d records: %w", len(records), commandlog.ErrClosed)
	}
	for _, r := range records {
		r.At = toMillis(r.At)
		l.mu.records[r.CommandID] = r
	}
	return nil
}

// Get implements commandlog.Log.
func (l *CommandLog) Get(ctx context.Context, commandID string) (commandlog.Record, error) {
	if err := ctx.Err(); err != nil {
		return commandlog.Record{}, fmt.Errorf("%w: get command %q: %w", commandlog.ErrUnavailable, commandID, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return commandlog.Record{}, fmt.Errorf("get command %q: %w", commandID, commandlog.ErrClosed)
	}
	r, ok := l.mu.records[commandID]
	if !ok {
		return commandlog.Record{}, fmt.Errorf("get command %q: %w", commandID, commandlog.ErrNotFound)
	}
	return r, nil
}

// Prune implements commandlog.Pruner: it deletes the records whose At is
// before cutoff.
func (l *CommandLog) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("%w: prune before %s: %w", commandlog.ErrUnavailable, cutoff, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return 0, fmt.Errorf("prune before %s: %w", cutoff, commandlog.ErrClosed)
	}
	n := 0
	for id, r := range l.mu.records {
		if r.At.Before(cutoff) {
			delete(l.mu.records, id)
			n++
		}
	}
	return n, nil
}

// Close implements commandlog.Log. It drops the data; a second Close returns
// ErrClosed.
func (l *CommandLog) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return commandlog.ErrClosed
	}
	l.mu.closed = true
	l.mu.records = nil
	return nil
}

var _ commandlog.Inserter = (*CommandLog)(nil)

// Insert implements commandlog.Inserter: a record whose command id has one
// already is not written, and its error carries the standing record.
func (l *CommandLog) Insert(ctx context.Context, records []commandlog.Record) []error {
	if errs := failDone(ctx, records, commandlog.ErrUnavailable, func(r commandlog.Record) string { return fmt.Sprintf("insert record %q", r.CommandID) }); errs != nil {
		return errs
	}
	errs := make([]error, len(records))
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, r := range records {
		switch old, ok := l.mu.records[r.CommandID]; {
		case l.mu.closed:
			errs[i] = fmt.Errorf("insert record %q: %w", r.CommandID, commandlog.ErrClosed)
		case r.CommandID == "":
			errs[i] = fmt.Errorf("insert record %d (%s %s): %w", i, r.Ref, r.Command, errNoCommandID)
		case ok:
			errs[i] = &commandlog.DecidedError{Record: old}
		default:
			r.At = toMillis(r.At)
			l.mu.records[r.CommandID] = r
		}
	}
	return errs
}
