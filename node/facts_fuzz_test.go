package node

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/model"
)

// FuzzDecodeFacts is the fuzz target of the facts request parser
// (invariant 8): it never panics; a request refused as a whole has a typed
// error and no results; an accepted one has one result slot per fact, and
// every fact it did not refuse holds valid identifiers, a defined-looking
// versioned name, a timestamp, a JSON payload, and decodes the same again
// after re-encoding.
//
//	go test -run x -fuzz FuzzDecodeFacts -fuzztime 30s ./node
func FuzzDecodeFacts(f *testing.F) {
	ts := "2026-12-03T18:00:00Z"
	for _, seed := range []string{
		`{"aggregateId":"b1","event":"created_0","timestamp":"` + ts + `","payload":{"wattage":60}}`,
		`{"facts":[{"aggregateId":"b1","event":"switchedOn_0","timestamp":"` + ts + `","streamId":"s"},{"aggregateId":"b2","event":"switchedOff_12","timestamp":"` + ts + `"}],"timeoutMs":500}`,
		`{"facts":[]}`, `{"facts":null}`, `{"facts":[{}]}`, `{}`, `[]`, `null`, ``, `{"facts":[{"aggregateId":"b\u0000"}]}`,
		`{"aggregateId":"a","AGGREGATEID":"b","event":"created_0","timestamp":"` + ts + `"}`,
		`{"aggregateId":"a","event":"created_00","timestamp":"` + ts + `"}`,
		`{"aggregateId":"a","event":"created_0","timestamp":"10000-01-01T00:00:00Z"}`,
		`{"facts":[{"aggregateId":"a","event":"created_0","timestamp":"` + ts + `"}],"aggregateId":"b"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		wire, parsed, results, timeout, apiErr := decodeFacts(data, fuzzMaxPayload, fuzzDefaultTimeout)
		if apiErr != nil {
			wantTypedRefusal(t, apiErr, data)
			if wire != nil || parsed != nil || results != nil {
				t.Fatalf("%q refused with results", data)
			}
			return
		}
		if len(wire) == 0 || len(wire) > api.MaxFactsPerRequest || len(parsed) != len(wire) || len(results) != len(wire) {
			t.Fatalf("%q: %d facts, %d parsed, %d results", data, len(wire), len(parsed), len(results))
		}
		if timeout <= 0 || timeout > time.Duration(api.MaxTimeoutMs)*time.Millisecond {
			t.Fatalf("%q: timeout %v", data, timeout)
		}
		for i := range wire {
			if e := results[i].Error; e != nil {
				wantTypedRefusal(t, e, wire[i])
				continue
			}
			p := parsed[i]
			wantIdentifier(t, "aggregate id", wire[i].AggregateID, model.MaxIDLen, true)
			wantIdentifier(t, "stream id", p.StreamID, model.MaxStreamIDLen, false)
			if p.Name.String() != wire[i].Event || p.Timestamp.IsZero() || !json.Valid(p.Payload) {
				t.Fatalf("%q: fact %d parsed as %+v", data, i, p)
			}
			// Re-encoded alone, the fact decodes to the same.
			again, err := json.Marshal(wire[i])
			if err != nil {
				t.Fatal(err)
			}
			_, parsed2, results2, _, apiErr2 := decodeFacts(again, fuzzMaxPayload, fuzzDefaultTimeout)
			if apiErr2 != nil || results2[0].Error != nil || parsed2[0].Name != p.Name || !parsed2[0].Timestamp.Equal(p.Timestamp) ||
				parsed2[0].StreamID != p.StreamID || !sameJSON(t, parsed2[0].Payload, p.Payload) {
				t.Fatalf("%q: fact %d re-encoded as %s decodes differently: %+v %+v %+v", data, i, again, apiErr2, results2, parsed2)
			}
		}
	})
}
