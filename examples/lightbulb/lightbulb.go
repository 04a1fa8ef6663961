// Package lightbulb is the Concursus paper's example domain: a lightbulb is
// created with a wattage, screwed in somewhere, switched on and off,
// unscrewed, and finally blows, which ends its life.
//
// It shows every part of the programming model: an initial event (created),
// a terminal one (blown), commands that enforce rules against the state (a
// bulb that is not screwed in cannot be switched on; a blown bulb refuses
// everything), a command that emits two events (unscrewing a lit bulb
// switches it off first), and a second state view (Usage: total time
// switched on, computed from event timestamps).
//
// The definition is built by Define, not held in package variables, so a
// program may serve it under another name or next to its own types.
package lightbulb

import (
	"errors"
	"time"

	"github.com/concursus-go/concursus/model"
)

// TypeName is the aggregate type name used by Define.
const TypeName = "lightbulb"

// Bulb is the primary state: what commands are validated against.
type Bulb struct {
	Wattage   int    `json:"wattage"`
	Location  string `json:"location,omitempty"`
	ScrewedIn bool   `json:"screwedIn"`
	On        bool   `json:"on"`
	Blown     bool   `json:"blown"`
}

// Usage is a second view of the same history: how long the bulb has been on.
type Usage struct {
	// OnMillis is the total time switched on, from event timestamps.
	OnMillis int64 `json:"onMillis"`
	// Switches counts switchedOn events.
	Switches int `json:"switches"`
	// OnSince is when the bulb was last switched on, if it is on now.
	OnSince *time.Time `json:"onSince,omitempty"`
}

// Event payloads.
type (
	Created struct {
		Wattage int `json:"wattage"`
	}
	ScrewedIn struct {
		Location string `json:"location"`
	}
	SwitchedOn  struct{}
	SwitchedOff struct{}
	Unscrewed   struct{}
	Blown       struct{}
)

// Command arguments.
type (
	// CreateArgs creates a bulb; wattage must be 1..10000.
	CreateArgs struct {
		Wattage int `json:"wattage"`
	}
	// ScrewInArgs screws the bulb in at a location (1..200 bytes).
	ScrewInArgs struct {
		Location string `json:"location"`
	}
	// NoArgs is the argument type of commands that take none.
	NoArgs struct{}
)

// Validate implements model.Validator.
func (a CreateArgs) Validate() error {
	if a.Wattage <= 0 || a.Wattage > 10000 {
		return errors.New("wattage must be between 1 and 10000")
	}
	return nil
}

// Validate implements model.Validator.
func (a ScrewInArgs) Validate() error {
	if a.Location == "" || len(a.Location) > 200 {
		return errors.New("location must be 1 to 200 bytes")
	}
	return nil
}

// Rejection reasons of the lightbulb domain.
const (
	ReasonNotScrewedIn     = "not_screwed_in"
	ReasonAlreadyScrewedIn = "already_screwed_in"
	ReasonAlreadyOn        = "already_on"
	ReasonAlreadyOff       = "already_off"
)

// Lightbulb holds the defined type with its typed events and commands.
type Lightbulb struct {
	Type *model.Type[Bulb]

	Created     *model.EventType[Created]
	ScrewedIn   *model.EventType[ScrewedIn]
	SwitchedOn  *model.EventType[SwitchedOn]
	SwitchedOff *model.EventType[SwitchedOff]
	Unscrewed   *model.EventType[Unscrewed]
	Blown       *model.EventType[Blown]

	Create    *model.CommandType[Bulb, CreateArgs]
	ScrewIn   *model.CommandType[Bulb, ScrewInArgs]
	SwitchOn  *model.CommandType[Bulb, NoArgs]
	SwitchOff *model.CommandType[Bulb, NoArgs]
	Unscrew   *model.CommandType[Bulb, NoArgs]
	Blow      *model.CommandType[Bulb, NoArgs]

	// Usage is the second view, named "usage".
	Usage *model.View[Usage]
}

// Define builds the lightbulb aggregate type.
func Define() *Lightbulb {
	t := model.NewType[Bulb](TypeName, model.JSON{})
	l := &Lightbulb{
		Type:        t,
		Created:     model.DefineEvent[Created](t, "created", 0, model.Initial),
		ScrewedIn:   model.DefineEvent[ScrewedIn](t, "screwedIn", 0, 0),
		SwitchedOn:  model.DefineEvent[SwitchedOn](t, "switchedOn", 0, 0),
		SwitchedOff: model.DefineEvent[SwitchedOff](t, "switchedOff", 0, 0),
		Unscrewed:   model.DefineEvent[Unscrewed](t, "unscrewed", 0, 0),
		Blown:       model.DefineEvent[Blown](t, "blown", 0, model.Terminal),
	}

	s := t.State()
	model.On(s, l.Created, func(b *Bulb, e model.Recorded[Created]) { b.Wattage = e.Payload.Wattage })
	model.On(s, l.ScrewedIn, func(b *Bulb, e model.Recorded[ScrewedIn]) {
		b.ScrewedIn, b.Location = true, e.Payload.Location
	})
	model.On(s, l.SwitchedOn, func(b *Bulb, _ model.Recorded[SwitchedOn]) { b.On = true })
	model.On(s, l.SwitchedOff, func(b *Bulb, _ model.Recorded[SwitchedOff]) { b.On = false })
	model.On(s, l.Unscrewed, func(b *Bulb, _ model.Recorded[Unscrewed]) { b.ScrewedIn, b.Location = false, "" })
	model.On(s, l.Blown, func(b *Bulb, _ model.Recorded[Blown]) { b.Blown, b.On = true, false })

	l.Usage = model.NewView[Usage](t, "usage")
	// Views fold in event-time order, so a span is never negative: a
	// switchedOff reported late is folded before the switchedOn stamped
	// after it. No span is dropped, so that a fold in any other order
	// would show in the total rather than vanish.
	stop := func(u *Usage, at time.Time) {
		if u.OnSince != nil {
			u.OnMillis += at.Sub(*u.OnSince).Milliseconds()
			u.OnSince = nil
		}
	}
	model.On(l.Usage, l.SwitchedOn, func(u *Usage, e model.Recorded[SwitchedOn]) {
		ts := e.Timestamp
		u.OnSince = &ts
		u.Switches++
	})
	model.On(l.Usage, l.SwitchedOff, func(u *Usage, e model.Recorded[SwitchedOff]) { stop(u, e.Timestamp) })
	model.On(l.Usage, l.Unscrewed, func(u *Usage, e model.Recorded[Unscrewed]) { stop(u, e.Timestamp) })
	model.On(l.Usage, l.Blown, func(u *Usage, e model.Recorded[Blown]) { stop(u, e.Timestamp) })

	l.Create = model.DefineCommand(t, "create", func(s model.Snapshot[Bulb], a CreateArgs) ([]model.Emit, error) {
		return []model.Emit{l.Created.New(Created(a))}, nil
	}, model.Creates)
	l.ScrewIn = model.DefineCommand(t, "screwIn", func(s model.Snapshot[Bulb], a ScrewInArgs) ([]model.Emit, error) {
		if s.Value.ScrewedIn {
			return nil, model.Reject(ReasonAlreadyScrewedIn, "the bulb is already screwed in at %q", s.Value.Location)
		}
		return []model.Emit{l.ScrewedIn.New(ScrewedIn(a))}, nil
	})
	l.SwitchOn = model.DefineCommand(t, "switchOn", func(s model.Snapshot[Bulb], _ NoArgs) ([]model.Emit, error) {
		switch {
		case !s.Value.ScrewedIn:
			return nil, model.Reject(ReasonNotScrewedIn, "a bulb that is not screwed in cannot be switched on")
		case s.Value.On:
			return nil, model.Reject(ReasonAlreadyOn, "the bulb is already on")
		}
		return []model.Emit{l.SwitchedOn.New(SwitchedOn{})}, nil
	})
	l.SwitchOff = model.DefineCommand(t, "switchOff", func(s model.Snapshot[Bulb], _ NoArgs) ([]model.Emit, error) {
		if !s.Value.On {
			return nil, model.Reject(ReasonAlreadyOff, "the bulb is already off")
		}
		return []model.Emit{l.SwitchedOff.New(SwitchedOff{})}, nil
	})
	l.Unscrew = model.DefineCommand(t, "unscrew", func(s model.Snapshot[Bulb], _ NoArgs) ([]model.Emit, error) {
		if !s.Value.ScrewedIn {
			return nil, model.Reject(ReasonNotScrewedIn, "the bulb is not screwed in")
		}
		var out []model.Emit
		if s.Value.On {
			out = append(out, l.SwitchedOff.New(SwitchedOff{}))
		}
		return append(out, l.Unscrewed.New(Unscrewed{})), nil
	})
	l.Blow = model.DefineCommand(t, "blow", func(s model.Snapshot[Bulb], _ NoArgs) ([]model.Emit, error) {
		return []model.Emit{l.Blown.New(Blown{})}, nil
	})
	return l
}
