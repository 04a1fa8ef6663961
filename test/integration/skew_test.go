//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/concursus-go/concursus/client"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/model"
)

// TestClockSkewAcrossAnOwnershipMove: n2's clock is a minute behind n1's
// (fault injection, CONCURSUS_FAULT_CLOCK_SKEW=-1m), as a host whose
// clock is off. Bulbs that n1 owns are created, screwed in and switched
// on there; then n1 leaves (SIGTERM) and n2 owns them. n2 decides a
// switchOff on each on the state "on", while its clock says it is before
// the switchOn. The switchOff must still take effect: its event comes
// after the switchOn in event time (read with gocql), the bulb is off,
// and a second switchOff is rejected already_off. Stamped at n2's clock
// alone, each switchOff landed before the switchOn it answered: accepted,
// and the bulb stayed on.
func TestClockSkewAcrossAnOwnershipMove(t *testing.T) {
	const skew = -time.Minute
	dir := t.TempDir()
	bins := buildBinaries(t, dir, "faultinject")
	_, natsURL := startNATS(t, bins.natsServer, dir)
	h := newClusterHarnessOn(t, "itskew", dir, bins, natsURL)
	h.env["n2"] = []string{fmt.Sprintf("%s=%s", faultClockSkew, skew)}
	n1 := h.start("n1", true)
	h.start("n2", false)
	info := h.waitConverged("n1", "n2")
	ids := aggregatesOwnedBy(info.Owners, "n1", 5)
	nc := connectNATS(t, natsURL, "skew")
	ctx := context.Background()
	cl := client.New(nc, client.Options{Prefix: clusterPrefix, Timeout: 30 * time.Second, Attempt: 2 * time.Second})
	send := func(id, cmd, args string) (*client.Result, error) {
		var raw json.RawMessage
		if args != "" {
			raw = json.RawMessage(args)
		}
		return cl.SendRaw(ctx, lightbulb.TypeName, id, cmd, raw)
	}
	must := func(id, cmd, args string) *client.Result {
		t.Helper()
		res, err := send(id, cmd, args)
		if err != nil {
			t.Fatalf("%s %s: %v", cmd, id, err)
		}
		return res
	}
	for _, id := range ids {
		must(id, "create", `{"wattage":60}`)
		must(id, "screwIn", `{"location":"lab"}`)
		must(id, "switchOn", "")
	}

	if err := n1.proc.signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if exited, _ := n1.proc.wait(nodeShutdownTimeout + 5*time.Second); !exited {
		t.Fatalf("n1 still running after SIGTERM")
	}
	delete(h.nodes, "n1")
	h.waitConverged("n2")

	for _, id := range ids {
		if res := must(id, "switchOff", ""); res.Duplicate || res.Sequence != 4 {
			t.Errorf("switchOff %s: %+v, want accepted at sequence 4", id, res)
		}
		b, st, err := client.QueryAs[lightbulb.Bulb](ctx, cl, lightbulb.TypeName, id)
		if err != nil {
			t.Fatalf("query %s: %v", id, err)
		}
		if b.On {
			t.Errorf("%s is on after an accepted switchOff: %s", id, st.Value)
		}
		_, err = send(id, "switchOff", "")
		var ce *client.Error
		if !errors.As(err, &ce) || !errors.Is(err, client.ErrRejected) || ce.Reason != "already_off" {
			t.Errorf("second switchOff %s: %v, want rejected already_off", id, err)
		}
	}

	log := readFactsLog(t, h.cassandra, h.keyspace)
	for _, id := range ids {
		rows := log[id]
		if len(rows) != 4 {
			t.Errorf("%s: %d events in the log, want 4", id, len(rows))
			continue
		}
		on, off := rows[2], rows[3]
		onKey := model.TimeKey{Timestamp: on.at, StreamID: on.stream, Sequence: uint64(on.seq)}
		offKey := model.TimeKey{Timestamp: off.at, StreamID: off.stream, Sequence: uint64(off.seq)}
		if !onKey.Before(offKey) {
			t.Errorf("%s: %s stamped %v (processed %v by n2) sorts before %s stamped %v: the decision's own input",
				id, off.event(), off.at, off.processed, on.event(), on.at)
		}
		if d := off.processed.Sub(on.processed); d > 0 {
			t.Errorf("%s: n2's processing time %v is not behind n1's %v: the skew did not take", id, off.processed, on.processed)
		}
	}
	t.Logf("n2's clock %v off; each switchOff processed by n2 at its clock before n1's switchOn, stamped after it", skew)
	h.reportLogs()
}
