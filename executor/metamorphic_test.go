package executor_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
)

// The metamorphic test runs one seeded workload through executors built
// differently (one flusher or several, small or large batches, a cache
// that holds everything or one aggregate per shard, memory or bolt stores,
// bolt's DecisionWriter or separate appends and record writes, fenced or
// unfenced decisions without events) and requires the same transcript
// from each: every operation's answer, every history, every view, every
// command record, what was published. None of these knobs may change an
// outcome; they only change how work is batched, cached and written.
//
// Determinism: each aggregate's operations are sent in a fixed order by
// one goroutine (Execute, Ask and Ingest wait for their answer), the
// aggregates run concurrently (so their writes share batches in varying
// ways), command ids never cross aggregates in that phase, and the clock
// is fixed for the whole run, so an event's timestamp is the one the
// operation carries or that fixed instant. The operations that cross
// aggregates (a command id reused on another aggregate) run afterwards,
// one at a time. EventID, ProcessingID and ProcessingTime are not
// compared. A repeated command never carries FreshID: that flag promises
// the id was never decided, and where the promise is broken the two write
// paths legitimately differ (separate writes append the command again and
// count a RecordClash; a DecisionWriter answers the standing record).
//
// The seed is logged; rerun one with -executor.seed=N (or
// EXECUTOR_SEED=N).

var metamorphicSeedFlag = flag.Uint64("executor.seed", 0, "seed of the metamorphic executor workload (0: EXECUTOR_SEED, else the time)")

func metamorphicSeed(t *testing.T) uint64 {
	t.Helper()
	seed := testsupport.Seed(t, *metamorphicSeedFlag, "EXECUTOR_SEED")
	t.Logf("seed %d (rerun with -executor.seed=%d)", seed, seed)
	return seed
}

// ---- the workload ----

type mKind uint8

const (
	mCommand mKind = iota
	mQuery
	mFacts
)

// mOp is one operation of the workload; note says what the generator
// meant by it (shown in diffs).
type mOp struct {
	kind  mKind
	ref   model.Ref
	note  string
	req   executor.Request
	query executor.Query
	facts []executor.Fact
}

type mAggregate struct {
	ref model.Ref
	ops []mOp
}

type mWorkload struct {
	aggs []mAggregate
	// cross runs after every aggregate's ops, one at a time: command ids
	// sent to other aggregates, retries after a cache drop.
	cross []mOp
	// asOf are the instants every aggregate's views are compared at.
	asOf []time.Time
	// clock is the executor's clock for the whole run.
	clock time.Time
}

const (
	mAggregates = 36
	mStream2    = "sensor-2"
)

// mGen generates one aggregate's operations from its own random source,
// so that an aggregate's workload does not depend on the others'.
type mGen struct {
	rng      *rand.Rand
	ref      model.Ref
	bulb     bool
	base     time.Time
	cur      time.Time // the latest "now" of this aggregate's source
	ops      []mOp
	commands []int // indexes of command ops, for retries and reuse
	facts    []int // indexes of facts ops, for resending
	nextID   int
}

// genWorkload generates the workload of n aggregates (mAggregates in the
// test itself).
func genWorkload(seed uint64, n int) mWorkload {
	w := mWorkload{clock: epoch.Add(30 * time.Minute)}
	for i := range n {
		g := &mGen{rng: rand.New(rand.NewPCG(seed, uint64(i)+1)), bulb: i%2 == 1}
		if g.bulb {
			g.ref = model.Ref{Type: lightbulb.TypeName, ID: fmt.Sprintf("b%02d", i)}
		} else {
			g.ref = counterRef(fmt.Sprintf("c%02d", i))
		}
		// Bases 2 minutes apart: the fixed clock falls before some
		// aggregates' times and after others'.
		g.base = epoch.Add(time.Duration(i) * 2 * time.Minute)
		g.cur = g.base
		n := 25 + g.rng.IntN(20)
		for range n {
			g.step()
		}
		w.aggs = append(w.aggs, mAggregate{ref: g.ref, ops: g.ops})
	}
	rng := rand.New(rand.NewPCG(seed, 0))
	for k := range 30 {
		a := w.aggs[rng.IntN(len(w.aggs))]
		var cmds []mOp
		for _, op := range a.ops {
			if op.kind == mCommand {
				cmds = append(cmds, op)
			}
		}
		if len(cmds) == 0 {
			continue
		}
		op := cmds[rng.IntN(len(cmds))]
		op.req.FreshID = false // sent again: not fresh
		switch k % 3 {
		case 0: // the same id on another aggregate (of either type)
			b := w.aggs[rng.IntN(len(w.aggs))]
			op.ref, op.req.Ref, op.note = b.ref, b.ref, "cross: "+a.ref.String()+"'s id on "+b.ref.String()
		case 1: // a retry after the cache was dropped
			op.note = "cross: retry after invalidate"
		default: // state after the reloads
			op = mOp{kind: mQuery, ref: a.ref, note: "cross: state", query: executor.Query{Ref: a.ref}}
		}
		w.cross = append(w.cross, op)
	}
	// Answers refused before the mailbox, once each for sure.
	a := w.aggs[rng.IntN(len(w.aggs))].ref
	w.cross = append(w.cross,
		mOp{kind: mQuery, ref: a, note: "cross: unknown view", query: executor.Query{Ref: a, View: "nope"}},
		mOp{kind: mCommand, ref: a, note: "cross: unknown command", req: executor.Request{Ref: a, CommandID: "cross-unknown", Command: "explode"}})
	for m := -1; m <= 2*mAggregates+10; m += 13 {
		w.asOf = append(w.asOf, epoch.Add(time.Duration(m)*time.Minute+1500*time.Millisecond))
	}
	return w
}

func (g *mGen) pct() int { return g.rng.IntN(100) }

// advance moves the source's time on by up to 20 s, sometimes to a
// sub-millisecond instant (stores keep milliseconds).
func (g *mGen) advance() time.Time {
	g.cur = g.cur.Add(time.Duration(1+g.rng.IntN(20_000)) * time.Millisecond)
	if g.pct() < 5 {
		return g.cur.Add(time.Duration(g.rng.IntN(1000)) * time.Microsecond)
	}
	return g.cur
}

// late is an instant up to a minute before the source's time (possibly
// before the aggregate's first event).
func (g *mGen) late() time.Time {
	return g.cur.Add(-time.Duration(1+g.rng.IntN(60_000)) * time.Millisecond)
}

func (g *mGen) stream() string {
	if g.pct() < 10 {
		return mStream2
	}
	return ""
}

func (g *mGen) id() string {
	g.nextID++
	return fmt.Sprintf("%s-%d", g.ref.ID, g.nextID)
}

func (g *mGen) add(op mOp) {
	op.ref = g.ref
	switch op.kind {
	case mCommand:
		op.req.Ref = g.ref
		g.commands = append(g.commands, len(g.ops))
	case mQuery:
		op.query.Ref = g.ref
	case mFacts:
		g.facts = append(g.facts, len(g.ops))
	}
	g.ops = append(g.ops, op)
}

// command adds a fresh command: stamped at the source's time mostly, late
// sometimes, or not at all (the executor's clock then stamps it).
func (g *mGen) command(note, name, args string) {
	req := executor.Request{CommandID: g.id(), Command: name, StreamID: g.stream()}
	if args != "" {
		req.Args = []byte(args)
	}
	switch p := g.pct(); {
	case p < 75:
		req.Timestamp = g.advance()
	case p < 90:
		req.Timestamp, note = g.late(), note+" (late)"
	default:
		note += " (clock)"
	}
	if g.pct() < 5 {
		req.FreshID = true
	}
	g.add(mOp{kind: mCommand, note: note, req: req})
}

func (g *mGen) domainCommand() {
	if !g.bulb {
		switch p := g.pct(); {
		case p < 15 || len(g.ops) == 0 && p < 70:
			g.command("create", "create", "")
		case p < 70:
			g.command("increment", "increment", fmt.Sprintf(`{"times":%d}`, g.rng.IntN(4)))
		case p < 85:
			g.command("noop", "noop", "")
		default:
			g.command("refuse", "refuse", "")
		}
		return
	}
	switch p := g.pct(); {
	case p < 12 || len(g.ops) == 0 && p < 70:
		g.command("create", "create", fmt.Sprintf(`{"wattage":%d}`, 1+g.rng.IntN(100)))
	case p < 32:
		g.command("screwIn", "screwIn", fmt.Sprintf(`{"location":"room-%d"}`, g.rng.IntN(4)))
	case p < 57:
		g.command("switchOn", "switchOn", "")
	case p < 80:
		g.command("switchOff", "switchOff", "")
	case p < 97:
		g.command("unscrew", "unscrew", "")
	default:
		g.command("blow", "blow", "")
	}
}

func (g *mGen) invalidCommand() {
	switch {
	case !g.bulb && g.pct() < 50:
		g.command("invalid args", "increment", `{"times":11}`)
	case !g.bulb:
		g.command("undecodable args", "increment", `{"times":"x"}`)
	case g.pct() < 50:
		g.command("invalid args", "create", `{"wattage":0}`)
	default:
		g.command("invalid args", "screwIn", `{"location":""}`)
	}
}

// reuse returns the request with other arguments or another command name,
// for an id reused with another request.
func (g *mGen) reuse(orig executor.Request) executor.Request {
	req := orig
	req.Args = nil
	switch orig.Command {
	case "increment":
		req.Args = []byte(fmt.Sprintf(`{"times":%d}`, 4+g.rng.IntN(6)))
	case "create":
		if g.bulb {
			req.Args = []byte(fmt.Sprintf(`{"wattage":%d}`, 200+g.rng.IntN(100)))
		} else {
			req.Command = "noop"
		}
	case "screwIn":
		req.Args = []byte(`{"location":"elsewhere"}`)
	case "switchOn":
		req.Command = "switchOff"
	case "noop":
		req.Command = "refuse"
	default:
		if g.bulb {
			req.Command = "switchOn"
		} else {
			req.Command = "noop"
		}
	}
	return req
}

func (g *mGen) fact() (executor.Fact, string) {
	ts, note := g.advance(), ""
	if p := g.pct(); p < 30 {
		ts, note = g.late(), "late "
	}
	f := executor.Fact{Timestamp: ts, StreamID: g.stream(), Payload: []byte(`{}`)}
	name := ""
	p := g.pct()
	switch {
	case p < 3:
		name = "exploded" // no such event
	case !g.bulb && p < 6:
		name, f.Payload = "incremented", []byte(`{"prev":"x"}`)
	case !g.bulb && p < 20:
		name = "created"
	case !g.bulb:
		name, f.Payload = "incremented", []byte(fmt.Sprintf(`{"prev":%d}`, g.rng.IntN(20)))
	case p < 6:
		name, f.Payload = "created", []byte(`{"wattage":"x"}`)
	case p < 16:
		name, f.Payload = "created", []byte(fmt.Sprintf(`{"wattage":%d}`, 1+g.rng.IntN(100)))
	case p < 30:
		name, f.Payload = "screwedIn", []byte(fmt.Sprintf(`{"location":"room-%d"}`, g.rng.IntN(4)))
	case p < 55:
		name = "switchedOn"
	case p < 80:
		name = "switchedOff"
	case p < 96:
		name = "unscrewed"
	default:
		name = "blown"
	}
	f.Name = model.VersionedName{Name: name}
	return f, note + name
}

func (g *mGen) factsOp() {
	n := 1 + g.rng.IntN(4)
	var facts []executor.Fact
	var notes []string
	for range n {
		if len(facts) > 0 && g.pct() < 10 {
			facts = append(facts, facts[g.rng.IntN(len(facts))]) // the same fact twice in one request
			notes = append(notes, "dup")
			continue
		}
		f, note := g.fact()
		facts = append(facts, f)
		notes = append(notes, note)
	}
	g.add(mOp{kind: mFacts, note: "facts " + strings.Join(notes, ","), facts: facts})
}

func (g *mGen) step() {
	switch p := g.pct(); {
	case p < 35 || len(g.ops) < 2:
		g.domainCommand()
	case p < 40:
		g.invalidCommand()
	case p < 43:
		g.command("unknown command", "explode", "")
	case p < 51 && len(g.commands) > 0:
		op := g.ops[g.commands[g.rng.IntN(len(g.commands))]]
		// A retry carries the id it got back: not fresh any more (a
		// FreshID promises the id was never decided).
		op.req.FreshID = false
		op.note = "retry of " + op.req.CommandID + " " + op.note
		g.add(op)
	case p < 56 && len(g.commands) > 0:
		op := g.ops[g.commands[g.rng.IntN(len(g.commands))]]
		op.req, op.note = g.reuse(op.req), "reused id "+op.req.CommandID
		op.req.FreshID = false
		g.add(op)
	case p < 64:
		view := model.StateView
		if g.bulb && g.pct() < 50 {
			view = "usage"
		}
		if g.pct() < 5 {
			view = "nope" // no such view
		}
		g.add(mOp{kind: mQuery, note: "query " + view, query: executor.Query{View: view}})
	case p < 70:
		view := model.StateView
		if g.bulb && g.pct() < 50 {
			view = "usage"
		}
		at := g.base.Add(time.Duration(g.rng.Int64N(int64(g.cur.Sub(g.base)+2*time.Minute))) - time.Minute)
		g.add(mOp{kind: mQuery, note: "asOf query " + view, query: executor.Query{View: view, AsOf: at}})
	case g.bulb && p < 72:
		// An end reported late: the bulb blew before the event sent with
		// it, which then stands after the end.
		on := executor.Fact{Name: model.VersionedName{Name: "switchedOn"}, Timestamp: g.advance(), Payload: []byte(`{}`)}
		blown := executor.Fact{Name: model.VersionedName{Name: "blown"}, Timestamp: on.Timestamp.Add(-time.Millisecond), Payload: []byte(`{}`)}
		g.add(mOp{kind: mFacts, note: "facts switchedOn,late blown", facts: []executor.Fact{on, blown}})
	case p < 95 || len(g.facts) == 0:
		g.factsOp()
	default:
		op := g.ops[g.facts[g.rng.IntN(len(g.facts))]]
		op.note = "resent " + op.note
		g.add(op)
	}
}

// ---- configurations ----

type mConfig struct {
	name string
	cfg  executor.Config
	bolt bool
	// decisions: bolt writes each batch in one transaction (its
	// DecisionWriter) instead of an append and a record write.
	decisions bool
	// latency delays every event-log append (memory only), so that
	// appends from many aggregates queue and share batches as they do on
	// a real store; it simulates a store's latency, it waits for nothing.
	latency time.Duration
}

// UnfencedDecisions is among the knobs: it only drops the head check of
// decisions without events, which guards against a second owner. With one
// executor there is none, so every answer must stay the same.
var mConfigs = []mConfig{
	{name: "memory/flushers=1", cfg: executor.Config{Flushers: 1}},
	{name: "memory/flushers=4,batch=2", cfg: executor.Config{Flushers: 4, MaxBatch: 2}},
	{name: "memory/flushers=1,latency=200us", cfg: executor.Config{Flushers: 1}, latency: 200 * time.Microsecond},
	{name: "memory/cache=1-per-shard,page=3,flushers=2", cfg: executor.Config{Flushers: 2, MaxCached: 64, LoadPageSize: 3}},
	{name: "memory/unfenced,flushers=3", cfg: executor.Config{Flushers: 3, MaxBatch: 4, UnfencedDecisions: true}},
	{name: "bolt/separate,flushers=1", cfg: executor.Config{Flushers: 1}, bolt: true},
	{name: "bolt/separate,flushers=4,batch=3,cache=1-per-shard", cfg: executor.Config{Flushers: 4, MaxBatch: 3, MaxCached: 64}, bolt: true},
	{name: "bolt/decisions,flushers=1", cfg: executor.Config{Flushers: 1}, bolt: true, decisions: true},
	{name: "bolt/decisions,flushers=4,batch=2,page=2", cfg: executor.Config{Flushers: 4, MaxBatch: 2, LoadPageSize: 2}, bolt: true, decisions: true},
}

func (c mConfig) harness(t *testing.T, clock time.Time, pub executor.Publisher) *harness {
	t.Helper()
	opts := []option{withPublisher(pub)}
	if c.bolt {
		db := openBolt(t)
		var dw commandlog.DecisionWriter
		if c.decisions {
			dw = db
		}
		opts = append(opts, withStores(db.EventLog(), db.CommandLog(), dw))
	}
	h := newHarness(t, c.cfg, opts...)
	h.clock.Set(clock)
	if c.latency > 0 {
		h.store.setHook(func(context.Context, []eventlog.Append) []error {
			time.Sleep(c.latency)
			return nil
		})
	}
	return h
}

// ---- the transcript ----

// mLine is one compared fact of a run: key names it (aggregate, operation
// index, what the operation was), val is its canonical form.
type mLine struct{ key, val string }

type mTranscript []mLine

// mRun runs the workload on h and returns its transcript. unexpected
// collects answers no configuration should give (store failures,
// conflicts, timeouts).
func mRun(t *testing.T, h *harness, w mWorkload, pub *recordingPublisher) mTranscript {
	t.Helper()
	ctx := ctxT(t)
	var (
		mu         sync.Mutex
		unexpected []string
	)
	note := func(s string) {
		mu.Lock()
		unexpected = append(unexpected, s)
		mu.Unlock()
	}
	perAgg := make([][]mLine, len(w.aggs))
	var wg sync.WaitGroup
	for i, a := range w.aggs {
		wg.Go(func() {
			for k, op := range a.ops {
				key := fmt.Sprintf("%s op %d (%s)", a.ref, k, op.note)
				perAgg[i] = append(perAgg[i], mLine{key, mDo(ctx, h, op, func(s string) { note(key + ": " + s) })})
			}
		})
	}
	wg.Wait()
	var out mTranscript
	for _, lines := range perAgg {
		out = append(out, lines...)
	}

	// One at a time: command ids across aggregates, and the same after
	// every cached state is dropped.
	h.x.Invalidate(func(model.Ref) bool { return true })
	for k, op := range w.cross {
		key := fmt.Sprintf("%s cross %d (%s)", op.ref, k, op.note)
		out = append(out, mLine{key, mDo(ctx, h, op, func(s string) { note(key + ": " + s) })})
	}

	// What the run left behind.
	for _, a := range w.aggs {
		for i, e := range h.history(t, a.ref) {
			out = append(out, mLine{fmt.Sprintf("%s history %d", a.ref, i), mEvent(e)})
		}
		views := []string{model.StateView}
		if a.ref.Type == lightbulb.TypeName {
			views = append(views, "usage")
		}
		for _, v := range views {
			for _, at := range append([]time.Time{{}}, w.asOf...) {
				qr, err := h.x.Ask(ctx, executor.Query{Ref: a.ref, View: v, AsOf: at})
				out = append(out, mLine{fmt.Sprintf("%s view %s asOf %s", a.ref, v, mTime(at)), mQueryResult(qr, err)})
			}
		}
	}
	ids := map[string]bool{}
	for _, a := range w.aggs {
		for _, op := range a.ops {
			if op.kind == mCommand {
				ids[op.req.CommandID] = true
			}
		}
	}
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for id := range ids {
			if !yield(id) {
				return
			}
		}
	}) {
		out = append(out, mLine{"record " + id, mRecord(h, id)})
	}
	pub.mu.Lock()
	for _, a := range w.aggs {
		var seqs []string
		for _, e := range pub.byRef[a.ref] {
			seqs = append(seqs, fmt.Sprintf("%d:%s", e.Sequence, e.VersionedName()))
		}
		out = append(out, mLine{fmt.Sprintf("%s published", a.ref), strings.Join(seqs, " ")})
	}
	out = append(out, mLine{"publisher", fmt.Sprintf("mixed batches %d, discarded %d, unsettled %d", pub.mixed, pub.discarded, len(pub.tickets))})
	pub.mu.Unlock()
	s := h.x.Stats()
	out = append(out, mLine{"stats", fmt.Sprintf("accepted %d rejected %d invalid %d duplicates %d facts %d factDuplicates %d factsRefused %d lateEvents %d conflicts %d unavailable %d timeouts %d fenced %d recordClashes %d",
		s.Accepted, s.Rejected, s.Invalid, s.Duplicates, s.Facts, s.FactDuplicates, s.FactsRefused, s.LateEvents, s.Conflicts, s.Unavailable, s.Timeouts, s.Fenced, s.RecordClashes)})
	for i, u := range unexpected {
		if i == 10 {
			t.Errorf("… and %d more unexpected answers", len(unexpected)-i)
			break
		}
		t.Errorf("unexpected answer: %s", u)
	}
	return out
}

// mDo runs one operation and returns its answer's canonical form.
func mDo(ctx context.Context, h *harness, op mOp, unexpected func(string)) string {
	switch op.kind {
	case mQuery:
		qr, err := h.x.Ask(ctx, op.query)
		if err != nil && !errors.Is(err, executor.ErrUnknownView) {
			unexpected(err.Error())
		}
		return mQueryResult(qr, err)
	case mFacts:
		res, err := h.x.Ingest(ctx, op.ref, op.facts)
		if err != nil {
			unexpected(err.Error())
			return "error " + err.Error()
		}
		parts := make([]string, len(res))
		for i, r := range res {
			parts[i] = fmt.Sprintf("{seq %d dup %v late %v place %v err %s}", r.Sequence, r.Duplicate, r.Late, r.Place, mErr(r.Err))
		}
		return strings.Join(parts, " ")
	}
	res, err := h.x.Execute(ctx, op.req)
	if err != nil {
		s := mErr(err)
		if strings.HasPrefix(s, "other") {
			unexpected(s)
		}
		return s
	}
	parts := []string{fmt.Sprintf("accepted ref %s id %s seq %d duplicate %v", res.Ref, res.CommandID, res.Sequence, res.Duplicate)}
	for _, e := range res.Events {
		parts = append(parts, mEvent(e))
	}
	return strings.Join(parts, "\n\t")
}

// mErr classifies an error and keeps its message (which names the
// aggregate, the rule and the instants involved, all deterministic).
func mErr(err error) string {
	var rej *model.Rejection
	switch {
	case err == nil:
		return "-"
	case errors.As(err, &rej):
		return fmt.Sprintf("rejected %s recalled %v: %v", rej.Reason, errors.Is(err, executor.ErrRecalled), err)
	case errors.Is(err, model.ErrInvalidArgs):
		return "invalid args: " + err.Error()
	case errors.Is(err, model.ErrUnknownCommand):
		return "unknown command: " + err.Error()
	case errors.Is(err, model.ErrUnknownEvent):
		return "unknown event: " + err.Error()
	case errors.Is(err, executor.ErrCommandIDReused):
		return "id reused: " + err.Error()
	case errors.Is(err, executor.ErrUnknownView):
		return "unknown view: " + err.Error()
	}
	return "other: " + err.Error()
}

// mEvent is an event without what is legitimately different per run
// (EventID, ProcessingID, ProcessingTime).
func mEvent(e model.Event) string {
	return fmt.Sprintf("%s/%s seq %d %s ts %s stream %s chars %v cmd %q late %v payload %s",
		e.AggregateType, e.AggregateID, e.Sequence, e.VersionedName(), mTime(e.Timestamp), e.StreamID, e.Characteristics, e.CommandID, e.Late, e.Payload)
}

func mTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func mQueryResult(qr executor.QueryResult, err error) string {
	if err != nil {
		return mErr(err)
	}
	p := qr.Prefix
	return fmt.Sprintf("%s %s exists %v seq %d prefix{events %d applied %d waiting %d last %s/%s/%d max %d} %s",
		qr.Ref, qr.View, qr.Exists, qr.Sequence, p.Events, p.Applied, p.Waiting, mTime(p.Last.Timestamp), p.Last.StreamID, p.Last.Sequence, p.MaxSequence, qr.Value)
}

// mRecord is a command id's record; At is compared too: the clock is fixed.
func mRecord(h *harness, id string) string {
	rec, err := h.commands.Get(context.Background(), id)
	if errors.Is(err, commandlog.ErrNotFound) {
		return "none"
	}
	if err != nil {
		return "error " + err.Error()
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return "error " + err.Error()
	}
	return string(b)
}

// mDiff lists where got differs from want, at most max entries, matching
// lines by key (a history or a set of records of another length shows as
// lines only one side has).
func mDiff(wantName string, want mTranscript, gotName string, got mTranscript, max int) []string {
	w := len(wantName)
	if len(gotName) > w {
		w = len(gotName)
	}
	show := func(name, val string) string { return fmt.Sprintf("\n  %-*s %s", w+1, name+":", val) }
	index := make(map[string]int, len(got))
	for i, l := range got {
		index[l.key] = i
	}
	var out []string
	seen := make(map[string]bool, len(want))
	for _, l := range want {
		seen[l.key] = true
		i, ok := index[l.key]
		switch {
		case !ok:
			out = append(out, l.key+":"+show(wantName, l.val)+show(gotName, "(missing)"))
		case got[i].val != l.val:
			out = append(out, l.key+":"+show(wantName, l.val)+show(gotName, got[i].val))
		}
	}
	for _, l := range got {
		if !seen[l.key] {
			out = append(out, l.key+":"+show(wantName, "(missing)")+show(gotName, l.val))
		}
	}
	if len(out) > max {
		out = append(out[:max], fmt.Sprintf("… and %d more differences", len(out)-max))
	}
	return out
}

// mCheck runs the workload on configuration c and compares it with want.
func mCheck(t *testing.T, c mConfig, w mWorkload, wantName string, want mTranscript) mTranscript {
	t.Helper()
	pub := newRecordingPublisher()
	h := c.harness(t, w.clock, pub)
	got := mRun(t, h, w, pub)
	s := h.x.Stats()
	t.Logf("%d appends in %d batches, %d loads, %d head checks", s.Appended, s.Batches, s.Loads, s.HeadChecks)
	if want != nil {
		if diffs := mDiff(wantName, want, c.name, got, 12); len(diffs) > 0 {
			t.Errorf("%s differs from %s:\n%s", c.name, wantName, strings.Join(diffs, "\n"))
		}
	}
	return got
}

func TestMetamorphic(t *testing.T) {
	seed := metamorphicSeed(t)
	w := genWorkload(seed, mAggregates)
	var (
		want mTranscript
		ref  = mConfigs[0]
	)
	for _, c := range mConfigs {
		t.Run(c.name, func(t *testing.T) {
			got := mCheck(t, c, w, ref.name, want)
			if want == nil {
				want = got
				mCoverage(t, got)
			}
		})
	}
}

// mCoverage fails the test if the workload did not reach every kind of
// answer it is meant to compare.
func mCoverage(t *testing.T, tr mTranscript) {
	t.Helper()
	kinds := map[string]string{
		"accepted":            "accepted ref",
		"duplicate command":   "duplicate true",
		"domain rejection":    "rejected ",
		"recalled rejection":  "recalled true",
		"invalid args":        "invalid args:",
		"unknown command":     "unknown command:",
		"id reused":           "id reused:",
		"late fact":           "late true place",
		"duplicate fact":      "dup true",
		"refused fact":        "err unknown event",
		"terminated fact":     "rejected terminated",
		"waiting fact":        "place waiting",
		"late command event":  "late true payload",
		"not found":           "rejected not_found",
		"before initial":      "rejected before_initial",
		"already exists":      "rejected already_exists",
		"second initial fact": "place second_initial",
		"fact after the end":  "place after_end",
		"view before initial": "exists false seq 0",
		"unknown view":        "unknown view:",
	}
	for what, s := range kinds {
		found := false
		for _, l := range tr {
			if strings.Contains(l.val, s) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("the workload produced no %s (no answer contains %q)", what, s)
		}
	}
}

// The comparison must see a difference where there is one: a workload
// with one operation changed, and a run whose clock differs (commands
// without a timestamp are stamped by it, and records carry it).
func TestMetamorphicDetectsDivergence(t *testing.T) {
	seed := metamorphicSeed(t)
	w := genWorkload(seed, 8)
	c := mConfigs[0]
	pub := newRecordingPublisher()
	want := mRun(t, c.harness(t, w.clock, pub), w, pub)

	perturbed := genWorkload(seed, 8)
	for k, op := range perturbed.aggs[0].ops {
		if op.kind == mCommand && op.req.Command == "increment" && string(op.req.Args) != `{"times":11}` && !strings.HasPrefix(op.note, "retry") {
			op.req.Args = []byte(`{"times":7}`)
			perturbed.aggs[0].ops[k] = op
			break
		}
	}
	perturbed.aggs[0].ops = append(perturbed.aggs[0].ops, mOp{kind: mCommand, ref: perturbed.aggs[0].ref, note: "extra",
		req: executor.Request{Ref: perturbed.aggs[0].ref, CommandID: "extra", Command: "increment", Timestamp: epoch.Add(time.Hour)}})
	pub = newRecordingPublisher()
	onBolt := mConfigs[slices.IndexFunc(mConfigs, func(c mConfig) bool { return c.bolt })]
	got := mRun(t, onBolt.harness(t, w.clock, pub), perturbed, pub)
	if diffs := mDiff("original", want, "perturbed", got, 3); len(diffs) == 0 {
		t.Error("a perturbed workload gave the same transcript")
	} else {
		t.Logf("perturbed workload, as reported:\n%s", strings.Join(diffs, "\n"))
	}

	pub = newRecordingPublisher()
	got = mRun(t, c.harness(t, w.clock.Add(time.Second), pub), w, pub)
	if diffs := mDiff("original", want, "other clock", got, 3); len(diffs) == 0 {
		t.Error("a run with another clock gave the same transcript")
	} else {
		t.Logf("other clock, as reported:\n%s", strings.Join(diffs, "\n"))
	}

}
