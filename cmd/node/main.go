// Command node runs a Concursus node hosting the example lightbulb aggregate
// type. With no flags it starts an embedded NATS server on 127.0.0.1:4222
// and keeps its event log in ./data, so `go run ./cmd/node` works on a bare
// machine. Every flag has an environment variable (shown in --help).
//
// To host your own aggregate types, embed package node in your service (see
// README.md); this binary is the reference wiring and the demo.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
	"github.com/concursus-go/concursus/storage/cassandra"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// setting is one flag with its environment variable.
type setting struct {
	name, env, usage string
	value            flag.Value
}

func run(args []string, stderr io.Writer) int {
	cfg := node.DefaultConfig()
	logLevel, logFormat := "info", "text"
	storeKind := "embedded"
	ccfg := cassandra.DefaultConfig()
	cassandraHosts := strings.Join(ccfg.Hosts, ",")
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	settings := []setting{
		{"node-id", "CONCURSUS_NODE_ID", "name of this node in logs and admin replies (default: host name)", (*stringValue)(&cfg.NodeID)},
		{"nats-url", "CONCURSUS_NATS_URL", "NATS server to connect to; empty starts an embedded server", (*stringValue)(&cfg.NATS.URL)},
		{"nats-token", "CONCURSUS_NATS_TOKEN", "token for --nats-url", (*stringValue)(&cfg.NATS.Token)},
		{"nats-user", "CONCURSUS_NATS_USER", "user for --nats-url (with --nats-password)", (*stringValue)(&cfg.NATS.User)},
		{"nats-password", "CONCURSUS_NATS_PASSWORD", "password for --nats-user", (*stringValue)(&cfg.NATS.Password)},
		{"nats-creds", "CONCURSUS_NATS_CREDS", "credentials (.creds) file for --nats-url", (*stringValue)(&cfg.NATS.CredsFile)},
		{"nats-host", "CONCURSUS_NATS_HOST", "address the embedded NATS server listens on", (*stringValue)(&cfg.NATS.EmbeddedHost)},
		{"nats-port", "CONCURSUS_NATS_PORT", "port of the embedded NATS server (-1: any free port)", (*intValue)(&cfg.NATS.EmbeddedPort)},
		{"data-dir", "CONCURSUS_DATA_DIR", "directory of the embedded event and command log", (*stringValue)(&cfg.DataDir)},
		{"prefix", "CONCURSUS_PREFIX", "NATS subject prefix of the API and the events", (*stringValue)(&cfg.Prefix)},
		{"max-payload", "CONCURSUS_MAX_PAYLOAD", "largest request accepted, in bytes (suffixes KiB, MiB allowed)", (*sizeValue)(&cfg.MaxPayload)},
		{"request-timeout", "CONCURSUS_REQUEST_TIMEOUT", "how long a request may wait to run when the client sets no timeout", (*durationValue)(&cfg.RequestTimeout)},
		{"max-cached", "CONCURSUS_MAX_CACHED", "most aggregates whose state is kept in memory", (*intValue)(&cfg.Executor.MaxCached)},
		{"max-in-flight", "CONCURSUS_MAX_IN_FLIGHT", "most commands in progress before new ones get 'unavailable'", (*intValue)(&cfg.Executor.MaxInFlight)},
		{"shutdown-timeout", "CONCURSUS_SHUTDOWN_TIMEOUT", "how long a graceful shutdown may take", (*durationValue)(&cfg.ShutdownTimeout)},
		{"command-retention", "CONCURSUS_COMMAND_RETENTION", "how long the embedded store keeps command records for duplicate detection (negative: forever)", (*durationValue)(&cfg.CommandRetention)},
		{"store", "CONCURSUS_STORE", "where events and command records live: embedded (in --data-dir) or cassandra", (*stringValue)(&storeKind)},
		{"cassandra-hosts", "CONCURSUS_CASSANDRA_HOSTS", "Cassandra contact points, host[:port] separated by commas", (*stringValue)(&cassandraHosts)},
		{"cassandra-keyspace", "CONCURSUS_CASSANDRA_KEYSPACE", "Cassandra keyspace", (*stringValue)(&ccfg.Keyspace)},
		{"cassandra-replication", "CONCURSUS_CASSANDRA_REPLICATION", "replication map used when creating the keyspace, e.g. \"{'class': 'NetworkTopologyStrategy', 'dc1': 3}\" (default SimpleStrategy, factor 1)", (*stringValue)(&ccfg.Replication)},
		{"cassandra-create-schema", "CONCURSUS_CASSANDRA_CREATE_SCHEMA", "create the keyspace and tables when missing", (*boolValue)(&ccfg.CreateSchema)},
		{"cassandra-consistency", "CONCURSUS_CASSANDRA_CONSISTENCY", "consistency of reads and plain writes", (*stringValue)(&ccfg.Consistency)},
		{"cassandra-serial-consistency", "CONCURSUS_CASSANDRA_SERIAL_CONSISTENCY", "consistency of the conditional appends: LOCAL_SERIAL or SERIAL", (*stringValue)(&ccfg.SerialConsistency)},
		{"cassandra-local-dc", "CONCURSUS_CASSANDRA_LOCAL_DC", "prefer the nodes of this data centre", (*stringValue)(&ccfg.LocalDC)},
		{"cassandra-username", "CONCURSUS_CASSANDRA_USERNAME", "Cassandra user (PasswordAuthenticator)", (*stringValue)(&ccfg.Username)},
		{"cassandra-password", "CONCURSUS_CASSANDRA_PASSWORD", "password of --cassandra-username", (*stringValue)(&ccfg.Password)},
		{"cassandra-tls", "CONCURSUS_CASSANDRA_TLS", "connect to Cassandra over TLS", (*boolValue)(&ccfg.TLS.Enabled)},
		{"cassandra-ca-file", "CONCURSUS_CASSANDRA_CA_FILE", "PEM file of the CAs that sign Cassandra's certificates", (*stringValue)(&ccfg.TLS.CAFile)},
		{"cassandra-cert-file", "CONCURSUS_CASSANDRA_CERT_FILE", "PEM client certificate for Cassandra", (*stringValue)(&ccfg.TLS.CertFile)},
		{"cassandra-key-file", "CONCURSUS_CASSANDRA_KEY_FILE", "key of --cassandra-cert-file", (*stringValue)(&ccfg.TLS.KeyFile)},
		{"cassandra-command-ttl", "CONCURSUS_CASSANDRA_COMMAND_TTL", "how long command records are kept (0: forever)", (*durationValue)(&ccfg.CommandTTL)},
		{"log-level", "CONCURSUS_LOG_LEVEL", "debug, info, warn or error", (*stringValue)(&logLevel)},
		{"log-format", "CONCURSUS_LOG_FORMAT", "text or json", (*stringValue)(&logFormat)},
	}
	for _, s := range settings {
		fs.Var(s.value, s.name, fmt.Sprintf("%s [$%s]", s.usage, s.env))
	}
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: node [flags]

Runs a Concursus node serving the lightbulb example aggregate type over the
NATS request API (see README.md). With no flags: an embedded NATS server on
127.0.0.1:4222 and the event log in ./data.

Flags (each also read from the environment variable shown):
`)
		fs.PrintDefaults()
	}
	for _, s := range settings {
		if v, ok := os.LookupEnv(s.env); ok {
			if err := s.value.Set(v); err != nil {
				fmt.Fprintf(stderr, "node: $%s: %v\n", s.env, err)
				return 2
			}
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "node: unexpected arguments %q\n", fs.Args())
		return 2
	}
	logger, err := newLogger(stderr, logLevel, logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "node: %v\n", err)
		return 2
	}
	cfg.Logger = logger

	reg, err := model.NewRegistry(lightbulb.Define().Type)
	if err != nil {
		logger.Error("defining aggregate types", "err", err)
		return 1
	}
	var opts []node.Option
	switch storeKind {
	case "embedded":
	case "cassandra":
		ccfg.Hosts = splitList(cassandraHosts)
		// The node logs one line per failed connection attempt; the
		// driver's own warnings only at debug level.
		ccfg.Logger = logger
		if logLevel != "debug" {
			ccfg.Logger, _ = newLogger(stderr, "error", logFormat)
		}
		if err := ccfg.Validate(); err != nil {
			fmt.Fprintf(stderr, "node: %v\n", err)
			return 2
		}
		opts = append(opts, node.WithStoreOpener("cassandra", func(ctx context.Context) (node.Stores, error) {
			st, err := cassandra.Open(ctx, ccfg)
			if err != nil {
				return node.Stores{}, err
			}
			return node.Stores{Events: st.EventLog(), Commands: st.CommandLog(), Close: st.Close}, nil
		}))
		// A networked store gains from several batches in flight.
		if cfg.Executor.Flushers <= 1 {
			cfg.Executor.Flushers = 4
		}
	default:
		fmt.Fprintf(stderr, "node: --store %q: want embedded or cassandra\n", storeKind)
		return 2
	}
	n, err := node.New(cfg, reg, opts...)
	if err != nil {
		logger.Error("starting node", "err", err)
		return 1
	}
	logger.Info("listening", "nats", n.ClientURL(), "try", fmt.Sprintf(`nats request %s.cmd.lightbulb '{"aggregateId":"b1","command":"create","args":{"wattage":60}}'`, cfg.Prefix))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	<-ctx.Done()
	stop()
	logger.Info("signal received; shutting down (send again to force)")
	go func() {
		force := make(chan os.Signal, 1)
		signal.Notify(force, os.Interrupt, syscall.SIGTERM)
		<-force
		logger.Error("forced exit")
		os.Exit(1)
	}()
	if err := n.Shutdown(context.Background()); err != nil {
		logger.Error("shutdown", "err", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

type stringValue string

func (v *stringValue) String() string     { return string(*v) }
func (v *stringValue) Set(s string) error { *v = stringValue(s); return nil }

type boolValue bool

func (v *boolValue) String() string   { return strconv.FormatBool(bool(*v)) }
func (v *boolValue) IsBoolFlag() bool { return true }
func (v *boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("%q is not true or false", s)
	}
	*v = boolValue(b)
	return nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

type intValue int

func (v *intValue) String() string { return strconv.Itoa(int(*v)) }
func (v *intValue) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("%q is not a whole number", s)
	}
	*v = intValue(n)
	return nil
}

type durationValue time.Duration

func (v *durationValue) String() string { return time.Duration(*v).String() }
func (v *durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a duration (e.g. 10s, 500ms)", s)
	}
	*v = durationValue(d)
	return nil
}

// sizeValue is a byte count, optionally with a KiB or MiB suffix.
type sizeValue int

func (v *sizeValue) String() string { return strconv.Itoa(int(*v)) }
func (v *sizeValue) Set(s string) error {
	mult := 1
	num := s
	for suffix, m := range map[string]int{"KiB": 1 << 10, "MiB": 1 << 20} {
		if strings.HasSuffix(s, suffix) {
			num, mult = strings.TrimSuffix(s, suffix), m
		}
	}
	n, err := strconv.Atoi(strings.TrimSpace(num))
	if err != nil || n < 0 {
		return fmt.Errorf("%q is not a size in bytes (e.g. 1048576 or 1MiB)", s)
	}
	*v = sizeValue(n * mult)
	return nil
}
