package cassandra

import (
	"errors"
	"sync/atomic"

	"github.com/gocql/gocql"

	"github.com/concursus-go/concursus/storage/internal/logview"
)

// view is what EventLog and CommandLog share (logview): a closed flag of
// their own beside the store's, and the mapping of request errors onto
// their package's sentinels (eventlog's or commandlog's ErrClosed and
// ErrUnavailable). Its Close closes this view, not the connections (see
// Store.Close).
type view struct{ logview.View }

func newView(closed *atomic.Bool, errClosed, errUnavailable error) view {
	return view{logview.View{Store: closed, Name: "cassandra", ErrClosed: errClosed, ErrUnavailable: errUnavailable}}
}

// wrap wraps the error of a request: ErrClosed if the store was closed
// under it, ErrUnavailable otherwise.
func (v *view) wrap(what string, err error) error {
	return v.Wrap(what, err, errors.Is(err, gocql.ErrSessionClosed) || v.Store.Load())
}
