//go:build integration

package integration

import (
	"fmt"
	"testing"
	"time"
)

// TestJepsenCheckerSelf runs TestJepsen's checker on hand-made histories:
// a correct one must pass every check, and each planted fault must be
// found by the check meant for it. It needs no services, so it runs
// wherever the integration suite builds, and shows that the checker can
// fail.
func TestJepsenCheckerSelf(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	ok := func(seq uint64, dup bool, names ...string) *jReply {
		r := &jReply{OK: true, Sequence: seq, Duplicate: dup}
		if !dup {
			for i, n := range names {
				r.Events = append(r.Events, jEvent{Sequence: seq - uint64(len(names)-1-i), Name: n, EventID: fmt.Sprintf("e-%d-%s", seq-uint64(len(names)-1-i), n)})
			}
		}
		return r
	}
	rej := func(code, reason string) *jReply { return &jReply{Error: &jError{Code: code, Reason: reason}} }
	type step struct {
		id, agg, cmd string
		from, to     float64
		reply        *jReply
		storm        bool
	}
	build := func(steps []step) []*jOp {
		var ops []*jOp
		byID := make(map[string]*jOp)
		for _, s := range steps {
			op := byID[s.id]
			if op == nil {
				op = &jOp{id: s.id, aggregate: s.agg, command: s.cmd, phase: "self"}
				byID[s.id] = op
				ops = append(ops, op)
			}
			a := jAttempt{via: "queue", invoke: at(s.from), complete: at(s.to), reply: s.reply, storm: s.storm}
			if s.reply == nil {
				a.err = "timeout (no reply)"
			}
			op.attempts = append(op.attempts, a)
		}
		return ops
	}
	// logOf makes the tables from (aggregate, command id, event name)
	// rows in sequence order, with event ids as ok() makes them, and a
	// matching command record per accepted command.
	type row struct{ agg, cid, name string }
	logOf := func(rows []row) (*jLog, map[string]bool) {
		l := &jLog{events: map[string][]jLogEvent{}, heads: map[string]map[int]int64{}, buckets: map[string]map[int]int64{}, records: map[string]jRecord{}}
		stream := make(map[string]bool)
		for _, r := range rows {
			seq := int64(len(l.events[r.agg]) + 1)
			eid := fmt.Sprintf("e-%d-%s", seq, r.name)
			l.events[r.agg] = append(l.events[r.agg], jLogEvent{seq: seq, commandID: r.cid, name: r.name, eventID: eid})
			l.heads[r.agg] = map[int]int64{0: seq}
			l.buckets[r.agg] = map[int]int64{0: 1}
			rec, seen := l.records[r.cid]
			if !seen {
				rec = jRecord{aggregateType: "lightbulb", aggregateID: r.agg, outcome: "accepted", first: seq}
			}
			rec.last = seq
			l.records[r.cid] = rec
			stream[eid] = true
		}
		return l, stream
	}
	read := func(id, agg string, from, to float64, seq uint64, screwed, on bool) *jRead {
		return &jRead{id: id, aggregate: agg, invoke: at(from), complete: at(to),
			reply: &jQueryReply{OK: true, Exists: seq > 0, Sequence: seq}, state: jBulb{ScrewedIn: screwed, On: on}}
	}
	reject := func(l *jLog, cid, agg, reason string) {
		l.records[cid] = jRecord{aggregateType: "lightbulb", aggregateID: agg, outcome: "rejected", code: "rejected", reason: reason}
	}

	// A correct history: two concurrent commands on one bulb, a retried
	// command answered as a duplicate, a refused one, and storm resends.
	good := []step{
		{"a-create", "a", "create", 0, 1, ok(1, false, "created"), false},
		{"a-screw", "a", "screwIn", 1, 2, ok(2, false, "screwedIn"), false},
		{"a-on", "a", "switchOn", 2, 2.5, nil, false}, // lost reply, then a duplicate
		{"a-on", "a", "switchOn", 2.6, 3, ok(3, true), false},
		{"a-off", "a", "switchOff", 4, 6, ok(4, false, "switchedOff"), false},
		{"a-on2", "a", "switchOn", 4.5, 5, rej(codeRejected, "already_on"), false},
		{"a-bad", "a", "screwIn", 6, 6.1, rej(codeInvalid, ""), false},
		{"a-off", "a", "switchOff", 10, 10.1, ok(4, true), true},
		{"a-on2", "a", "switchOn", 10, 10.1, rej(codeRejected, "already_on"), true},
	}
	l, stream := logOf([]row{{"a", "a-create", "created"}, {"a", "a-screw", "screwedIn"}, {"a", "a-on", "switchedOn"}, {"a", "a-off", "switchedOff"}})
	reject(l, "a-on2", "a", "already_on")
	// Reads: one between two commands, one while switchOff is in flight
	// (either side of it may be seen), one after it returned.
	goodReads := []*jRead{
		read("r1", "a", 1.5, 1.8, 2, true, false),
		read("r2", "a", 4.1, 4.2, 3, true, true),
		read("r3", "a", 5.5, 5.6, 4, true, false),
		read("r4", "a", 7, 7.5, 4, true, false),
	}
	v := checkJepsen(t, l, build(good), goodReads, start, stream)
	if v.total() != 0 {
		v.report(t, 5, false)
		t.Fatalf("a correct history: %d violations", v.total())
	}
	// The same history with a stale read: after switchOff returned, the
	// bulb is read on, at sequence 3, from a cache the log has moved past.
	v = checkJepsen(t, l, build(good), append(goodReads, read("r-stale", "a", 7, 7.5, 3, true, true)), start, stream)
	if len(v.found[chkLinearizable]) == 0 || v.total() != len(v.found[chkLinearizable]) {
		v.report(t, 5, false)
		t.Fatalf("a stale read: want found by %q alone", chkLinearizable)
	}

	// Planted faults, one per check.
	bad := []step{
		// b: a rejection decided on stale state (the bulb was on).
		{"b-create", "b", "create", 0, 1, ok(1, false, "created"), false},
		{"b-screw", "b", "screwIn", 1, 2, ok(2, false, "screwedIn"), false},
		{"b-on", "b", "switchOn", 2, 3, ok(3, false, "switchedOn"), false},
		{"b-off", "b", "switchOff", 4, 5, rej(codeRejected, "already_off"), false},
		// c: one command id in two batches, and a storm resend that ran
		// again; an invalid request with an event; a rejected command
		// with an event.
		{"c-create", "c", "create", 0, 1, ok(1, false, "created"), false},
		{"c-screw", "c", "screwIn", 1, 2, ok(2, false, "screwedIn"), false},
		{"c-on", "c", "switchOn", 2, 3, ok(3, false, "switchedOn"), false},
		{"c-on", "c", "switchOn", 10, 11, ok(5, false, "switchedOn"), true},
		{"c-bad", "c", "screwIn", 3, 3.1, rej(codeInvalid, ""), false},
		{"c-rej", "c", "switchOn", 4, 4.1, rej(codeRejected, "already_on"), false},
	}
	l, stream = logOf([]row{
		{"b", "b-create", "created"}, {"b", "b-screw", "screwedIn"}, {"b", "b-on", "switchedOn"},
		{"c", "c-create", "created"}, {"c", "c-screw", "screwedIn"}, {"c", "c-on", "switchedOn"},
		{"c", "c-bad", "switchedOff"}, {"c", "c-on", "switchedOn"}, {"c", "c-rej", "switchedOff"},
		{"d", "d-create", "created"}, {"d", "zz-unknown", "screwedIn"},
	})
	reject(l, "b-off", "b", "already_on") // the record disagrees with the reply
	reject(l, "c-rej", "c", "already_on") // a rejected record with an event
	l.events["d"] = l.events["d"][1:]     // d starts at sequence 2: a gap
	l.heads["c"][0] = 99                  // a head that is not the last row
	delete(stream, "e-2-screwedIn")       // not in the stream
	badReads := []*jRead{
		{id: "r-garbled", aggregate: "b", invoke: at(5), complete: at(5.1), reply: &jQueryReply{OK: true}, err: `undecodable state ""`},
		{id: "r-refused", aggregate: "b", invoke: at(5), complete: at(5.1), reply: &jQueryReply{Error: &jError{Code: codeInvalid}}},
	}
	v = checkJepsen(t, l, build(bad), badReads, start, stream)
	for _, name := range []string{chkGapFree, chkFence, chkOneBatch, chkDefinite, chkRejectedNoEvt, chkUnknownCID,
		chkRecords, chkRecordReplies, chkOneOutcome, chkStormDup, chkLinearizable, chkReadReplies, chkStream} {
		if len(v.found[name]) == 0 {
			t.Errorf("planted fault not found by %q", name)
		}
	}
	if t.Failed() {
		v.report(t, 3, false)
	} else {
		t.Logf("every planted fault found: %d violations from %d checks", v.total(), len(v.found))
	}
}
