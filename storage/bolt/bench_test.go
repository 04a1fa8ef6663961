package bolt_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/storage/bolt"
)

// BenchmarkAppendBatch measures durable appends (fsync on every commit) of
// batches of one small event each for distinct aggregates, the shape the
// executor produces. events/s is the figure to compare.
func BenchmarkAppendBatch(b *testing.B) {
	for _, size := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) { benchMarkAppend(b, size, false) })
	}
}

// BenchmarkMarkAppend measures what the outbox adds to a durable append:
// "append" is BenchmarkAppendBatch's loop, "mark+append" calls Mark with
// one mark per append (as the event publisher does) before each Append.
// The marks are buffered and committed in the Append's transaction, so the
// difference is the marks' encoding and their share of the write, not an
// fsync.
func BenchmarkMarkAppend(b *testing.B) {
	for _, size := range []int{1, 16, 256} {
		for _, mark := range []bool{false, true} {
			name := fmt.Sprintf("batch=%d/append", size)
			if mark {
				name = fmt.Sprintf("batch=%d/mark+append", size)
			}
			b.Run(name, func(b *testing.B) { benchMarkAppend(b, size, mark) })
		}
	}
}

func benchMarkAppend(b *testing.B, size int, mark bool) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), bolt.DefaultOptions())
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	l := db.EventLog()
	const aggregates = 4096
	refs := make([]model.Ref, aggregates)
	last := make([]uint64, aggregates)
	for i := range refs {
		refs[i] = model.Ref{Type: "lightbulb", ID: fmt.Sprintf("bulb-%05d", i)}
	}
	batch := make([]eventlog.Append, size)
	events := make([]model.Event, size)
	marks := make([]eventlog.Mark, size)
	next := 0
	bucket := int64(352_000_000)
	ctx := b.Context()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for i := range batch {
			a := next % aggregates
			next++
			events[i] = event(refs[a], last[a]+1)
			batch[i] = eventlog.Append{Ref: refs[a], Expected: last[a], Events: events[i : i+1]}
			marks[i] = eventlog.Mark{Ref: refs[a], First: last[a] + 1, Last: last[a] + 1}
			last[a]++
		}
		if mark {
			if next%(64*size) < size {
				bucket++ // a new bucket now and then, as time passes
			}
			if err := db.Mark(ctx, "node-1", bucket, marks); err != nil {
				b.Fatal(err)
			}
		}
		for i, err := range l.Append(ctx, batch) {
			if err != nil {
				b.Fatalf("entry %d: %v", i, err)
			}
		}
	}
	b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkReadTimePage compares reading one aggregate's history of
// 10,000 events (timestamps shuffled) in pages of 512: in log order with
// ReadPage, and in event time with ReadTimePage, which seeks in the
// events_by_time index and looks each event up by sequence. One op reads
// the whole history.
func BenchmarkReadTimePage(b *testing.B) {
	const n, page = 10_000, 512
	db, err := bolt.Open(filepath.Join(b.TempDir(), "bench.db"), bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	l, ctx := db.EventLog(), b.Context()
	ref := model.Ref{Type: "meter", ID: "m-1"}
	for done := 0; done < n; done += 500 {
		es := make([]model.Event, 500)
		for i := range es {
			seq := uint64(done + i + 1)
			es[i] = event(ref, seq)
			es[i].Timestamp = es[i].Timestamp.Add(time.Duration((seq*7919)%n) * time.Millisecond)
		}
		if errs := l.Append(ctx, []eventlog.Append{{Ref: ref, Expected: uint64(done), Events: es}}); errs[0] != nil {
			b.Fatal(errs[0])
		}
	}
	b.Run("ReadPage", func(b *testing.B) {
		for b.Loop() {
			read := 0
			for from := uint64(1); from != 0; {
				es, next, err := l.ReadPage(ctx, ref, from, page)
				if err != nil {
					b.Fatal(err)
				}
				read, from = read+len(es), next
			}
			if read != n {
				b.Fatalf("read %d events, want %d", read, n)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
	b.Run("ReadTimePage", func(b *testing.B) {
		for b.Loop() {
			read := 0
			var after model.TimeKey
			for more := true; more; {
				es, m, err := l.ReadTimePage(ctx, ref, after, page)
				if err != nil {
					b.Fatal(err)
				}
				if len(es) > 0 {
					after = es[len(es)-1].TimeKey()
				}
				read, more = read+len(es), m
			}
			if read != n {
				b.Fatalf("read %d events, want %d", read, n)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}
