package bolt

import (
	"github.com/concursus-go/concursus/storage/internal/logview"
)

// view is what the event log and the command log of a DB share: a Close of
// their own that leaves the file open, the check that neither the view nor
// its DB is closed (logview), and the DB.
type view struct {
	logview.View
	db *DB
}

func newView(db *DB, errClosed, errUnavailable error) view {
	return view{View: logview.View{Store: &db.closed, Name: "bolt", ErrClosed: errClosed, ErrUnavailable: errUnavailable}, db: db}
}

// txError wraps the error of a transaction: ErrClosed if the file was
// closed under it, ErrUnavailable otherwise.
func (v *view) txError(what string, err error) error {
	return v.Wrap(what, err, isClosed(err))
}
