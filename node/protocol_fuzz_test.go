package node

// Fuzz targets for the parsers of the NATS API (invariant 8): command
// requests in both forms, state queries and history requests. Each asserts
// that the parser never panics, that a refused input gets a typed error,
// and that an accepted one holds only valid identifiers, has no duplicate
// keys, and decodes to the same request again after re-encoding.
//
//	go test -run x -fuzz FuzzDecodeCommand -fuzztime 30s ./node

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/model"
)

const (
	fuzzMaxPayload     = 4096
	fuzzDefaultTimeout = 10 * time.Second
	fuzzType           = "lightbulb"
)

// wantTypedRefusal checks a refusal: invalid_request with a message.
func wantTypedRefusal(t *testing.T, e *api.Error, input any) {
	t.Helper()
	if e.Code != api.CodeInvalidRequest || e.Message == "" {
		t.Fatalf("%q refused with %+v, want invalid_request with a message", input, e)
	}
}

// wantIdentifier checks one decoded identifier against the rules.
func wantIdentifier(t *testing.T, what, s string, limit int, required bool) {
	t.Helper()
	if required && s == "" {
		t.Fatalf("accepted with an empty %s", what)
	}
	if err := model.CheckIdentifier(what, s, limit); err != nil {
		t.Fatalf("accepted %s %q: %v", what, s, err)
	}
}

// sameJSON reports whether a and b are the same JSON value (both absent
// counts as the same).
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	decode := func(data []byte) any {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("accepted arguments %q do not decode: %v", data, err)
		}
		return v
	}
	return reflect.DeepEqual(decode(a), decode(b))
}

// sameRequest compares two decoded command requests.
func sameRequest(t *testing.T, a, b executor.Request) bool {
	t.Helper()
	return a.Ref == b.Ref && a.Command == b.Command && a.CommandID == b.CommandID && a.StreamID == b.StreamID &&
		a.Timestamp.Equal(b.Timestamp) && sameJSON(t, a.Args, b.Args)
}

func formatTimestamp(ts time.Time) string {
	if ts.IsZero() {
		return ""
	}
	return ts.Format(time.RFC3339Nano)
}

func FuzzDecodeCommand(f *testing.F) {
	type seed struct {
		header                                            bool
		aggID, command, commandID, stream, stamp, timeout string
		body                                              string
	}
	for _, s := range []seed{
		{body: `{"aggregateId":"b1","command":"create","args":{"wattage":60}}`},
		{body: `{"aggregateId":"b1","command":"screwIn","commandId":"c-42","args":{"location":"hall"},"timestamp":"2026-11-22T06:30:00.123+01:00","streamId":"s1","timeoutMs":2000}`},
		{body: `{"aggregateId":"a","aggregateId":"b","command":"create","command":"switchOff"}`},
		{body: "{\"aggregateId\":\"x\xff\",\"command\":\"create\",\"args\":{\"wattage\":60}}"},
		{body: `{"aggregateId":"x\ud800","command":"create"}`},
		{body: `{"aggregateId":"b1","command":"create","timeoutMs":9223372036855}`},
		{body: `{"aggregateId":"b1","command":"create","streamId":"s\u0000"}`},
		{body: `{"aggregateId":"b1","command":"create","args":null}`},
		{header: true, aggID: "b1", command: "switchOn", commandID: "c-43", body: ``},
		{header: true, aggID: "b1", command: "create", stamp: "2026-11-21T18:00:00Z", stream: "s", timeout: "1000", body: `{"wattage":60}`},
		{header: true, aggID: "b1", command: "create", timeout: "1000000000000000", body: `{"wattage":60}`},
		{header: true, aggID: "x\xff", command: "create", body: `{"wattage":60}`},
		{header: true, aggID: "b1", command: "create", body: `{"wattage":60,"wattage":70}`},
		{header: true, commandID: "c", body: `{"wattage":60}`},
	} {
		f.Add(s.header, s.aggID, s.command, s.commandID, s.stream, s.stamp, s.timeout, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, header bool, aggID, command, commandID, stream, stamp, timeout string, body []byte) {
		var h nats.Header
		if header {
			h = nats.Header{}
			for k, v := range map[string]string{api.HeaderAggregateID: aggID, api.HeaderCommand: command,
				api.HeaderCommandID: commandID, api.HeaderStream: stream, api.HeaderTimestamp: stamp, api.HeaderTimeout: timeout} {
				if v != "" {
					h.Set(k, v)
				}
			}
		}
		req, d, apiErr := decodeCommand(fuzzType, h, body, fuzzMaxPayload, fuzzDefaultTimeout)
		// Whatever the outcome, the ids a reply would echo are valid.
		wantIdentifier(t, "aggregate id", req.Ref.ID, model.MaxIDLen, false)
		wantIdentifier(t, "command id", req.CommandID, model.MaxCommandIDLen, false)
		if apiErr != nil {
			wantTypedRefusal(t, apiErr, body)
			return
		}
		if req.Ref.Type != fuzzType {
			t.Fatalf("type %q", req.Ref.Type)
		}
		wantIdentifier(t, "aggregate id", req.Ref.ID, model.MaxIDLen, true)
		wantIdentifier(t, "command name", req.Command, model.MaxNameLen, true)
		wantIdentifier(t, "command id", req.CommandID, model.MaxCommandIDLen, true)
		wantIdentifier(t, "stream id", req.StreamID, model.MaxStreamIDLen, false)
		if d <= 0 || d > time.Duration(api.MaxTimeoutMs)*time.Millisecond {
			t.Fatalf("accepted with timeout %v", d)
		}
		if !isHeaderMode(h) {
			if err := model.CheckJSON(body); err != nil {
				t.Fatalf("accepted envelope %q: %v", body, err)
			}
		}
		if len(req.Args) > 0 {
			if err := model.CheckJSON(req.Args); err != nil || strings.TrimSpace(string(req.Args))[0] != '{' {
				t.Fatalf("accepted arguments %q: not one JSON object (%v)", req.Args, err)
			}
		}
		if err := req.Ref.Validate(); err != nil {
			t.Fatalf("accepted ref %q: %v", req.Ref, err)
		}

		// Round trip, as an envelope and as headers.
		env := api.Command{AggregateID: req.Ref.ID, Command: req.Command, CommandID: req.CommandID, Args: req.Args,
			Timestamp: formatTimestamp(req.Timestamp), StreamID: req.StreamID, TimeoutMs: d.Milliseconds()}
		data, err := json.Marshal(env)
		if err != nil {
			t.Fatalf("re-encoding %+v: %v", env, err)
		}
		again, d2, apiErr := decodeCommand(fuzzType, nil, data, api.DefaultMaxPayload, fuzzDefaultTimeout)
		if apiErr != nil || d2 != d || !sameRequest(t, req, again) {
			t.Fatalf("envelope round trip of %q via %s: %+v, %v, %v; want %+v, %v", body, data, again, d2, apiErr, req, d)
		}
		h2 := nats.Header{}
		h2.Set(api.HeaderAggregateID, env.AggregateID)
		h2.Set(api.HeaderCommand, env.Command)
		h2.Set(api.HeaderCommandID, env.CommandID)
		h2.Set(api.HeaderTimeout, strconv.FormatInt(env.TimeoutMs, 10))
		if env.StreamID != "" {
			h2.Set(api.HeaderStream, env.StreamID)
		}
		if env.Timestamp != "" {
			h2.Set(api.HeaderTimestamp, env.Timestamp)
		}
		again, d2, apiErr = decodeCommand(fuzzType, h2, req.Args, api.DefaultMaxPayload, fuzzDefaultTimeout)
		if apiErr != nil || d2 != d || !sameRequest(t, req, again) {
			t.Fatalf("header round trip of %q: %+v, %v, %v; want %+v, %v", body, again, d2, apiErr, req, d)
		}
	})
}

func FuzzDecodeQuery(f *testing.F) {
	for _, s := range []string{
		`{"aggregateId":"b1"}`, `{"aggregateId":"b1","view":"usage"}`, `{"aggregateId":"b1","asOf":"2026-11-21T18:30:00Z"}`,
		`{"aggregateId":"b1","aggregateId":"b2"}`, "{\"aggregateId\":\"x\xff\"}", `{"aggregateId":"x\udc00"}`,
		`{"aggregateId":"b1","view":"st\u0000ate"}`, `{"aggregateId":""}`, `{"aggregateId":"b1","asOf":"yesterday"}`, `[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		q, apiErr := decodeQuery(fuzzType, body, fuzzMaxPayload)
		if apiErr != nil {
			wantTypedRefusal(t, apiErr, body)
			return
		}
		if err := model.CheckJSON(body); err != nil {
			t.Fatalf("accepted %q: %v", body, err)
		}
		wantIdentifier(t, "aggregate id", q.Ref.ID, model.MaxIDLen, true)
		wantIdentifier(t, "view name", q.View, model.MaxNameLen, false)
		if err := q.Ref.Validate(); err != nil {
			t.Fatalf("accepted ref %q: %v", q.Ref, err)
		}
		data, err := json.Marshal(api.Query{AggregateID: q.Ref.ID, View: q.View, AsOf: formatTimestamp(q.AsOf)})
		if err != nil {
			t.Fatal(err)
		}
		again, apiErr := decodeQuery(fuzzType, data, api.DefaultMaxPayload)
		if apiErr != nil || again.Ref != q.Ref || again.View != q.View || !again.AsOf.Equal(q.AsOf) {
			t.Fatalf("round trip of %q via %s: %+v, %v; want %+v", body, data, again, apiErr, q)
		}
	})
}

func FuzzDecodeHistory(f *testing.F) {
	for _, s := range []string{
		`{"aggregateId":"b1"}`, `{"aggregateId":"b1","from":2,"to":5}`, `{"aggregateId":"b1","from":2,"limit":2}`,
		`{"aggregateId":"b1","limit":-1}`, `{"aggregateId":"b1","from":5,"to":3}`, `{"aggregateId":"b1","from":1,"from":2}`,
		"{\"aggregateId\":\"x\xff\"}", `{"aggregateId":"\ud800"}`, `{"aggregateId":"b1","to":18446744073709551615}`,
		`{"aggregateId":"b1","from":-1}`, `{}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		q, apiErr := decodeHistory(body, fuzzMaxPayload)
		if apiErr != nil {
			wantTypedRefusal(t, apiErr, body)
			return
		}
		if err := model.CheckJSON(body); err != nil {
			t.Fatalf("accepted %q: %v", body, err)
		}
		wantIdentifier(t, "aggregate id", q.AggregateID, model.MaxIDLen, true)
		if q.Limit < 0 || (q.To != 0 && q.To < q.From) {
			t.Fatalf("accepted %q as %+v", body, q)
		}
		data, err := json.Marshal(q)
		if err != nil {
			t.Fatal(err)
		}
		again, apiErr := decodeHistory(data, api.DefaultMaxPayload)
		if apiErr != nil || again != q {
			t.Fatalf("round trip of %q via %s: %+v, %v; want %+v", body, data, again, apiErr, q)
		}
	})
}
