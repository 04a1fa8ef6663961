// Package model is Concursus's programming model: aggregates, events,
// commands and state, with no I/O. Everything here is pure and
// deterministic; stores, the clock and the network are the caller's.
//
// # Vocabulary
//
// An aggregate is an entity with its own history, named by a type
// ("lightbulb") and an id (Ref). An Event is a fact about one aggregate: a
// gap-free per-aggregate sequence number, the event timestamp given by its
// source plus a stream id (the paper's StreamTimestamp), the processing id and
// time, a versioned name ("created_0"), initial/terminal Characteristics, the
// id of the command that caused it, a stable event id and a payload.
//
// # Defining an aggregate type
//
// A type is defined once, at start-up, with generic functions that keep user
// code free of interface{} payloads and of global registries:
//
//	bulb := model.NewType[Bulb]("lightbulb", model.JSON{})
//	created := model.DefineEvent[Created](bulb, "created", 0, model.Initial)
//	model.On(bulb.State(), created, func(b *Bulb, e model.Recorded[Created]) { b.Wattage = e.Payload.Wattage })
//	model.DefineCommand(bulb, "create", func(s model.Snapshot[Bulb], a CreateArgs) ([]model.Emit, error) {
//		return []model.Emit{created.New(Created{Wattage: a.Wattage})}, nil
//	}, model.Creates)
//	reg, err := model.NewRegistry(bulb)
//
// More views of the same history are added with NewView and On.
//
// # Rules the model enforces
//
//   - Events apply in sequence order, without gaps (Replay, Aggregate.Apply).
//   - While an aggregate does not exist, only a command defined with
//     Creates may run, and its first event must be initial; any other command
//     is refused with reason "not_found" before its handler runs. An initial
//     event on an existing aggregate is refused ("already_exists").
//   - After a terminal event every command is rejected ("terminated").
//   - Arguments decode strictly with the type's Codec and may validate
//     themselves (Validator); failures are ErrInvalidArgs, not rejections,
//     and are never recorded.
//
// # State machine of one aggregate
//
//	(absent) --initial event--> (live) --event--> (live)
//	(live) --terminal event--> (ended)          every command refused
//	(absent) --initial+terminal event--> (ended)
package model
