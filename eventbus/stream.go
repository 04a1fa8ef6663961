package eventbus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/internal/jsstream"
)

// StreamConfig describes the optional JetStream stream that keeps the
// published events, so that consumers can replay history from the bus. The
// stream captures every event subject under the prefix
// (<prefix>.events.>); since each event carries its event id as
// Nats-Msg-Id, the stream stores an event published twice within the
// Duplicates window once.
type StreamConfig struct {
	// Name of the stream. Default StreamName(prefix), e.g.
	// "CONCURSUS_EVENTS".
	Name string
	// MaxAge drops events older than this. Default 0: kept until MaxBytes.
	MaxAge time.Duration
	// MaxBytes bounds the stream's size; the oldest events go first.
	// Default 0: no limit.
	MaxBytes int64
	// Replicas is the number of copies in a NATS cluster (1 to 5).
	// Default 1.
	Replicas int
	// Duplicates is how long JetStream remembers event ids to drop
	// re-publications. Default 2m (JetStream's own default).
	Duplicates time.Duration
}

// StreamName is the default stream name for a subject prefix: the prefix
// in capitals with every character a stream name cannot hold replaced by
// '_', and "_EVENTS" appended.
func StreamName(prefix string) string { return api.StreamName(prefix) }

// WithDefaults fills in the defaults for prefix.
func (c StreamConfig) WithDefaults(prefix string) StreamConfig {
	if c.Name == "" {
		c.Name = StreamName(prefix)
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Duplicates == 0 {
		c.Duplicates = 2 * time.Minute
	}
	return c
}

// Validate reports the first unusable value.
func (c StreamConfig) Validate() error {
	switch {
	case c.Name == "" || strings.ContainsAny(c.Name, " .*>/\\\t\r\n"):
		return fmt.Errorf("eventbus: stream name %q: letters, digits, '-' and '_' only", c.Name)
	case c.MaxAge < 0:
		return fmt.Errorf("eventbus: stream max age %v is negative", c.MaxAge)
	case c.MaxBytes < 0:
		return fmt.Errorf("eventbus: stream max bytes %d is negative", c.MaxBytes)
	case c.Replicas < 1 || c.Replicas > 5:
		return fmt.Errorf("eventbus: stream replicas %d must be between 1 and 5", c.Replicas)
	case c.Duplicates <= 0:
		return fmt.Errorf("eventbus: stream duplicates window %v must be positive", c.Duplicates)
	}
	return nil
}

// ErrNoJetStream: the NATS server does not run JetStream.
var ErrNoJetStream = api.ErrNoJetStream

// EnsureStream creates the events stream for prefix, or updates its limits
// to cfg when it exists; several nodes may call it at once. It returns the
// stream's name.
func EnsureStream(ctx context.Context, nc *nats.Conn, prefix string, cfg StreamConfig) (string, error) {
	cfg = cfg.WithDefaults(prefix)
	if err := cfg.Validate(); err != nil {
		return "", err
	}
	sc := jetstream.StreamConfig{
		Name:        cfg.Name,
		Description: "Concursus events under " + prefix + " (event id as Nats-Msg-Id)",
		Subjects:    []string{prefix + ".events.>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		MaxAge:      cfg.MaxAge,
		MaxBytes:    cfg.MaxBytes,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.Duplicates,
		// Direct gets: a resumed subscription asks for an aggregate's last
		// messages by subject (package subscription, resume.go).
		AllowDirect: true,
	}
	if cfg.MaxBytes == 0 {
		sc.MaxBytes = -1
	}
	switch err := jsstream.Ensure(ctx, nc, sc); {
	case errors.Is(err, api.ErrNoJetStream):
		return "", ErrNoJetStream
	case err != nil:
		return "", fmt.Errorf("eventbus: creating stream %s: %w", cfg.Name, err)
	}
	return cfg.Name, nil
}
