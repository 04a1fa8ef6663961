package bolt

import (
	"errors"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/model"
)

// The encoding itself is tested in storage/internal/binenc; these tests
// check that this package's decoding errors wrap ErrCorrupt.

func TestDecodeErrorsWrapErrCorrupt(t *testing.T) {
	e := model.Event{Name: "n", EventID: "e", Timestamp: time.UnixMilli(5)}
	v := appendEvent(nil, &e)
	var got model.Event
	if err := decodeEvent(v[:len(v)-1], &got); !errors.Is(err, ErrCorrupt) {
		t.Errorf("decodeEvent of a truncated value: %v, want ErrCorrupt", err)
	}
	r := commandlog.Record{CommandID: "c", Outcome: commandlog.Accepted, At: time.UnixMilli(5)}
	if _, err := recordAtMillis(appendRecord(nil, &r)[:3]); !errors.Is(err, ErrCorrupt) {
		t.Errorf("recordAtMillis of a truncated value: %v, want ErrCorrupt", err)
	}
	if _, err := keySequence(aggregatePrefix(model.Ref{Type: "t", ID: "i"}), []byte("short")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("keySequence of a short key: %v, want ErrCorrupt", err)
	}
	if _, _, err := parseTimeKey(timeKey(1, "")); !errors.Is(err, ErrCorrupt) {
		t.Errorf("parseTimeKey of a key without a command id: %v, want ErrCorrupt", err)
	}
	if err := decodeEvent([]byte{valueFormat + 1}, &got); !errors.Is(err, ErrCorrupt) {
		t.Errorf("decodeEvent of an unknown format: %v, want ErrCorrupt", err)
	}
}
