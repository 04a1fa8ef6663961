// Package commandlog is the durable record of every command a node decided:
// its id, the aggregate and command name, and its outcome (accepted with the
// sequence range of its events, or rejected with its error code). Records are
// read back by command id, which is what lets a retried command get its
// original outcome instead of running again.
//
// Requests that were invalid (bad JSON, unknown type, …) are never recorded:
// they never reached a decision.
//
// Implementations live with their backends (storage/memory, storage/bolt,
// storage/cassandra) and all pass commandlog/commandlogtest.
package commandlog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/model"
)

var (
	// ErrNotFound: no record for that command id (never seen, or expired).
	ErrNotFound = errors.New("commandlog: not found")
	// ErrUnavailable: the store could not be reached; retry later.
	ErrUnavailable = errors.New("commandlog: unavailable")
	// ErrClosed: the log was closed.
	ErrClosed = errors.New("commandlog: closed")
	// ErrDecided: the command id already has a record, and the first
	// decision wins: the new record was not written. The error is a
	// *DecidedError carrying the record that stands.
	ErrDecided = errors.New("commandlog: command already decided")
)

// DecidedError is returned for a record that was not written because its
// command id already had one (first decision wins). Record is the standing
// record: the caller answers with it instead of its own decision.
type DecidedError struct {
	Record Record
}

func (e *DecidedError) Error() string {
	return fmt.Sprintf("commandlog: command %q already decided (%s on %s: %s)", e.Record.CommandID, e.Record.Command, e.Record.Ref, e.Record.Outcome)
}

// Unwrap makes errors.Is(err, ErrDecided) hold.
func (e *DecidedError) Unwrap() error { return ErrDecided }

// Inserter is an optional capability of a Log: records that never replace
// an earlier one. One command id has one outcome, and the first decision
// wins: a later decision of the same id (a retry decided by a stale owner,
// or by an owner whose filter had not learned the first outcome yet) must
// not overwrite the record that answered the first.
//
// Insert returns one error per record, in order: nil when the record was
// written; a *DecidedError (wrapping ErrDecided) with the standing record
// when its command id already had one; an error wrapping ErrUnavailable when
// the store failed (the record may or may not have been written). Safe for
// concurrent use; slices are not retained.
type Inserter interface {
	Insert(ctx context.Context, records []Record) []error
}

// Outcome is what became of a command.
type Outcome string

const (
	// Accepted: the command's events (possibly none) are durable.
	Accepted Outcome = "accepted"
	// Rejected: the domain refused the command; nothing was written.
	Rejected Outcome = "rejected"
)

// Record is one decided command.
type Record struct {
	CommandID string    `json:"commandId"`
	Ref       model.Ref `json:"aggregate"`
	// Command is the command's name; empty in a record the executor wrote
	// from an aggregate's history, which does not say it.
	Command string  `json:"command"`
	Outcome Outcome `json:"outcome"`
	// FirstSequence..LastSequence are the sequence numbers of the events an
	// accepted command produced. A command that produced no events has
	// FirstSequence = LastSequence+1 (an empty range ending at the current
	// sequence).
	FirstSequence uint64 `json:"firstSequence,omitempty"`
	LastSequence  uint64 `json:"lastSequence,omitempty"`
	// Code, Reason and Message describe a rejection: Code is the stable API
	// error code, Reason the domain's own code ("not_screwed_in").
	Code    string `json:"code,omitempty"`
	Reason  string `json:"reason,omitempty"`
	Message string `json:"message,omitempty"`
	// At is the processing time of the decision.
	At time.Time `json:"at"`
	// ArgsDigest identifies the command's arguments (ArgsDigest): a retry
	// of the id with other arguments is refused instead of answered with
	// this outcome. Empty in records written before it existed.
	ArgsDigest string `json:"argsDigest,omitempty"`
}

// ArgsDigest returns the digest of a command's JSON arguments that records
// carry: the first 16 bytes of the SHA-256 of their canonical form (object
// keys sorted, no insignificant space; numbers as written), in hex. Empty
// or null arguments and {} digest alike. Arguments that are not valid JSON
// digest as their bytes.
func ArgsDigest(args []byte) string {
	canon := canonicalJSON(args)
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:16])
}

func canonicalJSON(args []byte) []byte {
	trimmed := bytes.TrimSpace(args)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return args
	}
	out, err := json.Marshal(v) // map keys sorted
	if err != nil {
		return args
	}
	return out
}

// Log stores command records. Safe for concurrent use; slices passed in are
// not retained.
type Log interface {
	// Put stores records durably; a record for an existing command id
	// replaces it. The whole batch is durable when Put returns nil.
	Put(ctx context.Context, records []Record) error
	// Get returns the record of a command id, or an error wrapping ErrNotFound.
	Get(ctx context.Context, commandID string) (Record, error)
	// Close releases the log. Calls after Close return ErrClosed.
	Close() error
}

// Pruner is implemented by logs that expire records on request (stores
// with native TTLs expire them by themselves and need not implement it).
type Pruner interface {
	// Prune deletes records decided before cutoff and returns how many.
	Prune(ctx context.Context, cutoff time.Time) (int, error)
}

// Decision is one decided command as a DecisionWriter writes it: the events
// to append (nil for a rejection or a command that produced none) and the
// command's record.
type Decision struct {
	Append *eventlog.Append
	Record Record
	// Head, for a decision without Append, is the head its state was
	// decided on: the decision is written only if the aggregate's history
	// still ends there (see eventlog.HeadChecker), else it fails with
	// eventlog.ErrConflict.
	Head *eventlog.Head
}

// DecisionWriter is an optional capability of a store that holds both the
// event log and the command log (the embedded store): it writes a batch of
// decisions in one transaction, so a batch costs one commit instead of two.
//
// WriteDecisions returns one error per decision, as eventlog.Log.Append
// does: nil when the decision's events and record are durable; an error
// wrapping eventlog.ErrConflict or eventlog.ErrInvalidAppend when its append
// was refused or its Head did not hold, in which case its record is not
// written either; a *DecidedError when its command id already had a record
// (nothing of the decision is written: the first decision wins); an error
// wrapping eventlog.ErrUnavailable when the transaction failed. Safe for
// concurrent use; slices are not retained.
type DecisionWriter interface {
	WriteDecisions(ctx context.Context, decisions []Decision) []error
}
