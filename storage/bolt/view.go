package bolt

import (
	"fmt"
	"sync/atomic"
)

// view is what the event log and the command log of a DB share: a Close of
// their own that leaves the file open, the check that neither the view nor
// its DB is closed, and the wrapping of a transaction's error. Each view
// returns the ErrClosed and ErrUnavailable of its own log package.
type view struct {
	db     *DB
	closed atomic.Bool
	// errClosed and errUnavailable are the log package's ErrClosed and
	// ErrUnavailable.
	errClosed, errUnavailable error
}

// close closes the view; a second close returns errClosed.
func (v *view) close() error {
	if !v.closed.CompareAndSwap(false, true) {
		return v.errClosed
	}
	return nil
}

// checkOpen returns errClosed if the view or its DB was closed.
func (v *view) checkOpen() error {
	if v.closed.Load() || v.db.closed.Load() {
		return v.errClosed
	}
	return nil
}

// txError wraps the error of a transaction: errClosed if the file was
// closed under it, errUnavailable otherwise.
func (v *view) txError(what string, err error) error {
	if isClosed(err) {
		return fmt.Errorf("bolt: %s: %w", what, v.errClosed)
	}
	return fmt.Errorf("%w: bolt: %s: %w", v.errUnavailable, what, err)
}
