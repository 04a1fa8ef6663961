package idempotency

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/internal/wire"
	"github.com/concursus-go/concursus/model"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func rec(id string) commandlog.Record {
	return commandlog.Record{
		CommandID: id, Ref: model.Ref{Type: "lightbulb", ID: "bulb-" + id}, Command: "switchOn",
		Outcome: commandlog.Accepted, FirstSequence: 3, LastSequence: 4, At: t0,
	}
}

// entry builds a raft log entry for a batch proposed at the given time.
func entry(at time.Time, window time.Duration, buckets int, recs ...commandlog.Record) *raft.Log {
	var body []byte
	for i := range recs {
		body = appendRecord(body, &recs[i])
	}
	data := appendBatchHeader(nil, batchHeader{at: at.UnixNano(), window: int64(window), buckets: buckets, count: len(recs)})
	return &raft.Log{Type: raft.LogCommand, Data: append(data, body...)}
}

func mustApply(t testing.TB, f *Filter, l *raft.Log) {
	t.Helper()
	if err, _ := f.Apply(l).(error); err != nil {
		t.Fatal(err)
	}
}

func held(f *Filter, ids ...string) []string {
	var out []string
	for _, id := range ids {
		if _, ok := f.Lookup(id); ok {
			out = append(out, id)
		}
	}
	return out
}

func TestRecordCodecRoundTrip(t *testing.T) {
	cases := []commandlog.Record{
		rec("a"),
		{CommandID: "r", Ref: model.Ref{Type: "t", ID: "i"}, Command: "c", Outcome: commandlog.Rejected,
			Code: "rejected", Reason: "not_screwed_in", Message: "screw it in first", At: t0.Add(time.Nanosecond)},
		{CommandID: "z"}, // zero time, empty outcome
		{CommandID: "o", Outcome: "weird", FirstSequence: 1 << 60, LastSequence: 1<<60 - 1},
	}
	for _, want := range cases {
		b := appendRecord(nil, &want)
		got, err := decodeRecord(b)
		if err != nil {
			t.Fatalf("%+v: %v", want, err)
		}
		if !got.At.Equal(want.At) {
			t.Fatalf("At: got %v, want %v", got.At, want.At)
		}
		got.At, want.At = time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got %+v, want %+v", got, want)
		}
		r := newReader(b, 0)
		if id := r.skipRecord(); r.Err() != nil || string(id) != want.CommandID || r.Off != len(b) {
			t.Fatalf("skipRecord: id %q off %d/%d err %v", id, r.Off, len(b), r.Err())
		}
	}
	uuidRec := commandlog.Record{CommandID: "6f1c1e2a-8f0e-4f7a-9a7e-0b9b1d7c9a11", Ref: model.Ref{Type: "lightbulb", ID: "254ddc61-5e3c-4b5a-9f3c-7c1f0c2b8e42"},
		Command: "switchOn", Outcome: commandlog.Accepted, FirstSequence: 7, LastSequence: 7, At: t0}
	if n := len(appendRecord(nil, &uuidRec)); n != 105 {
		t.Errorf("a typical accepted record encodes in %d bytes; the docs say 105", n)
	}
}

// TestBucketExpiry: entries vanish a whole bucket at a time, driven by the
// time carried in the entries, never by the replica's clock.
func TestBucketExpiry(t *testing.T) {
	const window = 10 * time.Second // 10 buckets of 1s
	replicas := []*Filter{NewFilter(), NewFilter()}
	apply := func(at time.Duration, ids ...string) {
		var recs []commandlog.Record
		for _, id := range ids {
			recs = append(recs, rec(id))
		}
		for _, f := range replicas {
			mustApply(t, f, entry(t0.Add(at), window, 10, recs...))
		}
	}
	all := []string{"a", "b", "c", "d"}
	check := func(step string, want ...string) {
		t.Helper()
		for i, f := range replicas {
			if got := held(f, all...); !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: replica %d holds %v, want %v", step, i, got, want)
			}
		}
	}
	apply(0, "a")                     // bucket [0s,1s)
	apply(900*time.Millisecond, "b")  // same bucket
	apply(1200*time.Millisecond, "c") // bucket [1s,2s)
	check("start", "a", "b", "c")
	apply(10999 * time.Millisecond) // a tick: now 10.999s, [0,1) ends exactly a window before 11s
	check("just inside the window", "a", "b", "c")
	apply(11*time.Second, "d") // [0,1) ends a window ago: a and b go together
	check("first bucket expired", "c", "d")
	apply(5 * time.Second) // a batch stamped in the past (a lagging clock) does not move time back
	check("time does not go back", "c", "d")
	if s := replicas[0].Stats(); !s.Now.Equal(t0.Add(11 * time.Second)) {
		t.Fatalf("now went back to %v", s.Now)
	}
	apply(12 * time.Second)
	check("second bucket expired", "d")
	apply(time.Hour)
	check("all expired")
	if s := replicas[0].Stats(); s.Entries != 0 || s.Buckets != 0 || s.Bytes != 0 {
		t.Fatalf("stats after expiry: %+v", s)
	}
	// Both replicas produce identical snapshots.
	if a, b := snapshotBytes(t, replicas[0]), snapshotBytes(t, replicas[1]); !bytes.Equal(a, b) {
		t.Fatal("replicas differ")
	}
}

// A batch that moves the filter's time further than idle ticks do while
// it holds records is a jump: counted, and reported before its expiry is
// seen. Window 10 min in 10 buckets: the limit is 2 min + 10 s.
func TestTimeJumps(t *testing.T) {
	const window = 10 * time.Minute
	f := NewFilter()
	var jumps []string
	f.onJump = func(from, to time.Time) {
		// Called before the batch's expiry is visible: the record is held.
		jumps = append(jumps, fmt.Sprintf("%v->%v held %v", from.Sub(t0), to.Sub(t0), f.entries))
	}
	apply := func(at time.Duration, ids ...string) {
		var recs []commandlog.Record
		for _, id := range ids {
			recs = append(recs, rec(id))
		}
		mustApply(t, f, entry(t0.Add(at), window, 10, recs...))
	}
	apply(0, "a")                            // the first batch: no time to jump from
	apply(time.Minute)                       // an idle tick
	apply(3*time.Minute + 10*time.Second)    // exactly the limit: not a jump
	apply(5*time.Minute+21*time.Second, "b") // 2 min 11 s: a jump
	apply(30 * time.Minute)                  // another, which expires everything
	apply(3 * time.Hour)                     // nothing held: nothing to expire early
	want := []string{"3m10s->5m21s held 1", "5m21s->30m0s held 2"}
	if !slices.Equal(jumps, want) {
		t.Fatalf("jumps %q, want %q", jumps, want)
	}
	if s := f.Stats(); s.TimeJumps != 2 || s.Entries != 0 {
		t.Fatalf("stats %+v: want 2 jumps, nothing held", s)
	}
}

// TestEntryLifetime checks the bucket math: an entry lives at least one
// window and at most a window plus a bucket width.
func TestEntryLifetime(t *testing.T) {
	const window, buckets = time.Minute, 10
	width := window / buckets
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	for i := range 200 {
		f := NewFilter()
		at := time.Duration(rng.Int64N(int64(time.Hour)))
		mustApply(t, f, entry(t0.Add(at), window, buckets, rec("x")))
		lo, hi := at, at+2*window // binary search the expiry instant
		for hi-lo > time.Millisecond {
			mid := lo + (hi-lo)/2
			g := NewFilter()
			mustApply(t, g, entry(t0.Add(at), window, buckets, rec("x")))
			mustApply(t, g, entry(t0.Add(mid), window, buckets))
			if _, ok := g.Lookup("x"); ok {
				lo = mid
			} else {
				hi = mid
			}
		}
		if life := hi - at; life < window || life > window+width+time.Millisecond {
			t.Fatalf("case %d: recorded at %v, expired after %v; want [%v, %v]", i, at, life, window, window+width)
		}
	}
}

func TestFirstRecordWins(t *testing.T) {
	f := NewFilter()
	first := rec("x")
	second := rec("x")
	second.Outcome, second.Code = commandlog.Rejected, "rejected"
	mustApply(t, f, entry(t0, time.Minute, 10, first))
	mustApply(t, f, entry(t0.Add(30*time.Second), time.Minute, 10, second, second))
	got, ok := f.Lookup("x")
	if !ok || got.Outcome != commandlog.Accepted {
		t.Fatalf("got %+v %v, want the first (accepted) record", got, ok)
	}
	if s := f.Stats(); s.Entries != 1 {
		t.Fatalf("%d entries, want 1", s.Entries)
	}
}

// TestHashCollisions narrows the hash to one bit so that ids collide.
func TestHashCollisions(t *testing.T) {
	f := NewFilter()
	f.mask = 1
	var ids []string
	for i := range 50 {
		ids = append(ids, fmt.Sprintf("id-%d", i))
	}
	for i, id := range ids {
		mustApply(t, f, entry(t0.Add(time.Duration(i)*time.Second), time.Minute, 6, rec(id)))
	}
	mustApply(t, f, entry(t0.Add(time.Minute), time.Minute, 6, rec("id-3"))) // a duplicate
	if got := held(f, ids...); len(got) != len(ids) {
		t.Fatalf("holds %d of %d", len(got), len(ids))
	}
	for _, id := range ids {
		if r, _ := f.Lookup(id); r.CommandID != id {
			t.Fatalf("lookup %s returned %s", id, r.CommandID)
		}
	}
	if _, ok := f.Lookup("id-x"); ok {
		t.Fatal("found an id never recorded")
	}
	g := NewFilter()
	g.mask = 1
	restore(t, g, snapshotBytes(t, f))
	if got := held(g, ids...); len(got) != len(ids) {
		t.Fatalf("restored filter holds %d of %d", len(got), len(ids))
	}
}

func TestCorruptEntriesChangeNothing(t *testing.T) {
	f := NewFilter()
	mustApply(t, f, entry(t0, time.Minute, 10, rec("a")))
	before := snapshotBytes(t, f)
	good := entry(t0.Add(time.Hour), time.Minute, 10, rec("b"), rec("c")).Data
	bad := [][]byte{
		nil, {9}, good[:len(good)-1], append(append([]byte{}, good...), 0),
		entry(t0.Add(time.Hour), 0, 10, rec("b")).Data,
		entry(t0.Add(time.Hour), time.Minute, 0, rec("b")).Data,
		{kindGroup}, {kindGroup, 5, 'a'},
	}
	for i, data := range bad {
		err, _ := f.Apply(&raft.Log{Type: raft.LogCommand, Data: data}).(error)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("case %d: got %v, want ErrCorrupt", i, err)
		}
	}
	if !bytes.Equal(before, snapshotBytes(t, f)) {
		t.Fatal("a corrupt entry changed the filter")
	}
	if f.Apply(&raft.Log{Type: raft.LogConfiguration, Data: []byte{1, 2}}) != nil {
		t.Fatal("non-command entries are ignored")
	}
}

func snapshotBytes(t testing.TB, f *Filter) []byte {
	t.Helper()
	s, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := s.(*filterSnapshot).WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	s.Release()
	return buf.Bytes()
}

func restore(t testing.TB, f *Filter, b []byte) {
	t.Helper()
	if err := f.Restore(io.NopCloser(bytes.NewReader(b))); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotRestore round-trips a filter with several buckets, a group id
// and rejections, while Apply keeps running on the source (as raft does:
// Persist runs concurrently with Apply).
func TestSnapshotRestore(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	f := NewFilter()
	mustApply(t, f, &raft.Log{Type: raft.LogCommand, Data: wire.AppendString([]byte{kindGroup}, "g1")})
	var want []commandlog.Record
	at := t0
	for i := range 3000 {
		r := rec(fmt.Sprintf("cmd-%d-%x", i, rng.Uint64()))
		if rng.IntN(4) == 0 {
			r.Outcome, r.Code, r.Reason, r.Message = commandlog.Rejected, "rejected", "nope", "not now"
		}
		at = at.Add(time.Duration(rng.IntN(100)) * time.Millisecond)
		mustApply(t, f, entry(at, time.Minute, 10, r))
		want = append(want, r)
	}
	type found struct {
		rec commandlog.Record
		ok  bool
	}
	before := make(map[string]found, len(want))
	for _, w := range want {
		r, ok := f.Lookup(w.CommandID)
		before[w.CommandID] = found{r, ok}
	}
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Keep applying while the snapshot is written.
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 2000 {
			mustApply(t, f, entry(at.Add(time.Duration(i)*time.Millisecond), time.Minute, 10, rec(fmt.Sprintf("later-%d", i))))
			f.Lookup("cmd-1")
		}
	})
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	g := NewFilter()
	var notified string
	g.onGroup = func(id string) { notified = id }
	restore(t, g, sink.Bytes())
	if notified != "g1" || g.GroupID() != "g1" {
		t.Fatalf("group id %q, notified %q", g.GroupID(), notified)
	}
	gs := g.Stats()
	if gs.Buckets < 5 || gs.Now.IsZero() || gs.Window != time.Minute {
		t.Fatalf("restored stats %+v", gs)
	}
	held := 0
	for _, w := range want {
		fr := before[w.CommandID]
		gr, gok := g.Lookup(w.CommandID)
		if fr.ok != gok || !reflect.DeepEqual(fr.rec, gr) {
			t.Fatalf("%s: source %v %+v, restored %v %+v", w.CommandID, fr.ok, fr.rec, gok, gr)
		}
		if gok {
			held++
		}
	}
	if held != gs.Entries || held < 1000 {
		t.Fatalf("restored %d entries, %d of them found", gs.Entries, held)
	}
	if _, ok := g.Lookup("later-1999"); ok {
		t.Fatal("the snapshot holds an entry applied after it was taken")
	}
	t.Logf("restored %d entries in %d buckets, snapshot %d bytes", gs.Entries, gs.Buckets, sink.Len())
	// The restored filter keeps working: appends go to new chunks, not
	// into the snapshot buffer the restored buckets alias.
	mustApply(t, g, entry(at.Add(time.Second), time.Minute, 10, rec("after-restore")))
	if _, ok := g.Lookup("after-restore"); !ok {
		t.Fatal("restored filter did not take a new record")
	}
	for _, w := range want[len(want)-100:] {
		if _, ok := g.Lookup(w.CommandID); !ok {
			t.Fatalf("lost %s after an append", w.CommandID)
		}
	}
	// Damaged snapshots are refused and change nothing.
	b := sink.Bytes()
	for _, bad := range [][]byte{nil, b[:10], append(append([]byte{}, b[:len(b)-1]...), b[len(b)-1]^1)} {
		if err := g.Restore(io.NopCloser(bytes.NewReader(bad))); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("got %v, want ErrCorrupt", err)
		}
	}
	if _, ok := g.Lookup("after-restore"); !ok {
		t.Fatal("a refused snapshot changed the filter")
	}
}

type memSink struct {
	bytes.Buffer
	cancelled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Cancel() error { s.cancelled = true; return nil }
func (s *memSink) Close() error  { return nil }

// TestSnapshotSizeVersusJSON measures the snapshot format against JSON
// lines of the same records.
func TestSnapshotSizeVersusJSON(t *testing.T) {
	f := NewFilter()
	var jsonBytes int
	const n = 10000
	for i := range n {
		r := uuidRecord(i)
		mustApply(t, f, entry(t0, time.Minute, 10, r))
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		jsonBytes += len(b) + 1
	}
	snap := len(snapshotBytes(t, f))
	t.Logf("snapshot %.1f bytes/entry; JSON lines %.1f bytes/entry", float64(snap)/n, float64(jsonBytes)/n)
	if snap >= jsonBytes/2 {
		t.Errorf("snapshot %d bytes, JSON %d: expected the binary form to be under half", snap, jsonBytes)
	}
}

func uuidRecord(i int) commandlog.Record {
	return commandlog.Record{
		CommandID: fmt.Sprintf("%08x-8f0e-4f7a-9a7e-0b9b1d7c9a11", i),
		Ref:       model.Ref{Type: "lightbulb", ID: fmt.Sprintf("%08x-5e3c-4b5a-9f3c-7c1f0c2b8e42", i)},
		Command:   "switchOn", Outcome: commandlog.Accepted, FirstSequence: 7, LastSequence: 7, At: t0,
	}
}

// TestMemoryOneMillion measures the heap held by one million entries (UUID
// command and aggregate ids), the figure quoted in doc.go.
func TestMemoryOneMillion(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("slow: a million entries; run without -short and -race")
	}
	const n = 1_000_000
	perEntry, heap := measureMillion(t, n)
	t.Logf("%d entries: heap %.1f MiB, %.1f bytes/entry", n, float64(heap)/(1<<20), perEntry)
	if perEntry > 200 {
		t.Errorf("%.1f bytes per entry; doc.go promises well under 200", perEntry)
	}
}

func measureMillion(t testing.TB, n int) (perEntry float64, heap uint64) {
	batches := make([]*raft.Log, 0, n/1000)
	for i := 0; i < n; i += 1000 {
		recs := make([]commandlog.Record, 0, 1000)
		for j := i; j < i+1000; j++ {
			recs = append(recs, uuidRecord(j))
		}
		// Spread over one window (1667 records/s for 10 minutes), as a
		// steady load fills all the buckets.
		batches = append(batches, entry(t0.Add(time.Duration(i)*(10*time.Minute/time.Duration(n))), 10*time.Minute, 10, recs...))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f := NewFilter()
	for _, b := range batches {
		mustApply(t, f, b)
	}
	runtime.GC()
	runtime.ReadMemStats(&after) // the batches are alive in both readings
	runtime.KeepAlive(batches)
	if s := f.Stats(); s.Entries != n {
		t.Fatalf("%d entries, want %d", s.Entries, n)
	}
	heap = after.HeapAlloc - before.HeapAlloc
	runtime.KeepAlive(f)
	return float64(heap) / float64(n), heap
}

// BenchmarkFilterMemory reports the heap per entry for a million entries.
func BenchmarkFilterMemory(b *testing.B) {
	for b.Loop() {
		perEntry, heap := measureMillion(b, 1_000_000)
		b.ReportMetric(perEntry, "heap-bytes/entry")
		b.ReportMetric(float64(heap)/(1<<20), "MiB/1M-entries")
	}
}

// BenchmarkLookup measures Lookup on a filter of 100k entries: hits and
// misses (a miss probes every bucket), from parallel goroutines.
func BenchmarkLookup(b *testing.B) {
	f := NewFilter()
	const n = 100_000
	for i := 0; i < n; i += 1000 {
		recs := make([]commandlog.Record, 0, 1000)
		for j := i; j < i+1000; j++ {
			recs = append(recs, uuidRecord(j))
		}
		mustApply(b, f, entry(t0.Add(time.Duration(i)*6*time.Millisecond), 10*time.Minute, 10, recs...))
	}
	if s := f.Stats(); s.Buckets < 10 {
		b.Fatalf("only %d buckets", s.Buckets)
	}
	for _, kind := range []string{"hit", "miss"} {
		b.Run(kind, func(b *testing.B) {
			ids := make([]string, 1024)
			for i := range ids {
				r := uuidRecord(i * 97 % n)
				if kind == "miss" {
					r.CommandID += "-unknown"
				}
				ids[i] = r.CommandID
			}
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					_, ok := f.Lookup(ids[i%len(ids)])
					if ok != (kind == "hit") {
						b.Errorf("lookup %s: %v", ids[i%len(ids)], ok)
						return
					}
					i++
				}
			})
		})
	}
}

// TestRestoreSplitsLargeBuckets: a restored bucket is cut into chunks that
// 32-bit offsets can address.
func TestRestoreSplitsLargeBuckets(t *testing.T) {
	defer func(old int) { maxChunkSpan = old }(maxChunkSpan)
	maxChunkSpan = 1000
	f := NewFilter()
	var ids []string
	for i := range 200 {
		r := uuidRecord(i)
		ids = append(ids, r.CommandID)
		mustApply(t, f, entry(t0, time.Minute, 10, r))
	}
	g := NewFilter()
	restore(t, g, snapshotBytes(t, f))
	if got := held(g, ids...); len(got) != len(ids) {
		t.Fatalf("holds %d of %d", len(got), len(ids))
	}
	if n := len(g.buckets[0].chunks); n < 20 {
		t.Fatalf("%d chunks for ~21000 bytes", n)
	}
	mustApply(t, g, entry(t0, time.Minute, 10, rec("more")))
	if got := held(g, append(ids, "more")...); len(got) != len(ids)+1 {
		t.Fatalf("holds %d of %d after an append", len(got), len(ids)+1)
	}
	if a, b := snapshotBytes(t, f), snapshotBytes(t, g); len(a) != len(b)-len(appendRecord(nil, &[]commandlog.Record{rec("more")}[0])) {
		t.Fatalf("snapshot sizes %d and %d", len(a), len(b))
	}
}

// TestSnapshotStoreKeepsFilterByReference: the group's snapshot store
// keeps a filter snapshot without its bytes and encodes it on Open, to
// the same bytes as WriteTo; byte snapshots (from a leader) are kept as
// they are; a cancelled snapshot does not replace the latest.
func TestSnapshotStoreKeepsFilterByReference(t *testing.T) {
	f := NewFilter()
	for i := range 500 {
		mustApply(t, f, entry(t0.Add(time.Duration(i)*time.Second), time.Minute, 10, uuidRecord(i)))
	}
	want := snapshotBytes(t, f)
	store := &snapshotStore{}
	if l, _ := store.List(); len(l) != 0 {
		t.Fatal("new store lists a snapshot")
	}
	sink, err := store.Create(1, 10, 2, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := f.Snapshot()
	if err := snap.Persist(sink); err != nil {
		t.Fatal(err)
	}
	if k := sink.(*snapshotSink); k.buf.Len() != 0 || k.snap == nil {
		t.Fatal("the sink copied the bytes")
	}
	// The filter moves on; the snapshot does not.
	mustApply(t, f, entry(t0.Add(time.Hour), time.Minute, 10, rec("later")))
	list, _ := store.List()
	if len(list) != 1 || list[0].Index != 10 || list[0].Size != int64(len(want)) {
		t.Fatalf("list %+v, want size %d", list, len(want))
	}
	meta, rc, err := store.Open(list[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	if !bytes.Equal(got, want) || meta.Size != int64(len(got)) {
		t.Fatalf("opened %d bytes, want %d", len(got), len(want))
	}
	g := NewFilter()
	restore(t, g, got)
	if _, ok := g.Lookup(uuidRecord(499).CommandID); !ok {
		t.Fatal("restored filter lacks the last record")
	}
	// A snapshot received as bytes.
	sink2, _ := store.Create(1, 20, 3, raft.Configuration{}, 1, nil)
	if _, err := sink2.Write(got); err != nil {
		t.Fatal(err)
	}
	_ = sink2.Close()
	sink3, _ := store.Create(1, 30, 3, raft.Configuration{}, 1, nil)
	_ = sink3.Cancel()
	list, _ = store.List()
	if len(list) != 1 || list[0].ID != sink2.ID() {
		t.Fatalf("latest %+v, want the byte snapshot", list)
	}
	_, rc, err = store.Open(sink2.ID())
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(rc); !bytes.Equal(b, got) {
		t.Fatal("byte snapshot changed")
	}
	if _, _, err := store.Open(sink.ID()); err == nil {
		t.Fatal("opened a replaced snapshot")
	}
}
