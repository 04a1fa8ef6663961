package lightbulb_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/model"
)

func TestDefine(t *testing.T) {
	l := lightbulb.Define()
	reg, err := model.NewRegistry(l.Type)
	if err != nil {
		t.Fatalf("NewRegistry: %v", err)
	}
	if got := reg.Names(); !slices.Equal(got, []string{lightbulb.TypeName}) {
		t.Errorf("Names() = %q", got)
	}
	if got, want := l.Type.Commands(), []string{"blow", "create", "screwIn", "switchOff", "switchOn", "unscrew"}; !slices.Equal(got, want) {
		t.Errorf("Commands() = %q, want %q", got, want)
	}
	if got, want := l.Type.Views(), []string{"state", "usage"}; !slices.Equal(got, want) {
		t.Errorf("Views() = %q, want %q", got, want)
	}
	for _, ct := range []interface {
		AggregateType() string
		Name() string
	}{l.Create, l.ScrewIn, l.SwitchOn, l.SwitchOff, l.Unscrew, l.Blow} {
		if ct.AggregateType() != lightbulb.TypeName || !l.Type.HasCommand(ct.Name()) {
			t.Errorf("command %q of %q is not defined on the type", ct.Name(), ct.AggregateType())
		}
	}
	if !l.Created.Characteristics().IsInitial() || !l.Blown.Characteristics().IsTerminal() {
		t.Error("created must be initial and blown terminal")
	}
	// Define builds a fresh definition every time: no shared globals.
	if lightbulb.Define().Type == l.Type {
		t.Error("Define returned the same *Type twice")
	}
}

// TestLifeOfABulb drives one bulb through its whole life with Decide+Apply.
func TestLifeOfABulb(t *testing.T) {
	steps := []struct {
		cmd, args  string
		wantEvents string
		want       lightbulb.Bulb
	}{
		{"create", `{"wattage":60}`, "created_0", lightbulb.Bulb{Wattage: 60}},
		{"screwIn", `{"location":"hall"}`, "screwedIn_0", lightbulb.Bulb{Wattage: 60, Location: "hall", ScrewedIn: true}},
		{"switchOn", ``, "switchedOn_0", lightbulb.Bulb{Wattage: 60, Location: "hall", ScrewedIn: true, On: true}},
		{"switchOff", ``, "switchedOff_0", lightbulb.Bulb{Wattage: 60, Location: "hall", ScrewedIn: true}},
		{"switchOn", `{}`, "switchedOn_0", lightbulb.Bulb{Wattage: 60, Location: "hall", ScrewedIn: true, On: true}},
		// Unscrewing a lit bulb switches it off first: two events.
		{"unscrew", ``, "switchedOff_0 unscrewed_0", lightbulb.Bulb{Wattage: 60}},
		{"screwIn", `{"location":"kitchen"}`, "screwedIn_0", lightbulb.Bulb{Wattage: 60, Location: "kitchen", ScrewedIn: true}},
		{"blow", ``, "blown_0", lightbulb.Bulb{Wattage: 60, Location: "kitchen", ScrewedIn: true, Blown: true}},
	}
	b := newBulb(t)
	seq := uint64(0)
	for i, s := range steps {
		now := at(time.Duration(i) * time.Minute)
		events, err := b.do(t, s.cmd, s.args, now, time.Time{})
		if err != nil {
			t.Fatalf("step %d %s: %v", i+1, s.cmd, err)
		}
		if got := names(events); got != s.wantEvents {
			t.Errorf("step %d %s: events %q, want %q", i+1, s.cmd, got, s.wantEvents)
		}
		for _, e := range events {
			seq++
			if e.Sequence != seq || !e.Timestamp.Equal(now) || e.AggregateID != "b1" || e.AggregateType != lightbulb.TypeName {
				t.Errorf("step %d %s: event %s seq %d at %v of %s, want seq %d at %v of lightbulb/b1",
					i+1, s.cmd, e.VersionedName(), e.Sequence, e.Timestamp, e.Ref(), seq, now)
			}
		}
		if got := b.state(t); got != s.want {
			t.Errorf("step %d %s: state %+v, want %+v", i+1, s.cmd, got, s.want)
		}
	}
	if !b.agg.Terminated() || b.agg.Sequence() != 9 {
		t.Fatalf("after blow: terminated %v seq %d, want true 9", b.agg.Terminated(), b.agg.Sequence())
	}

	// A blown bulb refuses everything, and stays as it was.
	before := b.state(t)
	for _, cmd := range b.l.Type.Commands() {
		t.Run("after blow/"+cmd, func(t *testing.T) {
			_, err := b.do(t, cmd, validArgs[cmd], at(time.Hour), time.Time{})
			wantReason(t, err, model.ReasonTerminated)
		})
	}
	if got := b.state(t); got != before || b.agg.Sequence() != 9 {
		t.Errorf("refused commands changed the bulb: %+v seq %d", got, b.agg.Sequence())
	}

	// The history replays to the same state.
	replayed, err := b.l.Type.State().Replay(b.history)
	if err != nil {
		t.Fatal(err)
	}
	if replayed != before {
		t.Errorf("Replay = %+v, want %+v", replayed, before)
	}
	state, err := b.agg.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"wattage":60,"location":"kitchen","screwedIn":true,"on":false,"blown":true}`; string(state) != want {
		t.Errorf("MarshalState = %s, want %s", state, want)
	}
}

func TestDomainRejections(t *testing.T) {
	tests := []struct {
		name   string
		given  []string
		cmd    string
		args   string
		reason string
	}{
		{name: "switch on a bulb that is not screwed in", given: []string{"create"}, cmd: "switchOn", reason: lightbulb.ReasonNotScrewedIn},
		{name: "switch on after unscrewing", given: []string{"create", "screwIn", "unscrew"}, cmd: "switchOn", reason: lightbulb.ReasonNotScrewedIn},
		{name: "switch on twice", given: []string{"create", "screwIn", "switchOn"}, cmd: "switchOn", reason: lightbulb.ReasonAlreadyOn},
		{name: "switch off a bulb never switched on", given: []string{"create", "screwIn"}, cmd: "switchOff", reason: lightbulb.ReasonAlreadyOff},
		{name: "switch off twice", given: []string{"create", "screwIn", "switchOn", "switchOff"}, cmd: "switchOff", reason: lightbulb.ReasonAlreadyOff},
		{name: "switch off an unscrewed bulb", given: []string{"create"}, cmd: "switchOff", reason: lightbulb.ReasonAlreadyOff},
		{name: "screw in twice", given: []string{"create", "screwIn"}, cmd: "screwIn", args: `{"location":"attic"}`, reason: lightbulb.ReasonAlreadyScrewedIn},
		{name: "screw in a lit bulb", given: []string{"create", "screwIn", "switchOn"}, cmd: "screwIn", reason: lightbulb.ReasonAlreadyScrewedIn},
		{name: "unscrew a bulb that is not screwed in", given: []string{"create"}, cmd: "unscrew", reason: lightbulb.ReasonNotScrewedIn},
		{name: "create twice", given: []string{"create"}, cmd: "create", args: `{"wattage":40}`, reason: model.ReasonAlreadyExists},
		{name: "screw in a bulb that does not exist", cmd: "screwIn", reason: model.ReasonNotFound},
		{name: "blow a bulb that does not exist", cmd: "blow", reason: model.ReasonNotFound},
		{name: "blown bulb", given: []string{"create", "blow"}, cmd: "screwIn", reason: model.ReasonTerminated},
		{name: "blown lit bulb", given: []string{"create", "screwIn", "switchOn", "blow"}, cmd: "switchOff", reason: model.ReasonTerminated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBulb(t)
			for i, cmd := range tt.given {
				b.must(t, cmd, at(time.Duration(i)*time.Minute))
			}
			before, seq := b.state(t), b.agg.Sequence()
			args := tt.args
			if args == "" {
				args = validArgs[tt.cmd]
			}
			events, err := b.do(t, tt.cmd, args, at(time.Hour), time.Time{})
			wantReason(t, err, tt.reason)
			if events != nil || b.state(t) != before || b.agg.Sequence() != seq {
				t.Errorf("a rejected command changed the bulb: events %q, state %+v → %+v, seq %d → %d",
					names(events), before, b.state(t), seq, b.agg.Sequence())
			}
		})
	}
}

// BUG: a command sent to a bulb that was never created should be refused
// with model.ReasonNotFound (model/doc.go: "While an aggregate does not
// exist, only a command whose first event is initial may run (rejection
// reason "not_found")"). But Decide runs the handler against the zero Bulb
// first, and the handler's own rejection wins: switchOn answers
// not_screwed_in, switchOff already_off and unscrew not_screwed_in, which
// tells a client that a bulb it misaddressed exists.
func TestCommandsOnMissingBulbAreNotFound(t *testing.T) {
	for _, cmd := range []string{"screwIn", "switchOn", "switchOff", "unscrew", "blow"} {
		t.Run(cmd, func(t *testing.T) {
			b := newBulb(t)
			_, err := b.do(t, cmd, validArgs[cmd], t0, time.Time{})
			wantReason(t, err, model.ReasonNotFound)
		})
	}
}

func TestArgsValidate(t *testing.T) {
	tests := []struct {
		name    string
		args    model.Validator
		wantErr string
	}{
		{name: "wattage 1", args: lightbulb.CreateArgs{Wattage: 1}},
		{name: "wattage 60", args: lightbulb.CreateArgs{Wattage: 60}},
		{name: "wattage 10000", args: lightbulb.CreateArgs{Wattage: 10000}},
		{name: "wattage 0", args: lightbulb.CreateArgs{}, wantErr: "wattage must be between 1 and 10000"},
		{name: "wattage -5", args: lightbulb.CreateArgs{Wattage: -5}, wantErr: "wattage must be between 1 and 10000"},
		{name: "wattage 10001", args: lightbulb.CreateArgs{Wattage: 10001}, wantErr: "wattage must be between 1 and 10000"},

		{name: "location 1 byte", args: lightbulb.ScrewInArgs{Location: "a"}},
		{name: "location 200 bytes", args: lightbulb.ScrewInArgs{Location: strings.Repeat("a", 200)}},
		{name: "location 200 bytes of 2-byte runes", args: lightbulb.ScrewInArgs{Location: strings.Repeat("é", 100)}},
		{name: "location empty", args: lightbulb.ScrewInArgs{}, wantErr: "location must be 1 to 200 bytes"},
		{name: "location 201 bytes", args: lightbulb.ScrewInArgs{Location: strings.Repeat("a", 201)}, wantErr: "location must be 1 to 200 bytes"},
		{name: "location 101 runes, 202 bytes", args: lightbulb.ScrewInArgs{Location: strings.Repeat("é", 101)}, wantErr: "location must be 1 to 200 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.args.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// Invalid arguments are ErrInvalidArgs from Decide, never rejections, and
// change nothing.
func TestInvalidArgsThroughDecide(t *testing.T) {
	tests := []struct {
		name    string
		given   []string
		cmd     string
		args    string
		wantMsg string
	}{
		{name: "create without wattage", cmd: "create", args: ``, wantMsg: "wattage must be between 1 and 10000"},
		{name: "create with wattage 0", cmd: "create", args: `{"wattage":0}`, wantMsg: "wattage must be between"},
		{name: "create with a huge wattage", cmd: "create", args: `{"wattage":20000}`, wantMsg: "wattage must be between"},
		{name: "wattage as a string", cmd: "create", args: `{"wattage":"60"}`, wantMsg: `field "wattage": expected int, got JSON string`},
		{name: "misspelt argument", cmd: "create", args: `{"watts":60}`, wantMsg: `unknown field "watts"`},
		{name: "not JSON", cmd: "create", args: `wattage=60`, wantMsg: "malformed JSON"},
		{name: "screw in without location", given: []string{"create"}, cmd: "screwIn", args: `{}`, wantMsg: "location must be 1 to 200 bytes"},
		{name: "screw in with a long location", given: []string{"create"}, cmd: "screwIn", args: `{"location":"` + strings.Repeat("x", 201) + `"}`, wantMsg: "location must be"},
		{name: "switch on with an argument", given: []string{"create", "screwIn"}, cmd: "switchOn", args: `{"brightness":3}`, wantMsg: `unknown field "brightness"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBulb(t)
			for i, cmd := range tt.given {
				b.must(t, cmd, at(time.Duration(i)*time.Minute))
			}
			seq := b.agg.Sequence()
			_, err := b.do(t, tt.cmd, tt.args, at(time.Hour), time.Time{})
			if !errors.Is(err, model.ErrInvalidArgs) {
				t.Fatalf("err = %v, want ErrInvalidArgs", err)
			}
			if _, isRejection := rejectionReason(err); isRejection {
				t.Errorf("err = %v is a rejection; invalid arguments are not", err)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) || !strings.Contains(err.Error(), `command "`+tt.cmd+`"`) {
				t.Errorf("err = %q, want it to name the command and mention %q", err, tt.wantMsg)
			}
			if b.agg.Sequence() != seq {
				t.Errorf("sequence moved from %d to %d", seq, b.agg.Sequence())
			}
		})
	}
}
