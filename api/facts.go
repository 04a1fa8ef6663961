package api

import "encoding/json"

// # Facts
//
// A fact reports what already happened at its source ("the sensor saw the
// bulb switch on at 18:03"); unlike a command it is not decided and cannot
// be rejected by a domain handler. It is sent to
//
//	<prefix>.facts.<aggregateType>
//
// as one Fact, or as {"facts":[…]} with up to MaxFactsPerRequest facts,
// for one or many aggregates. Each fact goes to its aggregate's owner; the
// reply (FactsReply) answers fact by fact, in the request's order.
//
// A fact is idempotent on its identity: aggregate, versioned event name,
// timestamp (at millisecond precision) and stream id. Sent again, it is
// answered "duplicate" with the sequence it was stored at, and stored once
// (also after its aggregate changed owner: the owner checks the history).
// Its payload is not part of its identity.
//
// Its place in the aggregate's history is its event time: it may arrive
// after facts stamped later ("late": the aggregate's state is refolded in
// event-time order). A fact stamped before the aggregate's initial event
// (or before any initial event arrived) is stored and waits ("place":
// "waiting") until an initial event stamped earlier arrives; a fact stamped
// after the aggregate's terminal event is refused (CodeRejected, reason
// "terminated"), nothing stored.

// FactsSubject is where facts about aggregates of one type are sent.
func FactsSubject(prefix, aggregateType string) string { return prefix + ".facts." + aggregateType }

// MaxFactsPerRequest bounds the facts of one request.
const MaxFactsPerRequest = 1000

// Fact is one fact as a source reports it.
type Fact struct {
	AggregateID string `json:"aggregateId"`
	// Event is the versioned event name, "switchedOn_0"; the aggregate
	// type must define it.
	Event string `json:"event"`
	// Timestamp is when it happened at the source, RFC 3339; required.
	Timestamp string `json:"timestamp"`
	// StreamID names the source (optional; "default").
	StreamID string `json:"streamId,omitempty"`
	// Payload is the event's payload; absent means {}.
	Payload json.RawMessage `json:"payload,omitempty"`
}

// FactsRequest is the body of a request carrying many facts.
type FactsRequest struct {
	Facts []Fact `json:"facts"`
	// TimeoutMs: as for commands (HeaderTimeout); at most MaxTimeoutMs.
	TimeoutMs int64 `json:"timeoutMs,omitempty"`
}

// FactResult answers one fact.
type FactResult struct {
	OK          bool   `json:"ok"`
	AggregateID string `json:"aggregateId,omitempty"`
	Event       string `json:"event,omitempty"`
	// Sequence is its place in the log (where it was stored, or where it
	// already was for a duplicate).
	Sequence  uint64 `json:"sequence,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
	// Late: stamped before an event the aggregate had already recorded.
	Late bool `json:"late,omitempty"`
	// Place is where it stands in the aggregate's life now: "applied",
	// "waiting" (before the initial event), "after_end" (after the
	// terminal event: only a fact stored before the terminal event
	// arrived), "second_initial" (an initial event after the first).
	Place string `json:"place,omitempty"`
	Error *Error `json:"error,omitempty"`
}

// FactsReply answers a facts request. OK is true when every fact was
// stored or was a duplicate; Results has one entry per fact, in order.
// Error is set instead of Results when the request as a whole was
// refused (malformed JSON, too many facts); then nothing was stored.
type FactsReply struct {
	OK            bool         `json:"ok"`
	AggregateType string       `json:"aggregateType,omitempty"`
	Results       []FactResult `json:"results,omitempty"`
	Error         *Error       `json:"error,omitempty"`
}

// CodeUnknownEvent: the aggregate type defines no event of that versioned
// name (facts only). Nothing was stored.
const CodeUnknownEvent Code = "unknown_event"
