package bolt

import (
	"errors"
	"fmt"
	"sync/atomic"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
)

// Storage format of the file, kept in the meta bucket. A file written in
// another format is refused rather than misread. Format 2 added the
// events_by_time index: Open upgrades a file of format 1 by building it
// (buildTimeIndex), and a build of format 1 refuses a file of format 2, so
// it cannot append events the index would miss.
const (
	formatVersion = 2
	// formatNoTimeIndex is the format of files written before the
	// events_by_time index existed, or whose index build did not finish.
	formatNoTimeIndex = 1
)

var (
	bucketMeta         = []byte("meta")
	bucketEvents       = []byte("events")
	bucketEventsByTime = []byte("events_by_time")
	// bucketTimeThrough maps an aggregate (its key prefix) to the sequence
	// through which its events_by_time entries are complete; an aggregate
	// without an entry is not indexed yet (see EventLog.ReadTimePage).
	bucketTimeThrough = []byte("events_by_time_through")
	bucketCommands    = []byte("commands")
	bucketCmdTime     = []byte("commands_by_time")
	keyFormat         = []byte("format")
)

var (
	// ErrInUse is returned by Open when another process (or another DB in
	// this process) holds the file and did not release it within
	// Options.Timeout. Retrying is safe once the other holder has exited.
	ErrInUse = errors.New("bolt: data file in use by another process")
	// ErrCorrupt is wrapped (together with eventlog.ErrUnavailable or
	// commandlog.ErrUnavailable) in the errors of reads that found a stored
	// key or value they cannot decode. Retrying will not help.
	ErrCorrupt = errors.New("bolt: corrupt data")
	// ErrFormat is returned by Open for a file written in a storage format
	// this build does not read.
	ErrFormat = errors.New("bolt: unsupported storage format")
)

// DB is one open bbolt file holding an event log and a command log. It is
// also the event log's eventlog.Outbox (outbox.go). Its methods are safe
// for concurrent use.
type DB struct {
	path     string
	bdb      *bbolt.DB
	closed   atomic.Bool
	events   *EventLog
	commands *CommandLog
	// own is the view of the DB's own calls (the outbox, WriteDecisions):
	// never closed on its own, it is closed with the DB.
	own view
	// outbox holds the marks waiting for the next write transaction
	// (outbox.go).
	outbox *outboxBuffer
}

// Open opens or creates the file at path. Its directory must exist. The
// file is locked while it is open; if another process holds it, Open waits
// up to opts.Timeout and then fails with an error wrapping ErrInUse.
func Open(path string, opts Options) (*DB, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	bdb, err := bbolt.Open(path, opts.FileMode, &bbolt.Options{
		Timeout:         opts.Timeout,
		NoSync:          opts.NoSync,
		InitialMmapSize: opts.InitialMmapSize,
		FreelistType:    bbolt.FreelistMapType,
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s still locked after %s", ErrInUse, path, opts.Timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
	var buildIndex bool
	err = bdb.Update(func(tx *bbolt.Tx) error {
		var err error
		buildIndex, err = initBuckets(tx)
		return err
	})
	if err == nil && buildIndex {
		err = buildTimeIndex(bdb, timeIndexBatch)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("bolt: open %s: %w", path, err), bdb.Close())
	}
	db := &DB{path: path, bdb: bdb, outbox: newOutboxBuffer()}
	db.events = &EventLog{newView(db, eventlog.ErrClosed, eventlog.ErrUnavailable)}
	db.commands = &CommandLog{newView(db, commandlog.ErrClosed, commandlog.ErrUnavailable)}
	db.own = newView(db, eventlog.ErrClosed, eventlog.ErrUnavailable)
	return db, nil
}

// initBuckets creates the buckets of a new file and checks the format of an
// existing one. buildIndex is true for a file of format 1, whose
// events_by_time index Open must build before anything reads or appends.
func initBuckets(tx *bbolt.Tx) (buildIndex bool, err error) {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return false, err
	}
	switch v := meta.Get(keyFormat); {
	case v == nil:
		// A new file: every append writes the index from the start.
		if err := meta.Put(keyFormat, []byte{formatVersion}); err != nil {
			return false, err
		}
	case len(v) == 1 && v[0] == formatNoTimeIndex:
		buildIndex = true
	case len(v) != 1 || v[0] != formatVersion:
		return false, fmt.Errorf("%w: file format %x, this build reads %d (and upgrades %d)", ErrFormat, v, formatVersion, formatNoTimeIndex)
	}
	for _, name := range [][]byte{bucketEvents, bucketEventsByTime, bucketTimeThrough, bucketCommands, bucketCmdTime, bucketOutbox, bucketOutboxWriters} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return false, fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return buildIndex, nil
}

// Path returns the path the DB was opened with.
func (db *DB) Path() string { return db.path }

// EventLog returns the event log stored in the file. Every call returns the
// same view; once that view is closed it stays closed.
func (db *DB) EventLog() *EventLog { return db.events }

// CommandLog returns the command log stored in the file. Every call returns
// the same view; once that view is closed it stays closed.
func (db *DB) CommandLog() *CommandLog { return db.commands }

// Close waits for running transactions to finish and closes the file. Calls
// on its logs then return ErrClosed. Closing a closed DB returns nil.
func (db *DB) Close() error {
	if !db.closed.CompareAndSwap(false, true) {
		return nil
	}
	if err := db.bdb.Close(); err != nil {
		return fmt.Errorf("bolt: close %s: %w", db.path, err)
	}
	return nil
}

// isClosed reports whether a bbolt error means the file was closed under a
// call.
func isClosed(err error) bool { return errors.Is(err, berrors.ErrDatabaseNotOpen) }

// writeTxError maps the failure of an event-writing transaction: ErrClosed
// when the file was closed under it, ErrUnavailable (outcome: nothing
// committed) otherwise.
func writeTxError(err error) error {
	if isClosed(err) {
		return eventlog.ErrClosed
	}
	return fmt.Errorf("%w: %w", eventlog.ErrUnavailable, err)
}
