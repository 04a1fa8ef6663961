package binenc

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/model"
)

var errTestCorrupt = errors.New("binenc test: corrupt")

var dec = Decoder{Corrupt: errTestCorrupt}

func TestEventCodecRoundTrip(t *testing.T) {
	for _, e := range []model.Event{
		{},
		{
			Timestamp:       time.Date(1969, 12, 31, 23, 59, 59, 999_000_000, time.UTC),
			StreamID:        "s",
			ProcessingID:    "p",
			ProcessingTime:  time.Date(2262, 1, 1, 0, 0, 0, 0, time.UTC),
			Name:            "created",
			Version:         math.MaxInt,
			Characteristics: model.Initial | model.Terminal,
			Payload:         []byte(`{"a":"\u0000"}`),
			CommandID:       "c",
			EventID:         "e",
		},
		{Version: math.MinInt, Payload: bytes.Repeat([]byte("x"), 1<<16)},
	} {
		v := AppendEvent(nil, &e)
		if len(v) > EventSize(&e) {
			t.Errorf("encoded %d bytes, EventSize bound %d", len(v), EventSize(&e))
		}
		var got model.Event
		if err := dec.DecodeEvent(v, &got); err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !got.Timestamp.Equal(e.Timestamp) || !got.ProcessingTime.Equal(e.ProcessingTime) ||
			got.StreamID != e.StreamID || got.ProcessingID != e.ProcessingID || got.Name != e.Name ||
			got.Version != e.Version || got.Characteristics != e.Characteristics ||
			!bytes.Equal(got.Payload, e.Payload) || got.CommandID != e.CommandID || got.EventID != e.EventID {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, e)
		}
		// Every truncation is an error, never a panic.
		for n := range len(v) {
			if err := dec.DecodeEvent(v[:n], &got); !errors.Is(err, errTestCorrupt) {
				t.Fatalf("decode of %d of %d bytes: %v, want the decoder's Corrupt", n, len(v), err)
			}
		}
		if err := dec.DecodeEvent(append(v, 0), &got); !errors.Is(err, errTestCorrupt) {
			t.Errorf("decode with a trailing byte: %v, want the decoder's Corrupt", err)
		}
	}
}

func TestRecordCodecRoundTrip(t *testing.T) {
	r := commandlog.Record{
		Ref: model.Ref{Type: "t", ID: "i"}, Command: "c", Outcome: commandlog.Rejected,
		FirstSequence: math.MaxUint64, LastSequence: 1, Code: "rejected", Reason: "r", Message: "m",
		At: time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	v := AppendRecord(nil, &r)
	if len(v) > RecordSize(&r) {
		t.Errorf("encoded %d bytes, RecordSize bound %d", len(v), RecordSize(&r))
	}
	var got commandlog.Record
	if err := dec.DecodeRecord(v, &got); err != nil {
		t.Fatal(err)
	}
	if !got.At.Equal(r.At) {
		t.Errorf("At = %v, want %v", got.At, r.At)
	}
	got.At = r.At
	if got != r {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
	}
	if ms, err := dec.RecordAtMillis(v); err != nil || ms != r.At.UnixMilli() {
		t.Errorf("RecordAtMillis = %d, %v; want %d", ms, err, r.At.UnixMilli())
	}
	for n := range len(v) {
		if err := dec.DecodeRecord(v[:n], &got); !errors.Is(err, errTestCorrupt) {
			t.Fatalf("decode of %d of %d bytes: %v, want the decoder's Corrupt", n, len(v), err)
		}
	}
}

func TestTimeKeyOrder(t *testing.T) {
	times := []int64{math.MinInt64, -62135596800000, -1, 0, 1, 1_700_000_000_000, math.MaxInt64}
	for i := 1; i < len(times); i++ {
		a, b := TimeKey(times[i-1], "z"), TimeKey(times[i], "a")
		if bytes.Compare(a, b) >= 0 {
			t.Errorf("time key of %d does not sort before %d", times[i-1], times[i])
		}
		ms, id, err := dec.ParseTimeKey(b)
		if err != nil || ms != times[i] || string(id) != "a" {
			t.Errorf("ParseTimeKey(TimeKey(%d, a)) = %d, %q, %v", times[i], ms, id, err)
		}
	}
	if _, _, err := dec.ParseTimeKey(TimeKey(0, "")); !errors.Is(err, errTestCorrupt) {
		t.Errorf("ParseTimeKey of a key without a command id: %v, want the decoder's Corrupt", err)
	}
}

func TestEventKeys(t *testing.T) {
	ref := model.Ref{Type: "lightbulb", ID: "b-1"}
	prefix := AggregatePrefix(ref)
	if !bytes.Equal(prefix, AppendAggregate(nil, ref)) {
		t.Fatalf("AggregatePrefix %x differs from AppendAggregate %x", prefix, AppendAggregate(nil, ref))
	}
	if len(prefix) > AggregateSize(ref) {
		t.Errorf("prefix is %d bytes, AggregateSize bound %d", len(prefix), AggregateSize(ref))
	}
	k := EventKey(prefix, 0x0102030405060708)
	if !bytes.Equal(k, AppendEventKey([]byte{}, prefix, 0x0102030405060708)) {
		t.Errorf("EventKey and AppendEventKey differ")
	}
	if seq, err := dec.KeySequence(prefix, k); err != nil || seq != 0x0102030405060708 {
		t.Errorf("KeySequence = %#x, %v", seq, err)
	}
	if _, err := dec.KeySequence(prefix, k[:len(k)-1]); !errors.Is(err, errTestCorrupt) {
		t.Errorf("KeySequence of a short key: %v, want the decoder's Corrupt", err)
	}
	// Sequences sort numerically.
	if bytes.Compare(EventKey(prefix, 255), EventKey(prefix, 256)) >= 0 {
		t.Errorf("event key of 255 does not sort before 256")
	}
}
