package node

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/cluster"
	"github.com/concursus-go/concursus/eventbus"
	"github.com/concursus-go/concursus/executor"
)

// Config configures a Node. Zero fields take the documented defaults;
// cmd/node maps each field to a flag and an environment variable.
type Config struct {
	// NodeID names this node in logs and admin replies. Default: the host
	// name.
	NodeID string
	// Prefix is the NATS subject prefix. Default "concursus".
	Prefix string
	// DataDir holds the embedded store (concursus.db) when no event log is
	// injected. Default "./data". Created if missing.
	DataDir string
	// NATS says which NATS server to use.
	NATS NATSConfig
	// MaxPayload is the largest request accepted, in bytes; larger ones get
	// invalid_request. Default 1 MiB.
	MaxPayload int
	// RequestTimeout is how long a request may wait before it runs when the
	// client gives no timeout. Default 10s.
	RequestTimeout time.Duration
	// Subscribers is how many queue subscriptions decode requests in
	// parallel. Default 4.
	Subscribers int
	// ShutdownTimeout bounds the graceful part of Shutdown. Default 30s.
	ShutdownTimeout time.Duration
	// CommandRetention is how long command records are kept by a command
	// log that prunes on request (the embedded store); a retried command
	// id older than this runs again. Default 168h (7 days, like the
	// Cassandra store's TTL); negative keeps records forever. Logs with
	// their own expiry (Cassandra's TTL) ignore it.
	CommandRetention time.Duration
	// PruneInterval is how often expired command records are pruned.
	// Default 10m.
	PruneInterval time.Duration
	// Executor tunes the command executor (see executor.Config).
	Executor executor.Config
	// Cluster, when set, makes the node a member of a cluster (see
	// ClusterConfig); nil runs it alone, owning every aggregate.
	Cluster *ClusterConfig
	// Stream, when set, also keeps the published events in a JetStream
	// stream the node creates (or updates) at start, so that consumers can
	// replay history from the bus. The embedded NATS server then runs
	// JetStream, storing in DataDir/jetstream; an external server must
	// have JetStream enabled.
	Stream *eventbus.StreamConfig
	// OutboxBucket is the length of the event publisher's outbox buckets
	// (package eventbus): how much time one watermark step covers.
	// Default 5s.
	OutboxBucket time.Duration
	// NoOutbox publishes events best effort, without the outbox: a node
	// that dies between append and publish, or a NATS outage longer than
	// the client's reconnect buffer, then leaves events in the log that
	// never reach the bus. For measurements and for deployments that
	// accept that.
	NoOutbox bool
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger
	// Clock supplies processing time. Default time.Now.
	Clock func() time.Time
	// TestHooks let a test binary inject faults (see TestHooks); nil in
	// production.
	TestHooks *TestHooks
}

// NATSConfig selects the NATS server.
type NATSConfig struct {
	// URL of an existing server ("nats://host:4222"). Empty: the node starts
	// an embedded nats-server on EmbeddedHost:EmbeddedPort.
	URL string
	// Credentials for URL, at most one kind: a token, a user and password,
	// or a credentials (.creds) file.
	Token     string
	User      string
	Password  string
	CredsFile string
	// EmbeddedHost and EmbeddedPort are where the embedded server listens.
	// Defaults 127.0.0.1 and 4222; port -1 picks a free port.
	EmbeddedHost string
	EmbeddedPort int
}

// CheckCredentials reports credentials that cannot go together: more than
// one kind, a user without a password, a password without a user.
func (c NATSConfig) CheckCredentials() error {
	kinds := 0
	for _, set := range []bool{c.Token != "", c.User != "" || c.Password != "", c.CredsFile != ""} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds > 1:
		return errors.New("give at most one of NATS token, user and password, credentials file")
	case c.User != "" && c.Password == "":
		return fmt.Errorf("NATS user %q has no password", c.User)
	case c.Password != "" && c.User == "":
		return errors.New("a NATS password needs a user")
	}
	return nil
}

func (c NATSConfig) hasCredentials() bool {
	return c.Token != "" || c.User != "" || c.Password != "" || c.CredsFile != ""
}

// AuthOptions returns the connect options that present c's credentials
// (none when it has none).
func (c NATSConfig) AuthOptions() []nats.Option {
	switch {
	case c.Token != "":
		return []nats.Option{nats.Token(c.Token)}
	case c.User != "":
		return []nats.Option{nats.UserInfo(c.User, c.Password)}
	case c.CredsFile != "":
		return []nats.Option{nats.UserCredentials(c.CredsFile)}
	}
	return nil
}

// DefaultConfig returns a configuration with every default filled in.
func DefaultConfig() Config {
	c := Config{Executor: executor.DefaultConfig()}
	c.fillDefaults()
	return c
}

func (c *Config) fillDefaults() {
	if c.NodeID == "" && c.Cluster != nil {
		// A fresh identity per process: see cluster.Config.NodeID.
		c.NodeID = cluster.DefaultNodeID()
	}
	if c.NodeID == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "node"
		}
		c.NodeID = host
	}
	if c.Prefix == "" {
		c.Prefix = api.DefaultPrefix
	}
	if c.DataDir == "" {
		c.DataDir = "data"
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = api.DefaultMaxPayload
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.Subscribers == 0 {
		c.Subscribers = 4
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.CommandRetention == 0 {
		c.CommandRetention = 7 * 24 * time.Hour
	}
	if c.PruneInterval == 0 {
		c.PruneInterval = 10 * time.Minute
	}
	if c.NATS.URL == "" && c.NATS.EmbeddedHost == "" {
		c.NATS.EmbeddedHost = "127.0.0.1"
	}
	if c.NATS.URL == "" && c.NATS.EmbeddedPort == 0 {
		c.NATS.EmbeddedPort = 4222
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Cluster != nil {
		cc := *c.Cluster // the caller's value stays as given
		cc.fillDefaults()
		c.Cluster = &cc
	}
	if c.Stream != nil {
		sc := c.Stream.WithDefaults(c.Prefix)
		c.Stream = &sc
	}
}

// Validate reports the first unusable value, naming it.
func (c *Config) Validate() error {
	switch {
	case c.Prefix == "" || strings.ContainsAny(c.Prefix, " *>\t\r\n") || strings.HasPrefix(c.Prefix, ".") || strings.HasSuffix(c.Prefix, "."):
		return fmt.Errorf("node: subject prefix %q is not a valid NATS subject prefix", c.Prefix)
	case c.MaxPayload < 1024 || c.MaxPayload > 64<<20:
		return fmt.Errorf("node: max payload %d must be between 1 KiB and 64 MiB", c.MaxPayload)
	case c.RequestTimeout <= 0:
		return fmt.Errorf("node: request timeout %v must be positive", c.RequestTimeout)
	case c.Subscribers < 1 || c.Subscribers > 64:
		return fmt.Errorf("node: subscribers %d must be between 1 and 64", c.Subscribers)
	case c.ShutdownTimeout <= 0:
		return fmt.Errorf("node: shutdown timeout %v must be positive", c.ShutdownTimeout)
	case c.PruneInterval < time.Second:
		return fmt.Errorf("node: prune interval %v must be at least 1s", c.PruneInterval)
	}
	if c.Stream != nil {
		if err := c.Stream.Validate(); err != nil {
			return err
		}
	}
	if c.Cluster != nil {
		if err := c.Cluster.validate(); err != nil {
			return err
		}
		if strings.ContainsAny(c.NodeID, " *>.\t\r\n") || len(c.NodeID) > 128 {
			return fmt.Errorf("node: node id %q cannot name a cluster member: use letters, digits, '_', ':' and '-', at most 128 bytes", c.NodeID)
		}
	}
	n := &c.NATS
	if err := n.CheckCredentials(); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	switch {
	case n.hasCredentials() && n.URL == "":
		return errors.New("node: NATS credentials need a NATS URL (the embedded server has no auth)")
	case n.URL == "" && (n.EmbeddedPort < -1 || n.EmbeddedPort > 65535):
		return fmt.Errorf("node: embedded NATS port %d out of range", n.EmbeddedPort)
	}
	return nil
}
