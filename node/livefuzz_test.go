//go:build fuzzlive

package node_test

// TestLiveFuzz sends a seeded stream of generated requests — valid ones and
// malformed ones made from them — to a running node over NATS, as a
// foreign client would, and checks afterwards that
//
//   - every request got a reply: JSON with "ok":true, or an error with a
//     known code and a message;
//   - every aggregate's history (read over the history subject) holds
//     exactly the events of the commands the node accepted, and no event of
//     a refused command.
//
// By default it starts its own node (embedded NATS, fresh data directory);
// -livefuzz.url sends to a node that is already running instead (use a
// fresh -livefuzz.prefix, or data directory, for every run there):
//
//	go test -tags fuzzlive -run TestLiveFuzz -v ./node
//	go test -tags fuzzlive -run TestLiveFuzz -v ./node -livefuzz.seed=42 -livefuzz.n=5000
//	go run ./cmd/node --nats-port 14222 --data-dir /tmp/x &
//	go test -tags fuzzlive -run TestLiveFuzz -v ./node -livefuzz.url=nats://127.0.0.1:14222
//
// The seed is printed; the same seed sends the same stream. The requests go
// one at a time, so the outcome depends on the seed only.

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
)

var (
	liveSeed   = flag.Uint64("livefuzz.seed", 0, "seed of the generated requests (0: pick one and print it; env LIVEFUZZ_SEED)")
	liveN      = flag.Int("livefuzz.n", 2000, "how many requests to send")
	liveURL    = flag.String("livefuzz.url", "", "NATS URL of a running node (default: start one)")
	livePrefix = flag.String("livefuzz.prefix", "", "aggregate id prefix (default: lf<seed>-)")
)

// knownCodes are the stable error codes (api.Code*). A code not listed here
// fails the test: add new codes when the API gains them.
var knownCodes = map[api.Code]bool{
	api.CodeInvalidRequest: true, api.CodeUnknownAggregateType: true, api.CodeUnknownCommand: true,
	api.CodeRejected: true, api.CodeConflict: true, api.CodeUnavailable: true, api.CodeTimeout: true,
}

// refusals are the codes of a request refused before the domain saw it.
var refusals = map[api.Code]bool{api.CodeInvalidRequest: true, api.CodeUnknownAggregateType: true, api.CodeUnknownCommand: true}

// liveGen generates requests from a seeded source.
type liveGen struct {
	r      *rand.Rand
	prefix string
	ids    []string // the aggregate pool
	sent   []sentCommand
	nextID int
}

// sentCommand is a well-formed command, kept so that it can be sent again
// (a retry with the same command id).
type sentCommand struct {
	env api.Command
}

// liveRequest is one request as it goes on the wire.
type liveRequest struct {
	kind    string // what the generator meant: "valid", "retry", or the mutation
	subject string
	header  nats.Header
	body    []byte
	// siblings are valid aggregate ids a broken request could have been
	// mistaken for (an id whose bad bytes became U+FFFD): they must hold
	// nothing unless a command was accepted for them.
	siblings []string
	// mustRefuse: the request is invalid whatever the aggregate's state,
	// so an "ok" reply is a failure.
	mustRefuse bool
	// badArgs: the arguments do not decode into the command's type; it
	// must not be accepted.
	badArgs bool
}

func (g *liveGen) pick(s ...string) string { return s[g.r.IntN(len(s))] }

// validCommand makes a well-formed lightbulb command on an aggregate of the
// pool (the domain may still reject it).
func (g *liveGen) validCommand() api.Command {
	c := api.Command{AggregateID: g.ids[g.r.IntN(len(g.ids))]}
	switch g.r.IntN(7) {
	case 0, 1:
		c.Command, c.Args = "create", json.RawMessage(`{"wattage":`+strconv.Itoa(1+g.r.IntN(200))+`}`)
	case 2:
		c.Command, c.Args = "screwIn", json.RawMessage(`{"location":"`+g.pick("hall", "kitchen", "attic", "été", "💡")+`"}`)
	case 3:
		c.Command = "switchOn"
	case 4:
		c.Command = "switchOff"
	case 5:
		c.Command = "unscrew"
	default:
		if g.r.IntN(4) == 0 {
			c.Command = "blow"
		} else {
			c.Command = "switchOn"
		}
	}
	if g.r.IntN(5) != 0 {
		g.nextID++
		c.CommandID = fmt.Sprintf("%sc%d", g.prefix, g.nextID)
	}
	if g.r.IntN(4) == 0 {
		c.StreamID = g.pick("s1", "s2", "field-7")
	}
	if g.r.IntN(4) == 0 {
		c.Timestamp = time.Date(2026, 11, 21, 18, g.r.IntN(60), g.r.IntN(60), 0, time.UTC).Format(time.RFC3339Nano)
	}
	c.TimeoutMs = 60_000 // generous: the outcome must not depend on timing
	return c
}

func (g *liveGen) envelope(c api.Command) []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err)
	}
	return b
}

func (g *liveGen) headerForm(c api.Command) (nats.Header, []byte) {
	h := nats.Header{}
	set := func(k, v string) {
		if v != "" {
			h.Set(k, v)
		}
	}
	set(api.HeaderAggregateID, c.AggregateID)
	set(api.HeaderCommand, c.Command)
	set(api.HeaderCommandID, c.CommandID)
	set(api.HeaderStream, c.StreamID)
	set(api.HeaderTimestamp, c.Timestamp)
	if c.TimeoutMs != 0 {
		h.Set(api.HeaderTimeout, strconv.FormatInt(c.TimeoutMs, 10))
	}
	return h, c.Args
}

// next makes the next request.
func (g *liveGen) next(cmdSubj, querySubj, historySubj string) liveRequest {
	switch n := g.r.IntN(100); {
	case n < 30: // a valid command
		c := g.validCommand()
		if c.CommandID != "" {
			g.sent = append(g.sent, sentCommand{c})
		}
		req := liveRequest{kind: "valid", subject: cmdSubj}
		if g.r.IntN(3) == 0 {
			req.kind = "valid headers"
			req.header, req.body = g.headerForm(c)
		} else {
			req.body = g.envelope(c)
		}
		return req
	case n < 35 && len(g.sent) > 0: // a retry, byte for byte the same request
		c := g.sent[g.r.IntN(len(g.sent))].env
		return liveRequest{kind: "retry", subject: cmdSubj, body: g.envelope(c)}
	case n < 42: // a query, maybe broken
		body := `{"aggregateId":"` + g.ids[g.r.IntN(len(g.ids))] + `"` + g.pick("", `,"view":"usage"`, `,"view":"nope"`, `,"asOf":"2026-11-21T18:30:00Z"`) + `}`
		return g.maybeBreak(liveRequest{kind: "query", subject: querySubj, body: []byte(body)})
	case n < 47: // a history request, maybe broken
		body := `{"aggregateId":"` + g.ids[g.r.IntN(len(g.ids))] + `"` + g.pick("", `,"from":2`, `,"limit":1`, `,"to":1`, `,"limit":-3`, `,"from":9,"to":2`) + `}`
		return g.maybeBreak(liveRequest{kind: "history", subject: historySubj, body: []byte(body)})
	default: // a malformed command made from a valid one
		c := g.validCommand()
		return g.mutate(c, cmdSubj)
	}
}

// maybeBreak applies a byte-level mutation to a request half of the time.
func (g *liveGen) maybeBreak(req liveRequest) liveRequest {
	if g.r.IntN(2) == 0 {
		return req
	}
	req.kind += " " + g.byteMutation(&req.body)
	return req
}

// byteMutation changes raw bytes: flips, truncation, insertion of bytes
// that are not UTF-8 or of a lone surrogate escape.
func (g *liveGen) byteMutation(b *[]byte) string {
	data := slices.Clone(*b)
	if len(data) == 0 {
		data = []byte("{}")
	}
	i := g.r.IntN(len(data))
	switch g.r.IntN(6) {
	case 0:
		data[i] ^= byte(1 << g.r.IntN(8))
		*b = data
		return "bit flip"
	case 1:
		*b = data[:i]
		return "truncated"
	case 2:
		*b = slices.Insert(data, i, []byte(g.pick("\xff", "\xc3", "\xed\xa0\x80", "\x00", "\"", "\\", "}", ","))...)
		return "byte inserted"
	case 3:
		*b = slices.Insert(data, i, []byte(g.pick(`\ud800`, `\udfff`, `\u0000`, `\ud83d\ude00`))...)
		return "escape inserted"
	case 4:
		*b = append(data, g.pick(" ", "{}", "x", "\n", "null")...)
		return "trailing data"
	default:
		n := g.r.IntN(64)
		junk := make([]byte, n)
		for k := range junk {
			junk[k] = byte(g.r.IntN(256))
		}
		*b = junk
		return "random bytes"
	}
}

// mutate makes a malformed request out of a valid command.
func (g *liveGen) mutate(c api.Command, cmdSubj string) liveRequest {
	req := liveRequest{subject: cmdSubj, mustRefuse: true}
	id := c.AggregateID
	// textual envelope surgery: a valid envelope with one field rewritten
	raw := func(extra string) []byte {
		b := g.envelope(c)
		return append(b[:len(b)-1], []byte(extra+"}")...)
	}
	switch g.r.IntN(16) {
	case 0:
		req.kind = "aggregateId not UTF-8"
		bad := id + g.pick("\xff", "\xfe", "\xc3", "\xed\xa0\x80")
		c.AggregateID = "PLACEHOLDER"
		req.body = []byte(strings.Replace(string(g.envelope(c)), "PLACEHOLDER", bad, 1))
		req.siblings = []string{id + "\ufffd"}
	case 1:
		req.kind = "aggregateId with a lone surrogate"
		c.AggregateID = "PLACEHOLDER"
		req.body = []byte(strings.Replace(string(g.envelope(c)), "PLACEHOLDER", id+g.pick(`\ud800`, `\udbff`, `\udc00`), 1))
		req.siblings = []string{id + "\ufffd"}
	case 2:
		req.kind = "other field not UTF-8"
		field := g.pick("command", "commandId", "streamId")
		c.CommandID, c.StreamID = "cid", "sid"
		b := string(g.envelope(c))
		val := map[string]string{"command": c.Command, "commandId": "cid", "streamId": "sid"}[field]
		req.body = []byte(strings.Replace(b, `"`+field+`":"`+val+`"`, `"`+field+`":"`+val+"\xff"+`"`, 1))
	case 3:
		req.kind = "duplicate aggregateId"
		other := g.ids[g.r.IntN(len(g.ids))]
		req.body = raw(`,"aggregateId":"` + other + `"`)
	case 4:
		req.kind = "duplicate command"
		req.body = raw(`,"command":"` + g.pick("create", "switchOff", "blow") + `"`)
	case 5:
		req.kind = "duplicate key in another case"
		// Both spellings present: make sure the optional fields are.
		if c.CommandID == "" {
			g.nextID++
			c.CommandID = fmt.Sprintf("%sc%d", g.prefix, g.nextID)
		}
		if c.Args == nil {
			c.Args = json.RawMessage(`{}`)
		}
		req.body = raw(`,"` + g.pick("AggregateId", "COMMAND", "Args", "commandID") + `":` + g.pick(`"x"`, `{}`, `"lf"`))
	case 6:
		if c.Args == nil {
			c.Command, c.Args = "create", json.RawMessage(`{"wattage":60}`)
		}
		a := string(c.Args)
		key := g.pick("wattage", "location", "Wattage", "LOCATION", "colour")
		if strings.Contains(strings.ToLower(a), `"`+strings.ToLower(key)+`"`) {
			req.kind = "duplicate argument"
		} else {
			// An argument the command does not take: refused when the
			// arguments are decoded, before any state check.
			req.kind = "unknown argument"
			req.mustRefuse, req.badArgs = true, true
		}
		c.Args = json.RawMessage(a[:len(a)-1] + `,"` + key + `":1}`)
		req.body = g.envelope(c)
	case 7:
		req.kind = "timeout out of range"
		c.TimeoutMs = 0
		req.body = raw(`,"timeoutMs":` + g.pick("3600001", "9223372036855", "1000000000000000", "1000000000000000000", "9223372036854775807", "-1", "1e3", "\"5\""))
	case 8:
		req.kind = "control character in an id"
		cc := string(rune(g.pick("\x00", "\t", "\n", "\x1b", "\x7f")[0]))
		switch g.r.IntN(3) {
		case 0:
			c.AggregateID += cc
		case 1:
			c.CommandID += cc
		default:
			c.StreamID += cc
		}
		req.body = g.envelope(c)
	case 9:
		req.kind = "id over its limit"
		switch g.r.IntN(3) {
		case 0:
			c.AggregateID = id + strings.Repeat("a", model.MaxIDLen)
		case 1:
			c.CommandID = strings.Repeat("c", model.MaxCommandIDLen+1)
		default:
			c.StreamID = strings.Repeat("s", model.MaxStreamIDLen+1)
		}
		req.body = g.envelope(c)
	case 10:
		req.kind = "header form, bad header"
		h, body := g.headerForm(c)
		switch g.r.IntN(4) {
		case 0:
			h.Set(api.HeaderAggregateID, id+"\xff")
			req.siblings = []string{id + "\ufffd"}
		case 1:
			h.Set(api.HeaderStream, "s\x00")
		case 2:
			h.Set(api.HeaderTimeout, g.pick("9223372036855", "-5", "soon", "1000000000000000"))
		default:
			h.Set(api.HeaderCommandID, "c\xfe")
		}
		req.header, req.body = h, body
	case 11:
		req.kind = "header form, bad args"
		h, _ := g.headerForm(c)
		req.header = h
		req.body = []byte(g.pick(`{"wattage":60,"wattage":61}`, "{\"location\":\"h\xffall\"}", `{"location":"\ud800"}`, `[60]`, `{"wattage":`, `{"wattage":60} {}`))
	case 12:
		req.kind = "unknown field or wrong type"
		req.body = raw(g.pick(`,"comand":"x"`, `,"streamId":7`, `,"args2":{}`, `,"timestamp":"yesterday"`))
	case 13:
		req.kind = "unknown command or type"
		if g.r.IntN(2) == 0 {
			c.Command = g.pick("explode", "Create", "create ", "")
			req.body = g.envelope(c)
		} else {
			req.subject = strings.TrimSuffix(cmdSubj, "lightbulb") + "toaster"
			req.body = g.envelope(c)
		}
	default:
		req.body = g.envelope(c)
		req.kind = g.byteMutation(&req.body)
		req.mustRefuse = false // a flipped byte may leave a valid request
	}
	return req
}

// liveReply is what any reply must decode into.
type liveReply struct {
	OK          bool          `json:"ok"`
	AggregateID string        `json:"aggregateId"`
	CommandID   string        `json:"commandId"`
	Events      []model.Event `json:"events"`
	Duplicate   bool          `json:"duplicate"`
	Error       *api.Error    `json:"error"`
}

func TestLiveFuzz(t *testing.T) {
	seed := testsupport.Seed(t, *liveSeed, "LIVEFUZZ_SEED")
	t.Logf("seed %d (rerun: go test -tags fuzzlive -run TestLiveFuzz ./node -livefuzz.seed=%d)", seed, seed)
	defer func() {
		if t.Failed() {
			t.Logf("failed with seed %d", seed)
		}
	}()

	url := *liveURL
	if url == "" {
		n := startNode(t, testConfig(t))
		url = n.ClientURL()
	}
	nc := testsupport.Connect(t, url)
	prefix := *livePrefix
	if prefix == "" {
		prefix = "lf" + strconv.FormatUint(seed, 10) + "-"
	}
	g := &liveGen{r: rand.New(rand.NewPCG(seed, 0x13)), prefix: prefix}
	for i := range 40 {
		g.ids = append(g.ids, fmt.Sprintf("%sb%d", prefix, i))
	}
	cmdSubj := api.CommandSubject(api.DefaultPrefix, "lightbulb")
	querySubj := api.QuerySubject(api.DefaultPrefix, "lightbulb")
	historySubj := api.HistorySubject(api.DefaultPrefix, "lightbulb")

	type fate int
	const (
		refused fate = iota + 1
		accepted
		unknown // timeout or unavailable: it may or may not have run
	)
	acceptedEvents := map[string]map[string]model.Event{} // aggregate id -> event id -> event
	commandFate := map[string]fate{}                      // command id -> what its replies said
	checkIDs := map[string]bool{}                         // aggregate ids to read back
	for _, id := range g.ids {
		checkIDs[id] = true
	}
	kinds := map[string]int{}
	codes := map[string]int{}
	for i := range *liveN {
		req := g.next(cmdSubj, querySubj, historySubj)
		kinds[strings.SplitN(req.kind, " ", 2)[0]]++
		for _, s := range req.siblings {
			checkIDs[s] = true
		}
		m := nats.NewMsg(req.subject)
		m.Header = req.header
		m.Data = req.body
		reply, err := nc.RequestMsg(m, 30*time.Second)
		if err != nil {
			t.Fatalf("request %d (%s) %q on %s with %v: no reply: %v", i, req.kind, req.body, req.subject, req.header, err)
		}
		var r liveReply
		if err := json.Unmarshal(reply.Data, &r); err != nil {
			t.Fatalf("request %d (%s) %q: reply is not JSON: %v\n%s", i, req.kind, req.body, err, reply.Data)
		}
		switch {
		case r.OK && r.Error != nil, !r.OK && r.Error == nil:
			t.Fatalf("request %d (%s) %q: reply is neither ok nor an error: %s", i, req.kind, req.body, reply.Data)
		case r.Error != nil && (!knownCodes[r.Error.Code] || r.Error.Message == ""):
			t.Fatalf("request %d (%s) %q: unknown error code or no message: %s", i, req.kind, req.body, reply.Data)
		case req.mustRefuse && (r.OK || !refusals[r.Error.Code]):
			// Not accepted, not rejected (which is recorded), not worth a
			// retry: refused before it reached the domain.
			t.Fatalf("request %d (%s) %q with headers %v: want invalid_request or unknown_*, got %s", i, req.kind, req.body, req.header, reply.Data)
		case req.badArgs && r.OK:
			t.Fatalf("request %d (%s) %q: arguments that do not decode were accepted: %s", i, req.kind, req.body, reply.Data)
		case req.badArgs && r.Error.Code == api.CodeRejected:
			// Issue 13's fuzzing found these (a command to an ended
			// aggregate was rejected "terminated" before its arguments
			// were decoded, and recorded); arguments are decoded first now.
			t.Fatalf("request %d (%s) %q: arguments that do not decode were answered rejected (%s) and recorded", i, req.kind, req.body, r.Error.Reason)
		}
		if r.OK {
			codes["ok"]++
		} else {
			codes[string(r.Error.Code)]++
		}
		if req.subject != cmdSubj {
			continue
		}
		switch {
		case r.OK:
			if r.CommandID == "" || r.AggregateID == "" {
				t.Fatalf("request %d (%s) %q: accepted without ids: %s", i, req.kind, req.body, reply.Data)
			}
			commandFate[r.CommandID] = accepted
			checkIDs[r.AggregateID] = true
			for _, e := range r.Events {
				if e.AggregateID != r.AggregateID || e.CommandID != r.CommandID {
					t.Fatalf("request %d: reply for %s/%s carries event %+v", i, r.AggregateID, r.CommandID, e)
				}
				if acceptedEvents[e.AggregateID] == nil {
					acceptedEvents[e.AggregateID] = map[string]model.Event{}
				}
				acceptedEvents[e.AggregateID][e.EventID] = e
			}
		case r.Error.Code.Retryable():
			if r.CommandID != "" && commandFate[r.CommandID] != accepted {
				commandFate[r.CommandID] = unknown
			}
			if r.AggregateID != "" {
				checkIDs[r.AggregateID] = true
			}
		default:
			if r.CommandID != "" && commandFate[r.CommandID] == 0 {
				commandFate[r.CommandID] = refused
			}
		}
	}
	t.Logf("sent %d requests: %v; replies: %v", *liveN, kinds, codes)

	// Read back every history and compare it with what was accepted.
	events := 0
	for id := range checkIDs {
		if model.CheckIdentifier("", id, model.MaxIDLen) != nil {
			continue
		}
		var got []model.Event
		for from := uint64(1); ; {
			body, err := json.Marshal(api.HistoryRequest{AggregateID: id, From: from})
			if err != nil {
				t.Fatal(err)
			}
			var h api.HistoryReply
			raw := request(t, nc, historySubj, body, &h)
			if !h.OK || !strings.Contains(string(raw), `"events":`) || !strings.Contains(string(raw), `"next":`) {
				t.Fatalf("history of %q: %s", id, raw)
			}
			got = append(got, h.Events...)
			if h.Next == 0 {
				break
			}
			from = h.Next
		}
		want := acceptedEvents[id]
		seen := 0
		for k, e := range got {
			if e.Sequence != uint64(k+1) {
				t.Errorf("history of %q has a gap: event %d has sequence %d", id, k, e.Sequence)
			}
			if _, ok := want[e.EventID]; ok {
				seen++
				continue
			}
			if commandFate[e.CommandID] != unknown {
				t.Errorf("history of %q holds event %d (%s) of command %q, which was not accepted (fate %d)",
					id, e.Sequence, e.Name, e.CommandID, commandFate[e.CommandID])
			}
		}
		if seen != len(want) {
			t.Errorf("history of %q holds %d of the %d events accepted for it", id, seen, len(want))
		}
		events += len(got)
	}
	t.Logf("read back %d histories, %d events", len(checkIDs), events)
	if codes["ok"] == 0 || codes[string(api.CodeInvalidRequest)] == 0 {
		t.Errorf("the stream exercised too little: %v", codes)
	}
}
