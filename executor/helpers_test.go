package executor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/storage/memory"
)

// ---- the counter: a test aggregate type that detects interleaving ----

const counterType = "counter"

// Counter is the counter's state. Every incremented event carries the N its
// command saw; the applier counts the events whose Prev is not the N they
// are applied to, so any interleaving or lost update shows as Mismatch > 0.
type Counter struct {
	N        int `json:"n"`
	Mismatch int `json:"mismatch"`
}

type (
	counterCreated struct{}
	incremented    struct {
		Prev int `json:"prev"`
	}
)

// incArgs: Times (0 means 1, at most 10) incremented events in one command.
type incArgs struct {
	Times int `json:"times,omitempty"`
}

func (a incArgs) Validate() error {
	if a.Times < 0 || a.Times > 10 {
		return fmt.Errorf("times %d must be between 0 and 10", a.Times)
	}
	return nil
}

type noArgs struct{}

type counterDef struct {
	typ         *model.Type[Counter]
	created     *model.EventType[counterCreated]
	incremented *model.EventType[incremented]
}

// ReasonRefused is the counter's "refuse" command's rejection reason.
const ReasonRefused = "refused"

// defineCounter builds the counter type: create (initial created event),
// increment (Times incremented events), noop (accepted, no events) and
// refuse (always rejected).
func defineCounter() *counterDef {
	t := model.NewType[Counter](counterType, model.JSON{})
	d := &counterDef{
		typ:         t,
		created:     model.DefineEvent[counterCreated](t, "created", 0, model.Initial),
		incremented: model.DefineEvent[incremented](t, "incremented", 0, 0),
	}
	model.On(t.State(), d.incremented, func(c *Counter, e model.Recorded[incremented]) {
		if e.Payload.Prev != c.N {
			c.Mismatch++
		}
		c.N++
	})
	model.DefineCommand(t, "create", func(s model.Snapshot[Counter], _ noArgs) ([]model.Emit, error) {
		return []model.Emit{d.created.New(counterCreated{})}, nil
	}, model.Creates)
	model.DefineCommand(t, "increment", func(s model.Snapshot[Counter], a incArgs) ([]model.Emit, error) {
		n := max(a.Times, 1)
		out := make([]model.Emit, n)
		for i := range out {
			out[i] = d.incremented.New(incremented{Prev: s.Value.N + i})
		}
		return out, nil
	})
	model.DefineCommand(t, "noop", func(s model.Snapshot[Counter], _ noArgs) ([]model.Emit, error) {
		return nil, nil
	})
	model.DefineCommand(t, "refuse", func(s model.Snapshot[Counter], _ noArgs) ([]model.Emit, error) {
		return nil, model.Reject(ReasonRefused, "counter %s refuses at %d", s.Ref.ID, s.Value.N)
	})
	return d
}

func counterRef(id string) model.Ref { return model.Ref{Type: counterType, ID: id} }

// ---- stores with hooks ----

// hookLog wraps an eventlog.Log, counts Append calls and records their batch
// sizes. If hook is set it runs first; a non-nil result is returned instead
// of appending, and pass=true appends anyway after the hook returned.
type hookLog struct {
	eventlog.Log
	mu    sync.Mutex
	sizes []int
	hook  func(ctx context.Context, batch []eventlog.Append) []error
}

func (h *hookLog) Append(ctx context.Context, batch []eventlog.Append) []error {
	h.mu.Lock()
	h.sizes = append(h.sizes, len(batch))
	hook := h.hook
	h.mu.Unlock()
	if hook != nil {
		if errs := hook(ctx, batch); errs != nil {
			return errs
		}
	}
	return h.Log.Append(ctx, batch)
}

// ReadTimePage passes event-time reads to the wrapped store, so that the
// executor's loads use its TimeReader as they would unwrapped.
func (h *hookLog) ReadTimePage(ctx context.Context, ref model.Ref, after model.TimeKey, limit int) ([]model.Event, bool, error) {
	return eventlog.ReadTimePage(ctx, h.Log, ref, after, limit)
}

func (h *hookLog) setHook(f func(ctx context.Context, batch []eventlog.Append) []error) {
	h.mu.Lock()
	h.hook = f
	h.mu.Unlock()
}

func (h *hookLog) batchSizes() []int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int(nil), h.sizes...)
}

func (h *hookLog) calls() int { return len(h.batchSizes()) }

func errsFor(batch []eventlog.Append, f func(a *eventlog.Append) error) []error {
	errs := make([]error, len(batch))
	for i := range batch {
		errs[i] = f(&batch[i])
	}
	return errs
}

// gate blocks every Append that reaches it until released. Each arrival is
// signalled on entered (buffered, never blocks the store).
type gate struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newGate(t *testing.T) *gate {
	g := &gate{entered: make(chan struct{}, 1024), release: make(chan struct{})}
	t.Cleanup(g.open) // never leave a store blocked, even when a test fails
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

func (g *gate) hook(ctx context.Context, batch []eventlog.Append) []error {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return errsFor(batch, func(a *eventlog.Append) error {
			return fmt.Errorf("%w: gate: %v", eventlog.ErrUnavailable, ctx.Err())
		})
	}
}

// blockStore puts a new gate in front of the harness's store: every Append
// waits there until unblockStore.
func (h *harness) blockStore(t *testing.T) *gate {
	g := newGate(t)
	h.store.setHook(g.hook)
	return g
}

// unblockStore takes g away from the store and lets the Appends waiting at
// it through.
func (h *harness) unblockStore(g *gate) {
	h.store.setHook(nil)
	g.open()
}

// stuckIncrement submits an increment of ref with command id and waits
// until its append is held at g.
func (h *harness) stuckIncrement(t *testing.T, g *gate, ref model.Ref, id string) <-chan outcome {
	t.Helper()
	ch := h.submit(ctxT(t), ref, id, "increment")
	g.waitEntered(t, 1)
	return ch
}

// queueCreates submits the creation of n counters, prefix-0 to prefix-n-1,
// while the store is blocked, and waits until all their appends are queued
// behind it.
func (h *harness) queueCreates(t *testing.T, prefix string, n int) []<-chan outcome {
	t.Helper()
	var pending []<-chan outcome
	for i := range n {
		ref := counterRef(fmt.Sprintf("%s-%d", prefix, i))
		pending = append(pending, h.submit(ctxT(t), ref, ref.ID, "create"))
	}
	testsupport.Eventually(t, testDeadline, fmt.Sprintf("the %d %s appends to queue", n, prefix), func() bool { return h.x.QueuedWrites() == n })
	return pending
}

// waitEntered waits until n more Appends have reached the gate.
func (g *gate) waitEntered(t *testing.T, n int) {
	t.Helper()
	timer := time.NewTimer(testDeadline)
	defer timer.Stop()
	for range n {
		select {
		case <-g.entered:
		case <-timer.C:
			t.Fatalf("no append reached the gate within %v", testDeadline)
		}
	}
}

// flakyCommands wraps a commandlog.Log; Put or Get fail while the
// matching flag is set.
type flakyCommands struct {
	commandlog.Log
	failPut, failGet atomic.Bool
}

func (f *flakyCommands) Put(ctx context.Context, records []commandlog.Record) error {
	if f.failPut.Load() {
		return fmt.Errorf("%w: injected put failure", commandlog.ErrUnavailable)
	}
	return f.Log.Put(ctx, records)
}

func (f *flakyCommands) Get(ctx context.Context, id string) (commandlog.Record, error) {
	if f.failGet.Load() {
		return commandlog.Record{}, fmt.Errorf("%w: injected get failure", commandlog.ErrUnavailable)
	}
	return f.Log.Get(ctx, id)
}

// ---- publisher ----

// epoch is where the harness's clock starts.
var epoch = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// recordingPublisher keeps every published event, in arrival order per
// aggregate, and notes any batch that mixes aggregates. It also keeps the
// outbox marks it was given and how many were published or discarded;
// prepareErr, when set, fails Prepare.
type recordingPublisher struct {
	mu        sync.Mutex
	byRef     map[model.Ref][]model.Event
	calls     int
	mixed     int
	marks     []eventlog.Mark
	tickets   map[executor.Ticket]int // marks not yet published or discarded
	discarded int
	// maybeWritten counts discards of appends of unknown outcome.
	maybeWritten int
	prepareErr   error
	next         executor.Ticket
}

func newRecordingPublisher() *recordingPublisher {
	return &recordingPublisher{byRef: map[model.Ref][]model.Event{}, tickets: map[executor.Ticket]int{}}
}

func (p *recordingPublisher) Prepare(_ context.Context, marks []eventlog.Mark) (executor.Ticket, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.prepareErr != nil {
		return 0, p.prepareErr
	}
	p.next++
	p.marks = append(p.marks, marks...)
	p.tickets[p.next] += len(marks)
	return p.next, nil
}

func (p *recordingPublisher) settle(t executor.Ticket) {
	if p.tickets[t]--; p.tickets[t] == 0 {
		delete(p.tickets, t)
	}
}

func (p *recordingPublisher) Discard(t executor.Ticket, maybeWritten bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.discarded++
	if maybeWritten {
		p.maybeWritten++
	}
	p.settle(t)
}

func (p *recordingPublisher) Publish(t executor.Ticket, events []model.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	p.settle(t)
	for i := range events {
		if events[i].Ref() != events[0].Ref() {
			p.mixed++
		}
		p.byRef[events[i].Ref()] = append(p.byRef[events[i].Ref()], events[i])
	}
}

// ---- harness ----

const testDeadline = 20 * time.Second

type harness struct {
	x *executor.Executor
	// events and commands are the stores underneath (memory unless an
	// option says otherwise); tests read and write them directly, behind
	// the executor's back. store wraps events and is what the executor sees.
	events   eventlog.Log
	commands commandlog.Log
	store    *hookLog
	clock    *testsupport.Clock
	counter  *counterDef
	bulb     *lightbulb.Lightbulb
}

type option func(*harness, *executor.Deps)

func withPublisher(p executor.Publisher) option {
	return func(_ *harness, d *executor.Deps) { d.Publish = p }
}

// withFlakyCommands puts f (wrapping the harness's memory command log)
// between the executor and its command log.
func withFlakyCommands(f *flakyCommands) option {
	return func(h *harness, d *executor.Deps) {
		f.Log = h.commands
		d.Commands = f
	}
}

// flakyInserter is a flakyCommands that is also a commandlog.Inserter
// (as the Cassandra command log is): Insert fails while failPut is set.
type flakyInserter struct{ *flakyCommands }

func (f flakyInserter) Insert(ctx context.Context, records []commandlog.Record) []error {
	if f.failPut.Load() {
		errs := make([]error, len(records))
		for i := range errs {
			errs[i] = fmt.Errorf("%w: injected insert failure", commandlog.ErrUnavailable)
		}
		return errs
	}
	return f.Log.(commandlog.Inserter).Insert(ctx, records)
}

func withFlakyInserter(f *flakyCommands) option {
	return func(h *harness, d *executor.Deps) {
		f.Log = h.commands
		d.Commands = flakyInserter{f}
	}
}

// newFlakyHarness builds a harness whose command log is a flakyCommands
// (with no failure set yet) and creates the counter id in it.
func newFlakyHarness(t *testing.T, id string) (*harness, *flakyCommands, model.Ref) {
	t.Helper()
	cl := &flakyCommands{}
	h := newHarness(t, executor.Config{}, withFlakyCommands(cl))
	return h, cl, h.newCounter(t, id)
}

// quietLogger discards the executor's logs (conflicts and store failures
// are expected in these tests).
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// withStores runs the executor over other stores (and, if decisions is
// set, writes through it).
func withStores(events eventlog.Log, commands commandlog.Log, decisions commandlog.DecisionWriter) option {
	return func(h *harness, d *executor.Deps) {
		h.events, h.commands = events, commands
		h.store.Log = events
		d.Commands = commands
		d.Decisions = decisions
	}
}

// newHarness builds an executor over memory stores (the event log wrapped in
// a hookLog) serving the counter and the lightbulb; Close runs at cleanup.
func newHarness(t testing.TB, cfg executor.Config, opts ...option) *harness {
	t.Helper()
	h := &harness{
		events:   memory.NewEventLog(),
		commands: memory.NewCommandLog(),
		clock:    testsupport.NewClock(epoch),
		counter:  defineCounter(),
		bulb:     lightbulb.Define(),
	}
	h.store = &hookLog{Log: h.events}
	reg, err := model.NewRegistry(h.counter.typ, h.bulb.Type)
	if err != nil {
		t.Fatal(err)
	}
	deps := executor.Deps{
		Registry: reg,
		Events:   h.store,
		Commands: h.commands,
		Clock:    h.clock.Now,
		Logger:   quietLogger(),
	}
	for _, o := range opts {
		o(h, &deps)
	}
	h.x, err = executor.New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.x.Close() })
	return h
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testDeadline)
	t.Cleanup(cancel)
	return ctx
}

func (h *harness) exec(t testing.TB, ref model.Ref, id, command string, args string) (executor.Result, error) {
	t.Helper()
	req := executor.Request{Ref: ref, CommandID: id, Command: command}
	if args != "" {
		req.Args = []byte(args)
	}
	return h.x.Execute(ctxT(t), req)
}

// mustExec runs a command that must be accepted.
func (h *harness) mustExec(t testing.TB, ref model.Ref, id, command string, args string) executor.Result {
	t.Helper()
	res, err := h.exec(t, ref, id, command, args)
	if err != nil {
		t.Fatalf("%s %s (%s): %v", ref, command, id, err)
	}
	return res
}

// newCounter creates the counter id with the command id "create" and
// returns its ref.
func (h *harness) newCounter(t testing.TB, id string) model.Ref {
	t.Helper()
	ref := counterRef(id)
	h.mustExec(t, ref, "create", "create", "")
	return ref
}

// submit queues a command and returns a channel that receives its outcome.
func (h *harness) submit(ctx context.Context, ref model.Ref, id, command string) <-chan outcome {
	ch := make(chan outcome, 1)
	h.x.Submit(ctx, executor.Request{Ref: ref, CommandID: id, Command: command},
		func(r executor.Result, err error) { ch <- outcome{r, err} })
	return ch
}

type outcome struct {
	res executor.Result
	err error
}

// answered reports the outcome if it has already been delivered.
func answered(ch <-chan outcome) (outcome, bool) {
	select {
	case o := <-ch:
		return o, true
	default:
		return outcome{}, false
	}
}

func await(t testing.TB, ch <-chan outcome) outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(testDeadline):
		t.Fatalf("no answer within %v", testDeadline)
		return outcome{}
	}
}

// history reads ref's whole history straight from the memory log.
func (h *harness) history(t testing.TB, ref model.Ref) []model.Event {
	t.Helper()
	var out []model.Event
	for e, err := range eventlog.Events(context.Background(), h.events, ref, 1, 100) {
		if err != nil {
			t.Fatalf("reading %s: %v", ref, err)
		}
		out = append(out, e)
	}
	return out
}

// checkCounterHistory verifies a counter's history: created at 1, then
// gap-free incremented events each carrying Prev = its position among the
// increments. It returns the number of increments.
func (h *harness) checkCounterHistory(t testing.TB, ref model.Ref) int {
	t.Helper()
	hist := h.history(t, ref)
	if len(hist) == 0 {
		t.Fatalf("%s: empty history", ref)
	}
	for i, e := range hist {
		if e.Sequence != uint64(i+1) {
			t.Fatalf("%s: event %d has sequence %d (gap or reorder)", ref, i, e.Sequence)
		}
		if i == 0 {
			if !h.counter.created.Is(&e) {
				t.Fatalf("%s: first event is %s, want created_0", ref, e.VersionedName())
			}
			continue
		}
		p, ok, err := h.counter.incremented.Decode(&e)
		if !ok || err != nil {
			t.Fatalf("%s seq %d: %s is not incremented_0 (%v)", ref, e.Sequence, e.VersionedName(), err)
		}
		if p.Prev != i-1 {
			t.Fatalf("%s seq %d: Prev %d, want %d (commands interleaved or an update was lost)", ref, e.Sequence, p.Prev, i-1)
		}
	}
	return len(hist) - 1
}

// state asks for a counter's primary state.
func (h *harness) state(t testing.TB, ref model.Ref) (Counter, executor.QueryResult) {
	t.Helper()
	qr, err := h.x.Ask(ctxT(t), executor.Query{Ref: ref})
	if err != nil {
		t.Fatalf("query %s: %v", ref, err)
	}
	var c Counter
	if err := json.Unmarshal(qr.Value, &c); err != nil {
		t.Fatalf("decoding %s state %s: %v", ref, qr.Value, err)
	}
	return c, qr
}

func (h *harness) lastSeq(t testing.TB, ref model.Ref) uint64 {
	t.Helper()
	n, err := h.events.LastSequence(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// checkLastSeq fails the test unless ref's log ends at sequence want; why,
// if set, says what a wrong sequence means.
func (h *harness) checkLastSeq(t testing.TB, ref model.Ref, want uint64, why string) {
	t.Helper()
	if got := h.lastSeq(t, ref); got != want {
		if why != "" {
			why = " (" + why + ")"
		}
		t.Errorf("%s: log at %d, want %d%s", ref, got, want, why)
	}
}

func (h *harness) recorded(t testing.TB, id string) (commandlog.Record, bool) {
	t.Helper()
	rec, err := h.commands.Get(context.Background(), id)
	switch {
	case errors.Is(err, commandlog.ErrNotFound):
		return rec, false
	case err != nil:
		t.Fatal(err)
	}
	return rec, true
}

// idle waits until no aggregate has a worker (every one parked).
func (h *harness) idle(t testing.TB) {
	t.Helper()
	testsupport.Eventually(t, testDeadline, "all workers to park", func() bool { return h.x.Running() == 0 })
}
