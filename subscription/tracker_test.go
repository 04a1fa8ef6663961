package subscription

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// The tracker as a script: each step is an event (aggregate, sequence),
// the verdict it gets, and whether it is then recorded as done.
func TestTracker(t *testing.T) {
	type step struct {
		id      string
		seq     uint64
		want    verdict
		gapFrom uint64
	}
	for _, tc := range []struct {
		name        string
		expectFirst bool
		steps       []step
	}{
		{"from the beginning", true, []step{
			{"a", 1, inOrder, 0},
			{"a", 2, inOrder, 0},
			{"a", 2, duplicate, 0},
			{"a", 1, duplicate, 0},
			{"a", 5, gap, 3},
			{"b", 3, gap, 1}, // an unseen aggregate starts at 1
			{"b", 1, duplicate, 0},
			{"c", 1, inOrder, 0},
		}},
		{"resumed or live", false, []step{
			{"a", 7, inOrder, 0}, // whatever comes first
			{"a", 8, inOrder, 0},
			{"a", 7, duplicate, 0},
			{"a", 10, gap, 9},
			{"b", 1, inOrder, 0},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracker(tc.expectFirst)
			for i, s := range tc.steps {
				v, from := tr.check(s.id, s.seq)
				if v != s.want || from != s.gapFrom {
					t.Fatalf("step %d: %s#%d is %v (gap from %d), want %v (gap from %d)", i, s.id, s.seq, v, from, s.want, s.gapFrom)
				}
				if v == gap { // the subscription fills it first
					for q := from; q < s.seq; q++ {
						tr.done(s.id, q)
					}
				}
				if v != duplicate {
					tr.done(s.id, s.seq)
				}
			}
		})
	}
	tr := newTracker(false)
	tr.done("a", 5)
	tr.done("a", 3) // never moves back
	if v, _ := tr.check("a", 4); v != duplicate || tr.size() != 1 {
		t.Errorf("after done(5), done(3): 4 is %v, size %d", v, tr.size())
	}
}

func TestBackoffDoublesUpToMax(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second}
	want := []time.Duration{100, 200, 400, 800, 1600, 3200, 5000, 5000}
	for i, w := range want {
		if got := b.delay(i + 1); got != w*time.Millisecond {
			t.Errorf("delay(%d) = %v, want %v", i+1, got, w*time.Millisecond)
		}
	}
	if got := b.delay(1000); got != 5*time.Second {
		t.Errorf("delay(1000) = %v", got)
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	nc := &nats.Conn{} // never used: Validate only checks it is there
	base := Config{Conn: nc, Name: "billing", AggregateType: "lightbulb"}
	d := base.withDefaults()
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if d.Prefix != "concursus" || d.Stream != "CONCURSUS_EVENTS" || d.MaxAttempts != 5 || d.Backoff != (Backoff{100 * time.Millisecond, 5 * time.Second}) ||
		d.MaxAckPending != 128 || d.AckWait != 30*time.Second || d.GapTimeout != 30*time.Second || d.Logger == nil {
		t.Errorf("defaults %+v", d)
	}
	if d.durable() != "billing" || d.replayDurable() != "billing-replay" || d.filterSubjects()[0] != "concursus.events.lightbulb.>" {
		t.Errorf("names %s %s %v", d.durable(), d.replayDurable(), d.filterSubjects())
	}
	g := base
	g.Group, g.Events = Group{Members: 3, Member: 2}, []string{"created_0", "screwedIn_1"}
	g = g.withDefaults()
	if g.durable() != "billing-2of3" || strings.Join(g.filterSubjects(), " ") != "concursus.events.lightbulb.created_0.* concursus.events.lightbulb.screwedIn_1.*" {
		t.Errorf("group names %s %v", g.durable(), g.filterSubjects())
	}

	for _, tc := range []struct {
		change  func(*Config)
		mention string
	}{
		{func(c *Config) { c.Conn = nil }, "Conn"},
		{func(c *Config) { c.Name = "" }, "Name is empty"},
		{func(c *Config) { c.Name = "bill.ing" }, `"bill.ing"`},
		{func(c *Config) { c.AggregateType = "" }, "AggregateType"},
		{func(c *Config) { c.AggregateType = "light.bulb" }, `"light.bulb"`},
		{func(c *Config) { c.Prefix = "a..b" }, `"a..b"`},
		{func(c *Config) { c.Prefix = "a.>" }, `"a.>"`},
		{func(c *Config) { c.Events = []string{"created"} }, `"created"`},
		{func(c *Config) { c.Events = []string{"created_0", "created_0"} }, "twice"},
		{func(c *Config) { c.MaxAttempts = -1 }, "MaxAttempts -1"},
		{func(c *Config) { c.Backoff = Backoff{Initial: time.Second, Max: time.Millisecond} }, "Backoff 1s..1ms"},
		{func(c *Config) { c.AckWait = time.Second }, "AckWait 1s must exceed Backoff.Max 5s"},
		{func(c *Config) { c.GapTimeout = -time.Second }, "GapTimeout -1s"},
		{func(c *Config) { c.MaxAckPending = -5 }, "MaxAckPending -5"},
		{func(c *Config) { c.Group = Group{Members: 2, Member: 2} }, "Group.Member 2 must be between 0 and 1"},
		{func(c *Config) { c.Group = Group{Member: 1} }, "without Group.Members"},
		{func(c *Config) { c.Group = Group{Members: -1} }, "Group.Members -1"},
		{func(c *Config) { c.Start = FromSequence(0) }, "FromSequence(0)"},
		{func(c *Config) { c.Start = FromTime(time.Time{}) }, "zero time"},
	} {
		c := base
		tc.change(&c)
		err := c.withDefaults().Validate()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("want ErrInvalidConfig mentioning %q, got %v", tc.mention, err)
		}
	}
}
