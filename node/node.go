// Package node assembles a Concursus node: a NATS connection (to a given
// server, or to an embedded nats-server it starts), the event and command
// logs (an embedded bbolt store unless others are injected), the executor,
// the event publisher, and the NATS request API of package api.
//
// A node is what cmd/node runs, and what a Go service embeds to host its
// own aggregate types:
//
//	reg, _ := model.NewRegistry(myType)
//	n, err := node.New(ctx, node.Config{DataDir: "data"}, reg)
//	...
//	defer n.Shutdown(context.Background())
//
// # Clusters
//
// With Config.Cluster set, the node gossips with the others (package
// cluster) and places every aggregate on a bounded-load ring of the alive
// nodes (package router). Every node serves the queue group, so any node
// may receive a request; a node that does not own the aggregate forwards
// the request, unchanged but for two internal headers (hop count and the
// client's remaining time), to the owner's direct subject
// "<prefix>.node.<id>.cmd.<type>" with the client's reply inbox, and the
// owner answers the client itself. A forwarded request that reaches a node
// that no longer owns it — the ring moved while it travelled — is passed
// on by that node's newer ring; one that keeps bouncing waits briefly for
// the rings to converge. Internal routing never reaches a client: a
// request that runs out of time or hops is answered "timeout" or
// "unavailable", which clients retry with the same command id.
//
// On every ring change the node drops the cached state of the partitions
// it lost or gained: it forwards new requests for a lost partition at once
// and lets the commands already queued there finish; the gaining node
// loads state fresh from the log. The event log's fenced append makes any
// overlap harmless (the late writer gets a conflict, reloads and decides
// once more). Shutdown leaves the cluster before draining, forwarding what
// still arrives for HandoverGrace.
//
// A cluster needs one event log and command log that every node shares
// (Cassandra); New refuses the embedded store in cluster mode.
//
// # Layout and lifecycle
//
// The node is a shell over components that live in their own packages
// (executor, eventbus's publisher and sweeper, cluster, idempotency,
// router): node.go builds them in order, lifecycle.go tears them down in
// reverse, handlers.go takes requests, decode.go parses them, route.go
// decides where each runs, admin.go answers the admin subjects,
// delivery.go assembles publication, store.go stands in for a store still
// connecting, cluster.go and faults.go follow membership and pauses. Every
// background goroutine is started through one counted group
// (internal/lifecycle) with one stop context; requests waiting on a timer
// are counted apart, and a drain waits for them before the executor
// closes.
package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/cluster"
	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/eventbus"
	"github.com/concursus-go/concursus/eventlog"
	"github.com/concursus-go/concursus/executor"
	"github.com/concursus-go/concursus/idempotency"
	"github.com/concursus-go/concursus/internal/lifecycle"
	"github.com/concursus-go/concursus/model"
	"github.com/concursus-go/concursus/storage/bolt"
)

// Version is reported in admin replies.
const Version = "0.1.0"

// Node is a running Concursus node. Its methods are safe for concurrent use.
type Node struct {
	cfg      Config
	reg      *model.Registry
	log      *slog.Logger
	started  time.Time
	server   *server.Server // nil when connected to an external server
	nc       *nats.Conn
	db       *bolt.DB // nil when both logs were injected
	events   eventlog.Log
	commands commandlog.Log
	exec     *executor.Executor
	pub      *eventbus.Publisher
	subs     []*nats.Subscription
	// sweeper takes over departed writers' outboxes (nil: best-effort
	// publication; see delivery.go).
	sweeper *eventbus.Sweeper
	// lazy is the external store while it connects (nil for the embedded
	// store or injected logs).
	lazy *lazyStore
	// bg runs every background goroutine of the node (the store's connect,
	// pruning, the outbox sweep, the cluster watchers) under one stop
	// context; closeResources stops them all (lifecycle.go).
	bg *lifecycle.Group

	// cmdSubjectPrefix, querySubjectPrefix and historySubjectPrefix
	// precede the aggregate type.
	cmdSubjectPrefix, querySubjectPrefix, historySubjectPrefix string
	factsSubjectPrefix                                         string

	// Cluster mode (see cluster.go); clus is nil for a node on its own.
	clus          *cluster.Cluster
	directBase    string // subject base of requests addressed to this node
	ringSpec      string
	route         atomic.Pointer[routing]
	routeMu       sync.Mutex // serializes applyView
	viewSub       *cluster.Subscription
	delayed       sync.WaitGroup // requests waiting for the ring to settle
	counters      routeCounters
	down          map[string]bool // members NATS says are gone; under routeMu
	silent        map[string]int  // consecutive "no responders" per member; under routeMu
	reconnectedAt atomic.Int64    // Unix ns of this node's last NATS reconnect
	meta          cluster.Meta    // what this node gossips; under metaMu
	metaMu        sync.Mutex

	// The idempotency group (nil unless clustered with the filter on).
	group         *idempotency.Group
	stopGroupNATS func()
	groupStop     sync.Once

	shutdownOnce sync.Once
	shutdownErr  error
}

// Option changes how New builds a node.
type Option func(*options)

type options struct {
	events    eventlog.Log
	commands  commandlog.Log
	storeName string
	opener    StoreOpener
}

// WithEventLog makes the node use log instead of the embedded store's event
// log. The node does not close it.
func WithEventLog(log eventlog.Log) Option { return func(o *options) { o.events = log } }

// WithCommandLog makes the node use log instead of the embedded store's
// command log. The node does not close it.
func WithCommandLog(log commandlog.Log) Option { return func(o *options) { o.commands = log } }

// New starts a node: stores, NATS, executor, subscriptions. When it returns
// without error the node is taking requests.
//
// ctx bounds the start-up (connecting to NATS's JetStream, joining the
// cluster, reading the outbox); cancelling it once New has returned does
// nothing. The node runs until Shutdown.
func New(ctx context.Context, cfg Config, reg *model.Registry, opts ...Option) (n *Node, err error) {
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if reg == nil {
		return nil, errors.New("node: a model.Registry is required")
	}
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	n = &Node{
		cfg:                  cfg,
		reg:                  reg,
		log:                  cfg.Logger.With("node", cfg.NodeID),
		started:              cfg.Clock(),
		events:               o.events,
		commands:             o.commands,
		cmdSubjectPrefix:     api.CommandSubject(cfg.Prefix, ""),
		querySubjectPrefix:   api.QuerySubject(cfg.Prefix, ""),
		historySubjectPrefix: api.HistorySubject(cfg.Prefix, ""),
		factsSubjectPrefix:   api.FactsSubject(cfg.Prefix, ""),
		bg:                   lifecycle.New(context.Background()),
		directBase:           directBase(cfg.Prefix, cfg.NodeID),
		down:                 make(map[string]bool),
		silent:               make(map[string]int),
	}
	if cfg.Cluster != nil {
		n.ringSpec = ringSpec(cfg.Cluster.Ring)
	}
	built := n // n is nil on an error return; release what was built
	defer func() {
		if err != nil {
			built.closeResources()
		}
	}()

	if o.opener != nil {
		if o.events != nil || o.commands != nil {
			return nil, errors.New("node: WithStoreOpener cannot be combined with WithEventLog or WithCommandLog")
		}
		n.lazy = &lazyStore{name: o.storeName, ready: make(chan struct{})}
		n.events, n.commands = lazyEvents{n.lazy}, lazyCommands{n.lazy}
		n.bg.Go(func(ctx context.Context) { n.lazy.connect(ctx, o.opener, n.log) })
	}
	if (n.events == nil || n.commands == nil) && cfg.Cluster != nil {
		return nil, errors.New("node: a cluster needs one event log shared by every node (--store cassandra); the embedded store is a file of this node only")
	}
	if n.events == nil || n.commands == nil {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("node: creating data dir: %w", err)
		}
		path := filepath.Join(cfg.DataDir, "concursus.db")
		n.db, err = bolt.Open(path, bolt.DefaultOptions())
		if err != nil {
			return nil, fmt.Errorf("node: opening embedded store: %w", err)
		}
		if n.events == nil {
			n.events = n.db.EventLog()
		}
		if n.commands == nil {
			n.commands = n.db.CommandLog()
		}
		n.log.Info("embedded store open", "path", path)
	}

	if err := n.connectNATS(); err != nil {
		return nil, err
	}
	if cfg.Cluster != nil && !cfg.Cluster.Idempotency.Disabled {
		if err := n.startIdempotency(); err != nil {
			return nil, err
		}
	}
	if cfg.Stream != nil {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		name, err := eventbus.EnsureStream(ctx, n.nc, cfg.Prefix, *cfg.Stream)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("node: %w", err)
		}
		n.log.Info("events are kept in a JetStream stream", "stream", name, "maxAge", cfg.Stream.MaxAge, "maxBytes", cfg.Stream.MaxBytes)
	}
	if err := n.startPublisher(ctx); err != nil {
		return nil, err
	}
	deps := executor.Deps{
		Registry: reg,
		Events:   n.events,
		Commands: n.executorCommands(),
		Publish:  n.executorPublisher(),
		Clock:    cfg.Clock,
		Logger:   n.log,
	}
	if n.db != nil && o.events == nil && o.commands == nil {
		deps.Decisions = n.db // both logs in one file: one commit per batch
	}
	if n.group != nil {
		deps.Filter = n.group
	}
	xcfg := cfg.Executor
	if n.group != nil {
		// Records missing after a crash are repaired for as long as
		// clients may retry: at least the filter's window.
		if w := cfg.Cluster.Idempotency.Window; w > cmp.Or(xcfg.RepairWithin, executor.DefaultConfig().RepairWithin) {
			xcfg.RepairWithin = w
		}
	}
	if r := cfg.CommandRetention; r > 0 {
		// …but not for longer than records are kept: a pruned record is
		// not missing.
		xcfg.RepairWithin = min(cmp.Or(xcfg.RepairWithin, executor.DefaultConfig().RepairWithin), r)
	}
	n.exec, err = executor.New(xcfg, deps)
	if err != nil {
		return nil, err
	}
	if err := n.subscribe(); err != nil {
		return nil, err
	}
	if cfg.Cluster != nil {
		// Others forward to the direct subjects as soon as they see this
		// node, and the queue group must not hand it requests before it has
		// a ring: direct first, then gossip, then the queue group.
		if err := n.startCluster(ctx); err != nil {
			return nil, err
		}
	}
	if err := n.subscribeQueue(); err != nil {
		return nil, err
	}
	n.startPruning()
	if n.sweeper != nil {
		n.bg.Go(n.sweeper.Run)
	}
	if ready, store := n.Ready(); ready {
		n.log.Info("node ready", "prefix", cfg.Prefix, "nats", n.nc.ConnectedUrlRedacted(), "aggregateTypes", reg.Names(), "store", store)
	} else {
		n.log.Info("node started; commands are answered 'unavailable' until the store connects", "prefix", cfg.Prefix, "nats", n.nc.ConnectedUrlRedacted(), "aggregateTypes", reg.Names(), "store", store)
	}
	return n, nil
}

func (n *Node) connectNATS() error {
	c := n.cfg.NATS
	opts := []nats.Option{
		nats.Name("concursus-node-" + n.cfg.NodeID),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				n.log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			n.reconnectedAt.Store(n.cfg.Clock().UnixNano())
			n.log.Info("NATS reconnected", "url", nc.ConnectedUrlRedacted())
			// Outcomes decided around the outage may not have reached
			// the filter (forwarded proposals were lost with the link).
			n.doubt("NATS reconnected")
		}),
	}
	url := c.URL
	if url == "" {
		s, err := server.NewServer(&server.Options{
			ServerName: n.cfg.NodeID,
			Host:       c.EmbeddedHost,
			Port:       c.EmbeddedPort,
			// Leave room above our own limit so oversized requests reach
			// the node and get a typed reply instead of a NATS error.
			MaxPayload: int32(2*n.cfg.MaxPayload + 64<<10),
			MaxPending: max(64<<20, int64(4*n.cfg.MaxPayload)),
			// A client that stops answering pings (a frozen process) is
			// disconnected after about EmbeddedPingInterval*(MaxPingsOut+1),
			// so the queue group stops handing it requests.
			PingInterval: embeddedPingInterval,
			MaxPingsOut:  embeddedMaxPingsOut,
			NoLog:        true,
			NoSigs:       true,
			JetStream:    n.cfg.Stream != nil,
			StoreDir:     jetStreamDir(n.cfg),
		})
		if err != nil {
			return fmt.Errorf("node: configuring embedded NATS: %w", err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			s.Shutdown()
			return fmt.Errorf("node: embedded NATS did not start on %s:%d (port in use?)", c.EmbeddedHost, c.EmbeddedPort)
		}
		n.server = s
		url = s.ClientURL()
		opts = append(opts, nats.InProcessServer(s))
		n.log.Info("embedded NATS server started", "url", url)
	} else {
		opts = append(opts, c.AuthOptions()...)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return fmt.Errorf("node: connecting to NATS at %s: %w", url, err)
	}
	n.nc = nc
	return nil
}

// The embedded server's pings: a client (a node, or anyone's) that does not
// answer two pings a second apart is disconnected, and its queue
// subscriptions with it, 2–3 s after it froze. nats-server's defaults (2 min,
// 2 pings) would leave a third of a 3-node cluster's requests waiting on a
// paused node for minutes; an external server should be configured the
// same way (README, "Running a cluster").
const (
	embeddedPingInterval = time.Second
	embeddedMaxPingsOut  = 2
)

// jetStreamDir is where the embedded server keeps JetStream data.
func jetStreamDir(cfg Config) string {
	if cfg.Stream == nil {
		return ""
	}
	return filepath.Join(cfg.DataDir, "jetstream")
}

// queueGroup is the queue group every node's request subscriptions join,
// so each request is delivered to one node.
func (n *Node) queueGroup() string { return n.cfg.Prefix + ".nodes" }

// subscribe subscribes to admin requests and, in a cluster, to the
// requests addressed to this node.
func (n *Node) subscribe() error {
	s, err := n.nc.Subscribe(api.AdminInfoSubject(n.cfg.Prefix), n.onInfo)
	if err != nil {
		return fmt.Errorf("node: subscribing to admin: %w", err)
	}
	n.subs = append(n.subs, s)
	for _, subj := range []string{api.AdminClusterSubject(n.cfg.Prefix), api.NodeAdminSubject(n.cfg.Prefix, n.cfg.NodeID)} {
		s, err := n.nc.Subscribe(subj, n.onClusterInfo)
		if err != nil {
			return fmt.Errorf("node: subscribing to admin: %w", err)
		}
		n.subs = append(n.subs, s)
	}
	if n.cfg.Cluster != nil {
		// Requests forwarded to this node: a queue group of its own
		// subscriptions, so that each is taken once.
		base := n.directBase + "."
		if err := n.takeRequests(base+"cmd.", n.directBase, n.cfg.Subscribers, func(m *nats.Msg, t string) { n.handleCommand(m, t, true) }); err != nil {
			return err
		}
		if err := n.takeRequests(base+"query.", n.directBase, 1, func(m *nats.Msg, t string) { n.handleQuery(m, t, true) }); err != nil {
			return err
		}
		if err := n.takeRequests(base+"facts.", n.directBase, 1, n.handleFacts); err != nil {
			return err
		}
		if err := n.subscribeTo(pingSubject(n.directBase), "", func(m *nats.Msg) { _ = m.Respond(nil) }); err != nil {
			return err
		}
	}
	return n.nc.Flush()
}

func (n *Node) subscribeTo(subject, queue string, h nats.MsgHandler) error {
	s, err := n.nc.QueueSubscribe(subject, queue, h)
	if err != nil {
		return fmt.Errorf("node: subscribing to %s: %w", subject, err)
	}
	if err := s.SetPendingLimits(-1, 256<<20); err != nil {
		return fmt.Errorf("node: setting pending limits: %w", err)
	}
	n.subs = append(n.subs, s)
	return nil
}

// subscribeQueue joins the queue group that spreads client requests over
// the nodes.
func (n *Node) subscribeQueue() error {
	q := n.queueGroup()
	if err := n.takeRequests(n.cmdSubjectPrefix, q, n.cfg.Subscribers, func(m *nats.Msg, t string) { n.handleCommand(m, t, false) }); err != nil {
		return err
	}
	if err := n.takeRequests(n.querySubjectPrefix, q, 1, func(m *nats.Msg, t string) { n.handleQuery(m, t, false) }); err != nil {
		return err
	}
	if err := n.takeRequests(n.historySubjectPrefix, q, 1, n.handleHistory); err != nil {
		return err
	}
	if err := n.takeRequests(n.factsSubjectPrefix, q, 1, n.handleFacts); err != nil {
		return err
	}
	return n.nc.Flush()
}

// takeRequests subscribes copies times to prefix+"*" in queue and hands
// each request to handle with its aggregate type, the subject's last
// token: the prefix a request is taken on is the one it is read with.
func (n *Node) takeRequests(prefix, queue string, copies int, handle func(m *nats.Msg, aggType string)) error {
	h := func(m *nats.Msg) { handle(m, strings.TrimPrefix(m.Subject, prefix)) }
	for range copies {
		if err := n.subscribeTo(prefix+"*", queue, h); err != nil {
			return err
		}
	}
	return nil
}

// ClientURL is the URL clients use to reach this node's NATS server.
func (n *Node) ClientURL() string {
	if n.server != nil {
		return n.server.ClientURL()
	}
	return n.cfg.NATS.URL
}

// Conn is the node's own NATS connection.
func (n *Node) Conn() *nats.Conn { return n.nc }

// Executor is the node's command executor (for stats and direct calls).
func (n *Node) Executor() *executor.Executor { return n.exec }

// EventLog is the event log the node writes.
func (n *Node) EventLog() eventlog.Log { return n.events }

// CommandLog is the command log the node writes.
func (n *Node) CommandLog() commandlog.Log { return n.commands }

// Registry is the node's aggregate types.
func (n *Node) Registry() *model.Registry { return n.reg }
