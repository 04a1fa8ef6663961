package eventbus

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/storage/memory"
)

// These tests run the whole Publisher (its three goroutines, the ticker,
// the acknowledgement timer) in a synctest bubble on a fake bus: time
// moves only when every goroutine of the bubble is blocked, so "after
// three maintenance rounds" or "after the acknowledgement timeout" is
// exact and no test waits on the wall clock. The bubble starts at
// 2000-01-01 00:00 UTC, at the start of a bucket; buckets last a second
// and the maintenance loop runs every 100 ms.

const (
	syncBucket   = time.Second
	syncMaintain = 100 * time.Millisecond
	syncAck      = time.Second
)

type syncRig struct {
	t     *testing.T
	bus   *fakeBus
	store *memory.EventLog
	ob    *countingOutbox
}

// newSyncRig must be called inside the bubble.
func newSyncRig(t *testing.T) *syncRig {
	store := memory.NewEventLog()
	return &syncRig{t: t, bus: newFakeBus(), store: store, ob: &countingOutbox{Outbox: store}}
}

// publisher starts a publisher on the fake bus, with a stream (PubAcks)
// or on core NATS (flushes). Close it before the bubble ends.
func (r *syncRig) publisher(writer string, stream bool) *Publisher {
	cfg := PublisherConfig{Prefix: "pt", Writer: writer, Outbox: r.ob, Log: r.store,
		JetStream: stream, BucketLength: syncBucket, MaintainEvery: syncMaintain, AckTimeout: syncAck,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := cfg.fill(); err != nil {
		r.t.Fatal(err)
	}
	out := sender{prefix: cfg.Prefix, conn: r.bus, timeout: cfg.AckTimeout}
	if stream {
		out.js = r.bus
	}
	return startPublisher(context.Background(), cfg, out)
}

// write marks, appends and (when publish is set) publishes n events of
// ref from sequence from, as the executor does for one command.
func (r *syncRig) write(p *Publisher, ref model.Ref, from, n int, publish bool) {
	r.t.Helper()
	ctx := context.Background()
	evs := make([]model.Event, n)
	for i := range evs {
		seq := from + i
		evs[i] = model.Event{AggregateType: ref.Type, AggregateID: ref.ID, Sequence: uint64(seq),
			Timestamp: time.Now(), Name: "happened", Payload: []byte(`{}`), EventID: fmt.Sprintf("%s-%d", ref.ID, seq)}
	}
	tk, err := p.Prepare(ctx, []eventlog.Mark{{Ref: ref, First: uint64(from), Last: uint64(from + n - 1)}})
	if err != nil {
		r.t.Fatal(err)
	}
	if errs := r.store.Append(ctx, []eventlog.Append{{Ref: ref, Expected: uint64(from - 1), Events: evs}}); errs[0] != nil {
		r.t.Fatal(errs[0])
	}
	if publish {
		p.Publish(tk, evs)
	}
}

func (r *syncRig) position(writer string) eventlog.OutboxWriter {
	r.t.Helper()
	ws, err := r.store.Writers(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	for _, w := range ws {
		if w.Writer == writer {
			return w
		}
	}
	return eventlog.OutboxWriter{Writer: writer}
}

// pass lets d go by in the bubble and waits until every goroutine is
// blocked again.
func pass(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func closePublisher(t *testing.T, p *Publisher) {
	t.Helper()
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A refused publication makes the bucket dirty: however many maintenance
// rounds pass, the watermark stays below it until its events are
// published from the log.
func TestSyncRefusedPublicationHoldsTheWatermarkUntilRepublished(t *testing.T) {
	for _, stream := range []bool{true, false} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newSyncRig(t)
				r.bus.set(busRefuses)
				if !stream {
					r.bus.setConnected(false) // core NATS refuses by being down
				}
				p := r.publisher("w1", stream)
				ref := model.Ref{Type: "thing", ID: "b"}
				r.write(p, ref, 1, 2, true)
				synctest.Wait()
				if s := p.Stats(); s.Failed != 2 || s.Published != 0 || s.DirtyBuckets != 1 {
					t.Fatalf("after the refusal: %+v", s)
				}
				pass(3 * syncBucket) // 30 maintenance rounds
				if s := p.Stats(); s.DirtyBuckets != 1 || s.Republished != 0 {
					t.Fatalf("after 3 s refused: %+v", s)
				}
				if w := r.position("w1"); !w.Pending() {
					t.Fatalf("the watermark passed a bucket whose events never reached the bus: %+v", w)
				}
				r.bus.set(busAccepts)
				r.bus.setConnected(true)
				pass(syncMaintain)
				if s := p.Stats(); s.Republished != 2 || s.DirtyBuckets != 0 {
					t.Fatalf("one round after the bus accepts: %+v", s)
				}
				if got := r.bus.events(); !slices.Equal(got, []string{"b-1", "b-2"}) {
					t.Fatalf("bus holds %v", got)
				}
				if w := r.position("w1"); !w.Pending() {
					t.Fatalf("the round that republished also moved the watermark: %+v", w)
				}
				pass(syncMaintain)
				if w := r.position("w1"); w.Pending() {
					t.Fatalf("the watermark did not pass the republished bucket: %+v", w)
				}
				closePublisher(t, p)
			})
		})
	}
}

// A PubAck that never comes fails the job after AckTimeout, not before.
func TestSyncLostAcknowledgementFailsAfterTheTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSyncRig(t)
		r.bus.set(busSilent)
		p := r.publisher("w1", true)
		r.write(p, model.Ref{Type: "thing", ID: "s"}, 1, 1, true)
		pass(syncAck - time.Nanosecond)
		if s := p.Stats(); s.Failed != 0 || s.Published != 0 || s.Outstanding != 1 {
			t.Fatalf("just before the timeout: %+v", s)
		}
		pass(time.Nanosecond)
		if s := p.Stats(); s.Failed != 1 || s.Outstanding != 0 || s.DirtyBuckets != 1 {
			t.Fatalf("at the timeout: %+v", s)
		}
		r.bus.set(busAccepts)
		pass(2 * syncAck) // a republication begun while the bus was silent times out first
		if s := p.Stats(); s.Republished != 1 || s.DirtyBuckets != 0 {
			t.Fatalf("after the bus answers again: %+v", s)
		}
		if got := r.bus.events(); !slices.Equal(got, []string{"s-1"}) {
			t.Fatalf("bus holds %v", got)
		}
		closePublisher(t, p)
	})
}

// While the connection is down nothing is republished into it; once it is
// back the dirty bucket is.
func TestSyncNoRepublicationWhileDisconnected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSyncRig(t)
		r.bus.setConnected(false)
		p := r.publisher("w1", true)
		r.write(p, model.Ref{Type: "thing", ID: "x"}, 1, 3, true)
		synctest.Wait()
		tried := r.bus.attempts()
		pass(5 * syncBucket)
		if n := r.bus.attempts(); n != tried {
			t.Fatalf("%d publications tried while disconnected, after the live one", n-tried)
		}
		r.bus.setConnected(true)
		pass(syncMaintain)
		if got := r.bus.events(); !slices.Equal(got, []string{"x-1", "x-2", "x-3"}) {
			t.Fatalf("bus holds %v", got)
		}
		closePublisher(t, p)
	})
}

// The watermark is written once per bucket that held marks (and once at
// the start), however often the maintenance loop runs; none while nothing
// is marked.
func TestSyncOneWatermarkWritePerBucket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSyncRig(t)
		p := r.publisher("w1", true)
		first := r.ob.watermarks()
		if len(first) != 1 {
			t.Fatalf("start: watermark writes %v, want one", first)
		}
		ref := model.Ref{Type: "thing", ID: "m"}
		for i := 1; i <= 5; i++ {
			r.write(p, ref, 2*i-1, 2, true)
			pass(syncBucket)
		}
		pass(10 * syncBucket)
		b := first[0] + 1 // the first bucket marked
		want := []int64{first[0], b, b + 1, b + 2, b + 3, b + 4}
		if got := r.ob.watermarks(); !slices.Equal(got, want) {
			t.Fatalf("watermark writes %v, want %v", got, want)
		}
		if s := p.Stats(); s.Published != 10 || s.Watermark != b+4 {
			t.Fatalf("stats %+v", s)
		}
		closePublisher(t, p)
		if got := r.ob.watermarks(); len(got) != len(want) {
			t.Fatalf("Close wrote the watermark again: %v", got)
		}
	})
}

// Close waits for what is in flight and records the watermark past the
// current bucket, so a clean stop leaves nothing pending; its goroutines
// are gone when it returns (synctest.Test fails otherwise).
func TestSyncCloseReleasesTheCurrentBucket(t *testing.T) {
	for _, stream := range []bool{true, false} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newSyncRig(t)
				p := r.publisher("w1", stream)
				ref := model.Ref{Type: "thing", ID: "c"}
				for i := 1; i <= 20; i++ {
					r.write(p, ref, i, 1, true)
				}
				closePublisher(t, p)
				if w := r.position("w1"); w.Pending() {
					t.Fatalf("pending after a clean Close: %+v", w)
				}
				if s := p.Stats(); s.Published != 20 || s.Outstanding != 0 {
					t.Fatalf("stats %+v", s)
				}
				if got := r.bus.events(); len(got) != 20 {
					t.Fatalf("bus holds %d events, want 20", len(got))
				}
			})
		})
	}
}

// A restart under the same writer republishes what the previous run
// marked and never published, within one maintenance round.
func TestSyncRestartRepublishesThePreviousRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newSyncRig(t)
		dead := r.publisher("w1", true)
		ref := model.Ref{Type: "thing", ID: "r"}
		r.write(dead, ref, 1, 1, true)
		r.write(dead, ref, 2, 2, false) // appended, never published: the crash
		// Close cannot release a bucket with a mark never settled: the
		// outbox is left as by a crash.
		closePublisher(t, dead)
		if w := r.position("w1"); !w.Pending() {
			t.Fatalf("Close released a bucket with a mark in flight: %+v", w)
		}

		next := r.publisher("w1", true)
		if s := next.Stats(); s.DirtyBuckets != 1 {
			t.Fatalf("the new run took over %d dirty buckets, want 1", s.DirtyBuckets)
		}
		pass(syncMaintain)
		if got := r.bus.events(); !slices.Equal(got, []string{"r-1", "r-2", "r-3"}) {
			t.Fatalf("bus holds %v", got)
		}
		r.write(next, ref, 4, 1, true)
		synctest.Wait()
		if tk := next.Stats(); tk.Published != 1 {
			t.Fatalf("stats %+v", tk)
		}
		pass(2 * syncBucket)
		if w := r.position("w1"); w.Pending() {
			t.Fatalf("pending: %+v", w)
		}
		closePublisher(t, next)
	})
}
