package cassandra

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gocql/gocql"

	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventlog"
)

var (
	// ErrUnreachable is wrapped by the errors of Open when no node could be
	// reached (refused, timed out, DNS, TLS handshake or authentication
	// failure) or the schema could not be created for lack of replicas.
	// Retrying later, with backoff, is safe.
	ErrUnreachable = errors.New("cassandra: unreachable")
	// ErrBucketSize is returned by Open when the keyspace was first opened
	// with another Config.BucketSize. Retrying will not help: fix the
	// configuration (see Config.BucketSize).
	ErrBucketSize = errors.New("cassandra: bucket size differs from the one the keyspace was created with")
	// ErrCorrupt is wrapped (with eventlog.ErrUnavailable) by reads that
	// found the bucket index inconsistent with the events, which the write
	// protocol never produces.
	ErrCorrupt = errors.New("cassandra: inconsistent data")
)

// Store is a connection to a Cassandra cluster holding an event log and a
// command log. Its methods are safe for concurrent use.
type Store struct {
	cfg     Config
	session *gocql.Session
	cons    gocql.Consistency
	serial  gocql.SerialConsistency
	ttl     int // command TTL in seconds, 0 = none
	q       statements
	cache   *positionCache

	outboxTTL int // outbox mark TTL in seconds
	outbox    outboxState

	// readRetry retries idempotent statements (reads, plain writes of
	// deterministic values) on another node; lwtRetry retries a
	// conditional write only when the coordinator refused it unprocessed.
	readRetry, lwtRetry gocql.RetryPolicy

	closed   atomic.Bool
	events   *EventLog
	commands *CommandLog
}

// Open connects to the cluster, creates the schema when cfg.CreateSchema is
// set, and checks the keyspace's bucket size. It returns an error wrapping
// ErrUnreachable when the cluster cannot be reached; the caller may retry
// with backoff. If ctx ends first, Open returns ctx's error (a connection
// attempt still in progress is closed when it finishes).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cons, _ := gocql.ParseConsistencyWrapper(cfg.Consistency)
	serial, _ := parseSerial(cfg.SerialConsistency)
	cluster, err := clusterConfig(cfg, cons, serial)
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:       cfg,
		cons:      cons,
		serial:    serial,
		ttl:       int(cfg.CommandTTL.Seconds()),
		q:         newStatements(cfg.Keyspace, cfg.TablePrefix),
		cache:     newPositionCache(cfg.CacheSize),
		outboxTTL: int(cfg.OutboxTTL.Seconds()),
		readRetry: cluster.RetryPolicy,
		lwtRetry:  &retryPolicy{retries: 2, lwt: true},
	}
	s.outbox.mu.writers = make(map[string]*writerState)
	s.events = &EventLog{s: s, view: newView(&s.closed, eventlog.ErrClosed, eventlog.ErrUnavailable)}
	s.commands = &CommandLog{s: s, view: newView(&s.closed, commandlog.ErrClosed, commandlog.ErrUnavailable)}

	session, err := connect(ctx, cluster)
	if err != nil {
		return nil, err
	}
	s.session = session
	if err := s.prepareSchema(ctx); err != nil {
		session.Close()
		return nil, err
	}
	return s, nil
}

// clusterConfig translates cfg into the driver's configuration.
func clusterConfig(cfg Config, cons gocql.Consistency, serial gocql.SerialConsistency) (*gocql.ClusterConfig, error) {
	c := gocql.NewCluster(cfg.Hosts...)
	c.ProtoVersion = cfg.ProtoVersion
	c.ConnectTimeout = cfg.ConnectTimeout
	c.Timeout = cfg.Timeout
	c.WriteTimeout = cfg.Timeout
	c.NumConns = cfg.NumConns
	c.Consistency = cons
	c.SerialConsistency = serial
	c.RetryPolicy = &retryPolicy{retries: 2}
	c.Logger = driverLogger{cfg.Logger}
	var local gocql.HostSelectionPolicy = gocql.RoundRobinHostPolicy()
	if cfg.LocalDC != "" {
		local = gocql.DCAwareRoundRobinPolicy(cfg.LocalDC)
	}
	c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(local)
	// Look for nodes that went down every 10s rather than every minute, so
	// that a restarted node takes requests again soon.
	c.ReconnectInterval = 10 * time.Second
	if cfg.Username != "" {
		c.Authenticator = gocql.PasswordAuthenticator{Username: cfg.Username, Password: cfg.Password}
	}
	if cfg.TLS.Enabled {
		t, err := tlsConfig(cfg.TLS)
		if err != nil {
			return nil, err
		}
		c.SslOpts = &gocql.SslOptions{Config: t, EnableHostVerification: !cfg.TLS.InsecureSkipVerify}
	}
	return c, nil
}

// tlsConfig loads the files named in t.
func tlsConfig(t TLSConfig) (*tls.Config, error) {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         t.ServerName,
		InsecureSkipVerify: t.InsecureSkipVerify, //nolint:gosec // opted into by the operator, documented as tests only
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cassandra: Config.TLS.CAFile: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cassandra: Config.TLS.CAFile %s holds no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cassandra: Config.TLS.CertFile %s / KeyFile %s: %w", t.CertFile, t.KeyFile, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// connect creates the session. The driver's constructor takes no context,
// so it runs in a goroutine of its own; if ctx ends first, that goroutine
// closes the session it eventually gets (it ends within the driver's
// connect timeouts).
func connect(ctx context.Context, cluster *gocql.ClusterConfig) (*gocql.Session, error) {
	type result struct {
		s   *gocql.Session
		err error
	}
	// Unbuffered: the send only succeeds while Open is still waiting.
	done := make(chan result)
	go func() {
		s, err := cluster.CreateSession()
		select {
		case done <- result{s, err}:
		case <-ctx.Done():
			if s != nil {
				s.Close()
			}
		}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("%w: connect to %s: %w", ErrUnreachable, strings.Join(cluster.Hosts, ","), r.err)
		}
		return r.s, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("cassandra: connect to %s: %w", strings.Join(cluster.Hosts, ","), ctx.Err())
	}
}

// prepareSchema creates the keyspace and tables (when configured to) and
// records or checks the bucket size.
func (s *Store) prepareSchema(ctx context.Context) error {
	if s.cfg.CreateSchema {
		for _, stmt := range s.q.schema(s.cfg.replication()) {
			if err := s.session.Query(stmt).WithContext(ctx).Exec(); err != nil {
				return s.openError("create schema", err)
			}
		}
		for _, c := range s.q.addedColumns() {
			if err := s.addColumn(ctx, c.table, c.column, c.typ); err != nil {
				return s.openError("add column "+c.column+" to "+c.table, err)
			}
		}
		if err := s.session.AwaitSchemaAgreement(ctx); err != nil {
			return s.openError("await schema agreement", err)
		}
	}
	// Record the bucket size on the first Open, check it on every later one.
	want := strconv.Itoa(s.cfg.BucketSize)
	existing := map[string]any{}
	applied, err := s.session.Query(s.q.insertSetting, settingBucketSize, want).
		WithContext(ctx).RetryPolicy(s.lwtRetry).MapScanCAS(existing)
	if err != nil {
		return s.openError("record the bucket size", err)
	}
	if !applied {
		if got, _ := existing["value"].(string); got != want {
			return fmt.Errorf("%w: keyspace %s holds bucket size %s, Config.BucketSize is %s", ErrBucketSize, s.cfg.Keyspace, got, want)
		}
	}
	return nil
}

// addColumn adds a column to a qualified table unless it has it.
func (s *Store) addColumn(ctx context.Context, table, column, typ string) error {
	ks, name, _ := strings.Cut(table, ".")
	var found string
	err := s.session.Query("SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ? AND column_name = ?",
		ks, name, column).WithContext(ctx).Scan(&found)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, gocql.ErrNotFound):
		return err
	}
	return s.session.Query("ALTER TABLE " + table + " ADD " + column + " " + typ).WithContext(ctx).Exec()
}

// openError wraps an error of Open's schema step.
func (s *Store) openError(what string, err error) error {
	if transient(err) {
		return fmt.Errorf("%w: %s in keyspace %s: %w", ErrUnreachable, what, s.cfg.Keyspace, err)
	}
	return fmt.Errorf("cassandra: %s in keyspace %s: %w", what, s.cfg.Keyspace, err)
}

// EventLog returns the event log. Every call returns the same view; once
// that view is closed it stays closed.
func (s *Store) EventLog() *EventLog { return s.events }

// CommandLog returns the command log. Every call returns the same view;
// once that view is closed it stays closed.
func (s *Store) CommandLog() *CommandLog { return s.commands }

// Close closes the connections. Requests still running fail; calls on the
// logs then return ErrClosed. Closing a closed Store returns nil.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	s.session.Close()
	return nil
}

// transient reports whether err says the cluster could not serve the
// request for now: a timeout, too few replicas, an overloaded or
// bootstrapping node, or no connection.
func transient(err error) bool {
	var re gocql.RequestError
	if errors.As(err, &re) {
		switch re.Code() {
		case gocql.ErrCodeUnavailable, gocql.ErrCodeOverloaded, gocql.ErrCodeBootstrapping,
			gocql.ErrCodeWriteTimeout, gocql.ErrCodeReadTimeout, gocql.ErrCodeWriteFailure,
			gocql.ErrCodeReadFailure, gocql.ErrCodeCASWriteUnknown, gocql.ErrCodeTruncate:
			return true
		}
		return false
	}
	return errors.Is(err, gocql.ErrTimeoutNoResponse) || errors.Is(err, gocql.ErrConnectionClosed) ||
		errors.Is(err, gocql.ErrNoConnections) || errors.Is(err, gocql.ErrNoConnectionsStarted) ||
		errors.Is(err, gocql.ErrUnavailable)
}

// notExecuted reports whether err proves the coordinator refused the
// request before executing any of it.
func notExecuted(err error) bool {
	var re gocql.RequestError
	if errors.As(err, &re) {
		switch re.Code() {
		case gocql.ErrCodeOverloaded, gocql.ErrCodeBootstrapping:
			return true
		}
	}
	return false
}

// retryPolicy retries a failed request on the next node, at most retries
// times and only while its context lives. For a conditional write (lwt)
// it retries only requests the coordinator refused before executing them:
// a conditional write that timed out may have been applied, and its retry
// would then fail its own condition and report a conflict for a write that
// landed.
type retryPolicy struct {
	retries int
	lwt     bool
}

// Attempt implements gocql.RetryPolicy.
func (p *retryPolicy) Attempt(q gocql.RetryableQuery) bool {
	return q.Attempts() <= p.retries && q.Context().Err() == nil
}

// GetRetryType implements gocql.RetryPolicy.
func (p *retryPolicy) GetRetryType(err error) gocql.RetryType {
	switch {
	case notExecuted(err):
		return gocql.RetryNextHost
	case p.lwt:
		return gocql.Rethrow
	case transient(err):
		return gocql.RetryNextHost
	}
	return gocql.Rethrow
}

// driverLogger hands the driver's log lines to slog.
type driverLogger struct{ l *slog.Logger }

func (d driverLogger) Print(v ...any) {
	d.l.Warn(strings.TrimSpace(fmt.Sprint(v...)), "component", "gocql")
}
func (d driverLogger) Printf(format string, v ...any) {
	d.l.Warn(strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "gocql")
}
func (d driverLogger) Println(v ...any) {
	d.l.Warn(strings.TrimSpace(fmt.Sprintln(v...)), "component", "gocql")
}
