package bolt

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/model"
)

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
		v := appendEvent(nil, &e)
		if len(v) > eventSize(&e) {
			t.Errorf("encoded %d bytes, eventSize bound %d", len(v), eventSize(&e))
		}
		var got model.Event
		if err := decodeEvent(v, &got); err != nil {
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
			if err := decodeEvent(v[:n], &got); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode of %d of %d bytes: %v, want ErrCorrupt", n, len(v), err)
			}
		}
		if err := decodeEvent(append(v, 0), &got); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decode with a trailing byte: %v, want ErrCorrupt", err)
		}
	}
}

func TestRecordCodecRoundTrip(t *testing.T) {
	r := commandlog.Record{
		Ref: model.Ref{Type: "t", ID: "i"}, Command: "c", Outcome: commandlog.Rejected,
		FirstSequence: math.MaxUint64, LastSequence: 1, Code: "rejected", Reason: "r", Message: "m",
		At: time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	v := appendRecord(nil, &r)
	var got commandlog.Record
	if err := decodeRecord(v, &got); err != nil {
		t.Fatal(err)
	}
	if !got.At.Equal(r.At) {
		t.Errorf("At = %v, want %v", got.At, r.At)
	}
	got.At = r.At
	if got != r {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
	}
	for n := range len(v) {
		if err := decodeRecord(v[:n], &got); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("decode of %d of %d bytes: %v, want ErrCorrupt", n, len(v), err)
		}
	}
}

func TestTimeKeyOrder(t *testing.T) {
	times := []int64{math.MinInt64, -62135596800000, -1, 0, 1, 1_700_000_000_000, math.MaxInt64}
	for i := 1; i < len(times); i++ {
		a, b := timeKey(times[i-1], "z"), timeKey(times[i], "a")
		if bytes.Compare(a, b) >= 0 {
			t.Errorf("time key of %d does not sort before %d", times[i-1], times[i])
		}
		ms, id, err := parseTimeKey(b)
		if err != nil || ms != times[i] || string(id) != "a" {
			t.Errorf("parseTimeKey(timeKey(%d, a)) = %d, %q, %v", times[i], ms, id, err)
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	e := model.Event{Name: "n", Payload: []byte(`{}`), EventID: "e", Timestamp: time.UnixMilli(5)}
	f.Add(appendEvent(nil, &e))
	f.Add([]byte{valueFormat, 0xff})
	f.Fuzz(func(t *testing.T, v []byte) {
		var got model.Event
		if err := decodeEvent(v, &got); err != nil {
			return
		}
		// Whatever decodes re-encodes to a value that decodes the same.
		var back model.Event
		if err := decodeEvent(appendEvent(nil, &got), &back); err != nil {
			t.Fatalf("re-encoding of a decoded value does not decode: %v", err)
		}
		if back.EventID != got.EventID || !bytes.Equal(back.Payload, got.Payload) || !back.Timestamp.Equal(got.Timestamp) {
			t.Fatalf("re-encoding changed the event: %+v became %+v", got, back)
		}
	})
}
