package cassandra

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/gocql/gocql"
)

// view is what EventLog and CommandLog share: a closed flag of their own
// beside the store's, and the mapping of request errors onto their
// package's sentinels (eventlog's or commandlog's ErrClosed and
// ErrUnavailable).
type view struct {
	closed atomic.Bool
	// store is the Store's closed flag.
	store                     *atomic.Bool
	errClosed, errUnavailable error
}

// Close closes this view, not the connections (see Store.Close). A second
// Close returns the view's ErrClosed.
func (v *view) Close() error {
	if !v.closed.CompareAndSwap(false, true) {
		return v.errClosed
	}
	return nil
}

// checkOpen returns ErrClosed if the view or its store was closed.
func (v *view) checkOpen() error {
	if v.closed.Load() || v.store.Load() {
		return v.errClosed
	}
	return nil
}

// wrap wraps the error of a request: ErrClosed if the store was closed
// under it, ErrUnavailable otherwise.
func (v *view) wrap(what string, err error) error {
	if errors.Is(err, gocql.ErrSessionClosed) || v.store.Load() {
		return fmt.Errorf("cassandra: %s: %w", what, v.errClosed)
	}
	return fmt.Errorf("%w: cassandra: %s: %w", v.errUnavailable, what, err)
}
