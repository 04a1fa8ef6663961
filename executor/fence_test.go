package executor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/storage/memory"
)

// These tests run two executors over one event log: two owners of one
// aggregate at once, as after a pause, a gossip split or a ring change that
// one of them has not seen yet. Every answer either gives must be justified
// by the log, and one command id must get one outcome.

func bulbRef(id string) model.Ref { return model.Ref{Type: lightbulb.TypeName, ID: id} }

// forgetfulCommands is a command log whose reads never find anything (an
// owner whose filter and reads missed a decision made elsewhere), while its
// writes still go to the shared log.
type forgetfulCommands struct{ *memory.CommandLog }

func (forgetfulCommands) Get(_ context.Context, id string) (commandlog.Record, error) {
	return commandlog.Record{}, fmt.Errorf("%q: %w", id, commandlog.ErrNotFound)
}

func twoOwners(t *testing.T, commandsA, commandsB commandlog.Log) (a, b *harness) {
	events := memory.NewEventLog()
	a = newHarness(t, executor.Config{}, withStores(events, commandsA, nil))
	b = newHarness(t, executor.Config{}, withStores(events, commandsB, nil))
	return a, b
}

func rejectionOf(err error) string {
	var rej *model.Rejection
	if errors.As(err, &rej) {
		return rej.Reason
	}
	return ""
}

// staleOwners sets up two owners of one bulb over one log and one
// command log: a created, screwed in and switched it on (its cache says
// on), then b switched it off.
func staleOwners(t *testing.T, id string) (a, b *harness, ref model.Ref) {
	shared := memory.NewCommandLog()
	a, b = twoOwners(t, shared, shared)
	ref = bulbRef(id)
	a.mustExec(t, ref, "c1", "create", `{"wattage":60}`)
	a.mustExec(t, ref, "c2", "screwIn", `{"location":"hall"}`)
	a.mustExec(t, ref, "c3", "switchOn", "")
	b.mustExec(t, ref, "c4", "switchOff", "")
	return a, b, ref
}

// A stale owner must not answer a rejection from state the log has moved
// past: its decision passes the fence as a head check, fails it, and is
// decided again on the reloaded state.
func TestStaleRejectionIsFenced(t *testing.T) {
	a, b, ref := staleOwners(t, "stale-reject")

	// On a's cached state switchOn is "already_on"; the log says off.
	res, err := a.exec(t, ref, "c5", "switchOn", "")
	if err != nil {
		t.Fatalf("switchOn on the stale owner: %v (reason %q), want accepted: the log says the bulb is off", err, rejectionOf(err))
	}
	if res.Sequence != 5 {
		t.Errorf("switchOn at sequence %d, want 5", res.Sequence)
	}
	if st := a.x.Stats(); st.Fenced == 0 || st.HeadChecks != 0 && st.Fenced == 0 {
		t.Errorf("stats %+v: want the failed fence counted", st)
	}

	// And the other way round: a's cache says off, the log says on.
	b.mustExec(t, ref, "c6", "switchOff", "")
	a.mustExec(t, ref, "c7", "switchOn", "")  // a: on (after a reload)
	b.mustExec(t, ref, "c8", "switchOff", "") // b: off, a does not know
	if _, err := a.exec(t, ref, "c9", "switchOff", ""); rejectionOf(err) != lightbulb.ReasonAlreadyOff {
		t.Errorf("switchOff on the stale owner: %v, want rejected %s (the log says off)", err, lightbulb.ReasonAlreadyOff)
	}
	if rec, ok := a.recorded(t, "c9"); !ok || rec.Outcome != commandlog.Rejected {
		t.Errorf("record of c9: %+v %v, want rejected", rec, ok)
	}
}

// A stale owner must not answer a state query from its cache either: the
// cached state passes the fence as a head check, and after a failed one is
// reloaded before it answers. (Found by TestFacts: after a gossip split,
// a node whose ring never changed kept answering from a cache one event
// behind the log.)
func TestStaleQueryIsFenced(t *testing.T) {
	a, _, ref := staleOwners(t, "stale-query")

	res, err := a.x.Ask(context.Background(), executor.Query{Ref: ref})
	if err != nil {
		t.Fatal(err)
	}
	var st lightbulb.Bulb
	if err := json.Unmarshal(res.Value, &st); err != nil {
		t.Fatal(err)
	}
	if res.Sequence != 4 || st.On {
		t.Errorf("the stale owner answered sequence %d, on=%v; want 4, off (the log's)", res.Sequence, st.On)
	}
	if got := a.x.Stats().Fenced; got != 1 {
		t.Errorf("Fenced %d, want the failed fence of the query counted", got)
	}
	// Current again: the next query passes the check at once.
	if res, err := a.x.Ask(context.Background(), executor.Query{Ref: ref}); err != nil || res.Sequence != 4 {
		t.Errorf("second query: sequence %d, %v; want 4", res.Sequence, err)
	}
	if got := a.x.Stats().Fenced; got != 1 {
		t.Errorf("Fenced %d after a current query, want still 1", got)
	}
}

// A fence that fails makes the owner search the reloaded history for its
// own command id, all of it, not only the last few commands: the command
// may have been decided by the other owner. (The owners keep separate
// command logs here, so that only the history can tell.)
func TestFencedRetryFindsItsOwnCommand(t *testing.T) {
	a, b := twoOwners(t, memory.NewCommandLog(), memory.NewCommandLog())
	ref := bulbRef("own-id")
	a.mustExec(t, ref, "c1", "create", `{"wattage":60}`)
	a.mustExec(t, ref, "c2", "screwIn", `{"location":"hall"}`) // a caches sequence 2
	first := b.mustExec(t, ref, "x", "switchOn", "")
	for i := range 20 { // push x out of any short list of recent commands
		cmd := []string{"switchOff", "switchOn"}[i%2]
		b.mustExec(t, ref, fmt.Sprintf("t%d", i), cmd, "")
	}
	res, err := a.exec(t, ref, "x", "switchOn", "")
	if err != nil {
		t.Fatalf("retry of x on the stale owner: %v (reason %q), want its original acceptance", err, rejectionOf(err))
	}
	if !res.Duplicate || res.Sequence != first.Sequence {
		t.Errorf("retry of x: %+v, want duplicate at sequence %d", res, first.Sequence)
	}
	a.checkLastSeq(t, ref, 23, "the retry ran again")
}

// Records are inserted, never replaced: a second decision of one id answers
// with the first.
func TestFirstRecordedDecisionWins(t *testing.T) {
	log := memory.NewCommandLog()
	a, b := twoOwners(t, log, forgetfulCommands{log})
	ref := bulbRef("first-wins")
	a.mustExec(t, ref, "c1", "create", `{"wattage":60}`)
	if _, err := a.exec(t, ref, "x", "switchOn", ""); rejectionOf(err) != lightbulb.ReasonNotScrewedIn {
		t.Fatalf("switchOn: %v, want rejected %s", err, lightbulb.ReasonNotScrewedIn)
	}
	// b cannot read the record; it decides x again on the same state and
	// finds the record standing when it writes its own.
	_, err := b.exec(t, ref, "x", "switchOn", "")
	if rejectionOf(err) != lightbulb.ReasonNotScrewedIn || !errors.Is(err, executor.ErrRecalled) {
		t.Errorf("second decision of x: %v, want the recorded rejection, recalled", err)
	}
}

// A retry that reaches the owner before the filter learnt a rejection is
// answered with it, also after the state moved on.
func TestRetryOfRejectionBeforeTheFilterLearnsIt(t *testing.T) {
	f, gets := newMapFilter(), &countingGets{}
	f.fail = true // the filter never learns anything
	h := newHarness(t, executor.Config{}, withFilter(f, gets))
	ref := bulbRef("unlearnt")
	h.mustExec(t, ref, "c1", "create", `{"wattage":60}`)
	if _, err := h.exec(t, ref, "x", "switchOn", ""); rejectionOf(err) != lightbulb.ReasonNotScrewedIn {
		t.Fatalf("switchOn: %v", err)
	}
	h.mustExec(t, ref, "c2", "screwIn", `{"location":"hall"}`)
	if _, err := h.exec(t, ref, "x", "switchOn", ""); rejectionOf(err) != lightbulb.ReasonNotScrewedIn {
		t.Errorf("retry of x after the bulb was screwed in: %v, want the original rejection", err)
	}
	h.checkLastSeq(t, ref, 2, "")
}

// doubtfulFilter is a filter that cannot vouch for its misses.
type doubtfulFilter struct{ *mapFilter }

func (doubtfulFilter) Complete() bool { return false }

// A filter that says its memory may be incomplete has its misses checked
// against the command log.
func TestIncompleteFilterMissesReadTheCommandLog(t *testing.T) {
	f, gets := newMapFilter(), &countingGets{}
	h := newHarness(t, executor.Config{}, withFilter(doubtfulFilter{f}, gets))
	ref := bulbRef("doubt")
	h.mustExec(t, ref, "c1", "create", `{"wattage":60}`)
	h.mustExec(t, ref, "c2", "screwIn", `{"location":"hall"}`)
	if gets.gets != 2 {
		t.Errorf("command log read %d times, want 2 (every miss)", gets.gets)
	}
	if st := h.x.Stats(); st.DoubtedMisses != 2 {
		t.Errorf("doubted misses %d, want 2", st.DoubtedMisses)
	}
}
