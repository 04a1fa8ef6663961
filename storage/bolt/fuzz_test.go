package bolt

// Fuzz targets for what this package reads back from its file: event and
// command values (through the public read paths, so that a value that
// does not decode is seen to come back as ErrCorrupt), outbox keys,
// outbox values and the keys of the event-time index. The value encoding itself is fuzzed in
// storage/internal/binenc. Run one with
//
//	go test -run '^$' -fuzz '^FuzzStoredValues$' -fuzztime 30s ./storage/bolt/
//
// The seed corpora under testdata/fuzz also run as plain tests.

import (
	"bytes"
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
	"go.etcd.io/bbolt"
)

// FuzzStoredValues writes arbitrary bytes as the stored value of an event
// and of a command record, bypassing the encoder, and reads them back
// through ReadPage and Get. Nothing panics; a value that does not decode
// is an error wrapping ErrCorrupt and the read's ErrUnavailable, never an
// event or record; one that decodes is returned as decoded.
func FuzzStoredValues(f *testing.F) {
	ev := model.Event{Timestamp: time.UnixMilli(1_700_000_000_000).UTC(), StreamID: model.DefaultStream,
		ProcessingID: "node-1", ProcessingTime: time.UnixMilli(1_700_000_000_001).UTC(), Name: "created",
		Version: 1, Characteristics: model.Initial, Payload: []byte(`{"n":1}`), CommandID: "c", EventID: "e"}
	rc := commandlog.Record{Ref: model.Ref{Type: "t", ID: "i"}, Command: "create", Outcome: commandlog.Rejected,
		FirstSequence: 1, LastSequence: 2, Code: "rejected", Reason: "r", Message: "m", At: time.UnixMilli(5).UTC()}
	eb, rb := appendEvent(nil, &ev), appendRecord(nil, &rc)
	f.Add(eb)
	f.Add(rb)
	f.Add(eb[:len(eb)-1])
	f.Add(append(bytes.Clone(rb), 0))
	f.Add([]byte{})
	f.Add([]byte{valueFormat + 1})

	db, err := Open(filepath.Join(f.TempDir(), "fuzz.db"), Options{NoSync: true})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = db.Close() })
	ref := model.Ref{Type: "fuzz", ID: "f-1"}
	const commandID = "cmd-1"
	f.Fuzz(func(t *testing.T, v []byte) {
		err := db.bdb.Update(func(tx *bbolt.Tx) error {
			if err := tx.Bucket(bucketEvents).Put(eventKey(aggregatePrefix(ref), 1), v); err != nil {
				return err
			}
			return tx.Bucket(bucketCommands).Put([]byte(commandID), v)
		})
		if err != nil {
			t.Fatal(err)
		}

		want := model.Event{AggregateType: ref.Type, AggregateID: ref.ID, Sequence: 1}
		decErr := decodeEvent(v, &want)
		page, _, err := db.EventLog().ReadPage(t.Context(), ref, 1, 10)
		switch {
		case decErr != nil:
			if !errors.Is(err, ErrCorrupt) || !errors.Is(err, eventlog.ErrUnavailable) || page != nil {
				t.Fatalf("ReadPage of an undecodable value = %v, %v; want ErrCorrupt and ErrUnavailable", page, err)
			}
		case err != nil || len(page) != 1 || !reflect.DeepEqual(page[0], want):
			t.Fatalf("ReadPage = %+v, %v; want %+v", page, err, want)
		}

		wantRec := commandlog.Record{CommandID: commandID}
		decErr = decodeRecord(v, &wantRec)
		got, err := db.CommandLog().Get(t.Context(), commandID)
		switch {
		case decErr != nil:
			if !errors.Is(err, ErrCorrupt) || !errors.Is(err, commandlog.ErrUnavailable) {
				t.Fatalf("Get of an undecodable value = %+v, %v; want ErrCorrupt and ErrUnavailable", got, err)
			}
		case err != nil || got != wantRec:
			t.Fatalf("Get = %+v, %v; want %+v", got, err, wantRec)
		}
	})
}

// FuzzOutboxKey: the escaped encoding of outbox keys is a bijection. A
// mark key that decodes re-encodes to the same bytes, and a key built from
// any writer, bucket, aggregate and first sequence decodes to them.
func FuzzOutboxKey(f *testing.F) {
	key := appendMarkKey(nil, model.Ref{Type: "t\x00", ID: "i\x00\xff"}, 7)
	f.Add(key, "w", int64(3), "t", "i", uint64(1))
	f.Add(key[:len(key)-1], "w\x00", int64(-1), "t\x00\x01", "", uint64(1<<63))
	f.Add([]byte{'a', 0, 2}, "", int64(0), "\x00", "\xff", uint64(0))
	f.Add([]byte{'a', 0, 1, 'b', 0, 1, 1, 2, 3}, "w", int64(1<<62), "a", "b", uint64(9))
	f.Fuzz(func(t *testing.T, k []byte, writer string, bucket int64, typ, id string, first uint64) {
		var m eventlog.Mark
		if err := decodeMarkKey(k, &m); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeMarkKey error %v does not wrap ErrCorrupt", err)
			}
		} else if again := appendMarkKey(nil, m.Ref, m.First); !bytes.Equal(again, k) {
			t.Fatalf("key %x decodes to %q %q %d, which encodes to %x", k, m.Ref.Type, m.Ref.ID, m.First, again)
		}

		prefix := bucketPrefix(writer, bucket)
		full := appendMarkKey(bytes.Clone(prefix), model.Ref{Type: typ, ID: id}, first)
		if b, ok := keyBucket(string(full), string(writerPrefix(writer))); !ok || b != bucket {
			t.Fatalf("keyBucket = %d, %v; want %d", b, ok, bucket)
		}
		var back eventlog.Mark
		if err := decodeMarkKey(full[len(prefix):], &back); err != nil || back.Ref.Type != typ || back.Ref.ID != id || back.First != first {
			t.Fatalf("key of %q %q %d decodes to %q %q %d, %v", typ, id, first, back.Ref.Type, back.Ref.ID, back.First, err)
		}
		if w, rest, err := cutEscaped(full); err != nil || w != writer || len(rest) != len(full)-len(writerPrefix(writer)) {
			t.Fatalf("writer of the key: %q, %v; want %q", w, err, writer)
		}
	})
}

// FuzzOutboxValues: a mark or writer value that decodes re-encodes to the
// same bytes; one that does not is ErrCorrupt.
func FuzzOutboxValues(f *testing.F) {
	f.Add(appendMarkValue(nil, 42))
	f.Add(writerValue(eventlog.OutboxWriter{Published: -1, Last: 1 << 40}))
	f.Add([]byte{valueFormat, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, v []byte) {
		if last, err := decodeMarkValue(v); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeMarkValue error %v does not wrap ErrCorrupt", err)
			}
		} else if again := appendMarkValue(nil, last); !bytes.Equal(again, v) {
			t.Fatalf("mark value %x decodes to %d, which encodes to %x", v, last, again)
		}
		var pos eventlog.OutboxWriter
		if err := decodeWriterValue(v, &pos); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decodeWriterValue error %v does not wrap ErrCorrupt", err)
			}
		} else if again := writerValue(pos); !bytes.Equal(again, v) {
			t.Fatalf("writer value %x decodes to %+v, which encodes to %x", v, pos, again)
		}
	})
}

// FuzzTimeIndexKey: the keys of the events_by_time index round-trip and
// sort as model.TimeKey does. A key built from any aggregate, timestamp,
// stream and sequence parses back to them; two keys of one aggregate
// compare as bytes as their time keys compare; and arbitrary bytes parse
// without panicking, to a key that re-encodes to the same bytes or to an
// error wrapping ErrCorrupt.
func FuzzTimeIndexKey(f *testing.F) {
	prefix := aggregatePrefix(model.Ref{Type: "t", ID: "i"})
	f.Add(timeIndexKey(prefix, 1_700_000_000_000, "default", 1), "t", "i", "a", int64(5), uint64(1), "ab", int64(5), uint64(2))
	f.Add(timeIndexKey(prefix, -1, "a\x00b", 1<<63), "t\x00", "", "b", int64(-1), uint64(0), "ab", int64(-1), uint64(0))
	f.Add(append(bytes.Clone(prefix), 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 2), "x", "y", "", int64(0), uint64(9), "\x00", int64(0), uint64(9))
	f.Add([]byte{}, "", "", "a\x01", int64(1<<62), uint64(3), "a", int64(-1<<62), uint64(3))
	f.Fuzz(func(t *testing.T, k []byte, typ, id, stream string, ms int64, seq uint64, stream2 string, ms2 int64, seq2 uint64) {
		if ms, stream, seq, err := parseTimeIndexKey(prefix, k); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("parseTimeIndexKey error %v does not wrap ErrCorrupt", err)
			}
		} else if again := timeIndexKey(prefix, ms, stream, seq); !bytes.Equal(again, k) {
			t.Fatalf("key %x parses to %d %q %d, which encodes to %x", k, ms, stream, seq, again)
		}

		p := aggregatePrefix(model.Ref{Type: typ, ID: id})
		k1, k2 := timeIndexKey(p, ms, stream, seq), timeIndexKey(p, ms2, stream2, seq2)
		if gotMs, gotStream, gotSeq, err := parseTimeIndexKey(p, k1); err != nil || gotMs != ms || gotStream != stream || gotSeq != seq {
			t.Fatalf("key of %d %q %d parses to %d %q %d, %v", ms, stream, seq, gotMs, gotStream, gotSeq, err)
		}
		tk1 := model.TimeKey{Timestamp: time.UnixMilli(ms), StreamID: stream, Sequence: seq}
		tk2 := model.TimeKey{Timestamp: time.UnixMilli(ms2), StreamID: stream2, Sequence: seq2}
		if got, want := bytes.Compare(k1, k2), tk1.Compare(tk2); got != want {
			t.Fatalf("keys of %v and %v compare %d as bytes, %d as time keys", tk1, tk2, got, want)
		}
	})
}
