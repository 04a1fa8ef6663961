package model_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/concursus-go/concursus/model"
)

// A door is installed (initial event), opened and closed, and finally
// removed (terminal event). Its state is whether it is open.
type Door struct {
	Room string `json:"room"`
	Open bool   `json:"open"`
}

type (
	Installed struct {
		Room string `json:"room"`
	}
	DoorOpened struct{}
	DoorClosed struct{}
	Removed    struct{}
)

type InstallArgs struct {
	Room string `json:"room"`
}

// Validate makes an empty room an invalid request, before any handler runs.
func (a InstallArgs) Validate() error {
	if a.Room == "" {
		return errors.New("room is required")
	}
	return nil
}

// This example defines a small aggregate type, decides commands against one
// aggregate, applies the resulting events, and replays the history, also as
// it was at an earlier instant.
func Example() {
	// Define the type once, at start-up: events, how they change the
	// state, and commands that decide which events to record.
	door := model.NewType[Door]("door", model.JSON{})
	installed := model.DefineEvent[Installed](door, "installed", 0, model.Initial)
	opened := model.DefineEvent[DoorOpened](door, "opened", 0, 0)
	closed := model.DefineEvent[DoorClosed](door, "closed", 0, 0)
	removed := model.DefineEvent[Removed](door, "removed", 0, model.Terminal)

	model.On(door.State(), installed, func(d *Door, e model.Recorded[Installed]) { d.Room = e.Payload.Room })
	model.On(door.State(), opened, func(d *Door, _ model.Recorded[DoorOpened]) { d.Open = true })
	model.On(door.State(), closed, func(d *Door, _ model.Recorded[DoorClosed]) { d.Open = false })

	model.DefineCommand(door, "install", func(_ model.Snapshot[Door], a InstallArgs) ([]model.Emit, error) {
		return []model.Emit{installed.New(Installed(a))}, nil
	}, model.Creates)
	model.DefineCommand(door, "open", func(s model.Snapshot[Door], _ struct{}) ([]model.Emit, error) {
		if s.Value.Open {
			return nil, model.Reject("already_open", "the door in the %s is already open", s.Value.Room)
		}
		return []model.Emit{opened.New(DoorOpened{})}, nil
	})
	model.DefineCommand(door, "close", func(s model.Snapshot[Door], _ struct{}) ([]model.Emit, error) {
		return []model.Emit{closed.New(DoorClosed{})}, nil
	})
	model.DefineCommand(door, "remove", func(s model.Snapshot[Door], _ struct{}) ([]model.Emit, error) {
		return []model.Emit{removed.New(Removed{})}, nil
	})

	reg, err := model.NewRegistry(door)
	if err != nil {
		fmt.Println("definition:", err)
		return
	}
	fmt.Println("types:", reg.Names(), "commands:", door.Commands())

	// The executor's part: one Aggregate per id, Decide then Apply (after
	// the events are durable). Time is passed in, never read.
	kind, _ := reg.Lookup("door")
	agg := kind.NewAggregate("front")
	start := time.Date(2024, 3, 1, 9, 0, 0, 0, time.UTC)
	var history []model.Event
	for i, c := range []struct{ command, args string }{
		{"open", ``}, // the door does not exist yet
		{"install", `{"room":""}`},
		{"install", `{"room":"hall"}`},
		{"open", ``},
		{"open", ``},
		{"close", ``},
		{"remove", ``},
		{"open", ``},
	} {
		events, err := agg.Decide(&model.CommandRequest{
			CommandID: fmt.Sprintf("c%d", i+1),
			Command:   c.command,
			Args:      []byte(c.args),
			Now:       start.Add(time.Duration(i) * time.Minute),
		})
		var rej *model.Rejection
		switch {
		case errors.As(err, &rej):
			fmt.Printf("%-7s rejected: %s\n", c.command, rej.Reason)
			continue
		case errors.Is(err, model.ErrInvalidArgs):
			fmt.Printf("%-7s invalid: %v\n", c.command, err)
			continue
		case err != nil:
			fmt.Println(c.command, "failed:", err)
			return
		}
		for i := range events {
			// An event stamped before one already folded is late: the
			// executor would then Refold from the log (see Aggregate).
			// These commands are stamped in order, so none is late.
			if late, err := agg.Apply(&events[i]); err != nil || late {
				fmt.Println("apply:", late, err)
				return
			}
			fmt.Printf("%-7s seq %d %s at %s\n", c.command, events[i].Sequence, events[i].VersionedName(), events[i].Timestamp.Format("15:04"))
		}
		history = append(history, events...)
	}
	state, err := agg.MarshalState()
	if err != nil {
		fmt.Println("state:", err)
		return
	}
	fmt.Printf("state: %s terminated=%v\n", state, agg.Terminated())

	// Anyone with the history can roll the typed state up again …
	now, err := door.State().Replay(history)
	fmt.Printf("replay: %+v %v\n", now, err)
	// … or as it was at an instant in the past.
	then, err := door.State().ReplayAsOf(history, start.Add(3*time.Minute+30*time.Second))
	fmt.Printf("as of 09:03:30: %+v %v\n", then, err)

	// Output:
	// types: [door] commands: [close install open remove]
	// open    rejected: not_found
	// install invalid: model: invalid arguments: command "install": room is required
	// install seq 1 installed_0 at 09:02
	// open    seq 2 opened_0 at 09:03
	// open    rejected: already_open
	// close   seq 3 closed_0 at 09:05
	// remove  seq 4 removed_0 at 09:06
	// open    rejected: terminated
	// state: {"room":"hall","open":false} terminated=true
	// replay: {Room:hall Open:false} <nil>
	// as of 09:03:30: {Room:hall Open:true} <nil>
}
