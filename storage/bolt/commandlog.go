package bolt

import (
	"context"
	"errors"
	"fmt"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/concursus-go/concursus/commandlog"
)

var (
	_ commandlog.Log    = (*CommandLog)(nil)
	_ commandlog.Pruner = (*CommandLog)(nil)
)

// MaxCommandIDLen is the longest command id Put accepts, in bytes.
const MaxCommandIDLen = bbolt.MaxKeySize - 8

// pruneChunk is how many records one Prune transaction deletes at most, so
// that pruning a large backlog does not hold the writer for long.
const pruneChunk = 1024

// CommandLog is the command log of a DB; get it with DB.CommandLog. It
// implements commandlog.Log and commandlog.Pruner and is safe for
// concurrent use.
type CommandLog struct {
	view
}

// Put implements commandlog.Log: the whole batch is one transaction. Records
// are applied in order, so of two records with one command id the later
// wins. A record with an empty or oversized command id fails the batch
// before anything is written.
func (l *CommandLog) Put(ctx context.Context, records []commandlog.Record) error {
	if err := l.Check(ctx, func() string { return fmt.Sprintf("put %d command records", len(records)) }); err != nil {
		return err
	}
	if len(records) == 0 {
		return nil
	}
	values := make([][]byte, len(records))
	for i := range records {
		r := &records[i]
		if err := checkRecord(r); err != nil {
			return fmt.Errorf("bolt: put command record %d: %w", i, err)
		}
		values[i] = appendRecord(nil, r)
	}
	err := l.db.bdb.Update(func(tx *bbolt.Tx) error {
		for i := range records {
			if err := putRecordInTx(tx, &records[i], values[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return l.txError(fmt.Sprintf("put %d command records", len(records)), err)
	}
	return nil
}

// putRecordInTx stores one encoded record and moves its time-index entry.
func putRecordInTx(tx *bbolt.Tx, r *commandlog.Record, value []byte) error {
	cmds, index := tx.Bucket(bucketCommands), tx.Bucket(bucketCmdTime)
	key := []byte(r.CommandID)
	if old := cmds.Get(key); old != nil {
		ms, err := recordAtMillis(old)
		if err != nil {
			return fmt.Errorf("command %q: %w", r.CommandID, err)
		}
		if err := index.Delete(timeKey(ms, r.CommandID)); err != nil {
			return fmt.Errorf("unindex command %q: %w", r.CommandID, err)
		}
	}
	if err := cmds.Put(key, value); err != nil {
		return fmt.Errorf("put command %q: %w", r.CommandID, err)
	}
	if err := index.Put(timeKey(r.At.UnixMilli(), r.CommandID), []byte{}); err != nil {
		return fmt.Errorf("index command %q: %w", r.CommandID, err)
	}
	return nil
}

// checkRecord refuses a record whose command id cannot be a key.
func checkRecord(r *commandlog.Record) error {
	if r.CommandID == "" || len(r.CommandID) > MaxCommandIDLen {
		return fmt.Errorf("bolt: command record (%s %s): command id is %d bytes, want 1 to %d",
			r.Ref, r.Command, len(r.CommandID), MaxCommandIDLen)
	}
	return nil
}

// Get implements commandlog.Log.
func (l *CommandLog) Get(ctx context.Context, commandID string) (commandlog.Record, error) {
	if err := l.Check(ctx, func() string { return fmt.Sprintf("get command %q", commandID) }); err != nil {
		return commandlog.Record{}, err
	}
	if commandID == "" {
		return commandlog.Record{}, fmt.Errorf("bolt: get command %q: %w", commandID, commandlog.ErrNotFound)
	}
	rec := commandlog.Record{CommandID: commandID}
	found := false
	err := l.db.bdb.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket(bucketCommands).Get([]byte(commandID))
		if v == nil {
			return nil
		}
		found = true
		return decodeRecord(v, &rec)
	})
	if err != nil {
		return commandlog.Record{}, l.txError(fmt.Sprintf("get command %q", commandID), err)
	}
	if !found {
		return commandlog.Record{}, fmt.Errorf("bolt: get command %q: %w", commandID, commandlog.ErrNotFound)
	}
	return rec, nil
}

// Prune implements commandlog.Pruner: it deletes the records whose At is
// before cutoff, oldest first, in transactions of at most pruneChunk
// records. It checks ctx between transactions; on an error the records of
// the committed transactions stay deleted and their count is returned with
// the error.
func (l *CommandLog) Prune(ctx context.Context, cutoff time.Time) (int, error) {
	total := 0
	for {
		if err := l.Check(ctx, func() string { return fmt.Sprintf("prune commands before %s", cutoff) }); err != nil {
			return total, err
		}
		deleted, scanned, err := l.pruneChunk(cutoff)
		total += deleted
		if err != nil {
			return total, l.txError(fmt.Sprintf("prune commands before %s", cutoff), err)
		}
		if scanned < pruneChunk {
			return total, nil
		}
	}
}

// pruneChunk removes up to pruneChunk index entries before cutoff and
// their records, in one transaction. It returns how many records it deleted
// and how many index entries it removed.
func (l *CommandLog) pruneChunk(cutoff time.Time) (deleted, scanned int, err error) {
	err = l.db.bdb.Update(func(tx *bbolt.Tx) error {
		deleted, scanned = 0, 0
		cmds, index := tx.Bucket(bucketCommands), tx.Bucket(bucketCmdTime)
		// Collect first: deleting under a bbolt cursor can skip keys.
		var keys [][]byte
		c := index.Cursor()
		for k, _ := c.First(); k != nil && len(keys) < pruneChunk; k, _ = c.Next() {
			ms, _, err := parseTimeKey(k)
			if err != nil {
				return err
			}
			if !fromMillis(ms).Before(cutoff) {
				break
			}
			keys = append(keys, append([]byte(nil), k...))
		}
		if len(keys) == 0 {
			return errNothingToCommit
		}
		scanned = len(keys)
		for _, k := range keys {
			ms, id, err := parseTimeKey(k)
			if err != nil {
				return err
			}
			if err := index.Delete(k); err != nil {
				return fmt.Errorf("unindex command %q: %w", id, err)
			}
			// Only delete the record the index entry points at; a record
			// replaced since has its own, newer index entry.
			if v := cmds.Get(id); v != nil {
				at, err := recordAtMillis(v)
				if err != nil {
					return fmt.Errorf("command %q: %w", id, err)
				}
				if at != ms {
					continue
				}
				if err := cmds.Delete(id); err != nil {
					return fmt.Errorf("delete command %q: %w", id, err)
				}
				deleted++
			}
		}
		return nil
	})
	switch {
	case errors.Is(err, errNothingToCommit):
		return 0, 0, nil
	case err != nil:
		return 0, 0, err
	}
	return deleted, scanned, nil
}

// Close implements commandlog.Log: it closes this view, not the file (see
// DB.Close). A second Close returns ErrClosed.
func (l *CommandLog) Close() error { return l.View.Close() }

var _ commandlog.Inserter = (*CommandLog)(nil)

// Insert implements commandlog.Inserter in one transaction: a record whose
// command id has one already is not written, and its error carries the
// standing record.
func (l *CommandLog) Insert(ctx context.Context, records []commandlog.Record) []error {
	errs := make([]error, len(records))
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = fmt.Errorf("bolt: insert command record %q: %w", records[i].CommandID, err)
		}
		return errs
	}
	if err := l.Ready(ctx); err != nil {
		return fail(err)
	}
	values := make([][]byte, len(records))
	for i := range records {
		if err := checkRecord(&records[i]); err != nil {
			errs[i] = err
			continue
		}
		values[i] = appendRecord(nil, &records[i])
	}
	err := l.db.bdb.Update(func(tx *bbolt.Tx) error {
		for i := range records {
			if errs[i] != nil {
				continue
			}
			if decided, err := standingRecordInTx(tx, records[i].CommandID); err != nil {
				return err
			} else if decided != nil {
				errs[i] = decided
				continue
			}
			if err := putRecordInTx(tx, &records[i], values[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fail(l.txError(fmt.Sprintf("insert %d command records", len(records)), err))
	}
	return errs
}

// standingRecordInTx returns a *commandlog.DecidedError with the record of
// commandID when there is one, nil otherwise.
func standingRecordInTx(tx *bbolt.Tx, commandID string) (*commandlog.DecidedError, error) {
	v := tx.Bucket(bucketCommands).Get([]byte(commandID))
	if v == nil {
		return nil, nil
	}
	d := &commandlog.DecidedError{}
	if err := decodeRecord(v, &d.Record); err != nil {
		return nil, fmt.Errorf("command %q: %w", commandID, err)
	}
	d.Record.CommandID = commandID
	return d, nil
}
