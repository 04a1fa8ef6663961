// Package wire holds the primitives of the project's binary record
// formats: length-prefixed strings and varints written with
// encoding/binary, and a Reader that takes them apart with a sticky error.
// The embedded store's values (storage/internal/binenc) and the
// idempotency filter's records, raft entries and snapshots (idempotency)
// are different formats built from these same parts; each used to carry
// its own copy of the reader.
package wire

import (
	"encoding/binary"
	"fmt"
)

// AppendString appends uvarint(len(s)) ‖ s to b.
func AppendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// Reader walks an encoded buffer from Off. The first error sticks: later
// reads return zero values and Err keeps reporting it. Errors wrap
// Corrupt, the sentinel of the format being read, and name what was being
// read and where. A Reader never panics on malformed input.
type Reader struct {
	B       []byte
	Off     int
	Corrupt error
	err     error
}

// Fail records that what could not be read (unless an error stuck before).
func (r *Reader) Fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: bad %s at byte %d", r.Corrupt, what, r.Off)
	}
}

// Err is the first error, nil while every read succeeded.
func (r *Reader) Err() error { return r.err }

// Len is how many bytes are left.
func (r *Reader) Len() int { return len(r.B) - r.Off }

// Byte reads one byte.
func (r *Reader) Byte(what string) byte {
	if r.err != nil {
		return 0
	}
	if r.Off >= len(r.B) {
		r.Fail(what)
		return 0
	}
	c := r.B[r.Off]
	r.Off++
	return c
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.B[r.Off:])
	if n <= 0 {
		r.Fail(what)
		return 0
	}
	r.Off += n
	return v
}

// Varint reads a signed varint.
func (r *Reader) Varint(what string) int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.B[r.Off:])
	if n <= 0 {
		r.Fail(what)
		return 0
	}
	r.Off += n
	return v
}

// Bytes reads a uvarint-prefixed byte string. It aliases the buffer (with
// its capacity cut, so an append to it cannot overwrite what follows).
func (r *Reader) Bytes(what string) []byte {
	n := r.Uvarint(what)
	if r.err != nil {
		return nil
	}
	if n > uint64(r.Len()) {
		r.Fail(what)
		return nil
	}
	end := r.Off + int(n)
	s := r.B[r.Off:end:end]
	r.Off = end
	return s
}

// String reads a uvarint-prefixed string (a copy).
func (r *Reader) String(what string) string { return string(r.Bytes(what)) }

// Done returns the first error, or an error when bytes are left over.
func (r *Reader) Done() error {
	if r.err == nil && r.Len() != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", r.Corrupt, r.Len())
	}
	return r.err
}
