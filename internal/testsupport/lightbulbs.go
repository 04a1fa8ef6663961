package testsupport

import (
	"encoding/json"
	"fmt"
)

// Lightbulbs is one load worker's commands for the lightbulb example
// (examples/lightbulb), the workload the cluster tests run: the worker
// owns PerWorker bulbs, "w<worker>-b<i>"; it creates each of them, screws
// each in, then switches them on and off in turn, round and round. Each
// command's id names its bulb and step, "w<worker>-b<i>-<step>".
//
// A worker calls Next for each command and Accepted once the command it
// returned was accepted; a switch the worker gives up on (it stops on the
// first failure) leaves the bulb's state as it was. It is not safe for
// concurrent use: one per worker.
type Lightbulbs struct {
	worker, perWorker int
	step              int    // the step Next returns next
	on                []bool // each bulb's state after its accepted switches
}

// LightbulbCommand is one command of the workload.
type LightbulbCommand struct {
	AggregateID string
	Command     string
	// Args is nil for the switches.
	Args      json.RawMessage
	CommandID string
}

// NewLightbulbs returns worker's workload over perWorker bulbs (at least
// one).
func NewLightbulbs(worker, perWorker int) *Lightbulbs {
	return &Lightbulbs{worker: worker, perWorker: perWorker, on: make([]bool, perWorker)}
}

// Next returns the worker's next command.
func (l *Lightbulbs) Next() LightbulbCommand {
	step := l.step
	l.step++
	i := step % l.perWorker
	id := fmt.Sprintf("w%d-b%d", l.worker, i)
	c := LightbulbCommand{AggregateID: id, Command: "switchOn", CommandID: fmt.Sprintf("%s-%d", id, step)}
	switch {
	case step < l.perWorker:
		c.Command, c.Args = "create", json.RawMessage(`{"wattage":60}`)
	case step < 2*l.perWorker:
		c.Command, c.Args = "screwIn", json.RawMessage(`{"location":"lab"}`)
	case l.on[i]:
		c.Command = "switchOff"
	}
	return c
}

// Accepted records that the command Next last returned was accepted: a
// switch flips its bulb.
func (l *Lightbulbs) Accepted() {
	step := l.step - 1
	if step >= 2*l.perWorker {
		l.on[step%l.perWorker] = !l.on[step%l.perWorker]
	}
}
