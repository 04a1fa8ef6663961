package idempotency

// Fuzz targets for the bytes the filter takes from outside the process:
// raft log entries (Apply), snapshots (Restore), forwarded proposals
// (parseForwarded) and the record encoding they all share. Run one with
//
//	go test -run '^$' -fuzz '^FuzzFilterApply$' -fuzztime 30s ./idempotency/
//
// The seed corpora under testdata/fuzz also run as plain tests.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/internal/wire"
	"github.com/concursus-go/concursus/model"
)

// fuzzRecords are valid records of every shape the encoding has: each
// outcome, with and without a time and a rejection.
func fuzzRecords() []commandlog.Record {
	return []commandlog.Record{
		rec("a"),
		{CommandID: "r", Ref: model.Ref{Type: "t", ID: "i"}, Command: "c", Outcome: commandlog.Rejected,
			Code: "rejected", Reason: "not_screwed_in", Message: "screw it in first", At: t0.Add(time.Nanosecond)},
		{CommandID: "z"},
		{CommandID: "o", Outcome: "weird", FirstSequence: 1 << 60, LastSequence: 1<<60 - 1, At: time.Unix(0, -5)},
	}
}

// applyErr applies data as a command entry and returns Apply's error.
func applyErr(f *Filter, data []byte) error {
	err, _ := f.Apply(&raft.Log{Type: raft.LogCommand, Index: 7, Data: data}).(error)
	return err
}

// fuzzFilter returns a filter holding two buckets and a group id, the
// state the Apply and Restore targets start from.
func fuzzFilter(t testing.TB) *Filter {
	f := NewFilter()
	mustApply(t, f, entry(t0, time.Minute, 6, rec("a"), rec("b")))
	mustApply(t, f, entry(t0.Add(20*time.Second), time.Minute, 6, rec("c")))
	mustApply(t, f, &raft.Log{Type: raft.LogCommand, Data: wire.AppendString([]byte{kindGroup}, "g1")})
	return f
}

// roundTripSnapshot checks that f's snapshot restores into a new filter
// that holds the same and snapshots to the same bytes, and returns the
// snapshot.
func roundTripSnapshot(t *testing.T, f *Filter) []byte {
	t.Helper()
	snap := snapshotBytes(t, f)
	g := NewFilter()
	if err := g.Restore(io.NopCloser(bytes.NewReader(snap))); err != nil {
		t.Fatalf("the snapshot of a filter does not restore: %v", err)
	}
	if again := snapshotBytes(t, g); !bytes.Equal(again, snap) {
		t.Fatalf("snapshot, restore, snapshot changed the bytes:\n%x\n%x", snap, again)
	}
	// TimeJumps counts what this replica applied; a snapshot does not
	// carry it.
	fs, gs := f.Stats(), g.Stats()
	fs.TimeJumps = 0
	if fs != gs {
		t.Fatalf("restored stats %+v, want %+v", gs, fs)
	}
	return snap
}

// FuzzRecordCodec: a record that the log check (skipRecord) accepts
// decodes, and re-encodes to a record that decodes the same and is
// accepted again. Input that decodes never panics either way.
func FuzzRecordCodec(f *testing.F) {
	for _, r := range fuzzRecords() {
		b := appendRecord(nil, &r)
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{})
	f.Add([]byte{1, 'x', 0, 0, 0, 3, 0, 0})    // outcome bits 3
	f.Add([]byte{1, 'x', 0, 0, 0, 0x10, 0, 0}) // unknown flag bit
	f.Fuzz(func(t *testing.T, b []byte) {
		got, decErr := decodeRecord(b)
		r := newReader(b, 0)
		id := r.skipRecord()
		if r.Err() != nil {
			if !errors.Is(r.Err(), ErrCorrupt) {
				t.Fatalf("skipRecord error %v does not wrap ErrCorrupt", r.Err())
			}
			return
		}
		if decErr != nil {
			t.Fatalf("skipRecord accepts %x, decodeRecord refuses it: %v", b, decErr)
		}
		if string(id) != got.CommandID || string(recordID(b)) != got.CommandID {
			t.Fatalf("command id %q, skipRecord says %q", got.CommandID, id)
		}
		enc := appendRecord(nil, &got)
		back, err := decodeRecord(enc)
		if err != nil {
			t.Fatalf("re-encoding of %+v does not decode: %v", got, err)
		}
		if !reflect.DeepEqual(back, got) {
			t.Fatalf("re-encoding changed the record:\n%+v\n%+v", got, back)
		}
		rr := newReader(enc, 0)
		if rr.skipRecord(); rr.Err() != nil || rr.Off != len(enc) {
			t.Fatalf("re-encoding of %+v fails the log check: %v (%d of %d bytes)", got, rr.Err(), rr.Off, len(enc))
		}
		if !bytes.Equal(appendRecord(nil, &back), enc) {
			t.Fatalf("encoding of a decoded record is not stable")
		}
	})
}

// refusedUnchanged runs change, an Apply or Restore on f, and reports
// whether f refused it; a refusal must wrap ErrCorrupt and leave f as it
// was.
func refusedUnchanged(t *testing.T, f *Filter, what string, change func() error) bool {
	t.Helper()
	before := snapshotBytes(t, f)
	err := change()
	if err == nil {
		return false
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s error %v does not wrap ErrCorrupt", what, err)
	}
	if !bytes.Equal(before, snapshotBytes(t, f)) {
		t.Fatalf("%s refused (%v) but changed the filter", what, err)
	}
	return true
}

// FuzzFilterApply applies one arbitrary log entry to a filter that holds
// records. Apply never panics; a refused entry returns ErrCorrupt and
// leaves the filter as it was; an accepted one holds every command id it
// carried (the first outcome of an id wins), and the filter still
// snapshots and restores to the same state.
func FuzzFilterApply(f *testing.F) {
	recs := fuzzRecords()
	f.Add(entry(t0.Add(30*time.Second), time.Minute, 6, recs...).Data)
	f.Add(entry(t0.Add(time.Hour), time.Minute, 6, rec("d")).Data) // expires everything
	f.Add(entry(t0, time.Minute, 6).Data)                          // a tick
	f.Add(entry(t0.Add(-time.Hour), time.Hour, 1000, rec("a"), rec("e")).Data)
	f.Add(wire.AppendString([]byte{kindGroup}, "g2"))
	f.Add([]byte{kindGroup})
	f.Add([]byte{})
	f.Add([]byte{9})
	good := entry(t0, time.Minute, 6, rec("x"), rec("y")).Data
	f.Add(good[:len(good)-3])
	f.Fuzz(func(t *testing.T, data []byte) {
		fl := fuzzFilter(t)
		if refusedUnchanged(t, fl, "Apply", func() error { return applyErr(fl, data) }) {
			return
		}
		if data[0] == kindRecords {
			_, bounds, perr := parseBatch(data[1:])
			if perr != nil {
				t.Fatalf("Apply accepted a batch parseBatch refuses: %v", perr)
			}
			for _, bd := range bounds {
				id := string(recordID(data[1+bd[0] : 1+bd[1]]))
				if _, ok := fl.Lookup(id); !ok {
					t.Fatalf("command id %q of an applied batch is not held", id)
				}
			}
		}
		roundTripSnapshot(t, fl)
	})
}

// FuzzFilterRestore restores arbitrary bytes as a snapshot. Restore never
// panics; a refused snapshot returns ErrCorrupt and leaves the filter as
// it was; an accepted one snapshots and restores to the same state, and
// the filter goes on applying batches (whose ids it then holds). With
// withSum the target appends the right checksum to body, so that the
// fuzzer's changes reach the decoder instead of all failing the checksum.
func FuzzFilterRestore(f *testing.F) {
	fl := fuzzFilter(f)
	mustApply(f, fl, entry(t0.Add(30*time.Second), time.Minute, 6, fuzzRecords()...))
	snap := snapshotBytes(f, fl)
	body := snap[:len(snap)-4]
	f.Add(body, true)
	f.Add(snap, false)
	f.Add(snap[:len(snap)-1], false)
	empty := snapshotBytes(f, NewFilter())
	f.Add(empty[:len(empty)-4], true)
	f.Add(body[:len(body)-1], true)
	f.Add(body[:len(body)/2], true)
	f.Add([]byte("CIF1"), true)
	f.Add([]byte("CIF1"), false)
	flipped := bytes.Clone(body)
	flipped[len(flipped)-1] ^= 0xff
	f.Add(flipped, true)
	f.Fuzz(func(t *testing.T, body []byte, withSum bool) {
		data := body
		if withSum {
			data = binary.BigEndian.AppendUint32(bytes.Clone(body), crc32.Checksum(body, castagnoli))
		}
		fl := fuzzFilter(t)
		if refusedUnchanged(t, fl, "Restore", func() error { return fl.Restore(io.NopCloser(bytes.NewReader(data))) }) {
			return
		}
		roundTripSnapshot(t, fl)
		// The restored filter goes on: a batch applied now holds its ids.
		if err := applyErr(fl, entry(t0.Add(time.Second), time.Minute, 6, rec("new-1"), rec("new-2")).Data); err != nil {
			t.Fatalf("a valid batch after the restore: %v", err)
		}
		for _, id := range []string{"new-1", "new-2"} {
			if _, ok := fl.Lookup(id); !ok {
				t.Fatalf("%q applied after a restore is not held", id)
			}
		}
		roundTripSnapshot(t, fl)
	})
}

// FuzzParseForwarded: a forwarded proposal that parses becomes, under any
// batch header the leader builds, an entry Apply accepts and whose ids the
// filter then holds; one that does not parse returns ErrCorrupt.
func FuzzParseForwarded(f *testing.F) {
	var body []byte
	recs := fuzzRecords()
	for i := range recs {
		body = appendRecord(body, &recs[i])
	}
	fwd := appendForwarded(nil, len(recs), body)
	f.Add(fwd)
	f.Add(fwd[:len(fwd)-1])
	f.Add(appendForwarded(nil, 0, nil))
	f.Add(appendForwarded(nil, 5, body))
	f.Add([]byte{})
	f.Add([]byte{2, 1})
	f.Fuzz(func(t *testing.T, payload []byte) {
		recs, n, err := parseForwarded(payload)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("parseForwarded error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, n2, err := parseForwarded(appendForwarded(nil, n, recs))
		if err != nil || n2 != n || !bytes.Equal(again, recs) {
			t.Fatalf("re-encoded proposal parses to %d records (%v), want %d", n2, err, n)
		}
		data := appendBatchHeader(nil, batchHeader{at: t0.UnixNano(), window: int64(time.Minute), buckets: 6, count: n})
		data = append(data, recs...)
		fl := NewFilter()
		if err := applyErr(fl, data); err != nil {
			t.Fatalf("the batch of an accepted forwarded proposal does not apply: %v", err)
		}
		_, bounds, _ := parseBatch(data[1:])
		for _, bd := range bounds {
			id := string(recordID(data[1+bd[0] : 1+bd[1]]))
			if _, ok := fl.Lookup(id); !ok {
				t.Fatalf("command id %q of a forwarded proposal is not held", id)
			}
		}
	})
}
