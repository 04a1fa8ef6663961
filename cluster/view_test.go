package cluster

import (
	"slices"
	"testing"
)

func view(v uint64, ms ...Member) View { return View{Version: v, Members: ms} }

func TestDiff(t *testing.T) {
	a, b, c, d, e := member("a", StateAlive), member("b", StateAlive), member("c", StateAlive), member("d", StateAlive), member("e", StateAlive)
	b2 := b
	b2.Meta.RaftAddr = "x:1"
	c2 := c
	c2.Addr = "127.0.0.1:2"
	for _, tc := range []struct {
		name       string
		prev, next View
		want       string
	}{
		{"first view", View{}, view(1, a, member("x", StateDead), b), "[join:a join:b ]"},
		{"nothing", view(1, a, b), view(2, a, b), "[]"},
		{"updates", view(1, a, b, c), view(2, a, b2, c2), "[update:b update:c ]"},
		{"leave and failure", view(1, a, b, c), view(2, a, member("b", StateLeft), member("c", StateDead)), "[leave:b failed:c ]"},
		{"rejoin", view(1, member("a", StateDead), member("b", StateLeft)), view(2, a, b), "[join:a join:b ]"},
		{"pruned tombstone", view(1, a, b, c), view(2, a), "[failed:b failed:c ]"},
		{"gone members stay gone", view(1, member("a", StateDead), member("b", StateLeft)), view(2, member("a", StateLeft)), "[]"},
		{"mixed", view(1, b, d), view(2, a, member("b", StateDead), c, e), "[join:a failed:b join:c failed:d join:e ]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := eventsString(Diff(tc.prev, tc.next)); got != tc.want {
				t.Errorf("Diff = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestViewAccessors(t *testing.T) {
	v := view(3, member("a", StateAlive), member("b", StateLeft), member("c", StateAlive), member("d", StateDead))
	if got := v.AliveIDs(); !slices.Equal(got, []string{"a", "c"}) {
		t.Errorf("AliveIDs = %v", got)
	}
	if got := v.Alive(); len(got) != 2 || got[1].ID != "c" {
		t.Errorf("Alive = %v", got)
	}
	if m, ok := v.Member("d"); !ok || m.State != StateDead {
		t.Errorf("Member(d) = %v, %v", m, ok)
	}
	if _, ok := v.Member("bb"); ok {
		t.Error("Member(bb) found")
	}
	for s, want := range map[State]string{StateAlive: "alive", StateDead: "dead", StateLeft: "left", 0: "unknown"} {
		if s.String() != want {
			t.Errorf("State(%d) = %s", s, s)
		}
	}
	for k, want := range map[EventKind]string{EventJoin: "join", EventLeave: "leave", EventFailed: "failed", EventUpdate: "update", 0: "unknown"} {
		if k.String() != want {
			t.Errorf("EventKind(%d) = %s", k, k)
		}
	}
}
