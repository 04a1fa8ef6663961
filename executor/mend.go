package executor

import (
	"context"
	"errors"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/internal/backoff"
	"github.com/concursus-go/concursus/model"
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

// A writer that dies between the two writes takes its mender with it: the
// command's events are durable, and nothing will write its record. Its
// retry is recognised while the aggregate's history says so: on a cold
// load (the whole history is searched) and while the command is among the
// cached aggregate's last few. A retry that came only after newer
// commands had pushed it out would find neither record nor recent command
// and run again. So the next load repairs the records: after a cold load,
// the repairer reads the records of the history's last commands, newest
// first, until it finds one (the usual case: the first); the ones before
// it that have none get a record written from the history: accepted, the
// events' range. The history does not say the command's name or
// arguments, so a retry is matched against such a record by its id and
// aggregate only. It works in the background: a load waits for none of it.
// Not covered: a command older than one whose record stands. That takes
// a record write that failed, a later one of the same aggregate that
// succeeded, and the writer dying before its mender wrote the first: such
// a command is recognised only from the history (on a cold load, or among
// the cached aggregate's last commands).
// Only commands processed within Config.RepairWithin are checked, so that
// records pruned by age are not written again.

// repairItem is a loaded aggregate's last commands, newest first.
type repairItem struct {
	ref  model.Ref
	cmds []recentCommand
}

// repairCandidates lists the commands of tail (the last events of a
// history, in log order), newest first, processed within RepairWithin.
func (x *Executor) repairCandidates(tail []model.Event) []recentCommand {
	since := x.clock().Add(-x.cfg.RepairWithin)
	var out []recentCommand
	for i := len(tail) - 1; i >= 0; i-- {
		ev := &tail[i]
		if ev.ProcessingTime.Before(since) {
			break
		}
		if ev.CommandID == "" {
			continue // a fact: no record
		}
		if n := len(out); n > 0 && out[n-1].id == ev.CommandID && out[n-1].first == ev.Sequence+1 {
			out[n-1].first = ev.Sequence
			continue
		}
		out = append(out, recentCommand{id: ev.CommandID, first: ev.Sequence, last: ev.Sequence})
	}
	return out
}

// repairLater hands a loaded history's last commands to the repairer
// without blocking; when its queue is full they are not checked (the next
// load checks again).
func (x *Executor) repairLater(ref model.Ref, cmds []recentCommand) {
	if len(cmds) == 0 {
		return
	}
	select {
	case x.repairq <- repairItem{ref: ref, cmds: cmds}:
	default:
	}
}

// repairRecords runs until Close: it checks each loaded history's last
// commands' records and hands the missing ones to the mender.
func (x *Executor) repairRecords() {
	defer x.repairing.Done()
	for {
		select {
		case it := <-x.repairq:
			missing, reads := x.missingRecords(it)
			if len(missing) > 0 {
				x.log.Warn("commands in the history have no record (their writer stopped between the two writes); writing them from the history",
					"aggregate", it.ref.String(), "records", len(missing), "first", missing[0].CommandID)
				x.mendLater(missing)
			}
			// Counted once the check is done, so that whoever sees the
			// reads counted sees what they found.
			x.stats.recordsRepaired.Add(int64(len(missing)))
			x.stats.repairChecks.Add(int64(reads))
		case <-x.repairCtx.Done():
			return
		}
	}
}

// missingRecords reads the records of it's commands, newest first, until
// one is found, and returns the records of those before it that have none,
// as the history tells them, and how many records it read. A failed read
// ends the check (the command log is failing: the next load checks again).
func (x *Executor) missingRecords(it repairItem) (missing []commandlog.Record, reads int) {
	for _, c := range it.cmds {
		ctx, cancel := context.WithTimeout(x.repairCtx, x.cfg.StoreTimeout)
		_, err := x.commands.Get(ctx, c.id)
		cancel()
		reads++
		switch {
		case err == nil:
			return missing, reads
		case errors.Is(err, commandlog.ErrNotFound):
			missing = append(missing, commandlog.Record{
				CommandID: c.id, Ref: it.ref, Outcome: commandlog.Accepted,
				FirstSequence: c.first, LastSequence: c.last, At: model.NormalizeTime(x.clock()),
			})
		default:
			return nil, reads
		}
	}
	return missing, reads
}
