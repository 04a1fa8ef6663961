package binenc

// Fuzz targets for the embedded store's encoding: every field of an event
// or a command record round-trips, encodings of decoded values are
// stable, and keys decode back to what built them. Run one with
//
//	go test -run '^$' -fuzz '^FuzzEventValue$' -fuzztime 30s ./storage/internal/binenc/
//
// The seed corpora under testdata/fuzz also run as plain tests.

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/internal/wire"
	"github.com/concursus-go/concursus/model"
)

// FuzzEventValue: a value that decodes re-encodes to a value that decodes
// to the same event, field for field, and whose encoding is stable; a
// value that does not decode is the Decoder's Corrupt error.
func FuzzEventValue(f *testing.F) {
	e := model.Event{Timestamp: time.UnixMilli(-5).UTC(), StreamID: "s", ProcessingID: "p",
		ProcessingTime: time.UnixMilli(1 << 50).UTC(), Name: "n", Version: -1,
		Characteristics: model.Initial | model.Terminal, Payload: []byte(`{"a":[1]}`), CommandID: "c", EventID: "e"}
	v := AppendEvent(nil, &e)
	f.Add(v)
	f.Add(v[:len(v)-2])
	f.Add(append(bytes.Clone(v), 1))
	f.Add(AppendEvent(nil, &model.Event{}))
	f.Add(AppendEvent(nil, &model.Event{Name: "n", Payload: []byte(`{}`), EventID: "e", Timestamp: time.UnixMilli(5)}))
	f.Add([]byte{ValueFormat, 0x80})
	f.Add([]byte{ValueFormat, 0xff})
	f.Fuzz(func(t *testing.T, v []byte) {
		var got model.Event
		if err := dec.DecodeEvent(v, &got); err != nil {
			if !errors.Is(err, errTestCorrupt) {
				t.Fatalf("DecodeEvent error %v does not wrap Corrupt", err)
			}
			return
		}
		enc := AppendEvent(nil, &got)
		if len(enc) > EventSize(&got) {
			t.Fatalf("encoding of %d bytes, EventSize says at most %d", len(enc), EventSize(&got))
		}
		var back model.Event
		if err := dec.DecodeEvent(enc, &back); err != nil {
			t.Fatalf("re-encoding does not decode: %v", err)
		}
		if !reflect.DeepEqual(back, got) {
			t.Fatalf("re-encoding changed the event:\n%+v\n%+v", got, back)
		}
		if again := AppendEvent(nil, &back); !bytes.Equal(again, enc) {
			t.Fatalf("encoding of a decoded event is not stable:\n%x\n%x", enc, again)
		}
	})
}

// FuzzRecordValue: as FuzzEventValue, for command records, including the
// bound RecordSize gives and RecordAtMillis agreeing with DecodeRecord.
func FuzzRecordValue(f *testing.F) {
	r := commandlog.Record{Ref: model.Ref{Type: "t", ID: "i"}, Command: "c", Outcome: commandlog.Rejected,
		FirstSequence: 1 << 63, LastSequence: 3, Code: "x", Reason: "y", Message: "z", At: time.UnixMilli(-1 << 40)}
	v := AppendRecord(nil, &r)
	f.Add(v)
	f.Add(v[:len(v)-1])
	f.Add(AppendRecord(nil, &commandlog.Record{}))
	f.Add(AppendRecord(nil, &commandlog.Record{Ref: model.Ref{Type: "t", ID: "i"}, Command: "c", Outcome: commandlog.Accepted, At: time.UnixMilli(5)}))
	f.Fuzz(func(t *testing.T, v []byte) {
		var got commandlog.Record
		err := dec.DecodeRecord(v, &got)
		ms, atErr := dec.RecordAtMillis(v)
		if (err == nil) != (atErr == nil) || (err == nil && ms != got.At.UnixMilli()) {
			t.Fatalf("RecordAtMillis = %d, %v; DecodeRecord = %v, %v", ms, atErr, got.At, err)
		}
		if err != nil {
			if !errors.Is(err, errTestCorrupt) {
				t.Fatalf("DecodeRecord error %v does not wrap Corrupt", err)
			}
			return
		}
		enc := AppendRecord(nil, &got)
		if len(enc) > RecordSize(&got) {
			t.Fatalf("encoding of %d bytes, RecordSize says at most %d", len(enc), RecordSize(&got))
		}
		var back commandlog.Record
		if err := dec.DecodeRecord(enc, &back); err != nil || back != got {
			t.Fatalf("re-encoding decodes to %+v, %v; want %+v", back, err, got)
		}
		if again := AppendRecord(nil, &back); !bytes.Equal(again, enc) {
			t.Fatalf("encoding of a decoded record is not stable")
		}
	})
}

// FuzzKeys: time-index keys and event keys decode to what built them, and
// a time-index key that parses rebuilds to the same bytes.
func FuzzKeys(f *testing.F) {
	f.Add(TimeKey(5, "c"), "t", "i", uint64(1), int64(5), "c")
	f.Add(TimeKey(-1<<63, "\x00"), "", "", uint64(1<<64-1), int64(1<<63-1), "")
	f.Add([]byte{1, 2, 3}, "a/b", "c", uint64(0), int64(-1), "x")
	f.Fuzz(func(t *testing.T, k []byte, typ, id string, seq uint64, ms int64, commandID string) {
		if at, cid, err := dec.ParseTimeKey(k); err != nil {
			if !errors.Is(err, errTestCorrupt) {
				t.Fatalf("ParseTimeKey error %v does not wrap Corrupt", err)
			}
		} else if again := TimeKey(at, string(cid)); !bytes.Equal(again, k) {
			t.Fatalf("time key %x parses to %d %q, which builds %x", k, at, cid, again)
		}

		if commandID != "" {
			at, cid, err := dec.ParseTimeKey(TimeKey(ms, commandID))
			if err != nil || at != ms || string(cid) != commandID {
				t.Fatalf("time key of %d %q parses to %d %q, %v", ms, commandID, at, cid, err)
			}
		}

		ref := model.Ref{Type: typ, ID: id}
		prefix := AggregatePrefix(ref)
		if len(prefix) > AggregateSize(ref) {
			t.Fatalf("prefix of %d bytes, AggregateSize says at most %d", len(prefix), AggregateSize(ref))
		}
		key := EventKey(prefix, seq)
		if !bytes.Equal(key, AppendEventKey(nil, prefix, seq)) {
			t.Fatal("EventKey and AppendEventKey differ")
		}
		if got, err := dec.KeySequence(prefix, key); err != nil || got != seq {
			t.Fatalf("KeySequence = %d, %v; want %d", got, err, seq)
		}
		// The prefix decodes back to the aggregate: it is the two strings,
		// length-prefixed, and nothing after them.
		r := wire.Reader{B: prefix, Corrupt: errTestCorrupt}
		if gt, gi := r.String("type"), r.String("id"); r.Done() != nil || gt != typ || gi != id {
			t.Fatalf("prefix of %q %q reads as %q %q, %v", typ, id, gt, gi, r.Done())
		}
	})
}
