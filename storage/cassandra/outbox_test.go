package cassandra

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/eventlog/eventlogtest"
	"github.com/concursus-go/concursus/model"
)

func TestOutboxConformance(t *testing.T) {
	ks := newKeyspace(t)
	eventlogtest.RunOutbox(t, func(t *testing.T) (eventlog.Log, eventlog.Outbox) {
		l := ks.open(t, nil).EventLog()
		return l, l
	})
}

// TestOutboxTTL checks that marks carry Config.OutboxTTL, survive the
// watermark (SetPublished deletes nothing), and expire by themselves.
func TestOutboxTTL(t *testing.T) {
	ks := newKeyspace(t)
	s := ks.open(t, func(c *Config) { c.OutboxTTL = 3 * time.Second })
	l, ctx := s.EventLog(), t.Context()
	const w, b = "node-1", int64(352_000_000)
	m := eventlog.Mark{Ref: model.Ref{Type: "t", ID: "a"}, First: 1, Last: 2}
	if err := l.Mark(ctx, w, b, []eventlog.Mark{m}); err != nil {
		t.Fatal(err)
	}
	var ttl int
	if err := s.session.Query("SELECT TTL(last) FROM "+s.q.outbox+" WHERE writer = ? AND bucket = ?", w, b).Scan(&ttl); err != nil {
		t.Fatal(err)
	}
	if ttl < 1 || ttl > 3 {
		t.Errorf("TTL of a mark = %d s, want 1..3", ttl)
	}
	if err := l.SetPublished(ctx, w, b); err != nil {
		t.Fatal(err)
	}
	if got, err := l.Marks(ctx, w, b); err != nil || !slices.Equal(got, []eventlog.Mark{m}) {
		t.Errorf("Marks after SetPublished = %v, %v; want the mark (it only expires)", got, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := l.Marks(ctx, w, b)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mark still there 30 s after its TTL of 3 s: %v", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The writer's position does not expire.
	ws, err := l.Writers(ctx)
	if err != nil || !slices.Equal(ws, []eventlog.OutboxWriter{{Writer: w, Published: b, Last: b}}) {
		t.Errorf("Writers after the marks expired = %+v, %v", ws, err)
	}
}

// TestOutboxPublishedRace moves one writer's watermark from two stores
// (two processes: a restarted writer and a node taking it over) with
// values in random order: it must end at the largest, never move back,
// and leave last alone.
func TestOutboxPublishedRace(t *testing.T) {
	ks := newKeyspace(t)
	cfg := ks.config()
	stores := []*Store{ks.openConfig(t, cfg), ks.openConfig(t, cfg)}
	const w, b0 = "node-1", int64(352_000_000)
	ctx := t.Context()
	if err := stores[0].EventLog().Mark(ctx, w, b0+100, []eventlog.Mark{{Ref: model.Ref{Type: "t", ID: "a"}, First: 1, Last: 1}}); err != nil {
		t.Fatal(err)
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	values := make([]int64, 40)
	for i := range values {
		values[i] = b0 + int64(i)
	}
	rng.Shuffle(len(values), func(i, j int) { values[i], values[j] = values[j], values[i] })
	var wg sync.WaitGroup
	for g := range 4 {
		l := stores[g%2].EventLog()
		wg.Go(func() {
			seen := int64(0)
			for i := g; i < len(values); i += 4 {
				if err := l.SetPublished(ctx, w, values[i]); err != nil {
					t.Errorf("SetPublished(%d): %v", values[i], err)
					return
				}
				ws, err := l.Writers(ctx)
				if err != nil || len(ws) != 1 {
					t.Errorf("Writers = %+v, %v", ws, err)
					return
				}
				if ws[0].Published < max(seen, values[i]) {
					t.Errorf("watermark moved back: %d after this caller set %d and saw %d", ws[0].Published, values[i], seen)
				}
				seen = ws[0].Published
			}
		})
	}
	wg.Wait()
	ws, err := stores[1].EventLog().Writers(ctx)
	want := []eventlog.OutboxWriter{{Writer: w, Published: b0 + int64(len(values)) - 1, Last: b0 + 100}}
	if err != nil || !slices.Equal(ws, want) {
		t.Errorf("Writers = %+v, %v; want %+v", ws, err, want)
	}
}

// TestOutboxLastOrdered checks that concurrent Marks of one writer into
// buckets delivered out of order leave last at the newest, and that last
// is written once per bucket, not once per call.
func TestOutboxLastOrdered(t *testing.T) {
	ks := newKeyspace(t)
	s := ks.open(t, nil)
	l, ctx := s.EventLog(), t.Context()
	const w, b0 = "node-1", int64(352_000_000)
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for c := range 10 {
				b := b0 + int64((g+c)%20)
				m := eventlog.Mark{Ref: model.Ref{Type: "t", ID: fmt.Sprintf("g%d", g)}, First: uint64(c + 1), Last: uint64(c + 1)}
				if err := l.Mark(ctx, w, b, []eventlog.Mark{m}); err != nil {
					t.Errorf("Mark: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	ws, err := l.Writers(ctx)
	if err != nil || !slices.Equal(ws, []eventlog.OutboxWriter{{Writer: w, Last: b0 + 19}}) {
		t.Errorf("Writers = %+v, %v; want last %d", ws, err, b0+19)
	}
	var writeTime int64
	if err := s.session.Query("SELECT WRITETIME(last) FROM "+s.q.writers+" WHERE writer = ?", w).Scan(&writeTime); err != nil {
		t.Fatal(err)
	}
	if st := s.outbox.writer(w); st.ts != writeTime || st.last.Load() != b0+19 {
		t.Errorf("write time of last = %d, last written %d; process state says %d, %d", writeTime, b0+19, st.ts, st.last.Load())
	}
}
