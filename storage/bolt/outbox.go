package bolt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"

	bbolt "go.etcd.io/bbolt"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

var _ eventlog.Outbox = (*DB)(nil)

var (
	bucketOutbox        = []byte("outbox")
	bucketOutboxWriters = []byte("outbox_writers")
)

// outboxBuffer holds the marks Mark accepted that are not in the file yet.
// The next write transaction of the DB that commits anything (Append,
// WriteDecisions, SetPublished, Forget) writes them, so that Mark costs no
// commit of its own: the marks become durable with — never after — the
// appends they describe.
//
// A transaction copies the buffer (take) and, once it has committed,
// removes what it wrote (committed) unless a newer Mark replaced it.
// Removing only after the commit means that a transaction that fails
// loses nothing, and that a transaction starting between another's commit
// and its cleanup at worst writes the same marks again.
//
// Lock order: bbolt's writer lock, then mu (take runs inside a write
// transaction; nothing holds mu while starting one). mu is never held
// across I/O.
type outboxBuffer struct {
	mu struct {
		sync.Mutex
		// marks maps outbox keys to values (see outboxKey, markValue).
		// Values are never modified once stored, so a copy of the map can
		// share them.
		marks map[string][]byte
		// writers holds, per writer, the newest bucket marked since the
		// writer's row was last written.
		writers map[string]int64
	}
}

// outboxTake is what one write transaction took from the buffer.
type outboxTake struct {
	marks   map[string][]byte
	writers map[string]int64
}

func newOutboxBuffer() *outboxBuffer {
	b := &outboxBuffer{}
	b.mu.marks = make(map[string][]byte)
	b.mu.writers = make(map[string]int64)
	return b
}

// add records marks (keys and values built by the caller) and the bucket
// they were marked in.
func (b *outboxBuffer) add(writer string, bucket int64, keys []string, values [][]byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, k := range keys {
		b.mu.marks[k] = values[i]
	}
	if last, ok := b.mu.writers[writer]; !ok || bucket > last {
		b.mu.writers[writer] = bucket
	}
}

// take copies the buffer for a write transaction. When drop is not empty,
// it first discards the buffered marks of writer drop in buckets <= upTo
// (covered by the watermark the transaction sets, or all of a writer being
// forgotten), and with forget also the writer's buffered Last.
func (b *outboxBuffer) take(drop string, upTo int64, forget bool) outboxTake {
	b.mu.Lock()
	defer b.mu.Unlock()
	if drop != "" {
		prefix := string(writerPrefix(drop))
		for k := range b.mu.marks {
			if bucket, ok := keyBucket(k, prefix); ok && bucket <= upTo {
				delete(b.mu.marks, k)
			}
		}
		if forget {
			delete(b.mu.writers, drop)
		}
	}
	if len(b.mu.marks) == 0 && len(b.mu.writers) == 0 {
		return outboxTake{}
	}
	return outboxTake{marks: maps.Clone(b.mu.marks), writers: maps.Clone(b.mu.writers)}
}

// committed removes what t wrote from the buffer, keeping entries a later
// Mark replaced.
func (b *outboxBuffer) committed(t outboxTake) {
	if len(t.marks) == 0 && len(t.writers) == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, v := range t.marks {
		if cur, ok := b.mu.marks[k]; ok && bytes.Equal(cur, v) {
			delete(b.mu.marks, k)
		}
	}
	for w, last := range t.writers {
		if cur, ok := b.mu.writers[w]; ok && cur == last {
			delete(b.mu.writers, w)
		}
	}
}

// bucketMarks returns the buffered marks whose keys start with prefix: key
// → Last.
func (b *outboxBuffer) bucketMarks(prefix string) (map[string]uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out map[string]uint64
	for k, v := range b.mu.marks {
		if len(k) < len(prefix) || k[:len(prefix)] != prefix {
			continue
		}
		last, err := decodeMarkValue(v)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = make(map[string]uint64)
		}
		out[k] = last
	}
	return out, nil
}

// lasts returns a copy of the buffered writers' Last.
func (b *outboxBuffer) lasts() map[string]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.mu.writers)
}

// writeOutboxInTx writes the buffered marks and writer positions inside a
// write transaction that commits anyway; see outboxBuffer. After a
// successful commit the caller passes the result to outbox.committed.
func (db *DB) writeOutboxInTx(tx *bbolt.Tx, drop string, upTo int64, forget bool) (outboxTake, error) {
	t := db.outbox.take(drop, upTo, forget)
	if len(t.marks) > 0 {
		ob := tx.Bucket(bucketOutbox)
		// Sorted: bbolt fills pages best in key order.
		for _, k := range slices.Sorted(maps.Keys(t.marks)) {
			if err := ob.Put([]byte(k), t.marks[k]); err != nil {
				return outboxTake{}, fmt.Errorf("write outbox mark: %w", err)
			}
		}
	}
	wb := tx.Bucket(bucketOutboxWriters)
	for w, last := range t.writers {
		pos, _, err := readWriter(wb, w)
		if err != nil {
			return outboxTake{}, err
		}
		if last > pos.Last {
			pos.Last = last
			if err := wb.Put([]byte(w), writerValue(pos)); err != nil {
				return outboxTake{}, fmt.Errorf("write outbox writer %q: %w", w, err)
			}
		}
	}
	return t, nil
}

// readWriter reads writer's row; ok is false when there is none.
func readWriter(wb *bbolt.Bucket, writer string) (pos eventlog.OutboxWriter, ok bool, err error) {
	pos.Writer = writer
	v := wb.Get([]byte(writer))
	if v == nil {
		return pos, false, nil
	}
	if err := decodeWriterValue(v, &pos); err != nil {
		return pos, false, fmt.Errorf("outbox writer %q: %w", writer, err)
	}
	return pos, true, nil
}

// checkWriter refuses an empty writer id, which cannot be a bbolt key.
func checkWriter(writer string) error {
	if writer == "" {
		return fmt.Errorf("%w: outbox writer id is empty", eventlog.ErrInvalidAppend)
	}
	return nil
}

// Mark implements eventlog.Outbox without a transaction of its own: the
// marks wait in memory for the DB's next write transaction (normally the
// Append or WriteDecisions they announce) and are committed with it. A
// call without marks records nothing; one invalid mark fails the call and
// nothing of it is recorded. If the DB is closed before another write
// transaction, the buffered marks are lost — and so are the appends they
// announce, which never happened.
func (db *DB) Mark(ctx context.Context, writer string, bucket int64, marks []eventlog.Mark) error {
	what := fmt.Sprintf("mark %d in outbox %q bucket %d", len(marks), writer, bucket)
	if err := db.own.Check(ctx, func() string { return what }); err != nil {
		return err
	}
	if err := checkWriter(writer); err != nil {
		return err
	}
	for i := range marks {
		if err := eventlog.CheckMark(&marks[i]); err != nil {
			return fmt.Errorf("bolt: %s: %w", what, err)
		}
	}
	if len(marks) == 0 {
		return nil
	}
	prefix := bucketPrefix(writer, bucket)
	keys := make([]string, len(marks))
	values := make([][]byte, len(marks))
	vbuf := make([]byte, 0, len(marks)*markValueLen)
	kbuf := make([]byte, 0, len(prefix)+2*model.MaxIDLen)
	for i := range marks {
		m := &marks[i]
		kbuf = appendMarkKey(append(kbuf[:0], prefix...), m.Ref, m.First)
		keys[i] = string(kbuf)
		start := len(vbuf)
		vbuf = appendMarkValue(vbuf, m.Last)
		values[i] = vbuf[start:len(vbuf):len(vbuf)]
	}
	db.outbox.add(writer, bucket, keys, values)
	return nil
}

// Marks implements eventlog.Outbox. It merges the marks still buffered
// (read first) with those in the file (read second), so a mark that is
// committed and leaves the buffer in between is seen either way.
func (db *DB) Marks(ctx context.Context, writer string, bucket int64) ([]eventlog.Mark, error) {
	what := fmt.Sprintf("read outbox %q bucket %d", writer, bucket)
	if err := db.own.Check(ctx, func() string { return what }); err != nil {
		return nil, err
	}
	prefix := bucketPrefix(writer, bucket)
	found, err := db.outbox.bucketMarks(string(prefix))
	if err != nil {
		return nil, fmt.Errorf("%w: bolt: %s: %w", eventlog.ErrUnavailable, what, err)
	}
	if found == nil {
		found = make(map[string]uint64)
	}
	err = db.bdb.View(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketOutbox).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if _, ok := found[string(k)]; ok {
				continue // the buffer holds the newer value
			}
			last, err := decodeMarkValue(v)
			if err != nil {
				return err
			}
			found[string(k)] = last
		}
		return nil
	})
	if err != nil {
		return nil, db.events.txError(what, err)
	}
	if len(found) == 0 {
		return nil, nil
	}
	// The keys sort in the contract's order: type, id, first.
	out := make([]eventlog.Mark, 0, len(found))
	for _, k := range slices.Sorted(maps.Keys(found)) {
		m := eventlog.Mark{Last: found[k]}
		if err := decodeMarkKey([]byte(k[len(prefix):]), &m); err != nil {
			return nil, fmt.Errorf("%w: bolt: %s: %w", eventlog.ErrUnavailable, what, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// SetPublished implements eventlog.Outbox. In one transaction it writes
// the buffered marks, moves the watermark (never back) and deletes the
// writer's marks in the buckets it covers, from the file and from the
// buffer. For a writer it does not know it records the watermark (with
// Last 0).
func (db *DB) SetPublished(ctx context.Context, writer string, bucket int64) error {
	what := fmt.Sprintf("set outbox %q published to %d", writer, bucket)
	if err := db.own.Check(ctx, func() string { return what }); err != nil {
		return err
	}
	if err := checkWriter(writer); err != nil {
		return err
	}
	var t outboxTake
	err := db.bdb.Update(func(tx *bbolt.Tx) error {
		var err error
		if t, err = db.writeOutboxInTx(tx, writer, bucket, false); err != nil {
			return err
		}
		wb := tx.Bucket(bucketOutboxWriters)
		pos, ok, err := readWriter(wb, writer)
		if err != nil {
			return err
		}
		if ok && bucket <= pos.Published {
			if t.marks == nil && t.writers == nil {
				return errNothingToCommit
			}
			return nil
		}
		pos.Published = bucket
		if err := wb.Put([]byte(writer), writerValue(pos)); err != nil {
			return fmt.Errorf("write outbox writer: %w", err)
		}
		return deleteMarks(tx.Bucket(bucketOutbox), writer, bucket)
	})
	if err != nil && !errors.Is(err, errNothingToCommit) {
		return fmt.Errorf("bolt: %s: %w", what, writeTxError(err))
	}
	if err == nil {
		db.outbox.committed(t)
	}
	return nil
}

// deleteMarks deletes writer's marks in buckets <= upTo.
func deleteMarks(ob *bbolt.Bucket, writer string, upTo int64) error {
	prefix := writerPrefix(writer)
	var doomed [][]byte
	c := ob.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		b, ok := keyBucket(string(k), string(prefix))
		if !ok {
			return fmt.Errorf("%w: outbox key %x of writer %q", ErrCorrupt, k, writer)
		}
		if b > upTo {
			break
		}
		// Deleting under a moving cursor can skip keys: collect first.
		doomed = append(doomed, bytes.Clone(k))
	}
	for _, k := range doomed {
		if err := ob.Delete(k); err != nil {
			return fmt.Errorf("delete outbox mark: %w", err)
		}
	}
	return nil
}

// Writers implements eventlog.Outbox. Writers come sorted by id; a
// writer's Last includes the buckets of marks still buffered.
func (db *DB) Writers(ctx context.Context) ([]eventlog.OutboxWriter, error) {
	const what = "list outbox writers"
	if err := db.own.Check(ctx, func() string { return what }); err != nil {
		return nil, err
	}
	buffered := db.outbox.lasts() // first: see Marks
	var out []eventlog.OutboxWriter
	err := db.bdb.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketOutboxWriters).ForEach(func(k, v []byte) error {
			pos := eventlog.OutboxWriter{Writer: string(k)}
			if err := decodeWriterValue(v, &pos); err != nil {
				return fmt.Errorf("outbox writer %q: %w", k, err)
			}
			if last, ok := buffered[pos.Writer]; ok {
				pos.Last = max(pos.Last, last)
				delete(buffered, pos.Writer)
			}
			out = append(out, pos)
			return nil
		})
	})
	if err != nil {
		return nil, db.events.txError(what, err)
	}
	for w, last := range buffered {
		out = append(out, eventlog.OutboxWriter{Writer: w, Last: last})
	}
	slices.SortFunc(out, func(a, b eventlog.OutboxWriter) int { return cmp.Compare(a.Writer, b.Writer) })
	return out, nil
}

// Forget implements eventlog.Outbox: one transaction deletes the writer's
// row and all its marks (and drops its buffered ones). Forgetting an
// unknown writer is not an error.
func (db *DB) Forget(ctx context.Context, writer string) error {
	what := fmt.Sprintf("forget outbox %q", writer)
	if err := db.own.Check(ctx, func() string { return what }); err != nil {
		return err
	}
	if writer == "" {
		return nil // no such writer can exist
	}
	var t outboxTake
	err := db.bdb.Update(func(tx *bbolt.Tx) error {
		var err error
		if t, err = db.writeOutboxInTx(tx, writer, math.MaxInt64, true); err != nil {
			return err
		}
		if err := tx.Bucket(bucketOutboxWriters).Delete([]byte(writer)); err != nil {
			return fmt.Errorf("delete outbox writer: %w", err)
		}
		return deleteMarks(tx.Bucket(bucketOutbox), writer, math.MaxInt64)
	})
	if err != nil {
		return fmt.Errorf("bolt: %s: %w", what, writeTxError(err))
	}
	db.outbox.committed(t)
	return nil
}

// Keys of the outbox bucket:
//
//	esc(writer) ‖ bucket ‖ esc(type) ‖ esc(id) ‖ first
//
// bucket is 8 bytes big-endian with the sign bit flipped, first 8 bytes
// big-endian. esc(s) is s with each 0x00 byte written as 0x00 0xFF,
// followed by the terminator 0x00 0x01. Unlike a length prefix, this
// keeps byte order: esc(a) ‖ x < esc(b) ‖ y whenever a < b, including when
// a is a prefix of b (0x00 0x01 sorts before any byte of b and before an
// escaped 0x00). So the marks of one bucket iterate in (type, id, first)
// order, the order Marks returns, and the encoding is prefix-free: no
// writer's or aggregate's part is a prefix of another's.
//
// Rows of the outbox_writers bucket are keyed by the writer id as is.

// appendEscaped appends esc(s).
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			b = append(b, 0, 0xff)
		} else {
			b = append(b, s[i])
		}
	}
	return append(b, 0, 1)
}

// cutEscaped decodes esc(s) at the start of b and returns s and the rest.
func cutEscaped(b []byte) (string, []byte, error) {
	var s []byte
	for i := 0; i < len(b); i++ {
		if b[i] != 0 {
			continue
		}
		if i+1 == len(b) {
			break
		}
		switch b[i+1] {
		case 1:
			s = append(s, b[:i]...)
			return string(s), b[i+2:], nil
		case 0xff:
			s = append(s, b[:i+1]...)
			b = b[i+2:]
			i = -1
		default:
			return "", nil, fmt.Errorf("%w: outbox key: byte %#x after 0x00", ErrCorrupt, b[i+1])
		}
	}
	return "", nil, fmt.Errorf("%w: outbox key: unterminated string", ErrCorrupt)
}

// writerPrefix returns the key prefix of writer's marks.
func writerPrefix(writer string) []byte { return appendEscaped(nil, writer) }

// bucketPrefix returns the key prefix of writer's marks in bucket.
func bucketPrefix(writer string, bucket int64) []byte {
	return binary.BigEndian.AppendUint64(writerPrefix(writer), uint64(bucket)^(1<<63))
}

// keyBucket returns the bucket of the outbox key k of the writer whose
// prefix is given.
func keyBucket(k, writerPrefix string) (int64, bool) {
	if len(k) < len(writerPrefix)+8 || k[:len(writerPrefix)] != writerPrefix {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64([]byte(k[len(writerPrefix):len(writerPrefix)+8])) ^ (1 << 63)), true
}

// appendMarkKey appends the part of a mark's key after its bucket prefix.
func appendMarkKey(b []byte, ref model.Ref, first uint64) []byte {
	b = appendEscaped(b, ref.Type)
	b = appendEscaped(b, ref.ID)
	return binary.BigEndian.AppendUint64(b, first)
}

// decodeMarkKey decodes the part of a mark's key after its bucket prefix
// into m's Ref and First.
func decodeMarkKey(b []byte, m *eventlog.Mark) error {
	var err error
	if m.Ref.Type, b, err = cutEscaped(b); err != nil {
		return err
	}
	if m.Ref.ID, b, err = cutEscaped(b); err != nil {
		return err
	}
	if len(b) != 8 {
		return fmt.Errorf("%w: outbox key of %s ends in %d bytes, want 8", ErrCorrupt, m.Ref, len(b))
	}
	m.First = binary.BigEndian.Uint64(b)
	return nil
}

// markValueLen is the length of a mark's value: the format byte and Last,
// 8 bytes big-endian.
const markValueLen = 1 + 8

func appendMarkValue(b []byte, last uint64) []byte {
	return binary.BigEndian.AppendUint64(append(b, valueFormat), last)
}

func decodeMarkValue(v []byte) (uint64, error) {
	if len(v) != markValueLen || v[0] != valueFormat {
		return 0, fmt.Errorf("%w: outbox mark value %x", ErrCorrupt, v)
	}
	return binary.BigEndian.Uint64(v[1:]), nil
}

// writerValue encodes a writer's row: the format byte, Published and
// Last, each 8 bytes big-endian.
func writerValue(pos eventlog.OutboxWriter) []byte {
	b := make([]byte, 0, 17)
	b = append(b, valueFormat)
	b = binary.BigEndian.AppendUint64(b, uint64(pos.Published))
	return binary.BigEndian.AppendUint64(b, uint64(pos.Last))
}

func decodeWriterValue(v []byte, pos *eventlog.OutboxWriter) error {
	if len(v) != 17 || v[0] != valueFormat {
		return fmt.Errorf("%w: outbox writer value %x", ErrCorrupt, v)
	}
	pos.Published = int64(binary.BigEndian.Uint64(v[1:9]))
	pos.Last = int64(binary.BigEndian.Uint64(v[9:17]))
	return nil
}
