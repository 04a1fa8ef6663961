package logview_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/concursus-go/concursus/storage/internal/logview"
)

var (
	errClosed      = errors.New("log: closed")
	errUnavailable = errors.New("log: unavailable")
)

func TestView(t *testing.T) {
	var store atomic.Bool
	v := &logview.View{Store: &store, Name: "test", ErrClosed: errClosed, ErrUnavailable: errUnavailable}
	if err := v.CheckOpen(); err != nil {
		t.Fatalf("open view: %v", err)
	}
	cause := errors.New("disk on fire")
	if err := v.Wrap("read x", cause, false); !errors.Is(err, errUnavailable) || !errors.Is(err, cause) || err.Error() != "log: unavailable: test: read x: disk on fire" {
		t.Errorf("Wrap of a failure: %v", err)
	}
	if err := v.Wrap("read x", cause, true); !errors.Is(err, errClosed) || errors.Is(err, errUnavailable) || err.Error() != "test: read x: log: closed" {
		t.Errorf("Wrap under a close: %v", err)
	}

	what := func() string { return "read x" }
	if err := v.Ready(t.Context()); err != nil {
		t.Errorf("Ready of an open view: %v", err)
	}
	if err := v.Check(t.Context(), func() string { t.Error("Check of an open view worded an error"); return "" }); err != nil {
		t.Errorf("Check of an open view: %v", err)
	}
	done, cancel := context.WithCancel(t.Context())
	cancel()
	if err := v.Ready(done); !errors.Is(err, errUnavailable) || !errors.Is(err, context.Canceled) || err.Error() != "log: unavailable: context canceled" {
		t.Errorf("Ready with a done context: %v", err)
	}
	if err := v.Check(done, what); !errors.Is(err, errUnavailable) || !errors.Is(err, context.Canceled) || err.Error() != "log: unavailable: test: read x: context canceled" {
		t.Errorf("Check with a done context: %v", err)
	}

	// The store's close closes every view of it, and comes before the
	// context.
	store.Store(true)
	if err := v.CheckOpen(); !errors.Is(err, errClosed) {
		t.Errorf("store closed: %v", err)
	}
	if err := v.Ready(done); !errors.Is(err, errClosed) || errors.Is(err, errUnavailable) || err.Error() != "log: closed" {
		t.Errorf("Ready of a closed store: %v", err)
	}
	if err := v.Check(done, what); !errors.Is(err, errClosed) || errors.Is(err, errUnavailable) || err.Error() != "test: read x: log: closed" {
		t.Errorf("Check of a closed store: %v", err)
	}
	store.Store(false)

	// A view's own close leaves the store open; a second close says so.
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.CheckOpen(); !errors.Is(err, errClosed) {
		t.Errorf("view closed: %v", err)
	}
	if err := v.Close(); !errors.Is(err, errClosed) {
		t.Errorf("second Close: %v", err)
	}
	if store.Load() {
		t.Error("closing the view closed the store")
	}
}
