package bolt

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/model"
)

// valueFormat is the first byte of every stored value.
const valueFormat = 1

// aggregatePrefix returns the key prefix of ref's events:
// uvarint(len(type)) ‖ type ‖ uvarint(len(id)) ‖ id. It leaves room for the
// 8-byte sequence.
func aggregatePrefix(ref model.Ref) []byte {
	b := make([]byte, 0, 2*binary.MaxVarintLen64+len(ref.Type)+len(ref.ID)+8)
	b = appendString(b, ref.Type)
	b = appendString(b, ref.ID)
	return b
}

// eventKey returns a new key for event seq of the aggregate whose prefix is
// given; prefix is not modified.
func eventKey(prefix []byte, seq uint64) []byte {
	k := make([]byte, len(prefix)+8)
	copy(k, prefix)
	binary.BigEndian.PutUint64(k[len(prefix):], seq)
	return k
}

// keySequence returns the sequence of an event key with the given prefix.
func keySequence(prefix, key []byte) (uint64, error) {
	if len(key) != len(prefix)+8 {
		return 0, fmt.Errorf("%w: event key %x is %d bytes, want %d", ErrCorrupt, key, len(key), len(prefix)+8)
	}
	return binary.BigEndian.Uint64(key[len(prefix):]), nil
}

// appendEvent appends the value encoding of e (everything but its
// aggregate and sequence, which are in the key).
func appendEvent(b []byte, e *model.Event) []byte {
	b = append(b, valueFormat)
	b = binary.AppendVarint(b, e.Timestamp.UnixMilli())
	b = appendString(b, e.StreamID)
	b = appendString(b, e.ProcessingID)
	b = binary.AppendVarint(b, e.ProcessingTime.UnixMilli())
	b = appendString(b, e.Name)
	b = binary.AppendVarint(b, int64(e.Version))
	b = append(b, byte(e.Characteristics))
	b = appendString(b, e.CommandID)
	b = appendString(b, e.EventID)
	b = binary.AppendUvarint(b, uint64(len(e.Payload)))
	return append(b, e.Payload...)
}

// eventSize bounds the encoded size of e, to size buffers.
func eventSize(e *model.Event) int {
	return 1 + 9*binary.MaxVarintLen64 + 1 + len(e.StreamID) + len(e.ProcessingID) + len(e.Name) +
		len(e.CommandID) + len(e.EventID) + len(e.Payload)
}

// decodeEvent decodes a value written by appendEvent into e, whose
// aggregate and sequence the caller sets. It copies everything it keeps out
// of v, which may be memory owned by bbolt.
func decodeEvent(v []byte, e *model.Event) error {
	r := reader{b: v}
	if f := r.byte(); f != valueFormat && r.err == nil {
		return fmt.Errorf("%w: event value format %d, want %d", ErrCorrupt, f, valueFormat)
	}
	e.Timestamp = fromMillis(r.varint())
	e.StreamID = r.string()
	e.ProcessingID = r.string()
	e.ProcessingTime = fromMillis(r.varint())
	e.Name = r.string()
	version := r.varint()
	e.Characteristics = model.Characteristics(r.byte())
	e.CommandID = r.string()
	e.EventID = r.string()
	if p := r.bytes(); len(p) > 0 {
		e.Payload = append([]byte(nil), p...)
	}
	if err := r.done(); err != nil {
		return fmt.Errorf("event value: %w", err)
	}
	if version < math.MinInt || version > math.MaxInt {
		return fmt.Errorf("%w: event version %d out of range", ErrCorrupt, version)
	}
	e.Version = int(version)
	return nil
}

// appendRecord appends the value encoding of r (everything but its command
// id, which is the key).
func appendRecord(b []byte, r *commandlog.Record) []byte {
	b = append(b, valueFormat)
	b = appendString(b, r.Ref.Type)
	b = appendString(b, r.Ref.ID)
	b = appendString(b, r.Command)
	b = appendString(b, string(r.Outcome))
	b = binary.AppendUvarint(b, r.FirstSequence)
	b = binary.AppendUvarint(b, r.LastSequence)
	b = appendString(b, r.Code)
	b = appendString(b, r.Reason)
	b = appendString(b, r.Message)
	return binary.AppendVarint(b, r.At.UnixMilli())
}

// decodeRecord decodes a value written by appendRecord into rec, whose
// command id the caller sets.
func decodeRecord(v []byte, rec *commandlog.Record) error {
	r := reader{b: v}
	if f := r.byte(); f != valueFormat && r.err == nil {
		return fmt.Errorf("%w: command value format %d, want %d", ErrCorrupt, f, valueFormat)
	}
	rec.Ref.Type = r.string()
	rec.Ref.ID = r.string()
	rec.Command = r.string()
	rec.Outcome = commandlog.Outcome(r.string())
	rec.FirstSequence = r.uvarint()
	rec.LastSequence = r.uvarint()
	rec.Code = r.string()
	rec.Reason = r.string()
	rec.Message = r.string()
	rec.At = fromMillis(r.varint())
	if err := r.done(); err != nil {
		return fmt.Errorf("command value: %w", err)
	}
	return nil
}

// recordAtMillis decodes only the At of an encoded record.
func recordAtMillis(v []byte) (int64, error) {
	var rec commandlog.Record
	if err := decodeRecord(v, &rec); err != nil {
		return 0, err
	}
	return rec.At.UnixMilli(), nil
}

// timeKey returns the index key of a record decided at ms: the time, big
// endian with the sign bit flipped so negative times sort first, then the
// command id.
func timeKey(ms int64, commandID string) []byte {
	k := make([]byte, 8+len(commandID))
	binary.BigEndian.PutUint64(k, uint64(ms)^(1<<63))
	copy(k[8:], commandID)
	return k
}

// parseTimeKey splits an index key into its time and command id.
func parseTimeKey(k []byte) (int64, []byte, error) {
	if len(k) <= 8 {
		return 0, nil, fmt.Errorf("%w: time index key %x is %d bytes", ErrCorrupt, k, len(k))
	}
	return int64(binary.BigEndian.Uint64(k) ^ (1 << 63)), k[8:], nil
}

// fromMillis returns the UTC time ms milliseconds after the Unix epoch.
func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// appendString appends s with a uvarint length prefix.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// reader decodes a value; the first error sticks and later reads return
// zero values.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated or malformed %s", ErrCorrupt, what)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail("byte")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// bytes returns a length-prefixed byte string; it aliases the input.
func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)) {
		r.fail("length-prefixed bytes")
		return nil
	}
	p := r.b[:n:n]
	r.b = r.b[n:]
	return p
}

func (r *reader) string() string { return string(r.bytes()) }

// done returns the first error, or an error if bytes are left over.
func (r *reader) done() error {
	if r.err == nil && len(r.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(r.b))
	}
	return r.err
}
