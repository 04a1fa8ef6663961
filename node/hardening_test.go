package node_test

// Regression tests for issue 13 ("Protocol hardening"): what a foreign
// client found in the NATS API, sent as raw bytes through a real embedded
// NATS server to a real node.

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
)

var (
	querySubject   = api.QuerySubject(api.DefaultPrefix, lightbulb.TypeName)
	historySubject = api.HistorySubject(api.DefaultPrefix, lightbulb.TypeName)
)

// rawRequest is one request as bytes on the wire.
type rawRequest struct {
	name    string
	subject string            // default: the lightbulb command subject
	headers map[string]string // header form when set
	body    string
	mention []string // the error message names these
	// clean lists aggregate ids that must have no events afterwards, cmdID
	// a command id that must not be in the command log.
	clean []string
	cmdID string
}

// send sends r and returns the raw reply.
func (r rawRequest) send(t *testing.T, nc *nats.Conn) []byte {
	t.Helper()
	var raw json.RawMessage
	return requestMsg(t, nc, r.subject, r.headers, []byte(r.body), &raw)
}

// wantRefused sends each request and checks that it gets invalid_request
// naming what is wrong, and that nothing was written for it.
func wantRefused(t *testing.T, n *node.Node, nc *nats.Conn, reqs []rawRequest) {
	t.Helper()
	for _, r := range reqs {
		t.Run(r.name, func(t *testing.T) {
			data := r.send(t, nc)
			var reply struct {
				OK        bool            `json:"ok"`
				Events    json.RawMessage `json:"events"`
				Next      json.RawMessage `json:"next"`
				Sequence  uint64          `json:"sequence"`
				Duplicate bool            `json:"duplicate"`
				Error     *api.Error      `json:"error"`
			}
			if err := json.Unmarshal(data, &reply); err != nil {
				t.Fatalf("reply is not JSON: %v\n%s", err, data)
			}
			wantError(t, reply.Error, reply.OK, api.CodeInvalidRequest, r.mention...)
			if reply.Error.Code.Retryable() {
				t.Errorf("%s is retryable", reply.Error.Code)
			}
			if reply.Events != nil || reply.Next != nil || reply.Sequence != 0 || reply.Duplicate {
				t.Errorf("error reply carries results: %s", data)
			}
			for _, id := range r.clean {
				assertNothingWritten(t, n, lbRef(id), "")
			}
			if r.cmdID != "" {
				assertNothingWritten(t, n, model.Ref{}, r.cmdID)
			}
		})
	}
}

func createArgs(id, cmdID string) api.Command {
	return api.Command{AggregateID: id, Command: "create", CommandID: cmdID, Args: json.RawMessage(`{"wattage":60}`)}
}

// Defect 1: invalid UTF-8 and lone surrogates in any id or name field are
// refused, in both forms, in queries and in history requests, instead of
// being rewritten to U+FFFD (which made distinct ids one aggregate).
func TestInvalidTextIsRefused(t *testing.T) {
	n := startNode(t, testConfig(t))
	nc := testsupport.Connect(t, n.ClientURL())
	// "x\ufffd" is what encoding/json makes of "x\xff", "x\xfe" and
	// "x\ud800": it must stay untouched.
	const collapsed = "x\ufffd"
	hdr := func(kv ...string) map[string]string {
		h := map[string]string{api.HeaderAggregateID: "u-h", api.HeaderCommand: "create", api.HeaderCommandID: "u-h-c"}
		for i := 0; i < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	wantRefused(t, n, nc, []rawRequest{
		{name: "aggregateId with 0xff", body: "{\"aggregateId\":\"x\xff\",\"command\":\"create\",\"commandId\":\"u-1\",\"args\":{\"wattage\":60}}",
			mention: []string{`"aggregateId"`, "UTF-8"}, clean: []string{collapsed}, cmdID: "u-1"},
		{name: "aggregateId with 0xfe", body: "{\"aggregateId\":\"x\xfe\",\"command\":\"create\",\"commandId\":\"u-2\",\"args\":{\"wattage\":60}}",
			mention: []string{"UTF-8"}, clean: []string{collapsed}, cmdID: "u-2"},
		{name: "aggregateId with a truncated sequence", body: "{\"aggregateId\":\"x\xc3\",\"command\":\"create\",\"commandId\":\"u-3\",\"args\":{\"wattage\":60}}",
			mention: []string{"UTF-8"}, clean: []string{collapsed}, cmdID: "u-3"},
		{name: "aggregateId with an encoded surrogate", body: "{\"aggregateId\":\"x\xed\xa0\x80\",\"command\":\"create\",\"commandId\":\"u-4\",\"args\":{\"wattage\":60}}",
			mention: []string{"UTF-8"}, clean: []string{collapsed}, cmdID: "u-4"},
		{name: "aggregateId with a lone high surrogate escape", body: `{"aggregateId":"x\ud800","command":"create","commandId":"u-5","args":{"wattage":60}}`,
			mention: []string{`"aggregateId"`, `\ud800`}, clean: []string{collapsed}, cmdID: "u-5"},
		{name: "aggregateId with a lone low surrogate escape", body: `{"aggregateId":"x\udfff","command":"create","commandId":"u-6","args":{"wattage":60}}`,
			mention: []string{`\udfff`}, clean: []string{collapsed}, cmdID: "u-6"},
		{name: "command name", body: "{\"aggregateId\":\"u-7\",\"command\":\"create\xff\",\"commandId\":\"u-7\",\"args\":{\"wattage\":60}}",
			mention: []string{`"command"`}, clean: []string{"u-7"}, cmdID: "u-7"},
		{name: "commandId", body: "{\"aggregateId\":\"u-8\",\"command\":\"create\",\"commandId\":\"u-8\xff\",\"args\":{\"wattage\":60}}",
			mention: []string{`"commandId"`}, clean: []string{"u-8"}},
		{name: "commandId with a surrogate escape", body: `{"aggregateId":"u-9","command":"create","commandId":"u-9\ud834","args":{"wattage":60}}`,
			mention: []string{`"commandId"`}, clean: []string{"u-9"}},
		{name: "streamId", body: "{\"aggregateId\":\"u-10\",\"command\":\"create\",\"commandId\":\"u-10\",\"streamId\":\"s\xff\",\"args\":{\"wattage\":60}}",
			mention: []string{`"streamId"`}, clean: []string{"u-10"}, cmdID: "u-10"},
		{name: "timestamp", body: "{\"aggregateId\":\"u-11\",\"command\":\"create\",\"commandId\":\"u-11\",\"timestamp\":\"2026-11-21T18:00:00Z\xff\",\"args\":{\"wattage\":60}}",
			clean: []string{"u-11"}, cmdID: "u-11"},
		{name: "a string in args", body: "{\"aggregateId\":\"u-12\",\"command\":\"create\",\"commandId\":\"u-12\",\"args\":{\"wattage\":60,\"x\":\"\xff\"}}",
			mention: []string{`"args.x"`}, clean: []string{"u-12"}, cmdID: "u-12"},
		{name: "a key", body: "{\"aggregateId\":\"u-13\",\"command\":\"create\",\"commandId\":\"u-13\",\"args\":{\"watt\xffage\":60}}",
			mention: []string{"key"}, clean: []string{"u-13"}, cmdID: "u-13"},

		{name: "header form: aggregate id", headers: hdr(api.HeaderAggregateID, "x\xff"), body: `{"wattage":60}`,
			mention: []string{api.HeaderAggregateID, "UTF-8"}, clean: []string{collapsed}, cmdID: "u-h-c"},
		{name: "header form: command", headers: hdr(api.HeaderCommand, "create\xff"), body: `{"wattage":60}`,
			mention: []string{api.HeaderCommand}, clean: []string{"u-h"}, cmdID: "u-h-c"},
		{name: "header form: command id", headers: hdr(api.HeaderCommandID, "c\xff"), body: `{"wattage":60}`,
			mention: []string{api.HeaderCommandID}, clean: []string{"u-h"}},
		{name: "header form: stream", headers: hdr(api.HeaderStream, "s\xff"), body: `{"wattage":60}`,
			mention: []string{api.HeaderStream}, clean: []string{"u-h"}, cmdID: "u-h-c"},
		{name: "header form: args", headers: hdr(), body: "{\"wattage\":60,\"x\":\"\xff\"}",
			mention: []string{"args"}, clean: []string{"u-h"}, cmdID: "u-h-c"},
		{name: "header form: args with a surrogate escape", headers: hdr(), body: `{"wattage":60,"x":"\ud800"}`,
			mention: []string{`\ud800`}, clean: []string{"u-h"}, cmdID: "u-h-c"},

		{name: "query", subject: querySubject, body: "{\"aggregateId\":\"x\xff\"}", mention: []string{"UTF-8"}},
		{name: "query with a surrogate escape", subject: querySubject, body: `{"aggregateId":"x\ud800"}`, mention: []string{`\ud800`}},
		{name: "query view", subject: querySubject, body: "{\"aggregateId\":\"x\",\"view\":\"state\xff\"}", mention: []string{`"view"`}},
		{name: "history", subject: historySubject, body: "{\"aggregateId\":\"x\xff\"}", mention: []string{"UTF-8"}},
		{name: "history with a surrogate escape", subject: historySubject, body: `{"aggregateId":"x\udc00"}`, mention: []string{`\udc00`}},
	})

	// The id the refused requests would have collapsed onto is fresh: a
	// create on it is the first (before the fix it was "already_exists").
	r := mustOK(t, nc, createArgs(collapsed, "u-fresh"))
	if r.Sequence != 1 || r.Duplicate || r.AggregateID != collapsed {
		t.Fatalf("create on %q after the refusals: %+v", collapsed, r)
	}
	// A surrogate pair escapes one valid character, and is accepted.
	var pair api.Reply
	request(t, nc, cmdSubject, []byte(`{"aggregateId":"pair-\ud83d\udca1","command":"create","args":{"wattage":60}}`), &pair)
	if !pair.OK || pair.AggregateID != "pair-💡" {
		t.Fatalf("surrogate pair: %+v", pair)
	}
}

// Defect 3: a key twice in one object, anywhere in the request, is refused
// with the key's name; before, the last one won.
func TestDuplicateKeysAreRefused(t *testing.T) {
	n := startNode(t, testConfig(t))
	nc := testsupport.Connect(t, n.ClientURL())
	headers := map[string]string{api.HeaderAggregateID: "d-h", api.HeaderCommand: "create", api.HeaderCommandID: "d-h-c"}
	wantRefused(t, n, nc, []rawRequest{
		{name: "the issue's envelope", body: `{"aggregateId":"d-a","aggregateId":"d-b","command":"create","command":"switchOff","commandId":"d-1"}`,
			mention: []string{`"aggregateId" appears twice`}, clean: []string{"d-a", "d-b"}, cmdID: "d-1"},
		{name: "command twice", body: `{"aggregateId":"d-2","command":"create","commandId":"d-2","command":"create","args":{"wattage":60}}`,
			mention: []string{`"command" appears twice`}, clean: []string{"d-2"}, cmdID: "d-2"},
		{name: "commandId twice", body: `{"aggregateId":"d-3","command":"create","commandId":"d-3","commandId":"d-3b","args":{"wattage":60}}`,
			mention: []string{`"commandId"`}, clean: []string{"d-3"}, cmdID: "d-3b"},
		{name: "same key in another case", body: `{"aggregateId":"d-4","AggregateId":"d-4b","command":"create","commandId":"d-4","args":{"wattage":60}}`,
			mention: []string{`"AggregateId" appears twice`}, clean: []string{"d-4", "d-4b"}, cmdID: "d-4"},
		{name: "args twice", body: `{"aggregateId":"d-5","command":"create","commandId":"d-5","args":{"wattage":60},"args":{"wattage":70}}`,
			mention: []string{`"args"`}, clean: []string{"d-5"}, cmdID: "d-5"},
		{name: "timeoutMs twice", body: `{"aggregateId":"d-6","command":"create","commandId":"d-6","timeoutMs":1000,"timeoutMs":2000,"args":{"wattage":60}}`,
			mention: []string{`"timeoutMs"`}, clean: []string{"d-6"}, cmdID: "d-6"},
		{name: "an argument twice", body: `{"aggregateId":"d-7","command":"create","commandId":"d-7","args":{"wattage":60,"wattage":70}}`,
			mention: []string{`"wattage" appears twice in "args"`}, clean: []string{"d-7"}, cmdID: "d-7"},
		{name: "an argument twice, header form", headers: headers, body: `{"wattage":60,"wattage":70}`,
			mention: []string{`"wattage" appears twice`}, clean: []string{"d-h"}, cmdID: "d-h-c"},
		{name: "an argument twice in another case, header form", headers: headers, body: `{"wattage":60,"WATTAGE":70}`,
			mention: []string{`"WATTAGE"`}, clean: []string{"d-h"}, cmdID: "d-h-c"},
		{name: "query", subject: querySubject, body: `{"aggregateId":"d-8","aggregateId":"d-9"}`, mention: []string{`"aggregateId" appears twice`}},
		{name: "query view twice", subject: querySubject, body: `{"aggregateId":"d-8","view":"state","view":"usage"}`, mention: []string{`"view"`}},
		{name: "history", subject: historySubject, body: `{"aggregateId":"d-8","from":1,"from":2}`, mention: []string{`"from" appears twice`}},
	})
	// Each key once is fine, also the same key in nested objects.
	mustOK(t, nc, createArgs("d-a", "d-ok"))
}

// Defect 2: a timeout beyond api.MaxTimeoutMs is refused (it used to
// overflow time.Duration: answered "timeout" at once, or wrapped round).
func TestOutOfRangeTimeoutIsRefused(t *testing.T) {
	n := startNode(t, testConfig(t))
	nc := testsupport.Connect(t, n.ClientURL())
	var reqs []rawRequest
	for i, ms := range []string{"3600001", "9223372036854", "9223372036855", "1000000000000000", "1000000000000000000", "9223372036854775807"} {
		id := "t-" + strconv.Itoa(i)
		reqs = append(reqs,
			rawRequest{name: "envelope " + ms, body: `{"aggregateId":"` + id + `","command":"create","commandId":"` + id + `","args":{"wattage":60},"timeoutMs":` + ms + `}`,
				mention: []string{ms, "out of range", strconv.FormatInt(api.MaxTimeoutMs, 10)}, clean: []string{id}, cmdID: id},
			rawRequest{name: "header " + ms, headers: map[string]string{api.HeaderAggregateID: id + "h", api.HeaderCommand: "create", api.HeaderCommandID: id + "h", api.HeaderTimeout: ms},
				body: `{"wattage":60}`, mention: []string{api.HeaderTimeout, "out of range"}, clean: []string{id + "h"}, cmdID: id + "h"})
	}
	reqs = append(reqs,
		rawRequest{name: "envelope beyond int64", body: `{"aggregateId":"t-big","command":"create","commandId":"t-big","args":{"wattage":60},"timeoutMs":92233720368547758070}`,
			mention: []string{"timeoutMs"}, clean: []string{"t-big"}, cmdID: "t-big"},
		rawRequest{name: "header beyond int64", headers: map[string]string{api.HeaderAggregateID: "t-bigh", api.HeaderCommand: "create", api.HeaderTimeout: "92233720368547758070"},
			body: `{"wattage":60}`, mention: []string{api.HeaderTimeout}, clean: []string{"t-bigh"}})
	wantRefused(t, n, nc, reqs)

	// The maximum itself is accepted and the command runs.
	c := createArgs("t-max", "t-max")
	c.TimeoutMs = api.MaxTimeoutMs
	if r := mustOK(t, nc, c); r.Sequence != 1 {
		t.Fatalf("create with the maximum timeout: %+v", r)
	}
	var r api.Reply
	raw := requestMsg(t, nc, "", map[string]string{api.HeaderAggregateID: "t-maxh", api.HeaderCommand: "create",
		api.HeaderTimeout: strconv.FormatInt(api.MaxTimeoutMs, 10)}, []byte(`{"wattage":60}`), &r)
	if !r.OK {
		t.Fatalf("header form with the maximum timeout: %s", raw)
	}
}

// Defect 5: one rule set for every identifier — valid UTF-8, no control
// characters, a byte limit — in both forms.
func TestIdentifierRules(t *testing.T) {
	n := startNode(t, testConfig(t))
	nc := testsupport.Connect(t, n.ClientURL())
	env := func(id, cmdID, stream string) string {
		return `{"aggregateId":` + testsupport.MustJSON(t, id) + `,"command":"create","commandId":` + testsupport.MustJSON(t, cmdID) +
			`,"streamId":` + testsupport.MustJSON(t, stream) + `,"args":{"wattage":60}}`
	}
	hdr := func(id, cmdID, stream string) map[string]string {
		return map[string]string{api.HeaderAggregateID: id, api.HeaderCommand: "create", api.HeaderCommandID: cmdID, api.HeaderStream: stream}
	}
	long := func(c string, n int) string { return strings.Repeat(c, n) }
	wantRefused(t, n, nc, []rawRequest{
		{name: "NUL in streamId (the issue)", body: env("i-1", "i-1", "s\x00"), mention: []string{`"streamId"`, "U+0000"}, clean: []string{"i-1"}, cmdID: "i-1"},
		{name: "NUL in streamId, header form", headers: hdr("i-2", "i-2", "s\x00"), body: `{"wattage":60}`, mention: []string{api.HeaderStream, "U+0000"}, clean: []string{"i-2"}, cmdID: "i-2"},
		{name: "tab in aggregateId", body: env("i\t3", "i-3", ""), mention: []string{"U+0009"}, clean: []string{"i\t3"}, cmdID: "i-3"},
		{name: "escape in commandId", body: env("i-4", "i\x1b4", ""), mention: []string{`"commandId"`, "U+001B"}, clean: []string{"i-4"}},
		{name: "DEL in streamId", body: env("i-5", "i-5", "s\x7f"), mention: []string{"U+007F"}, clean: []string{"i-5"}, cmdID: "i-5"},
		{name: "line break in command", body: `{"aggregateId":"i-6","command":"cre\nate","commandId":"i-6"}`, mention: []string{`"command"`, "U+000A"}, clean: []string{"i-6"}, cmdID: "i-6"},
		{name: "tab in a header aggregate id", headers: hdr("i\t7", "i-7", ""), body: `{"wattage":60}`, mention: []string{api.HeaderAggregateID, "U+0009"}, clean: []string{"i\t7"}, cmdID: "i-7"},
		{name: "stream id over its limit", body: env("i-8", "i-8", long("s", model.MaxStreamIDLen+1)), mention: []string{"stream id is 257 bytes, limit 256"}, clean: []string{"i-8"}, cmdID: "i-8"},
		{name: "stream id over its limit, header form", headers: hdr("i-9", "i-9", long("s", model.MaxStreamIDLen+1)), body: `{"wattage":60}`, mention: []string{"257"}, clean: []string{"i-9"}, cmdID: "i-9"},
		{name: "command id over its limit, header form", headers: hdr("i-10", long("c", model.MaxCommandIDLen+1), ""), body: `{"wattage":60}`, mention: []string{"129 bytes, limit 128"}, clean: []string{"i-10"}},
		{name: "aggregate id over its limit, counted in bytes", body: env(long("é", model.MaxIDLen/2+1), "i-11", ""), mention: []string{"258 bytes, limit 256"}, cmdID: "i-11"},
		{name: "command over its limit", body: `{"aggregateId":"i-12","command":"` + long("c", model.MaxNameLen+1) + `"}`, mention: []string{"command name is 257 bytes"}, clean: []string{"i-12"}},
		{name: "control character in a query's id", subject: querySubject, body: `{"aggregateId":"q\u0000"}`, mention: []string{"U+0000"}},
		{name: "control character in a view name", subject: querySubject, body: `{"aggregateId":"q","view":"st\u0001ate"}`, mention: []string{"view name", "U+0001"}},
		{name: "control character in a history id", subject: historySubject, body: `{"aggregateId":"q\t"}`, mention: []string{"U+0009"}},
		{name: "history id over its limit", subject: historySubject, body: `{"aggregateId":"` + long("h", model.MaxIDLen+1) + `"}`, mention: []string{"257 bytes"}},
	})

	// At the limits, and with any printable Unicode, the ids are fine.
	ok := []api.Command{
		{AggregateID: long("a", model.MaxIDLen), Command: "create", CommandID: long("c", model.MaxCommandIDLen), StreamID: long("s", model.MaxStreamIDLen), Args: json.RawMessage(`{"wattage":60}`)},
		{AggregateID: "bulb 💡 «é» / a.b*>", Command: "create", CommandID: "ключ-1", StreamID: "stream\u00a0two", Args: json.RawMessage(`{"wattage":60}`)},
	}
	for _, c := range ok {
		r := mustOK(t, nc, c)
		if r.AggregateID != c.AggregateID || r.CommandID != c.CommandID || r.Events[0].StreamID != c.StreamID {
			t.Errorf("accepted %+v, replied %+v", c, r)
		}
	}
}

// Defect 6: a history reply always carries "events" (an empty array when
// there are none) and "next" (0 when done), as the README shows; limit
// caps a page.
func TestHistoryReplyShape(t *testing.T) {
	n := startNode(t, testConfig(t))
	nc := testsupport.Connect(t, n.ClientURL())
	mustOK(t, nc, createArgs("hs", "hs-1"))
	mustOK(t, nc, api.Command{AggregateID: "hs", Command: "screwIn", Args: json.RawMessage(`{"location":"hall"}`)})
	mustOK(t, nc, api.Command{AggregateID: "hs", Command: "switchOn"})

	tests := []struct {
		name, body string
		events     int
		want       []string // fragments of the raw reply
	}{
		{name: "empty history", body: `{"aggregateId":"nobody"}`, want: []string{`"events":[]`, `"next":0`}},
		{name: "whole history", body: `{"aggregateId":"hs"}`, events: 3, want: []string{`"next":0`}},
		{name: "cut by limit", body: `{"aggregateId":"hs","limit":2}`, events: 2, want: []string{`"next":3`}},
		{name: "the rest", body: `{"aggregateId":"hs","from":3,"limit":2}`, events: 1, want: []string{`"next":0`}},
		{name: "range past the end", body: `{"aggregateId":"hs","from":7}`, want: []string{`"events":[]`, `"next":0`}},
		{name: "limit above the maximum is the maximum", body: `{"aggregateId":"hs","limit":100000}`, events: 3, want: []string{`"next":0`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r api.HistoryReply
			raw := request(t, nc, historySubject, []byte(tt.body), &r)
			if !r.OK || len(r.Events) != tt.events {
				t.Fatalf("%s: %s", tt.body, raw)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(raw), w) {
					t.Errorf("reply %s lacks %s", raw, w)
				}
			}
		})
	}
	var r api.HistoryReply
	raw := request(t, nc, historySubject, []byte(`{"aggregateId":"hs","limit":-1}`), &r)
	wantError(t, r.Error, r.OK, api.CodeInvalidRequest, "limit")
	if strings.Contains(string(raw), `"events"`) || strings.Contains(string(raw), `"next"`) {
		t.Errorf("failed reply %s carries events or next", raw)
	}
}

// Defect 4: a command id reused with other arguments is refused with
// invalid_request (as common practice for idempotency keys is), from both
// request forms; the same arguments written differently are the same
// request, answered as a duplicate.
func TestCommandIDReusedWithOtherArguments(t *testing.T) {
	n := startNode(t, testConfig(t))
	nc := testsupport.Connect(t, n.ClientURL())
	mustOK(t, nc, createArgs("reuse", "reuse-create"))
	first := mustOK(t, nc, api.Command{AggregateID: "reuse", Command: "screwIn", CommandID: "reuse-screw", Args: json.RawMessage(`{"location":"hall"}`)})
	again := mustOK(t, nc, api.Command{AggregateID: "reuse", Command: "screwIn", CommandID: "reuse-screw", Args: json.RawMessage(` { "location" : "hall" } `)})
	if !again.Duplicate || again.Sequence != first.Sequence {
		t.Fatalf("same arguments, spaced differently: %+v, want the first outcome as a duplicate", again)
	}
	for _, r := range []rawRequest{
		{name: "envelope", body: `{"aggregateId":"reuse","command":"screwIn","commandId":"reuse-screw","args":{"location":"attic"}}`},
		{name: "headers", headers: map[string]string{api.HeaderAggregateID: "reuse", api.HeaderCommand: "screwIn", api.HeaderCommandID: "reuse-screw"}, body: `{"location":"attic"}`},
	} {
		var reply api.Reply
		if err := json.Unmarshal(r.send(t, nc), &reply); err != nil {
			t.Fatal(err)
		}
		if reply.OK || reply.Error == nil || reply.Error.Code != api.CodeInvalidRequest || !strings.Contains(reply.Error.Message, "other arguments") {
			t.Errorf("%s: reused id with other arguments: %+v, want invalid_request naming the other arguments", r.name, reply)
		}
	}
	if last, _ := n.EventLog().LastSequence(t.Context(), model.Ref{Type: lightbulb.TypeName, ID: "reuse"}); last != 2 {
		t.Errorf("log at %d, want 2", last)
	}
}
