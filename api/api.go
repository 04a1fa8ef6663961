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
//	<prefix>.events.<aggregateType>.<name_ver>.<aggregateToken>
//	                                             published events (AggregateToken)
//	<prefix>.history.<aggregateType>             an aggregate's events, read from the log
//	<prefix>.deadletter.<consumer>.<type>.<name> events a consumer gave up on
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
//
// # Rules every request follows
//
// A JSON body (envelope, arguments, query, history request) is exactly one
// JSON value in UTF-8: no byte that is not UTF-8, no escaped lone UTF-16
// surrogate, no key twice in one object at any depth, keys compared
// ignoring case as encoding/json matches them (model.CheckJSON).
// encoding/json would replace the first two with U+FFFD and let the last
// key win, so distinct requests would decode alike; the node refuses them
// with CodeInvalidRequest instead.
//
// Every identifier — aggregate id, command name, command id, stream id,
// view name — in a header or in JSON is valid UTF-8 without ASCII control
// characters (U+0000-U+001F, U+007F) and within its byte limit
// (model.CheckIdentifier): aggregate id model.MaxIDLen, command id
// MaxCommandIDLen, stream id model.MaxStreamIDLen, command and view names
// model.MaxNameLen. Aggregate id and command are required.
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

// EventSubject is where an event of one aggregate is published: its type,
// its versioned name, and the aggregate's AggregateToken. Subscribe to
// <prefix>.events.<type>.> for every event of a type, to
// <prefix>.events.<type>.<name_ver>.* for one name. The last token lets a
// consumer find an aggregate's messages in a stream by subject (JetStream's
// last message per subject) without reading the stream; the subscription
// package does that when it resumes.
func EventSubject(prefix, aggregateType string, name model.VersionedName, aggregateID string) string {
	return EventSubjectPrefix(prefix, aggregateType) + name.String() + "." + AggregateToken(aggregateType, aggregateID)
}

// EventSubjectPrefix is what every event subject of an aggregate type
// begins with, "<prefix>.events.<type>.", for building filters.
func EventSubjectPrefix(prefix, aggregateType string) string {
	return prefix + ".events." + aggregateType + "."
}

// AggregateToken is an aggregate's token in event subjects: AggregateHash
// as 16 lowercase hexadecimal digits. An aggregate id may hold characters a
// subject token cannot; its hash always fits.
func AggregateToken(aggregateType, aggregateID string) string {
	const hexDigits = "0123456789abcdef"
	h := AggregateHash(aggregateType, aggregateID)
	var b [16]byte
	for i := 15; i >= 0; i-- {
		b[i] = hexDigits[h&0xf]
		h >>= 4
	}
	return string(b[:])
}

// HistorySubject is where an aggregate's events are read from the event
// log (any node answers): the subscription library fills gaps with it.
func HistorySubject(prefix, aggregateType string) string {
	return prefix + ".history." + aggregateType
}

// DeadLetterSubject is where a consumer puts an event its handler kept
// failing on.
func DeadLetterSubject(prefix, consumer, aggregateType string, name model.VersionedName) string {
	return prefix + ".deadletter." + consumer + "." + aggregateType + "." + name.String()
}

// AdminInfoSubject answers with a node's Info.
func AdminInfoSubject(prefix string) string { return prefix + ".admin.info" }

// AdminClusterSubject is answered by every node with its ClusterInfo: send
// one request and gather the replies. A single node answers on
// NodeAdminSubject.
func AdminClusterSubject(prefix string) string { return prefix + ".admin.cluster" }

// NodeAdminSubject is where one node, by id, answers with its ClusterInfo.
func NodeAdminSubject(prefix, nodeID string) string { return prefix + ".node." + nodeID + ".admin" }

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
	// a command still queued after it is not run (optional; 0 to
	// MaxTimeoutMs, 0 meaning the node's default).
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
	// TimeoutMs: see HeaderTimeout; at most MaxTimeoutMs.
	TimeoutMs int64 `json:"timeoutMs,omitempty"`
}

// MaxTimeoutMs is the longest timeout, in milliseconds, a request may
// announce (timeoutMs or HeaderTimeout): one hour. A larger value is
// refused with CodeInvalidRequest, not clamped, so that a client learns at
// once that it asked for something the node will not honour.
const MaxTimeoutMs = int64(time.Hour / time.Millisecond)

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
	// AsOf (RFC 3339) rolls up the event-time prefix of the history up to
	// it: the events stamped at or before it, in event-time order.
	AsOf string `json:"asOf,omitempty"`
}

// QueryReply answers a state query.
type QueryReply struct {
	OK            bool   `json:"ok"`
	AggregateType string `json:"aggregateType,omitempty"`
	AggregateID   string `json:"aggregateId,omitempty"`
	View          string `json:"view,omitempty"`
	Exists        bool   `json:"exists"`
	// Sequence is the log head the state was folded to; absent (0) for an
	// asOf query, whose events are the event-time prefix up to asOf and in
	// general not a prefix of the log.
	Sequence uint64 `json:"sequence,omitempty"`
	// Prefix says which events the state was folded from (always set on
	// success).
	Prefix *QueryPrefix    `json:"prefix,omitempty"`
	State  json.RawMessage `json:"state,omitempty"`
	Error  *Error          `json:"error,omitempty"`
}

// QueryPrefix describes the events a query folded: the whole history, or
// for asOf its event-time prefix (the events stamped at or before asOf).
type QueryPrefix struct {
	// Events is how many events were folded; Waiting how many of them wait
	// for an initial event stamped before them (they do not apply).
	Events  int `json:"events"`
	Waiting int `json:"waiting,omitempty"`
	// LastTimestamp is the event time of the last event folded.
	LastTimestamp *time.Time `json:"lastTimestamp,omitempty"`
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
	Ready bool          `json:"ready"`
	Store string        `json:"store"`
	Stats ExecutorStats `json:"stats"`
	// Publisher is the event publisher's counters and outbox position,
	// absent when the node runs no publisher.
	Publisher *PublisherStats `json:"publisher,omitempty"`
}

// ClusterInfo is one node's account of the cluster: the members it sees,
// the partition table it routes by, and its own counters. Nodes that see
// the same members agree on Fingerprint.
type ClusterInfo struct {
	NodeID  string `json:"nodeId"`
	Version string `json:"version"`
	// Clustered is false for a node running alone (it owns everything and
	// the fields below are empty).
	Clustered bool `json:"clustered"`
	// Ring is the partitioning settings, "<partitions>/<replication>/<load
	// factor>".
	Ring string `json:"ring,omitempty"`
	// ViewVersion counts the membership changes this node has seen.
	ViewVersion uint64          `json:"viewVersion,omitempty"`
	Members     []ClusterMember `json:"members,omitempty"`
	// Fingerprint is a hash of the partition table (hex).
	Fingerprint string `json:"fingerprint,omitempty"`
	// Owners is the partition table: element p names the owner of
	// partition p.
	Owners []string `json:"owners,omitempty"`
	// Routing counts what this node did with requests.
	Routing RoutingCounters `json:"routing"`
	// Ready and Stats are as in Info.
	Ready bool          `json:"ready"`
	Stats ExecutorStats `json:"stats"`
	// Idempotency is the node's view of the replicated idempotency filter
	// (raft role, leader, voters, entries), absent when the filter is off.
	Idempotency *IdempotencyStats `json:"idempotency,omitempty"`
	// Publisher is as in Info.
	Publisher *PublisherStats `json:"publisher,omitempty"`
}

// InRing returns how many of the members the node routes to: those with
// ClusterMember.InRing set.
func (c ClusterInfo) InRing() int {
	n := 0
	for _, m := range c.Members {
		if m.InRing {
			n++
		}
	}
	return n
}

// ClusterMember is one member as a node sees it.
type ClusterMember struct {
	ID    string `json:"id"`
	Addr  string `json:"addr"`
	State string `json:"state"` // alive, dead or left
	// Subject is the member's direct subject base; RaftAddr its raft
	// address; Version its software version.
	Subject  string `json:"subject,omitempty"`
	RaftAddr string `json:"raftAddr,omitempty"`
	Version  string `json:"version,omitempty"`
	// Partitions is how many partitions it owns in this node's table;
	// InRing is false for an alive member left out of the ring (different
	// ring settings, not a node or not ready yet, or unreachable).
	Partitions int  `json:"partitions"`
	InRing     bool `json:"inRing"`
	// Unreachable: gossip has it alive, but NATS says it does not listen
	// (its connection is gone); it is left out of the ring meanwhile.
	Unreachable bool `json:"unreachable,omitempty"`
}

// RoutingCounters count, since a node started, what it did with requests:
// Local ran here as delivered by the queue group, Direct ran here after
// another node forwarded them, Forwarded were passed to their owner,
// Rerouted arrived forwarded but belonged elsewhere by now and were passed
// on, Delayed waited for the ring to settle, Exhausted ran out of time or
// hops and were answered "unavailable" or "timeout". RingChanges counts
// ring rebuilds, PartitionsMoved the partitions that changed owner in
// them.
type RoutingCounters struct {
	Local           uint64 `json:"local"`
	Direct          uint64 `json:"direct"`
	Forwarded       uint64 `json:"forwarded"`
	Rerouted        uint64 `json:"rerouted"`
	Delayed         uint64 `json:"delayed"`
	Exhausted       uint64 `json:"exhausted"`
	RingChanges     uint64 `json:"ringChanges"`
	PartitionsMoved uint64 `json:"partitionsMoved"`
	// Pauses counts the times the node found its own process had been
	// paused or starved (past a second) and dropped its cached states.
	Pauses uint64 `json:"pauses,omitempty"`
}

// HistoryRequest is the JSON body of a history read: the events of one
// aggregate with From <= sequence <= To, at most Limit of them.
type HistoryRequest struct {
	AggregateID string `json:"aggregateId"`
	// From is the first sequence wanted (0 and 1 both mean the start).
	From uint64 `json:"from,omitempty"`
	// To is the last sequence wanted; 0 means the latest.
	To uint64 `json:"to,omitempty"`
	// Limit caps the events in one reply: 0 means MaxHistoryPage, a
	// larger value is taken as MaxHistoryPage, a negative one is invalid.
	Limit int `json:"limit,omitempty"`
}

// HistoryReply answers a history read. Next is the sequence to ask for
// next when the reply was cut by the limit, 0 when the range is complete.
// A successful reply always carries "events" (an empty array when there
// are none) and "next"; a failed one carries "error" instead.
type HistoryReply struct {
	OK            bool          `json:"ok"`
	AggregateType string        `json:"aggregateType,omitempty"`
	AggregateID   string        `json:"aggregateId,omitempty"`
	Events        []model.Event `json:"events,omitempty"`
	Next          uint64        `json:"next,omitempty"`
	Error         *Error        `json:"error,omitempty"`
}

// MarshalJSON writes "events" and "next" on every successful reply, also
// when they are empty or zero, and leaves them out of a failed one.
func (r HistoryReply) MarshalJSON() ([]byte, error) {
	type plain HistoryReply // the fields, without this method
	if !r.OK {
		return json.Marshal(plain(r))
	}
	events := r.Events
	if events == nil {
		events = []model.Event{}
	}
	// The outer fields hide the embedded ones of the same name.
	return json.Marshal(struct {
		plain
		Events []model.Event `json:"events"`
		Next   uint64        `json:"next"`
	}{plain(r), events, r.Next})
}

// MaxHistoryPage is the most events one history reply carries.
const MaxHistoryPage = 512

// Headers of dead letters (besides the event's own headers).
const (
	HeaderDeadError    = "Concursus-Dead-Error"
	HeaderDeadAttempts = "Concursus-Dead-Attempts"
	HeaderDeadConsumer = "Concursus-Dead-Consumer"
	// HeaderDeadSubject is the subject the event was published on.
	HeaderDeadSubject = "Concursus-Dead-Subject"
	// HeaderDeadStreamSeq is the event's sequence in the events stream.
	HeaderDeadStreamSeq = "Concursus-Dead-Stream-Seq"
)

// Code is a stable, machine-readable error code. New codes may be added;
// existing ones never change meaning.
type Code string

const (
	// CodeInvalidRequest: malformed JSON, a key twice in one object,
	// text that is not UTF-8, missing or bad ids, oversized or empty
	// payload, arguments of the wrong type, a bad timestamp, a timeout
	// out of range. Nothing was written. Do not retry unchanged.
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
