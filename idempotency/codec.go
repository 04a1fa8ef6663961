package idempotency

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/concursus-go/concursus/commandlog"
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
	b = appendString(b, r.CommandID)
	b = appendString(b, r.Ref.Type)
	b = appendString(b, r.Ref.ID)
	b = appendString(b, r.Command)
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
		b = appendString(b, string(r.Outcome))
	}
	b = binary.AppendUvarint(b, r.FirstSequence)
	b = binary.AppendUvarint(b, r.LastSequence)
	if flags&flagRejection != 0 {
		b = appendString(b, r.Code)
		b = appendString(b, r.Reason)
		b = appendString(b, r.Message)
	}
	if flags&flagAt != 0 {
		b = binary.AppendVarint(b, r.At.UnixNano())
	}
	if flags&flagDigest != 0 {
		b = appendString(b, r.ArgsDigest)
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// reader walks an encoded buffer; the first error sticks.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: bad %s at byte %d", ErrCorrupt, what, r.off)
	}
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.off += n
	return v
}

func (r *reader) varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b[r.off:])
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.off += n
	return v
}

func (r *reader) byte(what string) byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.b) {
		r.fail(what)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

// bytes returns a uvarint-prefixed byte string, aliasing the buffer.
func (r *reader) bytes(what string) []byte {
	n := r.uvarint(what)
	if r.err != nil {
		return nil
	}
	if n > uint64(len(r.b)-r.off) {
		r.fail(what)
		return nil
	}
	s := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return s
}

// skipRecord checks the record at r.off and moves past it. It returns the
// record's command id (aliasing the buffer).
func (r *reader) skipRecord() []byte {
	id := r.bytes("command id")
	r.bytes("aggregate type")
	r.bytes("aggregate id")
	r.bytes("command")
	flags := r.byte("flags")
	if flags&flagOutcomeMask == outcomeOther {
		r.bytes("outcome")
	} else if flags&flagOutcomeMask == 3 {
		r.fail("flags")
	}
	if flags&^(flagOutcomeMask|flagAt|flagRejection|flagDigest) != 0 {
		r.fail("flags")
	}
	r.uvarint("first sequence")
	r.uvarint("last sequence")
	if flags&flagRejection != 0 {
		r.bytes("code")
		r.bytes("reason")
		r.bytes("message")
	}
	if flags&flagAt != 0 {
		r.varint("time")
	}
	if flags&flagDigest != 0 {
		r.bytes("arguments digest")
	}
	if r.err == nil && len(id) == 0 {
		r.fail("command id (empty)")
	}
	return id
}

// decodeRecord decodes one record at the start of b.
func decodeRecord(b []byte) (commandlog.Record, error) {
	r := reader{b: b}
	var rec commandlog.Record
	rec.CommandID = string(r.bytes("command id"))
	rec.Ref.Type = string(r.bytes("aggregate type"))
	rec.Ref.ID = string(r.bytes("aggregate id"))
	rec.Command = string(r.bytes("command"))
	flags := r.byte("flags")
	switch flags & flagOutcomeMask {
	case outcomeAccepted:
		rec.Outcome = commandlog.Accepted
	case outcomeRejected:
		rec.Outcome = commandlog.Rejected
	default:
		rec.Outcome = commandlog.Outcome(r.bytes("outcome"))
	}
	rec.FirstSequence = r.uvarint("first sequence")
	rec.LastSequence = r.uvarint("last sequence")
	if flags&flagRejection != 0 {
		rec.Code = string(r.bytes("code"))
		rec.Reason = string(r.bytes("reason"))
		rec.Message = string(r.bytes("message"))
	}
	if flags&flagAt != 0 {
		rec.At = time.Unix(0, r.varint("time")).UTC()
	}
	if flags&flagDigest != 0 {
		rec.ArgsDigest = string(r.bytes("arguments digest"))
	}
	return rec, r.err
}

// recordID returns the command id of the record at the start of b without
// decoding the rest.
func recordID(b []byte) []byte {
	r := reader{b: b}
	return r.bytes("command id")
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
	r := reader{b: data}
	var h batchHeader
	h.at = r.varint("batch time")
	w := r.uvarint("window")
	nb := r.uvarint("bucket count")
	n := r.uvarint("record count")
	if r.err != nil {
		return h, nil, r.err
	}
	if w == 0 || w > 1<<62 || nb == 0 || nb > maxBuckets || w/nb == 0 {
		return h, nil, fmt.Errorf("%w: window %dns in %d buckets", ErrCorrupt, w, nb)
	}
	if n > uint64(len(data)) { // every record takes more than a byte
		return h, nil, fmt.Errorf("%w: %d records in %d bytes", ErrCorrupt, n, len(data))
	}
	h.window, h.buckets, h.count = int64(w), int(nb), int(n)
	bounds, err := splitRecords(&r, h.count)
	return h, bounds, err
}

// splitRecords checks count records from r.off to the end of the buffer.
func splitRecords(r *reader, count int) ([][2]int, error) {
	bounds := make([][2]int, 0, count)
	for range count {
		start := r.off
		r.skipRecord()
		if r.err != nil {
			return nil, r.err
		}
		if r.off-start > MaxRecordBytes {
			return nil, fmt.Errorf("%w: record of %d bytes, limit %d", ErrCorrupt, r.off-start, MaxRecordBytes)
		}
		bounds = append(bounds, [2]int{start, r.off})
	}
	if r.off != len(r.b) {
		return nil, fmt.Errorf("%w: %d bytes after %d records", ErrCorrupt, len(r.b)-r.off, count)
	}
	return bounds, nil
}

// parseForwarded checks a forwarded proposal and returns its record bytes
// and count.
func parseForwarded(payload []byte) ([]byte, int, error) {
	if len(payload) == 0 || payload[0] != fwdVersion {
		return nil, 0, fmt.Errorf("%w: forwarded proposal has no version %d header", ErrCorrupt, fwdVersion)
	}
	r := reader{b: payload, off: 1}
	n := r.uvarint("record count")
	if r.err != nil {
		return nil, 0, r.err
	}
	if n == 0 || n > uint64(len(payload)) {
		return nil, 0, fmt.Errorf("%w: forwarded proposal of %d bytes claims %d records", ErrCorrupt, len(payload), n)
	}
	body := r.off
	if _, err := splitRecords(&r, int(n)); err != nil {
		return nil, 0, err
	}
	return payload[body:], int(n), nil
}

func appendForwarded(b []byte, count int, records []byte) []byte {
	b = append(b, fwdVersion)
	b = binary.AppendUvarint(b, uint64(count))
	return append(b, records...)
}
