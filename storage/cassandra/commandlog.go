package cassandra

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

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
	if err := l.Check(ctx, func() string { return what }); err != nil {
		return err
	}
	for i := range records {
		if err := checkRecord(&records[i], i); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	errs := make([]error, len(records))
	each(ctx, l.s.cfg.AppendConcurrency, errs,
		func(i int) error { return l.put(ctx, &records[i]) },
		func(i int, err error) error {
			return fmt.Errorf("%w: cassandra: put command %q: %w", commandlog.ErrUnavailable, records[i].CommandID, err)
		})
	errs = slices.DeleteFunc(errs, func(err error) bool { return err == nil })
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
		int64(r.FirstSequence), int64(r.LastSequence), r.Code, r.Reason, r.Message, r.At.UnixMilli(), r.ArgsDigest,
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
	if err := l.Check(ctx, func() string { return what }); err != nil {
		return commandlog.Record{}, err
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
		digest      *string
	)
	err := s.session.Query(s.q.selectCommand, commandID).WithContext(ctx).Consistency(s.cons).
		Scan(&r.Ref.Type, &r.Ref.ID, &r.Command, &outcome, &first, &last, &r.Code, &r.Reason, &r.Message, &at, &digest)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return commandlog.Record{}, fmt.Errorf("cassandra: %s: %w", what, commandlog.ErrNotFound)
	case err != nil:
		return commandlog.Record{}, l.wrap(what, err)
	}
	r.Outcome = commandlog.Outcome(outcome)
	r.FirstSequence, r.LastSequence = uint64(first), uint64(last)
	r.At = fromMillis(at)
	if digest != nil {
		r.ArgsDigest = *digest
	}
	return r, nil
}

var _ commandlog.Inserter = (*CommandLog)(nil)

// Insert implements commandlog.Inserter: one conditional insert (IF NOT
// EXISTS, a Paxos round in the command id's partition) per record, at most
// Config.AppendConcurrency at a time. A record whose command id has one
// already is not written; its error carries the standing record, which
// Cassandra returns with the refusal. Records written this way must never be
// written by plain inserts too (Put), since plain and conditional writes on
// the same rows do not order: the executor writes every new decision with
// Insert.
func (l *CommandLog) Insert(ctx context.Context, records []commandlog.Record) []error {
	errs := make([]error, len(records))
	for i := range records {
		errs[i] = checkRecord(&records[i], i)
	}
	l.eachOpen(ctx, l.s.cfg.AppendConcurrency, errs,
		func(i int) string { return fmt.Sprintf("insert command %q", records[i].CommandID) },
		func(i int) error { return l.insert(ctx, &records[i]) })
	return errs
}

// checkRecord refuses a record the commands table cannot hold (record i of
// a batch).
func checkRecord(r *commandlog.Record, i int) error {
	switch {
	case r.CommandID == "":
		return fmt.Errorf("cassandra: command record %d has no command id", i)
	case r.FirstSequence > math.MaxInt64 || r.LastSequence > math.MaxInt64:
		return fmt.Errorf("cassandra: command record %q: sequence range %d..%d does not fit a bigint", r.CommandID, r.FirstSequence, r.LastSequence)
	}
	return nil
}

// insert writes one record unless its command id has one.
func (l *CommandLog) insert(ctx context.Context, r *commandlog.Record) error {
	s := l.s
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: cassandra: insert command %q: %w", commandlog.ErrUnavailable, r.CommandID, err)
	}
	existing := make(map[string]any, 12)
	applied, err := s.session.Query(s.q.claimCommand,
		r.CommandID, r.Ref.Type, r.Ref.ID, r.Command, string(r.Outcome),
		int64(r.FirstSequence), int64(r.LastSequence), r.Code, r.Reason, r.Message, r.At.UnixMilli(), r.ArgsDigest,
		s.ttl,
	).WithContext(ctx).Consistency(s.cons).SerialConsistency(s.serial).RetryPolicy(s.lwtRetry).MapScanCAS(existing)
	if err != nil {
		return l.wrap(fmt.Sprintf("insert command %q", r.CommandID), err)
	}
	if applied {
		return nil
	}
	d := &commandlog.DecidedError{Record: commandlog.Record{CommandID: r.CommandID}}
	rec := &d.Record
	str := func(k string) string { v, _ := existing[k].(string); return v }
	num := func(k string) int64 { v, _ := existing[k].(int64); return v }
	rec.Ref.Type, rec.Ref.ID, rec.Command = str("aggregate_type"), str("aggregate_id"), str("command")
	rec.Outcome = commandlog.Outcome(str("outcome"))
	rec.FirstSequence, rec.LastSequence = uint64(max(num("first_sequence"), 0)), uint64(max(num("last_sequence"), 0))
	rec.Code, rec.Reason, rec.Message = str("code"), str("reason"), str("message")
	rec.ArgsDigest = str("args_digest")
	if t, ok := existing["at"].(time.Time); ok {
		rec.At = t.UTC()
	}
	return d
}
