// Package jsstream creates or updates a JetStream stream the way every
// Concursus stream is made: idempotently, by several processes at once,
// with "this server runs no JetStream" told apart from other failures.
// The events stream (eventbus) and the dead-letter stream (subscription)
// both use it; it is internal because it is plumbing, not wire contract.
package jsstream

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/api"
)

// Ensure creates the stream sc, or updates it to sc when it exists. Two
// processes creating it at once is no error: the loser of the race
// updates (up to three tries). A server without JetStream gives
// api.ErrNoJetStream; other errors come back as the client library gave
// them, for the caller to wrap.
func Ensure(ctx context.Context, nc *nats.Conn, sc jetstream.StreamConfig) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		_, err = js.CreateOrUpdateStream(ctx, sc)
		if err == nil || attempt == 2 || !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			break
		}
	}
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) ||
		errors.Is(err, nats.ErrNoResponders) { // nobody serves the JetStream API
		return api.ErrNoJetStream
	}
	return err
}
