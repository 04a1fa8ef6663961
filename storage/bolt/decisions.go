package bolt

import (
	"context"
	"errors"
	"fmt"

	bbolt "go.etcd.io/bbolt"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
)

var _ commandlog.DecisionWriter = (*DB)(nil)

// WriteDecisions implements commandlog.DecisionWriter: the events and
// command records of a whole batch go into one transaction, one commit. A
// decision whose append is refused (conflict, invalid) or whose Head does
// not hold has its record left out, and a decision whose command id has a
// record already is left out whole (first decision wins); the rest of the
// batch still commits.
func (db *DB) WriteDecisions(ctx context.Context, decisions []commandlog.Decision) []error {
	errs := make([]error, len(decisions))
	fail := func(err error) []error {
		for i := range decisions {
			errs[i] = fmt.Errorf("bolt: write command %q: %w", decisions[i].Record.CommandID, err)
		}
		return errs
	}
	if len(decisions) == 0 {
		return errs
	}
	if err := db.own.Ready(ctx); err != nil {
		return fail(err)
	}

	// Validate and encode outside the writer lock. Appends are gathered
	// into one slice so appendInTx can check and write them.
	var (
		appends   []eventlog.Append
		pending   []pendingAppend
		appendErr []error
		owner     = make([]int, len(decisions)) // index into appends, or -1
		records   = make([][]byte, len(decisions))
	)
	for i := range decisions {
		d := &decisions[i]
		owner[i] = -1
		if err := checkRecord(&d.Record); err != nil {
			errs[i] = fmt.Errorf("%w: %v", eventlog.ErrInvalidAppend, err)
			continue
		}
		if d.Append != nil {
			if err := eventlog.CheckAppend(d.Append); err != nil {
				errs[i] = err
				continue
			}
			owner[i] = len(appends)
			appends = append(appends, *d.Append)
			pending = append(pending, encodeAppend(d.Append))
			appendErr = append(appendErr, nil)
		}
		records[i] = appendRecord(nil, &d.Record)
	}

	var marks outboxTake
	err := db.bdb.Update(func(tx *bbolt.Tx) error {
		events := tx.Bucket(bucketEvents)
		// First decision wins: a command id with a record keeps it, and
		// nothing of the new decision is written.
		for i := range decisions {
			if errs[i] != nil {
				continue
			}
			decided, err := standingRecordInTx(tx, decisions[i].Record.CommandID)
			if err != nil {
				return err
			}
			if decided != nil {
				errs[i] = decided
				if k := owner[i]; k >= 0 {
					appendErr[k] = decided // appendInTx skips it
				}
			}
		}
		if _, err := appendInTx(events, appends, pending, appendErr); err != nil {
			return err
		}
		// A decision that writes no events holds only if the history still
		// ends where its state did.
		var (
			heads  []eventlog.Head
			hOwner []int
		)
		for i := range decisions {
			if h := decisions[i].Head; errs[i] == nil && h != nil && decisions[i].Append == nil {
				heads, hOwner = append(heads, *h), append(hOwner, i)
			}
		}
		headErrs := make([]error, len(heads))
		if err := checkHeadsInTx(events, heads, headErrs); err != nil {
			return err
		}
		for k, i := range hOwner {
			errs[i] = headErrs[k]
		}
		wrote := false
		written := make(map[string]int) // command id → the decision recorded for it here
		for i := range decisions {
			if errs[i] != nil {
				continue
			}
			if k := owner[i]; k >= 0 && appendErr[k] != nil {
				errs[i] = appendErr[k] // conflict: no record
				continue
			}
			// Two decisions of one id in one batch: the first wins here
			// too. (The executor never sends two with events.)
			id := decisions[i].Record.CommandID
			if first, ok := written[id]; ok {
				errs[i] = &commandlog.DecidedError{Record: decisions[first].Record}
				continue
			}
			if err := putRecordInTx(tx, &decisions[i].Record, records[i]); err != nil {
				return err
			}
			written[id] = i
			wrote = true
		}
		if !wrote {
			return errNothingToCommit
		}
		// The outbox marks announcing these appends commit with them.
		var err error
		marks, err = db.writeOutboxInTx(tx, "", 0, false)
		return err
	})
	if err == nil {
		db.outbox.committed(marks)
		return errs
	}
	if errors.Is(err, errNothingToCommit) {
		return errs
	}
	err = writeTxError(err)
	for i := range decisions {
		if errs[i] == nil || errors.Is(errs[i], eventlog.ErrConflict) || errors.Is(errs[i], commandlog.ErrDecided) {
			errs[i] = fmt.Errorf("bolt: write command %q: %w", decisions[i].Record.CommandID, err)
		}
	}
	return errs
}
