package executor

import (
	"errors"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/internal/backoff"
)

// The mender writes the records of commands whose events are durable but
// whose record write failed (the store went away between the two writes,
// which no single conditional write can span on Cassandra). Such a command
// stands and is answered; until its record is written, only its
// aggregate's history answers its retries. The mender retries the records
// with a back-off until the command log takes them, so that the record
// exists once the store is back; it gives up only when the executor
// closes (what it still holds is logged).

// mendQueue bounds the records waiting for the mender; past it a record is
// not mended (logged) and the history alone answers its retries.
const mendQueue = 1 << 14

// mendBackoff spaces the mender's attempts while the store fails.
var mendBackoff = backoff.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second, Jitter: 0.2}

// mendLater hands records to the mender without blocking.
func (x *Executor) mendLater(records []commandlog.Record) {
	for i, r := range records {
		select {
		case x.mendq <- r:
		default:
			x.log.Error("too many command records to mend; these are left to their aggregates' histories",
				"records", len(records)-i, "first", r.CommandID)
			return
		}
	}
}

// mendRecords runs until mendq is closed: it writes what it holds, waits a
// back-off while writes fail, and makes one last attempt once closed.
func (x *Executor) mendRecords() {
	defer x.mending.Done()
	var pending []commandlog.Record
	b := mendBackoff
	for {
		if len(pending) == 0 {
			r, ok := <-x.mendq
			if !ok {
				return
			}
			pending = append(pending, r)
		}
		var open bool
		pending, open = receiveQueued(x.mendq, pending)
		pending = x.writeMended(pending)
		if !open {
			if len(pending) > 0 {
				x.log.Error("closing with command records not written; their aggregates' histories answer these commands' retries",
					"records", len(pending), "first", pending[0].CommandID)
			}
			return
		}
		if len(pending) == 0 {
			b.Reset()
			continue
		}
		t := time.NewTimer(b.Next())
		select {
		case <-t.C:
		case r, ok := <-x.mendq:
			t.Stop()
			if ok {
				pending = append(pending, r)
			} // closed: the next round sees it, makes the last attempt and returns
		}
	}
}

// receiveQueued appends to pending what q holds now, without waiting;
// open is false once q is closed.
func receiveQueued(q <-chan commandlog.Record, pending []commandlog.Record) (_ []commandlog.Record, open bool) {
	for {
		select {
		case r, ok := <-q:
			if !ok {
				return pending, false
			}
			pending = append(pending, r)
		default:
			return pending, true
		}
	}
}

// writeMended writes records and returns those still not written.
func (x *Executor) writeMended(records []commandlog.Record) []commandlog.Record {
	ctx, cancel := x.storeCtx()
	defer cancel()
	ins, ok := x.commands.(commandlog.Inserter)
	if !ok {
		if err := x.commands.Put(ctx, records); err != nil {
			return records
		}
		x.mended(records)
		return nil
	}
	results := checkedResults(ins.Insert(ctx, records), len(records), "records")
	var left []commandlog.Record
	for i, err := range results {
		var decided *commandlog.DecidedError
		switch {
		case err == nil:
			x.mended(records[i : i+1])
		case errors.As(err, &decided):
			// Written by an earlier attempt whose answer was lost (then it
			// is mended), or decided elsewhere: either way a record stands
			// and there is nothing more to write.
			if !x.checkClash(records[i], decided.Record) {
				x.mended(records[i : i+1])
			}
		default:
			left = append(left, records[i])
		}
	}
	return left
}

func (x *Executor) mended(records []commandlog.Record) {
	x.stats.recordsMended.Add(int64(len(records)))
	for _, r := range records {
		x.log.Info("command record written after its events", "aggregate", r.Ref.String(), "commandId", r.CommandID)
	}
}
