package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/eventlog/eventlogtest"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/storage/bolt"
)

func TestOutbox(t *testing.T) {
	eventlogtest.RunOutbox(t, func(t *testing.T) (eventlog.Log, eventlog.Outbox) {
		db := openDB(t)
		return db.EventLog(), db
	})
}

// reopen closes db and opens its file again, closed when t ends.
func reopen(t *testing.T, db *bolt.DB) *bolt.DB {
	t.Helper()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(db.Path(), bolt.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func mustMark(t *testing.T, db *bolt.DB, writer string, bucket int64, marks ...eventlog.Mark) {
	t.Helper()
	if err := db.Mark(t.Context(), writer, bucket, marks); err != nil {
		t.Fatalf("Mark(%q, %d): %v", writer, bucket, err)
	}
}

func checkMarks(t *testing.T, db *bolt.DB, writer string, bucket int64, want ...eventlog.Mark) {
	t.Helper()
	got, err := db.Marks(t.Context(), writer, bucket)
	if err != nil {
		t.Fatalf("Marks(%q, %d): %v", writer, bucket, err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Marks(%q, %d) = %v, want %v", writer, bucket, got, want)
	}
}

func checkWriters(t *testing.T, db *bolt.DB, want ...eventlog.OutboxWriter) {
	t.Helper()
	got, err := db.Writers(t.Context())
	if err != nil {
		t.Fatalf("Writers: %v", err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("Writers = %+v, want %+v", got, want)
	}
}

func mustAppend(t *testing.T, l eventlog.Log, batch ...eventlog.Append) {
	t.Helper()
	for i, err := range l.Append(t.Context(), batch) {
		if err != nil {
			t.Fatalf("Append entry %d (%s): %v", i, batch[i].Ref, err)
		}
	}
}

// TestOutboxDurable checks the durability rule across a restart: marks
// followed by an Append or WriteDecisions on the DB are in the file with
// it; marks not followed by any write transaction are not (Mark commits
// nothing by itself); SetPublished and Forget are durable.
func TestOutboxDurable(t *testing.T) {
	const w = "node-1"
	const b0 int64 = 352_000_000
	db := openDB(t)
	a := model.Ref{Type: "clock", ID: "a"}
	c := model.Ref{Type: "clock", ID: "c"}
	ma := eventlog.Mark{Ref: a, First: 1, Last: 2}
	mc := eventlog.Mark{Ref: c, First: 1, Last: 1}

	// Mark, then Append.
	mustMark(t, db, w, b0, ma)
	mustAppend(t, db.EventLog(), eventlog.Append{Ref: a, Events: []model.Event{event(a, 1), event(a, 2)}})
	db = reopen(t, db)
	checkMarks(t, db, w, b0, ma)
	checkWriters(t, db, eventlog.OutboxWriter{Writer: w, Last: b0})

	// Mark, then WriteDecisions.
	mustMark(t, db, w, b0+1, mc)
	rec := commandlog.Record{CommandID: "cmd-c", Ref: c, Command: "tick", Outcome: commandlog.Accepted,
		FirstSequence: 1, LastSequence: 1, At: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)}
	for i, err := range db.WriteDecisions(t.Context(), []commandlog.Decision{{
		Append: &eventlog.Append{Ref: c, Events: []model.Event{event(c, 1)}}, Record: rec,
	}}) {
		if err != nil {
			t.Fatalf("WriteDecisions entry %d: %v", i, err)
		}
	}
	db = reopen(t, db)
	checkMarks(t, db, w, b0+1, mc)
	checkWriters(t, db, eventlog.OutboxWriter{Writer: w, Last: b0 + 1})

	// A mark whose append conflicts stays buffered (readable, not yet in
	// the file) and commits with the next append that writes.
	stale := eventlog.Mark{Ref: a, First: 2, Last: 2}
	mustMark(t, db, w, b0+2, stale)
	errs := db.EventLog().Append(t.Context(), []eventlog.Append{{Ref: a, Expected: 1, Events: []model.Event{event(a, 2)}}})
	if !errors.Is(errs[0], eventlog.ErrConflict) {
		t.Fatalf("stale append: %v, want ErrConflict", errs[0])
	}
	checkMarks(t, db, w, b0+2, stale)
	checkWriters(t, db, eventlog.OutboxWriter{Writer: w, Last: b0 + 2})
	next := eventlog.Mark{Ref: a, First: 3, Last: 3}
	mustMark(t, db, w, b0+2, next)
	mustAppend(t, db.EventLog(), eventlog.Append{Ref: a, Expected: 2, Events: []model.Event{event(a, 3)}})
	db = reopen(t, db)
	checkMarks(t, db, w, b0+2, stale, next)
	checkWriters(t, db, eventlog.OutboxWriter{Writer: w, Last: b0 + 2})

	// Mark alone commits nothing: without a write transaction after it,
	// a restart loses it (with the append it announced, which never ran).
	mustMark(t, db, w, b0+3, eventlog.Mark{Ref: a, First: 4, Last: 4})
	mustMark(t, db, "node-2", b0+3, eventlog.Mark{Ref: a, First: 4, Last: 4})
	db = reopen(t, db)
	checkMarks(t, db, w, b0+3)
	checkWriters(t, db, eventlog.OutboxWriter{Writer: w, Last: b0 + 2})

	// SetPublished and Forget are transactions of their own.
	mustMark(t, db, "node-2", b0+1, mc)
	if err := db.SetPublished(t.Context(), w, b0+1); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db)
	checkWriters(t, db,
		eventlog.OutboxWriter{Writer: w, Published: b0 + 1, Last: b0 + 2},
		eventlog.OutboxWriter{Writer: "node-2", Last: b0 + 1})
	checkMarks(t, db, w, b0) // dropped by the watermark
	checkMarks(t, db, w, b0+1)
	checkMarks(t, db, w, b0+2, stale, next)
	checkMarks(t, db, "node-2", b0+1, mc)
	if err := db.Forget(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	db = reopen(t, db)
	checkWriters(t, db, eventlog.OutboxWriter{Writer: "node-2", Last: b0 + 1})
	checkMarks(t, db, w, b0+2)
	checkMarks(t, db, "node-2", b0+1, mc)
}

// TestOutboxBufferedCommit checks that marks and a Last raised while a
// transaction writes the buffer are not lost when it removes what it
// wrote.
func TestOutboxBufferedCommit(t *testing.T) {
	const w = "node-1"
	const b0 int64 = 352_000_000
	db := openDB(t)
	ctx := t.Context()
	done := make(chan struct{})
	var all []eventlog.Mark // written by the marking goroutine until done closes
	go func() {
		defer close(done)
		for i := range 300 {
			ref := model.Ref{Type: "t", ID: fmt.Sprintf("agg-%03d", i)}
			m := eventlog.Mark{Ref: ref, First: 1, Last: 1}
			if err := db.Mark(ctx, w, b0+int64(i/100), []eventlog.Mark{m}); err != nil {
				t.Errorf("Mark: %v", err)
				return
			}
			all = append(all, m)
		}
	}()
	// Appends race with the marks until they are all in.
	busy := model.Ref{Type: "clock", ID: "busy"}
	for seq, marking := uint64(1), true; marking; seq++ {
		mustAppend(t, db.EventLog(), eventlog.Append{Ref: busy, Expected: seq - 1, Events: []model.Event{event(busy, seq)}})
		select {
		case <-done:
			marking = false
		default:
		}
	}
	if t.Failed() {
		return
	}
	ref := model.Ref{Type: "clock", ID: "last"}
	mustAppend(t, db.EventLog(), eventlog.Append{Ref: ref, Events: []model.Event{event(ref, 1)}})
	db = reopen(t, db)
	for b := range int64(3) {
		checkMarks(t, db, w, b0+b, all[b*100:(b+1)*100]...)
	}
	checkWriters(t, db, eventlog.OutboxWriter{Writer: w, Last: b0 + 2})
}

func TestOutboxClosed(t *testing.T) {
	db := openDB(t)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m := eventlog.Mark{Ref: model.Ref{Type: "t", ID: "a"}, First: 1, Last: 1}
	if err := db.Mark(ctx, "w", 1, []eventlog.Mark{m}); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("Mark after Close: %v, want ErrClosed", err)
	}
	if _, err := db.Marks(ctx, "w", 1); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("Marks after Close: %v, want ErrClosed", err)
	}
	if _, err := db.Writers(ctx); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("Writers after Close: %v, want ErrClosed", err)
	}
	if err := db.SetPublished(ctx, "w", 1); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("SetPublished after Close: %v, want ErrClosed", err)
	}
	if err := db.Forget(ctx, "w"); !errors.Is(err, eventlog.ErrClosed) {
		t.Errorf("Forget after Close: %v, want ErrClosed", err)
	}
}
