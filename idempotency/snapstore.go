package idempotency

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// snapshotStore keeps the latest raft snapshot in memory, like
// raft.InmemSnapshotStore, but without copying the filter: when the
// filter persists a snapshot into one of its sinks, the sink keeps the
// snapshot itself (slice headers over the filter's immutable chunks) and
// Open encodes it on demand. The filter's memory is then shared between
// the live state and the snapshot instead of held twice; what a snapshot
// keeps alive on its own is only the buckets that expired since it was
// taken. Snapshots received from a leader (InstallSnapshot) arrive as
// bytes and are kept as bytes until the next local snapshot.
//
// Safe for concurrent use.
type snapshotStore struct {
	mu     sync.Mutex
	latest *snapshotSink // nil until the first sink is closed
}

var _ raft.SnapshotStore = (*snapshotStore)(nil)

type snapshotSink struct {
	store *snapshotStore
	meta  raft.SnapshotMeta
	buf   bytes.Buffer
	snap  *filterSnapshot // set by filterSnapshot.Persist instead of writing bytes
}

// Create starts a snapshot; it becomes the latest when its sink is closed.
func (s *snapshotStore) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, _ raft.Transport) (raft.SnapshotSink, error) {
	if version != 1 {
		return nil, fmt.Errorf("idempotency: unsupported snapshot version %d", version)
	}
	return &snapshotSink{store: s, meta: raft.SnapshotMeta{
		Version: version, ID: fmt.Sprintf("%d-%d-%d", term, index, time.Now().UnixMilli()),
		Index: index, Term: term, Configuration: configuration, ConfigurationIndex: configurationIndex,
	}}, nil
}

// List returns the latest snapshot, if any.
func (s *snapshotStore) List() ([]*raft.SnapshotMeta, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.latest == nil {
		return nil, nil
	}
	meta := s.latest.meta
	return []*raft.SnapshotMeta{&meta}, nil
}

// Open returns a reader of the latest snapshot's encoding.
func (s *snapshotStore) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	s.mu.Lock()
	latest := s.latest
	s.mu.Unlock()
	if latest == nil || latest.meta.ID != id {
		return nil, nil, fmt.Errorf("idempotency: no snapshot %q", id)
	}
	meta := latest.meta
	if latest.snap != nil {
		return &meta, io.NopCloser(latest.snap.reader()), nil
	}
	return &meta, io.NopCloser(bytes.NewReader(latest.buf.Bytes())), nil
}

// Write implements raft.SnapshotSink.
func (k *snapshotSink) Write(p []byte) (int, error) {
	n, err := k.buf.Write(p)
	k.meta.Size += int64(n)
	return n, err
}

// keep takes the snapshot by reference instead of its bytes.
func (k *snapshotSink) keep(s *filterSnapshot) {
	k.snap = s
	k.meta.Size = s.size()
}

// Close makes the snapshot the latest.
func (k *snapshotSink) Close() error {
	k.store.mu.Lock()
	k.store.latest = k
	k.store.mu.Unlock()
	return nil
}

// ID implements raft.SnapshotSink.
func (k *snapshotSink) ID() string { return k.meta.ID }

// Cancel drops the snapshot; the previous one stays the latest.
func (k *snapshotSink) Cancel() error { return nil }
