package bolt

import (
	"bytes"
	"cmp"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

// TestOutboxKeyOrder checks that outbox keys sort like the tuples they
// encode — (writer, bucket, type, id, first), strings as bytes — and
// decode back, on random strings rich in the bytes the escaping treats
// specially. The seed is printed; set it to replay a failure.
func TestOutboxKeyOrder(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	alphabet := []byte{0, 1, 2, 'a', 'b', 0xfe, 0xff}
	str := func(minLen int) string {
		b := make([]byte, minLen+rng.IntN(4))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	type tuple struct {
		writer        string
		bucket        int64
		typ, id       string
		first         uint64
		key, idPrefix []byte
	}
	buckets := []int64{-1 << 63, -2, -1, 0, 1, 2, 352_000_000, 1<<63 - 1}
	firsts := []uint64{0, 1, 2, 255, 256, 1 << 63, 1<<64 - 1}
	tuples := make([]tuple, 800)
	for i := range tuples {
		tp := tuple{
			writer: str(1), bucket: buckets[rng.IntN(len(buckets))],
			typ: str(1), id: str(1), first: firsts[rng.IntN(len(firsts))],
		}
		prefix := bucketPrefix(tp.writer, tp.bucket)
		tp.key = appendMarkKey(bytes.Clone(prefix), model.Ref{Type: tp.typ, ID: tp.id}, tp.first)

		var m eventlog.Mark
		if err := decodeMarkKey(tp.key[len(prefix):], &m); err != nil {
			t.Fatalf("decode key of %q %d %q %q %d: %v", tp.writer, tp.bucket, tp.typ, tp.id, tp.first, err)
		}
		if m.Ref.Type != tp.typ || m.Ref.ID != tp.id || m.First != tp.first {
			t.Fatalf("key of %q %q %d decodes to %q %q %d", tp.typ, tp.id, tp.first, m.Ref.Type, m.Ref.ID, m.First)
		}
		if b, ok := keyBucket(string(tp.key), string(writerPrefix(tp.writer))); !ok || b != tp.bucket {
			t.Fatalf("keyBucket of a key in bucket %d = %d, %v", tp.bucket, b, ok)
		}
		tuples[i] = tp
	}
	for i := range tuples {
		for j := range tuples {
			a, b := &tuples[i], &tuples[j]
			want := cmp.Or(cmp.Compare(a.writer, b.writer), cmp.Compare(a.bucket, b.bucket),
				cmp.Compare(a.typ, b.typ), cmp.Compare(a.id, b.id), cmp.Compare(a.first, b.first))
			if got := bytes.Compare(a.key, b.key); got != want {
				t.Fatalf("keys of (%q %d %q %q %d) and (%q %d %q %q %d) compare %d, want %d",
					a.writer, a.bucket, a.typ, a.id, a.first, b.writer, b.bucket, b.typ, b.id, b.first, got, want)
			}
			// Prefix-free: one writer's prefix never starts another's keys.
			if a.writer != b.writer && bytes.HasPrefix(b.key, writerPrefix(a.writer)) {
				t.Fatalf("key of writer %q starts with the prefix of writer %q", b.writer, a.writer)
			}
		}
	}
}

func TestOutboxKeyCorrupt(t *testing.T) {
	for _, k := range [][]byte{
		nil,
		{'a'},
		{'a', 0},
		{'a', 0, 2},
		{'a', 0, 1, 'b', 0, 1, 1, 2, 3}, // first is 3 bytes
		{'a', 0, 1, 'b', 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9}, // and 9
	} {
		var m eventlog.Mark
		if err := decodeMarkKey(k, &m); !errors.Is(err, ErrCorrupt) {
			t.Errorf("decodeMarkKey(%x) = %v, want ErrCorrupt", k, err)
		}
	}
	if _, err := decodeMarkValue([]byte{valueFormat, 1}); !errors.Is(err, ErrCorrupt) {
		t.Errorf("decodeMarkValue of a short value: %v, want ErrCorrupt", err)
	}
	var pos eventlog.OutboxWriter
	if err := decodeWriterValue([]byte{9}, &pos); !errors.Is(err, ErrCorrupt) {
		t.Errorf("decodeWriterValue of a bad value: %v, want ErrCorrupt", err)
	}
}
