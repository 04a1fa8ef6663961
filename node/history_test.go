package node_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/internal/testsupport"
)

func TestHistoryIsReadFromTheLog(t *testing.T) {
	n := startNode(t, testConfig(t))
	nc := testsupport.Connect(t, n.ClientURL())
	mustOK(t, nc, api.Command{AggregateID: "h1", Command: "create", Args: json.RawMessage(`{"wattage":60}`)})
	mustOK(t, nc, api.Command{AggregateID: "h1", Command: "screwIn", Args: json.RawMessage(`{"location":"hall"}`)})
	for i := range 4 {
		cmd := "switchOn"
		if i%2 == 1 {
			cmd = "switchOff"
		}
		mustOK(t, nc, api.Command{AggregateID: "h1", Command: cmd})
	}
	subject := api.HistorySubject(api.DefaultPrefix, lightbulb.TypeName)
	ask := func(q api.HistoryRequest) api.HistoryReply {
		t.Helper()
		b, _ := json.Marshal(q)
		var r api.HistoryReply
		request(t, nc, subject, b, &r)
		return r
	}
	seqs := func(r api.HistoryReply) string {
		out := ""
		for _, e := range r.Events {
			out += fmt.Sprintf("%d,", e.Sequence)
		}
		return out
	}

	all := ask(api.HistoryRequest{AggregateID: "h1"})
	if !all.OK || seqs(all) != "1,2,3,4,5,6," || all.Next != 0 {
		t.Fatalf("whole history: %+v", all)
	}
	if all.Events[0].Name != "created" || all.Events[0].EventID == "" {
		t.Errorf("first event %+v", all.Events[0])
	}
	if r := ask(api.HistoryRequest{AggregateID: "h1", From: 2, To: 4}); seqs(r) != "2,3,4," || r.Next != 0 {
		t.Errorf("2..4: %s next %d", seqs(r), r.Next)
	}
	r := ask(api.HistoryRequest{AggregateID: "h1", From: 2, Limit: 2})
	if seqs(r) != "2,3," || r.Next != 4 {
		t.Errorf("2, limit 2: %s next %d; want 2,3 and next 4", seqs(r), r.Next)
	}
	if r := ask(api.HistoryRequest{AggregateID: "h1", From: 5, Limit: 2}); seqs(r) != "5,6," || r.Next != 0 {
		t.Errorf("5, limit 2: %s next %d; want 5,6 and the end", seqs(r), r.Next)
	}
	if r := ask(api.HistoryRequest{AggregateID: "nobody"}); !r.OK || len(r.Events) != 0 {
		t.Errorf("unknown aggregate: %+v, want ok and empty", r)
	}

	// Bad input gets a typed error.
	var bad api.HistoryReply
	request(t, nc, subject, []byte(`{"aggregateId":`), &bad)
	wantError(t, bad.Error, bad.OK, api.CodeInvalidRequest)
	r = ask(api.HistoryRequest{})
	wantError(t, r.Error, r.OK, api.CodeInvalidRequest, "aggregate id")
	r = ask(api.HistoryRequest{AggregateID: "h1", From: 5, To: 3})
	wantError(t, r.Error, r.OK, api.CodeInvalidRequest, "before")
	request(t, nc, api.HistorySubject(api.DefaultPrefix, "toaster"), []byte(`{"aggregateId":"x"}`), &bad)
	wantError(t, bad.Error, bad.OK, api.CodeUnknownAggregateType, "toaster")
}
