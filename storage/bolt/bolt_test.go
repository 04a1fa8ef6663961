package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/commandlog/commandlogtest"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/eventlog/eventlogtest"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/storage/bolt"
)

// openDB opens a new DB in a temporary directory, closed when t ends.
func openDB(t testing.TB) *bolt.DB {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "concursus.db"), bolt.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("DB.Close: %v", err)
		}
	})
	return db
}

func TestEventLog(t *testing.T) {
	eventlogtest.Run(t, func(t *testing.T) eventlog.Log { return openDB(t).EventLog() },
		eventlogtest.WithLargeHistory(20000))
}

func TestCommandLog(t *testing.T) {
	commandlogtest.Run(t, func(t *testing.T) commandlog.Log { return openDB(t).CommandLog() })
}

// event builds event seq of ref with millisecond times.
func event(ref model.Ref, seq uint64) model.Event {
	at := time.Date(2025, 1, 2, 3, 4, 5, 6_000_000, time.UTC).Add(time.Duration(seq) * time.Second)
	return model.Event{
		AggregateType: ref.Type, AggregateID: ref.ID, Sequence: seq,
		Timestamp: at, StreamID: model.DefaultStream, ProcessingID: "node-1", ProcessingTime: at,
		Name: "ticked", Payload: []byte(`{"n":1}`), CommandID: "c", EventID: fmt.Sprintf("%s#%d", ref, seq),
	}
}

func TestReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "concursus.db")
	ref := model.Ref{Type: "clock", ID: "c-1"}
	rec := commandlog.Record{CommandID: "cmd-1", Ref: ref, Command: "tick", Outcome: commandlog.Accepted,
		FirstSequence: 1, LastSequence: 2, At: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}

	db, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, err := range db.EventLog().Append(ctx, []eventlog.Append{{Ref: ref, Events: []model.Event{event(ref, 1), event(ref, 2)}}}) {
		if err != nil {
			t.Fatalf("Append entry %d: %v", i, err)
		}
	}
	if err := db.CommandLog().Put(ctx, []commandlog.Record{rec}); err != nil {
		t.Fatal(err)
	}
	// Closing the views leaves the file open for the other view.
	if err := db.EventLog().Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CommandLog().Get(ctx, "cmd-1"); err != nil {
		t.Fatalf("Get after closing the event log view: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CommandLog().Get(ctx, "cmd-1"); !errors.Is(err, commandlog.ErrClosed) {
		t.Fatalf("Get after DB.Close: %v, want ErrClosed", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second DB.Close: %v", err)
	}

	db, err = bolt.Open(path, bolt.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n, err := db.EventLog().LastSequence(ctx, ref); err != nil || n != 2 {
		t.Fatalf("LastSequence after reopen = %d, %v; want 2", n, err)
	}
	page, _, err := db.EventLog().ReadPage(ctx, ref, 1, 10)
	if err != nil || len(page) != 2 || page[1].EventID != event(ref, 2).EventID || !page[1].Timestamp.Equal(event(ref, 2).Timestamp) {
		t.Fatalf("ReadPage after reopen = %+v, %v", page, err)
	}
	got, err := db.CommandLog().Get(ctx, "cmd-1")
	if err != nil || got.Command != "tick" || !got.At.Equal(rec.At) || got.LastSequence != 2 {
		t.Fatalf("Get after reopen = %+v, %v", got, err)
	}
	// The fence still holds across a restart.
	errs := db.EventLog().Append(ctx, []eventlog.Append{{Ref: ref, Expected: 1, Events: []model.Event{event(ref, 2)}}})
	if !errors.Is(errs[0], eventlog.ErrConflict) {
		t.Fatalf("stale append after reopen: %v, want ErrConflict", errs[0])
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "concursus.db")
	db, err := bolt.Open(path, bolt.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = bolt.Open(path, bolt.Options{Timeout: 100 * time.Millisecond})
	if !errors.Is(err, bolt.ErrInUse) {
		t.Fatalf("second Open of a locked file: %v, want ErrInUse", err)
	}
	t.Logf("second Open: %v", err)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2, err := bolt.Open(path, bolt.Options{Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("Open after the holder closed: %v", err)
	}
	if err := db2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := bolt.DefaultOptions().Validate(); err != nil {
		t.Fatalf("DefaultOptions: %v", err)
	}
	for _, o := range []bolt.Options{
		{Timeout: -time.Second},
		{InitialMmapSize: -1},
		{FileMode: 0o600 | 1<<31},
	} {
		if err := o.Validate(); err == nil {
			t.Errorf("%+v: Validate returned nil", o)
		}
		if _, err := bolt.Open(filepath.Join(t.TempDir(), "x.db"), o); err == nil {
			t.Errorf("%+v: Open returned no error", o)
		}
	}
}

func TestCloseWhileBusy(t *testing.T) {
	// Calls racing with DB.Close either succeed or return ErrClosed.
	db, err := bolt.Open(filepath.Join(t.TempDir(), "concursus.db"), bolt.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	done := make(chan error)
	started := make(chan struct{})
	go func() {
		l := db.EventLog()
		ref := model.Ref{Type: "clock", ID: "busy"}
		for seq := uint64(1); ; seq++ {
			if seq == 10 {
				close(started)
			}
			errs := l.Append(ctx, []eventlog.Append{{Ref: ref, Expected: seq - 1, Events: []model.Event{event(ref, seq)}}})
			if errs[0] != nil {
				if errors.Is(errs[0], eventlog.ErrClosed) {
					errs[0] = nil
				}
				done <- errs[0]
				return
			}
			if _, err := l.LastSequence(ctx, ref); err != nil {
				if errors.Is(err, eventlog.ErrClosed) {
					err = nil
				}
				done <- err
				return
			}
		}
	}()
	select { // close while appends are running
	case <-started:
	case err := <-done:
		t.Fatalf("appender stopped before Close: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("call racing with Close: %v, want nil or ErrClosed", err)
	}
}
