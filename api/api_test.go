package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/model"
)

// A successful history reply always names its events and where to go on;
// a failed one carries only the error.
func TestHistoryReplyJSON(t *testing.T) {
	tests := []struct {
		name  string
		reply api.HistoryReply
		want  string
	}{
		{name: "empty history", reply: api.HistoryReply{OK: true, AggregateType: "lightbulb", AggregateID: "b1"},
			want: `{"ok":true,"aggregateType":"lightbulb","aggregateId":"b1","events":[],"next":0}`},
		{name: "cut by the limit", reply: api.HistoryReply{OK: true, AggregateID: "b1",
			Events: []model.Event{{AggregateType: "lightbulb", AggregateID: "b1", Sequence: 1}}, Next: 2},
			want: `"next":2`},
		{name: "failed", reply: api.HistoryReply{AggregateType: "toaster", Error: &api.Error{Code: api.CodeUnknownAggregateType, Message: "no"}},
			want: `{"ok":false,"aggregateType":"toaster","error":{"code":"unknown_aggregate_type","message":"no"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.reply)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want[0] == '{' && string(b) != tt.want {
				t.Fatalf("got  %s\nwant %s", b, tt.want)
			}
			if !strings.Contains(string(b), tt.want) {
				t.Fatalf("%s does not contain %s", b, tt.want)
			}
			// The pointer marshals the same, and the reply decodes back.
			p, err := json.Marshal(&tt.reply)
			if err != nil || string(p) != string(b) {
				t.Fatalf("pointer: %s, %v; value: %s", p, err, b)
			}
			var back api.HistoryReply
			if err := json.Unmarshal(b, &back); err != nil || back.OK != tt.reply.OK || back.Next != tt.reply.Next ||
				len(back.Events) != len(tt.reply.Events) || (back.Error == nil) != (tt.reply.Error == nil) {
				t.Fatalf("decoded %+v, %v; want %+v", back, err, tt.reply)
			}
		})
	}
}

// An event's subject ends in its aggregate's token: the aggregate hash in
// 16 hexadecimal digits, leading zeros kept. The values are the contract
// (consumers compute them in any language) and never change.
func TestEventSubjectNamesTheAggregate(t *testing.T) {
	tests := []struct {
		id, token string
	}{
		{"cb1", "c8ff040d22086510"},
		{"b1", "0795975d99336cf2"},
	}
	for _, tt := range tests {
		if got := api.AggregateToken("lightbulb", tt.id); got != tt.token {
			t.Errorf("AggregateToken(lightbulb, %s) = %s, want %s", tt.id, got, tt.token)
		}
		want := "concursus.events.lightbulb.created_0." + tt.token
		if got := api.EventSubject("concursus", "lightbulb", model.VersionedName{Name: "created"}, tt.id); got != want {
			t.Errorf("EventSubject = %s, want %s", got, want)
		}
	}
}
