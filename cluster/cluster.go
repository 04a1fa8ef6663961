package cluster

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/concursus-go/concursus/internal/backoff"
)

var (
	// ErrInvalidConfig wraps every Config.Validate error. Fix the config;
	// retrying does not help.
	ErrInvalidConfig = errors.New("cluster: invalid config")
	// ErrMetaTooLarge: the encoded Meta exceeds MetaMaxSize. Returned by
	// New (wrapped with ErrInvalidConfig) and SetMeta.
	ErrMetaTooLarge = errors.New("cluster: metadata too large")
	// ErrJoin: Join's context ended before any seed answered. The error
	// also wraps the context's error and names the last failure. Retrying
	// is safe.
	ErrJoin = errors.New("cluster: join failed")
	// ErrTimeout: Leave or SetMeta queued its broadcast but could not
	// confirm it was sent to another member in time. The change is made
	// locally and still spreads by gossip (a missed leave is at worst
	// detected as a failure), so a retry is unnecessary.
	ErrTimeout = errors.New("cluster: broadcast not confirmed in time")
	// ErrLeft: Join or SetMeta after Leave. memberlist cannot rejoin after
	// leaving: Close this Cluster and start a new one.
	ErrLeft = errors.New("cluster: left the cluster")
	// ErrClosed: the Cluster is closed.
	ErrClosed = errors.New("cluster: closed")
)

// Cluster is this node's membership in a memberlist gossip cluster. It
// keeps a table of the members it has seen, publishes versioned views of
// it to subscribers, and announces this node's metadata.
//
// All methods are safe for concurrent use.
type Cluster struct {
	cfg   Config
	log   *slog.Logger
	ml    *memberlist.Memberlist
	table *table

	done     chan struct{} // closed by Close: stops run and Join
	closedCh chan struct{} // closed when Close has finished
	wg       sync.WaitGroup

	// life serializes the lifecycle calls into memberlist (Leave, SetMeta,
	// Close): memberlist panics on Leave after Shutdown. It is taken
	// before any memberlist lock and before table.mu.
	life struct {
		sync.Mutex
		closed bool
		left   bool
	}

	// meta holds the encoded local metadata for memberlist's NodeMeta
	// callback. Innermost lock.
	meta struct {
		sync.Mutex
		enc []byte
	}
}

// New checks cfg (after filling defaults), starts memberlist listening on
// BindAddr:BindPort and starts the publisher goroutine. It joins no one:
// call Join. logger receives this package's lines and memberlist's (see
// the package doc); nil means slog.Default().
func New(cfg Config, logger *slog.Logger) (*Cluster, error) {
	cfg.Join = slices.Clone(cfg.Join)
	cfg.SecretKey = slices.Clone(cfg.SecretKey)
	cfg.fillDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	mc, err := cfg.Profile.memberlistConfig()
	if err != nil {
		return nil, err
	}
	enc, err := cfg.Meta.encode()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}

	c := &Cluster{
		cfg:      cfg,
		log:      logger.With("node", cfg.NodeID),
		table:    newTable(cfg.Tombstones),
		done:     make(chan struct{}),
		closedCh: make(chan struct{}),
	}
	c.meta.enc = enc

	mc.Name = cfg.NodeID
	mc.BindAddr = cfg.BindAddr
	mc.BindPort = cfg.BindPort
	mc.AdvertiseAddr = cfg.AdvertiseAddr
	mc.AdvertisePort = cfg.AdvertisePort
	mc.SecretKey = cfg.SecretKey
	if cfg.transport != nil {
		mc.Transport = cfg.transport
	}
	d := &delegate{c: c}
	mc.Delegate = d
	mc.Events = d
	mc.Conflict = d
	mc.LogOutput = nil
	mc.Logger = log.New(logWriter{log: c.log}, "", 0)

	// memberlist calls the delegate (and so fills the table with this
	// node) before Create returns.
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("cluster: start memberlist on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
	}
	c.ml = ml

	c.wg.Add(1)
	go c.run()
	if cfg.RejoinInterval > 0 {
		c.wg.Add(1)
		go c.rejoin()
	}

	self, _ := c.table.get(cfg.NodeID)
	c.log.Info("cluster: started", "addr", self.Addr, "profile", string(cfg.Profile),
		"encrypted", len(cfg.SecretKey) > 0)
	return c, nil
}

// run is the publisher: it turns table changes into views for the
// subscribers and logs each member's change once. Changes arriving while
// it works coalesce into the next view.
func (c *Cluster) run() {
	defer c.wg.Done()
	var last View
	for {
		select {
		case <-c.done:
			return
		case <-c.table.changed:
		}
		v := c.table.publish()
		for _, e := range Diff(last, v) {
			c.log.Info("cluster: member "+e.Kind.String(), "member", e.Member.ID,
				"addr", e.Member.Addr, "version", v.Version)
		}
		last = v
	}
}

// rejoin contacts, every RejoinInterval, the members this node holds dead
// (failed, not left) and, while any is, the seeds: a member declared dead
// across a network partition that has healed merges state again and comes
// back alive on both sides (memberlist has the member that was declared
// dead refute it with a higher incarnation). A member that is really gone
// costs one failed connection attempt per round.
func (c *Cluster) rejoin() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		if c.joinable() != nil {
			return // left or closed: memberlist cannot join again
		}
		targets := c.rejoinTargets()
		if len(targets) == 0 {
			continue
		}
		n, err := c.ml.Join(targets)
		if n > 0 {
			c.log.Info("cluster: contacted members held dead", "targets", targets, "answered", n)
		} else if err != nil {
			c.log.Debug("cluster: members held dead did not answer", "targets", targets, "err", strings.Join(strings.Fields(err.Error()), " "))
		}
	}
}

// rejoinTargets returns the gossip addresses of the members held dead,
// plus the seeds when there is any.
func (c *Cluster) rejoinTargets() []string {
	var out []string
	for _, m := range c.View().Members {
		if m.State == StateDead && m.ID != c.cfg.NodeID && m.Addr != "" && !slices.Contains(out, m.Addr) {
			out = append(out, m.Addr)
		}
	}
	if len(out) == 0 {
		return nil
	}
	self := c.LocalMember().Addr
	for _, seed := range c.cfg.Join {
		if seed != self && !slices.Contains(out, seed) {
			out = append(out, seed)
		}
	}
	return out
}

// NodeID returns this member's id.
func (c *Cluster) NodeID() string { return c.cfg.NodeID }

// Join contacts the configured seeds (Config.Join) and merges state with
// every one that answers. It retries, waiting JoinBackoff doubling up to
// JoinMaxBackoff (plus up to 25% jitter), until at least one seed answers,
// ctx ends (ErrJoin, also wrapping ctx.Err()) or the Cluster is closed
// (ErrClosed). It logs one line per attempt. With no seeds it returns nil
// at once: this node starts the cluster.
//
// An attempt in progress is not interrupted by ctx: each seed is bounded
// by the profile's stream timeout (10s LAN, 1s local).
func (c *Cluster) Join(ctx context.Context) error {
	seeds := c.cfg.Join
	if len(seeds) == 0 {
		return nil
	}
	wait := backoff.Backoff{Min: c.cfg.JoinBackoff, Max: c.cfg.JoinMaxBackoff, Jitter: 0.2}
	var lastErr error
	for attempt := 1; ; attempt++ {
		if err := c.joinable(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w: %v after %d attempts (last error: %v): %w",
				ErrJoin, seeds, attempt-1, lastErr, err)
		}
		start := time.Now()
		n, err := c.ml.Join(seeds)
		if n > 0 {
			c.log.Info("cluster: joined", "attempt", attempt, "seeds", seeds,
				"answered", n, "took", time.Since(start))
			return nil
		}
		if err == nil { // memberlist reports none answered with an error; be safe
			err = errors.New("no seed answered")
		}
		// memberlist's multierror spans lines; keep log lines and errors on one.
		err = errors.New(strings.Join(strings.Fields(err.Error()), " "))
		lastErr = err
		sleep := wait.Next()
		c.log.Warn("cluster: join attempt failed", "attempt", attempt, "seeds", seeds,
			"err", err, "retry_in", sleep)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %v after %d attempts (last error: %v): %w",
				ErrJoin, seeds, attempt, lastErr, ctx.Err())
		case <-c.done:
			t.Stop()
			return ErrClosed
		case <-t.C:
		}
	}
}

func (c *Cluster) joinable() error {
	c.life.Lock()
	defer c.life.Unlock()
	return c.lifeErrLocked()
}

// lifeErrLocked is ErrClosed or ErrLeft once the member closed or left,
// else nil; c.life is held.
func (c *Cluster) lifeErrLocked() error {
	switch {
	case c.life.closed:
		return ErrClosed
	case c.life.left:
		return ErrLeft
	}
	return nil
}

// Members returns every member in the current view, sorted by ID, the
// departed ones included (see View). The slice is the caller's.
func (c *Cluster) Members() []Member {
	return slices.Clone(c.table.snapshot().Members)
}

// View returns the current view. Its Members must not be modified.
func (c *Cluster) View() View {
	return c.table.snapshot()
}

// LocalMember returns this node as the table has it: alive, or left
// after Leave.
func (c *Cluster) LocalMember() Member {
	m, _ := c.table.get(c.cfg.NodeID)
	return m
}

// Subscribe returns a subscription to views, starting with the current
// one. See Subscription. Close it when done; closing the Cluster closes
// it too.
func (c *Cluster) Subscribe() *Subscription {
	return c.table.subscribe()
}

// SetMeta replaces this node's metadata and broadcasts it, waiting up to
// timeout (0: no limit) for the broadcast to go out. meta.NodeID may be
// empty (it is filled in) or must equal NodeID. Errors: ErrMetaTooLarge,
// ErrInvalidConfig (wrong NodeID), ErrTimeout (applied locally and still
// spreading), ErrLeft, ErrClosed.
func (c *Cluster) SetMeta(meta Meta, timeout time.Duration) error {
	if meta.NodeID == "" {
		meta.NodeID = c.cfg.NodeID
	}
	if meta.NodeID != c.cfg.NodeID {
		return fmt.Errorf("%w: Meta.NodeID %q must equal NodeID %q", ErrInvalidConfig, meta.NodeID, c.cfg.NodeID)
	}
	enc, err := meta.encode()
	if err != nil {
		return err
	}
	c.life.Lock()
	defer c.life.Unlock()
	if err := c.lifeErrLocked(); err != nil {
		return err
	}
	c.meta.Lock()
	c.meta.enc = enc
	c.meta.Unlock()
	if err := c.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("%w: metadata update after %v: %v", ErrTimeout, timeout, err)
	}
	return nil
}

// Leave announces that this node leaves, so that the others mark it
// "left" at once instead of detecting a failure, and waits up to timeout
// (0: no limit) for the announcement to go out. The node keeps gossiping
// (so the announcement spreads) until Close. Calling it again is a no-op.
// Errors: ErrTimeout (still spreading), ErrClosed.
//
// memberlist's own leave (a "dead" message about itself) reaches event
// delegates looking exactly like a failure (memberlist issue #293), so
// Leave first tells every alive member directly, over TCP and in
// parallel, that this node leaves; a member that misses that message but
// hears of the departure records a failure, and turns it into a leave
// when the message arrives late or when a peer's push/pull state says
// "left".
func (c *Cluster) Leave(timeout time.Duration) error {
	c.life.Lock()
	defer c.life.Unlock()
	if c.life.closed {
		return ErrClosed
	}
	if c.life.left {
		return nil
	}
	c.life.left = true
	start := time.Now()
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}

	c.table.leaveIntent(c.cfg.NodeID)
	told, peers := c.announceLeave(deadline)

	remaining := time.Duration(0)
	if timeout > 0 {
		remaining = max(timeout-time.Since(start), time.Millisecond)
	}
	if err := c.ml.Leave(remaining); err != nil {
		return fmt.Errorf("%w: leave after %v (%d of %d members told directly): %v",
			ErrTimeout, timeout, told, peers, err)
	}
	c.log.Info("cluster: left", "told", told, "members", peers, "took", time.Since(start))
	return nil
}

// announceLeave sends the leave intent to every other alive member, one
// goroutine each (counted in c.wg: a send outliving the deadline ends
// within the stream timeout), and waits for them until the deadline.
func (c *Cluster) announceLeave(deadline <-chan time.Time) (told, peers int) {
	msg, err := encodeLeaveIntent(c.cfg.NodeID)
	if err != nil {
		c.log.Warn("cluster: leave intent", "err", err)
		return 0, 0
	}
	var nodes []*memberlist.Node
	for _, m := range c.table.snapshot().Alive() {
		if m.ID == c.cfg.NodeID {
			continue
		}
		node, err := nodeOf(m)
		if err != nil {
			c.log.Warn("cluster: leave intent", "member", m.ID, "err", err)
			continue
		}
		nodes = append(nodes, node)
	}
	peers = len(nodes)
	results := make(chan error, peers) // senders never block
	for _, node := range nodes {
		c.wg.Go(func() {
			err := c.ml.SendReliable(node, msg)
			if err != nil {
				c.log.Debug("cluster: leave intent not delivered", "member", node.Name, "err", err)
			}
			results <- err
		})
	}
	for range peers {
		select {
		case err := <-results:
			if err == nil {
				told++
			}
		case <-deadline:
			return told, peers
		}
	}
	return told, peers
}

// Close stops gossip without announcing anything (call Leave first for a
// graceful departure; without it the others detect a failure), stops
// this package's goroutines and waits for them (the publisher, and any
// leave announcement still being sent), then offers every subscriber the
// final view and closes their channels. memberlist's listeners are closed
// when Close returns; its timers and handlers exit on their own within
// moments. A Leave or SetMeta in progress finishes first (each is bounded
// by its timeout). Later calls wait for the first to finish and return
// nil.
func (c *Cluster) Close() error {
	c.life.Lock()
	if c.life.closed {
		c.life.Unlock()
		<-c.closedCh
		return nil
	}
	c.life.closed = true
	err := c.ml.Shutdown()
	close(c.done)
	c.life.Unlock()

	c.wg.Wait()
	c.table.close()
	close(c.closedCh)
	c.log.Info("cluster: closed")
	if err != nil {
		return fmt.Errorf("cluster: shutdown: %w", err)
	}
	return nil
}

// delegate receives memberlist's callbacks. memberlist calls the event
// and conflict callbacks with its node lock held, so they only copy the
// node into the table (a map update under a mutex, no I/O, no channel
// that can block) and return.
type delegate struct {
	c *Cluster
}

var (
	_ memberlist.Delegate         = (*delegate)(nil)
	_ memberlist.EventDelegate    = (*delegate)(nil)
	_ memberlist.ConflictDelegate = (*delegate)(nil)
)

func (d *delegate) NodeMeta(limit int) []byte {
	d.c.meta.Lock()
	defer d.c.meta.Unlock()
	if len(d.c.meta.enc) > limit { // validated against MetaMaxSize; be safe
		return nil
	}
	return d.c.meta.enc
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }

// NotifyMsg receives the leave intents sent by Leave.
func (d *delegate) NotifyMsg(b []byte) {
	id, err := decodeLeaveIntent(b)
	if err != nil {
		d.c.log.Debug("cluster: ignoring a user message", "err", err)
		return
	}
	d.c.table.leaveIntent(id)
}

// LocalState shares the members this node knows have left, so that a
// member that recorded one of them as failed can correct it.
func (d *delegate) LocalState(join bool) []byte {
	b, err := encodeState(d.c.table.left())
	if err != nil {
		return nil
	}
	return b
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	left, err := decodeState(buf)
	if err != nil {
		d.c.log.Debug("cluster: ignoring a peer's state", "err", err)
		return
	}
	for _, id := range left {
		d.c.table.peerSaysLeft(id)
	}
}

// memberlist passes no usable state to the event callbacks (Node.State is
// shadowed by its internal nodeState.State and always reads alive), so
// the callback itself says alive or departed; table.apply tells a leave
// from a failure.
func (d *delegate) NotifyJoin(n *memberlist.Node)   { d.observe(n, StateAlive) }
func (d *delegate) NotifyUpdate(n *memberlist.Node) { d.observe(n, StateAlive) }
func (d *delegate) NotifyLeave(n *memberlist.Node)  { d.observe(n, StateDead) }

func (d *delegate) NotifyConflict(existing, other *memberlist.Node) {
	d.c.log.Warn("cluster: member id in use at another address; the newcomer is ignored",
		"member", existing.Name, "addr", existing.Address(), "newcomer_addr", other.Address())
}

func (d *delegate) observe(n *memberlist.Node, st State) {
	meta, err := decodeMeta(n.Name, n.Meta)
	if err != nil {
		d.c.log.Warn("cluster: undecodable metadata", "member", n.Name, "err", err)
	}
	d.c.table.apply(Member{ID: n.Name, Addr: n.Address(), State: st, Meta: meta})
}

// nodeOf returns the memberlist address of m, for a direct message.
func nodeOf(m Member) (*memberlist.Node, error) {
	host, port, err := net.SplitHostPort(m.Addr)
	if err != nil {
		return nil, err
	}
	ip := net.ParseIP(host)
	p, err := strconv.ParseUint(port, 10, 16)
	if ip == nil || err != nil {
		return nil, fmt.Errorf("cluster: bad member address %q", m.Addr)
	}
	return &memberlist.Node{Name: m.ID, Addr: ip, Port: uint16(p)}, nil
}
