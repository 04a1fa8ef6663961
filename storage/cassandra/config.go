package cassandra

import (
	"cmp"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/gocql/gocql"
)

// Config configures Open. Build it with DefaultConfig and change what you
// need: Open fills a zero numeric or string field with its default, but the
// two fields whose zero value means something (CreateSchema false: do not
// touch the schema; CommandTTL 0: keep records forever) are taken as given.
type Config struct {
	// Hosts are the contact points: "host" or "host:port" ("[::1]:9042" for
	// IPv6). The driver discovers the other nodes from them. Default
	// ["127.0.0.1:9042"]; a host without a port uses 9042.
	Hosts []string

	// Keyspace holds the tables. An unquoted CQL identifier: a letter, then
	// letters, digits or '_', at most 48 characters, case-insensitive.
	// Default "concursus".
	Keyspace string

	// TablePrefix is put in front of every table name ("ci_" gives
	// ci_events, ci_event_buckets, ci_commands, ci_settings, ci_outbox,
	// ci_outbox_writers), so that several stores can share one keyspace. A
	// letter, then letters, digits or '_'. Default "".
	TablePrefix string

	// ReplicationClass and ReplicationFactor give the keyspace's replication
	// when CreateSchema creates it: {'class': <class>,
	// 'replication_factor': <factor>}. Default SimpleStrategy, 1 (a single
	// development node); production wants NetworkTopologyStrategy and 3.
	ReplicationClass  string
	ReplicationFactor int

	// Replication, when set, is the raw CQL replication map and overrides
	// ReplicationClass and ReplicationFactor, e.g.
	// "{'class': 'NetworkTopologyStrategy', 'dc1': 3, 'dc2': 3}".
	Replication string

	// CreateSchema creates the keyspace and the tables when they are
	// missing, and waits until every node agrees on the schema. Existing
	// tables are never altered. DefaultConfig sets it; a Config built from
	// scratch has it false, and Open then expects the keyspace and all six
	// tables to exist (a keyspace created before the outbox tables existed
	// needs them added: the outbox's methods fail until they are). In a multi-node deployment, let one node (or a
	// deployment step) create the schema before the others open with
	// CreateSchema false: Cassandra handles tables created concurrently by
	// several clients badly.
	CreateSchema bool

	// Consistency of reads and plain writes: a CQL consistency name.
	// Default "LOCAL_QUORUM". With a replication factor above one, anything
	// weaker than a quorum can read a history older than what a conditional
	// write already committed; the fence still holds (it runs at
	// SerialConsistency), but reloads see stale data.
	Consistency string

	// SerialConsistency of the conditional writes (Paxos) and of the
	// serial reads that check a bucket's head: "LOCAL_SERIAL" or "SERIAL".
	// Default "LOCAL_SERIAL". Use SERIAL when more than one data centre
	// writes the same aggregates.
	SerialConsistency string

	// LocalDC, when set, routes requests to the nodes of that data centre
	// (token-aware within it). Default "": token-aware round robin over all
	// nodes.
	LocalDC string

	// Username and Password, when Username is set, authenticate with
	// Cassandra's PasswordAuthenticator.
	Username string
	Password string

	// TLS encrypts the connections when TLS.Enabled is set.
	TLS TLSConfig

	// ConnectTimeout bounds the dialling (and handshake) of one connection.
	// Default 5s.
	ConnectTimeout time.Duration

	// Timeout bounds one request to Cassandra, retries aside. It should be
	// longer than the server's own write_request_timeout and
	// cas_contention_timeout so that the server's verdict arrives first.
	// Default 10s.
	Timeout time.Duration

	// ProtoVersion is the native protocol version. Only 4 is supported
	// (Cassandra 3.0 to 5.0 speak it; appends leave absent values unset,
	// which needs it). Default 4.
	ProtoVersion int

	// NumConns is the number of connections per host. Default 2.
	NumConns int

	// BucketSize is the soft number of events per partition of an
	// aggregate's history (see the package documentation). It is part of
	// the data format: the first Open of a keyspace records it, and a later
	// Open with another value fails with ErrBucketSize, because two writers
	// that disagree on it would no longer fence each other. Default 1000.
	BucketSize int

	// CommandTTL is how long a command record lives (Cassandra expires it;
	// whole seconds, at most 20 years). 0 keeps records forever.
	// DefaultConfig sets DefaultCommandTTL.
	CommandTTL time.Duration

	// OutboxTTL is how long an outbox mark lives (Cassandra expires it;
	// whole seconds, at least 1s, at most 20 years). Marks are never
	// deleted: the watermark makes them dead data, and the TTL removes
	// whole partitions without tombstones. It bounds how long a dead
	// writer's unpublished events can still be taken over, so it should
	// exceed the longest outage you want recovered. Default (and when
	// zero) DefaultOutboxTTL.
	OutboxTTL time.Duration

	// AppendConcurrency bounds how many entries of one Append call (and
	// records of one Put call) are written at the same time. Default 32.
	AppendConcurrency int

	// CacheSize bounds the number of aggregates whose position (last
	// bucket, its first sequence, the last sequence) is remembered, which
	// saves a read before appending to them. Default 10000; negative
	// disables the cache.
	CacheSize int

	// Logger receives the driver's log lines (at Warn level). Default
	// slog.Default().
	Logger *slog.Logger
}

// TLSConfig configures encrypted connections.
type TLSConfig struct {
	// Enabled turns TLS on.
	Enabled bool
	// CAFile is a PEM file of the certificate authorities that sign the
	// nodes' certificates. Default: the system's roots.
	CAFile string
	// CertFile and KeyFile are a PEM client certificate and its key, for
	// nodes that require client authentication. Both or neither.
	CertFile string
	KeyFile  string
	// ServerName overrides the name the nodes' certificates are checked
	// against. Default: the host dialled.
	ServerName string
	// InsecureSkipVerify accepts any server certificate. Tests only.
	InsecureSkipVerify bool
}

// Defaults of Config.
const (
	DefaultHost              = "127.0.0.1:9042"
	DefaultKeyspace          = "concursus"
	DefaultReplicationClass  = "SimpleStrategy"
	DefaultReplicationFactor = 1
	DefaultConsistency       = "LOCAL_QUORUM"
	DefaultSerialConsistency = "LOCAL_SERIAL"
	DefaultConnectTimeout    = 5 * time.Second
	DefaultTimeout           = 10 * time.Second
	DefaultProtoVersion      = 4
	DefaultNumConns          = 2
	DefaultBucketSize        = 1000
	DefaultCommandTTL        = 7 * 24 * time.Hour
	DefaultOutboxTTL         = 7 * 24 * time.Hour
	DefaultAppendConcurrency = 32
	DefaultCacheSize         = 10000

	// MaxCommandTTL is Cassandra's limit on a TTL: 20 years.
	MaxCommandTTL = 630720000 * time.Second
	// maxIdentifier is Cassandra's limit on keyspace and table names.
	maxIdentifier = 48
)

// DefaultConfig returns the configuration of a single local development
// node: 127.0.0.1:9042, keyspace "concursus" created with SimpleStrategy
// and replication factor 1.
func DefaultConfig() Config {
	return Config{
		Hosts:             []string{DefaultHost},
		Keyspace:          DefaultKeyspace,
		ReplicationClass:  DefaultReplicationClass,
		ReplicationFactor: DefaultReplicationFactor,
		CreateSchema:      true,
		Consistency:       DefaultConsistency,
		SerialConsistency: DefaultSerialConsistency,
		ConnectTimeout:    DefaultConnectTimeout,
		Timeout:           DefaultTimeout,
		ProtoVersion:      DefaultProtoVersion,
		NumConns:          DefaultNumConns,
		BucketSize:        DefaultBucketSize,
		CommandTTL:        DefaultCommandTTL,
		OutboxTTL:         DefaultOutboxTTL,
		AppendConcurrency: DefaultAppendConcurrency,
		CacheSize:         DefaultCacheSize,
	}
}

// withDefaults returns a copy of c with zero fields set to their defaults
// (CreateSchema and CommandTTL excepted) and Hosts copied.
func (c Config) withDefaults() Config {
	if len(c.Hosts) == 0 {
		c.Hosts = []string{DefaultHost}
	} else {
		c.Hosts = append([]string(nil), c.Hosts...)
	}
	c.Keyspace = cmp.Or(c.Keyspace, DefaultKeyspace)
	c.ReplicationClass = cmp.Or(c.ReplicationClass, DefaultReplicationClass)
	c.ReplicationFactor = cmp.Or(c.ReplicationFactor, DefaultReplicationFactor)
	c.Consistency = cmp.Or(c.Consistency, DefaultConsistency)
	c.SerialConsistency = cmp.Or(c.SerialConsistency, DefaultSerialConsistency)
	c.ConnectTimeout = cmp.Or(c.ConnectTimeout, DefaultConnectTimeout)
	c.Timeout = cmp.Or(c.Timeout, DefaultTimeout)
	c.ProtoVersion = cmp.Or(c.ProtoVersion, DefaultProtoVersion)
	c.NumConns = cmp.Or(c.NumConns, DefaultNumConns)
	c.BucketSize = cmp.Or(c.BucketSize, DefaultBucketSize)
	c.OutboxTTL = cmp.Or(c.OutboxTTL, DefaultOutboxTTL)
	c.AppendConcurrency = cmp.Or(c.AppendConcurrency, DefaultAppendConcurrency)
	c.CacheSize = cmp.Or(c.CacheSize, DefaultCacheSize)
	c.Logger = cmp.Or(c.Logger, slog.Default())
	return c
}

// identifierRE matches an unquoted CQL identifier.
var identifierRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)

// longestTable is the longest table name without its prefix.
const longestTable = "outbox_writers"

// Validate reports the first invalid field, naming its value. Zero fields
// are checked as their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	for i, h := range c.Hosts {
		if err := checkHost(h); err != nil {
			return fmt.Errorf("cassandra: Config.Hosts[%d] is %q: %v", i, h, err)
		}
	}
	if !identifierRE.MatchString(c.Keyspace) || len(c.Keyspace) > maxIdentifier {
		return fmt.Errorf("cassandra: Config.Keyspace is %q: want a letter followed by letters, digits or '_', at most %d characters", c.Keyspace, maxIdentifier)
	}
	if (c.TablePrefix != "" && !identifierRE.MatchString(c.TablePrefix)) || len(c.TablePrefix)+len(longestTable) > maxIdentifier {
		return fmt.Errorf("cassandra: Config.TablePrefix is %q: want a letter followed by letters, digits or '_', at most %d characters", c.TablePrefix, maxIdentifier-len(longestTable))
	}
	if c.Replication != "" {
		r := strings.TrimSpace(c.Replication)
		if !strings.HasPrefix(r, "{") || !strings.HasSuffix(r, "}") || !strings.Contains(r, "'class'") || strings.Contains(r, ";") {
			return fmt.Errorf("cassandra: Config.Replication is %q: want a CQL map such as {'class': 'NetworkTopologyStrategy', 'dc1': 3}", c.Replication)
		}
	} else {
		if !identifierRE.MatchString(strings.ReplaceAll(c.ReplicationClass, ".", "_")) {
			return fmt.Errorf("cassandra: Config.ReplicationClass is %q: want a strategy class name such as SimpleStrategy", c.ReplicationClass)
		}
		if c.ReplicationFactor < 1 {
			return fmt.Errorf("cassandra: Config.ReplicationFactor is %d, must be at least 1", c.ReplicationFactor)
		}
	}
	cons, err := gocql.ParseConsistencyWrapper(c.Consistency)
	if err != nil || cons == gocql.Any {
		return fmt.Errorf("cassandra: Config.Consistency is %q: want a read/write consistency such as LOCAL_QUORUM or QUORUM", c.Consistency)
	}
	if _, err := parseSerial(c.SerialConsistency); err != nil {
		return err
	}
	if c.Username == "" && c.Password != "" {
		return fmt.Errorf("cassandra: Config.Password is set but Config.Username is empty")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return fmt.Errorf("cassandra: Config.TLS.CertFile is %q and Config.TLS.KeyFile is %q: give both or neither", c.TLS.CertFile, c.TLS.KeyFile)
	}
	if !c.TLS.Enabled && (c.TLS.CAFile != "" || c.TLS.CertFile != "" || c.TLS.InsecureSkipVerify || c.TLS.ServerName != "") {
		return fmt.Errorf("cassandra: Config.TLS has files or options set but Config.TLS.Enabled is false")
	}
	if c.ConnectTimeout < 0 {
		return fmt.Errorf("cassandra: Config.ConnectTimeout is %s, must be positive", c.ConnectTimeout)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("cassandra: Config.Timeout is %s, must be positive", c.Timeout)
	}
	if c.ProtoVersion != 4 {
		return fmt.Errorf("cassandra: Config.ProtoVersion is %d, only 4 is supported", c.ProtoVersion)
	}
	if c.NumConns < 1 {
		return fmt.Errorf("cassandra: Config.NumConns is %d, must be at least 1", c.NumConns)
	}
	if c.BucketSize < 1 {
		return fmt.Errorf("cassandra: Config.BucketSize is %d, must be at least 1", c.BucketSize)
	}
	if c.CommandTTL < 0 || c.CommandTTL > MaxCommandTTL || c.CommandTTL%time.Second != 0 {
		return fmt.Errorf("cassandra: Config.CommandTTL is %s: want whole seconds between 0 (keep forever) and %s", c.CommandTTL, MaxCommandTTL)
	}
	if c.OutboxTTL < time.Second || c.OutboxTTL > MaxCommandTTL || c.OutboxTTL%time.Second != 0 {
		return fmt.Errorf("cassandra: Config.OutboxTTL is %s: want whole seconds between 1s and %s", c.OutboxTTL, MaxCommandTTL)
	}
	if c.AppendConcurrency < 1 {
		return fmt.Errorf("cassandra: Config.AppendConcurrency is %d, must be at least 1", c.AppendConcurrency)
	}
	return nil
}

// checkHost checks a "host" or "host:port" entry.
func checkHost(h string) error {
	if strings.TrimSpace(h) != h || h == "" {
		return fmt.Errorf("empty or padded with spaces")
	}
	host, port := h, ""
	if strings.HasPrefix(h, "[") || strings.Count(h, ":") == 1 {
		var err error
		if host, port, err = net.SplitHostPort(h); err != nil {
			return err
		}
	}
	if host == "" {
		return fmt.Errorf("no host name")
	}
	if port != "" {
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("port %q is not a number between 1 and 65535", port)
		}
	}
	return nil
}

// parseSerial parses a serial consistency name.
func parseSerial(s string) (gocql.SerialConsistency, error) {
	switch strings.ToUpper(s) {
	case "SERIAL":
		return gocql.Serial, nil
	case "LOCAL_SERIAL":
		return gocql.LocalSerial, nil
	}
	return 0, fmt.Errorf("cassandra: Config.SerialConsistency is %q, want LOCAL_SERIAL or SERIAL", s)
}

// replication returns the keyspace's replication map in CQL.
func (c Config) replication() string {
	if c.Replication != "" {
		return strings.TrimSpace(c.Replication)
	}
	return fmt.Sprintf("{'class': '%s', 'replication_factor': %d}", c.ReplicationClass, c.ReplicationFactor)
}
