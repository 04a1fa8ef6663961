// Package client submits commands and queries to a Concursus cluster over
// NATS from Go. It speaks the protocol of package api, which is all any
// client needs; this one adds typed arguments and results, deadlines, and
// retries that reuse the command id, so a retried command takes effect at
// most once.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/internal/backoff"
	"github.com/concursus-go/concursus/model"
)

// Errors to test with errors.Is. Every error a request returns from the
// cluster is an *Error, which matches the sentinel of its code.
var (
	ErrInvalidRequest       = errors.New("client: invalid request")
	ErrUnknownAggregateType = errors.New("client: unknown aggregate type")
	ErrUnknownCommand       = errors.New("client: unknown command")
	ErrRejected             = errors.New("client: rejected")
	ErrConflict             = errors.New("client: conflict")
	ErrUnavailable          = errors.New("client: unavailable")
	ErrTimeout              = errors.New("client: timeout")
)

var codeSentinels = map[api.Code]error{
	api.CodeInvalidRequest:       ErrInvalidRequest,
	api.CodeUnknownAggregateType: ErrUnknownAggregateType,
	api.CodeUnknownCommand:       ErrUnknownCommand,
	api.CodeRejected:             ErrRejected,
	api.CodeConflict:             ErrConflict,
	api.CodeUnavailable:          ErrUnavailable,
	api.CodeTimeout:              ErrTimeout,
}

// Error is a failure reported by the cluster (or, for timeouts and missing
// responders, by the client on the cluster's behalf).
type Error struct {
	Code      api.Code
	Reason    string // the domain's rejection reason, with ErrRejected
	Message   string
	CommandID string
	// Attempts is how many times the request was sent.
	Attempts int
	// cause is the context's error when the caller's context ended.
	cause error
}

// Unwrap returns context.Canceled or context.DeadlineExceeded when the
// request ended because its context did.
func (e *Error) Unwrap() error { return e.cause }

func (e *Error) Error() string {
	s := "concursus: " + string(e.Code)
	if e.Reason != "" {
		s += " (" + e.Reason + ")"
	}
	return s + ": " + e.Message
}

// Is matches the sentinel of the error's code.
func (e *Error) Is(target error) bool { return codeSentinels[e.Code] == target }

// Options configure a Client.
type Options struct {
	// Prefix is the cluster's subject prefix. Default "concursus".
	Prefix string
	// Timeout bounds one request when the context has no deadline.
	// Default 10s.
	Timeout time.Duration
	// Attempt bounds one attempt; a request whose context allows more time
	// is retried after a timed-out attempt. Default 5s.
	Attempt time.Duration
	// MinBackoff and MaxBackoff bound the pause between retries (jittered,
	// doubling). Defaults 20ms and 1s; a MaxBackoff below MinBackoff is
	// raised to max(1s, MinBackoff).
	MinBackoff, MaxBackoff time.Duration
}

// Client sends requests on a NATS connection it does not own. Safe for
// concurrent use.
type Client struct {
	nc   *nats.Conn
	opts Options
}

// New returns a client on nc.
func New(nc *nats.Conn, opts Options) *Client {
	if opts.Prefix == "" {
		opts.Prefix = api.DefaultPrefix
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Attempt <= 0 {
		opts.Attempt = 5 * time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 20 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(time.Second, opts.MinBackoff)
	}
	return &Client{nc: nc, opts: opts}
}

// Result is an accepted command's outcome.
type Result struct {
	Ref       model.Ref
	CommandID string
	// Sequence is the aggregate's sequence after the command.
	Sequence uint64
	Events   []model.Event
	// Duplicate: an earlier attempt (or an earlier call with this command
	// id) had already been accepted; this is its recorded outcome.
	Duplicate bool
	// Attempts is how many times the request was sent.
	Attempts int
}

// SendOption adjusts one command.
type SendOption func(*api.Command)

// WithCommandID sets the command id (the idempotency key). Without it a
// fresh id is generated per Send and reused by that Send's retries.
func WithCommandID(id string) SendOption { return func(c *api.Command) { c.CommandID = id } }

// WithTimestamp sets the source event time of the command's events.
func WithTimestamp(t time.Time) SendOption {
	return func(c *api.Command) { c.Timestamp = t.UTC().Format(time.RFC3339Nano) }
}

// WithStream sets the source stream id of the command's events.
func WithStream(stream string) SendOption { return func(c *api.Command) { c.StreamID = stream } }

// Send submits a command with typed arguments and waits for its outcome,
// retrying conflicts, unavailability and timeouts with the same command id
// until ctx (or Options.Timeout) runs out. When the time runs out, the error
// is the last attempt's (so ErrUnavailable when no node ever answered) and
// also matches the context's error.
func Send[S, A any](ctx context.Context, c *Client, cmd *model.CommandType[S, A], aggregateID string, args A, opts ...SendOption) (*Result, error) {
	raw, err := json.Marshal(args)
	if err != nil {
		return nil, fmt.Errorf("client: encoding %s arguments: %w", cmd.Name(), err)
	}
	return c.SendRaw(ctx, cmd.AggregateType(), aggregateID, cmd.Name(), raw, opts...)
}

// SendRaw is Send with the aggregate type, command name and JSON arguments
// given directly.
func (c *Client) SendRaw(ctx context.Context, aggregateType, aggregateID, command string, args json.RawMessage, opts ...SendOption) (*Result, error) {
	env := api.Command{AggregateID: aggregateID, Command: command, Args: args}
	for _, o := range opts {
		o(&env)
	}
	if env.CommandID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, fmt.Errorf("client: generating a command id: %w", err)
		}
		env.CommandID = id.String()
	}
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	subject := api.CommandSubject(c.opts.Prefix, aggregateType)
	var reply api.Reply
	attempts, err := c.roundTrip(ctx, subject, func(attemptDeadline time.Duration) ([]byte, error) {
		env.TimeoutMs = min(attemptDeadline.Milliseconds(), api.MaxTimeoutMs) // the node refuses more
		return json.Marshal(&env)
	}, func(data []byte) (*api.Error, error) {
		reply = api.Reply{} // a success reply has no error field: start clean
		err := json.Unmarshal(data, &reply)
		return reply.Error, err
	})
	if err != nil {
		var ce *Error
		if errors.As(err, &ce) {
			ce.CommandID, ce.Attempts = env.CommandID, attempts
		}
		return nil, err
	}
	return &Result{
		Ref:       model.Ref{Type: aggregateType, ID: aggregateID},
		CommandID: reply.CommandID,
		Sequence:  reply.Sequence,
		Events:    reply.Events,
		Duplicate: reply.Duplicate,
		Attempts:  attempts,
	}, nil
}

// State is one view of an aggregate as a query returns it.
type State struct {
	Exists bool
	// Sequence is the log head the value was folded to; 0 for an AsOf
	// query, whose events are the history's event-time prefix (Prefix).
	Sequence uint64
	// Prefix says which events the value was folded from (see
	// api.QueryPrefix); nil only from a node older than event-time folds.
	Prefix *api.QueryPrefix
	// Value is the view's value, encoded as JSON.
	Value json.RawMessage
}

// QueryOption adjusts a query.
type QueryOption func(*api.Query)

// View selects a view by name (default: the primary state).
func View(name string) QueryOption { return func(q *api.Query) { q.View = name } }

// AsOf asks for the view as it was at instant t: the fold of the events
// stamped at or before t, in event-time order.
func AsOf(t time.Time) QueryOption {
	return func(q *api.Query) { q.AsOf = t.UTC().Format(time.RFC3339Nano) }
}

// Query reads one view of an aggregate, retrying unavailability.
func (c *Client) Query(ctx context.Context, aggregateType, aggregateID string, opts ...QueryOption) (*State, error) {
	q := api.Query{AggregateID: aggregateID}
	for _, o := range opts {
		o(&q)
	}
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	var reply api.QueryReply
	_, err := c.roundTrip(ctx, api.QuerySubject(c.opts.Prefix, aggregateType), func(time.Duration) ([]byte, error) {
		return json.Marshal(&q)
	}, func(data []byte) (*api.Error, error) {
		reply = api.QueryReply{}
		err := json.Unmarshal(data, &reply)
		return reply.Error, err
	})
	if err != nil {
		return nil, err
	}
	return &State{Exists: reply.Exists, Sequence: reply.Sequence, Prefix: reply.Prefix, Value: reply.State}, nil
}

// QueryAs reads a view and decodes it into V.
func QueryAs[V any](ctx context.Context, c *Client, aggregateType, aggregateID string, opts ...QueryOption) (V, *State, error) {
	var v V
	st, err := c.Query(ctx, aggregateType, aggregateID, opts...)
	if err != nil {
		return v, nil, err
	}
	if len(st.Value) > 0 {
		if err := json.Unmarshal(st.Value, &v); err != nil {
			return v, st, fmt.Errorf("client: decoding %s/%s state: %w", aggregateType, aggregateID, err)
		}
	}
	return v, st, nil
}

func (c *Client) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.opts.Timeout)
}

// roundTrip sends requests until one gets a reply that is not retryable or
// ctx ends. encode builds the body given the attempt's time budget; decode
// reads one reply afresh and returns its error part.
func (c *Client) roundTrip(ctx context.Context, subject string, encode func(time.Duration) ([]byte, error), decode func([]byte) (*api.Error, error)) (int, error) {
	wait := backoff.Backoff{Min: c.opts.MinBackoff, Max: c.opts.MaxBackoff, Jitter: 0.5}
	var last *Error
	for attempt := 1; ; attempt++ {
		budget := c.opts.Attempt
		if dl, ok := ctx.Deadline(); ok {
			budget = min(budget, time.Until(dl))
		}
		if budget <= 0 {
			return attempt - 1, c.finalErr(last, ctx)
		}
		body, err := encode(budget)
		if err != nil {
			return attempt, fmt.Errorf("client: encoding request: %w", err)
		}
		actx, cancel := context.WithTimeout(ctx, budget)
		msg, err := c.nc.RequestWithContext(actx, subject, body)
		cancel()
		switch {
		case err == nil:
			e, err := decode(msg.Data)
			if err != nil {
				return attempt, fmt.Errorf("client: decoding reply: %w", err)
			}
			if e == nil {
				return attempt, nil
			}
			last = &Error{Code: e.Code, Reason: e.Reason, Message: e.Message}
			if !e.Code.Retryable() {
				return attempt, last
			}
		case errors.Is(err, nats.ErrNoResponders):
			last = &Error{Code: api.CodeUnavailable, Message: "no node is serving " + subject}
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			// An attempt cut short by the caller's deadline says less than
			// an earlier error (say, that no node serves the subject): keep
			// that one.
			if last == nil || budget >= c.opts.Attempt {
				last = &Error{Code: api.CodeTimeout, Message: "no reply within " + budget.Round(time.Millisecond).String()}
			}
		case errors.Is(err, context.Canceled):
			return attempt, c.finalErr(last, ctx)
		case errors.Is(err, nats.ErrMaxPayload):
			return attempt, &Error{Code: api.CodeInvalidRequest, Message: "request exceeds the NATS server's max payload"}
		default:
			last = &Error{Code: api.CodeUnavailable, Message: err.Error()}
		}
		pause := wait.Next()
		if dl, ok := ctx.Deadline(); ok && time.Until(dl) < pause+c.opts.MinBackoff {
			// Too little time left for a useful attempt: an attempt with
			// a budget of ~0 would only replace the informative error
			// with a timeout.
			last.cause = context.DeadlineExceeded
			return attempt, last
		}
		if backoff.Wait(ctx, pause) != nil {
			return attempt, c.finalErr(last, ctx)
		}
	}
}

// finalErr is the error of a request whose context ended: the last
// attempt's error (or a timeout), unwrapping to the context's error.
func (c *Client) finalErr(last *Error, ctx context.Context) error {
	if last == nil {
		last = &Error{Code: api.CodeTimeout, Message: ctx.Err().Error()}
	}
	last.cause = ctx.Err()
	return last
}
