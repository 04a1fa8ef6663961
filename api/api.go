// Package api is the language-neutral NATS protocol of Concursus: subjects,
// headers, the JSON command envelope, the JSON reply and its stable error
// codes. The node (package node) serves it and the Go client (package
// client) speaks it; any NATS client in any language can too. README.md
// documents it with `nats` CLI examples; this package is its reference.
//
// # Subjects (prefix defaults to "concursus")
//
//	<prefix>.cmd.<aggregateType>                 command requests (queue group)
//	<prefix>.query.<aggregateType>               state queries
//	<prefix>.events.<aggregateType>.<name_ver>   published events
//	<prefix>.admin.info                          node information
//
// # A command request
//
// Either a JSON envelope as the body:
//
//	{"aggregateId":"b1","command":"screwIn","commandId":"c-42","args":{"location":"hall"}}
//
// or headers, with the JSON arguments as the whole body:
//
//	Concursus-Aggregate-Id: b1
//	Concursus-Command: screwIn
//	Concursus-Command-Id: c-42          (optional: generated when absent)
//	{"location":"hall"}
//
// The reply is a Reply; on failure Reply.Error carries a Code.
package api

import (
	"encoding/json"
	"time"

	"github.com/concursus-go/concursus/model"
)

// DefaultPrefix is the subject prefix used when none is configured.
const DefaultPrefix = "concursus"

// Subjects.
func CommandSubject(prefix, aggregateType string) string { return prefix + ".cmd." + aggregateType }

// QuerySubject is where state queries for an aggregate type are sent.
func QuerySubject(prefix, aggregateType string) string { return prefix + ".query." + aggregateType }

// EventSubject is where events of one type and versioned name are published.
func EventSubject(prefix, aggregateType string, name model.VersionedName) string {
	return prefix + ".events." + aggregateType + "." + name.String()
}

// AdminInfoSubject answers with a node's Info.
func AdminInfoSubject(prefix string) string { return prefix + ".admin.info" }

// Headers of command requests and published events.
const (
	HeaderAggregateID = "Concursus-Aggregate-Id"
	HeaderCommand     = "Concursus-Command"
	HeaderCommandID   = "Concursus-Command-Id"
	// HeaderTimestamp is the source event time, RFC 3339 (optional).
	HeaderTimestamp = "Concursus-Timestamp"
	// HeaderStream is the source stream id (optional).
	HeaderStream = "Concursus-Stream"
	// HeaderTimeout is how long, in milliseconds, the client will wait;
	// a command still queued after it is not run (optional).
	HeaderTimeout = "Concursus-Timeout-Ms"
	// On published events.
	HeaderSequence = "Concursus-Sequence"
	HeaderEventID  = "Concursus-Event-Id"
	HeaderType     = "Concursus-Aggregate-Type"
	// HeaderMsgID is JetStream's de-duplication header; events carry their
	// event id in it.
	HeaderMsgID = "Nats-Msg-Id"
)

// Command is the JSON envelope of a command request.
type Command struct {
	AggregateID string          `json:"aggregateId"`
	Command     string          `json:"command"`
	CommandID   string          `json:"commandId,omitempty"`
	Args        json.RawMessage `json:"args,omitempty"`
	// Timestamp is the source event time in RFC 3339 (optional).
	Timestamp string `json:"timestamp,omitempty"`
	StreamID  string `json:"streamId,omitempty"`
	// TimeoutMs: see HeaderTimeout.
	TimeoutMs int64 `json:"timeoutMs,omitempty"`
}

// Reply answers a command request.
type Reply struct {
	OK            bool   `json:"ok"`
	AggregateType string `json:"aggregateType,omitempty"`
	AggregateID   string `json:"aggregateId,omitempty"`
	CommandID     string `json:"commandId,omitempty"`
	// Sequence is the aggregate's sequence after the command.
	Sequence uint64        `json:"sequence,omitempty"`
	Events   []model.Event `json:"events,omitempty"`
	// Duplicate: the command id had been decided before; this is the
	// recorded outcome (acceptance or rejection) and nothing ran again.
	Duplicate bool   `json:"duplicate,omitempty"`
	Error     *Error `json:"error,omitempty"`
}

// Query is the JSON body of a state query.
type Query struct {
	AggregateID string `json:"aggregateId"`
	// View is the view name; empty means "state", the primary state.
	View string `json:"view,omitempty"`
	// AsOf (RFC 3339) rolls up only events with timestamps not after it.
	AsOf string `json:"asOf,omitempty"`
}

// QueryReply answers a state query.
type QueryReply struct {
	OK            bool            `json:"ok"`
	AggregateType string          `json:"aggregateType,omitempty"`
	AggregateID   string          `json:"aggregateId,omitempty"`
	View          string          `json:"view,omitempty"`
	Exists        bool            `json:"exists"`
	Sequence      uint64          `json:"sequence"`
	State         json.RawMessage `json:"state,omitempty"`
	Error         *Error          `json:"error,omitempty"`
}

// Info is a node's answer on AdminInfoSubject.
type Info struct {
	NodeID         string    `json:"nodeId"`
	Version        string    `json:"version"`
	Prefix         string    `json:"prefix"`
	AggregateTypes []string  `json:"aggregateTypes"`
	Started        time.Time `json:"started"`
	// Ready is false while the node's store is not connected; then every
	// command is answered "unavailable". Store describes the store.
	Ready bool            `json:"ready"`
	Store string          `json:"store"`
	Stats json.RawMessage `json:"stats"`
}

// Code is a stable, machine-readable error code. New codes may be added;
// existing ones never change meaning.
type Code string

const (
	// CodeInvalidRequest: malformed JSON, missing or bad ids, oversized
	// or empty payload, arguments of the wrong type, a bad timestamp.
	// Nothing was written. Do not retry unchanged.
	CodeInvalidRequest Code = "invalid_request"
	// CodeUnknownAggregateType: no such aggregate type on this cluster.
	CodeUnknownAggregateType Code = "unknown_aggregate_type"
	// CodeUnknownCommand: the aggregate type has no such command.
	CodeUnknownCommand Code = "unknown_command"
	// CodeRejected: the domain refused the command; Error.Reason says why
	// ("not_found", "terminated", or the domain's own reason).
	CodeRejected Code = "rejected"
	// CodeConflict: a concurrent writer won; retry with the same command id.
	CodeConflict Code = "conflict"
	// CodeUnavailable: saturated or a store is down; retry with the same
	// command id after a back-off.
	CodeUnavailable Code = "unavailable"
	// CodeTimeout: the deadline passed before the command ran; retry with
	// the same command id.
	CodeTimeout Code = "timeout"
)

// Retryable reports whether a request that failed with c may be sent
// again, with the same command id, and succeed.
func (c Code) Retryable() bool {
	return c == CodeConflict || c == CodeUnavailable || c == CodeTimeout
}

// Error is the error part of a reply.
type Error struct {
	Code Code `json:"code"`
	// Reason is the domain's rejection reason (only with CodeRejected).
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	if e.Reason != "" {
		return string(e.Code) + " (" + e.Reason + "): " + e.Message
	}
	return string(e.Code) + ": " + e.Message
}

// Limits.
const (
	// DefaultMaxPayload is the default limit on a request's size (1 MiB).
	DefaultMaxPayload = 1 << 20
	// MaxCommandIDLen bounds client-supplied command ids.
	MaxCommandIDLen = model.MaxCommandIDLen
)
