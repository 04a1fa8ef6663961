package node_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
)

// oversized is a well-formed screwIn envelope of exactly size bytes.
func oversized(size int) string {
	head := `{"aggregateId":"bad-big","command":"screwIn","commandId":"c-big","args":{"location":"`
	tail := `"}}`
	return head + strings.Repeat("x", size-len(head)-len(tail)) + tail
}

// TestBadInput sends one kind of bad request per case and checks the typed
// error it gets, that the error names what is wrong, and that nothing
// reached either log (invariant 5) or the bus.
func TestBadInput(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxPayload = 2048
	n := startNode(t, cfg)
	nc := testsupport.Connect(t, n.ClientURL())
	events := subscribe(t, nc, "concursus.events.>")

	tests := []struct {
		name    string
		subject string            // default: concursus.cmd.lightbulb
		headers map[string]string // header mode when set
		body    string
		// aggType/aggID and cmdID are what must not be in the logs.
		aggType, aggID, cmdID string
		code                  api.Code
		mention               []string
		// echo: the reply names the aggregate id and command id sent.
		echo bool
	}{
		{name: "malformed JSON", body: `{"aggregateId":"bad-1","command":"create","commandId":"c-1","args":{"wattage":60}`,
			aggID: "bad-1", cmdID: "c-1", code: api.CodeInvalidRequest, mention: []string{"JSON"}},
		{name: "not JSON at all", body: `create bad-2 60W`,
			aggID: "bad-2", code: api.CodeInvalidRequest, mention: []string{"JSON"}},
		{name: "envelope with a misspelt field", body: `{"aggregateId":"bad-3","comand":"create","commandId":"c-3"}`,
			aggID: "bad-3", cmdID: "c-3", code: api.CodeInvalidRequest, mention: []string{"comand"}},
		{name: "unknown aggregate type", subject: "concursus.cmd.toaster",
			body:    `{"aggregateId":"bad-4","command":"create","commandId":"c-4","args":{"wattage":60}}`,
			aggType: "toaster", aggID: "bad-4", cmdID: "c-4", code: api.CodeUnknownAggregateType, mention: []string{"toaster"}, echo: true},
		{name: "unknown command", body: `{"aggregateId":"bad-5","command":"explode","commandId":"c-5"}`,
			aggID: "bad-5", cmdID: "c-5", code: api.CodeUnknownCommand, mention: []string{"explode"}, echo: true},
		{name: "missing aggregate id", body: `{"command":"create","commandId":"c-6","args":{"wattage":60}}`,
			cmdID: "c-6", code: api.CodeInvalidRequest, mention: []string{"aggregate id"}},
		{name: "missing aggregate id, header mode", headers: map[string]string{api.HeaderCommand: "create", api.HeaderCommandID: "c-7"},
			body: `{"wattage":60}`, cmdID: "c-7", code: api.CodeInvalidRequest, mention: []string{"aggregate id"}},
		{name: "missing command name", body: `{"aggregateId":"bad-8","commandId":"c-8","args":{"wattage":60}}`,
			aggID: "bad-8", cmdID: "c-8", code: api.CodeInvalidRequest, mention: []string{"command name"}, echo: true},
		{name: "empty payload", body: ``, code: api.CodeInvalidRequest, mention: []string{"empty"}},
		{name: "oversized payload", body: oversized(4096),
			aggID: "bad-big", cmdID: "c-big", code: api.CodeInvalidRequest, mention: []string{"4096", "2048"}},
		{name: "oversized payload, header mode",
			headers: map[string]string{api.HeaderAggregateID: "bad-big2", api.HeaderCommand: "screwIn", api.HeaderCommandID: "c-big2"},
			body:    `{"location":"` + strings.Repeat("y", 4096) + `"}`,
			aggID:   "bad-big2", cmdID: "c-big2", code: api.CodeInvalidRequest, mention: []string{"2048"}},
		{name: "wrong argument type", body: `{"aggregateId":"bad-10","command":"create","commandId":"c-10","args":{"wattage":"sixty"}}`,
			aggID: "bad-10", cmdID: "c-10", code: api.CodeInvalidRequest, mention: []string{"wattage", "string"}, echo: true},
		{name: "wrong argument type, header mode",
			headers: map[string]string{api.HeaderAggregateID: "bad-11", api.HeaderCommand: "create", api.HeaderCommandID: "c-11"},
			body:    `{"wattage":"sixty"}`, aggID: "bad-11", cmdID: "c-11", code: api.CodeInvalidRequest, mention: []string{"wattage"}, echo: true},
		{name: "unknown argument field", body: `{"aggregateId":"bad-12","command":"create","commandId":"c-12","args":{"wattage":60,"colour":"red"}}`,
			aggID: "bad-12", cmdID: "c-12", code: api.CodeInvalidRequest, mention: []string{"colour"}, echo: true},
		{name: "arguments to a command that takes none", body: `{"aggregateId":"bad-13","command":"switchOn","commandId":"c-13","args":{"brightness":3}}`,
			aggID: "bad-13", cmdID: "c-13", code: api.CodeInvalidRequest, mention: []string{"brightness"}, echo: true},
		{name: "args an array", body: `{"aggregateId":"bad-14","command":"create","commandId":"c-14","args":[60]}`,
			aggID: "bad-14", cmdID: "c-14", code: api.CodeInvalidRequest, mention: []string{"object"}, echo: true},
		{name: "args a number", body: `{"aggregateId":"bad-15","command":"create","commandId":"c-15","args":60}`,
			aggID: "bad-15", cmdID: "c-15", code: api.CodeInvalidRequest, mention: []string{"object"}, echo: true},
		{name: "args a string, header mode",
			headers: map[string]string{api.HeaderAggregateID: "bad-16", api.HeaderCommand: "create", api.HeaderCommandID: "c-16"},
			body:    `"wattage=60"`, aggID: "bad-16", cmdID: "c-16", code: api.CodeInvalidRequest, mention: []string{"object"}, echo: true},
		{name: "args with trailing data, header mode",
			headers: map[string]string{api.HeaderAggregateID: "bad-17", api.HeaderCommand: "create", api.HeaderCommandID: "c-17"},
			body:    `{"wattage":60} {"wattage":70}`, aggID: "bad-17", cmdID: "c-17", code: api.CodeInvalidRequest, echo: true},
		{name: "invalid timestamp", body: `{"aggregateId":"bad-18","command":"create","commandId":"c-18","args":{"wattage":60},"timestamp":"yesterday"}`,
			aggID: "bad-18", cmdID: "c-18", code: api.CodeInvalidRequest, mention: []string{"yesterday", "RFC 3339"}, echo: true},
		{name: "timestamp out of range", body: `{"aggregateId":"bad-19","command":"create","commandId":"c-19","args":{"wattage":60},"timestamp":"0000-01-01T00:00:00Z"}`,
			aggID: "bad-19", cmdID: "c-19", code: api.CodeInvalidRequest, mention: []string{"range"}, echo: true},
		{name: "invalid timestamp, header mode",
			headers: map[string]string{api.HeaderAggregateID: "bad-20", api.HeaderCommand: "create", api.HeaderCommandID: "c-20", api.HeaderTimestamp: "21/11/2026 18:00"},
			body:    `{"wattage":60}`, aggID: "bad-20", cmdID: "c-20", code: api.CodeInvalidRequest, mention: []string{"21/11/2026 18:00"}, echo: true},
		{name: "negative timeout", body: `{"aggregateId":"bad-21","command":"create","commandId":"c-21","args":{"wattage":60},"timeoutMs":-1}`,
			aggID: "bad-21", cmdID: "c-21", code: api.CodeInvalidRequest, mention: []string{"negative"}, echo: true},
		{name: "negative timeout, header mode",
			headers: map[string]string{api.HeaderAggregateID: "bad-22", api.HeaderCommand: "create", api.HeaderCommandID: "c-22", api.HeaderTimeout: "-5"},
			body:    `{"wattage":60}`, aggID: "bad-22", cmdID: "c-22", code: api.CodeInvalidRequest, mention: []string{"negative"}, echo: true},
		{name: "timeout not a number, header mode",
			headers: map[string]string{api.HeaderAggregateID: "bad-23", api.HeaderCommand: "create", api.HeaderCommandID: "c-23", api.HeaderTimeout: "soon"},
			body:    `{"wattage":60}`, aggID: "bad-23", cmdID: "c-23", code: api.CodeInvalidRequest, mention: []string{api.HeaderTimeout, "soon"}},
		{name: "Validate fails", body: `{"aggregateId":"bad-24","command":"create","commandId":"c-24","args":{"wattage":0}}`,
			aggID: "bad-24", cmdID: "c-24", code: api.CodeInvalidRequest, mention: []string{"wattage must be between 1 and 10000"}, echo: true},
		{name: "Validate fails on absent args", body: `{"aggregateId":"bad-25","command":"create","commandId":"c-25"}`,
			aggID: "bad-25", cmdID: "c-25", code: api.CodeInvalidRequest, mention: []string{"wattage"}, echo: true},
		{name: "aggregate id too long", body: `{"aggregateId":"` + strings.Repeat("a", model.MaxIDLen+1) + `","command":"create","commandId":"c-26","args":{"wattage":60}}`,
			aggID: strings.Repeat("a", model.MaxIDLen+1), cmdID: "c-26", code: api.CodeInvalidRequest, mention: []string{"257"}},
		{name: "aggregate id with a line break", body: `{"aggregateId":"bad\n27","command":"create","commandId":"c-27","args":{"wattage":60}}`,
			aggID: "bad\n27", cmdID: "c-27", code: api.CodeInvalidRequest, mention: []string{"line break"}},
		{name: "command id too long", body: `{"aggregateId":"bad-28","command":"create","commandId":"` + strings.Repeat("c", api.MaxCommandIDLen+1) + `","args":{"wattage":60}}`,
			aggID: "bad-28", cmdID: strings.Repeat("c", api.MaxCommandIDLen+1), code: api.CodeInvalidRequest, mention: []string{"129", "128"}},
		{name: "stream id too long", body: `{"aggregateId":"bad-29","command":"create","commandId":"c-29","args":{"wattage":60},"streamId":"` + strings.Repeat("s", model.MaxIDLen+1) + `"}`,
			aggID: "bad-29", cmdID: "c-29", code: api.CodeInvalidRequest, mention: []string{"stream id"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r api.Reply
			raw := requestMsg(t, nc, tc.subject, tc.headers, []byte(tc.body), &r)
			wantError(t, r.Error, r.OK, tc.code, tc.mention...)
			if r.Sequence != 0 || len(r.Events) != 0 || r.Duplicate {
				t.Errorf("error reply carries results: %s", raw)
			}
			if tc.echo && (r.AggregateID != tc.aggID || r.CommandID != tc.cmdID) {
				t.Errorf("reply names %q/%q, want the request's %q/%q", r.AggregateID, r.CommandID, tc.aggID, tc.cmdID)
			}
			aggType := tc.aggType
			if aggType == "" {
				aggType = lightbulb.TypeName
			}
			assertNothingWritten(t, n, model.Ref{Type: aggType, ID: tc.aggID}, tc.cmdID)
		})
	}

	st := n.Executor().Stats()
	if st.Accepted != 0 || st.Rejected != 0 || st.Appended != 0 || int(st.Invalid) != len(tests) {
		t.Errorf("stats after bad input only: %+v; want %d invalid and nothing else", st, len(tests))
	}

	// An id of an invalid request was never recorded, so it can still be
	// used for a good command, which runs.
	r := mustOK(t, nc, api.Command{AggregateID: "bad-24", Command: "create", CommandID: "c-24", Args: json.RawMessage(`{"wattage":60}`)})
	if r.Duplicate || r.Sequence != 1 {
		t.Fatalf("command after its invalid attempt: %+v", r)
	}
	// And the first event on the bus is that one: no bad request published.
	_, e := nextEvent(t, events)
	if e.AggregateID != "bad-24" || e.CommandID != "c-24" {
		t.Fatalf("first published event is %s by %s; a bad request published something", e.Ref(), e.CommandID)
	}
}

// TestRejectionRecordedWithoutEvents: a domain rejection is a decision, so
// the command log records it (a retry gets the same answer), but it writes
// no events.
func TestRejectionRecordedWithoutEvents(t *testing.T) {
	n := startNode(t, testConfig(t))
	nc := testsupport.Connect(t, n.ClientURL())
	ctx := context.Background()

	cases := []struct {
		name, id, cmd, cmdID, reason string
		setup                        []api.Command
		wantSeq                      uint64
	}{
		{name: "switchOn before screwIn", id: "rj1", cmd: "switchOn", cmdID: "rj-on", reason: lightbulb.ReasonNotScrewedIn,
			setup:   []api.Command{{AggregateID: "rj1", Command: "create", Args: json.RawMessage(`{"wattage":60}`)}},
			wantSeq: 1},
		{name: "command to a bulb that does not exist", id: "rj2", cmd: "blow", cmdID: "rj-none", reason: model.ReasonNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range tc.setup {
				mustOK(t, nc, c)
			}
			r := command(t, nc, api.Command{AggregateID: tc.id, Command: tc.cmd, CommandID: tc.cmdID})
			wantError(t, r.Error, r.OK, api.CodeRejected)
			if r.Error.Reason != tc.reason || r.CommandID != tc.cmdID {
				t.Fatalf("reason %q command id %q; want %q %q", r.Error.Reason, r.CommandID, tc.reason, tc.cmdID)
			}
			rec, err := n.CommandLog().Get(ctx, tc.cmdID)
			if err != nil {
				t.Fatalf("rejection not in the command log: %v", err)
			}
			if rec.Outcome != commandlog.Rejected || rec.Code != string(api.CodeRejected) || rec.Reason != tc.reason ||
				rec.Ref != lbRef(tc.id) || rec.Command != tc.cmd || rec.Message == "" || rec.At.IsZero() {
				t.Fatalf("command log record %+v", rec)
			}
			last, err := n.EventLog().LastSequence(ctx, lbRef(tc.id))
			if err != nil || last != tc.wantSeq {
				t.Fatalf("event log at %d (%v), want %d: the rejection wrote events", last, err, tc.wantSeq)
			}
		})
	}
}

// TestHeaderModeWithoutCommandHeader: a request that uses the Concursus
// headers but forgets Concursus-Command must be told so, not have its
// arguments parsed as an envelope.
func TestHeaderModeWithoutCommandHeader(t *testing.T) {
	n := startNode(t, testConfig(t))
	nc := testsupport.Connect(t, n.ClientURL())
	var r api.Reply
	requestMsg(t, nc, "", map[string]string{api.HeaderAggregateID: "hm1", api.HeaderCommandID: "hm-1"}, []byte(`{"wattage":60}`), &r)
	wantError(t, r.Error, r.OK, api.CodeInvalidRequest, api.HeaderCommand)
	assertNothingWritten(t, n, lbRef("hm1"), "hm-1")
}
