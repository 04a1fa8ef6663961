// Package binenc is the binary encoding of events, command records and
// their keys used by the embedded store (storage/bolt), kept apart from it
// so that the format has its own tests and fuzzers and any future embedded
// backend writes the same bytes.
//
// # Keys
//
// An aggregate's key prefix is uvarint(len(type)) ‖ type ‖ uvarint(len(id))
// ‖ id, and an event key is that prefix ‖ 8-byte big-endian sequence. The
// length prefixes make the aggregate part prefix-free: no aggregate's prefix
// is a prefix of another's, so a prefix scan never strays into a
// neighbouring aggregate ("a" and "ab", type "a/b" id "c" and type "a" id
// "b/c"); the big-endian sequence sorts keys in sequence order. A store may
// put bytes of its own (a table tag) in front of the prefix: the functions
// that take a prefix do not look inside it.
//
// A time-index key is the record's At in Unix milliseconds, big-endian with
// the sign bit flipped so that times before 1970 sort first, followed by the
// command id.
//
// # Values
//
// Values start with a format byte (1) followed by varints for numbers and
// millisecond timestamps and length-prefixed bytes for strings and the
// payload. The aggregate and sequence of an event, and the command id of a
// record, are not repeated in the value: they come from the key. Timestamps
// are kept at millisecond precision and decoded in UTC.
//
// # Errors
//
// Decoding never panics on malformed input (values are read with
// internal/wire's Reader, which the idempotency filter's format shares). Decoding errors wrap the
// sentinel of the Decoder that reported them, so each store keeps its own
// exported ErrCorrupt.
package binenc

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/internal/wire"
	"github.com/concursus-go/concursus/model"
)

// ValueFormat is the first byte of every encoded value.
const ValueFormat = 1

// AppendAggregate appends ref's key prefix, uvarint(len(type)) ‖ type ‖
// uvarint(len(id)) ‖ id, to b.
func AppendAggregate(b []byte, ref model.Ref) []byte {
	b = AppendString(b, ref.Type)
	return AppendString(b, ref.ID)
}

// AggregateSize bounds the length of ref's key prefix.
func AggregateSize(ref model.Ref) int {
	return 2*binary.MaxVarintLen64 + len(ref.Type) + len(ref.ID)
}

// AggregatePrefix returns ref's key prefix in a new slice with room for the
// 8-byte sequence.
func AggregatePrefix(ref model.Ref) []byte {
	return AppendAggregate(make([]byte, 0, AggregateSize(ref)+8), ref)
}

// EventKey returns a new key for event seq under prefix; prefix is not
// modified.
func EventKey(prefix []byte, seq uint64) []byte {
	k := make([]byte, len(prefix)+8)
	copy(k, prefix)
	binary.BigEndian.PutUint64(k[len(prefix):], seq)
	return k
}

// AppendEventKey appends prefix ‖ 8-byte big-endian seq to b.
func AppendEventKey(b, prefix []byte, seq uint64) []byte {
	b = append(b, prefix...)
	return binary.BigEndian.AppendUint64(b, seq)
}

// AppendEvent appends the value encoding of e (everything but its
// aggregate and sequence, which are in the key).
func AppendEvent(b []byte, e *model.Event) []byte {
	b = append(b, ValueFormat)
	b = binary.AppendVarint(b, e.Timestamp.UnixMilli())
	b = AppendString(b, e.StreamID)
	b = AppendString(b, e.ProcessingID)
	b = binary.AppendVarint(b, e.ProcessingTime.UnixMilli())
	b = AppendString(b, e.Name)
	b = binary.AppendVarint(b, int64(e.Version))
	b = append(b, byte(e.Characteristics))
	b = AppendString(b, e.CommandID)
	b = AppendString(b, e.EventID)
	b = binary.AppendUvarint(b, uint64(len(e.Payload)))
	return append(b, e.Payload...)
}

// EventSize bounds the encoded size of e, to size buffers.
func EventSize(e *model.Event) int {
	return 1 + 9*binary.MaxVarintLen64 + 1 + len(e.StreamID) + len(e.ProcessingID) + len(e.Name) +
		len(e.CommandID) + len(e.EventID) + len(e.Payload)
}

// AppendRecord appends the value encoding of r (everything but its command
// id, which is the key).
func AppendRecord(b []byte, r *commandlog.Record) []byte {
	b = append(b, ValueFormat)
	b = AppendString(b, r.Ref.Type)
	b = AppendString(b, r.Ref.ID)
	b = AppendString(b, r.Command)
	b = AppendString(b, string(r.Outcome))
	b = binary.AppendUvarint(b, r.FirstSequence)
	b = binary.AppendUvarint(b, r.LastSequence)
	b = AppendString(b, r.Code)
	b = AppendString(b, r.Reason)
	b = AppendString(b, r.Message)
	b = binary.AppendVarint(b, r.At.UnixMilli())
	if r.ArgsDigest != "" {
		b = AppendString(b, r.ArgsDigest) // optional trailer: absent in older values
	}
	return b
}

// RecordSize bounds the encoded size of r, to size buffers.
func RecordSize(r *commandlog.Record) int {
	return 1 + 13*binary.MaxVarintLen64 + len(r.Ref.Type) + len(r.Ref.ID) + len(r.Command) +
		len(r.Outcome) + len(r.Code) + len(r.Reason) + len(r.Message) + len(r.ArgsDigest)
}

// TimeKeySize is the length of the time part of a time-index key.
const TimeKeySize = 8

// TimeKey returns the time-index key of a record decided at ms.
func TimeKey(ms int64, commandID string) []byte {
	return AppendTimeKey(make([]byte, 0, TimeKeySize+len(commandID)), ms, commandID)
}

// AppendTimeKey appends the time-index key of a record decided at ms: the
// time, big-endian with the sign bit flipped so negative times sort first,
// then the command id.
func AppendTimeKey(b []byte, ms int64, commandID string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(ms)^(1<<63))
	return append(b, commandID...)
}

// AppendString appends s with a uvarint length prefix.
func AppendString(b []byte, s string) []byte { return wire.AppendString(b, s) }

// FromMillis returns the UTC time ms milliseconds after the Unix epoch.
func FromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// Decoder decodes keys and values. Its zero value is not usable: set
// Corrupt.
type Decoder struct {
	// Corrupt is the sentinel every decoding error wraps (the store's
	// ErrCorrupt).
	Corrupt error
}

// KeySequence returns the sequence of an event key under prefix.
func (d Decoder) KeySequence(prefix, key []byte) (uint64, error) {
	if len(key) != len(prefix)+8 {
		return 0, fmt.Errorf("%w: event key %x is %d bytes, want %d", d.Corrupt, key, len(key), len(prefix)+8)
	}
	return binary.BigEndian.Uint64(key[len(prefix):]), nil
}

// DecodeEvent decodes a value written by AppendEvent into e, whose
// aggregate and sequence the caller sets. It copies everything it keeps out
// of v, which may be memory owned by the store.
func (d Decoder) DecodeEvent(v []byte, e *model.Event) error {
	r := wire.Reader{B: v, Corrupt: d.Corrupt}
	if f := r.Byte("format"); f != ValueFormat && r.Err() == nil {
		return fmt.Errorf("%w: event value format %d, want %d", d.Corrupt, f, ValueFormat)
	}
	e.Timestamp = FromMillis(r.Varint("timestamp"))
	e.StreamID = r.String("stream id")
	e.ProcessingID = r.String("processing id")
	e.ProcessingTime = FromMillis(r.Varint("processing time"))
	e.Name = r.String("name")
	version := r.Varint("version")
	e.Characteristics = model.Characteristics(r.Byte("characteristics"))
	e.CommandID = r.String("command id")
	e.EventID = r.String("event id")
	if p := r.Bytes("payload"); len(p) > 0 {
		e.Payload = append([]byte(nil), p...)
	}
	if err := r.Done(); err != nil {
		return fmt.Errorf("event value: %w", err)
	}
	if version < math.MinInt || version > math.MaxInt {
		return fmt.Errorf("%w: event version %d out of range", d.Corrupt, version)
	}
	e.Version = int(version)
	return nil
}

// DecodeRecord decodes a value written by AppendRecord into rec, whose
// command id the caller sets. It copies everything it keeps out of v.
func (d Decoder) DecodeRecord(v []byte, rec *commandlog.Record) error {
	r := wire.Reader{B: v, Corrupt: d.Corrupt}
	if f := r.Byte("format"); f != ValueFormat && r.Err() == nil {
		return fmt.Errorf("%w: command value format %d, want %d", d.Corrupt, f, ValueFormat)
	}
	rec.Ref.Type = r.String("aggregate type")
	rec.Ref.ID = r.String("aggregate id")
	rec.Command = r.String("command")
	rec.Outcome = commandlog.Outcome(r.String("outcome"))
	rec.FirstSequence = r.Uvarint("first sequence")
	rec.LastSequence = r.Uvarint("last sequence")
	rec.Code = r.String("code")
	rec.Reason = r.String("reason")
	rec.Message = r.String("message")
	rec.At = FromMillis(r.Varint("time"))
	rec.ArgsDigest = ""
	if r.Err() == nil && r.Len() > 0 {
		rec.ArgsDigest = r.String("arguments digest")
	}
	if err := r.Done(); err != nil {
		return fmt.Errorf("command value: %w", err)
	}
	return nil
}

// RecordAtMillis decodes only the At of an encoded record.
func (d Decoder) RecordAtMillis(v []byte) (int64, error) {
	var rec commandlog.Record
	if err := d.DecodeRecord(v, &rec); err != nil {
		return 0, err
	}
	return rec.At.UnixMilli(), nil
}

// ParseTimeKey splits a time-index key into its time and command id; the id
// aliases k.
func (d Decoder) ParseTimeKey(k []byte) (int64, []byte, error) {
	if len(k) <= TimeKeySize {
		return 0, nil, fmt.Errorf("%w: time index key %x is %d bytes", d.Corrupt, k, len(k))
	}
	return int64(binary.BigEndian.Uint64(k) ^ (1 << 63)), k[TimeKeySize:], nil
}
