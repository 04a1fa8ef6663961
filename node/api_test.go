package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
)

// TestLightbulbLifeCycle walks one bulb through its whole life with raw
// JSON envelopes, as `nats req concursus.cmd.lightbulb '{…}'` would send them.
func TestLightbulbLifeCycle(t *testing.T) {
	n := startNode(t, testConfig(t))
	nc := testsupport.Connect(t, n.ClientURL())

	steps := []struct {
		cmd, args string
		want      []string // versioned names of the events, or nil for a rejection
		reason    string
	}{
		{"create", `{"wattage":60}`, []string{"created_0"}, ""},
		{"screwIn", `{"location":"hall"}`, []string{"screwedIn_0"}, ""},
		{"switchOn", ``, []string{"switchedOn_0"}, ""},
		{"switchOn", ``, nil, lightbulb.ReasonAlreadyOn},
		{"switchOff", `{}`, []string{"switchedOff_0"}, ""},
		{"switchOn", `null`, []string{"switchedOn_0"}, ""},
		{"unscrew", ``, []string{"switchedOff_0", "unscrewed_0"}, ""}, // two events from one command
		{"screwIn", `{"location":"kitchen"}`, []string{"screwedIn_0"}, ""},
		{"create", `{"wattage":40}`, nil, model.ReasonAlreadyExists},
		{"blow", ``, []string{"blown_0"}, ""},
		{"switchOn", ``, nil, model.ReasonTerminated},
		{"unscrew", ``, nil, model.ReasonTerminated},
	}
	var seq uint64
	for i, s := range steps {
		c := api.Command{AggregateID: "b1", Command: s.cmd, CommandID: "life-" + strconv.Itoa(i)}
		if s.args != "" {
			c.Args = json.RawMessage(s.args)
		}
		r := command(t, nc, c)
		if s.want == nil {
			wantError(t, r.Error, r.OK, api.CodeRejected)
			if r.Error.Reason != s.reason {
				t.Fatalf("step %d %s: reason %q, want %q", i, s.cmd, r.Error.Reason, s.reason)
			}
			continue
		}
		if !r.OK {
			t.Fatalf("step %d %s: %v", i, s.cmd, r.Error)
		}
		var got []string
		for _, e := range r.Events {
			seq++
			if e.Sequence != seq {
				t.Fatalf("step %d %s: event %s has sequence %d, want %d", i, s.cmd, e.VersionedName(), e.Sequence, seq)
			}
			got = append(got, e.VersionedName().String())
		}
		if !slices.Equal(got, s.want) {
			t.Fatalf("step %d %s: events %v, want %v", i, s.cmd, got, s.want)
		}
		if r.Sequence != seq {
			t.Fatalf("step %d %s: reply sequence %d, want %d", i, s.cmd, r.Sequence, seq)
		}
	}

	q := query(t, nc, api.Query{AggregateID: "b1"})
	if !q.OK || !q.Exists || q.Sequence != seq || q.View != model.StateView {
		t.Fatalf("final query: %+v", q)
	}
	var b lightbulb.Bulb
	if err := json.Unmarshal(q.State, &b); err != nil {
		t.Fatal(err)
	}
	if want := (lightbulb.Bulb{Wattage: 60, Location: "kitchen", ScrewedIn: true, Blown: true}); b != want {
		t.Fatalf("final state %+v, want %+v", b, want)
	}
	if last, err := n.EventLog().LastSequence(context.Background(), lbRef("b1")); err != nil || last != seq {
		t.Fatalf("event log at %d (%v), want %d", last, err, seq)
	}
}

// TestReplyShape pins the JSON of an accepted reply: the field names are
// the protocol, so they are checked on the raw bytes as well as decoded.
func TestReplyShape(t *testing.T) {
	now := time.Date(2026, 11, 22, 6, 30, 0, 123_456_789, time.UTC)
	cfg := testConfig(t)
	cfg.Clock = func() time.Time { return now }
	n := startNode(t, cfg)
	nc := testsupport.Connect(t, n.ClientURL())

	t.Run("given command id, timestamp and stream", func(t *testing.T) {
		body := `{"aggregateId":"b1","command":"create","commandId":"c-42","args":{"wattage":60},` +
			`"timestamp":"2026-11-21T18:00:00.987654321+01:00","streamId":"sensor-7"}`
		var r api.Reply
		raw := request(t, nc, cmdSubject, []byte(body), &r)

		var top map[string]json.RawMessage
		if err := json.Unmarshal(raw, &top); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"ok", "aggregateType", "aggregateId", "commandId", "sequence", "events"} {
			if _, ok := top[k]; !ok {
				t.Errorf("reply has no %q field: %s", k, raw)
			}
		}
		for _, k := range []string{"error", "duplicate"} {
			if _, ok := top[k]; ok {
				t.Errorf("accepted reply has a %q field: %s", k, raw)
			}
		}
		var rawEvents []map[string]json.RawMessage
		if err := json.Unmarshal(top["events"], &rawEvents); err != nil || len(rawEvents) != 1 {
			t.Fatalf("events: %v %s", err, top["events"])
		}
		for _, k := range []string{"aggregateType", "aggregateId", "sequence", "timestamp", "streamId", "processingId",
			"processingTime", "name", "version", "characteristics", "payload", "commandId", "eventId"} {
			if _, ok := rawEvents[0][k]; !ok {
				t.Errorf("event has no %q field: %s", k, top["events"])
			}
		}

		if !r.OK || r.AggregateType != "lightbulb" || r.AggregateID != "b1" || r.CommandID != "c-42" || r.Sequence != 1 || r.Duplicate {
			t.Fatalf("reply: %s", raw)
		}
		e := r.Events[0]
		wantTS := time.Date(2026, 11, 21, 17, 0, 0, 987_000_000, time.UTC) // normalised: UTC, milliseconds
		switch {
		case e.AggregateType != "lightbulb" || e.AggregateID != "b1" || e.Sequence != 1:
			t.Errorf("event ref/sequence: %+v", e)
		case !e.Timestamp.Equal(wantTS) || e.Timestamp.Location() != time.UTC:
			t.Errorf("event timestamp %v, want %v (UTC)", e.Timestamp, wantTS)
		case e.StreamID != "sensor-7":
			t.Errorf("stream id %q", e.StreamID)
		case !e.ProcessingTime.Equal(model.NormalizeTime(now)):
			t.Errorf("processing time %v, want %v", e.ProcessingTime, model.NormalizeTime(now))
		case e.Name != "created" || e.Version != 0 || e.Characteristics != model.Initial:
			t.Errorf("name/version/characteristics: %s/%d/%s", e.Name, e.Version, e.Characteristics)
		case string(e.Payload) != `{"wattage":60}`:
			t.Errorf("payload %s", e.Payload)
		case e.CommandID != "c-42":
			t.Errorf("event command id %q", e.CommandID)
		case e.EventID == "":
			t.Errorf("no event id")
		}
		if id, err := uuid.Parse(e.ProcessingID); err != nil || id.Version() != 1 {
			t.Errorf("processing id %q is not a version-1 UUID (%v)", e.ProcessingID, err)
		} else if sec, nsec := id.Time().UnixTime(); !time.Unix(sec, nsec).Equal(e.ProcessingTime) {
			t.Errorf("processing id carries %v, want the processing time %v", time.Unix(sec, nsec).UTC(), e.ProcessingTime)
		}
	})

	t.Run("generated command id, processing time as timestamp", func(t *testing.T) {
		r := mustOK(t, nc, api.Command{AggregateID: "b2", Command: "create", Args: json.RawMessage(`{"wattage":25}`)})
		id, err := uuid.Parse(r.CommandID)
		if err != nil || id.Version() != 7 {
			t.Fatalf("generated command id %q is not a version-7 UUID (%v)", r.CommandID, err)
		}
		e := r.Events[0]
		if e.CommandID != r.CommandID {
			t.Errorf("event command id %q, reply's %q", e.CommandID, r.CommandID)
		}
		if !e.Timestamp.Equal(model.NormalizeTime(now)) || e.StreamID != model.DefaultStream {
			t.Errorf("without a source time the event time is the processing time in the default stream; got %v %q", e.Timestamp, e.StreamID)
		}
		// The generated id is the idempotency key of the recorded command.
		rec, err := n.CommandLog().Get(context.Background(), r.CommandID)
		if err != nil || rec.Outcome != commandlog.Accepted || rec.Ref != lbRef("b2") {
			t.Errorf("command log for generated id: %+v, %v", rec, err)
		}
	})

	t.Run("rejection", func(t *testing.T) {
		var r api.Reply
		raw := request(t, nc, cmdSubject, []byte(`{"aggregateId":"b1","command":"switchOn","commandId":"c-43"}`), &r)
		wantError(t, r.Error, r.OK, api.CodeRejected)
		if r.Error.Reason != lightbulb.ReasonNotScrewedIn || r.Error.Message == "" || r.CommandID != "c-43" || r.AggregateID != "b1" {
			t.Errorf("rejection reply: %s", raw)
		}
		var top map[string]json.RawMessage
		if err := json.Unmarshal(raw, &top); err != nil {
			t.Fatal(err)
		}
		if string(top["ok"]) != "false" {
			t.Errorf(`rejected reply must say "ok":false explicitly: %s`, raw)
		}
		if _, ok := top["events"]; ok {
			t.Errorf("rejected reply carries events: %s", raw)
		}
	})
}

// TestHeaderMode sends commands the other way the protocol allows: ids and
// command name in headers, the arguments as the whole body.
func TestHeaderMode(t *testing.T) {
	n := startNode(t, testConfig(t))
	nc := testsupport.Connect(t, n.ClientURL())

	send := func(t *testing.T, headers map[string]string, body string) api.Reply {
		t.Helper()
		var r api.Reply
		requestMsg(t, nc, "", headers, []byte(body), &r)
		return r
	}

	r := send(t, map[string]string{
		api.HeaderAggregateID: "hb1",
		api.HeaderCommand:     "create",
		api.HeaderCommandID:   "h-1",
		api.HeaderTimestamp:   "2026-11-21T18:00:00Z",
		api.HeaderStream:      "sensor-1",
		api.HeaderTimeout:     "2000",
	}, `{"wattage":75}`)
	if !r.OK || r.CommandID != "h-1" || r.AggregateID != "hb1" || r.Sequence != 1 || len(r.Events) != 1 {
		t.Fatalf("create by headers: %+v", r)
	}
	if e := r.Events[0]; string(e.Payload) != `{"wattage":75}` || !e.Timestamp.Equal(t0) || e.StreamID != "sensor-1" || e.CommandID != "h-1" {
		t.Fatalf("event from headers: %+v", e)
	}

	r = send(t, map[string]string{api.HeaderAggregateID: "hb1", api.HeaderCommand: "screwIn"}, `{"location":"porch"}`)
	if !r.OK {
		t.Fatalf("screwIn by headers: %v", r.Error)
	}
	if _, err := uuid.Parse(r.CommandID); err != nil {
		t.Fatalf("command id not generated in header mode: %q", r.CommandID)
	}

	// An empty body means "no arguments".
	r = send(t, map[string]string{api.HeaderAggregateID: "hb1", api.HeaderCommand: "switchOn", api.HeaderCommandID: "h-3"}, ``)
	if !r.OK || r.Sequence != 3 || r.Events[0].Name != "switchedOn" {
		t.Fatalf("switchOn with an empty body: %+v %v", r, r.Error)
	}

	// The same command id by headers is a duplicate, like in envelope mode.
	r = send(t, map[string]string{api.HeaderAggregateID: "hb1", api.HeaderCommand: "switchOn", api.HeaderCommandID: "h-3"}, ``)
	if !r.OK || !r.Duplicate || r.Sequence != 3 || len(r.Events) != 1 {
		t.Fatalf("duplicate by headers: %+v %v", r, r.Error)
	}

	// Header-mode rejections carry the reason as well.
	r = send(t, map[string]string{api.HeaderAggregateID: "hb1", api.HeaderCommand: "switchOn"}, ``)
	wantError(t, r.Error, r.OK, api.CodeRejected)
	if r.Error.Reason != lightbulb.ReasonAlreadyOn {
		t.Fatalf("reason %q", r.Error.Reason)
	}
}

// TestPublishedEvents checks what a consumer sees on
// <prefix>.events.lightbulb.<name_ver>: one message per event, in sequence
// order, with the identifying headers, and the same event the reply carried.
func TestPublishedEvents(t *testing.T) {
	n := startNode(t, testConfig(t))
	nc := testsupport.Connect(t, n.ClientURL())
	sub := subscribe(t, nc, "concursus.events.lightbulb.>")

	var replied []model.Event
	for _, c := range []api.Command{
		{AggregateID: "pb1", Command: "create", Args: json.RawMessage(`{"wattage":60}`)},
		{AggregateID: "pb2", Command: "create", Args: json.RawMessage(`{"wattage":40}`)},
		{AggregateID: "pb1", Command: "screwIn", Args: json.RawMessage(`{"location":"hall"}`)},
		{AggregateID: "pb1", Command: "switchOn"},
		{AggregateID: "pb1", Command: "switchOn"}, // rejected: publishes nothing
		{AggregateID: "pb1", Command: "unscrew"},
		{AggregateID: "pb1", Command: "blow"},
	} {
		r := command(t, nc, c)
		replied = append(replied, r.Events...)
	}
	if len(replied) != 7 {
		t.Fatalf("%d events replied, want 7", len(replied))
	}
	next := map[string]uint64{}
	for i, want := range replied {
		m, got := nextEvent(t, sub)
		if wantSubj := api.EventSubject("concursus", "lightbulb", want.VersionedName(), want.AggregateID); m.Subject != wantSubj {
			t.Errorf("event %d on %s, want %s", i, m.Subject, wantSubj)
		}
		h := m.Header
		if h.Get(api.HeaderAggregateID) != want.AggregateID || h.Get(api.HeaderType) != "lightbulb" ||
			h.Get(api.HeaderSequence) != strconv.FormatUint(want.Sequence, 10) ||
			h.Get(api.HeaderEventID) != want.EventID || h.Get(api.HeaderMsgID) != want.EventID {
			t.Errorf("event %d headers %v, want id %s seq %d event id %s", i, h, want.AggregateID, want.Sequence, want.EventID)
		}
		if testsupport.MustJSON(t, got) != testsupport.MustJSON(t, want) {
			t.Errorf("published event %d differs from the replied one:\n got %s\nwant %s", i, testsupport.MustJSON(t, got), testsupport.MustJSON(t, want))
		}
		if got.Sequence != next[got.AggregateID]+1 {
			t.Errorf("%s: sequence %d after %d", got.AggregateID, got.Sequence, next[got.AggregateID])
		}
		next[got.AggregateID] = got.Sequence
	}
	if m, err := sub.NextMsg(50 * time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("unexpected extra event: %v %s", err, m.Data)
	}
}

// TestDuplicateCommandID: a command id that was decided returns the
// recorded outcome and runs nothing again.
func TestDuplicateCommandID(t *testing.T) {
	n := startNode(t, testConfig(t))
	nc := testsupport.Connect(t, n.ClientURL())
	sub := subscribe(t, nc, "concursus.events.>")

	create := api.Command{AggregateID: "db1", Command: "create", CommandID: "dup-1", Args: json.RawMessage(`{"wattage":60}`)}
	first := mustOK(t, nc, create)
	mustOK(t, nc, api.Command{AggregateID: "db1", Command: "screwIn", CommandID: "dup-2", Args: json.RawMessage(`{"location":"hall"}`)})
	mustOK(t, nc, api.Command{AggregateID: "db1", Command: "switchOn", CommandID: "dup-3"})
	multi := mustOK(t, nc, api.Command{AggregateID: "db1", Command: "unscrew", CommandID: "dup-4"})

	for _, tc := range []struct {
		name     string
		cmd      api.Command
		original api.Reply
	}{
		{"single event", create, first},
		// The same args written differently are the same request.
		{"args spaced differently", api.Command{AggregateID: "db1", Command: "create", CommandID: "dup-1", Args: json.RawMessage(`{ "wattage" : 60 }`)}, first},
		{"two events, after later commands", api.Command{AggregateID: "db1", Command: "unscrew", CommandID: "dup-4"}, multi},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := mustOK(t, nc, tc.cmd)
			if !r.Duplicate || r.CommandID != tc.original.CommandID || r.Sequence != tc.original.Sequence {
				t.Fatalf("duplicate reply %+v, original sequence %d", r, tc.original.Sequence)
			}
			if got, want := testsupport.MustJSON(t, r.Events), testsupport.MustJSON(t, tc.original.Events); got != want {
				t.Fatalf("duplicate events differ from the original:\n got %s\nwant %s", got, want)
			}
		})
	}
	if last, err := n.EventLog().LastSequence(context.Background(), lbRef("db1")); err != nil || last != 5 {
		t.Fatalf("event log at %d (%v), want 5: a duplicate wrote events", last, err)
	}

	// A rejected command id is a duplicate too: the same rejection, even
	// though the state would now accept the command.
	r := command(t, nc, api.Command{AggregateID: "db1", Command: "switchOff", CommandID: "dup-5"})
	wantError(t, r.Error, r.OK, api.CodeRejected)
	mustOK(t, nc, api.Command{AggregateID: "db1", Command: "screwIn", CommandID: "dup-6", Args: json.RawMessage(`{"location":"hall"}`)})
	mustOK(t, nc, api.Command{AggregateID: "db1", Command: "switchOn", CommandID: "dup-7"})
	r = command(t, nc, api.Command{AggregateID: "db1", Command: "switchOff", CommandID: "dup-5"})
	wantError(t, r.Error, r.OK, api.CodeRejected)
	if r.Error.Reason != lightbulb.ReasonAlreadyOff || !r.Duplicate {
		t.Fatalf("retried rejection: reason %q, duplicate %v; want the recorded %q, duplicate true", r.Error.Reason, r.Duplicate, lightbulb.ReasonAlreadyOff)
	}

	// Reusing an id for another command or aggregate is a client bug.
	for _, c := range []api.Command{
		{AggregateID: "db1", Command: "blow", CommandID: "dup-1"},
		{AggregateID: "db2", Command: "create", CommandID: "dup-1", Args: json.RawMessage(`{"wattage":60}`)},
	} {
		r := command(t, nc, c)
		wantError(t, r.Error, r.OK, api.CodeInvalidRequest, "dup-1")
	}
	assertNothingWritten(t, n, lbRef("db2"), "")

	// Every event went on the bus once: the duplicates published nothing.
	var names []string
	for range 7 {
		_, e := nextEvent(t, sub)
		names = append(names, e.VersionedName().String())
	}
	if m, err := sub.NextMsg(50 * time.Millisecond); !errors.Is(err, nats.ErrTimeout) {
		t.Fatalf("a duplicate published again: %v %s (after %v)", err, m.Data, names)
	}
}

// TestQueries covers the query subject: the primary state, a second view,
// as-of queries by event time, and the errors.
func TestQueries(t *testing.T) {
	n := startNode(t, testConfig(t))
	nc := testsupport.Connect(t, n.ClientURL())

	at := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339Nano) }
	for _, c := range []api.Command{
		{AggregateID: "qb1", Command: "create", Args: json.RawMessage(`{"wattage":60}`), Timestamp: at(0)},
		{AggregateID: "qb1", Command: "screwIn", Args: json.RawMessage(`{"location":"hall"}`), Timestamp: at(time.Minute)},
		{AggregateID: "qb1", Command: "switchOn", Timestamp: at(2 * time.Minute)},
		{AggregateID: "qb1", Command: "switchOff", Timestamp: at(2*time.Minute + 10*time.Second)},
	} {
		mustOK(t, nc, c)
	}

	decode := func(t *testing.T, q api.QueryReply, v any) {
		t.Helper()
		if !q.OK {
			t.Fatalf("query failed: %v", q.Error)
		}
		if err := json.Unmarshal(q.State, v); err != nil {
			t.Fatalf("state %s: %v", q.State, err)
		}
	}

	t.Run("state", func(t *testing.T) {
		q := query(t, nc, api.Query{AggregateID: "qb1"})
		var b lightbulb.Bulb
		decode(t, q, &b)
		if !q.Exists || q.Sequence != 4 || q.View != "state" || q.AggregateID != "qb1" || q.AggregateType != "lightbulb" {
			t.Fatalf("reply %+v", q)
		}
		if want := (lightbulb.Bulb{Wattage: 60, Location: "hall", ScrewedIn: true}); b != want {
			t.Fatalf("state %+v, want %+v", b, want)
		}
	})
	t.Run("usage view", func(t *testing.T) {
		q := query(t, nc, api.Query{AggregateID: "qb1", View: "usage"})
		var u lightbulb.Usage
		decode(t, q, &u)
		if q.View != "usage" || q.Sequence != 4 || u.OnMillis != 10_000 || u.Switches != 1 || u.OnSince != nil {
			t.Fatalf("usage %+v (reply %+v)", u, q)
		}
	})
	t.Run("state as of", func(t *testing.T) {
		q := query(t, nc, api.Query{AggregateID: "qb1", AsOf: at(2*time.Minute + 5*time.Second)})
		var b lightbulb.Bulb
		decode(t, q, &b)
		if q.Sequence != 0 || q.Prefix == nil || q.Prefix.Events != 3 || !b.On {
			t.Fatalf("as of 2m05s the bulb was on, after the first 3 events in event time (and no log sequence); got %+v, sequence %d, prefix %+v", b, q.Sequence, q.Prefix)
		}
		q = query(t, nc, api.Query{AggregateID: "qb1", AsOf: at(-time.Second)})
		if !q.OK || q.Exists || q.Sequence != 0 {
			t.Fatalf("before creation the bulb did not exist; got %+v", q)
		}
	})
	t.Run("usage as of", func(t *testing.T) {
		q := query(t, nc, api.Query{AggregateID: "qb1", View: "usage", AsOf: at(2*time.Minute + 5*time.Second)})
		var u lightbulb.Usage
		decode(t, q, &u)
		if u.Switches != 1 || u.OnSince == nil || !u.OnSince.Equal(t0.Add(2*time.Minute)) {
			t.Fatalf("usage as of 2m05s: %+v", u)
		}
	})
	t.Run("unknown aggregate", func(t *testing.T) {
		q := query(t, nc, api.Query{AggregateID: "nobody"})
		if !q.OK || q.Exists || q.Sequence != 0 {
			t.Fatalf("reply %+v", q)
		}
	})
	for _, tc := range []struct {
		name    string
		subject string
		body    string
		code    api.Code
		mention []string
	}{
		{"unknown view", "", `{"aggregateId":"qb1","view":"wattHours"}`, api.CodeInvalidRequest, []string{"wattHours", "usage"}},
		{"bad asOf", "", `{"aggregateId":"qb1","asOf":"yesterday"}`, api.CodeInvalidRequest, []string{"yesterday"}},
		{"missing aggregate id", "", `{"view":"usage"}`, api.CodeInvalidRequest, []string{"aggregate id"}},
		{"malformed JSON", "", `{"aggregateId":`, api.CodeInvalidRequest, nil},
		{"unknown field", "", `{"aggregateId":"qb1","veiw":"usage"}`, api.CodeInvalidRequest, []string{"veiw"}},
		{"unknown aggregate type", "concursus.query.toaster", `{"aggregateId":"qb1"}`, api.CodeUnknownAggregateType, []string{"toaster"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subject := tc.subject
			if subject == "" {
				subject = api.QuerySubject("concursus", "lightbulb")
			}
			var q api.QueryReply
			request(t, nc, subject, []byte(tc.body), &q)
			wantError(t, q.Error, q.OK, tc.code, tc.mention...)
		})
	}
}

// TestAdminInfo asks a node about itself.
func TestAdminInfo(t *testing.T) {
	n := startNode(t, testConfig(t))
	nc := testsupport.Connect(t, n.ClientURL())
	mustOK(t, nc, api.Command{AggregateID: "ib1", Command: "create", Args: json.RawMessage(`{"wattage":60}`)})

	var info api.Info
	raw := request(t, nc, api.AdminInfoSubject("concursus"), nil, &info)
	if info.NodeID != "test-node" || info.Version == "" || info.Prefix != "concursus" ||
		!slices.Equal(info.AggregateTypes, []string{"lightbulb"}) || info.Started.IsZero() {
		t.Fatalf("info: %s", raw)
	}
	if info.Stats.Accepted != 1 {
		t.Fatalf("stats %+v, want 1 accepted", info.Stats)
	}
}

// TestCustomPrefix: every subject moves under the configured prefix and
// nothing answers under the default one.
func TestCustomPrefix(t *testing.T) {
	cfg := testConfig(t)
	cfg.Prefix = "acme.bulbs"
	n := startNode(t, cfg)
	nc := testsupport.Connect(t, n.ClientURL())
	sub := subscribe(t, nc, "acme.bulbs.events.lightbulb.*.*")

	var r api.Reply
	request(t, nc, "acme.bulbs.cmd.lightbulb", []byte(`{"aggregateId":"cb1","command":"create","args":{"wattage":60}}`), &r)
	if !r.OK {
		t.Fatalf("command under the custom prefix: %v", r.Error)
	}
	m, e := nextEvent(t, sub)
	if m.Subject != "acme.bulbs.events.lightbulb.created_0."+api.AggregateToken("lightbulb", "cb1") || e.EventID != r.Events[0].EventID {
		t.Fatalf("event on %s: %+v", m.Subject, e)
	}
	var q api.QueryReply
	request(t, nc, "acme.bulbs.query.lightbulb", []byte(`{"aggregateId":"cb1"}`), &q)
	if !q.OK || !q.Exists || q.Sequence != 1 {
		t.Fatalf("query under the custom prefix: %+v", q)
	}
	var info api.Info
	request(t, nc, "acme.bulbs.admin.info", nil, &info)
	if info.Prefix != "acme.bulbs" {
		t.Fatalf("info prefix %q", info.Prefix)
	}
	for _, subj := range []string{cmdSubject, "concursus.query.lightbulb", "concursus.admin.info"} {
		if _, err := nc.Request(subj, []byte(`{"aggregateId":"cb1","command":"blow"}`), reqTimeout); !errors.Is(err, nats.ErrNoResponders) {
			t.Errorf("%s: want no responders under the default prefix, got %v", subj, err)
		}
	}
}
