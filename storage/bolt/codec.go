package bolt

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/storage/internal/binenc"
)

// The key and value encoding lives in storage/internal/binenc; these
// helpers bind it to this package, whose decoding errors wrap ErrCorrupt.

// valueFormat is the first byte of every stored value.
const valueFormat = binenc.ValueFormat

// dec decodes keys and values; its errors wrap ErrCorrupt.
var dec = binenc.Decoder{Corrupt: ErrCorrupt}

// aggregatePrefix returns the key prefix of ref's events, with room for the
// 8-byte sequence.
func aggregatePrefix(ref model.Ref) []byte { return binenc.AggregatePrefix(ref) }

// eventKey returns a new key for event seq of the aggregate whose prefix is
// given; prefix is not modified.
func eventKey(prefix []byte, seq uint64) []byte { return binenc.EventKey(prefix, seq) }

// keySequence returns the sequence of an event key with the given prefix.
func keySequence(prefix, key []byte) (uint64, error) { return dec.KeySequence(prefix, key) }

// appendEvent appends the value encoding of e.
func appendEvent(b []byte, e *model.Event) []byte { return binenc.AppendEvent(b, e) }

// eventSize bounds the encoded size of e, to size buffers.
func eventSize(e *model.Event) int { return binenc.EventSize(e) }

// decodeEvent decodes a value written by appendEvent into e, whose
// aggregate and sequence the caller sets. It copies everything it keeps out
// of v, which may be memory owned by bbolt.
func decodeEvent(v []byte, e *model.Event) error { return dec.DecodeEvent(v, e) }

// appendRecord appends the value encoding of r.
func appendRecord(b []byte, r *commandlog.Record) []byte { return binenc.AppendRecord(b, r) }

// decodeRecord decodes a value written by appendRecord into rec, whose
// command id the caller sets.
func decodeRecord(v []byte, rec *commandlog.Record) error { return dec.DecodeRecord(v, rec) }

// recordAtMillis decodes only the At of an encoded record.
func recordAtMillis(v []byte) (int64, error) { return dec.RecordAtMillis(v) }

// timeKey returns the index key of a record decided at ms.
func timeKey(ms int64, commandID string) []byte { return binenc.TimeKey(ms, commandID) }

// parseTimeKey splits an index key into its time and command id.
func parseTimeKey(k []byte) (int64, []byte, error) { return dec.ParseTimeKey(k) }

// fromMillis returns the UTC time ms milliseconds after the Unix epoch.
func fromMillis(ms int64) time.Time { return binenc.FromMillis(ms) }

// Keys of the events_by_time bucket, the event-time index of the events:
//
//	aggregate prefix ‖ timestamp ‖ esc(stream) ‖ sequence
//
// The aggregate prefix is the events bucket's (prefix-free, see
// binenc); timestamp is the event's Unix milliseconds, 8 bytes big-endian
// with the sign bit flipped so that times before 1970 sort first; esc is
// the outbox keys' escaping (outbox.go), which keeps byte order and is
// prefix-free — a length prefix would sort "b" before "ab" — and sequence
// is 8 bytes big-endian. So within an aggregate the keys sort exactly as
// model.TimeKey.Compare sorts the events' keys. The value is empty: the
// sequence in the key names the event in the events bucket.

// timeIndexKey returns a new index key for the event of the aggregate
// whose prefix is given, stamped ms (Unix milliseconds) in stream, with
// sequence seq; prefix is not modified.
func timeIndexKey(prefix []byte, ms int64, stream string, seq uint64) []byte {
	k := make([]byte, 0, len(prefix)+8+len(stream)+2+8)
	k = append(k, prefix...)
	k = binary.BigEndian.AppendUint64(k, uint64(ms)^(1<<63))
	k = appendEscaped(k, stream)
	return binary.BigEndian.AppendUint64(k, seq)
}

// parseTimeIndexKey splits an index key of the aggregate whose prefix is
// given into its timestamp (Unix milliseconds), stream and sequence. Its
// errors wrap ErrCorrupt.
func parseTimeIndexKey(prefix, k []byte) (ms int64, stream string, seq uint64, err error) {
	if !bytes.HasPrefix(k, prefix) || len(k) < len(prefix)+8+2+8 {
		return 0, "", 0, fmt.Errorf("%w: time index key %x is not a key under %x", ErrCorrupt, k, prefix)
	}
	rest := k[len(prefix):]
	ms = int64(binary.BigEndian.Uint64(rest) ^ (1 << 63))
	stream, rest, err = cutEscaped(rest[8:])
	if err != nil {
		return 0, "", 0, fmt.Errorf("time index key %x: %w", k, err)
	}
	if len(rest) != 8 {
		return 0, "", 0, fmt.Errorf("%w: time index key %x ends in %d bytes, want 8", ErrCorrupt, k, len(rest))
	}
	return ms, stream, binary.BigEndian.Uint64(rest), nil
}
