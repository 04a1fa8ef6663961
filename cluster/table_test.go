package cluster

import (
	"fmt"
	"slices"
	"testing"
)

func member(id string, st State) Member {
	return Member{ID: id, Addr: "127.0.0.1:1", State: st, Meta: Meta{NodeID: id}}
}

func TestTableVersionsAndSnapshots(t *testing.T) {
	tb := newTable(2)
	if !tb.apply(member("b", StateAlive)) || !tb.apply(member("a", StateAlive)) {
		t.Fatal("new members not applied")
	}
	if tb.apply(member("a", StateAlive)) {
		t.Error("a repeat counted as a change")
	}
	v := tb.snapshot()
	if v.Version != 2 || states(v) != "v2[a=alive b=alive ]" {
		t.Errorf("snapshot = %s", states(v))
	}
	if w := tb.snapshot(); &w.Members[0] != &v.Members[0] {
		t.Error("unchanged table rebuilt its view")
	}
	m := member("a", StateAlive)
	m.Meta.Version = "2"
	tb.apply(m)
	if v := tb.snapshot(); v.Version != 3 || v.Members[0].Meta.Version != "2" {
		t.Errorf("after update: %+v", v)
	}
}

func TestTableTombstonesPruneOldestDeparture(t *testing.T) {
	tb := newTable(2)
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		tb.apply(member(id, StateAlive))
	}
	tb.apply(member("c", StateDead))
	tb.apply(member("a", StateLeft))
	if tb.apply(member("a", StateDead)) { // a leave is not downgraded
		t.Error("left member became dead")
	}
	tb.apply(member("e", StateDead)) // prunes c, the oldest departure
	if got := states(tb.snapshot()); got != "v8[a=left b=alive d=alive e=dead ]" {
		t.Errorf("after pruning: %s", got)
	}
	tb.apply(member("c", StateAlive)) // a pruned member can come back
	tb.apply(member("b", StateLeft))  // prunes a
	if got := states(tb.snapshot()); got != "v10[b=left c=alive d=alive e=dead ]" {
		t.Errorf("after rejoin and leave: %s", got)
	}
}

func TestSubscriptionKeepsOnlyNewest(t *testing.T) {
	tb := newTable(8)
	tb.apply(member("a", StateAlive))
	s := tb.subscribe()
	if v := <-s.C(); v.Version != 1 {
		t.Fatalf("first view v%d", v.Version)
	}
	for i := range 10 {
		tb.apply(member(fmt.Sprint("m", i), StateAlive))
		tb.publish() // nobody reads: each view replaces the previous
	}
	v := <-s.C()
	if v.Version != 11 || len(v.Members) != 11 {
		t.Errorf("slow subscriber got %s", states(v))
	}
	select {
	case v := <-s.C():
		t.Errorf("another view buffered: %s", states(v))
	default:
	}
	tb.publish() // same version again: not redelivered
	select {
	case v := <-s.C():
		t.Errorf("version %d delivered twice", v.Version)
	default:
	}

	// A change pending publication is signalled once, however many there are.
	if len(tb.changed) != 1 {
		t.Errorf("changed holds %d tokens, want 1", len(tb.changed))
	}

	s2 := tb.subscribe()
	s.Close()
	s.Close()
	if _, ok := <-s.C(); ok {
		t.Error("closed subscription still open")
	}
	tb.apply(member("z", StateAlive))
	tb.close()
	var got []uint64
	for v := range s2.C() {
		got = append(got, v.Version)
	}
	if !slices.Equal(got, []uint64{12}) {
		t.Errorf("after close the second subscriber received %v, want only the final v12", got)
	}
	s2.Close() // after the table closed it: no panic
}

func TestTableLeaveIntent(t *testing.T) {
	tb := newTable(8)
	for _, id := range []string{"a", "b", "c", "d"} {
		tb.apply(member(id, StateAlive))
	}
	// Intent before the departure: the departure is a leave.
	if tb.leaveIntent("a") {
		t.Error("intent of an alive member changed the view")
	}
	tb.apply(member("a", StateDead))
	// Intent after the departure (it lost the race): failure becomes leave.
	tb.apply(member("b", StateDead))
	if !tb.leaveIntent("b") {
		t.Error("late intent did not change the view")
	}
	// A peer saying "left" corrects a failure but does not flag the living.
	tb.apply(member("c", StateDead))
	if !tb.peerSaysLeft("c") || tb.peerSaysLeft("d") || tb.leaveIntent("zz") {
		t.Error("peerSaysLeft / unknown intent")
	}
	tb.apply(member("d", StateDead))
	if got := states(tb.snapshot()); got != "v10[a=left b=left c=left d=dead ]" {
		t.Errorf("got %s", got)
	}
	if got := tb.left(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("left() = %v", got)
	}
	// Coming back clears the intent: the next departure is judged afresh.
	tb.apply(member("a", StateAlive))
	tb.apply(member("a", StateDead))
	if m, _ := tb.get("a"); m.State != StateDead {
		t.Errorf("a's new life ended as %s, want dead", m.State)
	}
}
