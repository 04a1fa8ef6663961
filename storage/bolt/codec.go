package bolt

import (
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
