package api

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/model"
)

// This file is the wire contract between the nodes that publish events and
// the consumers that read them (package subscription, or anyone's): stream
// names, the event message and its headers, and the partition function a
// consumer group shares work by. Both sides import it from here, so a
// consumer depends on api and model only, never on the server's packages.

// ErrNoJetStream: the NATS server has no JetStream, which the events stream
// and the consumers need.
var ErrNoJetStream = errors.New("api: the NATS server has no JetStream (start it with -js, or let the node run its embedded server)")

// StreamName is the default name of the JetStream stream that keeps the
// events under prefix: the prefix upper-cased, every character a stream
// name may not hold replaced by '_', then "_EVENTS" ("concursus" →
// "CONCURSUS_EVENTS").
func StreamName(prefix string) string {
	name := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, prefix)
	return name + "_EVENTS"
}

// DeadLetterStreamName is the stream of the events consumers gave up on:
// StreamName(prefix) + "_DEADLETTERS".
func DeadLetterStreamName(prefix string) string { return StreamName(prefix) + "_DEADLETTERS" }

// Headers of published events that carry the event-time order.
const (
	// HeaderEventTime is the event's timestamp (RFC 3339, milliseconds,
	// UTC), the same instant as the "timestamp" field of the body: with
	// HeaderStream and HeaderSequence it is the event's place in its
	// history's event-time order (model.TimeKey).
	HeaderEventTime = "Concursus-Event-Time"
	// HeaderLate is "true" on an event that was stamped before an event of
	// its aggregate already recorded when it was appended: it changes the
	// aggregate's past. Absent otherwise, and on re-publications after a
	// crash (whose lateness the publisher no longer knows); a consumer that
	// orders by event time decides lateness for itself (package
	// subscription's settle window does).
	HeaderLate = "Concursus-Late"
)

// EventMessage is the NATS message an event is published as: its JSON on
// EventSubject, with the headers HeaderType, HeaderAggregateID,
// HeaderSequence, HeaderEventID and HeaderMsgID (the event id, so a stream
// stores a re-publication once), HeaderEventTime and HeaderStream (its
// event-time place), and HeaderLate when e.Late is set.
func EventMessage(prefix string, e *model.Event) (*nats.Msg, error) {
	body, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(EventSubject(prefix, e.AggregateType, e.VersionedName(), e.AggregateID))
	m.Header.Set(HeaderType, e.AggregateType)
	m.Header.Set(HeaderAggregateID, e.AggregateID)
	m.Header.Set(HeaderSequence, strconv.FormatUint(e.Sequence, 10))
	m.Header.Set(HeaderEventID, e.EventID)
	m.Header.Set(HeaderMsgID, e.EventID)
	m.Header.Set(HeaderEventTime, e.Timestamp.UTC().Format(EventTimeLayout))
	m.Header.Set(HeaderStream, e.StreamID)
	if e.Late {
		m.Header.Set(HeaderLate, "true")
	}
	m.Data = body
	return m, nil
}

// EventTimeLayout is how HeaderEventTime writes an instant: RFC 3339 with
// exactly three fractional digits, in UTC.
const EventTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// AggregateHash is the 64-bit xxhash (seed 0) of an aggregate's identity:
// the length of the type as 8 bytes little-endian, the type, the id. The
// cluster's router places aggregates by it, and consumer groups share
// aggregates by it (Partition); it is part of the contract and never
// changes.
func AggregateHash(aggregateType, aggregateID string) uint64 {
	var d xxhash.Digest
	d.Reset()
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(aggregateType)))
	// xxhash.Digest writes never fail.
	_, _ = d.Write(n[:])
	_, _ = d.WriteString(aggregateType)
	_, _ = d.WriteString(aggregateID)
	return d.Sum64()
}

// Partition maps an aggregate to one of partitionCount partitions
// (partitionCount > 0): AggregateHash mod partitionCount. A consumer group
// of n members gives member i the aggregates with Partition(n, …) == i.
func Partition(partitionCount int, aggregateType, aggregateID string) int {
	return int(AggregateHash(aggregateType, aggregateID) % uint64(partitionCount))
}
