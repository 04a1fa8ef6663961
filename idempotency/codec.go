package idempotency

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/internal/wire"
)

// Wire and memory formats.
//
// One record, as the filter holds it in memory, as raft log entries carry
// it and as snapshots store it (the same bytes everywhere, so applying a
// batch copies bytes and never re-encodes):
//
//	uvarint len | CommandID
//	uvarint len | Ref.Type
//	uvarint len | Ref.ID
//	uvarint len | Command
//	byte flags      bits 0-1 outcome: 0 accepted, 1 rejected, 2 other (a
//	                uvarint-prefixed string follows); bit 2: At present;
//	                bit 3: Code, Reason and Message present; bit 4:
//	                ArgsDigest present
//	[uvarint len | Outcome]           when outcome is "other"
//	uvarint FirstSequence
//	uvarint LastSequence
//	[3 × (uvarint len | bytes)]       Code, Reason, Message, when bit 3
//	[varint At as Unix nanoseconds]   when bit 2
//	[uvarint len | ArgsDigest]        when bit 4
//
// An accepted record with UUID command and aggregate ids, a 9-byte type and
// an 8-byte command name takes 105 bytes.
//
// A raft log entry starts with a kind byte:
//
//	kindRecords  varint at (Unix ns, the proposing leader's clock)
//	             uvarint window (ns) | uvarint buckets | uvarint count | records
//	kindGroup    uvarint len | group id
//
// A forwarded proposal (follower to leader) is
//
//	fwdVersion | uvarint count | records
//
// and carries no time: the leader stamps the batch it builds.
const (
	kindRecords byte = 1
	kindGroup   byte = 2

	fwdVersion byte = 1

	flagOutcomeMask = 0x03
	outcomeAccepted = 0
	outcomeRejected = 1
	outcomeOther    = 2
	flagAt          = 0x04
	flagRejection   = 0x08
	flagDigest      = 0x10
)

// MaxRecordBytes bounds one encoded record. Command and aggregate ids are
// bounded by package model; what could grow is a rejection's message.
// Record refuses larger records with ErrInvalidRecord.
const MaxRecordBytes = 64 << 10

// appendRecord appends the encoding of r to b.
func appendRecord(b []byte, r *commandlog.Record) []byte {
	b = wire.AppendString(b, r.CommandID)
	b = wire.AppendString(b, r.Ref.Type)
	b = wire.AppendString(b, r.Ref.ID)
	b = wire.AppendString(b, r.Command)
	var flags byte
	switch r.Outcome {
	case commandlog.Accepted:
		flags = outcomeAccepted
	case commandlog.Rejected:
		flags = outcomeRejected
	default:
		flags = outcomeOther
	}
	if !r.At.IsZero() {
		flags |= flagAt
	}
	if r.Code != "" || r.Reason != "" || r.Message != "" {
		flags |= flagRejection
	}
	if r.ArgsDigest != "" {
		flags |= flagDigest
	}
	b = append(b, flags)
	if flags&flagOutcomeMask == outcomeOther {
		b = wire.AppendString(b, string(r.Outcome))
	}
	b = binary.AppendUvarint(b, r.FirstSequence)
	b = binary.AppendUvarint(b, r.LastSequence)
	if flags&flagRejection != 0 {
		b = wire.AppendString(b, r.Code)
		b = wire.AppendString(b, r.Reason)
		b = wire.AppendString(b, r.Message)
	}
	if flags&flagAt != 0 {
		b = binary.AppendVarint(b, r.At.UnixNano())
	}
	if flags&flagDigest != 0 {
		b = wire.AppendString(b, r.ArgsDigest)
	}
	return b
}

// reader walks an encoded buffer (see package internal/wire); its errors
// wrap ErrCorrupt.
type reader struct{ wire.Reader }

func newReader(b []byte, off int) *reader {
	return &reader{wire.Reader{B: b, Off: off, Corrupt: ErrCorrupt}}
}

// skipRecord checks the record at r.Off and moves past it. It returns the
// record's command id (aliasing the buffer).
func (r *reader) skipRecord() []byte {
	id := r.Bytes("command id")
	r.Bytes("aggregate type")
	r.Bytes("aggregate id")
	r.Bytes("command")
	flags := r.Byte("flags")
	if flags&flagOutcomeMask == outcomeOther {
		r.Bytes("outcome")
	} else if flags&flagOutcomeMask == 3 {
		r.Fail("flags")
	}
	if flags&^(flagOutcomeMask|flagAt|flagRejection|flagDigest) != 0 {
		r.Fail("flags")
	}
	r.Uvarint("first sequence")
	r.Uvarint("last sequence")
	if flags&flagRejection != 0 {
		r.Bytes("code")
		r.Bytes("reason")
		r.Bytes("message")
	}
	if flags&flagAt != 0 {
		r.Varint("time")
	}
	if flags&flagDigest != 0 {
		r.Bytes("arguments digest")
	}
	if r.Err() == nil && len(id) == 0 {
		r.Fail("command id (empty)")
	}
	return id
}

// decodeRecord decodes one record at the start of b.
func decodeRecord(b []byte) (commandlog.Record, error) {
	r := newReader(b, 0)
	var rec commandlog.Record
	rec.CommandID = string(r.Bytes("command id"))
	rec.Ref.Type = string(r.Bytes("aggregate type"))
	rec.Ref.ID = string(r.Bytes("aggregate id"))
	rec.Command = string(r.Bytes("command"))
	flags := r.Byte("flags")
	switch flags & flagOutcomeMask {
	case outcomeAccepted:
		rec.Outcome = commandlog.Accepted
	case outcomeRejected:
		rec.Outcome = commandlog.Rejected
	default:
		rec.Outcome = commandlog.Outcome(r.Bytes("outcome"))
	}
	rec.FirstSequence = r.Uvarint("first sequence")
	rec.LastSequence = r.Uvarint("last sequence")
	if flags&flagRejection != 0 {
		rec.Code = string(r.Bytes("code"))
		rec.Reason = string(r.Bytes("reason"))
		rec.Message = string(r.Bytes("message"))
	}
	if flags&flagAt != 0 {
		rec.At = time.Unix(0, r.Varint("time")).UTC()
	}
	if flags&flagDigest != 0 {
		rec.ArgsDigest = string(r.Bytes("arguments digest"))
	}
	return rec, r.Err()
}

// recordID returns the command id of the record at the start of b without
// decoding the rest.
func recordID(b []byte) []byte {
	r := newReader(b, 0)
	return r.Bytes("command id")
}

// batchHeader is the header of a kindRecords entry.
type batchHeader struct {
	at      int64 // Unix ns
	window  int64 // ns
	buckets int
	count   int
}

func appendBatchHeader(b []byte, h batchHeader) []byte {
	b = append(b, kindRecords)
	b = binary.AppendVarint(b, h.at)
	b = binary.AppendUvarint(b, uint64(h.window))
	b = binary.AppendUvarint(b, uint64(h.buckets))
	return binary.AppendUvarint(b, uint64(h.count))
}

// maxBuckets bounds the bucket count a log entry may ask for.
const maxBuckets = 1000

// parseBatch checks a kindRecords entry (without its kind byte) and returns
// its header and the bounds of each record in data.
func parseBatch(data []byte) (batchHeader, [][2]int, error) {
	r := newReader(data, 0)
	var h batchHeader
	h.at = r.Varint("batch time")
	w := r.Uvarint("window")
	nb := r.Uvarint("bucket count")
	n := r.Uvarint("record count")
	if r.Err() != nil {
		return h, nil, r.Err()
	}
	if w == 0 || w > 1<<62 || nb == 0 || nb > maxBuckets || w/nb == 0 {
		return h, nil, fmt.Errorf("%w: window %dns in %d buckets", ErrCorrupt, w, nb)
	}
	if n > uint64(len(data)) { // every record takes more than a byte
		return h, nil, fmt.Errorf("%w: %d records in %d bytes", ErrCorrupt, n, len(data))
	}
	h.window, h.buckets, h.count = int64(w), int(nb), int(n)
	bounds, err := splitRecords(r, h.count)
	return h, bounds, err
}

// splitRecords checks count records from r.Off to the end of the buffer.
func splitRecords(r *reader, count int) ([][2]int, error) {
	bounds := make([][2]int, 0, count)
	for range count {
		start := r.Off
		r.skipRecord()
		if r.Err() != nil {
			return nil, r.Err()
		}
		if r.Off-start > MaxRecordBytes {
			return nil, fmt.Errorf("%w: record of %d bytes, limit %d", ErrCorrupt, r.Off-start, MaxRecordBytes)
		}
		bounds = append(bounds, [2]int{start, r.Off})
	}
	if r.Off != len(r.B) {
		return nil, fmt.Errorf("%w: %d bytes after %d records", ErrCorrupt, len(r.B)-r.Off, count)
	}
	return bounds, nil
}

// parseForwarded checks a forwarded proposal and returns its record bytes
// and count.
func parseForwarded(payload []byte) ([]byte, int, error) {
	if len(payload) == 0 || payload[0] != fwdVersion {
		return nil, 0, fmt.Errorf("%w: forwarded proposal has no version %d header", ErrCorrupt, fwdVersion)
	}
	r := newReader(payload, 1)
	n := r.Uvarint("record count")
	if r.Err() != nil {
		return nil, 0, r.Err()
	}
	if n == 0 || n > uint64(len(payload)) {
		return nil, 0, fmt.Errorf("%w: forwarded proposal of %d bytes claims %d records", ErrCorrupt, len(payload), n)
	}
	body := r.Off
	if _, err := splitRecords(r, int(n)); err != nil {
		return nil, 0, err
	}
	return payload[body:], int(n), nil
}

func appendForwarded(b []byte, count int, records []byte) []byte {
	b = append(b, fwdVersion)
	b = binary.AppendUvarint(b, uint64(count))
	return append(b, records...)
}
