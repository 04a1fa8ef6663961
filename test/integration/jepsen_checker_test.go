//go:build integration

package integration

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gocql/gocql"
)

// This file is TestJepsen's checker. It reads the Cassandra tables
// directly with gocql — not through storage/cassandra, so that a bug in
// the store's read path cannot hide one in its write path — and compares
// them with what the workload's client saw. Every check counts what it
// looked at and every violation; the test fails on any violation.

// jLogEvent is one row of the events table.
type jLogEvent struct {
	bucket    int
	seq       int64
	commandID string
	name      string
	version   int
	eventID   string
}

// jRecord is one row of the commands table.
type jRecord struct {
	aggregateType, aggregateID, command, outcome string
	first, last                                  int64 // 0 when null
	code, reason                                 string
}

// jLog is what the tables hold.
type jLog struct {
	events  map[string][]jLogEvent // lightbulb id → its events, by sequence
	heads   map[string]map[int]int64
	buckets map[string]map[int]int64 // event_buckets: id → bucket → first sequence
	records map[string]jRecord       // command id → record
	others  int                      // events of other aggregate types
}

// readJepsenLog reads every event, bucket and command record of keyspace.
func readJepsenLog(t *testing.T, addr, keyspace string) *jLog {
	t.Helper()
	c := gocql.NewCluster(addr)
	c.Timeout = 30 * time.Second
	c.Consistency = gocql.Quorum
	var s *gocql.Session
	var err error
	waitUntil(t, 2*time.Minute, "a gocql session for the checker", func() bool {
		s, err = c.CreateSession()
		return err == nil
	})
	defer s.Close()
	l := &jLog{
		events:  make(map[string][]jLogEvent),
		heads:   make(map[string]map[int]int64),
		buckets: make(map[string]map[int]int64),
		records: make(map[string]jRecord),
	}
	it := s.Query("SELECT aggregate_type, aggregate_id, bucket, sequence, head, command_id, name, version, event_id FROM " +
		keyspace + ".events").PageSize(2000).Iter()
	var (
		typ, id, cid, name, eid string
		bucket, version         int
		seq                     *int64
		head                    *int64
	)
	for it.Scan(&typ, &id, &bucket, &seq, &head, &cid, &name, &version, &eid) {
		if typ != "lightbulb" {
			l.others++
			continue
		}
		if l.heads[id] == nil {
			l.heads[id] = make(map[int]int64)
		}
		if head != nil {
			l.heads[id][bucket] = *head
		}
		if seq == nil { // a partition holding only its static head
			continue
		}
		l.events[id] = append(l.events[id], jLogEvent{bucket: bucket, seq: *seq, commandID: cid, name: name, version: version, eventID: eid})
		seq, head = nil, nil
	}
	if err := it.Close(); err != nil {
		t.Fatalf("reading %s.events: %v", keyspace, err)
	}
	for id := range l.events {
		slices.SortStableFunc(l.events[id], func(a, b jLogEvent) int { return cmp.Compare(a.seq, b.seq) })
	}
	it = s.Query("SELECT aggregate_type, aggregate_id, bucket, first_sequence FROM " + keyspace + ".event_buckets").PageSize(2000).Iter()
	var first int64
	for it.Scan(&typ, &id, &bucket, &first) {
		if l.buckets[id] == nil {
			l.buckets[id] = make(map[int]int64)
		}
		l.buckets[id][bucket] = first
	}
	if err := it.Close(); err != nil {
		t.Fatalf("reading %s.event_buckets: %v", keyspace, err)
	}
	it = s.Query("SELECT command_id, aggregate_type, aggregate_id, command, outcome, first_sequence, last_sequence, code, reason FROM " +
		keyspace + ".commands").PageSize(2000).Iter()
	var (
		r         jRecord
		fs, ls    *int64
		code, rsn *string
	)
	for it.Scan(&cid, &r.aggregateType, &r.aggregateID, &r.command, &r.outcome, &fs, &ls, &code, &rsn) {
		r.first, r.last, r.code, r.reason = 0, 0, "", ""
		if fs != nil {
			r.first = *fs
		}
		if ls != nil {
			r.last = *ls
		}
		if code != nil {
			r.code = *code
		}
		if rsn != nil {
			r.reason = *rsn
		}
		l.records[cid] = r
		fs, ls, code, rsn = nil, nil, nil, nil
	}
	if err := it.Close(); err != nil {
		t.Fatalf("reading %s.commands: %v", keyspace, err)
	}
	return l
}

// jViolations collects, per check, how many things were checked and the
// violations found.
type jViolations struct {
	order   []string
	checked map[string]int
	found   map[string][]string
	phases  map[string]map[string]int // check → phase of the command → violations
}

func newViolations() *jViolations {
	return &jViolations{checked: make(map[string]int), found: make(map[string][]string), phases: make(map[string]map[string]int)}
}

// addOp is add for a violation about op: it is also counted by the
// workload phase op was sent in.
func (v *jViolations) addOp(name string, op *jOp, format string, args ...any) {
	v.add(name, format, args...)
	if op == nil {
		return
	}
	if v.phases[name] == nil {
		v.phases[name] = make(map[string]int)
	}
	v.phases[name][op.phase]++
}

func (v *jViolations) check(name string, n int) {
	if _, ok := v.checked[name]; !ok {
		v.order = append(v.order, name)
	}
	v.checked[name] += n
}

func (v *jViolations) add(name, format string, args ...any) {
	v.check(name, 0)
	v.found[name] = append(v.found[name], fmt.Sprintf(format, args...))
}

func (v *jViolations) total() int {
	n := 0
	for _, f := range v.found {
		n += len(f)
	}
	return n
}

// report logs a line per check and up to examples violations of each;
// with fail, each check with violations fails the test.
func (v *jViolations) report(t *testing.T, examples int, fail bool) {
	t.Helper()
	t.Logf("checker: %-58s %10s %10s", "check", "checked", "violations")
	for _, name := range v.order {
		t.Logf("checker: %-58s %10d %10d", name, v.checked[name], len(v.found[name]))
	}
	for _, name := range v.order {
		f := v.found[name]
		if len(f) == 0 {
			continue
		}
		var by []string
		for _, p := range slices.Sorted(maps.Keys(v.phases[name])) {
			by = append(by, fmt.Sprintf("%s %d", p, v.phases[name][p]))
		}
		report := t.Logf
		if fail {
			report = t.Errorf
		}
		phases := ""
		if len(by) > 0 {
			phases = " (commands sent in phase: " + strings.Join(by, ", ") + ")"
		}
		report("VIOLATION %s: %d%s, e.g.:", name, len(f), phases)
		for _, e := range f[:min(examples, len(f))] {
			t.Logf("  %s: %s", name, e)
		}
	}
}

// Names of the checks.
const (
	chkGapFree       = "histories gap-free (sequences 1..n, one bucket each)"
	chkFence         = "fence heads and bucket index agree with the rows"
	chkAckedPresent  = "acknowledged events present once at their sequences"
	chkOneBatch      = "no command id in two event batches"
	chkDefinite      = "no event for a definite failure"
	chkRejectedNoEvt = "no event for a command answered rejected"
	chkUnknownCID    = "no event with a command id the client never sent"
	chkRecords       = "command records agree with the log"
	chkRecordReplies = "command records agree with the replies"
	chkOneOutcome    = "one outcome per command id (all replies agree)"
	chkStormDup      = "storm: a resend of an accepted command is a duplicate"
	chkLinearizable  = "every reply linearizable per aggregate (porcupine)"
	chkReadReplies   = "state queries answered with a state or a retryable error"
	chkStream        = "every logged event in the stream"
	chkMinority      = "an isolated minority removes no majority raft voter"
	chkRaftBack      = "the raft group takes back a node cut from it"
)

// outcomeOf describes a definite reply for messages.
func outcomeOf(r *jReply) string {
	switch {
	case r == nil:
		return "no reply"
	case r.OK:
		dup := ""
		if r.Duplicate {
			dup = " duplicate"
		}
		return fmt.Sprintf("ok seq %d%s", r.Sequence, dup)
	case r.Error == nil:
		return "not ok, no error"
	case r.Error.Reason != "":
		return r.Error.Code + " " + r.Error.Reason
	default:
		return r.Error.Code
	}
}

// sameOutcome reports whether two definite replies say the same.
func sameOutcome(a, b *jReply) bool {
	switch {
	case a.OK || b.OK:
		return a.OK && b.OK && a.Sequence == b.Sequence
	default:
		return a.Error.Code == b.Error.Code && a.Error.Reason == b.Error.Reason
	}
}

// attemptsLine summarises an op's attempts for a violation message.
func (o *jOp) attemptsLine(start time.Time) string {
	var parts []string
	for _, a := range o.attempts {
		what := a.err
		if a.reply != nil {
			what = outcomeOf(a.reply)
		}
		storm := ""
		if a.storm {
			storm = " storm"
		}
		parts = append(parts, fmt.Sprintf("[%s%s %.3fs-%.3fs: %s]", a.via, storm,
			a.invoke.Sub(start).Seconds(), a.complete.Sub(start).Seconds(), what))
	}
	if len(parts) > 6 {
		parts = append(parts[:3], append([]string{fmt.Sprintf("… %d more …", len(parts)-5)}, parts[len(parts)-2:]...)...)
	}
	return strings.Join(parts, " ")
}

// checkJepsen runs every check of the log against the ops and returns the
// violations.
func checkJepsen(t *testing.T, l *jLog, ops []*jOp, reads []*jRead, start time.Time, streamIDs map[string]bool) *jViolations {
	t.Helper()
	v := newViolations()
	byID := make(map[string]*jOp, len(ops))
	for _, op := range ops {
		byID[op.id] = op
	}
	desc := func(op *jOp) string {
		return fmt.Sprintf("%s %s %s %s (phase %q): %s", op.id, op.aggregate, op.command, op.args, op.phase, op.attemptsLine(start))
	}

	// The log on its own: gap-free, fenced, one batch per command id.
	runs := make(map[string][]jRun) // command id → its runs of events
	for _, id := range slices.Sorted(maps.Keys(l.events)) {
		evs := l.events[id]
		v.check(chkGapFree, 1)
		maxOf := make(map[int]int64)
		minOf := make(map[int]int64)
		gap := false
		for i, e := range evs {
			if e.seq != int64(i+1) && !gap {
				// One report per history; the runs below are still read.
				v.add(chkGapFree, "%s: event #%d has sequence %d (bucket %d)", id, i+1, e.seq, e.bucket)
				gap = true
			}
			if i > 0 && e.bucket < evs[i-1].bucket {
				v.add(chkGapFree, "%s: sequence %d in bucket %d after sequence %d in bucket %d", id, e.seq, e.bucket, evs[i-1].seq, evs[i-1].bucket)
			}
			maxOf[e.bucket] = max(maxOf[e.bucket], e.seq)
			if m, ok := minOf[e.bucket]; !ok || e.seq < m {
				minOf[e.bucket] = e.seq
			}
			if i > 0 && e.commandID != "" && e.commandID == evs[i-1].commandID {
				rs := runs[e.commandID]
				rs[len(rs)-1].last = e.seq
				rs[len(rs)-1].names = append(rs[len(rs)-1].names, e.name)
				rs[len(rs)-1].eventIDs = append(rs[len(rs)-1].eventIDs, e.eventID)
				continue
			}
			runs[e.commandID] = append(runs[e.commandID], jRun{aggregate: id, first: e.seq, last: e.seq, names: []string{e.name}, eventIDs: []string{e.eventID}})
		}
		for b, m := range maxOf {
			v.check(chkFence, 1)
			if h, ok := l.heads[id][b]; !ok || h != m {
				v.add(chkFence, "%s bucket %d: head %d (present %v), last row %d", id, b, h, ok, m)
			}
			if f, ok := l.buckets[id][b]; !ok || f != minOf[b] {
				v.add(chkFence, "%s bucket %d: event_buckets says first sequence %d (present %v), first row %d", id, b, f, ok, minOf[b])
			}
		}
	}
	for _, cid := range slices.Sorted(maps.Keys(runs)) {
		rs := runs[cid]
		if cid == "" {
			continue
		}
		v.check(chkOneBatch, 1)
		if len(rs) > 1 {
			var where []string
			for _, r := range rs {
				where = append(where, fmt.Sprintf("%s %d..%d %v", r.aggregate, r.first, r.last, r.names))
			}
			msg := ""
			if op := byID[cid]; op != nil {
				msg = "; " + desc(op)
			}
			v.addOp(chkOneBatch, byID[cid], "command %s has %d batches: %s%s", cid, len(rs), strings.Join(where, ", "), msg)
		}
		v.check(chkUnknownCID, 1)
		if byID[cid] == nil {
			v.add(chkUnknownCID, "command %s: events %s %d..%d", cid, rs[0].aggregate, rs[0].first, rs[0].last)
		}
	}

	// Each op against the log.
	for _, op := range ops {
		rs := runs[op.id]
		fd := op.firstDefinite()
		definiteFail, anyAck := true, false
		for i := range op.attempts {
			a := &op.attempts[i]
			if a.acked() {
				anyAck = true
			}
			if !(a.reply != nil && a.reply.Error != nil && definiteFailure(a.reply.Error.Code)) {
				definiteFail = false
			}
		}
		if definiteFail && len(op.attempts) > 0 {
			v.check(chkDefinite, 1)
			if len(rs) > 0 {
				v.addOp(chkDefinite, op, "%s has events %s %d..%d; %s", op.id, rs[0].aggregate, rs[0].first, rs[0].last, desc(op))
			}
		}
		if fd < 0 {
			continue
		}
		first := op.attempts[fd].reply
		// One outcome per command id, over every definite reply.
		v.check(chkOneOutcome, 1)
		for i := range op.attempts {
			a := &op.attempts[i]
			if i == fd || !a.definite() {
				continue
			}
			if !sameOutcome(first, a.reply) {
				v.addOp(chkOneOutcome, op, "%s: first %s, then %s via %s at %.3fs; %s", op.id, outcomeOf(first), outcomeOf(a.reply),
					a.via, a.complete.Sub(start).Seconds(), desc(op))
				break
			}
		}
		for i := range op.attempts {
			a := &op.attempts[i]
			if a.storm && first.OK && a.reply != nil && a.reply.OK {
				v.check(chkStormDup, 1)
				if !a.reply.Duplicate {
					v.addOp(chkStormDup, op, "%s resent via %s: ok seq %d not marked duplicate; %s", op.id, a.via, a.reply.Sequence, desc(op))
				}
			}
		}
		switch {
		case first.OK:
			v.check(chkAckedPresent, 1)
			if len(rs) == 0 {
				v.addOp(chkAckedPresent, op, "%s acknowledged (%s) but has no event in the log; %s", op.id, outcomeOf(first), desc(op))
				break
			}
			r := rs[0]
			if r.aggregate != op.aggregate || r.last != int64(first.Sequence) {
				v.addOp(chkAckedPresent, op, "%s acknowledged at %s seq %d, its events are %s %d..%d; %s", op.id, op.aggregate, first.Sequence, r.aggregate, r.first, r.last, desc(op))
			}
			for i := range op.attempts {
				a := &op.attempts[i]
				if a.reply == nil || !a.reply.OK || a.reply.Duplicate {
					continue
				}
				for _, e := range a.reply.Events {
					i, found := slices.BinarySearchFunc(l.events[op.aggregate], int64(e.Sequence), func(x jLogEvent, seq int64) int { return cmp.Compare(x.seq, seq) })
					if !found || l.events[op.aggregate][i].eventID != e.EventID || l.events[op.aggregate][i].commandID != op.id {
						v.addOp(chkAckedPresent, op, "%s: acknowledged event %s seq %d (%s) is not at that sequence in the log; %s", op.id, e.EventID, e.Sequence, e.Name, desc(op))
					}
				}
			}
		case first.Error.Code == codeRejected:
			v.check(chkRejectedNoEvt, 1)
			if anyAck && len(rs) > 0 {
				v.addOp(chkRejectedNoEvt, op, "%s answered %s, but its events are at %s %d..%d %v; %s", op.id, outcomeOf(first), rs[0].aggregate, rs[0].first, rs[0].last, rs[0].names, desc(op))
			}
		}
		// The command record against the reply.
		rec, ok := l.records[op.id]
		if !ok || definiteFailure(first.Error.codeOr("")) {
			continue
		}
		v.check(chkRecordReplies, 1)
		switch {
		case first.OK && (rec.outcome != "accepted" || rec.last != int64(first.Sequence)):
			v.addOp(chkRecordReplies, op, "%s answered %s, record says %s %d..%d %s; %s", op.id, outcomeOf(first), rec.outcome, rec.first, rec.last, rec.reason, desc(op))
		case !first.OK && (rec.outcome != "rejected" || rec.reason != first.Error.Reason):
			v.addOp(chkRecordReplies, op, "%s answered %s, record says %s %d..%d %s; %s", op.id, outcomeOf(first), rec.outcome, rec.first, rec.last, rec.reason, desc(op))
		}
	}

	// Command records against the log, both ways.
	for _, cid := range slices.Sorted(maps.Keys(l.records)) {
		rec := l.records[cid]
		if rec.aggregateType != "lightbulb" {
			continue
		}
		v.check(chkRecords, 1)
		rs := runs[cid]
		switch rec.outcome {
		case "accepted":
			if len(rs) == 0 || rs[0].aggregate != rec.aggregateID || rs[0].first != rec.first || rs[0].last != rec.last {
				got := "no events"
				if len(rs) > 0 {
					got = fmt.Sprintf("events %s %d..%d", rs[0].aggregate, rs[0].first, rs[0].last)
				}
				msg := ""
				if op := byID[cid]; op != nil {
					msg = "; " + desc(op)
				}
				v.addOp(chkRecords, byID[cid], "%s: record accepted %s %d..%d, log has %s%s", cid, rec.aggregateID, rec.first, rec.last, got, msg)
			}
		case "rejected":
			if len(rs) > 0 {
				msg := ""
				if op := byID[cid]; op != nil {
					msg = "; " + desc(op)
				}
				v.addOp(chkRecords, byID[cid], "%s: record rejected (%s %s), log has its events %s %d..%d %v%s", cid, rec.code, rec.reason, rs[0].aggregate, rs[0].first, rs[0].last, rs[0].names, msg)
			}
		default:
			v.add(chkRecords, "%s: record with outcome %q", cid, rec.outcome)
		}
	}
	for _, cid := range slices.Sorted(maps.Keys(runs)) {
		if cid == "" {
			continue
		}
		v.check(chkRecords, 1)
		if _, ok := l.records[cid]; !ok {
			rs := runs[cid]
			v.addOp(chkRecords, byID[cid], "%s: events %s %d..%d have no command record", cid, rs[0].aggregate, rs[0].first, rs[0].last)
		}
	}

	// Reads: a readable state, or an error that says "try again"; a
	// refusal of a valid query, or a reply that cannot be read, is a
	// fault (the linearizability check only sees the readable ones).
	for _, r := range reads {
		if r.reply == nil && r.err == "" {
			continue
		}
		v.check(chkReadReplies, 1)
		switch {
		case r.reply == nil: // no reply (timeout, no responders): says nothing
		case r.err != "":
			v.add(chkReadReplies, "%s of %s: %s", r.id, r.aggregate, r.err)
		case !r.reply.OK && (r.reply.Error == nil || definiteFailure(r.reply.Error.Code) || r.reply.Error.Code == codeRejected):
			v.add(chkReadReplies, "%s of %s: refused: %+v", r.id, r.aggregate, r.reply.Error)
		}
	}

	// Linearizability, per aggregate.
	checkLinearizable(t, v, ops, reads, runs, start)

	// The stream.
	if streamIDs != nil {
		for _, id := range slices.Sorted(maps.Keys(l.events)) {
			for _, e := range l.events[id] {
				v.check(chkStream, 1)
				if !streamIDs[e.eventID] {
					v.add(chkStream, "%s seq %d (%s, command %s, event %s) not in the stream", id, e.seq, e.name, e.commandID, e.eventID)
				}
			}
		}
	}
	return v
}

// jRun is a run of consecutive events of one command in one aggregate's
// log: a batch.
type jRun struct {
	aggregate   string
	first, last int64
	names       []string
	eventIDs    []string
}
