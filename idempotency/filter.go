package idempotency

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/hashicorp/raft"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/internal/wire"
)

// Filter is the replicated state machine: the decided commands of the
// last window, by command id, in time buckets. It implements raft.FSM.
//
// Time comes only from the log: every batch of records carries the
// proposing leader's clock, the window and the bucket count, and the
// filter's "now" is the largest batch time it has applied. Two replicas
// that applied the same entries hold the same entries, whatever their
// clocks say.
//
// Apply, Snapshot and Restore are called by raft from one goroutine.
// Lookup and Stats are safe for concurrent use with them and with each
// other. A Filter can also be driven without raft (tests, a single node):
// hand Apply a *raft.Log of type LogCommand.
type Filter struct {
	// mask narrows the 64-bit hash of a command id (all ones; tests narrow
	// it to force collisions).
	mask uint64
	// onGroup, when set, is called (outside the lock) when the group id
	// becomes known.
	onGroup func(string)
	// onJump, when set, is called when a batch moves the filter's time
	// further ahead in one step than idle ticks allow while it holds
	// records (see jumpLimit): from and to are the times. It is called
	// with the lock held, before the batch's expiry and records are seen
	// by any Lookup, and must not call back into the filter.
	onJump func(from, to time.Time)
	// onAdvance, when set, is called after every batch with the filter's
	// time and whether the filter held records when the batch came, and
	// after a restore with restored set: the Group compares how far the
	// time moved with how long the batch took to come (Group.onAdvance).
	// Called with the lock held, like onJump.
	onAdvance func(now int64, holding, restored bool)

	// applied is closed and replaced after every applied batch or
	// restore: a broadcast for waiters (see appliedC).
	appliedMu sync.Mutex
	applied   chan struct{}

	// mu guards the state below. Lookups take it shared; Apply and Restore
	// exclusively, and only for memory operations.
	mu      sync.RWMutex
	now     int64 // Unix ns: the largest batch time applied
	window  int64 // ns, from the latest batch
	nb      int   // buckets per window, from the latest batch
	groupID string
	buckets []*bucket // oldest first, non-overlapping, ordered by time
	entries int
	size    int64 // encoded record bytes held
	jumps   int   // batches that made the time jump (jumpLimit)
}

// A bucket holds the records applied while the filter's now was in
// [start, end): their encodings, back to back in append-only chunks, and
// an index from the 64-bit hash of the command id to the record's
// location (chunk<<32 | offset). A command id whose hash is already taken
// in the bucket by another id goes to spill. Chunks are never written
// below their length, which is what lets a snapshot read them without the
// lock while Apply appends.
//
// Memory per entry: the encoded record (~105 bytes for UUID ids), plus a
// map slot (16 bytes key and value, ~26 bytes at the map's average load),
// with no pointers for the garbage collector to scan.
type bucket struct {
	start, end int64
	index      map[uint64]uint64
	spill      map[string]uint64
	chunks     [][]byte
	n          int
	size       int64
}

const (
	firstChunk = 4 << 10
	maxChunk   = 64 << 10
)

// maxChunkSpan bounds a chunk restored from a snapshot: locations hold a
// 32-bit offset. A variable so that tests can make it small.
var maxChunkSpan = 1<<32 - 1

// NewFilter returns an empty filter.
func NewFilter() *Filter {
	return &Filter{mask: ^uint64(0), applied: make(chan struct{})}
}

// appliedC returns a channel closed after the next batch or restore is
// applied.
func (f *Filter) appliedC() <-chan struct{} {
	f.appliedMu.Lock()
	defer f.appliedMu.Unlock()
	return f.applied
}

func (f *Filter) notifyApplied() {
	f.appliedMu.Lock()
	close(f.applied)
	f.applied = make(chan struct{})
	f.appliedMu.Unlock()
}

// has reports whether a command id is held, without decoding its record.
func (f *Filter) has(commandID string) bool {
	h := xxhash.Sum64String(commandID) & f.mask
	f.mu.RLock()
	defer f.mu.RUnlock()
	for i := len(f.buckets) - 1; i >= 0; i-- {
		if _, ok := f.buckets[i].lookup(h, commandID); ok {
			return true
		}
	}
	return false
}

var _ raft.FSM = (*Filter)(nil)

// Lookup returns the record of a command id held by this replica: decided
// within the window (and possibly up to one bucket width longer), as far
// as this replica has applied the log.
func (f *Filter) Lookup(commandID string) (commandlog.Record, bool) {
	h := xxhash.Sum64String(commandID) & f.mask
	f.mu.RLock()
	defer f.mu.RUnlock()
	for i := len(f.buckets) - 1; i >= 0; i-- {
		if rec, ok := f.buckets[i].lookup(h, commandID); ok {
			r, err := decodeRecord(rec)
			return r, err == nil // records were checked when applied
		}
	}
	return commandlog.Record{}, false
}

func (b *bucket) lookup(h uint64, id string) ([]byte, bool) {
	loc, ok := b.index[h]
	if !ok {
		return nil, false
	}
	if rec := b.at(loc); string(recordID(rec)) == id {
		return rec, true
	}
	if loc, ok := b.spill[id]; ok {
		return b.at(loc), true
	}
	return nil, false
}

func (b *bucket) contains(h uint64, id []byte) bool {
	loc, ok := b.index[h]
	if !ok {
		return false
	}
	if bytes.Equal(recordID(b.at(loc)), id) {
		return true
	}
	_, ok = b.spill[string(id)]
	return ok
}

// at returns the bytes from a record's start to the end of its chunk.
func (b *bucket) at(loc uint64) []byte {
	return b.chunks[loc>>32][uint32(loc):]
}

// add appends a record (already checked) and indexes it.
func (b *bucket) add(h uint64, id, rec []byte) {
	last := len(b.chunks) - 1
	if last < 0 || cap(b.chunks[last])-len(b.chunks[last]) < len(rec) {
		size := firstChunk
		if last >= 0 {
			size = min(2*cap(b.chunks[last]), maxChunk)
		}
		b.chunks = append(b.chunks, make([]byte, 0, max(size, len(rec))))
		last++
	}
	loc := uint64(last)<<32 | uint64(len(b.chunks[last]))
	b.chunks[last] = append(b.chunks[last], rec...)
	b.indexRecord(h, id, loc)
	b.size += int64(len(rec))
}

func (b *bucket) indexRecord(h uint64, id []byte, loc uint64) {
	if _, taken := b.index[h]; taken {
		if b.spill == nil {
			b.spill = make(map[string]uint64)
		}
		b.spill[string(id)] = loc
	} else {
		b.index[h] = loc
	}
	b.n++
}

// Apply applies one committed log entry: a batch of records (the batch
// time may advance the filter's now and expire buckets; a record whose
// command id is already held is dropped — the first outcome stays), or
// the group id. It returns nil, or an error wrapping ErrCorrupt for an
// entry that does not decode, which then changes nothing.
func (f *Filter) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	if len(l.Data) == 0 {
		return fmt.Errorf("%w: empty entry at index %d", ErrCorrupt, l.Index)
	}
	switch l.Data[0] {
	case kindRecords:
		err := f.applyRecords(l.Data[1:])
		if err == nil {
			f.notifyApplied()
			return nil
		}
		return err
	case kindGroup:
		r := newReader(l.Data, 1)
		id := r.Bytes("group id")
		if r.Err() != nil || len(id) == 0 {
			return fmt.Errorf("%w: group entry at index %d", ErrCorrupt, l.Index)
		}
		f.setGroup(string(id))
		return nil
	}
	return fmt.Errorf("%w: unknown entry kind %d at index %d", ErrCorrupt, l.Data[0], l.Index)
}

func (f *Filter) setGroup(id string) {
	f.mu.Lock()
	set := f.groupID == ""
	if set {
		f.groupID = id
	}
	f.mu.Unlock()
	if set && f.onGroup != nil {
		f.onGroup(id)
	}
}

// jumpLimit is how far one batch may move the filter's time while it holds
// records without that counting as a jump: two bucket widths, plus a
// quarter of the window up to 10 s for an election and the membership
// loop's tick. The leader proposes an idle tick every bucket width while
// the filter holds records, so its time moves in steps of a bucket width
// at most, unless the batch times come from a clock that jumped or from a
// new leader whose clock is ahead of the last one's. It depends on the
// batch header only: every replica finds the same jumps.
func jumpLimit(window int64, buckets int) int64 {
	return 2*window/int64(max(buckets, 1)) + min(window/4, int64(10*time.Second))
}

func (f *Filter) applyRecords(data []byte) error {
	h, bounds, err := parseBatch(data)
	if err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	holding := f.entries > 0
	if f.now != 0 && holding && h.at-f.now > jumpLimit(h.window, h.buckets) {
		f.jumps++
		if f.onJump != nil {
			f.onJump(time.Unix(0, f.now).UTC(), time.Unix(0, h.at).UTC())
		}
	}
	f.now = max(f.now, h.at)
	if f.onAdvance != nil {
		f.onAdvance(f.now, holding, false)
	}
	f.window, f.nb = h.window, h.buckets
	f.expireLocked()
	if len(bounds) == 0 {
		return nil // a tick: time only
	}
	b := f.currentBucketLocked()
	for _, bd := range bounds {
		rec := data[bd[0]:bd[1]]
		id := recordID(rec)
		hash := xxhash.Sum64(id) & f.mask
		if f.containsLocked(hash, id) {
			continue
		}
		b.add(hash, id, rec)
		f.entries++
		f.size += int64(len(rec))
	}
	return nil
}

func (f *Filter) containsLocked(h uint64, id []byte) bool {
	for i := len(f.buckets) - 1; i >= 0; i-- {
		if f.buckets[i].contains(h, id) {
			return true
		}
	}
	return false
}

// expireLocked drops the buckets that ended a window or more before now.
// An entry therefore lives at least one window and at most one window
// plus one bucket width, in log time.
func (f *Filter) expireLocked() {
	cutoff := f.now - f.window
	drop := 0
	for drop < len(f.buckets) && f.buckets[drop].end <= cutoff {
		f.entries -= f.buckets[drop].n
		f.size -= f.buckets[drop].size
		f.buckets[drop] = nil
		drop++
	}
	if drop > 0 {
		f.buckets = f.buckets[drop:]
	}
}

// currentBucketLocked returns the bucket now falls in, opening one if
// needed: [floor(now/width)*width, +width), width = window/buckets.
func (f *Filter) currentBucketLocked() *bucket {
	var last *bucket
	if n := len(f.buckets); n > 0 {
		last = f.buckets[n-1]
		if f.now < last.end {
			return last
		}
	}
	width := f.window / int64(f.nb)
	floor := f.now - mod(f.now, width)
	b := &bucket{start: floor, end: floor + width, index: make(map[uint64]uint64)}
	if last != nil && b.start < last.end { // the width changed
		b.start = last.end
	}
	f.buckets = append(f.buckets, b)
	return b
}

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// FilterStats describes a filter's contents. It is declared in package
// api, whose admin replies carry it (IdempotencyStats.Filter).
type FilterStats = api.FilterStats

// Stats returns the filter's figures.
func (f *Filter) Stats() FilterStats {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := FilterStats{Entries: f.entries, Buckets: len(f.buckets), Bytes: f.size, Window: time.Duration(f.window), GroupID: f.groupID, TimeJumps: f.jumps}
	if f.now != 0 {
		s.Now = time.Unix(0, f.now).UTC()
	}
	return s
}

// GroupID returns the id of the raft group whose log this filter applied,
// "" until the group entry was applied.
func (f *Filter) GroupID() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.groupID
}

// Snapshot format (all integers varints as in codec.go):
//
//	"CIF1" | varint now | uvarint window | uvarint buckets | uvarint len | group id
//	uvarint bucket count
//	per bucket: varint start | varint end | uvarint records | uvarint bytes | records
//	uint32 CRC-32C of everything before, big-endian
//
// The records are the arena bytes as they are, so a snapshot is the size
// of the data (about 105 bytes per entry) and restoring it re-encodes
// nothing.
var snapshotMagic = []byte("CIF1")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot captures the filter's contents. It only copies slice headers:
// the chunks it refers to are never written below their captured length.
func (f *Filter) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	s := &filterSnapshot{now: f.now, window: f.window, nb: f.nb, groupID: f.groupID, buckets: make([]bucketSnapshot, len(f.buckets))}
	for i, b := range f.buckets {
		bs := bucketSnapshot{start: b.start, end: b.end, n: b.n, size: b.size, chunks: make([][]byte, len(b.chunks))}
		copy(bs.chunks, b.chunks)
		s.buckets[i] = bs
	}
	return s, nil
}

type filterSnapshot struct {
	now, window int64
	nb          int
	groupID     string
	buckets     []bucketSnapshot
}

type bucketSnapshot struct {
	start, end int64
	n          int
	size       int64
	chunks     [][]byte
}

// Persist writes the snapshot to the sink; a sink of the group's own
// snapshot store keeps the snapshot by reference instead.
func (s *filterSnapshot) Persist(sink raft.SnapshotSink) error {
	if k, ok := sink.(*snapshotSink); ok {
		k.keep(s)
		return sink.Close()
	}
	if _, err := s.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("idempotency: write snapshot: %w", err)
	}
	return sink.Close()
}

// Release does nothing: the snapshot holds no resources.
func (s *filterSnapshot) Release() {}

// segments returns the snapshot's bytes, without the trailing checksum,
// as a list of slices: small headers and the chunks themselves.
func (s *filterSnapshot) segments() [][]byte {
	var hdr []byte
	hdr = append(hdr, snapshotMagic...)
	hdr = binary.AppendVarint(hdr, s.now)
	hdr = binary.AppendUvarint(hdr, uint64(s.window))
	hdr = binary.AppendUvarint(hdr, uint64(s.nb))
	hdr = wire.AppendString(hdr, s.groupID)
	hdr = binary.AppendUvarint(hdr, uint64(len(s.buckets)))
	segs := [][]byte{hdr}
	for _, b := range s.buckets {
		var bh []byte
		bh = binary.AppendVarint(bh, b.start)
		bh = binary.AppendVarint(bh, b.end)
		bh = binary.AppendUvarint(bh, uint64(b.n))
		bh = binary.AppendUvarint(bh, uint64(b.size))
		segs = append(segs, bh)
		for _, c := range b.chunks {
			if len(c) > 0 {
				segs = append(segs, c)
			}
		}
	}
	return segs
}

// WriteTo writes the snapshot in the format above.
func (s *filterSnapshot) WriteTo(w io.Writer) (int64, error) {
	return io.Copy(w, s.reader())
}

// reader returns the snapshot's encoding as a reader that produces it on
// demand from the chunks, checksum last.
func (s *filterSnapshot) reader() *segmentReader {
	return &segmentReader{segs: s.segments(), crc: crc32.New(castagnoli)}
}

// size returns the length of the encoding.
func (s *filterSnapshot) size() int64 {
	n := int64(4)
	for _, seg := range s.segments() {
		n += int64(len(seg))
	}
	return n
}

// segmentReader reads a list of byte slices back to back, followed by the
// big-endian CRC-32C of all of them.
type segmentReader struct {
	segs    [][]byte
	i, off  int
	crc     hash.Hash32
	trailer []byte
	done    bool
}

func (r *segmentReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if r.i < len(r.segs) {
			c := copy(p[n:], r.segs[r.i][r.off:])
			_, _ = r.crc.Write(p[n : n+c])
			n += c
			r.off += c
			if r.off == len(r.segs[r.i]) {
				r.i++
				r.off = 0
			}
			continue
		}
		if !r.done {
			r.trailer = binary.BigEndian.AppendUint32(nil, r.crc.Sum32())
			r.done = true
		}
		if len(r.trailer) == 0 {
			if n == 0 {
				return 0, io.EOF
			}
			break
		}
		c := copy(p[n:], r.trailer)
		r.trailer = r.trailer[c:]
		n += c
	}
	return n, nil
}

// Restore replaces the filter's contents with a snapshot's. A snapshot
// that does not decode leaves the filter as it was and returns an error
// wrapping ErrCorrupt.
func (f *Filter) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("idempotency: read snapshot: %w", err)
	}
	if len(data) < len(snapshotMagic)+4 || !bytes.Equal(data[:len(snapshotMagic)], snapshotMagic) {
		return fmt.Errorf("%w: not a filter snapshot", ErrCorrupt)
	}
	body, sum := data[:len(data)-4], binary.BigEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return fmt.Errorf("%w: snapshot checksum mismatch", ErrCorrupt)
	}
	r := newReader(body, len(snapshotMagic))
	now := r.Varint("now")
	window := r.Uvarint("window")
	nb := r.Uvarint("bucket count")
	groupID := string(r.Bytes("group id"))
	n := r.Uvarint("buckets")
	if r.Err() != nil {
		return r.Err()
	}
	if n > uint64(len(body)) || nb > maxBuckets || window > 1<<62 {
		return fmt.Errorf("%w: snapshot header (window %d, %d buckets, %d held)", ErrCorrupt, window, nb, n)
	}
	next := &Filter{mask: f.mask, now: now, window: int64(window), nb: int(nb), groupID: groupID}
	for range n {
		b := &bucket{start: r.Varint("bucket start"), end: r.Varint("bucket end"), index: make(map[uint64]uint64)}
		count := r.Uvarint("bucket records")
		size := r.Uvarint("bucket bytes")
		if r.Err() != nil {
			return r.Err()
		}
		if size > uint64(len(body)-r.Off) || count > size {
			return fmt.Errorf("%w: bucket of %d records in %d bytes", ErrCorrupt, count, size)
		}
		// The bucket's chunks alias the snapshot buffer, cut below 4 GiB
		// each (a location holds a 32-bit offset) and with their capacity
		// cut to their length, so that appends never write into the next
		// bucket's bytes.
		data := body[r.Off : r.Off+int(size)]
		r.Off += int(size)
		cr := newReader(data, 0)
		base := 0
		var locs []uint64
		for cr.Off < len(data) {
			start := cr.Off
			cr.skipRecord()
			if cr.Err() != nil {
				return cr.Err()
			}
			if cr.Off-base > maxChunkSpan {
				b.chunks = append(b.chunks, data[base:start:start])
				base = start
			}
			locs = append(locs, uint64(len(b.chunks))<<32|uint64(start-base))
		}
		b.chunks = append(b.chunks, data[base:len(data):len(data)])
		for _, loc := range locs {
			id := recordID(b.at(loc))
			h := xxhash.Sum64(id) & next.mask
			if next.containsLocked(h, id) || b.contains(h, id) {
				return fmt.Errorf("%w: command id %q held twice", ErrCorrupt, id)
			}
			b.indexRecord(h, id, loc)
		}
		b.size = int64(size)
		if uint64(b.n) != count {
			return fmt.Errorf("%w: bucket claims %d records, holds %d", ErrCorrupt, count, b.n)
		}
		next.buckets = append(next.buckets, b)
		next.entries += b.n
		next.size += b.size
	}
	if r.Off != len(body) {
		return fmt.Errorf("%w: %d bytes after the last bucket", ErrCorrupt, len(body)-r.Off)
	}
	f.mu.Lock()
	hadGroup := f.groupID != ""
	f.now, f.window, f.nb, f.groupID = next.now, next.window, next.nb, next.groupID
	f.buckets, f.entries, f.size = next.buckets, next.entries, next.size
	if f.onAdvance != nil {
		f.onAdvance(f.now, false, true)
	}
	f.mu.Unlock()
	f.notifyApplied()
	if !hadGroup && groupID != "" && f.onGroup != nil {
		f.onGroup(groupID)
	}
	return nil
}
