package idempotency

import "errors"

var (
	// ErrInvalidConfig: a GroupConfig field is out of range; the message
	// names the field and its value. Not retryable.
	ErrInvalidConfig = errors.New("idempotency: invalid config")
	// ErrInvalidRecord: Record was given a record without a command id or
	// one larger than MaxRecordBytes encoded. Nothing of that call was
	// proposed. Not retryable.
	ErrInvalidRecord = errors.New("idempotency: invalid record")
	// ErrCorrupt: a log entry, forwarded proposal or snapshot does not
	// decode. Applying such an entry changes nothing (on every replica
	// alike); a forwarded proposal is refused whole.
	ErrCorrupt = errors.New("idempotency: corrupt data")
	// ErrNotLeader: HandleForwarded ran on a node that is not the raft
	// leader (any more). The forwarding follower looks up the leader again
	// and retries; Record does so by itself within ProposeTimeout.
	ErrNotLeader = errors.New("idempotency: not the leader")
	// ErrUnavailable: the group could not commit the records within
	// ProposeTimeout (no leader, no quorum, the leader unreachable). The
	// records may or may not have been recorded; recording them again is
	// safe (the filter keeps the first record of a command id).
	ErrUnavailable = errors.New("idempotency: unavailable")
	// ErrClosed: the group was shut down. Like ErrUnavailable the outcome
	// of a call cut short by Shutdown is unknown.
	ErrClosed = errors.New("idempotency: closed")
)
