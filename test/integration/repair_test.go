//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/concursus-go/concursus/client"
	"github.com/concursus-go/concursus/examples/lightbulb"
)

// TestRecordLostWithItsWriter: on Cassandra a command's events and its
// record are two writes. Node n2 kills itself (SIGKILL, fault injection)
// between them, for the first command it runs: a create sent once, whose
// sender then gives up. The command's events are durable, its record is
// never written, and the mender that would have written it died too.
//
// The command is retried late: first the aggregate's next owner runs more
// commands on it than a cached aggregate remembers (16). The retry must
// still get the original outcome (accepted at sequence 1, a duplicate),
// not a decision on the newer state; the log, read with gocql, must hold
// the command's event once and, by then, its record: the next owner's
// load wrote it from the history (executor: RecordsRepaired).
func TestRecordLostWithItsWriter(t *testing.T) {
	dir := t.TempDir()
	bins := buildBinaries(t, dir, "faultinject")
	_, natsURL := startNATS(t, bins.natsServer, dir)
	h := newClusterHarnessOn(t, "itrepair", dir, bins, natsURL)
	h.env["n2"] = []string{faultKillBeforeRecord + "=1"}
	h.start("n1", true)
	n2 := h.start("n2", false)
	info := h.waitConverged("n1", "n2")
	id := aggregatesOwnedBy(info.Owners, "n2", 1)[0]
	nc := connectNATS(t, natsURL, "repair")
	ctx := context.Background()

	// Sent once: one attempt, no retry.
	once := client.New(nc, client.Options{Prefix: clusterPrefix, Timeout: 3 * time.Second, Attempt: 3 * time.Second})
	const lost = "lost-create"
	wattage := json.RawMessage(`{"wattage":60}`)
	if res, err := once.SendRaw(ctx, lightbulb.TypeName, id, "create", wattage, client.WithCommandID(lost)); err == nil {
		t.Fatalf("the create was answered (%+v): n2 was to die before its record", res)
	}
	waitUntil(t, 30*time.Second, "n2 to kill itself before writing the record", n2.proc.exited)
	if f := faultInjected(t, n2.proc.logPath); f.CommandID != lost {
		t.Fatalf("n2 died before writing the record of %q (%s), want %q", f.CommandID, f.Aggregate, lost)
	}
	delete(h.nodes, "n2")
	h.waitConverged("n1")

	// More commands than the cached aggregate remembers, each answered.
	cl := client.New(nc, client.Options{Prefix: clusterPrefix, Timeout: 30 * time.Second, Attempt: 2 * time.Second})
	send := func(cmd string, args json.RawMessage, cid string) *client.Result {
		t.Helper()
		res, err := cl.SendRaw(ctx, lightbulb.TypeName, id, cmd, args, client.WithCommandID(cid))
		if err != nil {
			t.Fatalf("%s %s (%s): %v", cmd, id, cid, err)
		}
		return res
	}
	send("screwIn", json.RawMessage(`{"location":"lab"}`), "screw")
	const switches = 20
	for i := range switches {
		send(map[bool]string{true: "switchOn", false: "switchOff"}[i%2 == 0], nil, fmt.Sprintf("switch-%d", i))
	}

	// The late retry gets the original outcome.
	res := send("create", wattage, lost)
	if !res.Duplicate || res.Sequence != 1 {
		t.Errorf("late retry of %s: %+v, want the duplicate of the create at sequence 1", lost, res)
	}

	l := readJepsenLog(t, h.cassandra, h.keyspace)
	events := l.events[id]
	var ofLost []int64
	for _, e := range events {
		if e.commandID == lost {
			ofLost = append(ofLost, e.seq)
		}
	}
	if len(ofLost) != 1 || ofLost[0] != 1 || len(events) != 2+switches {
		t.Errorf("log of %s: %d events, %s's at %v; want %d, one at 1", id, len(events), lost, ofLost, 2+switches)
	}
	if rec, ok := l.records[lost]; !ok || rec.outcome != "accepted" || rec.first != 1 || rec.last != 1 || rec.aggregateID != id {
		t.Errorf("record of %s: %+v (found %v), want accepted 1..1 of %s", lost, rec, ok, id)
	}
	st := h.info("n1").Stats
	t.Logf("n1: %d records repaired after %d reads, %d mended, %d duplicates answered", st.RecordsRepaired, st.RepairChecks, st.RecordsMended, st.Duplicates)
	if st.RecordsRepaired != 1 {
		t.Errorf("n1 repaired %d records, want 1", st.RecordsRepaired)
	}
	h.reportLogs()
}
