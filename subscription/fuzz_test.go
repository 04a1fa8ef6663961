package subscription

// Fuzz targets for what a consumer parses from the bus: a published (or
// replayed) event message (decode) and a dead-letter message
// (deadLetterOf). Run one with
//
//	go test -run '^$' -fuzz '^FuzzDecodeDelivery$' -fuzztime 30s ./subscription/
//
// The seed corpora under testdata/fuzz also run as plain tests.

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/model"
)

// FuzzDecodeDelivery: decode never panics, and an event it accepts is
// one the handlers may be given: of the subscription's type, with an
// aggregate id, a sequence and a versioned name; it decodes the same
// after re-encoding, as a dead letter of it would.
func FuzzDecodeDelivery(f *testing.F) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	e := model.Event{AggregateType: "lightbulb", AggregateID: "b-1", Sequence: 1, Timestamp: at, StreamID: "default",
		ProcessingTime: at, Name: "created", Characteristics: model.Initial, Payload: []byte(`{"w":60}`), EventID: "e-1"}
	b, err := json.Marshal(e)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte(`{"aggregateType":"lightbulb","aggregateId":"x","sequence":0,"name":"n"}`))
	f.Add([]byte(`{"aggregateType":"lightbulb","aggregateId":"x","sequence":1,"name":"n","version":-1}`))
	f.Add([]byte(`{"aggregateType":"other","aggregateId":"x","sequence":1,"name":"n"}`))
	f.Add([]byte(`null`))
	s := &Subscription{cfg: Config{AggregateType: "lightbulb"}}
	f.Fuzz(func(t *testing.T, data []byte) {
		got, err := s.decode(data)
		if err != nil {
			return
		}
		if got.AggregateType != "lightbulb" || got.AggregateID == "" || got.Sequence == 0 || got.Name == "" || got.Version < 0 {
			t.Fatalf("decode accepted an event a handler must not see: %+v", got)
		}
		enc, err := json.Marshal(got)
		if err != nil {
			t.Fatalf("accepted event %+v does not encode: %v", got, err)
		}
		back, err := s.decode(enc)
		if err != nil || back.EventID != got.EventID || back.Sequence != got.Sequence || back.AggregateID != got.AggregateID ||
			back.VersionedName() != got.VersionedName() || !back.Timestamp.Equal(got.Timestamp) {
			t.Fatalf("re-encoded event decodes to %+v, %v; want %+v", back, err, got)
		}
		d := deadLetterOf(&jetstream.RawStreamMsg{Data: data})
		if d.Event == nil || d.Body != nil {
			t.Fatalf("a dead letter of an accepted event keeps it as a body: %+v", d)
		}
	})
}

// FuzzDeadLetter: deadLetterOf never panics, keeps what it cannot read as
// an event as the body, byte for byte, and reads the counters from their
// headers when they are decimal.
func FuzzDeadLetter(f *testing.F) {
	f.Add([]byte(`{"aggregateType":"t","aggregateId":"a","sequence":2,"name":"n"}`), "3", "17", "boom")
	f.Add([]byte(`not json`), "", "", "")
	f.Add([]byte(`{"aggregateId":""}`), "-1", "18446744073709551616", "x\r\ny")
	f.Fuzz(func(t *testing.T, data []byte, attempts, streamSeq, errText string) {
		m := &jetstream.RawStreamMsg{Sequence: 9, Data: data, Header: nats.Header{
			api.HeaderDeadAttempts: {attempts}, api.HeaderDeadStreamSeq: {streamSeq}, api.HeaderDeadError: {errText},
		}}
		d := deadLetterOf(m)
		if d.Seq != 9 || d.Error != errText {
			t.Fatalf("dead letter %+v lost its sequence or error", d)
		}
		if n, err := strconv.Atoi(attempts); err == nil && d.Attempts != n {
			t.Fatalf("attempts header %q read as %d", attempts, d.Attempts)
		}
		if n, err := strconv.ParseUint(streamSeq, 10, 64); err == nil && d.StreamSeq != n {
			t.Fatalf("stream sequence header %q read as %d", streamSeq, d.StreamSeq)
		}
		var e model.Event
		isEvent := json.Unmarshal(data, &e) == nil && e.AggregateID != ""
		switch {
		case isEvent && (d.Event == nil || !reflect.DeepEqual(d.Event.Ref(), e.Ref()) || d.Body != nil):
			t.Fatalf("an event came out as %+v", d)
		case !isEvent && (d.Event != nil || !bytes.Equal(d.Body, data)):
			t.Fatalf("a body that is no event came out as %+v", d)
		}
	})
}
