package executor

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/internal/gather"
	"github.com/concursus-go/concursus/model"
)

// flushItem is one command's write: its events (nil for a rejection or a
// command that produced none) and its command-log record.
type flushItem struct {
	append *eventlog.Append
	// head, for a decision without events, is the head its state was
	// folded to: the record is written only if the history still ends
	// there.
	head   *eventlog.Head
	record commandlog.Record
	// facts: the append carries facts, which have no command-log record.
	facts bool
	done  chan error
	// ticket is the publisher's ticket for append, set by the flusher
	// when prepared.
	ticket   Ticket
	prepared bool
}

// record hands an item to the flushers and waits until it is durable. The
// calling worker blocks, which is what keeps one aggregate's commands
// strictly sequential; meanwhile other aggregates' items join the batch.
func (x *Executor) record(it *flushItem) error {
	it.done = make(chan error, 1)
	x.flushq <- it
	return <-it.done
}

// flushLoop is group commit: take one item, then whatever else is already
// waiting (up to MaxBatch), and write them with one event-log call and one
// command-log call. With no load a batch is one item and adds no delay;
// under load batches grow while the previous one is being written.
func (x *Executor) flushLoop() {
	defer x.flushers.Done()
	batch := make([]*flushItem, 0, x.cfg.MaxBatch)
	for it := range x.flushq {
		batch = append(batch[:0], it)
		batch = gather.Ready(batch, x.flushq, x.cfg.MaxBatch)
		x.flush(batch)
		clear(batch)
	}
}

func (x *Executor) flush(batch []*flushItem) {
	ctx, cancel := x.storeCtx()
	defer cancel()
	var errs []error
	if err := x.prepare(ctx, batch); err != nil {
		x.log.Warn("outbox write failed; batch not written", "commands", len(batch), "err", err)
		for _, it := range batch {
			it.done <- err
		}
		return
	}
	errs = x.flushByKind(ctx, batch)
	var durable []commandlog.Record
	for i, it := range batch {
		if errs[i] != nil && !errors.Is(errs[i], eventlog.ErrConflict) && !errors.Is(errs[i], eventlog.ErrInvalidAppend) {
			x.log.Warn("write failed", "aggregate", it.ref().String(), "command", it.record.CommandID, "err", errs[i])
		}
		if errs[i] == nil && x.filter != nil && !it.facts {
			durable = append(durable, it.record)
		}
		it.done <- errs[i]
	}
	for _, r := range durable {
		select {
		case x.filterq <- r:
		default: // the filter is far behind: the history check covers these
			n := x.stats.filterFailures.Add(1)
			x.filterWarn.Do(func() {
				x.log.Warn("idempotency filter is behind; outcomes skipped (their retries fall back to the aggregates' history)", "failures", n)
			})
		}
	}
}

// ref is the aggregate an item writes.
func (it *flushItem) ref() model.Ref {
	if it.append != nil {
		return it.append.Ref
	}
	return it.record.Ref
}

// flushByKind writes the commands' decisions (with the DecisionWriter when
// there is one, else separately) and the facts' appends (one Append call;
// facts have no records), and returns one error per item.
func (x *Executor) flushByKind(ctx context.Context, batch []*flushItem) []error {
	var commands, facts []int
	for i, it := range batch {
		if it.facts {
			facts = append(facts, i)
		} else {
			commands = append(commands, i)
		}
	}
	if len(facts) == 0 {
		return x.flushCommands(ctx, batch)
	}
	errs := make([]error, len(batch))
	appends := make([]eventlog.Append, len(facts))
	for k, i := range facts {
		appends[k] = *batch[i].append
	}
	for k, err := range checkedResults(x.events.Append(ctx, appends), len(appends), "appends") {
		errs[facts[k]] = err
	}
	x.stats.batches.Add(1)
	x.stats.appended.Add(int64(len(appends)))
	if len(commands) > 0 {
		sub := make([]*flushItem, len(commands))
		for k, i := range commands {
			sub[k] = batch[i]
		}
		for k, err := range x.flushCommands(ctx, sub) {
			errs[commands[k]] = err
		}
	}
	return errs
}

func (x *Executor) flushCommands(ctx context.Context, batch []*flushItem) []error {
	if x.decide != nil {
		return x.flushDecisions(ctx, batch)
	}
	return x.flushSeparately(ctx, batch)
}

// prepare hands the batch's appends to the publisher as outbox marks
// before anything is written.
func (x *Executor) prepare(ctx context.Context, batch []*flushItem) error {
	if x.publish == nil {
		return nil
	}
	marks := make([]eventlog.Mark, 0, len(batch))
	for _, it := range batch {
		if a := it.append; a != nil {
			marks = append(marks, eventlog.Mark{Ref: a.Ref, First: a.Expected + 1, Last: a.Expected + uint64(len(a.Events))})
		}
	}
	if len(marks) == 0 {
		return nil
	}
	t, err := x.publish.Prepare(ctx, marks)
	if err != nil {
		return fmt.Errorf("%w: outbox: %v", eventlog.ErrUnavailable, err)
	}
	for _, it := range batch {
		if it.append != nil {
			it.ticket, it.prepared = t, true
		}
	}
	return nil
}

// filterFeeders is how many batches of outcomes go to the filter at once.
const filterFeeders = 2

// filterWaitPoll is how often a feeder looks whether a filter that does
// not serve serves again.
const filterWaitPoll = 50 * time.Millisecond

// feedFilter hands durable outcomes to the filter in batches, without
// holding up the replies: it takes what has queued up since its last call.
// A retry that overtakes the filter is still recognised by the owner's
// recent history (accepted commands) or decided again on the same state
// (rejected ones).
func (x *Executor) feedFilter() {
	defer x.filtering.Done()
	batch := make([]commandlog.Record, 0, 1024)
	for r := range x.filterq {
		batch = append(batch[:0], r)
		batch = gather.Ready(batch, x.filterq, cap(batch))
		// Outcomes decided while the filter forms (or has lost its
		// quorum) are kept until it serves again: the other nodes'
		// filters must learn them too. Closing drops them; the command
		// log and the histories still hold them.
		for !x.filter.Ready() && !x.closing.Load() {
			time.Sleep(filterWaitPoll)
		}
		err := x.recordInFilter(batch)
		if err != nil {
			n := x.stats.filterFailures.Add(1)
			x.filterWarn.Do(func() {
				x.log.Warn("idempotency filter did not take outcomes; their retries fall back to the aggregates' history",
					"commands", len(batch), "failedBatches", n, "err", err)
			})
		}
	}
}

// filterRetries is how many times a batch of outcomes is offered to the
// filter before it is given up (a raft leader change makes the first
// offer fail; the next, once the group serves again, usually lands).
const filterRetries = 4

// recordInFilter offers a batch of outcomes to the filter, again after a
// failure (outcomes are keyed by command id, so offering one twice is
// harmless), waiting for the filter to serve between tries.
func (x *Executor) recordInFilter(batch []commandlog.Record) error {
	var err error
	for try := range filterRetries {
		if try > 0 {
			time.Sleep(filterWaitPoll << try)
			for !x.filter.Ready() && !x.closing.Load() {
				time.Sleep(filterWaitPoll)
			}
		}
		ctx, cancel := x.storeCtx()
		err = x.filter.Record(ctx, batch)
		cancel()
		if err == nil || x.closing.Load() {
			return err
		}
	}
	return err
}

// flushDecisions writes the batch with one DecisionWriter call.
func (x *Executor) flushDecisions(ctx context.Context, batch []*flushItem) []error {
	decisions := make([]commandlog.Decision, len(batch))
	appends := 0
	for i, it := range batch {
		decisions[i] = commandlog.Decision{Append: it.append, Record: it.record, Head: it.head}
		if it.append != nil {
			appends++
		} else if it.head != nil {
			x.stats.headChecks.Add(1)
		}
	}
	errs := checkedResults(x.decide.WriteDecisions(ctx, decisions), len(batch), "decisions")
	if appends > 0 {
		x.stats.batches.Add(1)
		x.stats.appended.Add(int64(appends))
	}
	return errs
}

// flushSeparately writes the batch's events with one Append call, then the
// records of the commands whose events are durable with one Put call.
func (x *Executor) flushSeparately(ctx context.Context, batch []*flushItem) []error {
	errs := make([]error, len(batch))

	appends := make([]eventlog.Append, 0, len(batch))
	owners := make([]int, 0, len(batch))
	for i, it := range batch {
		if it.append != nil {
			appends = append(appends, *it.append)
			owners = append(owners, i)
		}
	}
	if len(appends) > 0 {
		results := checkedResults(x.events.Append(ctx, appends), len(appends), "appends")
		for k, i := range owners {
			errs[i] = results[k]
		}
		x.stats.batches.Add(1)
		x.stats.appended.Add(int64(len(appends)))
	}

	// Decisions without events pass the fence as head checks.
	var (
		heads  []eventlog.Head
		hOwner []int
	)
	for i, it := range batch {
		if it.append == nil && it.head != nil {
			heads = append(heads, *it.head)
			hOwner = append(hOwner, i)
		}
	}
	if len(heads) > 0 {
		x.stats.headChecks.Add(int64(len(heads)))
		results := checkedResults(eventlog.CheckHeads(ctx, x.events, heads), len(heads), "head checks")
		for k, i := range hOwner {
			errs[i] = results[k]
		}
	}

	records := make([]commandlog.Record, 0, len(batch))
	rOwner := make([]int, 0, len(batch))
	for i, it := range batch {
		if errs[i] == nil {
			records = append(records, it.record)
			rOwner = append(rOwner, i)
		}
	}
	if len(records) == 0 {
		return errs
	}
	ins, ok := x.commands.(commandlog.Inserter)
	if !ok {
		if err := x.commands.Put(ctx, records); err != nil {
			x.recordFailed(batch, rOwner, errs, err)
		}
		return errs
	}
	results := checkedResults(ins.Insert(ctx, records), len(records), "records")
	for k, i := range rOwner {
		err := results[k]
		var decided *commandlog.DecidedError
		switch {
		case err == nil:
		case batch[i].append == nil:
			// Nothing else of this decision was written: the standing
			// record (DecidedError) or the failure is its outcome.
			errs[i] = err
		case errors.As(err, &decided):
			_ = x.checkClash(batch[i].record, decided.Record)
		default:
			x.recordFailed(batch, []int{i}, errs, err)
		}
	}
	return errs
}

// checkClash reports (and logs, and counts) a standing record that is not
// the accepted one of mine, whose events the log holds: it should never
// happen.
func (x *Executor) checkClash(mine, standing commandlog.Record) bool {
	if standing.Outcome == commandlog.Accepted && standing.FirstSequence == mine.FirstSequence {
		return false
	}
	x.stats.recordClashes.Add(1)
	x.log.Error("command recorded twice with different outcomes; the log holds this one's events",
		"aggregate", mine.Ref.String(), "commandId", mine.CommandID,
		"recorded", string(standing.Outcome), "appended", fmt.Sprintf("%d..%d", mine.FirstSequence, mine.LastSequence))
	return true
}

// recordFailed handles records that could not be written: a command whose
// events are durable stands (only the record that answers its retries is
// missing; the aggregate's history answers them until the mender has
// written it, mend.go); a decision that wrote nothing else fails, so it is
// not answered from a decision no record keeps.
func (x *Executor) recordFailed(batch []*flushItem, owners []int, errs []error, err error) {
	var mend []commandlog.Record
	for _, i := range owners {
		if batch[i].append != nil {
			mend = append(mend, batch[i].record)
			continue
		}
		errs[i] = fmt.Errorf("%w: command log: %v", eventlog.ErrUnavailable, err)
	}
	if len(mend) > 0 {
		x.log.Error("command log write failed; the aggregates' histories answer these commands' retries until the records are written again", "commands", len(mend), "err", err)
		x.mendLater(mend)
	}
}

// checkedResults returns a store's per-entry results, or, when it returned
// another number of them (a store bug), n copies of an error wrapping
// eventlog.ErrUnavailable: nothing is taken as written.
func checkedResults(results []error, n int, what string) []error {
	if len(results) == n {
		return results
	}
	err := fmt.Errorf("%w: store returned %d results for %d %s", eventlog.ErrUnavailable, len(results), n, what)
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}
