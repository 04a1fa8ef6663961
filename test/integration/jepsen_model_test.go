//go:build integration

package integration

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The linearizability check of TestJepsen: for each lightbulb, the
// commands the workload sent are operations — one per command id, from
// its first attempt's invocation to its first definite reply — and
// porcupine searches for an order of them, each at an instant inside its
// window, in which a model of the lightbulb domain gives exactly the
// replies the client saw: accepted with these events at these sequences,
// or rejected with this reason. A rejection decided on stale state, an
// acceptance appended out of turn, or a retry that ran twice has no such
// order. State queries are operations too: a read must return the state
// (and the sequence) of an instant inside its window, so an answer from a
// cache the log has moved past has no place in any order.
//
// The model is written from the domain's rules (examples/lightbulb and
// the model package's lifecycle), not by calling the domain code, so that
// both sides are checked.

// bulbState is the model's state of one lightbulb.
type bulbState struct {
	exists, screwed, on, blown bool
	seq                        uint64
}

// bulbInput is an operation's input: the command ("read" for a state
// query), and its id for messages.
type bulbInput struct {
	command, id string
}

// readCommand is the bulbInput command of a state query.
const readCommand = "read"

// bulbOutput is an operation's outcome: accepted with events at
// sequences ending at seq (names nil when unknown), or rejected with
// reason.
type bulbOutput struct {
	ok      bool
	seq     uint64
	names   []string
	reason  string
	unknown bool // no reply; the outcome is the log's
	// read is the state a query returned (seq its sequence).
	read *bulbState
}

// bulbDecide is what the domain does with a command in a state: the
// events it emits, or the reason it rejects.
func bulbDecide(s bulbState, command string) (names []string, reason string) {
	switch {
	case s.blown:
		return nil, "terminated"
	case !s.exists && command != "create":
		return nil, "not_found"
	}
	switch command {
	case "create":
		if s.exists {
			return nil, "already_exists"
		}
		return []string{"created"}, ""
	case "screwIn":
		if s.screwed {
			return nil, "already_screwed_in"
		}
		return []string{"screwedIn"}, ""
	case "switchOn":
		switch {
		case !s.screwed:
			return nil, "not_screwed_in"
		case s.on:
			return nil, "already_on"
		}
		return []string{"switchedOn"}, ""
	case "switchOff":
		if !s.on {
			return nil, "already_off"
		}
		return []string{"switchedOff"}, ""
	case "unscrew":
		if !s.screwed {
			return nil, "not_screwed_in"
		}
		if s.on {
			return []string{"switchedOff", "unscrewed"}, ""
		}
		return []string{"unscrewed"}, ""
	case "blow":
		return []string{"blown"}, ""
	}
	return nil, "unknown command " + command
}

// bulbApply folds events into a state.
func bulbApply(s bulbState, names []string) bulbState {
	for _, n := range names {
		s.seq++
		switch n {
		case "created":
			s.exists = true
		case "screwedIn":
			s.screwed = true
		case "switchedOn":
			s.on = true
		case "switchedOff":
			s.on = false
		case "unscrewed":
			s.screwed = false
		case "blown":
			s.blown, s.on = true, false
		}
	}
	return s
}

// bulbModel is the porcupine model of one lightbulb.
var bulbModel = porcupine.Model{
	Init: func() any { return bulbState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in, out := state.(bulbState), input.(bulbInput), output.(bulbOutput)
		if in.command == readCommand {
			return out.read != nil && *out.read == s, s
		}
		names, reason := bulbDecide(s, in.command)
		if !out.ok {
			return reason != "" && reason == out.reason, s
		}
		if reason != "" ||
			(out.names != nil && !slices.Equal(out.names, names)) ||
			(out.seq != 0 && out.seq != s.seq+uint64(len(names))) {
			return false, s
		}
		return true, bulbApply(s, names)
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(bulbInput), output.(bulbOutput)
		switch {
		case in.command == readCommand && out.read != nil:
			r := out.read
			return fmt.Sprintf("read %s -> seq %d exists %v screwed %v on %v blown %v", in.id, r.seq, r.exists, r.screwed, r.on, r.blown)
		case out.ok && out.unknown:
			return fmt.Sprintf("%s %s -> (no reply) log: %v ending at %d", in.command, in.id, out.names, out.seq)
		case out.ok:
			return fmt.Sprintf("%s %s -> ok %v ending at %d", in.command, in.id, out.names, out.seq)
		}
		return fmt.Sprintf("%s %s -> rejected %s", in.command, in.id, out.reason)
	},
	DescribeState: func(state any) string {
		s := state.(bulbState)
		return fmt.Sprintf("seq %d exists %v screwed %v on %v blown %v", s.seq, s.exists, s.screwed, s.on, s.blown)
	},
}

// bulbOps builds each aggregate's operations from the ops, the answered
// reads and the log's batches.
func bulbOps(ops []*jOp, reads []*jRead, runs map[string][]jRun, start time.Time) map[string][]porcupine.Operation {
	hist := make(map[string][]porcupine.Operation)
	for _, r := range reads {
		if !r.answered() || r.err != "" {
			continue
		}
		got := bulbState{exists: r.reply.Exists, screwed: r.state.ScrewedIn, on: r.state.On, blown: r.state.Blown, seq: r.reply.Sequence}
		hist[r.aggregate] = append(hist[r.aggregate], porcupine.Operation{ClientId: max(r.worker, 0),
			Input: bulbInput{command: readCommand, id: r.id}, Output: bulbOutput{ok: true, read: &got},
			Call: r.invoke.Sub(start).Nanoseconds(), Return: r.complete.Sub(start).Nanoseconds()})
	}
	never := int64(math.MaxInt64 / 2)
	for _, op := range ops {
		if len(op.attempts) == 0 {
			continue
		}
		in := bulbInput{command: op.command, id: op.id}
		call := op.attempts[0].invoke.Sub(start).Nanoseconds()
		var batch *jRun
		if rs := runs[op.id]; len(rs) > 0 && rs[0].aggregate == op.aggregate {
			batch = &rs[0]
		}
		var out bulbOutput
		ret := never
		fd := op.firstDefinite()
		switch {
		case fd >= 0 && op.attempts[fd].reply.OK:
			r := op.attempts[fd].reply
			out = bulbOutput{ok: true, seq: r.Sequence}
			if !r.Duplicate && len(r.Events) > 0 {
				for _, e := range r.Events {
					out.names = append(out.names, e.Name)
				}
			} else if batch != nil {
				out.names = batch.names
			}
			ret = op.attempts[fd].complete.Sub(start).Nanoseconds()
		case fd >= 0 && op.attempts[fd].reply.Error.Code == codeRejected:
			out = bulbOutput{reason: op.attempts[fd].reply.Error.Reason}
			ret = op.attempts[fd].complete.Sub(start).Nanoseconds()
		case fd >= 0:
			continue // refused before any decision: no effect on the state
		case batch != nil:
			// No definite reply, but the log holds its events: it took
			// effect at some instant after its first invocation.
			out = bulbOutput{ok: true, unknown: true, seq: uint64(batch.last), names: batch.names}
		default:
			continue // no reply and no event: rejected or never run; no effect
		}
		hist[op.aggregate] = append(hist[op.aggregate], porcupine.Operation{ClientId: max(op.worker, 0), Input: in, Call: call, Output: out, Return: ret})
	}
	return hist
}

// checkLinearizable checks every aggregate's operations with porcupine.
// A history porcupine cannot decide within its time limit is reported,
// not counted as a violation.
func checkLinearizable(t *testing.T, v *jViolations, ops []*jOp, reads []*jRead, runs map[string][]jRun, start time.Time) {
	t.Helper()
	hist := bulbOps(ops, reads, runs, start)
	opsByID := make(map[string]*jOp, len(ops))
	for _, op := range ops {
		opsByID[op.id] = op
	}
	var undecided []string
	began := time.Now()
	for _, agg := range slices.Sorted(maps.Keys(hist)) {
		h := hist[agg]
		v.check(chkLinearizable, len(h))
		res, info := porcupine.CheckOperationsVerbose(bulbModel, h, jepsenLinearizeTimeout)
		switch res {
		case porcupine.Ok:
			continue
		case porcupine.Unknown:
			undecided = append(undecided, agg)
			continue
		}
		why, blocking := explainIllegal(h, info, opsByID, start)
		v.addOp(chkLinearizable, blocking, "%s: %s", agg, why)
		if dir := jepsenOutDir(t); dir != "" {
			path := filepath.Join(dir, "linearizability-"+agg+".html")
			if err := porcupine.VisualizePath(bulbModel, info, path); err == nil {
				t.Logf("porcupine's picture of %s: %s", agg, path)
			}
		}
	}
	t.Logf("linearizability: %d aggregates, %d operations checked in %v; %d undecided within %v each %v",
		len(hist), v.checked[chkLinearizable], time.Since(began).Round(time.Millisecond), len(undecided), jepsenLinearizeTimeout, undecided)
}

// explainIllegal describes why a history is not linearizable: the state
// after porcupine's longest partial linearization and the operations that
// could not follow it, earliest first.
func explainIllegal(h []porcupine.Operation, info porcupine.LinearizationInfo, ops map[string]*jOp, start time.Time) (string, *jOp) {
	partials := info.PartialLinearizations()
	var longest []int
	if len(partials) > 0 {
		for _, p := range partials[0] {
			if len(p) > len(longest) {
				longest = p
			}
		}
	}
	s := bulbModel.Init().(bulbState)
	done := make(map[int]bool, len(longest))
	for _, i := range longest {
		_, next := bulbModel.Step(s, h[i].Input, h[i].Output)
		s = next.(bulbState)
		done[i] = true
	}
	var pending []int
	for i := range h {
		if !done[i] {
			pending = append(pending, i)
		}
	}
	// The operation that returns first among those left had to take
	// effect next (or after others left, all of which the state refuses):
	// it is the one the history cannot explain. The others follow by
	// return time.
	slices.SortFunc(pending, func(a, b int) int { return cmp.Compare(h[a].Return, h[b].Return) })
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d operations linearize; then the state is {%s} and the first of these, by reply time, cannot follow:",
		len(longest), len(h), bulbModel.DescribeState(s))
	for _, i := range pending[:min(4, len(pending))] {
		op := h[i]
		in := op.Input.(bulbInput)
		names, reason := bulbDecide(s, in.command)
		would := "ok " + strings.Join(names, ",")
		switch {
		case in.command == readCommand:
			would = "this state"
		case reason != "":
			would = "rejected " + reason
		}
		ret := "never answered"
		if op.Return < math.MaxInt64/2 {
			ret = fmt.Sprintf("%.3fs", time.Duration(op.Return).Seconds())
		}
		fmt.Fprintf(&b, "\n      %s [%.3fs..%s] (the model would say %s)", bulbModel.DescribeOperation(op.Input, op.Output),
			time.Duration(op.Call).Seconds(), ret, would)
		if o := ops[in.id]; o != nil {
			fmt.Fprintf(&b, "\n        attempts: %s", o.attemptsLine(start))
		}
	}
	var blocking *jOp
	if len(pending) > 0 {
		blocking = ops[h[pending[0]].Input.(bulbInput).id]
	}
	return b.String(), blocking
}

// jepsenOutDir is where the test keeps pictures and logs of violations
// (CONCURSUS_JEPSEN_OUT), created on first use; "" when unset.
func jepsenOutDir(t *testing.T) string {
	dir := os.Getenv("CONCURSUS_JEPSEN_OUT")
	if dir == "" {
		return ""
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("CONCURSUS_JEPSEN_OUT: %v", err)
		return ""
	}
	return dir
}
