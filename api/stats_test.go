package api_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/concursus-go/concursus/api"
)

// The component stats ride in ClusterInfo and Info as typed values: they
// encode with the JSON names their components always used, decode back
// to the same values, and are left out when a node has no such component.
func TestClusterInfoStatsJSON(t *testing.T) {
	idem := &api.IdempotencyStats{NodeID: "n1", Addr: "127.0.0.1:7000", GroupID: "g1", Role: "leader", Leader: "n1",
		Term: 3, AppliedIndex: 42, Voters: []string{"n1", "n2", "n3"},
		Filter: api.FilterStats{Entries: 7, Buckets: 2, Bytes: 512, Now: time.Date(2027, 1, 2, 3, 4, 5, 6, time.UTC),
			Window: 10 * time.Minute, GroupID: "g1", TimeJumps: 1},
		Complete: true, Batches: 5, Records: 7, Forwarded: 1, ForwardedRecords: 2}
	pub := &api.PublisherStats{Published: 9, Failed: 1, Watermark: 4, DirtyBuckets: 1, Outbox: true}
	in := api.ClusterInfo{NodeID: "n1", Version: "v1", Clustered: true, Idempotency: idem, Publisher: pub}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"idempotency":{"nodeId":"n1","addr":"127.0.0.1:7000","groupId":"g1","role":"leader","leader":"n1","term":3,"appliedIndex":42,` +
			`"voters":["n1","n2","n3"],"filter":{"entries":7,"buckets":2,"bytes":512,"now":"2027-01-02T03:04:05.000000006Z","window":600000000000,"groupId":"g1","timeJumps":1},` +
			`"complete":true,"batches":5,"records":7,"forwarded":1,"forwardedRecords":2}`,
		`"publisher":{"published":9,"failed":1,"deferred":0,"republished":0,"recovered":0,"watermark":4,"dirtyBuckets":1,"outstanding":0,"outbox":true}`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s\ndoes not contain\n%s", b, want)
		}
	}
	var out api.ClusterInfo
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}

	// Absent: a node without the filter or a publisher.
	for name, v := range map[string]any{"ClusterInfo": api.ClusterInfo{NodeID: "n1"}, "Info": api.Info{NodeID: "n1"}} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if s := string(b); strings.Contains(s, `"idempotency"`) || strings.Contains(s, `"publisher"`) {
			t.Errorf("%s without stats: %s", name, s)
		}
	}
	var absent api.ClusterInfo
	if err := json.Unmarshal([]byte(`{"nodeId":"n1","ready":true}`), &absent); err != nil {
		t.Fatal(err)
	}
	if absent.Idempotency != nil || absent.Publisher != nil {
		t.Errorf("decoded absent stats as %+v, %+v", absent.Idempotency, absent.Publisher)
	}
}

func TestClusterInfoInRing(t *testing.T) {
	info := api.ClusterInfo{Members: []api.ClusterMember{
		{ID: "n1", State: "alive", InRing: true},
		{ID: "n2", State: "alive"}, // left out of the ring
		{ID: "n3", State: "alive", InRing: true},
		{ID: "n4", State: "dead"},
	}}
	if got := info.InRing(); got != 2 {
		t.Errorf("InRing() = %d, want 2", got)
	}
	if got := (api.ClusterInfo{}).InRing(); got != 0 {
		t.Errorf("standalone InRing() = %d, want 0", got)
	}
}
