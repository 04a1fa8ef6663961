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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/concursus-go/concursus/cluster"
	"github.com/concursus-go/concursus/eventbus"
	"github.com/concursus-go/concursus/examples/lightbulb"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/node"
	"github.com/concursus-go/concursus/router"
	"github.com/concursus-go/concursus/storage/cassandra"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// setting is one flag with its environment variable.
type setting struct {
	name, env, usage string
	value            flag.Value
}

// run runs the command line args and returns the exit code: 0 done, 1
// failed, 2 a usage error. "node cluster …" is the cluster report (see
// clustercmd.go); anything else runs a node.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "cluster" {
		return runCluster(args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "deadletters" {
		return runDeadLetters(args[1:], stdout, stderr)
	}
	inv, code := configure(args, stderr)
	if inv == nil {
		return code
	}
	return serve(inv)
}

// invocation is a node ready to start: its configuration and the options
// of node.New.
type invocation struct {
	cfg    node.Config
	opts   []node.Option
	logger *slog.Logger
}

// configure reads the environment and the flags into a node configuration.
// It starts nothing; on a usage error, or after --help, it returns nil
// and the exit code.
func configure(args []string, stderr io.Writer) (*invocation, int) {
	cfg := node.DefaultConfig()
	logLevel, logFormat := "info", "text"
	storeKind := "embedded"
	ccfg := cassandra.DefaultConfig()
	cassandraHosts := strings.Join(ccfg.Hosts, ",")
	var cl clusterFlags
	var st streamFlags
	cl.gossipAddr = "127.0.0.1"
	cl.gossipPort = cluster.DefaultPort
	cl.profile = string(cluster.ProfileLAN)
	cl.partitions = router.DefaultPartitionCount
	cl.handoverGrace = durationValue(500 * time.Millisecond)
	cl.window = durationValue(10 * time.Minute)
	cl.voters = 3
	cl.failureGrace = durationValue(30 * time.Second)
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	settings := slices.Concat([]setting{
		{"node-id", "CONCURSUS_NODE_ID", "name of this node in logs and admin replies, and its member id in a cluster (default: host name; in cluster mode a fresh <host>-<pid>-<random> per process: give a stable id only to a node that keeps its identity's state across restarts)", (*stringValue)(&cfg.NodeID)},
		{"nats-url", "CONCURSUS_NATS_URL", "NATS server to connect to; empty starts an embedded server", (*stringValue)(&cfg.NATS.URL)},
	}, natsCredentials(&cfg.NATS), []setting{
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
		{"cluster", "CONCURSUS_CLUSTER", "run as a member of a cluster (implied by --join); needs --store cassandra", (*boolValue)(&cl.enabled)},
		{"join", "CONCURSUS_JOIN", "gossip addresses of running members to join, host:port separated by commas (empty: start a new cluster)", (*stringValue)(&cl.join)},
		{"gossip-addr", "CONCURSUS_GOSSIP_ADDR", "IP address gossip listens on, UDP and TCP (0.0.0.0: every interface)", (*stringValue)(&cl.gossipAddr)},
		{"gossip-port", "CONCURSUS_GOSSIP_PORT", "gossip port, UDP and TCP (0: any free port)", (*intValue)(&cl.gossipPort)},
		{"advertise-addr", "CONCURSUS_ADVERTISE_ADDR", "IP address the other members reach this one on, when not --gossip-addr (NAT, containers)", (*stringValue)(&cl.advertiseAddr)},
		{"advertise-port", "CONCURSUS_ADVERTISE_PORT", "gossip port the other members reach this one on (needs --advertise-addr; default --gossip-port)", (*intValue)(&cl.advertisePort)},
		{"gossip-key", "CONCURSUS_GOSSIP_KEY", "base64 AES key of 16, 24 or 32 bytes that encrypts gossip; the same on every member (e.g. from: head -c 32 /dev/urandom | base64)", (*stringValue)(&cl.key)},
		{"gossip-profile", "CONCURSUS_GOSSIP_PROFILE", "failure-detection timings: lan, wan, or local (several nodes on one machine)", (*stringValue)(&cl.profile)},
		{"partitions", "CONCURSUS_PARTITIONS", "partitions aggregates are hashed into; the same on every member, for the cluster's whole life", (*intValue)(&cl.partitions)},
		{"handover-grace", "CONCURSUS_HANDOVER_GRACE", "how long a leaving member still forwards what reaches it, so that the others' rings move on first", (*durationValue)(&cl.handoverGrace)},
		{"stream", "CONCURSUS_STREAM", "also keep the events in a JetStream stream the node creates (the embedded NATS server then runs JetStream in --data-dir/jetstream)", (*boolValue)(&st.enabled)},
		{"stream-name", "CONCURSUS_STREAM_NAME", "name of the events stream (default: the prefix in capitals + _EVENTS)", (*stringValue)(&st.name)},
		{"stream-max-age", "CONCURSUS_STREAM_MAX_AGE", "drop events older than this from the stream (0: keep)", (*durationValue)(&st.maxAge)},
		{"stream-max-bytes", "CONCURSUS_STREAM_MAX_BYTES", "bound the stream's size, oldest events first (0: no bound; suffixes KiB, MiB, GiB)", (*sizeValue)(&st.maxBytes)},
		{"stream-replicas", "CONCURSUS_STREAM_REPLICAS", "copies of the stream in a NATS cluster (1 to 5)", (*intValue)(&st.replicas)},
		{"no-outbox", "CONCURSUS_NO_OUTBOX", "publish events best effort, without the outbox (a node dying between append and publish can then leave an event off the bus)", (*boolValue)(&cfg.NoOutbox)},
		{"no-idempotency", "CONCURSUS_NO_IDEMPOTENCY", "run the cluster without the replicated idempotency filter (retries are then recognised by a command-log read per command)", (*boolValue)(&cl.noFilter)},
		{"raft-addr", "CONCURSUS_RAFT_ADDR", "host:port the idempotency filter's raft transport listens on (default: --gossip-addr, any free port; others learn it by gossip)", (*stringValue)(&cl.raftAddr)},
		{"raft-advertise", "CONCURSUS_RAFT_ADVERTISE", "host:port the other members dial for raft, when it differs from --raft-addr", (*stringValue)(&cl.raftAdvertise)},
		{"idempotency-window", "CONCURSUS_IDEMPOTENCY_WINDOW", "how long the filter remembers a command id's outcome", (*durationValue)(&cl.window)},
		{"raft-voters", "CONCURSUS_RAFT_VOTERS", "raft voters of the filter among the members (1 to 5; the others are non-voters)", (*intValue)(&cl.voters)},
		{"raft-failure-grace", "CONCURSUS_RAFT_FAILURE_GRACE", "how long a failed member stays a raft server before it is removed", (*durationValue)(&cl.failureGrace)},
		{"log-level", "CONCURSUS_LOG_LEVEL", "debug, info, warn or error", (*stringValue)(&logLevel)},
		{"log-format", "CONCURSUS_LOG_FORMAT", "text or json", (*stringValue)(&logFormat)},
	})
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: node [flags]
       node cluster [flags]    print who owns what in a running cluster (node cluster --help)
       node deadletters list|replay --consumer NAME [flags]
                               list or replay a subscription's dead letters (node deadletters --help)

Runs a Concursus node serving the lightbulb example aggregate type over the
NATS request API (see README.md). With no flags: an embedded NATS server on
127.0.0.1:4222 and the event log in ./data. With --cluster or --join it
joins a cluster of nodes sharing one NATS and one Cassandra event log
(README.md, "Running a cluster").

Flags (each also read from the environment variable shown):
`)
		fs.PrintDefaults()
	}
	given, code, ok := parseSettings(fs, settings, args, stderr)
	if !ok {
		return nil, code
	}
	if fs.NArg() > 0 {
		if fs.Arg(0) == "cluster" {
			fmt.Fprintf(stderr, "node: the cluster subcommand comes first: node cluster [flags]\n")
		} else {
			fmt.Fprintf(stderr, "node: unexpected arguments %q\n", fs.Args())
		}
		return nil, 2
	}
	logger, err := newLogger(stderr, logLevel, logFormat)
	if err != nil {
		fmt.Fprintf(stderr, "node: %v\n", err)
		return nil, 2
	}
	cfg.Logger = logger
	inv := &invocation{cfg: cfg, logger: logger}
	if err := faultInjection(&inv.cfg, logger); err != nil {
		fmt.Fprintf(stderr, "node: %v\n", err)
		return nil, 2
	}

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
			return nil, 2
		}
		inv.opts = append(inv.opts, node.WithStoreOpener("cassandra", func(ctx context.Context) (node.Stores, error) {
			st, err := cassandra.Open(ctx, ccfg)
			if err != nil {
				return node.Stores{}, err
			}
			return node.Stores{Events: st.EventLog(), Commands: st.CommandLog(), Close: st.Close}, nil
		}))
		// A networked store gains from several batches in flight.
		if inv.cfg.Executor.Flushers <= 1 {
			inv.cfg.Executor.Flushers = 4
		}
	default:
		fmt.Fprintf(stderr, "node: --store %q: want embedded or cassandra\n", storeKind)
		return nil, 2
	}

	if bool(st.enabled) {
		inv.cfg.Stream = &eventbus.StreamConfig{Name: st.name, MaxAge: time.Duration(st.maxAge), MaxBytes: int64(st.maxBytes), Replicas: st.replicas}
		if err := inv.cfg.Stream.WithDefaults(inv.cfg.Prefix).Validate(); err != nil {
			fmt.Fprintf(stderr, "node: --stream: %v\n", err)
			return nil, 2
		}
	} else {
		for _, name := range []string{"stream-name", "stream-max-age", "stream-max-bytes", "stream-replicas"} {
			if given[name] {
				fmt.Fprintf(stderr, "node: --%s only applies with --stream\n", name)
				return nil, 2
			}
		}
	}
	cc, err := cl.config(given)
	if err != nil {
		fmt.Fprintf(stderr, "node: %v\n", err)
		return nil, 2
	}
	if cc != nil {
		if storeKind != "cassandra" {
			fmt.Fprintf(stderr, "node: cluster mode needs --store cassandra: every member must share one event log, and the embedded store is a file of this node only\n")
			return nil, 2
		}
		inv.cfg.Cluster = cc
		if !given["node-id"] {
			// node.New gives the node a fresh id (cluster.DefaultNodeID);
			// the host name would come back after a restart.
			inv.cfg.NodeID = ""
		}
		if inv.cfg.NATS.URL == "" {
			logger.Warn("cluster mode with this node's embedded NATS server: the other members must reach it with --nats-url, and it is a single point of failure for the cluster (when this node stops, every member loses NATS); use a NATS cluster and --nats-url on every member to avoid it",
				"nats", fmt.Sprintf("nats://%s:%d", inv.cfg.NATS.EmbeddedHost, inv.cfg.NATS.EmbeddedPort))
		}
	}
	return inv, 0
}

// parseSettings registers settings on fs, applies the environment
// variables that are set, then parses args, so a flag overrides its
// variable. given holds the names of the settings set by a flag or by a
// variable that is not empty. When
// ok is false the caller exits with code: 0 after --help, 2 on a usage
// error (already reported on stderr).
func parseSettings(fs *flag.FlagSet, settings []setting, args []string, stderr io.Writer) (given map[string]bool, code int, ok bool) {
	for _, s := range settings {
		fs.Var(s.value, s.name, fmt.Sprintf("%s [$%s]", s.usage, s.env))
	}
	given = make(map[string]bool)
	for _, s := range settings {
		if v, ok := os.LookupEnv(s.env); ok {
			if err := s.value.Set(v); err != nil {
				fmt.Fprintf(stderr, "%s: $%s: %v\n", fs.Name(), s.env, err)
				return nil, 2, false
			}
			given[s.name] = v != ""
		}
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0, false
		}
		return nil, 2, false
	}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	return given, 0, true
}

// serve starts the node and runs it until SIGINT or SIGTERM.
func serve(inv *invocation) int {
	logger := inv.logger
	reg, err := model.NewRegistry(lightbulb.Define().Type)
	if err != nil {
		logger.Error("defining aggregate types", "err", err)
		return 1
	}
	n, err := node.New(context.Background(), inv.cfg, reg, inv.opts...)
	if err != nil {
		logger.Error("starting node", "err", err)
		return 1
	}
	prefix := inv.cfg.Prefix
	if addr := n.GossipAddr(); addr != "" {
		logger.Info("cluster member: others join with --join "+addr, "node", n.NodeID(), "gossip", addr,
			"inspect", fmt.Sprintf("go run ./cmd/node cluster --nats-url %s --prefix %s", n.Conn().ConnectedUrlRedacted(), prefix))
	}
	logger.Info("listening", "nats", n.ClientURL(), "try", fmt.Sprintf(`nats request %s.cmd.lightbulb '{"aggregateId":"b1","command":"create","args":{"wattage":60}}'`, prefix))

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

// streamFlags are the --stream settings.
type streamFlags struct {
	enabled  boolValue
	name     string
	maxAge   durationValue
	maxBytes sizeValue
	replicas int
}

func (v *sizeValue) String() string { return strconv.Itoa(int(*v)) }
func (v *sizeValue) Set(s string) error {
	mult := 1
	num := s
	for suffix, m := range map[string]int{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
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
