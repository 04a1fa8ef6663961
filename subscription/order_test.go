package subscription

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/model"
)

// at0 is the instant the orderer tests' clocks and event times count from.
var at0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// held builds an accepted event: aggregate id, sequence seq, stamped
// stamp seconds after at0.
func heldAt(id string, seq uint64, stamp int) *heldEvent {
	return &heldEvent{d: &delivery{event: Event{Event: model.Event{
		AggregateType: "lightbulb", AggregateID: id, Sequence: seq,
		Timestamp: at0.Add(time.Duration(stamp) * time.Second), StreamID: model.DefaultStream,
	}}}}
}

// names lists released events as "id#seq", with "!" for late and "^"
// for overflow.
func names(rs []released) string {
	var out []string
	for _, r := range rs {
		s := fmt.Sprintf("%s#%d", r.h.d.event.AggregateID, r.h.d.event.Sequence)
		if r.late {
			s += "!"
		}
		if r.overflow {
			s += "^"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// TestOrdererScript drives the orderer through a script: "add id seq
// stamp" at a clock time, "tick" to a clock time; each step lists what
// is released.
func TestOrdererScript(t *testing.T) {
	type step struct {
		at       time.Duration // clock, after at0
		add      *heldEvent    // nil: a tick
		nodeLate bool
		want     string
	}
	const w = 2 * time.Second
	ms := time.Millisecond
	tests := []struct {
		name  string
		max   int
		hint  bool
		steps []step
	}{
		{
			name: "reordered within the window",
			max:  100,
			steps: []step{
				{at: 0, add: heldAt("a", 1, 10)},
				{at: 100 * ms, add: heldAt("a", 2, 5)}, // stamped before a#1
				{at: 200 * ms, add: heldAt("b", 1, 7)},
				{at: w - ms, want: ""},
				{at: w, want: "a#2 a#1"}, // a#1 is due; a#2 goes before it
				{at: w + 150*ms, want: ""},
				{at: w + 200*ms, want: "b#1"},
			},
		},
		{
			name: "an event stamped after a due one waits for its own window",
			max:  100,
			steps: []step{
				{at: 0, add: heldAt("a", 1, 5)},
				{at: time.Second, add: heldAt("a", 2, 6)},
				{at: w, want: "a#1"},
				{at: w + time.Second, want: "a#2"},
			},
		},
		{
			name: "late after the window: at once, marked late",
			max:  100,
			steps: []step{
				{at: 0, add: heldAt("a", 1, 10)},
				{at: w, want: "a#1"},
				{at: w + ms, add: heldAt("a", 2, 3), want: "a#2!"},
				// not late: stamped after what was released
				{at: w + 2*ms, add: heldAt("a", 3, 11)},
				{at: 2*w + 2*ms, want: "a#3"},
				// late releases do not lower the released key
				{at: 2*w + 3*ms, add: heldAt("a", 4, 10), want: "a#4!"},
			},
		},
		{
			name: "the same instant: stream then sequence decide",
			max:  100,
			steps: []step{
				{at: 0, add: heldAt("a", 2, 5)},
				{at: 0, add: heldAt("a", 1, 5)},
				{at: w, want: "a#1 a#2"},
			},
		},
		{
			name: "overflow releases the oldest early, with what is stamped before it",
			max:  2,
			steps: []step{
				{at: 0, add: heldAt("a", 1, 5)},
				{at: ms, add: heldAt("b", 1, 1)},
				{at: 2 * ms, add: heldAt("a", 2, 4), want: "a#2^ a#1^"},
				{at: 3 * ms, add: heldAt("b", 2, 0)},
				{at: 4 * ms, add: heldAt("c", 1, 0), want: "b#2^ b#1^"},
				{at: 5 * ms, add: heldAt("a", 3, 1), want: "a#3!"},
				{at: w + 4*ms, want: "c#1"},
			},
		},
		{
			name: "the node's late mark counts only when nothing was released, and only with hint",
			max:  100,
			hint: true,
			steps: []step{
				{at: 0, add: heldAt("a", 5, 10), nodeLate: true},
				{at: ms, add: heldAt("b", 5, 10)},
				{at: w + ms, want: "a#5! b#5"},
				{at: w + 2*ms, add: heldAt("a", 6, 11), nodeLate: true},
				{at: 2*w + 2*ms, want: "a#6"},
			},
		},
		{
			name: "without hint the node's mark is ignored",
			max:  100,
			steps: []step{
				{at: 0, add: heldAt("a", 5, 10), nodeLate: true},
				{at: w, want: "a#5"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOrderer(w, tt.max, tt.hint)
			for i, st := range tt.steps {
				now := at0.Add(st.at)
				var rs []released
				if st.add != nil {
					rs = o.add(st.add, now, st.nodeLate)
				} else {
					rs = o.due(now)
				}
				if got := names(rs); got != st.want {
					t.Fatalf("step %d (+%v): released %q, want %q", i, st.at, got, st.want)
				}
				if o.held() > tt.max {
					t.Fatalf("step %d: %d held, cap %d", i, o.held(), tt.max)
				}
			}
		})
	}
}

// TestOrdererProperty: whatever the arrival order and times, every event
// is released exactly once; per aggregate the events not marked late come
// in key order and after every earlier release, and an event is marked
// late exactly when an event with a later key of its aggregate was
// released before it. Events that all arrive within one window of each
// other come out in key order with none late.
func TestOrdererProperty(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	const w = time.Second
	for round := 0; round < 300; round++ {
		maxHeld := 1 + rng.IntN(20)
		o := newOrderer(w, maxHeld, false)
		var all []*heldEvent
		for _, id := range []string{"a", "b", "c"} {
			for seq := 1; seq <= 1+rng.IntN(8); seq++ {
				all = append(all, heldAt(id, uint64(seq), rng.IntN(20)))
			}
		}
		rng.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		spread := rng.IntN(3) == 0 // all within one window
		now := at0
		var out []released
		for _, h := range all {
			if spread {
				now = now.Add(time.Millisecond)
			} else {
				now = now.Add(time.Duration(rng.IntN(1500)) * time.Millisecond)
				out = append(out, o.due(now)...)
			}
			out = append(out, o.add(h, now, false)...)
		}
		out = append(out, o.due(now.Add(w))...)
		if o.held() != 0 || len(out) != len(all) {
			t.Fatalf("round %d: %d released of %d, %d still held", round, len(out), len(all), o.held())
		}
		last := map[string]model.TimeKey{}
		seen := map[*heldEvent]bool{}
		for _, r := range out {
			if seen[r.h] {
				t.Fatalf("round %d: %s released twice", round, names([]released{r}))
			}
			seen[r.h] = true
			id, k := r.h.d.event.AggregateID, r.h.key
			prev, any := last[id]
			wantLate := any && k.Before(prev)
			if r.late != wantLate {
				t.Fatalf("round %d: %s late=%v, want %v (released key %v)", round, names([]released{r}), r.late, wantLate, prev.Timestamp)
			}
			if !any || prev.Before(k) {
				last[id] = k
			}
			if spread && maxHeld >= len(all) && r.late {
				t.Fatalf("round %d: %s late although everything arrived within the window", round, names([]released{r}))
			}
		}
		if spread && maxHeld >= len(all) {
			byAgg := map[string][]model.TimeKey{}
			for _, r := range out {
				byAgg[r.h.d.event.AggregateID] = append(byAgg[r.h.d.event.AggregateID], r.h.key)
			}
			for id, keys := range byAgg {
				if !slices.IsSortedFunc(keys, model.TimeKey.Compare) {
					t.Fatalf("round %d: %s released out of key order", round, id)
				}
			}
		}
	}
}

func TestEventTimeConfigDefaultsAndValidation(t *testing.T) {
	nc := &nats.Conn{} // never used: Validate only checks it is there
	base := Config{Conn: nc, Name: "billing", AggregateType: "lightbulb"}
	d := base.withDefaults()
	if d.Order != LogOrder || d.SettleWindow != 0 || d.MaxHeld != 0 || d.MaxAckPending != DefaultMaxAckPending || d.Clock == nil {
		t.Errorf("log order defaults: %+v", d)
	}
	e := base
	e.Order = EventTime
	e = e.withDefaults()
	if err := e.Validate(); err != nil {
		t.Fatalf("event-time defaults: %v", err)
	}
	if e.SettleWindow != DefaultSettleWindow || e.MaxHeld != DefaultMaxHeld || e.MaxAckPending != DefaultMaxHeld+DefaultMaxAckPending || e.AckWait != DefaultAckWait {
		t.Errorf("event-time defaults: window %v, max held %d, max ack pending %d, ack wait %v", e.SettleWindow, e.MaxHeld, e.MaxAckPending, e.AckWait)
	}
	long := base
	long.Order, long.SettleWindow = EventTime, time.Minute
	if long = long.withDefaults(); long.AckWait != 2*time.Minute {
		t.Errorf("AckWait with a 1m window = %v, want 2m", long.AckWait)
	}
	for _, tc := range []struct {
		change  func(*Config)
		mention string
	}{
		{func(c *Config) { c.Order = 7 }, "Order Order(7)"},
		{func(c *Config) { c.SettleWindow = time.Second }, "EventTime only"},
		{func(c *Config) { c.MaxHeld = 10 }, "EventTime only"},
		{func(c *Config) { c.Order, c.SettleWindow = EventTime, -time.Second }, "SettleWindow -1s must be positive"},
		{func(c *Config) { c.Order, c.MaxHeld = EventTime, -1 }, "MaxHeld -1"},
		{func(c *Config) { c.Order, c.SettleWindow, c.AckWait = EventTime, 40*time.Second, 30*time.Second }, "AckWait 30s must exceed SettleWindow 40s"},
	} {
		c := base
		tc.change(&c)
		err := c.withDefaults().Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("want ErrInvalidConfig mentioning %q, got %v", tc.mention, err)
		}
	}
}
