package lightbulb_test

import (
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/model"
)

// seedEnv names the environment variable that replays a property run:
//
//	LIGHTBULB_SEED=12345 go test -run TestRandomCommandSequences ./examples/lightbulb/
const seedEnv = "LIGHTBULB_SEED"

func propertySeed(t *testing.T) uint64 {
	t.Helper()
	if s := os.Getenv(seedEnv); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", seedEnv, s, err)
		}
		return seed
	}
	return rand.Uint64() // math/rand/v2's global source is randomly seeded
}

// oracle is an independent, deliberately simple model of a bulb: what each
// command should do and what the state and usage should be afterwards.
type oracle struct {
	exists, blown bool
	bulb          lightbulb.Bulb
	onMillis      int64
	switches      int
	onSince       time.Time // zero while off
}

// expect says what cmd must do: the events it emits, or the rejection reason
// ("*" for any rejection), or invalid arguments.
func (o *oracle) expect(cmd string, invalidArgs bool) (events string, reason string, invalid bool) {
	switch {
	case invalidArgs: // bad input is refused before the state is consulted
		return "", "", true
	case o.blown:
		return "", model.ReasonTerminated, false
	case !o.exists && cmd != "create":
		// Should be model.ReasonNotFound for every command; today some
		// handlers answer first (see TestCommandsOnMissingBulbAreNotFound).
		return "", "*", false
	}
	s := o.bulb
	switch cmd {
	case "create":
		if o.exists {
			return "", model.ReasonAlreadyExists, false
		}
		return "created_0", "", false
	case "screwIn":
		if s.ScrewedIn {
			return "", lightbulb.ReasonAlreadyScrewedIn, false
		}
		return "screwedIn_0", "", false
	case "switchOn":
		if !s.ScrewedIn {
			return "", lightbulb.ReasonNotScrewedIn, false
		}
		if s.On {
			return "", lightbulb.ReasonAlreadyOn, false
		}
		return "switchedOn_0", "", false
	case "switchOff":
		if !s.On {
			return "", lightbulb.ReasonAlreadyOff, false
		}
		return "switchedOff_0", "", false
	case "unscrew":
		if !s.ScrewedIn {
			return "", lightbulb.ReasonNotScrewedIn, false
		}
		if s.On {
			return "switchedOff_0 unscrewed_0", "", false
		}
		return "unscrewed_0", "", false
	case "blow":
		return "blown_0", "", false
	}
	panic("oracle: unknown command " + cmd)
}

// apply records an accepted command's effect at event time ts.
func (o *oracle) apply(cmd string, wattage int, location string, ts time.Time) {
	stop := func() {
		if !o.onSince.IsZero() {
			o.onMillis += ts.Sub(o.onSince).Milliseconds()
			o.onSince = time.Time{}
		}
	}
	switch cmd {
	case "create":
		o.exists, o.bulb.Wattage = true, wattage
	case "screwIn":
		o.bulb.ScrewedIn, o.bulb.Location = true, location
	case "switchOn":
		o.bulb.On, o.onSince = true, ts
		o.switches++
	case "switchOff":
		o.bulb.On = false
		stop()
	case "unscrew":
		stop()
		o.bulb.On, o.bulb.ScrewedIn, o.bulb.Location = false, false, ""
	case "blow":
		stop()
		o.blown, o.bulb.Blown, o.bulb.On = true, true, false
	}
}

// randomCommand picks a command and its arguments; about one in ten has
// invalid arguments. blow is rare so that bulbs live a while.
func randomCommand(r *rand.Rand) (cmd, args string, wattage int, location string, invalid bool) {
	weighted := []string{"create", "screwIn", "screwIn", "screwIn", "switchOn", "switchOn", "switchOn",
		"switchOff", "switchOff", "switchOff", "unscrew", "unscrew"}
	cmd = weighted[r.IntN(len(weighted))]
	if r.IntN(120) == 0 {
		cmd = "blow"
	}
	invalid = r.IntN(10) == 0
	switch cmd {
	case "create":
		wattage = 1 + r.IntN(10000)
		if invalid {
			wattage = []int{0, -1, 10001}[r.IntN(3)]
		}
		args = `{"wattage":` + strconv.Itoa(wattage) + `}`
	case "screwIn":
		location = strings.Repeat(string(rune('a'+r.IntN(26))), 1+r.IntN(200))
		if invalid {
			location = []string{"", strings.Repeat("x", 201)}[r.IntN(2)]
		}
		args = `{"location":"` + location + `"}`
	default:
		args = []string{``, `{}`}[r.IntN(2)]
		if invalid {
			args = `{"force":true}`
		}
	}
	return cmd, args, wattage, location, invalid
}

// TestRandomCommandSequences applies random command sequences to bulbs and
// checks, after every command, the outcome and state against an oracle and
// the invariants: never On without ScrewedIn, sequences gap-free, nothing
// accepted after blown; and at the end that replays agree.
func TestRandomCommandSequences(t *testing.T) {
	seed := propertySeed(t)
	t.Logf("seed %d (rerun with %s=%d)", seed, seedEnv, seed)
	r := rand.New(rand.NewPCG(seed, 0x6c6967687462))

	runs, steps := 300, 80
	if testing.Short() {
		runs = 30
	}
	outcomes := map[string]int{}
	defer func() { t.Logf("outcomes: %v", outcomes) }()
	for run := range runs {
		b := newBulb(t)
		var o oracle
		now := t0
		lastEventTime := t0
		for step := range steps {
			// Time moves forward by up to two minutes, with sub-millisecond
			// noise; sometimes the source gives its own (earlier, but never
			// earlier than the last event) timestamp.
			now = now.Add(time.Duration(r.Int64N(int64(2 * time.Minute))))
			source := time.Time{}
			if r.IntN(3) == 0 {
				source = lastEventTime.Add(time.Duration(r.Int64N(int64(now.Sub(lastEventTime)) + 1)))
			}
			eventTime := model.NormalizeTime(now)
			if !source.IsZero() {
				eventTime = model.NormalizeTime(source)
			}

			cmd, args, wattage, location, invalid := randomCommand(r)
			where := func() string {
				return "run " + strconv.Itoa(run) + " step " + strconv.Itoa(step) + ": " + cmd + " " + args
			}
			wantEvents, wantReason, wantInvalid := o.expect(cmd, invalid)
			seqBefore, stateBefore := b.agg.Sequence(), b.state(t)

			events, err := b.do(t, cmd, args, now, source)
			outcomes[outcome(err)]++
			switch {
			case wantInvalid:
				if !errors.Is(err, model.ErrInvalidArgs) {
					t.Fatalf("%s: err = %v, want ErrInvalidArgs", where(), err)
				}
			case wantReason != "":
				reason, ok := rejectionReason(err)
				if !ok || (wantReason != "*" && reason != wantReason) {
					t.Fatalf("%s: err = %v, want rejection %q", where(), err, wantReason)
				}
			default:
				if err != nil {
					t.Fatalf("%s: %v", where(), err)
				}
				if got := names(events); got != wantEvents {
					t.Fatalf("%s: events %q, want %q", where(), got, wantEvents)
				}
				for i, e := range events {
					if e.Sequence != seqBefore+uint64(i)+1 {
						t.Fatalf("%s: event %d has sequence %d after %d", where(), i, e.Sequence, seqBefore)
					}
					if !e.Timestamp.Equal(eventTime) {
						t.Fatalf("%s: event time %v, want %v", where(), e.Timestamp, eventTime)
					}
				}
				o.apply(cmd, wattage, location, eventTime)
				lastEventTime = eventTime
			}
			if err != nil && (b.agg.Sequence() != seqBefore || b.state(t) != stateBefore) {
				t.Fatalf("%s: a refused command changed the bulb", where())
			}

			s := b.state(t)
			switch {
			case s.On && !s.ScrewedIn:
				t.Fatalf("%s: invariant broken: on but not screwed in: %+v", where(), s)
			case s.Blown && s.On:
				t.Fatalf("%s: invariant broken: blown but on: %+v", where(), s)
			case s.ScrewedIn != (s.Location != ""):
				t.Fatalf("%s: invariant broken: screwed in %v at %q", where(), s.ScrewedIn, s.Location)
			case s != o.bulb:
				t.Fatalf("%s: state %+v, oracle %+v", where(), s, o.bulb)
			case b.agg.Terminated() != o.blown || b.agg.Exists() != o.exists:
				t.Fatalf("%s: terminated %v exists %v, oracle %v %v", where(), b.agg.Terminated(), b.agg.Exists(), o.blown, o.exists)
			case b.agg.Sequence() != uint64(len(b.history)):
				t.Fatalf("%s: sequence %d with %d events in the history", where(), b.agg.Sequence(), len(b.history))
			}
		}
		checkHistory(t, b, &o, run)
	}
}

// checkHistory checks a whole history: gap-free from 1, only the first event
// initial, only the last terminal, and every way of replaying it agrees.
func checkHistory(t *testing.T, b *bulb, o *oracle, run int) {
	t.Helper()
	where := "run " + strconv.Itoa(run)
	for i, e := range b.history {
		if e.Sequence != uint64(i+1) {
			t.Fatalf("%s: history[%d] has sequence %d", where, i, e.Sequence)
		}
		if e.Characteristics.IsInitial() != (i == 0) {
			t.Fatalf("%s: event %d (%s) initial=%v", where, e.Sequence, e.VersionedName(), e.Characteristics.IsInitial())
		}
		if e.Characteristics.IsTerminal() && i != len(b.history)-1 {
			t.Fatalf("%s: terminal event %d is not the last of %d", where, e.Sequence, len(b.history))
		}
		if i > 0 && e.Timestamp.Before(b.history[i-1].Timestamp) {
			t.Fatalf("%s: event %d goes back in time", where, e.Sequence)
		}
	}

	state := b.state(t)
	replayed, err := b.l.Type.State().Replay(b.history)
	if err != nil || replayed != state {
		t.Fatalf("%s: Replay = %+v, %v; want %+v", where, replayed, err, state)
	}
	streamed, err := b.l.Type.State().ReplaySeq(func(yield func(model.Event, error) bool) {
		for _, e := range b.history {
			if !yield(e, nil) {
				return
			}
		}
	})
	if err != nil || streamed != state {
		t.Fatalf("%s: ReplaySeq = %+v, %v; want %+v", where, streamed, err, state)
	}
	if len(b.history) > 0 {
		last := b.history[len(b.history)-1].Timestamp
		asOf, err := b.l.Type.State().ReplayAsOf(b.history, last)
		if err != nil || asOf != state {
			t.Fatalf("%s: ReplayAsOf(last event) = %+v, %v; want %+v", where, asOf, err, state)
		}
	}

	usage, err := b.l.Usage.Replay(b.history)
	if err != nil {
		t.Fatal(err)
	}
	want := lightbulb.Usage{OnMillis: o.onMillis, Switches: o.switches}
	if !o.onSince.IsZero() {
		want.OnSince = &o.onSince
	}
	if !sameUsage(usage, want) {
		t.Fatalf("%s: Usage = %s, oracle %s", where, usageString(usage), usageString(want))
	}
	if len(b.history) > 0 {
		span := b.history[len(b.history)-1].Timestamp.Sub(b.history[0].Timestamp).Milliseconds()
		if usage.OnMillis < 0 || usage.OnMillis > span {
			t.Fatalf("%s: on for %dms in a life of %dms", where, usage.OnMillis, span)
		}
	}
	switches := 0
	for _, e := range b.history {
		if b.l.SwitchedOn.Is(&e) {
			switches++
		}
	}
	if usage.Switches != switches {
		t.Fatalf("%s: Usage.Switches = %d, history has %d switchedOn", where, usage.Switches, switches)
	}

	// After blown, every command is refused: valid ones as terminated,
	// invalid ones as invalid arguments (bad input is never recorded).
	if o.blown {
		for _, cmd := range b.l.Type.Commands() {
			at := b.history[len(b.history)-1].Timestamp.Add(time.Hour)
			_, err := b.do(t, cmd, validArgs[cmd], at, time.Time{})
			if reason, _ := rejectionReason(err); reason != model.ReasonTerminated {
				t.Fatalf("%s: %s %s on a blown bulb: err = %v, want terminated", where, cmd, validArgs[cmd], err)
			}
			if _, err := b.do(t, cmd, `{"nonsense":1}`, at, time.Time{}); !errors.Is(err, model.ErrInvalidArgs) {
				t.Fatalf("%s: %s with invalid arguments on a blown bulb: err = %v, want invalid arguments", where, cmd, err)
			}
		}
	}
}

// outcome classifies a Decide result for the run's statistics.
func outcome(err error) string {
	if err == nil {
		return "accepted"
	}
	if reason, ok := rejectionReason(err); ok {
		return reason
	}
	if errors.Is(err, model.ErrInvalidArgs) {
		return "invalid"
	}
	return "other"
}
