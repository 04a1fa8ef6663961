package cassandra

// Fuzz target for the one decoding step of this package that needs no
// server: how a processing id is split between the timeuuid and the text
// column when written, and put back together when read (readBucket). The
// rows themselves are decoded by the driver into typed columns. Run with
//
//	go test -run '^$' -fuzz '^FuzzProcessingID$' -fuzztime 30s ./storage/cassandra/
//
// The seed corpus under testdata/fuzz also runs as a plain test.

import (
	"testing"

	"github.com/concursus-go/concursus/model"
	"github.com/gocql/gocql"
)

// FuzzProcessingID: any processing id reads back as written, whichever
// column it was stored in.
func FuzzProcessingID(f *testing.F) {
	f.Add("node-1")
	f.Add("7c9e6679-7425-11ef-8000-0242ac120002")
	f.Add("7C9E6679-7425-11EF-8000-0242AC120002")
	f.Add("7c9e6679-7425-41ef-8000-0242ac120002") // version 4
	f.Add("00000000-0000-0000-0000-000000000000")
	f.Add("7c9e66797425-11ef-8000-0242ac120002ab")
	f.Add("")
	f.Fuzz(func(t *testing.T, id string) {
		// As eventValues writes it (an unset column reads back as the
		// zero value)…
		vals := eventValues(model.Ref{Type: "t", ID: "i"}, 0, &model.Event{ProcessingID: id})
		procID, _ := vals[6].(gocql.UUID)
		procText, _ := vals[7].(string)
		if (vals[6] == gocql.UnsetValue) == (vals[7] == gocql.UnsetValue) {
			t.Fatalf("processing id %q is written to both columns or none: %v, %v", id, vals[6], vals[7])
		}
		// …and as readBucket reads it back.
		got := procText
		if procID != (gocql.UUID{}) {
			got = procID.String()
		}
		if got != id {
			t.Fatalf("processing id %q reads back as %q", id, got)
		}
	})
}
