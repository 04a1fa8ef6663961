package model

// Fuzz targets for what this package parses from stored or published
// bytes: payloads and arguments through the JSON codec, events in their
// JSON form (as the bus carries them and consumers read them) and
// versioned names. CheckJSON has its own target (FuzzCheckJSON). Run one
// with
//
//	go test -run '^$' -fuzz '^FuzzEventJSON$' -fuzztime 30s ./model/
//
// The seed corpora under testdata/fuzz also run as plain tests.

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// fuzzPayload is a payload type with the shapes payloads have.
type fuzzPayload struct {
	N    int               `json:"n"`
	S    string            `json:"s,omitempty"`
	F    []float64         `json:"f,omitempty"`
	M    map[string]string `json:"m,omitempty"`
	B    *bool             `json:"b,omitempty"`
	When time.Time         `json:"when"`
}

// FuzzJSONCodec: the codec accepts exactly one JSON value, and what it
// decodes (into a struct, or into any) re-encodes to JSON that decodes to
// the same value.
func FuzzJSONCodec(f *testing.F) {
	f.Add([]byte(`{"n":1,"s":"x","f":[1.5,-0],"m":{"a":"b"},"b":true,"when":"2025-01-02T03:04:05.006+01:00"}`), false)
	f.Add([]byte(`{"n":1} {"n":2}`), false)
	f.Add([]byte(`{"n":1,"unknown":[]}`), true)
	f.Add([]byte(`{"n":1,"n":2}`), false)
	f.Add([]byte(`{"n":"1"}`), false)
	f.Add([]byte("\"\xff\""), true)
	f.Add([]byte(``), true)
	f.Fuzz(func(t *testing.T, data []byte, allowUnknown bool) {
		c := JSON{AllowUnknownFields: allowUnknown}
		if p, back, ok := reencode[fuzzPayload](t, c, data); ok {
			if !back.When.Equal(p.When) {
				t.Fatalf("time %v came back as %v", p.When, back.When)
			}
			back.When, p.When = time.Time{}, time.Time{}
			// omitempty drops an empty list or map: it comes back nil.
			for _, q := range []*fuzzPayload{&p, &back} {
				if len(q.F) == 0 {
					q.F = nil
				}
				if len(q.M) == 0 {
					q.M = nil
				}
			}
			if !reflect.DeepEqual(back, p) {
				t.Fatalf("re-encoding changed the payload:\n%+v\n%+v", p, back)
			}
		}
		if v, back, ok := reencode[any](t, c, data); ok && !reflect.DeepEqual(back, v) {
			t.Fatalf("re-encoding changed the value: %#v became %#v", v, back)
		}
	})
}

// reencode decodes data with c into a T. When that succeeds, data must be
// one JSON value, and what was decoded must encode and decode again: it
// returns the value decoded from data and the one decoded from its
// encoding, for the caller to compare. ok is false when data does not
// decode.
func reencode[T any](t *testing.T, c JSON, data []byte) (v, back T, ok bool) {
	t.Helper()
	if err := c.Unmarshal(data, &v); err != nil {
		return v, back, false
	}
	if !json.Valid(data) {
		t.Fatalf("codec accepted %q into %T, which is not one JSON value", data, &v)
	}
	enc, err := c.Marshal(v)
	if err != nil {
		t.Fatalf("decoded %#v does not encode: %v", v, err)
	}
	if err := c.Unmarshal(enc, &back); err != nil {
		t.Fatalf("re-encoded %s does not decode into %T: %v", enc, &back, err)
	}
	return v, back, true
}

// FuzzEventJSON: an event that decodes from JSON (a published event as a
// consumer reads it) re-encodes to JSON that decodes to the same event.
func FuzzEventJSON(f *testing.F) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	e := Event{AggregateType: "lightbulb", AggregateID: "b-1", Sequence: 3, Timestamp: at, StreamID: DefaultStream,
		ProcessingID: "p", ProcessingTime: at, Name: "created", Version: 1, Characteristics: Initial | Terminal,
		Payload: json.RawMessage(`{"wattage": 60}`), CommandID: "c", EventID: "e"}
	b, err := json.Marshal(e)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)-1])
	f.Add([]byte(`{"characteristics":["terminal","initial","initial"],"payload":null}`))
	f.Add([]byte(`{"characteristics":["final"]}`))
	f.Add([]byte(`{"timestamp":"0000-01-01T00:00:00+23:59","sequence":18446744073709551615,"version":-1}`))
	f.Add([]byte(`{"aggregateId":"a\ud800","payload":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got Event
		if err := json.Unmarshal(data, &got); err != nil {
			return
		}
		enc, err := json.Marshal(got)
		if err != nil {
			t.Fatalf("decoded event %+v does not encode: %v", got, err)
		}
		var back Event
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatalf("re-encoded event %s does not decode: %v", enc, err)
		}
		if !back.Timestamp.Equal(got.Timestamp) || !back.ProcessingTime.Equal(got.ProcessingTime) {
			t.Fatalf("times %v, %v came back as %v, %v", got.Timestamp, got.ProcessingTime, back.Timestamp, back.ProcessingTime)
		}
		if !samePayload(back.Payload, got.Payload) {
			t.Fatalf("payload %s came back as %s", got.Payload, back.Payload)
		}
		back.Timestamp, back.ProcessingTime, back.Payload = got.Timestamp, got.ProcessingTime, got.Payload
		if !reflect.DeepEqual(back, got) {
			t.Fatalf("re-encoding changed the event:\n%+v\n%+v", got, back)
		}
	})
}

// samePayload compares raw payloads as JSON values (json.Marshal compacts
// a raw payload and escapes <, > and & in it), with an absent payload the
// same as null.
func samePayload(a, b json.RawMessage) bool {
	decode := func(m json.RawMessage) (any, bool) {
		if len(m) == 0 {
			m = json.RawMessage("null")
		}
		d := json.NewDecoder(bytes.NewReader(m))
		d.UseNumber()
		var v any
		return v, d.Decode(&v) == nil
	}
	va, okA := decode(a)
	vb, okB := decode(b)
	if !okA || !okB {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(va, vb)
}

// FuzzVersionedName: a versioned name that parses renders back to the same
// string, and a name and version render to a string that parses to them.
func FuzzVersionedName(f *testing.F) {
	f.Add("created_0", "switchedOn", 12)
	f.Add("a_b_01", "a_b", 0)
	f.Add("_1", "", -1)
	f.Add("x_99999999999999999999", "x", 1<<62)
	f.Fuzz(func(t *testing.T, s, name string, version int) {
		if v, err := ParseVersionedName(s); err == nil && v.String() != s {
			t.Fatalf("%q parses to %+v, which renders %q", s, v, v.String())
		}
		if name == "" || version < 0 {
			return
		}
		v := VersionedName{Name: name, Version: version}
		if got, err := ParseVersionedName(v.String()); err != nil || got != v {
			t.Fatalf("%+v renders %q, which parses to %+v, %v", v, v.String(), got, err)
		}
	})
}
