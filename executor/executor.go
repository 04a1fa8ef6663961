package executor

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/time/rate"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

// Errors the executor returns besides the model's (model.ErrUnknownCommand,
// model.ErrInvalidArgs, *model.Rejection). Check with errors.Is.
var (
	// ErrUnknownType: no aggregate type of that name is registered.
	ErrUnknownType = errors.New("executor: unknown aggregate type")
	// ErrInvalidRequest: the request itself is malformed (bad aggregate
	// id, …). Nothing was decided or written.
	ErrInvalidRequest = errors.New("executor: invalid request")
	// ErrUnavailable: the executor is saturated, or a store failed. The
	// command may be retried with the same command id; if it was in fact
	// written, the retry returns the recorded outcome.
	ErrUnavailable = errors.New("executor: unavailable")
	// ErrConflict: another writer appended to the aggregate, and the
	// command conflicted again after one reload and re-run. Retry with the
	// same command id.
	ErrConflict = errors.New("executor: conflict")
	// ErrTimeout: the request's deadline passed before the command ran;
	// nothing was decided or written.
	ErrTimeout = errors.New("executor: timeout")
	// ErrClosed: the executor is closed or closing.
	ErrClosed = errors.New("executor: closed")
	// ErrCommandIDReused: the command id was already used for a command
	// on another aggregate or with another name.
	ErrCommandIDReused = errors.New("executor: command id reused")
	// ErrRecalled is joined to a *model.Rejection that was not decided now
	// but recalled from the command log (the command id was rejected
	// before); nothing ran.
	ErrRecalled = errors.New("executor: outcome recalled from the command log")
)

// Request is one command addressed to one aggregate.
type Request struct {
	Ref model.Ref
	// CommandID is the idempotency key; required (the API generates one
	// when the client sends none).
	CommandID string
	// FreshID says CommandID was just generated for this request (the
	// client sent none), so it cannot have been decided before and the
	// command-log lookup is skipped.
	FreshID bool
	Command string
	Args    []byte
	// Timestamp and StreamID describe the source event time (optional).
	Timestamp time.Time
	StreamID  string
}

// Result is the outcome of an accepted command.
type Result struct {
	Ref       model.Ref
	CommandID string
	// Events are the events the command produced (possibly none).
	Events []model.Event
	// Sequence is the aggregate's sequence after the command.
	Sequence uint64
	// Duplicate is true when the command id had already been decided and
	// the recorded outcome was returned without running anything.
	Duplicate bool
}

// Executor runs commands one at a time per aggregate and many aggregates in
// parallel. See the package documentation for its structure.
type Executor struct {
	cfg      Config
	reg      *model.Registry
	events   eventlog.Log
	commands commandlog.Log
	decide   commandlog.DecisionWriter
	filter   Filter
	publish  Publisher
	clock    func() time.Time
	ids      IDs
	log      *slog.Logger

	shards   [numShards]shard
	inflight atomic.Int64
	closing  atomic.Bool
	// drained is closed once closing is set and nothing is in flight.
	drained   chan struct{}
	drainOnce sync.Once

	// The worker pool: entities with work wait in ready; workers (at most
	// cfg.Workers, started as load needs them and kept, with their grown
	// stacks) take one and drain its mailbox.
	ready       chan *entity
	idleWorkers atomic.Int64
	spawned     atomic.Int64
	workers     sync.WaitGroup

	flushers   sync.WaitGroup
	filtering  sync.WaitGroup // the filter feeders
	filterq    chan commandlog.Record
	mendq      chan commandlog.Record // records to write again (mend.go)
	mending    sync.WaitGroup
	repairq    chan repairItem // loaded histories whose records to check (mend.go)
	repairCtx  context.Context // cancelled by Close: the repairer stops, its reads too
	repairStop context.CancelFunc
	repairing  sync.WaitGroup
	filterWarn rate.Sometimes // the filter-failure warning, at most every 10 s (the count stays in Stats)
	flushq     chan *flushItem
	stats      counters
}

const numShards = 64

type shard struct {
	mu struct {
		sync.Mutex
		entities map[model.Ref]*entity
		idle     *list.List // of *entity, least recently used first
	}
	capacity int
}

// entity is one aggregate's mailbox and cached state. queue, running, idle
// and stale are guarded by the shard's mutex; agg is owned by the worker
// while running is true, and by nobody otherwise.
type entity struct {
	ref     model.Ref
	shard   *shard
	kind    model.Kind
	queue   []*job
	running bool
	stale   bool
	idle    *list.Element
	agg     model.Aggregate
	// recent are the commands that wrote the aggregate's latest events
	// (owned like agg): a retry whose record never reached the command log
	// or the filter (an append of unknown outcome, a failed record write,
	// a filter that lost its memory) is recognised by them instead of
	// running again.
	recent recentCommands
	// decided are the aggregate's last few decisions that wrote no events
	// (rejections, commands that produced none), as recorded: a retry that
	// reaches this owner before the filter learned them gets them back
	// instead of a decision on newer state.
	decided decidedCommands
}

// decidedCommands is a small ring of records, oldest first.
type decidedCommands []commandlog.Record

func (d *decidedCommands) add(r commandlog.Record) { *d = keepLast(*d, r, recentKept) }

func (d decidedCommands) find(commandID string) (commandlog.Record, bool) {
	for i := len(d) - 1; i >= 0; i-- {
		if d[i].CommandID == commandID {
			return d[i], true
		}
	}
	return commandlog.Record{}, false
}

// recentCommand is a contiguous run of events caused by one command.
type recentCommand struct {
	id          string
	first, last uint64
}

// recentCommands are the last few commands of an aggregate's history,
// oldest first.
type recentCommands []recentCommand

// recentKept bounds recentCommands: a retry usually follows its original
// closely, and the filter or command log answers the rest.
const recentKept = 16

func (r *recentCommands) observe(ev *model.Event) {
	if n := len(*r); n > 0 {
		t := &(*r)[n-1]
		if ev.CommandID != "" && ev.CommandID == t.id && ev.Sequence == t.last+1 {
			t.last = ev.Sequence
			return
		}
	}
	*r = keepLast(*r, recentCommand{id: ev.CommandID, first: ev.Sequence, last: ev.Sequence}, recentKept)
}

// keepLast appends v to s and drops the oldest element beyond n, reusing
// s's array.
func keepLast[T any](s []T, v T, n int) []T {
	if len(s) == n {
		copy(s, s[1:])
		s = s[:n-1]
	}
	return append(s, v)
}

// find returns the events a command wrote, if it is among the recent ones.
func (r recentCommands) find(commandID string) (recentCommand, bool) {
	for i := len(r) - 1; i >= 0; i-- {
		if r[i].id == commandID && commandID != "" {
			return r[i], true
		}
	}
	return recentCommand{}, false
}

type jobKind uint8

const (
	jobCommand jobKind = iota
	jobQuery
	jobFacts
)

type job struct {
	kind  jobKind
	ctx   context.Context
	req   Request // for facts, only Ref
	query Query
	facts []Fact
	done  func(Result, error)
	qdone func(QueryResult, error)
	fdone func([]FactResult, error)
}

// New builds an executor. It starts its flushers; Close stops them.
func New(cfg Config, deps Deps) (*Executor, error) {
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	switch {
	case deps.Registry == nil:
		return nil, errors.New("executor: Deps.Registry is required")
	case deps.Events == nil:
		return nil, errors.New("executor: Deps.Events is required")
	case deps.Commands == nil:
		return nil, errors.New("executor: Deps.Commands is required")
	}
	x := &Executor{
		cfg:      cfg,
		reg:      deps.Registry,
		events:   deps.Events,
		commands: deps.Commands,
		decide:   deps.Decisions,
		filter:   deps.Filter,
		publish:  deps.Publish,
		clock:    deps.Clock,
		ids:      deps.IDs,
		log:      deps.Logger,
		flushq:   make(chan *flushItem, cfg.MaxBatch*cfg.Flushers),
		// A ready entity has at least one job in flight, so MaxInFlight
		// bounds them and sends never block.
		ready:      make(chan *entity, cfg.MaxInFlight),
		drained:    make(chan struct{}),
		filterWarn: rate.Sometimes{Interval: 10 * time.Second},
	}
	if x.clock == nil {
		x.clock = time.Now
	}
	if x.ids == nil {
		x.ids = UUIDs{}
	}
	if x.log == nil {
		x.log = slog.Default()
	}
	per := (cfg.MaxCached + numShards - 1) / numShards
	for i := range x.shards {
		sh := &x.shards[i]
		sh.capacity = per
		sh.mu.entities = make(map[model.Ref]*entity)
		sh.mu.idle = list.New()
	}
	for range cfg.Flushers {
		x.flushers.Add(1)
		go x.flushLoop()
	}
	x.mendq = make(chan commandlog.Record, mendQueue)
	x.mending.Add(1)
	go x.mendRecords()
	x.repairq = make(chan repairItem, mendQueue)
	x.repairCtx, x.repairStop = context.WithCancel(context.Background())
	x.repairing.Add(1)
	go x.repairRecords()
	if x.filter != nil {
		x.filterq = make(chan commandlog.Record, 1<<16)
		for range filterFeeders {
			x.filtering.Add(1)
			go x.feedFilter()
		}
	}
	return x, nil
}

func (x *Executor) shardOf(ref model.Ref) *shard {
	var h xxhash.Digest // on the stack: no allocation per command
	h.Reset()
	_, _ = h.WriteString(ref.Type)
	_, _ = h.WriteString("\x00")
	_, _ = h.WriteString(ref.ID)
	return &x.shards[h.Sum64()%numShards]
}

// Submit queues a command and returns at once; done is called exactly once,
// from another goroutine, with the result. An error that can be known
// without running (unknown type, saturation, closed) is also delivered
// through done, before Submit returns. ctx bounds how long the command may
// wait in the mailbox: once it has started, it runs to completion.
func (x *Executor) Submit(ctx context.Context, req Request, done func(Result, error)) {
	j := &job{kind: jobCommand, ctx: ctx, req: req, done: done}
	if err := x.checkRequest(&req); err != nil {
		x.stats.invalid.Add(1)
		done(Result{}, err)
		return
	}
	x.enqueue(j)
}

// Execute runs a command and waits for its outcome.
func (x *Executor) Execute(ctx context.Context, req Request) (Result, error) {
	// On timeout the command may still run; its outcome is recorded under
	// its command id, so a retry with the same id learns it.
	return await(ctx, func(done func(Result, error)) { x.Submit(ctx, req, done) },
		func(err error) error { return fmt.Errorf("%w: %s %s: %v", ErrTimeout, req.Ref, req.Command, err) })
}

// await hands submit a callback and waits for it to be called or for ctx
// to end; then it returns timeout(ctx.Err()). The callback may still be
// called after that (its channel has room for it).
func await[R any](ctx context.Context, submit func(done func(R, error)), timeout func(error) error) (R, error) {
	type outcome struct {
		res R
		err error
	}
	ch := make(chan outcome, 1)
	submit(func(r R, err error) { ch <- outcome{r, err} })
	select {
	case o := <-ch:
		return o.res, o.err
	case <-ctx.Done():
		var zero R
		return zero, timeout(ctx.Err())
	}
}

func (x *Executor) checkRequest(req *Request) error {
	if err := req.Ref.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidRequest, err)
	}
	kind, ok := x.reg.Lookup(req.Ref.Type)
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownType, req.Ref.Type)
	}
	if !kind.HasCommand(req.Command) {
		return fmt.Errorf("%w: %q has no command %q", model.ErrUnknownCommand, req.Ref.Type, req.Command)
	}
	if req.CommandID == "" {
		return fmt.Errorf("%w: command id is empty", ErrInvalidRequest)
	}
	if len(req.CommandID) > model.MaxCommandIDLen {
		return fmt.Errorf("%w: command id is %d bytes, limit %d", ErrInvalidRequest, len(req.CommandID), model.MaxCommandIDLen)
	}
	return nil
}

// fail delivers an error to a job's callback.
func (j *job) fail(err error) {
	switch j.kind {
	case jobQuery:
		j.qdone(QueryResult{}, err)
	case jobFacts:
		j.fdone(nil, err)
	default:
		j.done(Result{}, err)
	}
}

func (x *Executor) enqueue(j *job) {
	ref := j.ref()
	// Count first, then look at closing: Close sets closing and then waits
	// for the count to reach zero, so a job counted here is either refused
	// below or waited for.
	if n := x.inflight.Add(1); n > int64(x.cfg.MaxInFlight) {
		x.release()
		x.stats.saturated.Add(1)
		j.fail(fmt.Errorf("%w: node saturated (%d commands in flight)", ErrUnavailable, x.cfg.MaxInFlight))
		return
	}
	if x.closing.Load() {
		x.release()
		j.fail(ErrClosed)
		return
	}
	kind, _ := x.reg.Lookup(ref.Type)
	sh := x.shardOf(ref)
	sh.mu.Lock()
	e := sh.mu.entities[ref]
	if e == nil {
		e = &entity{ref: ref, shard: sh, kind: kind}
		sh.mu.entities[ref] = e
	}
	if len(e.queue) >= x.cfg.MailboxSize {
		sh.mu.Unlock()
		x.release()
		x.stats.saturated.Add(1)
		j.fail(fmt.Errorf("%w: %s has %d commands queued", ErrUnavailable, ref, x.cfg.MailboxSize))
		return
	}
	e.queue = append(e.queue, j)
	start := !e.running
	if start {
		e.running = true
		if e.idle != nil {
			sh.mu.idle.Remove(e.idle)
			e.idle = nil
		}
	}
	sh.mu.Unlock()
	if start {
		x.ready <- e
		if int64(len(x.ready)) > x.idleWorkers.Load() {
			x.spawnWorker()
		}
	}
}

// release marks one job finished (or refused) and, when closing and nothing
// is left, signals Close.
func (x *Executor) release() {
	if x.inflight.Add(-1) == 0 && x.closing.Load() {
		x.drainOnce.Do(func() { close(x.drained) })
	}
}

// spawnWorker starts another pool worker unless the pool is full.
func (x *Executor) spawnWorker() {
	for {
		n := x.spawned.Load()
		if n >= int64(x.cfg.Workers) {
			return
		}
		if x.spawned.CompareAndSwap(n, n+1) {
			break
		}
	}
	x.workers.Add(1)
	go x.workerLoop()
}

// workerLoop takes entities with work until Close closes ready.
func (x *Executor) workerLoop() {
	defer x.workers.Done()
	for {
		x.idleWorkers.Add(1)
		e, ok := <-x.ready
		x.idleWorkers.Add(-1)
		if !ok {
			return
		}
		x.work(e.shard, e)
	}
}

func (j *job) ref() model.Ref {
	if j.kind == jobQuery {
		return j.query.Ref
	}
	return j.req.Ref
}

// work drains one aggregate's mailbox, then parks the entity as idle.
func (x *Executor) work(sh *shard, e *entity) {
	for {
		sh.mu.Lock()
		if len(e.queue) == 0 {
			e.running = false
			e.idle = sh.mu.idle.PushBack(e)
			sh.evictLocked()
			sh.mu.Unlock()
			return
		}
		j := e.queue[0]
		e.queue[0] = nil
		e.queue = e.queue[1:]
		if len(e.queue) == 0 {
			e.queue = nil // let a burst's backing array go
		}
		if e.stale {
			e.stale = false
			e.agg = nil
		}
		sh.mu.Unlock()

		x.run(e, j) // releases the job's in-flight slot before answering
	}
}

// evictLocked drops the least recently used idle entities past capacity.
func (sh *shard) evictLocked() {
	for len(sh.mu.entities) > sh.capacity {
		front := sh.mu.idle.Front()
		if front == nil {
			return // everything left is busy; they park later
		}
		e := sh.mu.idle.Remove(front).(*entity)
		e.idle = nil
		delete(sh.mu.entities, e.ref)
	}
}

func (x *Executor) run(e *entity, j *job) {
	if err := j.ctx.Err(); err != nil {
		x.stats.timeouts.Add(1)
		x.release()
		j.fail(fmt.Errorf("%w: %s waited past its deadline: %v", ErrTimeout, e.ref, err))
		return
	}
	switch j.kind {
	case jobQuery:
		res, err := x.query(e, j)
		x.release()
		j.qdone(res, err)
		return
	case jobFacts:
		res, err := x.ingest(e, j)
		if err != nil {
			x.count(err)
		}
		x.release()
		j.fdone(res, err)
		return
	}
	res, err := x.command(e, j)
	x.count(err)
	x.release() // the slot is free once answered: free it before answering
	j.done(res, err)
}

func (x *Executor) count(err error) {
	var rej *model.Rejection
	switch {
	case err == nil:
		x.stats.accepted.Add(1)
	case errors.As(err, &rej):
		x.stats.rejected.Add(1)
	case errors.Is(err, ErrConflict):
		x.stats.conflicts.Add(1)
	case errors.Is(err, ErrUnavailable):
		x.stats.unavailable.Add(1)
	default:
		x.stats.invalid.Add(1)
	}
}

func (x *Executor) storeCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), x.cfg.StoreTimeout)
}

// command runs one command on its aggregate's worker.
//
// Every answer it gives is justified by the log at an instant between the
// request and the reply, and one command id gets one outcome:
//
//   - a decision that appends events passes the store's fence (the append
//     expects the sequence the state was folded to);
//   - a decision that appends nothing (a rejection, or a command that
//     produced no events) passes the same fence as a head check
//     (eventlog.HeadChecker) before its record is written and it is
//     answered, so a stale owner cannot answer from state the log has moved
//     past;
//   - after a fence fails, the state is reloaded and the reloaded history is
//     searched for the command's own id, and the durable record is read: a
//     fence fails only because another writer was active, and that writer
//     may have decided this very command;
//   - a cold load (new owner, evicted state) reads the durable record too,
//     and so does a filter miss while the filter says its memory may be
//     incomplete (Completer);
//   - records are inserted, never replaced (commandlog.Inserter): when a
//     record for the id exists already, the first decision stands and is
//     the answer.
func (x *Executor) command(e *entity, j *job) (Result, error) {
	req := &j.req
	durable := false // the command log has been read for this id
	digest := ""     // of the arguments, computed once
	if !req.FreshID {
		res, err, found, fromLog := x.recall(req)
		if found {
			return res, err
		}
		durable = fromLog
		if rec, ok := e.decided.find(req.CommandID); ok {
			x.stats.duplicates.Add(1)
			return x.answer(req, rec)
		}
	}
	for attempt := 0; ; attempt++ {
		loaded, hit, found, err := x.load(e, req.CommandID)
		if err != nil {
			return Result{}, err
		}
		if !found && attempt == 0 {
			hit, found = e.recent.find(req.CommandID)
		}
		if found {
			return x.recallFromLog(e, req, hit)
		}
		if loaded && !req.FreshID && !durable {
			// Fresh state from the log: another node may have owned the
			// aggregate until now and decided this id without it reaching
			// the filter yet. The durable record says.
			durable = true
			if res, err, found := x.recallFromCommandLog(req); found {
				return res, err
			}
		}
		now := x.clock()
		if digest == "" {
			digest = commandlog.ArgsDigest(req.Args)
		}
		events, err := e.agg.Decide(&model.CommandRequest{
			CommandID: req.CommandID,
			Command:   req.Command,
			Args:      req.Args,
			Timestamp: req.Timestamp,
			StreamID:  req.StreamID,
			Now:       now,
		})
		seq := e.agg.Sequence()
		var (
			rej  *model.Rejection
			item *flushItem
		)
		switch {
		case errors.As(err, &rej):
			item = &flushItem{record: commandlog.Record{
				CommandID: req.CommandID, Ref: e.ref, Command: req.Command, Outcome: commandlog.Rejected,
				Code: "rejected", Reason: rej.Reason, Message: rej.Message, At: model.NormalizeTime(now), ArgsDigest: digest,
			}}
		case err != nil:
			return Result{}, err // invalid arguments, unknown command: not recorded
		default:
			for i := range events {
				if events[i].EventID, err = x.ids.EventID(); err == nil {
					events[i].ProcessingID, err = x.ids.ProcessingID(events[i].ProcessingTime)
				}
				if err != nil {
					return Result{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
				}
			}
			item = &flushItem{record: commandlog.Record{
				CommandID: req.CommandID, Ref: e.ref, Command: req.Command, Outcome: commandlog.Accepted,
				FirstSequence: seq + 1, LastSequence: seq + uint64(len(events)), At: model.NormalizeTime(now), ArgsDigest: digest,
			}}
		}
		if len(events) > 0 {
			item.append = &eventlog.Append{Ref: e.ref, Expected: seq, Events: events}
		} else if !x.cfg.UnfencedDecisions {
			item.head = &eventlog.Head{Ref: e.ref, Sequence: seq}
		}
		err = x.record(item)
		if err != nil && item.prepared {
			x.publish.Discard(item.ticket, !errors.Is(err, eventlog.ErrConflict) && !errors.Is(err, eventlog.ErrInvalidAppend) && !errors.Is(err, commandlog.ErrDecided))
		}
		var decided *commandlog.DecidedError
		switch {
		case err == nil:
		case errors.As(err, &decided):
			// Another decision of this id was recorded first: it stands.
			x.stats.duplicates.Add(1)
			return x.answer(req, decided.Record)
		case errors.Is(err, eventlog.ErrConflict):
			x.stats.fenced.Add(1)
			e.agg = nil
			durable = false // another writer was active: ask the record again
			if attempt == 0 {
				x.log.Info("fence failed (another writer moved the history); reloading and deciding again",
					"aggregate", e.ref.String(), "command", req.Command, "commandId", req.CommandID, "err", err)
				continue
			}
			return Result{}, fmt.Errorf("%w: %s: %v", ErrConflict, e.ref, err)
		default:
			e.agg = nil // whether it landed is unknown: reload next time
			return Result{}, fmt.Errorf("%w: %s: %v", ErrUnavailable, e.ref, err)
		}
		if rej != nil {
			e.decided.add(item.record)
			return Result{}, rej
		}
		if len(events) == 0 {
			e.decided.add(item.record)
		}
		x.absorb(e, events)
		if x.publish != nil && len(events) > 0 {
			x.publish.Publish(item.ticket, events)
		}
		return Result{Ref: e.ref, CommandID: req.CommandID, Events: events, Sequence: seq + uint64(len(events))}, nil
	}
}

// Completer is an optional capability of a Filter: Complete reports whether
// the filter can vouch that a command id it does not hold was not decided
// within its window. It cannot after its group formed or re-formed within
// the window, while it has no quorum, or after a member was cut off or
// paused (its outcomes may not have reached the group). While it cannot,
// a miss is checked against the command log.
type Completer interface {
	Complete() bool
}

// recall returns the recorded outcome of an already decided command id:
// from the filter when there is one (a memory lookup), else from the
// command log. fromLog reports that the command log was read.
func (x *Executor) recall(req *Request) (res Result, err error, found, fromLog bool) {
	if x.filter != nil && x.filter.Ready() {
		if rec, ok := x.filter.Lookup(req.CommandID); ok {
			x.stats.duplicates.Add(1)
			res, err = x.answer(req, rec)
			return res, err, true, false
		}
		if c, ok := x.filter.(Completer); !ok || c.Complete() {
			return Result{}, nil, false, false
		}
		x.stats.doubtedMisses.Add(1)
	} else if x.filter != nil {
		x.stats.doubtedMisses.Add(1) // not serving: it vouches for nothing
	}
	res, err, found = x.recallFromCommandLog(req)
	return res, err, found, true
}

// recallFromCommandLog answers a command id from its durable record, if
// there is one.
func (x *Executor) recallFromCommandLog(req *Request) (Result, error, bool) {
	ctx, cancel := x.storeCtx()
	rec, err := x.commands.Get(ctx, req.CommandID)
	cancel()
	switch {
	case errors.Is(err, commandlog.ErrNotFound):
		return Result{}, nil, false
	case err != nil:
		return Result{}, fmt.Errorf("%w: command log: %v", ErrUnavailable, err), true
	}
	x.stats.duplicates.Add(1)
	res, err := x.answer(req, rec)
	return res, err, true
}

// answer turns the recorded outcome of a command id into the reply to a
// request that carries it again. A record written from the history (no
// command name, no digest; mend.go) is matched by aggregate alone.
func (x *Executor) answer(req *Request, rec commandlog.Record) (Result, error) {
	if rec.Ref != req.Ref || (rec.Command != "" && rec.Command != req.Command) {
		return Result{}, fmt.Errorf("%w: %q was %s on %s, now %s on %s", ErrCommandIDReused, req.CommandID, rec.Command, rec.Ref, req.Command, req.Ref)
	}
	if rec.ArgsDigest != "" && rec.ArgsDigest != commandlog.ArgsDigest(req.Args) {
		return Result{}, fmt.Errorf("%w: %q was %s on %s with other arguments", ErrCommandIDReused, req.CommandID, rec.Command, rec.Ref)
	}
	if rec.Outcome == commandlog.Rejected {
		return Result{}, fmt.Errorf("%w (%w)", &model.Rejection{Reason: rec.Reason, Message: rec.Message}, ErrRecalled)
	}
	res := Result{Ref: rec.Ref, CommandID: rec.CommandID, Sequence: rec.LastSequence, Duplicate: true}
	if rec.LastSequence >= rec.FirstSequence && rec.FirstSequence > 0 {
		ctx, cancel := x.storeCtx()
		defer cancel()
		n := int(rec.LastSequence - rec.FirstSequence + 1)
		events, _, err := x.events.ReadPage(ctx, rec.Ref, rec.FirstSequence, n)
		if err != nil {
			return Result{}, fmt.Errorf("%w: reading recorded events: %v", ErrUnavailable, err)
		}
		res.Events = events
	}
	return res, nil
}

// load makes sure e.agg holds the aggregate's state, reading the log on a
// miss. A history that fits in one page is read in log order with one
// ReadPage and sorted in memory (one store round trip, the common case);
// a longer one is read in event-time order a page at a time
// (eventlog.EventsInTime, so memory stays bounded by the page whatever the
// history's length), then its last page in log order for the recent
// commands. loaded reports that it read the log; hit and found then say
// where in the history the command id commandID wrote events, if it did.
func (x *Executor) load(e *entity, commandID string) (loaded bool, hit recentCommand, found bool, err error) {
	if e.agg != nil {
		return false, recentCommand{}, false, nil
	}
	ctx, cancel := x.storeCtx()
	defer cancel()
	agg := e.kind.NewAggregate(e.ref.ID)
	look := func(ev *model.Event) {
		if commandID != "" && ev.CommandID == commandID {
			// A command's events are contiguous in the log; in event
			// time they come in any order.
			if !found {
				hit, found = recentCommand{id: commandID, first: ev.Sequence, last: ev.Sequence}, true
			} else {
				hit.first, hit.last = min(hit.first, ev.Sequence), max(hit.last, ev.Sequence)
			}
		}
	}
	fail := func(err error) (bool, recentCommand, bool, error) {
		if errors.Is(err, model.ErrCorruptHistory) {
			x.log.Error("corrupt history", "aggregate", e.ref.String(), "err", err)
		}
		return false, recentCommand{}, false, fmt.Errorf("%w: loading %s: %v", ErrUnavailable, e.ref, err)
	}
	var recent recentCommands
	first, next, err := x.events.ReadPage(ctx, e.ref, 1, x.cfg.LoadPageSize)
	if err != nil {
		return fail(err)
	}
	var repair []recentCommand
	if next == 0 || len(first) == 0 {
		// The whole history, in log order: the recent commands are its
		// tail; sorted, it is the event-time order.
		from := max(len(first)-recentScan, 0)
		repair = x.repairCandidates(first[from:])
		for i := range first {
			look(&first[i])
			if i >= from {
				recent.observe(&first[i])
			}
		}
		slices.SortFunc(first, func(a, b model.Event) int { return a.TimeKey().Compare(b.TimeKey()) })
		if err := agg.Load(eventsOf(first)); err != nil {
			return fail(err)
		}
	} else {
		first = nil
		history := func(yield func(model.Event, error) bool) {
			for ev, err := range eventlog.EventsInTime(ctx, x.events, e.ref, model.TimeKey{}, x.cfg.LoadPageSize) {
				if err == nil {
					look(&ev)
				}
				if !yield(ev, err) {
					return
				}
			}
		}
		if err := agg.Load(history); err != nil {
			return fail(err)
		}
		head := agg.Sequence()
		from := uint64(1)
		if head > recentScan {
			from = head - recentScan + 1
		}
		page, _, err := x.events.ReadPage(ctx, e.ref, from, int(head-from+1))
		if err != nil {
			return fail(err)
		}
		for i := range page {
			recent.observe(&page[i])
		}
		repair = x.repairCandidates(page)
	}
	x.stats.loads.Add(1)
	e.agg = agg
	e.recent = recent
	x.repairLater(e.ref, repair)
	return true, hit, found, nil
}

// eventsOf streams a slice of events.
func eventsOf(es []model.Event) iter.Seq2[model.Event, error] {
	return func(yield func(model.Event, error) bool) {
		for _, e := range es {
			if !yield(e, nil) {
				return
			}
		}
	}
}

// recentScan is how many of the latest events (log order) a load reads to
// know the aggregate's recent commands.
const recentScan = 4 * recentKept

// absorb applies events just appended to the cached state, marks the late
// ones (stamped before an event already recorded) for the publisher, and
// refolds the state from its nearest checkpoint when one was late, reading
// the history after it in event time. When the cache cannot follow, it is
// dropped and the next command reloads from the log.
func (x *Executor) absorb(e *entity, events []model.Event) {
	for i := range events {
		e.recent.observe(&events[i])
		late, err := e.agg.Apply(&events[i])
		if err != nil {
			x.log.Error("applying appended event failed; dropping cached state", "aggregate", e.ref.String(), "err", err)
			e.agg = nil
			return
		}
		if late {
			events[i].Late = true
			x.stats.lateEvents.Add(1)
		}
	}
	after, stale := e.agg.Stale()
	if !stale {
		return
	}
	ctx, cancel := x.storeCtx()
	defer cancel()
	if err := e.agg.Refold(eventlog.EventsInTime(ctx, x.events, e.ref, after, x.cfg.LoadPageSize)); err != nil {
		x.log.Warn("refolding after a late event failed; dropping cached state", "aggregate", e.ref.String(), "err", err)
		e.agg = nil
		return
	}
	x.stats.refolds.Add(1)
}

// recallFromLog answers a command whose events are in the aggregate's
// history but whose outcome the command log or filter did not return (the
// append's outcome was unknown, the record failed to write, the filter
// lost it): it returns them as a duplicate and records the outcome (unless
// a record stands already), so later retries are answered by recall.
func (x *Executor) recallFromLog(e *entity, req *Request, c recentCommand) (Result, error) {
	ctx, cancel := x.storeCtx()
	defer cancel()
	n := c.last - c.first + 1
	events, _, err := x.events.ReadPage(ctx, e.ref, c.first, int(n))
	if err == nil && uint64(len(events)) != n {
		err = fmt.Errorf("read %d events of %d..%d", len(events), c.first, c.last)
	}
	if err != nil {
		return Result{}, fmt.Errorf("%w: reading recorded events: %v", ErrUnavailable, err)
	}
	x.stats.duplicates.Add(1)
	rec := commandlog.Record{
		CommandID: req.CommandID, Ref: e.ref, Command: req.Command, Outcome: commandlog.Accepted,
		FirstSequence: c.first, LastSequence: c.last, At: events[0].ProcessingTime,
		// No ArgsDigest: the history does not say what the arguments were.
	}
	err = x.record(&flushItem{record: rec})
	if err != nil && !errors.Is(err, commandlog.ErrDecided) {
		x.log.Warn("re-recording a command failed; the mender retries", "aggregate", e.ref.String(), "commandId", req.CommandID, "err", err)
		x.mendLater([]commandlog.Record{rec})
	}
	return Result{Ref: e.ref, CommandID: req.CommandID, Events: events, Sequence: c.last, Duplicate: true}, nil
}

// Close stops taking commands, lets queued and running ones finish, flushes
// and stops the flushers. It does not close the stores.
func (x *Executor) Close() error {
	if x.closing.Swap(true) {
		<-x.drained // a concurrent Close returns when the first is done
		x.workers.Wait()
		x.flushers.Wait()
		x.filtering.Wait()
		x.repairing.Wait()
		x.mending.Wait()
		return nil
	}
	if x.inflight.Load() == 0 {
		x.drainOnce.Do(func() { close(x.drained) })
	}
	<-x.drained
	close(x.ready)
	x.workers.Wait()
	close(x.flushq)
	x.flushers.Wait()
	x.repairStop() // what it still holds, the next load checks again
	x.repairing.Wait()
	close(x.mendq)   // the flushers and the repairer were its only senders
	x.mending.Wait() // each attempt is bounded by StoreTimeout
	if x.filterq != nil {
		close(x.filterq)
		x.filtering.Wait() // each Record is bounded by StoreTimeout
	}
	return nil
}

// Invalidate drops the cached state of every aggregate for which drop
// returns true; the next command reloads it from the log. Running
// aggregates drop it before their next command.
func (x *Executor) Invalidate(drop func(model.Ref) bool) int {
	n := 0
	for i := range x.shards {
		sh := &x.shards[i]
		sh.mu.Lock()
		for ref, e := range sh.mu.entities {
			if !drop(ref) {
				continue
			}
			n++
			if e.running {
				e.stale = true
				continue
			}
			if e.idle != nil {
				sh.mu.idle.Remove(e.idle)
				e.idle = nil
			}
			delete(sh.mu.entities, ref)
		}
		sh.mu.Unlock()
	}
	return n
}
