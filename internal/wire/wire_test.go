package wire

import (
	"encoding/binary"
	"errors"
	"testing"
)

var errBad = errors.New("bad")

func TestRoundTrip(t *testing.T) {
	b := AppendString(nil, "héllo")
	b = binary.AppendUvarint(b, 300)
	b = binary.AppendVarint(b, -7)
	b = append(b, 0xfe)
	b = AppendString(b, "")
	r := Reader{B: b, Corrupt: errBad}
	if s := r.String("s"); s != "héllo" {
		t.Fatalf("String = %q", s)
	}
	if u := r.Uvarint("u"); u != 300 {
		t.Fatalf("Uvarint = %d", u)
	}
	if v := r.Varint("v"); v != -7 {
		t.Fatalf("Varint = %d", v)
	}
	if c := r.Byte("c"); c != 0xfe {
		t.Fatalf("Byte = %x", c)
	}
	if e := r.Bytes("e"); len(e) != 0 {
		t.Fatalf("Bytes = %x", e)
	}
	if err := r.Done(); err != nil {
		t.Fatal(err)
	}
}

func TestErrorsStickAndWrapTheSentinel(t *testing.T) {
	b := AppendString(nil, "abc")
	for _, c := range []struct {
		name string
		in   []byte
		read func(*Reader)
	}{
		{"truncated string", b[:len(b)-1], func(r *Reader) { r.Bytes("name") }},
		{"no byte", nil, func(r *Reader) { r.Byte("flags") }},
		{"overlong uvarint", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, func(r *Reader) { r.Uvarint("n") }},
		{"empty varint", nil, func(r *Reader) { r.Varint("t") }},
		{"trailing", append(b, 0), func(r *Reader) { r.Bytes("name") }},
	} {
		r := Reader{B: c.in, Corrupt: errBad}
		c.read(&r)
		err := r.Done()
		if !errors.Is(err, errBad) {
			t.Errorf("%s: error %v does not wrap the sentinel", c.name, err)
		}
		if r.Uvarint("after") != 0 || r.Bytes("after") != nil || r.Err() != err {
			t.Errorf("%s: reads after the error did not return zero values and keep the first error", c.name)
		}
	}
}

func TestBytesCannotBeAppendedIntoTheRest(t *testing.T) {
	b := AppendString(nil, "ab")
	b = AppendString(b, "cd")
	r := Reader{B: b, Corrupt: errBad}
	first := r.Bytes("first")
	_ = append(first, 'X')
	if got := r.String("second"); got != "cd" {
		t.Fatalf("an append to the first string overwrote the second: %q", got)
	}
}

func FuzzReader(f *testing.F) {
	f.Add(AppendString(nil, "abc"))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := Reader{B: b, Corrupt: errBad}
		for r.Err() == nil && r.Len() > 0 {
			switch r.Byte("kind") % 3 {
			case 0:
				r.Bytes("bytes")
			case 1:
				r.Uvarint("uvarint")
			default:
				r.Varint("varint")
			}
		}
		if err := r.Done(); err != nil && !errors.Is(err, errBad) {
			t.Fatalf("error %v does not wrap the sentinel", err)
		}
		if r.Off > len(b) {
			t.Fatalf("offset %d past the end %d", r.Off, len(b))
		}
	})
}
