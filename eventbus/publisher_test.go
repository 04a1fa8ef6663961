package eventbus_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/eventbus"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/storage/memory"
)

const prefix = "pt"

type rig struct {
	srv   *server.Server
	nc    *nats.Conn
	store *memory.EventLog
	clock *testsupport.Clock
}

func newRig(t *testing.T) *rig {
	s := testsupport.NATS(t, testsupport.JetStream())
	nc := testsupport.Connect(t, s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	return &rig{srv: s, nc: nc, store: memory.NewEventLog(),
		clock: testsupport.NewClock(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))}
}

func (r *rig) ensureStream(t *testing.T) jetstream.Stream {
	t.Helper()
	name, err := eventbus.EnsureStream(context.Background(), r.nc, prefix, eventbus.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(r.nc)
	st, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (r *rig) publisher(t *testing.T, writer string, stream bool) *eventbus.Publisher {
	t.Helper()
	p, err := eventbus.NewPublisher(context.Background(), eventbus.PublisherConfig{
		Conn: r.nc, Prefix: prefix, Writer: writer, Outbox: r.store, Log: r.store,
		JetStream: stream, BucketLength: time.Second, MaintainEvery: 20 * time.Millisecond,
		AckTimeout: time.Second, Clock: r.clock.Now,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close(context.Background()) })
	return p
}

func events(ref model.Ref, from, n int) []model.Event {
	out := make([]model.Event, n)
	for i := range out {
		seq := from + i
		out[i] = model.Event{AggregateType: ref.Type, AggregateID: ref.ID, Sequence: uint64(seq),
			Timestamp: time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC), Name: "happened", Version: 0,
			Payload: []byte(`{}`), EventID: fmt.Sprintf("%s-%d", ref.ID, seq)}
	}
	return out
}

// write does what the executor does for one command: mark, append, and
// (when publish is set) publish.
func (r *rig) write(t *testing.T, p *eventbus.Publisher, ref model.Ref, from, n int, publish bool) {
	t.Helper()
	ctx := context.Background()
	evs := events(ref, from, n)
	tk, err := p.Prepare(ctx, []eventlog.Mark{{Ref: ref, First: uint64(from), Last: uint64(from + n - 1)}})
	if err != nil {
		t.Fatal(err)
	}
	if errs := r.store.Append(ctx, []eventlog.Append{{Ref: ref, Expected: uint64(from - 1), Events: evs}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if publish {
		p.Publish(tk, evs)
	}
}

// streamEvents returns the event ids in the stream, in stream order.
func streamEvents(t *testing.T, st jetstream.Stream) []string {
	t.Helper()
	ctx := context.Background()
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.Header.Get(api.HeaderEventID))
	}
	return ids
}

// waitFor polls cond until it holds, failing t after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testsupport.Eventually(t, 10*time.Second, what, cond)
}

func writerPosition(t *testing.T, ob eventlog.Outbox, writer string) eventlog.OutboxWriter {
	t.Helper()
	ws, err := ob.Writers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if w.Writer == writer {
			return w
		}
	}
	return eventlog.OutboxWriter{Writer: writer}
}

// The live path: events reach the stream in order and, once the bucket
// has closed, the watermark moves past it.
func TestPublishedEventsAreAcknowledgedAndReleased(t *testing.T) {
	r := newRig(t)
	st := r.ensureStream(t)
	p := r.publisher(t, "w1", true)
	ref := model.Ref{Type: "thing", ID: "a"}
	r.write(t, p, ref, 1, 3, true)
	r.write(t, p, ref, 4, 2, true)
	waitFor(t, "5 acknowledged events", func() bool { return p.Stats().Published == 5 })
	if got := streamEvents(t, st); fmt.Sprint(got) != "[a-1 a-2 a-3 a-4 a-5]" {
		t.Fatalf("stream holds %v", got)
	}
	if w := writerPosition(t, r.store, "w1"); !w.Pending() {
		t.Fatalf("the bucket was released before it closed: %+v", w)
	}
	r.clock.Advance(time.Second)
	waitFor(t, "the watermark to pass the bucket", func() bool { return !writerPosition(t, r.store, "w1").Pending() })
	if s := p.Stats(); s.Republished != 0 || s.Failed != 0 || s.DirtyBuckets != 0 {
		t.Errorf("stats %+v: nothing should have been republished", s)
	}
}

// A stream that does not answer (here: not there yet) makes the bucket
// dirty; once it answers the events are published from the log, and the
// watermark waits until they are.
func TestFailedPublicationIsRepublishedFromTheLog(t *testing.T) {
	r := newRig(t)
	p := r.publisher(t, "w1", true)
	ref := model.Ref{Type: "thing", ID: "b"}
	r.write(t, p, ref, 1, 2, true)
	waitFor(t, "the failure", func() bool { return p.Stats().Failed == 2 })
	r.clock.Advance(3 * time.Second)
	rounds := eventbus.MaintenanceRounds(p)
	waitFor(t, "three maintenance rounds", func() bool { return eventbus.MaintenanceRounds(p) >= rounds+3 })
	if w := writerPosition(t, r.store, "w1"); !w.Pending() {
		t.Fatalf("the watermark passed a bucket whose events never reached the bus: %+v", w)
	}
	st := r.ensureStream(t)
	waitFor(t, "republication", func() bool { return p.Stats().Republished == 2 })
	// Order is not promised here: a republication racing the stream's
	// creation can store b-2 first (b-1 failed, both were sent again).
	// Consumers restore order (package subscription).
	if got := streamEvents(t, st); !slices.Equal(slices.Sorted(slices.Values(got)), []string{"b-1", "b-2"}) {
		t.Fatalf("stream holds %v", got)
	}
	waitFor(t, "the watermark", func() bool { return !writerPosition(t, r.store, "w1").Pending() })
}

// A node that died between append and publish: the next run under the
// same writer id finds the marks above its watermark and publishes them.
func TestRestartPublishesWhatThePreviousRunLeft(t *testing.T) {
	r := newRig(t)
	st := r.ensureStream(t)
	dead := r.publisher(t, "w1", true)
	ref := model.Ref{Type: "thing", ID: "c"}
	r.write(t, dead, ref, 1, 1, true)
	waitFor(t, "the first event", func() bool { return dead.Stats().Published == 1 })
	r.write(t, dead, ref, 2, 2, false) // appended, never published: the crash
	// No Close: the run is gone. A new run of the same writer:
	next := r.publisher(t, "w1", true)
	waitFor(t, "republication", func() bool { return next.Stats().Republished >= 2 })
	if got := streamEvents(t, st); fmt.Sprint(got) != "[c-1 c-2 c-3]" {
		t.Fatalf("stream holds %v (JetStream drops the re-sent c-1)", got)
	}
	// New marks go to buckets after the old ones.
	r.write(t, next, ref, 4, 1, true)
	r.clock.Advance(2 * time.Second)
	waitFor(t, "the watermark", func() bool { return !writerPosition(t, r.store, "w1").Pending() })
}

// Another node takes over a dead writer's outbox with Recover.
func TestRecoverPublishesADeadWritersEvents(t *testing.T) {
	r := newRig(t)
	st := r.ensureStream(t)
	dead := r.publisher(t, "dead", true)
	refs := []model.Ref{{Type: "thing", ID: "d1"}, {Type: "thing", ID: "d2"}}
	for _, ref := range refs {
		r.write(t, dead, ref, 1, 2, false)
	}
	survivor := r.publisher(t, "alive", true)
	n, err := survivor.Recover(context.Background(), "dead")
	if err != nil || n != 4 {
		t.Fatalf("Recover: %d events, %v; want 4", n, err)
	}
	if got := streamEvents(t, st); fmt.Sprint(got) != "[d1-1 d1-2 d2-1 d2-2]" {
		t.Fatalf("stream holds %v", got)
	}
	if w := writerPosition(t, r.store, "dead"); w.Pending() {
		t.Errorf("dead writer still pending after Recover: %+v", w)
	}
	if n, err := survivor.Recover(context.Background(), "dead"); err != nil || n != 0 {
		t.Errorf("second Recover: %d, %v; want nothing to do", n, err)
	}
}

// A write of unknown outcome whose events did land is published from the
// log; a conflicted one is not looked for.
func TestUnknownOutcomeIsLookedUpInTheLog(t *testing.T) {
	r := newRig(t)
	st := r.ensureStream(t)
	p := r.publisher(t, "w1", true)
	ref := model.Ref{Type: "thing", ID: "e"}
	ctx := context.Background()
	evs := events(ref, 1, 1)
	tk, err := p.Prepare(ctx, []eventlog.Mark{{Ref: ref, First: 1, Last: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if errs := r.store.Append(ctx, []eventlog.Append{{Ref: ref, Events: evs}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	p.Discard(tk, true) // the store said "unavailable", yet it landed
	waitFor(t, "republication", func() bool { return p.Stats().Republished == 1 })
	if got := streamEvents(t, st); fmt.Sprint(got) != "[e-1]" {
		t.Fatalf("stream holds %v", got)
	}
	tk, err = p.Prepare(ctx, []eventlog.Mark{{Ref: ref, First: 2, Last: 2}})
	if err != nil {
		t.Fatal(err)
	}
	p.Discard(tk, false)
	r.clock.Advance(2 * time.Second)
	waitFor(t, "the watermark", func() bool { return !writerPosition(t, r.store, "w1").Pending() })
	if s := p.Stats(); s.Republished != 1 {
		t.Errorf("republished %d, want 1", s.Republished)
	}
}

// Without a stream an event counts as published when the server has it
// (a flush); a subscriber sees every event in order.
func TestCoreNATSPublication(t *testing.T) {
	r := newRig(t)
	sub, err := r.nc.SubscribeSync(prefix + ".events.>")
	if err != nil {
		t.Fatal(err)
	}
	p := r.publisher(t, "w1", false)
	ref := model.Ref{Type: "thing", ID: "f"}
	for i := 1; i <= 50; i++ {
		r.write(t, p, ref, i, 1, true)
	}
	for want := 1; want <= 50; want++ {
		m, err := sub.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.Header.Get(api.HeaderSequence); got != strconv.Itoa(want) {
			t.Fatalf("event %d has sequence %s", want, got)
		}
	}
	waitFor(t, "50 acknowledged", func() bool { return p.Stats().Published == 50 })
}

// Close waits for what is queued and records the watermark, so a clean
// stop leaves nothing for the next run.
func TestCloseReleasesEverythingAcknowledged(t *testing.T) {
	r := newRig(t)
	r.ensureStream(t)
	p := r.publisher(t, "w1", true)
	ref := model.Ref{Type: "thing", ID: "g"}
	for i := 1; i <= 20; i++ {
		r.write(t, p, ref, i, 1, true)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w := writerPosition(t, r.store, "w1"); w.Pending() {
		t.Errorf("pending after a clean Close: %+v", w)
	}
	if s := p.Stats(); s.Published != 20 {
		t.Errorf("published %d, want 20", s.Published)
	}
	// Publishing after Close leaves the events to the outbox.
	p.Publish(executor.Ticket(1), events(ref, 21, 1))
	if s := p.Stats(); s.Deferred != 1 {
		t.Errorf("deferred %d after Close, want 1", s.Deferred)
	}
}
