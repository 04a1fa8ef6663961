package lightbulb_test

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/examples/lightbulb/lightbulbtest"
	"github.com/concursus-go/concursus/model"
)

type timedCmd struct {
	cmd string
	at  time.Duration // after t0
}

func ptr(t time.Time) *time.Time { return &t }

// TestUsage checks the usage view (total time switched on) against event
// timestamps. Every scenario runs twice: once with the times as the
// processing time (Now), once as the source's event time (Timestamp) while
// the processing time stays fixed; the view must follow the event time.
func TestUsage(t *testing.T) {
	const m, s = time.Minute, time.Second
	// screwedIn creates a bulb and screws it in, then runs steps.
	screwedIn := func(steps ...timedCmd) []timedCmd {
		return append([]timedCmd{{"create", 0}, {"screwIn", 30 * s}}, steps...)
	}
	tests := []struct {
		name  string
		steps []timedCmd
		want  lightbulb.Usage
	}{
		{name: "never switched on", steps: screwedIn(), want: lightbulb.Usage{}},
		{
			name:  "on for 10 seconds",
			steps: screwedIn(timedCmd{"switchOn", m}, timedCmd{"switchOff", m + 10*s}),
			want:  lightbulb.Usage{OnMillis: 10_000, Switches: 1},
		},
		{
			name:  "still on",
			steps: screwedIn(timedCmd{"switchOn", m}),
			want:  lightbulb.Usage{Switches: 1, OnSince: ptr(at(m))},
		},
		{
			name: "two periods",
			steps: screwedIn(timedCmd{"switchOn", m}, timedCmd{"switchOff", m + 10*s},
				timedCmd{"switchOn", 2 * m}, timedCmd{"switchOff", 2*m + 5500*time.Millisecond}),
			want: lightbulb.Usage{OnMillis: 15_500, Switches: 2},
		},
		{
			name: "two periods, on again",
			steps: screwedIn(timedCmd{"switchOn", m}, timedCmd{"switchOff", m + 10*s},
				timedCmd{"switchOn", 2 * m}, timedCmd{"switchOff", 3 * m}, timedCmd{"switchOn", 4 * m}),
			want: lightbulb.Usage{OnMillis: 70_000, Switches: 3, OnSince: ptr(at(4 * m))},
		},
		{
			name:  "unscrewed while on",
			steps: screwedIn(timedCmd{"switchOn", m}, timedCmd{"unscrew", m + 30*s}),
			want:  lightbulb.Usage{OnMillis: 30_000, Switches: 1},
		},
		{
			name: "unscrewed while on, screwed in and on again",
			steps: screwedIn(timedCmd{"switchOn", m}, timedCmd{"unscrew", m + 30*s},
				timedCmd{"screwIn", 5 * m}, timedCmd{"switchOn", 6 * m}, timedCmd{"switchOff", 6*m + s}),
			want: lightbulb.Usage{OnMillis: 31_000, Switches: 2},
		},
		{
			name:  "unscrewed while off adds nothing",
			steps: screwedIn(timedCmd{"switchOn", m}, timedCmd{"switchOff", 2 * m}, timedCmd{"unscrew", 10 * m}),
			want:  lightbulb.Usage{OnMillis: 60_000, Switches: 1},
		},
		{
			name:  "blown while on",
			steps: screwedIn(timedCmd{"switchOn", m}, timedCmd{"blow", 3 * m}),
			want:  lightbulb.Usage{OnMillis: 120_000, Switches: 1},
		},
		{
			name:  "blown while off",
			steps: screwedIn(timedCmd{"switchOn", m}, timedCmd{"switchOff", 2 * m}, timedCmd{"blow", 3 * m}),
			want:  lightbulb.Usage{OnMillis: 60_000, Switches: 1},
		},
		{
			name:  "blown unscrewed",
			steps: []timedCmd{{"create", 0}, {"blow", m}},
			want:  lightbulb.Usage{},
		},
		{
			// Event times are recorded at millisecond precision: 0.9ms is
			// dropped from both ends.
			name: "sub-millisecond times are truncated",
			steps: screwedIn(timedCmd{"switchOn", m + 900*time.Microsecond},
				timedCmd{"switchOff", m + 10*time.Millisecond + 900*time.Microsecond}),
			want: lightbulb.Usage{OnMillis: 10, Switches: 1},
		},
		{
			name:  "switched off in the same millisecond",
			steps: screwedIn(timedCmd{"switchOn", m}, timedCmd{"switchOff", m + 500*time.Microsecond}),
			want:  lightbulb.Usage{Switches: 1},
		},
	}
	for _, tt := range tests {
		for _, clock := range []string{"now", "source"} {
			t.Run(tt.name+"/"+clock, func(t *testing.T) {
				b := newBulb(t)
				for i, step := range tt.steps {
					now, source := at(step.at), time.Time{}
					if clock == "source" {
						now, source = at(24*time.Hour+time.Duration(i)*time.Millisecond), at(step.at)
					}
					if _, err := b.do(t, step.cmd, validArgs[step.cmd], now, source); err != nil {
						t.Fatalf("%s at +%v: %v", step.cmd, step.at, err)
					}
				}
				got, err := b.l.Usage.Replay(b.history)
				if err != nil {
					t.Fatal(err)
				}
				if !sameUsage(got, tt.want) {
					t.Errorf("Usage = %s, want %s", usageString(got), usageString(tt.want))
				}

				// The erased fold (what the node serves) agrees.
				_, data := b.foldUsage(t)
				var viaFold lightbulb.Usage
				if err := json.Unmarshal(data, &viaFold); err != nil {
					t.Fatalf("MarshalValue gave %s: %v", data, err)
				}
				if !sameUsage(viaFold, tt.want) {
					t.Errorf("FoldView usage = %s, want %s", data, usageString(tt.want))
				}
			})
		}
	}
}

// TestUsageAsOf rolls the usage view and the bulb up as they were at
// instants in the middle of the bulb's life.
func TestUsageAsOf(t *testing.T) {
	const m = time.Minute
	b := newBulb(t)
	for _, step := range []timedCmd{
		{"create", 0}, {"screwIn", m},
		{"switchOn", 2 * m}, {"switchOff", 12 * m}, // 10 minutes
		{"switchOn", 20 * m}, {"unscrew", 25 * m}, // 5 minutes, then switchedOff+unscrewed
		{"screwIn", 30 * m},
		{"switchOn", 31 * m}, {"blow", 41 * m}, // 10 minutes, then the end
	} {
		b.must(t, step.cmd, at(step.at))
	}
	hall := "hall"
	tests := []struct {
		asOf      time.Duration
		wantUsage lightbulb.Usage
		wantBulb  lightbulb.Bulb
	}{
		{-m, lightbulb.Usage{}, lightbulb.Bulb{}},
		{0, lightbulb.Usage{}, lightbulb.Bulb{Wattage: 60}},
		{2*m - time.Millisecond, lightbulb.Usage{}, lightbulb.Bulb{Wattage: 60, Location: hall, ScrewedIn: true}},
		{2 * m, lightbulb.Usage{Switches: 1, OnSince: ptr(at(2 * m))}, lightbulb.Bulb{Wattage: 60, Location: hall, ScrewedIn: true, On: true}},
		{7 * m, lightbulb.Usage{Switches: 1, OnSince: ptr(at(2 * m))}, lightbulb.Bulb{Wattage: 60, Location: hall, ScrewedIn: true, On: true}},
		{12 * m, lightbulb.Usage{OnMillis: 600_000, Switches: 1}, lightbulb.Bulb{Wattage: 60, Location: hall, ScrewedIn: true}},
		{22 * m, lightbulb.Usage{OnMillis: 600_000, Switches: 2, OnSince: ptr(at(20 * m))}, lightbulb.Bulb{Wattage: 60, Location: hall, ScrewedIn: true, On: true}},
		{25 * m, lightbulb.Usage{OnMillis: 900_000, Switches: 2}, lightbulb.Bulb{Wattage: 60}},
		{35 * m, lightbulb.Usage{OnMillis: 900_000, Switches: 3, OnSince: ptr(at(31 * m))}, lightbulb.Bulb{Wattage: 60, Location: hall, ScrewedIn: true, On: true}},
		{41 * m, lightbulb.Usage{OnMillis: 1_500_000, Switches: 3}, lightbulb.Bulb{Wattage: 60, Location: hall, ScrewedIn: true, Blown: true}},
		{1000 * m, lightbulb.Usage{OnMillis: 1_500_000, Switches: 3}, lightbulb.Bulb{Wattage: 60, Location: hall, ScrewedIn: true, Blown: true}},
	}
	for _, tt := range tests {
		t.Run((tt.asOf).String(), func(t *testing.T) {
			usage, err := b.l.Usage.ReplayAsOf(b.history, at(tt.asOf))
			if err != nil {
				t.Fatal(err)
			}
			if !sameUsage(usage, tt.wantUsage) {
				t.Errorf("Usage as of +%v = %s, want %s", tt.asOf, usageString(usage), usageString(tt.wantUsage))
			}
			state, err := b.l.Type.State().ReplayAsOf(b.history, at(tt.asOf))
			if err != nil {
				t.Fatal(err)
			}
			if state != tt.wantBulb {
				t.Errorf("Bulb as of +%v = %+v, want %+v", tt.asOf, state, tt.wantBulb)
			}
		})
	}

	// With the whole history in range, as-of and full replay agree.
	full, err := b.l.Usage.Replay(b.history)
	if err != nil {
		t.Fatal(err)
	}
	last, err := b.l.Usage.ReplayAsOf(b.history, at(41*m))
	if err != nil {
		t.Fatal(err)
	}
	if !sameUsage(full, last) {
		t.Errorf("Replay = %s, ReplayAsOf(end) = %s", usageString(full), usageString(last))
	}
}

// foldUsage applies the bulb's history to the erased usage fold (what the
// node serves) and returns the fold and its marshalled value.
func (b *bulb) foldUsage(t *testing.T) (model.ViewFold, []byte) {
	t.Helper()
	fold, ok := b.l.Type.FoldView("usage")
	if !ok {
		t.Fatal(`FoldView("usage") not found`)
	}
	for i := range b.history {
		if err := fold.Apply(&b.history[i]); err != nil {
			t.Fatal(err)
		}
	}
	data, err := fold.MarshalValue()
	if err != nil {
		t.Fatal(err)
	}
	return fold, data
}

// The usage view has no applier for created, screwedIn: those leave it as
// it is, and only its own events count.
func TestUsageIgnoresOtherEvents(t *testing.T) {
	b := newBulb(t)
	b.must(t, "create", t0)
	b.must(t, "screwIn", at(time.Minute))
	fold, data := b.foldUsage(t)
	if string(data) != `{"onMillis":0,"switches":0}` {
		t.Errorf("usage = %s", data)
	}
	if !fold.Exists() || fold.Prefix().MaxSequence != 2 {
		t.Errorf("fold exists %v seq %d, want true 2", fold.Exists(), fold.Prefix().MaxSequence)
	}
}

// TestUsageWithLateFacts: switch events reported late (appended after
// events stamped later) count where they belong in event time, in
// whatever order the history is given.
func TestUsageWithLateFacts(t *testing.T) {
	const m = time.Minute
	facts := lightbulbtest.NewFacts(t0)
	ev := func(seq uint64, name string, stamp time.Duration, payload string) model.Event {
		return facts.Fact("b1", seq, name, stamp, payload)
	}
	tests := []struct {
		name    string
		history []model.Event
		want    lightbulb.Usage
	}{
		{
			// In log order the switchedOff would close a span from 6m back
			// to 4m: negative.
			name: "switchedOff between two switchedOn",
			history: []model.Event{ev(1, "created", 0, `{"wattage":60}`), ev(2, "screwedIn", 10*time.Second, `{"location":"hall"}`),
				ev(3, "switchedOn", m, ""), ev(4, "switchedOn", 6*m, ""), ev(5, "switchedOff", 4*m, "")},
			want: lightbulb.Usage{OnMillis: 180_000, Switches: 2, OnSince: ptr(at(6 * m))},
		},
		{
			name: "switchedOn before a switchedOff already recorded",
			history: []model.Event{ev(1, "created", 0, `{"wattage":60}`), ev(2, "screwedIn", 10*time.Second, `{"location":"hall"}`),
				ev(3, "switchedOff", 5*m, ""), ev(4, "switchedOn", 2*m, "")},
			want: lightbulb.Usage{OnMillis: 180_000, Switches: 1},
		},
		{
			name: "unscrewed reported after it blew",
			history: []model.Event{ev(1, "created", 0, `{"wattage":60}`), ev(2, "screwedIn", m, `{"location":"hall"}`),
				ev(3, "switchedOn", 2*m, ""), ev(4, "blown", 5*m, ""), ev(5, "unscrewed", 3*m, "")},
			want: lightbulb.Usage{OnMillis: 60_000, Switches: 1},
		},
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	l := lightbulb.Define()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for round := 0; round < 20; round++ {
				h := slices.Clone(tt.history)
				if round > 0 {
					rng.Shuffle(len(h), func(i, j int) { h[i], h[j] = h[j], h[i] })
				}
				got, err := l.Usage.Replay(h)
				if err != nil {
					t.Fatal(err)
				}
				if !sameUsage(got, tt.want) {
					t.Fatalf("round %d: Usage = %s, want %s", round, usageString(got), usageString(tt.want))
				}
			}
		})
	}
}
