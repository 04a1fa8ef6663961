package model_test

// Tests of the event-time order (DESIGN.md, "Two orders of one history",
// invariant 7): state, views and asOf answers depend only on the set of a
// history's events, never on the order in which they arrived; a late event
// is absorbed from the nearest checkpoint; facts and commands are checked
// against the aggregate's life in event time.

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/concursus-go/concursus/model"
)

var seedFlag = flag.Int64("model.seed", 0, "seed of the model package's randomised tests (0: from the clock); a failure prints the seed to pass here")

// testSeed returns the seed of a randomised test and logs it, so that a
// failure can be replayed with -model.seed.
func testSeed(t *testing.T) int64 {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (replay with: go test ./model/ -run '^%s$' -model.seed %d)", seed, t.Name(), seed)
	return seed
}

// The second domain of these tests, a sensor, whose views depend on the
// order in which events apply (a calibration changes the readings after
// it; the trace lists every applied event), so that any order mistake
// shows in its state.
type (
	Sensor struct {
		Room   string `json:"room"`
		Offset int    `json:"offset"`
		Sum    int    `json:"sum"`
		N      int    `json:"n"`
		Gone   bool   `json:"gone"`
	}
	Trace struct {
		Steps []string `json:"steps"`
	}
	SensorInstalled struct {
		Room string `json:"room"`
	}
	SensorRead struct {
		Value int `json:"value"`
	}
	SensorCalibrated struct {
		Offset int `json:"offset"`
	}
	SensorRemoved struct{}
	// SensorBlinked is both initial and terminal: a sensor that lived for
	// one reading.
	SensorBlinked struct {
		Room string `json:"room"`
	}
)

func newSensors(t testing.TB) *model.Type[Sensor] {
	t.Helper()
	s := model.NewType[Sensor]("sensor", model.JSON{})
	installed := model.DefineEvent[SensorInstalled](s, "installed", 0, model.Initial)
	read := model.DefineEvent[SensorRead](s, "read", 0, 0)
	calibrated := model.DefineEvent[SensorCalibrated](s, "calibrated", 0, 0)
	removed := model.DefineEvent[SensorRemoved](s, "removed", 0, model.Terminal)
	blinked := model.DefineEvent[SensorBlinked](s, "blinked", 0, model.Initial|model.Terminal)
	st := s.State()
	model.On(st, installed, func(v *Sensor, e model.Recorded[SensorInstalled]) { v.Room = e.Payload.Room })
	model.On(st, read, func(v *Sensor, e model.Recorded[SensorRead]) { v.Sum += e.Payload.Value + v.Offset; v.N++ })
	model.On(st, calibrated, func(v *Sensor, e model.Recorded[SensorCalibrated]) { v.Offset = e.Payload.Offset })
	model.On(st, removed, func(v *Sensor, _ model.Recorded[SensorRemoved]) { v.Gone = true })
	model.On(st, blinked, func(v *Sensor, e model.Recorded[SensorBlinked]) { v.Room = e.Payload.Room; v.Gone = true })
	tr := model.NewView[Trace](s, "trace")
	step := func(v *Trace, e *model.Event) { v.Steps = append(v.Steps, traceStep(e)) }
	model.On(tr, installed, func(v *Trace, e model.Recorded[SensorInstalled]) { step(v, &e.Event) })
	model.On(tr, read, func(v *Trace, e model.Recorded[SensorRead]) { step(v, &e.Event) })
	model.On(tr, calibrated, func(v *Trace, e model.Recorded[SensorCalibrated]) { step(v, &e.Event) })
	model.On(tr, removed, func(v *Trace, e model.Recorded[SensorRemoved]) { step(v, &e.Event) })
	model.On(tr, blinked, func(v *Trace, e model.Recorded[SensorBlinked]) { step(v, &e.Event) })
	model.DefineCommand(s, "install", func(_ model.Snapshot[Sensor], a SensorInstalled) ([]model.Emit, error) {
		return []model.Emit{installed.New(a)}, nil
	}, model.Creates)
	if err := s.Err(); err != nil {
		t.Fatalf("sensor definition: %v", err)
	}
	return s
}

// traceStep names an event by what every arrival order agrees on: its
// name, its stamp and its payload (not its sequence).
func traceStep(e *model.Event) string {
	return fmt.Sprintf("%s@%d/%s%s", e.VersionedName(), e.Timestamp.UnixMilli()-t0.UnixMilli(), e.StreamID, e.Payload)
}

// propDomain is one aggregate type as the property test drives it: how to
// make its events, how to replay it with its typed API, and a reference
// fold, written independently of the model, of the events that apply.
type propDomain struct {
	name string
	kind model.Kind
	// initial, terminal and other make the payload of a random event of
	// that class, and name it.
	initial, terminal, other func(r *rand.Rand) (name string, chars model.Characteristics, payload string)
	// replay and replayAsOf are the primary view's Replay and ReplayAsOf,
	// encoded.
	replay     func(events []model.Event) ([]byte, error)
	replayAsOf func(events []model.Event, asOf time.Time) ([]byte, error)
	// reference folds the applied events (in event-time order) into every
	// view's encoded value, by view name.
	reference func(t *testing.T, applied []model.Event) map[string][]byte
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustDecode(t *testing.T, e *model.Event, v any) {
	t.Helper()
	if err := json.Unmarshal(e.Payload, v); err != nil {
		t.Fatalf("payload of %s: %v", e.VersionedName(), err)
	}
}

func encoded[V any](v V, err error) ([]byte, error) {
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func accountDomain(t *testing.T) propDomain {
	f := newAccounts(t)
	owners := []string{"ann", "bob", "cyd"}
	return propDomain{
		name: "account",
		kind: f.Type,
		initial: func(r *rand.Rand) (string, model.Characteristics, string) {
			return "opened", model.Initial, `{"owner":"` + owners[r.Intn(len(owners))] + `"}`
		},
		terminal: func(*rand.Rand) (string, model.Characteristics, string) { return "closed", model.Terminal, `{}` },
		other: func(r *rand.Rand) (string, model.Characteristics, string) {
			return "deposited", 0, fmt.Sprintf(`{"amount":%d}`, 1+r.Intn(99))
		},
		replay: func(events []model.Event) ([]byte, error) { return encoded(f.Type.State().Replay(events)) },
		replayAsOf: func(events []model.Event, asOf time.Time) ([]byte, error) {
			return encoded(f.Type.State().ReplayAsOf(events, asOf))
		},
		reference: func(t *testing.T, applied []model.Event) map[string][]byte {
			var a Account
			var act Activity
			for i := range applied {
				e := &applied[i]
				switch e.Name {
				case "opened":
					var p Opened
					mustDecode(t, e, &p)
					a.Owner = p.Owner
					act.Events++
					act.LastAt = e.Timestamp
				case "deposited":
					var p Deposited
					mustDecode(t, e, &p)
					a.Balance += p.Amount
					act.Events++
					act.LastAt = e.Timestamp
					act.Deposits = append(act.Deposits, p.Amount)
				case "closed":
					a.Closed = true
				}
			}
			return map[string][]byte{model.StateView: mustJSON(t, a), "activity": mustJSON(t, act)}
		},
	}
}

func sensorDomain(t *testing.T) propDomain {
	s := newSensors(t)
	rooms := []string{"hall", "attic"}
	return propDomain{
		name: "sensor",
		kind: s,
		initial: func(r *rand.Rand) (string, model.Characteristics, string) {
			room := rooms[r.Intn(len(rooms))]
			if r.Intn(6) == 0 {
				return "blinked", model.Initial | model.Terminal, `{"room":"` + room + `"}`
			}
			return "installed", model.Initial, `{"room":"` + room + `"}`
		},
		terminal: func(*rand.Rand) (string, model.Characteristics, string) { return "removed", model.Terminal, `{}` },
		other: func(r *rand.Rand) (string, model.Characteristics, string) {
			if r.Intn(4) == 0 {
				return "calibrated", 0, fmt.Sprintf(`{"offset":%d}`, r.Intn(7)-3)
			}
			return "read", 0, fmt.Sprintf(`{"value":%d}`, r.Intn(100))
		},
		replay: func(events []model.Event) ([]byte, error) { return encoded(s.State().Replay(events)) },
		replayAsOf: func(events []model.Event, asOf time.Time) ([]byte, error) {
			return encoded(s.State().ReplayAsOf(events, asOf))
		},
		reference: func(t *testing.T, applied []model.Event) map[string][]byte {
			var v Sensor
			var tr Trace
			for i := range applied {
				e := &applied[i]
				tr.Steps = append(tr.Steps, traceStep(e))
				switch e.Name {
				case "installed":
					var p SensorInstalled
					mustDecode(t, e, &p)
					v.Room = p.Room
				case "blinked":
					var p SensorBlinked
					mustDecode(t, e, &p)
					v.Room, v.Gone = p.Room, true
				case "read":
					var p SensorRead
					mustDecode(t, e, &p)
					v.Sum += p.Value + v.Offset
					v.N++
				case "calibrated":
					var p SensorCalibrated
					mustDecode(t, e, &p)
					v.Offset = p.Offset
				case "removed":
					v.Gone = true
				}
			}
			return map[string][]byte{model.StateView: mustJSON(t, v), "trace": mustJSON(t, tr)}
		},
	}
}

// genHistory makes a random history as batches: the events of one batch
// are appended together, in their order (a command's events), and share a
// stamp (timestamp and stream), so that ties in time and stream are broken
// by sequence within a batch only — the one place where the log order,
// and so the sequence, is the same whatever order the batches arrive in.
// Different batches have different stamps, but many share a timestamp
// (ties broken by the stream). Initial events come several times (the
// same one resent from another stream, or another one), terminal events
// anywhere (also before every initial one). A batch of one event is a
// fact half of the time (no command id).
func genHistory(r *rand.Rand, d propDomain, id string) [][]model.Event {
	type stamp struct {
		ms     int
		stream string
	}
	used := map[stamp]bool{}
	streams := []string{"s1", "s2", "s3", model.DefaultStream}
	newStamp := func() stamp {
		for {
			s := stamp{ms: r.Intn(40) * 250, stream: streams[r.Intn(len(streams))]}
			if r.Intn(8) == 0 {
				s.ms = r.Intn(40_000) // sometimes spread out
			}
			if !used[s] {
				used[s] = true
				return s
			}
		}
	}
	event := func(class int, s stamp) model.Event {
		gen := d.other
		switch class {
		case 0:
			gen = d.initial
		case 1:
			gen = d.terminal
		}
		name, chars, payload := gen(r)
		return model.Event{
			AggregateType: d.kind.Name(), AggregateID: id,
			Timestamp: t0.Add(time.Duration(s.ms) * time.Millisecond), StreamID: s.stream,
			ProcessingTime: t0, Name: name, Characteristics: chars, Payload: []byte(payload),
		}
	}
	class := func() int {
		switch n := r.Intn(100); {
		case n < 12:
			return 0
		case n < 18:
			return 1
		}
		return 2
	}
	var batches [][]model.Event
	n := 1 + r.Intn(30)
	for b := 0; b < n; b++ {
		s := newStamp()
		size := 1
		if r.Intn(4) == 0 {
			size = 2 + r.Intn(3)
		}
		// A batch of facts ingested together has a stamp per fact.
		facts := size > 1 && r.Intn(3) == 0
		batch := make([]model.Event, size)
		for i := range batch {
			if facts && i > 0 {
				s = newStamp()
			}
			batch[i] = event(class(), s)
			batch[i].EventID = fmt.Sprintf("e%d.%d", b, i)
			if !facts && (size > 1 || r.Intn(2) == 0) {
				batch[i].CommandID = fmt.Sprintf("c%d", b)
			}
		}
		batches = append(batches, batch)
		// The same initial event, resent through another stream.
		if batch[0].Characteristics.IsInitial() && r.Intn(3) == 0 {
			again := batch[0]
			again.CommandID, again.EventID = "", fmt.Sprintf("e%d.again", b)
			for _, stream := range streams {
				if s2 := (stamp{ms: int(again.Timestamp.Sub(t0).Milliseconds()), stream: stream}); !used[s2] {
					used[s2] = true
					again.StreamID = stream
					batches = append(batches, []model.Event{again})
					break
				}
			}
		}
	}
	return batches
}

// arrive lays batches out in one arrival order and numbers the events as
// the log does, in that order; ends marks the last event of each batch.
func arrive(batches [][]model.Event, order []int) (events []model.Event, ends []bool) {
	for _, b := range order {
		for i, e := range batches[b] {
			e.Sequence = uint64(len(events) + 1)
			events = append(events, e)
			ends = append(ends, i == len(batches[b])-1)
		}
	}
	return events, ends
}

// referenceLife says where each event of a sorted history stands, by the
// rules of DESIGN.md written out plainly: the life runs from the earliest
// initial event to the earliest terminal event at or after it; an initial
// event after the first never applies, so one that is also terminal ends
// nothing.
func referenceLife(sorted []model.Event) []model.Outcome {
	out := make([]model.Outcome, len(sorted))
	begin, end := -1, -1
	for i := range sorted {
		if begin < 0 && sorted[i].Characteristics.IsInitial() {
			begin = i
		}
		if begin >= 0 && sorted[i].Characteristics.IsTerminal() && (i == begin || !sorted[i].Characteristics.IsInitial()) {
			end = i
			break
		}
	}
	for i := range sorted {
		switch {
		case begin < 0 || i < begin:
			out[i] = model.Waiting
		case end >= 0 && i > end:
			out[i] = model.AfterEnd
		case i > begin && sorted[i].Characteristics.IsInitial():
			out[i] = model.SecondInitial
		default:
			out[i] = model.Applied
		}
	}
	return out
}

// outcome is what every arrival order must agree on for one history (or
// one asOf prefix of it).
type outcome struct {
	views                    map[string][]byte
	events, applied, waiting int
	lastTimestamp            time.Time
	lastStream               string
	exists, terminated       bool
	// lifeOf is each event's place in the life, by event id.
	lifeOf map[string]model.Outcome
}

// expect computes the reference outcome of a set of events.
func expect(t *testing.T, d propDomain, events []model.Event) outcome {
	sorted := sortedByTime(events)
	life := referenceLife(sorted)
	var applied []model.Event
	o := outcome{events: len(sorted), lifeOf: map[string]model.Outcome{}}
	for i := range sorted {
		o.lifeOf[sorted[i].EventID] = life[i]
		switch life[i] {
		case model.Applied:
			applied = append(applied, sorted[i])
			o.applied++
			o.exists = true
			o.terminated = sorted[i].Characteristics.IsTerminal()
		case model.Waiting:
			o.waiting++
		}
	}
	if n := len(sorted); n > 0 {
		o.lastTimestamp, o.lastStream = sorted[n-1].Timestamp, sorted[n-1].StreamID
	}
	o.views = d.reference(t, applied)
	return o
}

func describeHistory(events []model.Event) string {
	var b strings.Builder
	for _, e := range sortedByTime(events) {
		fmt.Fprintf(&b, "\n  seq %2d %-14s @%6dms %-7s %-16s cmd=%q", e.Sequence, e.VersionedName(), e.Timestamp.UnixMilli()-t0.UnixMilli(), e.StreamID, e.Payload, e.CommandID)
	}
	return b.String()
}

// TestArrivalOrderIndependence is invariant 7 as a property: random
// histories of two aggregate types, each delivered in many arrival orders
// (numbered by the log in that order), give the same state, views, asOf
// answers and Prefix through every way of folding them — Replay (given the
// events in any order), ReplaySeq, ReplayAsOf, every FoldView, an
// Aggregate fed by Apply in arrival order and Refold whenever it is stale,
// and an Aggregate loaded in event-time order — and all of them agree with
// a reference fold of the lifecycle rules written out plainly.
func TestArrivalOrderIndependence(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewSource(seed))
	histories, orders := 50, 6
	if testing.Short() {
		histories = 15
	}
	for _, d := range []propDomain{accountDomain(t), sensorDomain(t)} {
		views := d.kind.Views()
		if len(views) < 2 {
			t.Fatalf("%s has views %v, want at least two", d.name, views)
		}
		for h := 0; h < histories; h++ {
			batches := genHistory(r, d, "x1")
			order := make([]int, len(batches))
			for i := range order {
				order[i] = i
			}
			var want outcome
			var asOfs []time.Time
			var asOfWant map[time.Time][]byte
			for o := 0; o < orders; o++ {
				r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
				events, ends := arrive(batches, order)
				if o == 0 {
					want = expect(t, d, events)
					asOfs, asOfWant = asOfInstants(t, r, d, events)
				}
				fail := func(format string, args ...any) {
					t.Helper()
					t.Fatalf("%s history %d, arrival order %d (seed %d): %s\nhistory in event time:%s",
						d.name, h, o, seed, fmt.Sprintf(format, args...), describeHistory(events))
				}
				checkArrivalOrder(t, r, d, events, ends, want, asOfs, asOfWant, o == 0, fail)
			}
		}
	}
}

// asOfInstants picks instants to ask asOf at (before everything, at and
// a millisecond around event stamps, after everything) and the reference
// state at each.
func asOfInstants(t *testing.T, r *rand.Rand, d propDomain, events []model.Event) ([]time.Time, map[time.Time][]byte) {
	instants := []time.Time{t0.Add(-time.Second), t0.Add(time.Hour)}
	for i := 0; i < 4 && len(events) > 0; i++ {
		ts := events[r.Intn(len(events))].Timestamp
		instants = append(instants, ts, ts.Add(-time.Millisecond), ts.Add(time.Millisecond))
	}
	want := map[time.Time][]byte{}
	for _, at := range instants {
		var prefix []model.Event
		for _, e := range events {
			if !e.Timestamp.After(at) {
				prefix = append(prefix, e)
			}
		}
		want[at] = expect(t, d, prefix).views[model.StateView]
	}
	return instants, want
}

func checkArrivalOrder(t *testing.T, r *rand.Rand, d propDomain, events []model.Event, ends []bool, want outcome,
	asOfs []time.Time, asOfWant map[time.Time][]byte, deep bool, fail func(string, ...any)) {
	t.Helper()
	state := want.views[model.StateView]
	sorted := sortedByTime(events)

	// Replay takes the events in any order: the arrival order, and a
	// shuffle of it (the sequences stay).
	shuffled := slices.Clone(events)
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	for name, given := range map[string][]model.Event{"arrival": events, "shuffled": shuffled} {
		if got, err := d.replay(given); err != nil || !bytes.Equal(got, state) {
			fail("Replay(%s order) = %s, %v; want %s", name, got, err, state)
		}
	}
	if got, err := encodedSeq(d, sorted); err != nil || !bytes.Equal(got, state) {
		fail("ReplaySeq(event-time order) = %s, %v; want %s", got, err, state)
	}

	// asOf answers, in the arrival order.
	for _, at := range asOfs {
		if got, err := d.replayAsOf(events, at); err != nil || !bytes.Equal(got, asOfWant[at]) {
			fail("ReplayAsOf(%v) = %s, %v; want %s", at.Sub(t0), got, err, asOfWant[at])
		}
	}

	// Every view, folded in event-time order.
	for _, view := range d.kind.Views() {
		fold, ok := d.kind.FoldView(view)
		if !ok {
			fail("FoldView(%q) not found", view)
		}
		for i := range sorted {
			if err := fold.Apply(&sorted[i]); err != nil {
				fail("FoldView(%q).Apply(seq %d): %v", view, sorted[i].Sequence, err)
			}
		}
		got, err := fold.MarshalValue()
		if err != nil || !bytes.Equal(got, want.views[view]) {
			fail("FoldView(%q) = %s, %v; want %s", view, got, err, want.views[view])
		}
		checkPrefix(fold.Prefix(), fold.Exists(), want, fail, "FoldView("+view+")")
	}

	// An aggregate fed as the executor feeds it: Apply in arrival order,
	// a batch at a time, Refold when stale (after every event, or after
	// every batch).
	agg := d.kind.NewAggregate("x1")
	refoldEach := r.Intn(2) == 0
	var newest model.TimeKey
	for i := range events {
		e := events[i]
		late, err := agg.Apply(&e)
		if err != nil {
			fail("Apply(seq %d): %v", e.Sequence, err)
		}
		if wantLate := e.TimeKey().Before(newest); late != wantLate {
			fail("Apply(seq %d %v) late = %v, want %v (newest recorded %v)", e.Sequence, e.TimeKey(), late, wantLate, newest)
		}
		if newest.Before(e.TimeKey()) {
			newest = e.TimeKey()
		}
		if refoldEach || ends[i] {
			absorb(t, agg, events[:i+1])
		}
		if deep && ends[i] {
			sofar, err := d.replay(events[:i+1])
			if err != nil {
				fail("Replay of the first %d events: %v", i+1, err)
			}
			if got, err := agg.MarshalState(); err != nil || !bytes.Equal(got, sofar) {
				fail("after Apply of the first %d events, state = %s, %v; Replay = %s", i+1, got, err, sofar)
			}
		}
	}
	if got, err := agg.MarshalState(); err != nil || !bytes.Equal(got, state) {
		fail("Aggregate by Apply = %s, %v; want %s", got, err, state)
	}
	checkPrefix(agg.Prefix(), agg.Exists(), want, fail, "Aggregate by Apply")
	if agg.Terminated() != want.terminated || agg.Sequence() != uint64(len(events)) {
		fail("Aggregate by Apply: terminated %v seq %d; want %v %d", agg.Terminated(), agg.Sequence(), want.terminated, len(events))
	}
	for i := range events {
		if got, want := agg.Place(&events[i]), want.lifeOf[events[i].EventID]; got != want {
			fail("Place(seq %d) = %v, want %v", events[i].Sequence, got, want)
		}
	}

	// An aggregate loaded from the log in event time: the same arrival
	// order, so even the sequences in its Prefix agree.
	loaded := d.kind.NewAggregate("x1")
	if err := loaded.Load(seqOf(sorted, nil)); err != nil {
		fail("Load: %v", err)
	}
	if got, err := loaded.MarshalState(); err != nil || !bytes.Equal(got, state) {
		fail("Aggregate by Load = %s, %v; want %s", got, err, state)
	}
	if loaded.Prefix() != agg.Prefix() || loaded.Exists() != agg.Exists() || loaded.Terminated() != agg.Terminated() || loaded.Sequence() != agg.Sequence() {
		fail("Load: prefix %+v exists %v terminated %v seq %d; by Apply %+v %v %v %d", loaded.Prefix(), loaded.Exists(), loaded.Terminated(), loaded.Sequence(),
			agg.Prefix(), agg.Exists(), agg.Terminated(), agg.Sequence())
	}
	if p := loaded.Prefix(); p.MaxSequence != uint64(len(events)) || (len(sorted) > 0 && p.Last != sorted[len(sorted)-1].TimeKey()) {
		fail("Load: prefix %+v, want MaxSequence %d and Last the newest key", p, len(events))
	}
}

func encodedSeq(d propDomain, sorted []model.Event) ([]byte, error) {
	fold, _ := d.kind.FoldView(model.StateView)
	for i := range sorted {
		if err := fold.Apply(&sorted[i]); err != nil {
			return nil, err
		}
	}
	return fold.MarshalValue()
}

// checkPrefix compares what of a Prefix every arrival order agrees on:
// not Last.Sequence or MaxSequence, which are numbers the log gave in
// one arrival order.
func checkPrefix(p model.Prefix, exists bool, want outcome, fail func(string, ...any), what string) {
	if p.Events != want.events || p.Applied != want.applied || p.Waiting != want.waiting ||
		!p.Last.Timestamp.Equal(want.lastTimestamp) || p.Last.StreamID != want.lastStream || exists != want.exists {
		fail("%s: prefix %+v exists %v; want events %d applied %d waiting %d last %v/%s exists %v",
			what, p, exists, want.events, want.applied, want.waiting, want.lastTimestamp.Sub(t0), want.lastStream, want.exists)
	}
}

// longHistory is an account opened at t0 with n-1 deposits of 1, one a
// second, in the default stream, numbered in that order.
func longHistory(n int) []model.Event {
	events := make([]model.Event, n)
	for i := range events {
		e := model.Event{
			AggregateType: "account", AggregateID: "a1", Sequence: uint64(i + 1),
			Timestamp: t0.Add(time.Duration(i) * time.Second), StreamID: model.DefaultStream,
			ProcessingTime: t0, Name: "deposited", Payload: []byte(`{"amount":1}`),
		}
		if i == 0 {
			e.Name, e.Characteristics, e.Payload = "opened", model.Initial, []byte(`{"owner":"ann"}`)
		}
		events[i] = e
	}
	return events
}

// TestRefoldFromCheckpoints: a history longer than three checkpoints takes
// late events landing before, at and after checkpoint keys, one at a time
// and several before one Refold; each Refold reads only the events after
// the checkpoint it restores and gives the state, views and Prefix of a
// fresh Load of the whole history.
func TestRefoldFromCheckpoints(t *testing.T) {
	f := newAccounts(t)
	const cp = model.CheckpointEvery
	n := 3*cp + cp/2 // the newest events lie between the third checkpoint and a fourth
	base := longHistory(n)
	// The checkpoints are kept after the cp-th, 2cp-th … event in event
	// time: here, base[cp-1], base[2cp-1], base[3cp-1].
	cpKey := func(i int) model.TimeKey { return base[i*cp-1].TimeKey() }

	// The late events are a command's: one of them has the stamp of an
	// event of the history (a fact's identity twice).
	deposit := func(ts time.Time, stream string, amount int) model.Event {
		return model.Event{AggregateType: "account", AggregateID: "a1", Timestamp: ts, StreamID: stream, CommandID: "late",
			ProcessingTime: t0, Name: "deposited", Payload: []byte(fmt.Sprintf(`{"amount":%d}`, amount))}
	}
	ts := func(i int) time.Time { return base[i].Timestamp }
	type late struct {
		e model.Event
		// after is the key Stale must name: the last checkpoint strictly
		// before the earliest late event not yet folded.
		after model.TimeKey
	}
	tests := []struct {
		name  string
		lates []late // appended one after the other, then one Refold
	}{
		{name: "just after the first checkpoint (same stamp, a later sequence)",
			lates: []late{{deposit(ts(cp-1), model.DefaultStream, 7), cpKey(1)}}},
		{name: "just before the first checkpoint (same instant, an earlier stream)",
			lates: []late{{deposit(ts(cp-1), "a", 7), model.TimeKey{}}}},
		{name: "between the second and third checkpoints",
			lates: []late{{deposit(ts(2*cp+10).Add(time.Millisecond), "x", 7), cpKey(2)}}},
		{name: "just after the last checkpoint",
			lates: []late{{deposit(ts(3*cp-1), "z", 7), cpKey(3)}}},
		{name: "just before the newest event",
			lates: []late{{deposit(ts(n-1).Add(-time.Millisecond), "x", 7), cpKey(3)}}},
		{name: "before everything: waits, nothing changes",
			lates: []late{{deposit(t0.Add(-time.Hour), "x", 7), model.TimeKey{}}}},
		{name: "an earlier initial event takes over the life",
			lates: []late{{withCharacteristics(withPayload(withName(deposit(t0.Add(-time.Hour), "x", 0), "opened"), `{"owner":"bob"}`), model.Initial), model.TimeKey{}}}},
		{name: "a terminal event in the middle ends the life there",
			lates: []late{{withCharacteristics(withPayload(withName(deposit(ts(2*cp+3).Add(time.Millisecond), "x", 0), "closed"), `{}`), model.Terminal), cpKey(2)}}},
		{name: "several late events before one Refold: the earliest decides",
			lates: []late{
				{deposit(ts(3*cp+5).Add(time.Millisecond), "x", 1), cpKey(3)},
				{deposit(ts(cp+5).Add(time.Millisecond), "x", 2), cpKey(1)},
				{deposit(ts(2*cp+5).Add(time.Millisecond), "x", 3), cpKey(1)},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			history := slices.Clone(base)
			agg := f.Type.NewAggregate("a1")
			if err := agg.Load(seqOf(history, nil)); err != nil {
				t.Fatal(err)
			}
			for _, l := range tt.lates {
				e := l.e
				e.Sequence = uint64(len(history) + 1)
				late, err := agg.Apply(&e)
				if err != nil || !late {
					t.Fatalf("Apply(late event %v) = %v, %v; want late", e.TimeKey(), late, err)
				}
				history = append(history, e)
				after, stale := agg.Stale()
				if !stale || after != l.after {
					t.Fatalf("Stale() = %v, %v; want %v, true", after, stale, l.after)
				}
			}
			after, _ := agg.Stale()
			feed := keysAfter(after, sortedByTime(history))
			if err := agg.Refold(seqOf(feed, nil)); err != nil {
				t.Fatalf("Refold(%d events after %v): %v", len(feed), after, err)
			}
			if _, stale := agg.Stale(); stale {
				t.Fatal("stale after Refold")
			}
			wantSameAsLoad(t, f, agg, history)

			// The aggregate goes on: a new event, then a late one again.
			next := deposit(ts(n-1).Add(time.Minute), model.DefaultStream, 5)
			next.Sequence = uint64(len(history) + 1)
			history = append(history, next)
			if late, err := agg.Apply(&next); err != nil || late {
				t.Fatalf("Apply(next) = %v, %v", late, err)
			}
			again := deposit(ts(cp+cp/2).Add(time.Millisecond), "y", 9)
			again.Sequence = uint64(len(history) + 1)
			history = append(history, again)
			if late, err := agg.Apply(&again); err != nil || !late {
				t.Fatalf("Apply(again) = %v, %v", late, err)
			}
			absorb(t, agg, history)
			wantSameAsLoad(t, f, agg, history)
		})
	}
}

func withCharacteristics(e model.Event, c model.Characteristics) model.Event {
	e.Characteristics = c
	return e
}

// wantSameAsLoad fails unless agg has the state, activity view (by
// Replay) and Prefix of a fresh Load of history.
func wantSameAsLoad(t *testing.T, f *accountFixture, agg model.Aggregate, history []model.Event) {
	t.Helper()
	fresh := f.Type.NewAggregate("a1")
	if err := fresh.Load(seqOf(sortedByTime(history), nil)); err != nil {
		t.Fatalf("Load: %v", err)
	}
	got, err1 := agg.MarshalState()
	want, err2 := fresh.MarshalState()
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) || agg.Prefix() != fresh.Prefix() || agg.Exists() != fresh.Exists() || agg.Terminated() != fresh.Terminated() || agg.Sequence() != fresh.Sequence() {
		t.Fatalf("refolded: %s %+v exists %v terminated %v seq %d\nloaded:   %s %+v exists %v terminated %v seq %d",
			got, agg.Prefix(), agg.Exists(), agg.Terminated(), agg.Sequence(),
			want, fresh.Prefix(), fresh.Exists(), fresh.Terminated(), fresh.Sequence())
	}
	replayed, err := f.Type.State().Replay(history)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := f.Type.Value(agg); v != replayed {
		t.Fatalf("refolded state %+v, Replay %+v", v, replayed)
	}
}

// TestRefoldRefusesAWrongFeed: Refold checks what it is given.
func TestRefoldRefusesAWrongFeed(t *testing.T) {
	f := newAccounts(t)
	history := longHistory(model.CheckpointEvery + 50)
	lateAt := func() (model.Aggregate, []model.Event) {
		agg := f.Type.NewAggregate("a1")
		if err := agg.Load(seqOf(history, nil)); err != nil {
			t.Fatal(err)
		}
		e := withSeq(withTime(history[1], history[model.CheckpointEvery+10].Timestamp, "a"), uint64(len(history)+1))
		if late, err := agg.Apply(&e); err != nil || !late {
			t.Fatalf("Apply = %v, %v", late, err)
		}
		return agg, sortedByTime(append(slices.Clone(history), e))
	}
	errRead := errors.New("eventlog: read failed")

	agg, all := lateAt()
	after, _ := agg.Stale()
	feed := keysAfter(after, all)
	if err := agg.Refold(seqOf(feed[:len(feed)-1], nil)); !errors.Is(err, model.ErrCorruptHistory) {
		t.Errorf("Refold with an event missing = %v, want ErrCorruptHistory", err)
	}

	agg, all = lateAt()
	after, _ = agg.Stale()
	i := sort.Search(len(all), func(i int) bool { return after.Before(all[i].TimeKey()) })
	wantErrContains(t, agg.Refold(seqOf(all[i-1:], nil)), model.ErrCorruptHistory, "not after")

	agg, all = lateAt()
	after, _ = agg.Stale()
	if err := agg.Refold(seqOf(keysAfter(after, all)[:3], errRead)); !errors.Is(err, errRead) {
		t.Errorf("Refold with a failing stream = %v, want the stream's error", err)
	}

	// Events appended since by another writer (sequences above the head)
	// are not the aggregate's to fold.
	agg, all = lateAt()
	after, _ = agg.Stale()
	extra := withSeq(withTime(history[1], at(time.Hour), ""), uint64(len(all)+1))
	if err := agg.Refold(seqOf(append(keysAfter(after, all), extra), nil)); err != nil {
		t.Errorf("Refold with an event above the head: %v", err)
	}
	wantSameAsLoad(t, f, agg, all)

	// Refold on a fresh aggregate does nothing.
	if err := f.Type.NewAggregate("a1").Refold(seqOf(nil, errRead)); err != nil {
		t.Errorf("Refold when not stale = %v", err)
	}
}

// TestDecideBeforeInitial: a command's events must fall inside the life:
// a non-initial event stamped before the aggregate's initial event would
// be recorded and never apply, so Decide rejects it.
func TestDecideBeforeInitial(t *testing.T) {
	f := newAccounts(t)
	agg, _ := f.given(t, "open", `{"owner":"ann"}`) // opened at t0 in the default stream
	tests := []struct {
		name       string
		req        model.CommandRequest
		wantReason string
	}{
		{name: "stamped before the initial event", req: model.CommandRequest{Command: "deposit", Args: []byte(`{"amount":1}`), Timestamp: at(-time.Minute)}, wantReason: model.ReasonBeforeInitial},
		{name: "the same instant, an earlier stream", req: model.CommandRequest{Command: "deposit", Args: []byte(`{"amount":1}`), Timestamp: t0, StreamID: "a"}, wantReason: model.ReasonBeforeInitial},
		{name: "one event of two stamped before", req: model.CommandRequest{Command: "stamped", Args: []byte(`{"at":"` + at(-time.Second).Format(time.RFC3339Nano) + `"}`), Timestamp: at(time.Minute)}, wantReason: model.ReasonBeforeInitial},
		{name: "the same instant and stream: after it by sequence", req: model.CommandRequest{Command: "deposit", Args: []byte(`{"amount":1}`), Timestamp: t0}},
		{name: "the same instant, a later stream", req: model.CommandRequest{Command: "deposit", Args: []byte(`{"amount":1}`), Timestamp: t0, StreamID: "z"}},
		{name: "late but inside the life", req: model.CommandRequest{Command: "deposit", Args: []byte(`{"amount":1}`), Timestamp: at(time.Millisecond)}},
		// An initial event before the initial one: the aggregate exists.
		{name: "an initial event stamped earlier", req: model.CommandRequest{Command: "open", Args: []byte(`{"owner":"bob"}`), Timestamp: at(-time.Minute)}, wantReason: model.ReasonAlreadyExists},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := tt.req
			r.CommandID, r.Now = "c1", at(time.Hour)
			events, err := agg.Decide(&r)
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("Decide: %v", err)
				}
				return
			}
			wantReason(t, err, tt.wantReason)
			if events != nil {
				t.Errorf("events %s with a rejection", eventNames(events))
			}
		})
	}
	_, err := agg.Decide(&model.CommandRequest{Command: "deposit", Args: []byte(`{"amount":1}`), Timestamp: at(-time.Minute), Now: at(time.Hour)})
	wantErrContains(t, err, nil, "account/a1 began at 2024-03-01T12:00:00Z", "2024-03-01T11:59:00Z is before it")
}

// TestDecideOnAStaleAggregate: Decide refuses to decide on state that a
// late event has not been folded into.
func TestDecideOnAStaleAggregate(t *testing.T) {
	f := newAccounts(t)
	agg, h := f.given(t, "open", `{"owner":"ann"}`, "deposit", `{"amount":10}`)
	e := withSeq(withTime(h[1], at(30*time.Second), ""), 3)
	if late, err := agg.Apply(&e); err != nil || !late {
		t.Fatalf("Apply = %v, %v", late, err)
	}
	_, err := agg.Decide(req("deposit", `{"amount":1}`, at(time.Hour)))
	wantReason(t, err, model.ReasonHandlerError)
	absorb(t, agg, append(h, e))
	if _, err := agg.Decide(req("deposit", `{"amount":1}`, at(time.Hour))); err != nil {
		t.Fatalf("Decide after Refold: %v", err)
	}
	if v, _ := f.Type.Value(agg); v.Balance != 20 {
		t.Errorf("balance %d, want 20", v.Balance)
	}
}

// TestDecideTerminatedNamesTheTerminalEvent: facts stamped after the
// terminal event are kept, not applied; the rejection still names the
// terminal event's time.
func TestDecideTerminatedNamesTheTerminalEvent(t *testing.T) {
	f := newAccounts(t)
	agg, h := f.given(t, "open", `{"owner":"ann"}`, "close", ``) // closed at t0+1m
	after := withSeq(withTime(h[0], at(time.Hour), "x"), 3)
	after.CommandID = ""
	if late, err := agg.Apply(&after); err != nil || late {
		t.Fatalf("Apply = %v, %v", late, err)
	}
	_, err := agg.Decide(req("deposit", `{"amount":1}`, at(2*time.Hour)))
	wantReason(t, err, model.ReasonTerminated)
	wantErrContains(t, err, nil, "terminal event at 2024-03-01T12:01:00Z")
}

// fact returns a fact (an event without a command id) of account a1.
func fact(name string, chars model.Characteristics, payload string, ts time.Time, stream string) model.Event {
	return model.Event{AggregateType: "account", AggregateID: "a1", Timestamp: ts, StreamID: stream,
		ProcessingTime: t0, Name: name, Characteristics: chars, Payload: []byte(payload)}
}

func TestCheckFact(t *testing.T) {
	f := newAccounts(t)
	agg, _ := f.given(t, "open", `{"owner":"ann"}`, "deposit", `{"amount":5}`, "close", ``) // closed at t0+2m
	tests := []struct {
		name       string
		e          model.Event
		wantErr    error
		wantReason string
		wantMsg    string
	}{
		{name: "inside the life", e: fact("deposited", 0, `{"amount":1}`, at(time.Minute+1), "s")},
		{name: "before the initial event (it waits)", e: fact("deposited", 0, `{"amount":1}`, at(-time.Hour), "s")},
		{name: "an initial event again", e: fact("opened", 0, `{"owner":"bob"}`, at(time.Second), "s")},
		{name: "at the terminal's instant, an earlier stream", e: fact("deposited", 0, `{"amount":1}`, at(2*time.Minute), "a")},
		{name: "after the terminal event", e: fact("deposited", 0, `{"amount":1}`, at(3*time.Minute), "s"), wantReason: model.ReasonTerminated,
			wantMsg: "account/a1 ended at 2024-03-01T12:02:00Z (its terminal event); a fact stamped 2024-03-01T12:03:00Z after it cannot apply"},
		{name: "a terminal event after the terminal event", e: fact("closed", 0, `{}`, at(time.Hour), "s"), wantReason: model.ReasonTerminated},
		{name: "at the terminal's instant, a later stream", e: fact("deposited", 0, `{"amount":1}`, at(2*time.Minute), "z"), wantReason: model.ReasonTerminated},
		// Its sequence is not yet given: the log numbers it after the
		// terminal event, so it sorts after it.
		{name: "at the terminal's instant and stream", e: fact("deposited", 0, `{"amount":1}`, at(2*time.Minute), model.DefaultStream), wantReason: model.ReasonTerminated},
		{name: "unknown event", e: fact("withdrawn", 0, `{}`, at(time.Minute), "s"), wantErr: model.ErrUnknownEvent,
			wantMsg: `"account" has no event withdrawn_0 (events: [closed_0 deposited_0 opened_0])`},
		{name: "unknown version", e: withVersion(fact("deposited", 0, `{"amount":1}`, at(time.Minute), "s"), 2), wantErr: model.ErrUnknownEvent},
		{name: "bad payload", e: fact("deposited", 0, `{"amount":"x"}`, at(time.Minute), "s"), wantErr: model.ErrInvalidArgs, wantMsg: `payload of deposited_0: field "amount"`},
		{name: "payload with an unknown field", e: fact("deposited", 0, `{"amount":1,"memo":""}`, at(time.Minute), "s"), wantErr: model.ErrInvalidArgs},
		{name: "bad payload after the terminal event", e: fact("deposited", 0, `[]`, at(time.Hour), "s"), wantErr: model.ErrInvalidArgs},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.e
			err := agg.CheckFact(&e)
			switch {
			case tt.wantReason != "":
				wantReason(t, err, tt.wantReason)
			case tt.wantErr != nil:
				wantInvalid(t, err, tt.wantErr)
			case err != nil:
				t.Fatalf("CheckFact = %v, want nil", err)
			}
			if tt.wantMsg != "" {
				wantErrContains(t, err, nil, tt.wantMsg)
			}
			if err == nil {
				if info := e.Characteristics; info != f.charsOf(e.Name) {
					t.Errorf("CheckFact left Characteristics %v, want %v (from the definition)", info, f.charsOf(e.Name))
				}
			}
		})
	}
}

func (f *accountFixture) charsOf(name string) model.Characteristics {
	switch name {
	case "opened":
		return f.Opened.Characteristics()
	case "closed":
		return f.Closed.Characteristics()
	}
	return f.Deposit.Characteristics()
}

// TestTerminalBeforeInitial: a terminal event stamped before the earliest
// initial event waits like any other event before the life; it does not
// end the life that begins later, for the fold, for CheckFact and for
// Place alike.
func TestTerminalBeforeInitial(t *testing.T) {
	f := newAccounts(t)
	closed := fact("closed", model.Terminal, `{}`, at(-time.Hour), "s")
	opened := fact("opened", model.Initial, `{"owner":"ann"}`, t0, "s")
	deposit := fact("deposited", 0, `{"amount":3}`, at(time.Minute), "s")
	history := []model.Event{withSeq(closed, 1), withSeq(opened, 2), withSeq(deposit, 3)}
	agg := f.Type.NewAggregate("a1")
	for i := range history {
		if _, err := agg.Apply(&history[i]); err != nil {
			t.Fatal(err)
		}
		absorb(t, agg, history[:i+1])
	}
	if v, _ := f.Type.Value(agg); v != (Account{Owner: "ann", Balance: 3}) || !agg.Exists() || agg.Terminated() {
		t.Fatalf("state %+v exists %v terminated %v", v, agg.Exists(), agg.Terminated())
	}
	for i, want := range []model.Outcome{model.Waiting, model.Applied, model.Applied} {
		if got := agg.Place(&history[i]); got != want {
			t.Errorf("Place(%s) = %v, want %v", history[i].VersionedName(), got, want)
		}
	}
	more := fact("deposited", 0, `{"amount":1}`, at(2*time.Minute), "s")
	if err := agg.CheckFact(&more); err != nil {
		t.Errorf("CheckFact(deposit inside the life) = %v, want nil", err)
	}
	if _, err := agg.Decide(req("deposit", `{"amount":1}`, at(time.Hour))); err != nil {
		t.Errorf("Decide(deposit) = %v", err)
	}
}

// TestFacts: a fact is idempotent on its identity; a command's events are
// not (their command id is their idempotency key).
func TestFacts(t *testing.T) {
	f := newAccounts(t)
	agg := f.Type.NewAggregate("a1")
	opened := withSeq(fact("opened", model.Initial, `{"owner":"ann"}`, t0, "s"), 1)
	dep := withSeq(fact("deposited", 0, `{"amount":3}`, at(time.Minute), "s"), 2)
	for _, e := range []model.Event{opened, dep} {
		if _, err := agg.Apply(&e); err != nil {
			t.Fatal(err)
		}
	}
	if seq, ok := agg.Fact(dep.FactID()); !ok || seq != 2 {
		t.Errorf("Fact(deposit) = %d, %v; want 2, true", seq, ok)
	}
	// The identity leaves the payload out and keeps the millisecond.
	id := dep.FactID()
	id.Timestamp = id.Timestamp.In(time.FixedZone("X", 3600))
	if seq, ok := agg.Fact(id); !ok || seq != 2 {
		t.Errorf("Fact(deposit, another zone) = %d, %v; want 2, true", seq, ok)
	}
	for _, other := range []model.Event{
		withTime(dep, at(time.Minute+time.Millisecond), ""),
		withTime(dep, at(time.Minute), "t"),
		withVersion(dep, 1),
	} {
		if _, ok := agg.Fact(other.FactID()); ok {
			t.Errorf("Fact(%+v) found", other.FactID())
		}
	}

	resent := withSeq(withPayload(dep, `{"amount":4}`), 3)
	_, err := agg.Apply(&resent)
	wantErrContains(t, err, model.ErrCorruptHistory, "recorded twice")
	loaded := f.Type.NewAggregate("a1")
	wantErrContains(t, loaded.Load(seqOf([]model.Event{opened, dep, resent}, nil)), model.ErrCorruptHistory, "recorded twice")

	// The same identity from a command is a new event.
	byCommand := resent
	byCommand.CommandID = "c9"
	if _, err := agg.Apply(&byCommand); err != nil {
		t.Fatalf("Apply(command event with a fact's identity) = %v", err)
	}
	if v, _ := f.Type.Value(agg); v.Balance != 7 {
		t.Errorf("balance %d, want 7", v.Balance)
	}
	if seq, ok := agg.Fact(dep.FactID()); !ok || seq != 2 {
		t.Errorf("Fact(deposit) = %d, %v after a command event; want 2, true", seq, ok)
	}
}

// TestLoadChecks: Load takes a whole history in event-time order.
func TestLoadChecks(t *testing.T) {
	f := newAccounts(t)
	h := f.standardHistory(t)
	errRead := errors.New("eventlog: read failed")
	tests := []struct {
		name    string
		events  []model.Event
		err     error
		wantErr error
		wantMsg string
	}{
		{name: "a gap", events: []model.Event{h[0], h[2]}, wantErr: model.ErrCorruptHistory, wantMsg: "the log has a gap"},
		{name: "a repeated sequence and a gap", events: []model.Event{h[0], withSeq(h[1], 1), h[2]}, wantErr: model.ErrCorruptHistory, wantMsg: "account/a1: sequence 1 read twice"},
		{name: "not in event-time order", events: []model.Event{h[0], h[2], h[1]}, wantErr: model.ErrCorruptHistory, wantMsg: "event-time order broken"},
		{name: "another aggregate", events: []model.Event{h[0], withID(h[1], "a2")}, wantErr: model.ErrCorruptHistory, wantMsg: "event of account/a2 loaded into account/a1"},
		{name: "a failing stream", events: h[:2], err: errRead, wantErr: errRead},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			agg := f.Type.NewAggregate("a1")
			err := agg.Load(seqOf(tt.events, tt.err))
			wantErrContains(t, err, tt.wantErr, tt.wantMsg)
		})
	}
	agg := f.Type.NewAggregate("a1")
	if err := agg.Load(seqOf(h, nil)); err != nil {
		t.Fatal(err)
	}
	if err := agg.Load(seqOf(h, nil)); err == nil {
		t.Error("a second Load succeeded")
	}
}

// BenchmarkAbsorbLateEvent measures what absorbing one late event costs an
// aggregate with 10,000 events loaded: Apply and a Refold from the nearest
// checkpoint, fed from an in-memory history in event time, for a late
// event stamped just before the newest event, in the middle, and before
// everything; and beside them full-reload, a Load of the whole 10,001
// events, which is what absorbing would cost without checkpoints.
func BenchmarkAbsorbLateEvent(b *testing.B) {
	const n = 10_000
	f := newAccounts(b)
	base := longHistory(n)
	late := func(ts time.Time) model.Event {
		return model.Event{AggregateType: "account", AggregateID: "a1", Sequence: n + 1, Timestamp: ts, StreamID: "late",
			ProcessingTime: t0, Name: "deposited", Payload: []byte(`{"amount":1}`)}
	}
	cases := []struct {
		name string
		e    model.Event
	}{
		{"just-before-newest", late(base[n-1].Timestamp.Add(-time.Millisecond))},
		{"middle", late(base[n/2].Timestamp.Add(time.Millisecond))},
		{"before-everything", late(t0.Add(-time.Hour))},
	}
	for _, c := range cases {
		all := sortedByTime(append(slices.Clone(base), c.e))
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				agg := f.Type.NewAggregate("a1")
				if err := agg.Load(seqOf(base, nil)); err != nil {
					b.Fatal(err)
				}
				e := c.e
				b.StartTimer()
				if _, err := agg.Apply(&e); err != nil {
					b.Fatal(err)
				}
				after, stale := agg.Stale()
				if !stale {
					b.Fatal("not stale")
				}
				from := sort.Search(len(all), func(i int) bool { return after.Before(all[i].TimeKey()) })
				if err := agg.Refold(seqOf(all[from:], nil)); err != nil {
					b.Fatal(err)
				}
				if i == 0 {
					b.ReportMetric(float64(len(all)-from), "events-refolded")
				}
			}
		})
	}
	all := sortedByTime(append(slices.Clone(base), cases[1].e))
	b.Run("full-reload", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			agg := f.Type.NewAggregate("a1")
			if err := agg.Load(seqOf(all, nil)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(all)), "events-refolded")
	})
}
