package cassandra

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/gocql/gocql"

	"github.com/concursus-go/concursus/commandlog"
)

var _ commandlog.Log = (*CommandLog)(nil)

// CommandLog is the command log of a Store; get it with Store.CommandLog.
// Records expire by themselves after Config.CommandTTL (Cassandra's TTL),
// so it does not implement commandlog.Pruner. It is safe for concurrent
// use.
type CommandLog struct {
	s *Store
	view
}

// Put implements commandlog.Log: one single-partition insert per record,
// USING TTL Config.CommandTTL, at most Config.AppendConcurrency at a time.
// A record replaces the whole previous record of its command id and
// restarts its TTL. When Put fails, some records may have been written.
func (l *CommandLog) Put(ctx context.Context, records []commandlog.Record) error {
	what := fmt.Sprintf("put %d command records", len(records))
	if err := l.checkOpen(); err != nil {
		return fmt.Errorf("cassandra: %s: %w", what, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: cassandra: %s: %w", commandlog.ErrUnavailable, what, err)
	}
	for i := range records {
		r := &records[i]
		if r.CommandID == "" {
			return fmt.Errorf("cassandra: %s: record %d has no command id", what, i)
		}
		if r.FirstSequence > math.MaxInt64 || r.LastSequence > math.MaxInt64 {
			return fmt.Errorf("cassandra: %s: record %q: sequence range %d..%d does not fit a bigint", what, r.CommandID, r.FirstSequence, r.LastSequence)
		}
	}
	if len(records) == 1 {
		return l.put(ctx, &records[0])
	}
	var (
		sem  = make(chan struct{}, l.s.cfg.AppendConcurrency)
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := range records {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if err := ctx.Err(); err != nil {
			mu.Lock()
			errs = append(errs, fmt.Errorf("%w: cassandra: put command %q and %d more: %w", commandlog.ErrUnavailable, records[i].CommandID, len(records)-i-1, err))
			mu.Unlock()
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := l.put(ctx, &records[i]); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		// The first error says what went wrong; the count says how much.
		return fmt.Errorf("%w (%d of %d records failed)", errs[0], len(errs), len(records))
	}
	return nil
}

// put writes one record.
func (l *CommandLog) put(ctx context.Context, r *commandlog.Record) error {
	s := l.s
	err := s.session.Query(s.q.insertCommand,
		r.CommandID, r.Ref.Type, r.Ref.ID, r.Command, string(r.Outcome),
		int64(r.FirstSequence), int64(r.LastSequence), r.Code, r.Reason, r.Message, r.At.UnixMilli(),
		s.ttl,
	).WithContext(ctx).Consistency(s.cons).RetryPolicy(s.readRetry).Idempotent(true).Exec()
	if err != nil {
		return l.wrap(fmt.Sprintf("put command %q", r.CommandID), err)
	}
	return nil
}

// Get implements commandlog.Log.
func (l *CommandLog) Get(ctx context.Context, commandID string) (commandlog.Record, error) {
	what := fmt.Sprintf("get command %q", commandID)
	if err := l.checkOpen(); err != nil {
		return commandlog.Record{}, fmt.Errorf("cassandra: %s: %w", what, err)
	}
	if err := ctx.Err(); err != nil {
		return commandlog.Record{}, fmt.Errorf("%w: cassandra: %s: %w", commandlog.ErrUnavailable, what, err)
	}
	if commandID == "" {
		// Cassandra refuses an empty partition key; no record has one.
		return commandlog.Record{}, fmt.Errorf("cassandra: %s: %w", what, commandlog.ErrNotFound)
	}
	s := l.s
	r := commandlog.Record{CommandID: commandID}
	var (
		outcome     string
		first, last int64
		at          int64
	)
	err := s.session.Query(s.q.selectCommand, commandID).WithContext(ctx).Consistency(s.cons).
		Scan(&r.Ref.Type, &r.Ref.ID, &r.Command, &outcome, &first, &last, &r.Code, &r.Reason, &r.Message, &at)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return commandlog.Record{}, fmt.Errorf("cassandra: %s: %w", what, commandlog.ErrNotFound)
	case err != nil:
		return commandlog.Record{}, l.wrap(what, err)
	}
	r.Outcome = commandlog.Outcome(outcome)
	r.FirstSequence, r.LastSequence = uint64(first), uint64(last)
	r.At = fromMillis(at)
	return r, nil
}
