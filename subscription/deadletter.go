package subscription

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/internal/jsstream"
	"github.com/concursus-go/concursus/model"
)

// HeaderReplayOf is set on a replayed event: the sequence of the dead
// letter it replays in the dead-letter stream.
const HeaderReplayOf = "Concursus-Replay-Of"

// DeadLetterStreamName is the stream of a prefix's dead letters and
// replays: api.StreamName(prefix) + "_DEADLETTERS", e.g.
// "CONCURSUS_EVENTS_DEADLETTERS".
func DeadLetterStreamName(prefix string) string { return api.DeadLetterStreamName(prefix) }

// ReplaySubject is where replayed dead letters of a consumer are
// published; the consumer's subscriptions take them from there.
func ReplaySubject(prefix, consumer string) string { return prefix + ".replay." + consumer }

// deadLetterFilter matches every dead letter of a consumer.
func deadLetterFilter(prefix, consumer string) string {
	return prefix + ".deadletter." + consumer + ".>"
}

// EnsureDeadLetterStream creates the dead-letter stream of prefix (see
// DeadLetterStreamName) over <prefix>.deadletter.> and <prefix>.replay.>,
// or brings an existing one to this configuration; several processes may
// call it at once. Dead letters are kept until replayed (or deleted by an
// operator); replays are deleted once handled. The stream has as many
// replicas as the events stream, 1 when there is none. It returns the
// stream's name, and api.ErrNoJetStream when the server has no
// JetStream.
func EnsureDeadLetterStream(ctx context.Context, nc *nats.Conn, prefix string) (string, error) {
	if nc == nil || !validPrefix(prefix) {
		return "", fmt.Errorf("%w: EnsureDeadLetterStream needs a connection and a prefix, got prefix %q", ErrInvalidConfig, prefix)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return "", fmt.Errorf("subscription: %w", err)
	}
	name := DeadLetterStreamName(prefix)
	replicas := 1
	if events, err := js.Stream(ctx, api.StreamName(prefix)); err == nil {
		replicas = max(1, events.CachedInfo().Config.Replicas)
	}
	sc := jetstream.StreamConfig{
		Name:        name,
		Description: "Concursus dead letters and replays under " + prefix,
		Subjects:    []string{prefix + ".deadletter.>", prefix + ".replay.>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxBytes:    -1,
		Replicas:    replicas,
		Duplicates:  2 * time.Minute,
	}
	switch err := jsstream.Ensure(ctx, nc, sc); {
	case errors.Is(err, api.ErrNoJetStream):
		return "", err
	case err != nil:
		return "", fmt.Errorf("subscription: creating the dead-letter stream %s: %w", name, err)
	}
	return name, nil
}

// DeadLetter is an event a consumer gave up on.
type DeadLetter struct {
	// Seq is its sequence in the dead-letter stream: ReplayDeadLetters
	// takes it.
	Seq uint64 `json:"seq"`
	// Time is when it was dead-lettered.
	Time     time.Time `json:"time"`
	Consumer string    `json:"consumer"`
	// Error is the last attempt's error.
	Error string `json:"error"`
	// Attempts is how many times the handler was called; 0 for a message
	// that was not an event at all.
	Attempts int `json:"attempts"`
	// Subject is the events subject it was published on, StreamSeq its
	// sequence in the events stream (0 when it was read from history).
	Subject   string `json:"subject"`
	StreamSeq uint64 `json:"streamSeq,omitempty"`
	// Event is the event; nil when the body is not one (Body holds it
	// then).
	Event *model.Event `json:"event,omitempty"`
	Body  []byte       `json:"body,omitempty"`
}

// deadLetterOf reads a dead-letter stream message.
func deadLetterOf(m *jetstream.RawStreamMsg) DeadLetter {
	d := DeadLetter{
		Seq:      m.Sequence,
		Time:     m.Time,
		Consumer: m.Header.Get(api.HeaderDeadConsumer),
		Error:    m.Header.Get(api.HeaderDeadError),
		Subject:  m.Header.Get(api.HeaderDeadSubject),
	}
	d.Attempts, _ = strconv.Atoi(m.Header.Get(api.HeaderDeadAttempts))                // absent: 0
	d.StreamSeq, _ = strconv.ParseUint(m.Header.Get(api.HeaderDeadStreamSeq), 10, 64) // absent: 0
	var e model.Event
	if err := json.Unmarshal(m.Data, &e); err == nil && e.AggregateID != "" {
		d.Event = &e
	} else {
		d.Body = m.Data
	}
	return d
}

// deadLetterStream opens the dead-letter stream of prefix.
func deadLetterStream(ctx context.Context, nc *nats.Conn, prefix string) (jetstream.JetStream, jetstream.Stream, error) {
	if nc == nil || !validPrefix(prefix) {
		return nil, nil, fmt.Errorf("%w: needs a connection and a prefix, got prefix %q", ErrInvalidConfig, prefix)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, nil, fmt.Errorf("subscription: %w", err)
	}
	name := DeadLetterStreamName(prefix)
	st, err := js.Stream(ctx, name)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return nil, nil, fmt.Errorf("%w: no stream %s (prefix %q)", ErrNoDeadLetterStream, name, prefix)
	case errors.Is(err, jetstream.ErrJetStreamNotEnabled), errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount),
		errors.Is(err, nats.ErrNoResponders):
		return nil, nil, api.ErrNoJetStream
	case err != nil:
		return nil, nil, fmt.Errorf("subscription: opening the dead-letter stream %s: %w", name, err)
	}
	return js, st, nil
}

// rawDeadLetters reads every dead letter of consumer, in stream order.
func rawDeadLetters(ctx context.Context, st jetstream.Stream, prefix, consumer string) ([]*jetstream.RawStreamMsg, error) {
	filter := deadLetterFilter(prefix, consumer)
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); ; {
		m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(filter))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("subscription: reading the dead letters of %s from sequence %d: %w", consumer, seq, err)
		}
		out = append(out, m)
		seq = m.Sequence + 1
	}
}

// ListDeadLetters returns the dead letters of consumer (Config.Name), in
// the order they were dead-lettered. It reads one message per request:
// dead letters are expected to be few. ErrNoDeadLetterStream when no
// subscription ever ran under prefix.
func ListDeadLetters(ctx context.Context, nc *nats.Conn, prefix, consumer string) ([]DeadLetter, error) {
	if !validName(consumer) {
		return nil, fmt.Errorf("%w: consumer %q: letters, digits, '-' and '_'", ErrInvalidConfig, consumer)
	}
	_, st, err := deadLetterStream(ctx, nc, prefix)
	if err != nil {
		return nil, err
	}
	raw, err := rawDeadLetters(ctx, st, prefix, consumer)
	if err != nil {
		return nil, err
	}
	out := make([]DeadLetter, len(raw))
	for i, m := range raw {
		out[i] = deadLetterOf(m)
	}
	return out, nil
}

// ReplayDeadLetters hands dead letters of consumer back to its
// subscriptions: each is published on ReplaySubject(prefix, consumer),
// acknowledged by JetStream, then deleted from the dead letters. With no
// seqs every dead letter of the consumer is replayed; otherwise the given
// dead-letter sequences (DeadLetter.Seq), all checked before any is
// replayed (ErrDeadLetterNotFound for one that is not the consumer's). It
// returns how many were replayed; after an error, those before it were.
//
// A replay that fails again is dead-lettered again, under a new sequence.
// Running ReplayDeadLetters twice at once may replay a dead letter twice
// (at least once, like every delivery).
func ReplayDeadLetters(ctx context.Context, nc *nats.Conn, prefix, consumer string, seqs ...uint64) (int, error) {
	if !validName(consumer) {
		return 0, fmt.Errorf("%w: consumer %q: letters, digits, '-' and '_'", ErrInvalidConfig, consumer)
	}
	js, st, err := deadLetterStream(ctx, nc, prefix)
	if err != nil {
		return 0, err
	}
	var letters []*jetstream.RawStreamMsg
	if len(seqs) == 0 {
		if letters, err = rawDeadLetters(ctx, st, prefix, consumer); err != nil {
			return 0, err
		}
	}
	ours := strings.TrimSuffix(deadLetterFilter(prefix, consumer), ">")
	for _, seq := range seqs {
		m, err := st.GetMsg(ctx, seq)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound), err == nil && !strings.HasPrefix(m.Subject, ours):
			return 0, fmt.Errorf("%w: sequence %d is no dead letter of %s", ErrDeadLetterNotFound, seq, consumer)
		case err != nil:
			return 0, fmt.Errorf("subscription: reading dead letter %d: %w", seq, err)
		}
		letters = append(letters, m)
	}
	replayed := 0
	for _, m := range letters {
		msg := nats.NewMsg(ReplaySubject(prefix, consumer))
		msg.Data = m.Data
		for k, v := range m.Header {
			msg.Header[k] = append([]string(nil), v...)
		}
		// The replay's own id: a replay of this dead letter retried
		// within the stream's duplicate window is stored once.
		msg.Header.Set(api.HeaderMsgID, "replay:"+consumer+":"+strconv.FormatUint(m.Sequence, 10))
		msg.Header.Set(HeaderReplayOf, strconv.FormatUint(m.Sequence, 10))
		if _, err := js.PublishMsg(ctx, msg); err != nil {
			return replayed, fmt.Errorf("subscription: replaying dead letter %d: %w", m.Sequence, err)
		}
		if err := deleteMsg(ctx, st, m.Sequence); err != nil {
			return replayed, fmt.Errorf("subscription: dead letter %d was replayed but not deleted (it may be replayed again): %w", m.Sequence, err)
		}
		replayed++
	}
	return replayed, nil
}

// deleteMsg deletes message seq from st; one already gone is no error.
func deleteMsg(ctx context.Context, st jetstream.Stream, seq uint64) error {
	err := st.DeleteMsg(ctx, seq)
	if err != nil {
		// The server's "not found" reply comes as text only.
		if _, gerr := st.GetMsg(ctx, seq); errors.Is(gerr, jetstream.ErrMsgNotFound) {
			return nil
		}
	}
	return err
}
