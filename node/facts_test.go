package node_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
)

var factsSubject = api.FactsSubject(api.DefaultPrefix, lightbulb.TypeName)

func facts(t *testing.T, nc *nats.Conn, body any) (api.FactsReply, []byte) {
	t.Helper()
	b, ok := body.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	}
	var r api.FactsReply
	raw := request(t, nc, factsSubject, b, &r)
	return r, raw
}

// bulbFactsAt is the example for one bulb: created 18:00,
// screwedIn 18:05, switchedOn 18:20, switchedOff 18:10, switchedOn 18:12.
func bulbFactsAt(id string, day time.Time) []api.Fact {
	at := func(m int) string { return day.Add(time.Duration(m) * time.Minute).Format(time.RFC3339) }
	return []api.Fact{
		{AggregateID: id, Event: "created_0", Timestamp: at(0), Payload: json.RawMessage(`{"wattage":60}`)},
		{AggregateID: id, Event: "screwedIn_0", Timestamp: at(5), Payload: json.RawMessage(`{"location":"hall"}`)},
		{AggregateID: id, Event: "switchedOn_0", Timestamp: at(20)},
		{AggregateID: id, Event: "switchedOff_0", Timestamp: at(10)},
		{AggregateID: id, Event: "switchedOn_0", Timestamp: at(12), StreamID: "sensor-7"},
	}
}

var evening = time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)

// answers is what must not depend on arrival order: state, usage, and
// both as of several instants.
func answers(t *testing.T, nc *nats.Conn, id string) []string {
	t.Helper()
	var out []string
	for _, asOf := range []string{"", "2026-12-03T17:00:00Z", "2026-12-03T18:07:00Z", "2026-12-03T18:11:00Z", "2026-12-03T18:15:00Z", "2027-01-01T00:00:00Z"} {
		for _, view := range []string{"", "usage"} {
			r := query(t, nc, api.Query{AggregateID: id, View: view, AsOf: asOf})
			if !r.OK {
				t.Fatalf("query %s %s as of %s: %+v", id, view, asOf, r.Error)
			}
			last := ""
			if r.Prefix.LastTimestamp != nil {
				last = r.Prefix.LastTimestamp.Format(time.RFC3339)
			}
			out = append(out, fmt.Sprintf("%s@%s exists=%v events=%d waiting=%d last=%s %s", view, asOf, r.Exists, r.Prefix.Events, r.Prefix.Waiting, last, r.State))
		}
	}
	return out
}

func TestFactsOverNATS(t *testing.T) {
	n := startNode(t, testConfig(t))
	nc := testsupport.Connect(t, n.ClientURL())

	// One request, facts arriving out of order: answered fact by fact.
	r, raw := facts(t, nc, api.FactsRequest{Facts: bulbFactsAt("f1", evening)})
	if !r.OK || len(r.Results) != 5 {
		t.Fatalf("facts: %s", raw)
	}
	for i, res := range r.Results {
		if !res.OK || res.Sequence != uint64(i+1) || res.Duplicate || res.Place != "applied" {
			t.Errorf("fact %d: %+v", i, res)
		}
	}
	if !r.Results[3].Late || !r.Results[4].Late || r.Results[2].Late {
		t.Errorf("late marks: %s", raw)
	}
	// The state folds in event time: off at 18:10, on at 18:12 and 18:20.
	q := query(t, nc, api.Query{AggregateID: "f1"})
	var b lightbulb.Bulb
	_ = json.Unmarshal(q.State, &b)
	if !b.On || q.Prefix.Events != 5 || q.Sequence != 5 || q.Prefix.LastTimestamp == nil || !q.Prefix.LastTimestamp.Equal(evening.Add(20*time.Minute)) {
		t.Errorf("state: %+v %s", q, q.State)
	}
	// As of 18:11: the event-time prefix created, screwedIn, switchedOff.
	q = query(t, nc, api.Query{AggregateID: "f1", AsOf: "2026-12-03T18:11:00Z"})
	_ = json.Unmarshal(q.State, &b)
	if b.On || !b.ScrewedIn || q.Prefix.Events != 3 || q.Sequence != 0 || !q.Prefix.LastTimestamp.Equal(evening.Add(10*time.Minute)) {
		t.Errorf("as of 18:11: %+v %s", q, q.State)
	}

	// Sent again, one by one in the single-fact form: duplicates.
	for i, f := range bulbFactsAt("f1", evening) {
		r, raw := facts(t, nc, f)
		if !r.OK || len(r.Results) != 1 || !r.Results[0].Duplicate || r.Results[0].Sequence != uint64(i+1) {
			t.Errorf("resend %d: %s", i, raw)
		}
	}

	// The same facts shuffled, for other bulbs, in random batches: the
	// same answers as the in-order bulb.
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	inOrder := bulbFactsAt("in-order", evening)
	for _, i := range []int{0, 1, 3, 4, 2} {
		if r, raw := facts(t, nc, inOrder[i]); !r.OK {
			t.Fatalf("in order: %s", raw)
		}
	}
	want := answers(t, nc, "in-order")
	for round := range 5 {
		id := fmt.Sprintf("shuffled-%d", round)
		fs := bulbFactsAt(id, evening)
		rng.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
		for len(fs) > 0 {
			k := 1 + rng.IntN(len(fs))
			if r, raw := facts(t, nc, api.FactsRequest{Facts: fs[:k]}); !r.OK {
				t.Fatalf("seed %d: %s", seed, raw)
			}
			fs = fs[k:]
		}
		got := answers(t, nc, id)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("seed %d %s:\nwant %s\n got %s", seed, id, want[i], got[i])
			}
		}
	}
}

func TestFactsBadInput(t *testing.T) {
	n := startNode(t, testConfig(t))
	nc := testsupport.Connect(t, n.ClientURL())
	ts := evening.Format(time.RFC3339)
	// Refused as a whole: nothing stored.
	for _, body := range []string{
		``, `{`, `[]`, `{"facts":[]}`, `{"facts":"x"}`,
		`{"facts":[{"aggregateId":"x","event":"created_0","timestamp":"` + ts + `"}],"aggregateId":"y"}`,
		`{"aggregateId":"a","aggregateId":"b","event":"created_0","timestamp":"` + ts + `"}`,
		`{"facts":[{"aggregateId":"a","event":"created_0","timestamp":"` + ts + `"}],"timeoutMs":-1}`,
	} {
		r, raw := facts(t, nc, []byte(body))
		if r.OK || r.Error == nil || r.Error.Code != api.CodeInvalidRequest || len(r.Results) != 0 {
			t.Errorf("%q: %s", body, raw)
		}
	}
	// Refused fact by fact; the good one in the same request is stored.
	bad := []api.Fact{
		{AggregateID: "", Event: "created_0", Timestamp: ts},
		{AggregateID: "b\x00", Event: "created_0", Timestamp: ts},
		{AggregateID: "b", Event: "created", Timestamp: ts},
		{AggregateID: "b", Event: "exploded_0", Timestamp: ts},
		{AggregateID: "b", Event: "created_0", Timestamp: ""},
		{AggregateID: "b", Event: "created_0", Timestamp: "yesterday"},
		{AggregateID: "b", Event: "created_0", Timestamp: ts, Payload: json.RawMessage(`{"wattage":"sixty"}`)},
		{AggregateID: "b", Event: "created_0", Timestamp: ts, StreamID: "s\x01"},
		{AggregateID: "good", Event: "created_0", Timestamp: ts, Payload: json.RawMessage(`{"wattage":60}`)},
	}
	codes := []api.Code{api.CodeInvalidRequest, api.CodeInvalidRequest, api.CodeInvalidRequest, api.CodeUnknownEvent,
		api.CodeInvalidRequest, api.CodeInvalidRequest, api.CodeInvalidRequest, api.CodeInvalidRequest}
	r, raw := facts(t, nc, api.FactsRequest{Facts: bad})
	if r.OK || len(r.Results) != len(bad) {
		t.Fatalf("%s", raw)
	}
	for i, c := range codes {
		if res := r.Results[i]; res.OK || res.Error == nil || res.Error.Code != c {
			t.Errorf("fact %d (%+v): %+v, want %s", i, bad[i], res, c)
		}
	}
	if res := r.Results[len(bad)-1]; !res.OK || res.Sequence != 1 {
		t.Errorf("good fact: %+v", res)
	}
	for _, id := range []string{"b", "x", "a"} {
		if seq, err := n.EventLog().LastSequence(t.Context(), lbRef(id)); err != nil || seq != 0 {
			t.Errorf("%s has %d events after refused facts (%v)", id, seq, err)
		}
	}
	// Unknown type; after the terminal event.
	var ur api.FactsReply
	request(t, nc, api.FactsSubject(api.DefaultPrefix, "toaster"), []byte(`{"aggregateId":"t","event":"created_0","timestamp":"`+ts+`"}`), &ur)
	if ur.OK || ur.Error == nil || ur.Error.Code != api.CodeUnknownAggregateType {
		t.Errorf("unknown type: %+v", ur)
	}
	facts(t, nc, api.Fact{AggregateID: "good", Event: "blown_0", Timestamp: evening.Add(time.Hour).Format(time.RFC3339)})
	r, raw = facts(t, nc, api.Fact{AggregateID: "good", Event: "switchedOn_0", Timestamp: evening.Add(2 * time.Hour).Format(time.RFC3339)})
	if e := r.Results[0].Error; r.OK || e == nil || e.Code != api.CodeRejected || e.Reason != model.ReasonTerminated {
		t.Errorf("fact after the terminal event: %s", raw)
	}
}

func TestClusterFactsGoToTheirOwners(t *testing.T) {
	c := newTestCluster(t, 3)
	nc := testsupport.Connect(t, c.url)
	var all []api.Fact
	for i := range 30 {
		all = append(all, bulbFactsAt(fmt.Sprintf("cb-%d", i), evening)...)
	}
	rand.New(rand.NewPCG(7, 7)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	for _, resend := range []bool{false, true} {
		r, raw := facts(t, nc, api.FactsRequest{Facts: all})
		if !r.OK || len(r.Results) != len(all) {
			t.Fatalf("resend=%v: %.500s", resend, raw)
		}
		for i, res := range r.Results {
			if res.AggregateID != all[i].AggregateID || res.Duplicate != resend {
				t.Fatalf("resend=%v fact %d: %+v for %+v", resend, i, res, all[i])
			}
		}
	}
	// Each aggregate's facts were stored by its owner, once.
	nodes := c.list()
	var total int64
	for _, n := range nodes {
		total += n.Executor().Stats().Facts
	}
	if total != int64(len(all)) {
		t.Errorf("%d facts stored across the nodes, want %d", total, len(all))
	}
	for i := range 30 {
		id := fmt.Sprintf("cb-%d", i)
		q := query(t, nc, api.Query{AggregateID: id})
		if q.Prefix == nil || q.Prefix.Events != 5 || q.Sequence != 5 {
			t.Errorf("%s: %+v", id, q)
		}
	}
}
