// Package logview is what the event log and the command log of one store
// share, in every store package that opens both on one connection or
// file: a Close of their own that leaves the store open for the other, the
// check that neither the log nor its store is closed (nor the call's
// context done) before a call starts, and the wrapping of a failed call's
// error into the log package's sentinels (eventlog's or commandlog's
// ErrClosed and ErrUnavailable). It has its own home so that the stores
// cannot drift apart in what a closed log answers.
package logview

import (
	"context"
	"fmt"
	"sync/atomic"
)

// View is one log's share of a store. Set its fields, then do not copy
// it. A View that is never closed on its own (a store's own calls) is
// closed with its store.
type View struct {
	// Store is the store's closed flag.
	Store *atomic.Bool
	// Name starts every error message: the store's ("bolt", "cassandra").
	Name string
	// ErrClosed and ErrUnavailable are the log package's sentinels.
	ErrClosed, ErrUnavailable error

	closed atomic.Bool
}

// Close closes this view, not the store. A second Close returns
// ErrClosed.
func (v *View) Close() error {
	if !v.closed.CompareAndSwap(false, true) {
		return v.ErrClosed
	}
	return nil
}

// CheckOpen returns ErrClosed if the view or its store was closed.
func (v *View) CheckOpen() error {
	if v.closed.Load() || v.Store.Load() {
		return v.ErrClosed
	}
	return nil
}

// Ready is the start of a call: ErrClosed if the view or its store was
// closed, else ErrUnavailable wrapping ctx's error if ctx is done, else
// nil. The error names neither the store nor the call: it suits a batch
// call, which words it for each item; a single call uses Check.
func (v *View) Ready(ctx context.Context) error {
	if err := v.CheckOpen(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", v.ErrUnavailable, err)
	}
	return nil
}

// Check is Ready for a single call, its error worded as Wrap words it,
// with what the call was doing. what is called only when the call cannot
// start, so that a call that can costs no formatting.
func (v *View) Check(ctx context.Context, what func() string) error {
	if err := v.CheckOpen(); err != nil {
		return v.Wrap(what(), err, true)
	}
	if err := ctx.Err(); err != nil {
		return v.Wrap(what(), err, false)
	}
	return nil
}

// Wrap wraps the error of a failed call: ErrClosed if closed says the
// store was closed under it, ErrUnavailable otherwise, with what the call
// was doing.
func (v *View) Wrap(what string, err error, closed bool) error {
	if closed {
		return fmt.Errorf("%s: %s: %w", v.Name, what, v.ErrClosed)
	}
	return fmt.Errorf("%w: %s: %s: %w", v.ErrUnavailable, v.Name, what, err)
}
