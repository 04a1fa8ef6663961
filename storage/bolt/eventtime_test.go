package bolt

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

// timeTestBase is the time the events of these tests are stamped from.
var timeTestBase = time.Date(2025, 1, 2, 3, 4, 5, 6_000_000, time.UTC)

// shuffled builds events from+1 … from+n of ref with random timestamps
// (within a minute, so ties happen) and streams.
func shuffled(rng *rand.Rand, ref model.Ref, from uint64, n int) []model.Event {
	es := make([]model.Event, n)
	for i := range es {
		seq := from + uint64(i) + 1
		es[i] = model.Event{
			AggregateType: ref.Type, AggregateID: ref.ID, Sequence: seq,
			Timestamp:    timeTestBase.Add(time.Duration(rng.IntN(60)) * time.Second),
			StreamID:     []string{"a", "ab", "b", "a\x00"}[rng.IntN(4)],
			ProcessingID: "node-1", ProcessingTime: timeTestBase,
			Name: "ticked", Payload: []byte(`{}`), CommandID: fmt.Sprintf("c-%s-%d", ref.ID, seq), EventID: fmt.Sprintf("%s#%d", ref, seq),
		}
	}
	return es
}

// writeMixed writes histories of three aggregates through Append and
// WriteDecisions, with conflicts, invalid appends and duplicate commands
// on the way (which must leave no index entries), and returns the
// histories by aggregate.
func writeMixed(t *testing.T, db *DB, rng *rand.Rand) map[model.Ref][]model.Event {
	t.Helper()
	ctx := t.Context()
	refs := []model.Ref{{Type: "t", ID: "a"}, {Type: "t", ID: "ab"}, {Type: "ta", ID: "b"}}
	hist := make(map[model.Ref][]model.Event)
	for round := range 6 {
		for i, ref := range refs {
			seq := uint64(len(hist[ref]))
			es := shuffled(rng, ref, seq, 1+rng.IntN(5))
			if (round+i)%2 == 0 {
				stale := shuffled(rng, ref, seq+1, 2)
				errs := db.EventLog().Append(ctx, []eventlog.Append{
					{Ref: ref, Expected: seq, Events: es},
					{Ref: model.Ref{Type: "t", ID: "bad"}, Expected: 0, Events: stale}, // invalid: wrong aggregate
				})
				if errs[0] != nil || !errors.Is(errs[1], eventlog.ErrInvalidAppend) {
					t.Fatalf("Append: %v", errs)
				}
			} else {
				cmd := fmt.Sprintf("cmd-%d-%d", round, i)
				d := commandlog.Decision{
					Append: &eventlog.Append{Ref: ref, Expected: seq, Events: es},
					Record: commandlog.Record{CommandID: cmd, Ref: ref, Command: "tick", Outcome: commandlog.Accepted,
						FirstSequence: seq + 1, LastSequence: seq + uint64(len(es)), At: timeTestBase},
				}
				dup := d
				dup.Append = &eventlog.Append{Ref: ref, Expected: seq + uint64(len(es)), Events: shuffled(rng, ref, seq+uint64(len(es)), 1)}
				if errs := db.WriteDecisions(ctx, []commandlog.Decision{d}); errs[0] != nil {
					t.Fatalf("WriteDecisions: %v", errs)
				}
				// A command decided already: nothing of it is written.
				if errs := db.WriteDecisions(ctx, []commandlog.Decision{dup}); !errors.Is(errs[0], commandlog.ErrDecided) {
					t.Fatalf("WriteDecisions of a decided command: %v, want ErrDecided", errs)
				}
			}
			// A stale writer: refused, nothing indexed.
			if errs := db.EventLog().Append(ctx, []eventlog.Append{{Ref: ref, Expected: seq, Events: shuffled(rng, ref, seq, 1)}}); !errors.Is(errs[0], eventlog.ErrConflict) {
				t.Fatalf("stale Append: %v, want a conflict", errs)
			}
			hist[ref] = append(hist[ref], es...)
		}
	}
	return hist
}

// checkInTime checks that every history reads back in event time, in
// pages of 1, 4 and the default size.
func checkInTime(t *testing.T, l *EventLog, hist map[model.Ref][]model.Event) {
	t.Helper()
	for ref, es := range hist {
		want := slices.Clone(es)
		slices.SortFunc(want, func(a, b model.Event) int { return a.TimeKey().Compare(b.TimeKey()) })
		for _, size := range []int{1, 4, 0} {
			var got []model.Event
			for e, err := range eventlog.EventsInTime(t.Context(), l, ref, model.TimeKey{}, size) {
				if err != nil {
					t.Fatalf("EventsInTime(%s, page %d): %v", ref, size, err)
				}
				got = append(got, e)
			}
			if !slices.EqualFunc(got, want, func(a, b model.Event) bool { return a.TimeKey() == b.TimeKey() && a.EventID == b.EventID }) {
				t.Fatalf("EventsInTime(%s, page %d) = %d events, want %d in event-time order", ref, size, len(got), len(want))
			}
		}
	}
}

// checkTimeIndex checks that the events_by_time index holds exactly one
// entry per event of the log, at the event's key.
func checkTimeIndex(t *testing.T, db *DB) {
	t.Helper()
	err := db.bdb.View(func(tx *bbolt.Tx) error {
		var want [][]byte
		err := tx.Bucket(bucketEvents).ForEach(func(k, v []byte) error {
			prefix := k[:len(k)-8]
			var e model.Event
			if err := decodeEvent(v, &e); err != nil {
				return err
			}
			seq, err := keySequence(prefix, k)
			if err != nil {
				return err
			}
			want = append(want, timeIndexKey(prefix, e.Timestamp.UnixMilli(), e.StreamID, seq))
			return nil
		})
		if err != nil {
			return err
		}
		slices.SortFunc(want, bytes.Compare)
		var got [][]byte
		err = tx.Bucket(bucketEventsByTime).ForEach(func(k, v []byte) error {
			if len(v) != 0 {
				return fmt.Errorf("index entry %x has value %x", k, v)
			}
			got = append(got, bytes.Clone(k))
			return nil
		})
		if err != nil {
			return err
		}
		if !slices.EqualFunc(got, want, bytes.Equal) {
			return fmt.Errorf("index has %d entries, the log %d events: they differ", len(got), len(want))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("event-time index: %v", err)
	}
}

// countTimeEntries counts the events_by_time entries.
func countTimeEntries(t *testing.T, db *DB) int {
	t.Helper()
	n := 0
	if err := db.bdb.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketEventsByTime).ForEach(func(k, v []byte) error { n++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// setFormat rewrites the file's format byte.
func setFormat(t *testing.T, db *DB, v byte) {
	t.Helper()
	if err := db.bdb.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyFormat, []byte{v}) }); err != nil {
		t.Fatal(err)
	}
}

// format reads the file's format byte.
func format(t *testing.T, db *DB) byte {
	t.Helper()
	var v []byte
	if err := db.bdb.View(func(tx *bbolt.Tx) error { v = bytes.Clone(tx.Bucket(bucketMeta).Get(keyFormat)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(v) != 1 {
		t.Fatalf("format %x", v)
	}
	return v[0]
}

func seeded(t *testing.T) *rand.Rand {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// TestTimeIndexWrittenWithEvents: the index is written lazily — nothing
// for aggregates never read in event time; a read in event time indexes
// the aggregate, and from then on Append and WriteDecisions write the
// index entries of exactly the events they write.
func TestTimeIndexWrittenWithEvents(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "data.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rng := seeded(t)
	hist := writeMixed(t, db, rng)
	if n := countTimeEntries(t, db); n != 0 {
		t.Errorf("%d index entries before any read in event time, want none (the index is lazy)", n)
	}
	checkInTime(t, db.EventLog(), hist) // indexes every aggregate of hist
	checkTimeIndex(t, db)
	// Appends to indexed aggregates keep their entries, with no read.
	for ref, es := range hist {
		next := model.Event{AggregateType: ref.Type, AggregateID: ref.ID, Sequence: uint64(len(es) + 1),
			Timestamp: es[0].Timestamp.Add(-time.Hour), StreamID: "late", Name: "later", EventID: "later-" + ref.ID, Payload: []byte(`{}`)}
		if errs := db.EventLog().Append(t.Context(), []eventlog.Append{{Ref: ref, Expected: uint64(len(es)), Events: []model.Event{next}}}); errs[0] != nil {
			t.Fatal(errs[0])
		}
		hist[ref] = append(es, next)
	}
	checkTimeIndex(t, db)
	checkInTime(t, db.EventLog(), hist)
	if f := format(t, db); f != formatVersion {
		t.Errorf("new file has format %d, want %d", f, formatVersion)
	}
}

// TestTimeIndexUpgrade: a file written before the index existed (format 1,
// no events_by_time bucket) gets its index built by Open, and reads in
// event time are right at once.
func TestTimeIndexUpgrade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	hist := writeMixed(t, db, seeded(t))
	// Make it the file an older build wrote.
	if err := db.bdb.Update(func(tx *bbolt.Tx) error { return tx.DeleteBucket(bucketEventsByTime) }); err != nil {
		t.Fatal(err)
	}
	setFormat(t, db, formatNoTimeIndex)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatalf("Open of a format-1 file: %v", err)
	}
	defer db.Close()
	if f := format(t, db); f != formatVersion {
		t.Errorf("format after the upgrade = %d, want %d", f, formatVersion)
	}
	checkTimeIndex(t, db)
	checkInTime(t, db.EventLog(), hist)
	// Appends after the upgrade are indexed as usual.
	ref := model.Ref{Type: "t", ID: "a"}
	more := shuffled(seeded(t), ref, uint64(len(hist[ref])), 3)
	if errs := db.EventLog().Append(t.Context(), []eventlog.Append{{Ref: ref, Expected: uint64(len(hist[ref])), Events: more}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	hist[ref] = append(hist[ref], more...)
	checkTimeIndex(t, db)
	checkInTime(t, db.EventLog(), hist)
}

// TestTimeIndexBuildResumes: a build cut short (format still 1, part of
// the index written) is done again and completes; small transactions
// make it cross several.
func TestTimeIndexBuildResumes(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "data.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	hist := writeMixed(t, db, seeded(t))
	// Drop every other index entry, as if a build had stopped part-way.
	err = db.bdb.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(bucketEventsByTime)
		var drop [][]byte
		i := 0
		if err := b.ForEach(func(k, _ []byte) error {
			if i++; i%2 == 0 {
				drop = append(drop, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range drop {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	setFormat(t, db, formatNoTimeIndex)
	if err := buildTimeIndex(db.bdb, 3); err != nil {
		t.Fatalf("buildTimeIndex: %v", err)
	}
	if f := format(t, db); f != formatVersion {
		t.Errorf("format after the build = %d, want %d", f, formatVersion)
	}
	checkTimeIndex(t, db)
	checkInTime(t, db.EventLog(), hist)
}

// TestFormatRefused: a file of a format this build does not know is
// refused, not upgraded.
func TestFormatRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	setFormat(t, db, formatVersion+1)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err := Open(path, Options{NoSync: true}); !errors.Is(err, ErrFormat) {
		if err == nil {
			_ = db.Close()
		}
		t.Fatalf("Open of a format-%d file: %v, want ErrFormat", formatVersion+1, err)
	}
}

// TestReadTimePageCorruptIndex: an index entry that names no event, or
// names one stamped otherwise, is reported as ErrCorrupt, not read past.
func TestReadTimePageCorruptIndex(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "data.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ref := model.Ref{Type: "t", ID: "a"}
	es := shuffled(seeded(t), ref, 0, 2)
	if errs := db.EventLog().Append(t.Context(), []eventlog.Append{{Ref: ref, Events: es}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	prefix := aggregatePrefix(ref)
	for _, k := range [][]byte{
		timeIndexKey(prefix, es[0].Timestamp.UnixMilli(), es[0].StreamID, 7),     // no event 7
		timeIndexKey(prefix, es[0].Timestamp.UnixMilli()-1, es[0].StreamID, 1),   // event 1 at another time
		timeIndexKey(prefix, es[0].Timestamp.UnixMilli(), es[0].StreamID+"x", 2), // event 2 in another stream
		append(bytes.Clone(prefix), 1, 2, 3),                                     // not a key
	} {
		if err := db.bdb.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketEventsByTime).Put(k, []byte{}) }); err != nil {
			t.Fatal(err)
		}
		_, _, err := db.EventLog().ReadTimePage(t.Context(), ref, model.TimeKey{}, 10)
		if !errors.Is(err, ErrCorrupt) || !errors.Is(err, eventlog.ErrUnavailable) {
			t.Errorf("ReadTimePage with index entry %x: %v, want ErrCorrupt and ErrUnavailable", k, err)
		}
		if err := db.bdb.Update(func(tx *bbolt.Tx) error { return tx.Bucket(bucketEventsByTime).Delete(k) }); err != nil {
			t.Fatal(err)
		}
	}
}
