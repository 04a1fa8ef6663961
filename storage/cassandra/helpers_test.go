package cassandra

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gocql/gocql"

	"github.com/concursus-go/concursus/internal/testsupport"
	"github.com/concursus-go/concursus/model"
)

// testKeyspace is a fresh keyspace for one top-level test, dropped when the
// test ends. Each store it opens gets tables of its own (a fresh prefix),
// so stores are empty and independent.
type testKeyspace struct {
	addr string
	name string
	n    atomic.Int64
}

// newKeyspace reserves a fresh keyspace for t (created by the first store
// opened in it) and drops it at cleanup.
func newKeyspace(t testing.TB) *testKeyspace {
	t.Helper()
	addr := testsupport.CassandraAddr(t, "the Cassandra suites")
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	k := &testKeyspace{addr: addr, name: "test_" + hex.EncodeToString(b[:])}
	t.Logf("keyspace %s on %s", k.name, addr)
	t.Cleanup(func() {
		// Dropping a keyspace is schema work, slow on a loaded machine:
		// tried again, and a keyspace left behind in a test Cassandra is
		// reported, not a failure of the test that used it.
		var err error
		for range 3 {
			if err = k.drop(); err == nil {
				return
			}
		}
		t.Logf("keyspace %s left behind: drop failed 3 times: %v", k.name, err)
	})
	return k
}

// config returns the configuration of a new store in the keyspace.
func (k *testKeyspace) config() Config {
	cfg := DefaultConfig()
	cfg.Hosts = []string{k.addr}
	cfg.Keyspace = k.name
	cfg.TablePrefix = fmt.Sprintf("s%d_", k.n.Add(1))
	return cfg
}

// open opens a store with fresh tables; tune, if not nil, adjusts its
// configuration. The store is closed at cleanup.
func (k *testKeyspace) open(t testing.TB, tune func(*Config)) *Store {
	t.Helper()
	cfg := k.config()
	if tune != nil {
		tune(&cfg)
	}
	return k.openConfig(t, cfg)
}

// openConfig opens a store with cfg, closed at cleanup.
func (k *testKeyspace) openConfig(t testing.TB, cfg Config) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open(keyspace %s, prefix %s): %v", cfg.Keyspace, cfg.TablePrefix, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// openSized opens a store with buckets of size events on fresh tables in a
// fresh keyspace. another opens one more store on the same tables (another
// node, with a position cache of its own). All are closed at cleanup.
func openSized(t testing.TB, size int) (s *Store, another func() *Store) {
	t.Helper()
	ks := newKeyspace(t)
	cfg := ks.config()
	cfg.BucketSize = size
	another = func() *Store {
		t.Helper()
		return ks.openConfig(t, cfg)
	}
	return another(), another
}

// drop drops the keyspace with a session of its own (the stores may be
// closed already).
func (k *testKeyspace) drop() error {
	c := gocql.NewCluster(k.addr)
	c.ProtoVersion = 4
	c.Timeout = 30 * time.Second
	c.Logger = driverLogger{discardLogger()}
	s, err := c.CreateSession()
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Query("DROP KEYSPACE IF EXISTS " + k.name).Exec()
}

// bucketRow is one row of the bucket index with what the events table
// holds for that bucket.
type bucketRow struct {
	bucket      int32
	first       int64
	head        *int64 // nil: no events
	count       int
	lowest, top int64 // lowest and highest sequence stored
}

// bucketIndex reads the bucket index of ref and the events of each bucket,
// bypassing the store's logic.
func bucketIndex(t testing.TB, s *Store, ref model.Ref) []bucketRow {
	t.Helper()
	iter := s.session.Query("SELECT bucket, first_sequence FROM "+s.q.buckets+
		" WHERE aggregate_type = ? AND aggregate_id = ?", ref.Type, ref.ID).Iter()
	var (
		rows   []bucketRow
		bucket int32
		first  int64
	)
	for iter.Scan(&bucket, &first) {
		rows = append(rows, bucketRow{bucket: bucket, first: first})
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("read bucket index of %s: %v", ref, err)
	}
	for i := range rows {
		r := &rows[i]
		it := s.session.Query("SELECT head, sequence FROM "+s.q.events+
			" WHERE aggregate_type = ? AND aggregate_id = ? AND bucket = ?", ref.Type, ref.ID, r.bucket).Iter()
		var (
			head *int64
			seq  *int64
		)
		for it.Scan(&head, &seq) {
			r.head = head
			if seq == nil {
				continue
			}
			if r.count == 0 {
				r.lowest = *seq
			}
			r.top = *seq
			r.count++
		}
		if err := it.Close(); err != nil {
			t.Fatalf("read bucket %d of %s: %v", r.bucket, ref, err)
		}
	}
	return rows
}

// checkBuckets checks the bucket layout of a history of last events: dense
// bucket numbers, each bucket holding exactly the sequences from its first
// to the next bucket's first minus one with its head on the last of them,
// THE RULE (a bucket is only followed once it holds at least size events),
// and no bucket exceeding size by maxAppend or more. It returns the rows.
func checkBuckets(t testing.TB, s *Store, ref model.Ref, last int64, size, maxAppend int) []bucketRow {
	t.Helper()
	rows := bucketIndex(t, s, ref)
	if len(rows) == 0 {
		if last != 0 {
			t.Fatalf("%s: no bucket index for a history of %d events", ref, last)
		}
		return rows
	}
	next := int64(1)
	for i, r := range rows {
		if r.bucket != int32(i) {
			t.Fatalf("%s: bucket index has bucket %d at position %d", ref, r.bucket, i)
		}
		if r.first != next {
			t.Errorf("%s: bucket %d starts at %d, want %d", ref, r.bucket, r.first, next)
		}
		if r.count == 0 {
			if i != len(rows)-1 {
				t.Errorf("%s: bucket %d is empty but not the newest", ref, r.bucket)
			}
			if r.head != nil {
				t.Errorf("%s: empty bucket %d has head %d", ref, r.bucket, *r.head)
			}
			continue
		}
		if r.lowest != r.first || r.top-r.lowest+1 != int64(r.count) {
			t.Errorf("%s: bucket %d (first %d) holds %d events %d..%d", ref, r.bucket, r.first, r.count, r.lowest, r.top)
		}
		if r.head == nil || *r.head != r.top {
			t.Errorf("%s: bucket %d holds events up to %d but its head is %v", ref, r.bucket, r.top, r.head)
		}
		if i < len(rows)-1 && rows[i+1].count > 0 && r.count < size {
			t.Errorf("%s: bucket %d holds %d events (< bucket size %d) but bucket %d follows", ref, r.bucket, r.count, size, r.bucket+1)
		}
		if r.count >= size+maxAppend {
			t.Errorf("%s: bucket %d holds %d events, more than bucket size %d + an append of %d - 1", ref, r.bucket, r.count, size, maxAppend)
		}
		next = r.top + 1
	}
	if next-1 != last {
		t.Errorf("%s: buckets hold events up to %d, want %d", ref, next-1, last)
	}
	return rows
}

// discardLogger drops the driver's log lines.
func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
