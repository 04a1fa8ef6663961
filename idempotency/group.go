package idempotency

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/concursus-go/concursus/api"
	"github.com/concursus-go/concursus/cluster"
	"github.com/concursus-go/concursus/commandlog"
	"github.com/concursus-go/concursus/internal/backoff"
)

// Group is one member of the idempotency raft group: a raft server (id =
// the node id) over a TCP (or TLS) transport, whose state machine is a
// Filter. It proposes the records it is given in batches, forwarding them
// to the leader when it is not the leader itself, answers lookups from
// its local replica, and — when it is the leader — keeps the raft
// configuration in step with the cluster membership it observes.
//
// All methods are safe for concurrent use.
//
// Goroutines: one batching loop, one membership manager, and one per
// batch in flight (at most MaxInflight); Shutdown waits for all of them.
// Raft's own goroutines stop when Shutdown shuts raft down.
type Group struct {
	cfg    GroupConfig
	log    *slog.Logger
	filter *Filter
	raft   *raft.Raft
	addr   string

	proposals chan *proposal
	slots     chan struct{} // one token per batch in flight
	stop      chan struct{} // closed by Shutdown
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	joined     chan struct{} // closed when the group id is known
	joinedOnce sync.Once

	viewMu  sync.Mutex
	view    cluster.View
	hasView bool
	viewC   chan struct{} // capacity one: "a newer view is waiting"

	batches, records, forwarded, forwardedRecords atomic.Int64
	lastBatch                                     atomic.Int64 // Unix ns, last batch proposed as leader
	steps                                         atomic.Int64 // membership rounds run
	ready                                         atomic.Bool  // computed by the manager; see Ready
	readySince                                    atomic.Int64 // Unix ns when ready last became true
	doubtUntil                                    atomic.Int64 // Unix ns; see Doubt
	timeSteps                                     atomic.Int64 // see onAdvance

	// lastNow and lastMono are the filter's time and the Monotonic
	// reading at the last batch applied, and lastLive whether the replica
	// was ready then (not catching up): onAdvance's, under the filter's
	// lock.
	lastNow  int64
	lastMono time.Time
	lastLive bool

	mu struct {
		sync.Mutex
		conflicts   []string // other group ids advertised by alive members
		bootstrapID string   // the group id this node bootstrapped, if any
	}
}

// proposal is one unit of records on its way into the log: the encoded
// records of one Record call (or part of one) or of one forwarded
// proposal. done receives exactly one result.
type proposal struct {
	data      []byte
	n         int
	forwarded bool
	done      chan error
}

// NewGroup starts a raft server on cfg.BindAddr with an empty filter. The
// server belongs to no group yet: feed it cluster views with Observe, and
// it either bootstraps a new group (see the package documentation for the
// rule) or waits to be added by the leader of an existing one. A nil
// logger means slog.Default().
func NewGroup(cfg GroupConfig, logger *slog.Logger) (*Group, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("node", cfg.NodeID)
	stream, err := listen(cfg.BindAddr, cfg.AdvertiseAddr, cfg.TLS)
	if err != nil {
		return nil, err
	}
	hl := newHCLog(logger)
	trans := raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream: stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: hl,
	})
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.ShutdownOnRemove = false // a removed server that is alive may be added again
	rc.NoLegacyTelemetry = true
	rc.Logger = hl
	if err := raft.ValidateConfig(rc); err != nil {
		_ = trans.Close()
		return nil, fmt.Errorf("%w: raft: %v", ErrInvalidConfig, err)
	}
	g := &Group{
		cfg:       cfg,
		log:       logger,
		filter:    NewFilter(),
		addr:      stream.Addr().String(),
		proposals: make(chan *proposal, cfg.MaxBatch),
		slots:     make(chan struct{}, cfg.MaxInflight),
		stop:      make(chan struct{}),
		joined:    make(chan struct{}),
		viewC:     make(chan struct{}, 1),
	}
	g.filter.onGroup = g.onGroup
	g.filter.onJump = g.onJump
	g.filter.onAdvance = g.onAdvance
	g.ctx, g.cancel = context.WithCancel(context.Background())
	store := raft.NewInmemStore() // log and stable store: memory only, by design
	g.raft, err = raft.NewRaft(rc, g.filter, store, store, &snapshotStore{}, trans)
	if err != nil {
		_ = trans.Close()
		g.cancel()
		return nil, fmt.Errorf("idempotency: start raft: %w", err)
	}
	g.wg.Add(2)
	go g.batchLoop()
	go g.manage()
	return g, nil
}

func (g *Group) onGroup(id string) {
	g.joinedOnce.Do(func() {
		g.log.Info("idempotency: joined raft group", "group", id)
		close(g.joined)
	})
}

// onJump: a batch moved the filter's time far ahead at once (its
// proposer's clock is ahead of the last one's, or stepped forward), so
// records decided less than a window ago may have expired: the filter
// cannot vouch for its misses for a window. Every replica applies the same
// batch, so every node doubts, the one with the clock ahead too.
func (g *Group) onJump(from, to time.Time) {
	g.log.Warn("idempotency: the filter's time jumped ahead in one batch (a leader's clock is ahead, or stepped forward); records may have expired early",
		"from", from, "to", to, "jump", to.Sub(from))
	g.Doubt("the filter's time jumped ahead")
}

// stepTolerance is how much further than this replica's own clock the
// filter's time may move from one batch to the next before onAdvance
// doubts: a quarter of a bucket width, at least 1 s (commit latency varies
// from batch to batch) and at most 5 s.
func stepTolerance(window time.Duration, buckets int) time.Duration {
	return min(max(window/time.Duration(max(buckets, 1))/4, time.Second), 5*time.Second)
}

// onAdvance compares how far a batch moved the filter's time with how long
// it came after the last one here, by this replica's Monotonic clock. Time
// that ran ahead by more than stepTolerance was stamped by a clock ahead
// of the last batch's (a new leader's, or the leader's after a step
// forward), and the records at the end of their window may expire early
// by as much: less than a jump (jumpLimit), but enough to answer a retry
// within the window as a new command. The node doubts for a window and
// counts the step. The leader notices its own step too, as its Monotonic
// clock did not step.
//
// Only batches applied while the replica is ready, after one applied
// while it was ready too, are compared: a replica catching up (joining,
// restoring a snapshot) applies batches stamped seconds apart in a
// moment. Beyond that it is this replica's own judgment, not the log's:
// one that applied the batch before late (paused, lagging) sees the time
// run ahead as well, and doubts without need. That costs command-log
// reads, never a wrong answer; a step found while the node doubts already
// (a paused node does) is not counted.
func (g *Group) onAdvance(now int64, holding, restored bool) {
	mono, live := g.cfg.Monotonic(), g.ready.Load() && !restored
	prevNow, prevMono, prevLive := g.lastNow, g.lastMono, g.lastLive
	g.lastNow, g.lastMono, g.lastLive = now, mono, live
	if !holding || !live || !prevLive {
		return
	}
	ahead := time.Duration(now-prevNow) - mono.Sub(prevMono)
	tol := stepTolerance(g.cfg.Window, g.cfg.Buckets)
	if ahead <= tol || g.doubtUntil.Load()-g.cfg.Clock().UnixNano() >= int64(g.cfg.Window-tol) {
		return // within the tolerance, or doubting for (almost) a window already
	}
	g.timeSteps.Add(1)
	g.log.Warn("idempotency: the filter's time ran ahead of this node's clock between two batches (a leader's clock ahead of the last leader's or stepped forward, or this node applied the batch before late); records may expire early",
		"ahead", ahead, "tolerance", tol)
	g.Doubt("the filter's time ran ahead of this node's clock")
}

// Addr returns the raft address other servers dial ("host:port"): what
// the node advertises as cluster.Meta.RaftAddr.
func (g *Group) Addr() string { return g.addr }

// NodeID returns the node id (the raft server id).
func (g *Group) NodeID() string { return g.cfg.NodeID }

// GroupID returns the id of the raft group this node belongs to, "" while
// it belongs to none. The node advertises it in its gossiped metadata so
// that other nodes' MemberGroup can read it; it changes at most once (from
// "" to the id), which JoinedC signals.
func (g *Group) GroupID() string { return g.filter.GroupID() }

// Joined reports whether the node belongs to a raft group (its GroupID is
// known).
func (g *Group) Joined() bool { return g.filter.GroupID() != "" }

// JoinedC returns a channel closed when the node joins a group: the time
// to advertise GroupID.
func (g *Group) JoinedC() <-chan struct{} { return g.joined }

// Ready reports whether the filter serves: this node is a server of a
// group, its replica has caught up with the log as it stood when the node
// joined, and a leader was known within the last ProposeTimeout (so a
// routine election does not flip it). While it is false — the group is
// forming, this node is not (or no longer) part of it, or the group has
// lost its quorum — callers should answer retries from the command log
// and not feed the filter. The membership manager recomputes it every
// round (ReconcileInterval, or sooner on a view or leadership change);
// Ready itself is an atomic load, cheap enough for every command.
func (g *Group) Ready() bool { return g.ready.Load() }

// Complete reports whether the filter can vouch that a command id it does
// not hold was not decided within the window (executor.Completer): it is
// ready, has been ready for a whole Window, and no Doubt is in force.
// Outcomes decided while it was not ready, or by a member that was cut off
// or paused, may be missing from it for a while (a member feeds them once
// its filter serves again, but one that died never does); until the window
// has passed over them, the executor checks misses against the command
// log.
func (g *Group) Complete() bool {
	if !g.ready.Load() {
		return false
	}
	now := g.cfg.Clock().UnixNano()
	return now-g.readySince.Load() >= int64(g.cfg.Window) && now >= g.doubtUntil.Load()
}

// Doubt makes Complete false for a Window from now. The node calls it
// when a member fails or is cut off, when its own connection to the other
// members was interrupted, and when it finds it was paused: outcomes
// decided around then may never reach the filter.
func (g *Group) Doubt(why string) {
	until := g.cfg.Clock().Add(g.cfg.Window).UnixNano()
	for {
		old := g.doubtUntil.Load()
		if old >= until || g.doubtUntil.CompareAndSwap(old, until) {
			break
		}
	}
	g.log.Info("idempotency: filter misses are checked against the command log for a window", "why", why, "window", g.cfg.Window)
}

// Lookup returns the record of a command id held by the local replica (a
// memory read; it may lag the leader by the replication delay).
func (g *Group) Lookup(commandID string) (commandlog.Record, bool) {
	return g.filter.Lookup(commandID)
}

// Filter returns the group's state machine (for its Stats, or lookups).
func (g *Group) Filter() *Filter { return g.filter }

// Record proposes records and returns once they are committed to the
// group and — normally — applied by this node's replica too, so that its
// Lookup finds them (on a follower it waits for that up to twice
// HeartbeatTimeout; other replicas may apply them a moment later).
// Concurrent calls are batched into shared raft entries. On a follower
// the records are forwarded to the leader through GroupConfig.Forward. A
// record whose command id is already held keeps its first outcome.
//
// Errors: ErrInvalidRecord (nothing was proposed); ErrUnavailable when no
// leader committed the records within ProposeTimeout; ErrClosed after
// Shutdown; the context's error when ctx ends first. After any but the
// first the records may or may not be recorded, and recording them again
// is safe. recs is not retained.
func (g *Group) Record(ctx context.Context, recs []commandlog.Record) error {
	if len(recs) == 0 {
		return nil
	}
	select {
	case <-g.stop:
		return ErrClosed
	default:
	}
	var props []*proposal
	cur := &proposal{}
	for i := range recs {
		r := &recs[i]
		if r.CommandID == "" {
			return fmt.Errorf("%w: record %d has no command id", ErrInvalidRecord, i)
		}
		start := len(cur.data)
		cur.data = appendRecord(cur.data, r)
		if size := len(cur.data) - start; size > MaxRecordBytes {
			return fmt.Errorf("%w: record %q encodes in %d bytes, limit %d", ErrInvalidRecord, r.CommandID, size, MaxRecordBytes)
		}
		if cur.n > 0 && (cur.n == g.cfg.MaxBatch || len(cur.data) > g.cfg.MaxBatchBytes) {
			next := &proposal{data: append([]byte(nil), cur.data[start:]...)}
			cur.data = cur.data[:start]
			props = append(props, cur)
			cur = next
		}
		cur.n++
	}
	props = append(props, cur)
	if err := g.submit(ctx, props); err != nil {
		return err
	}
	g.awaitLocal(ctx, recs)
	return nil
}

// awaitLocal waits, briefly, until the local replica holds the records:
// committed through another node, they reach this follower's state machine
// with the leader's next message (a heartbeat at most, HeartbeatTimeout/10
// apart). Then a retry that comes back to this node finds them. The wait
// is bounded by twice HeartbeatTimeout: the records are committed either
// way, only local visibility is at stake.
func (g *Group) awaitLocal(ctx context.Context, recs []commandlog.Record) {
	var timeout <-chan time.Time
	for i := 0; i < len(recs); {
		applied := g.filter.appliedC()
		for i < len(recs) && g.filter.has(recs[i].CommandID) {
			i++
		}
		if i == len(recs) {
			return
		}
		if timeout == nil {
			t := time.NewTimer(2 * g.cfg.HeartbeatTimeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-applied:
		case <-timeout:
			return
		case <-ctx.Done():
			return
		case <-g.stop:
			return
		}
	}
}

func (g *Group) submit(ctx context.Context, props []*proposal) error {
	for _, p := range props {
		p.done = make(chan error, 1)
		select {
		case g.proposals <- p:
		case <-ctx.Done():
			return fmt.Errorf("idempotency: %w", ctx.Err())
		case <-g.stop:
			return ErrClosed
		}
	}
	var first error
	for _, p := range props {
		select {
		case err := <-p.done:
			if err != nil && first == nil {
				first = err
			}
		case <-ctx.Done():
			return fmt.Errorf("idempotency: %w (the records may still be recorded)", ctx.Err())
		case <-g.stop:
			return ErrClosed
		}
	}
	return first
}

// HandleForwarded takes a proposal a follower forwarded (the payload its
// Forward function was given) and commits it, when this node is the
// leader; it returns once the records are committed. It returns an error
// wrapping ErrNotLeader when this node is not the leader (then the
// follower retries with the current leader), ErrCorrupt for a payload
// that does not decode, or the errors of Record. Carriers call it on the
// node the follower addressed; ServeNATS does. payload is not retained.
func (g *Group) HandleForwarded(ctx context.Context, payload []byte) error {
	select {
	case <-g.stop:
		return ErrClosed
	default:
	}
	if g.raft.State() != raft.Leader {
		_, leader := g.raft.LeaderWithID()
		return fmt.Errorf("%w: %s (the leader is %q)", ErrNotLeader, g.cfg.NodeID, leader)
	}
	body, n, err := parseForwarded(payload)
	if err != nil {
		return err
	}
	p := &proposal{data: append([]byte(nil), body...), n: n, forwarded: true}
	return g.submit(ctx, []*proposal{p})
}

// batchLoop is the group commit: it takes a batch slot, then gathers every
// proposal waiting (up to MaxBatch records and MaxBatchBytes) into one
// batch and hands it to a dispatch goroutine. While MaxInflight batches
// are in flight, arriving proposals wait and form the next, larger batch.
func (g *Group) batchLoop() {
	defer g.wg.Done()
	var carry *proposal
	for {
		first := carry
		carry = nil
		if first == nil {
			select {
			case first = <-g.proposals:
			case <-g.stop:
				g.drain(nil)
				return
			}
		}
		select {
		case g.slots <- struct{}{}:
		case <-g.stop:
			g.drain(first)
			return
		}
		batch := []*proposal{first}
		n, size := first.n, len(first.data)
	gather:
		for n < g.cfg.MaxBatch && size < g.cfg.MaxBatchBytes {
			select {
			case p := <-g.proposals:
				if n+p.n > g.cfg.MaxBatch || size+len(p.data) > g.cfg.MaxBatchBytes {
					carry = p
					break gather
				}
				batch = append(batch, p)
				n += p.n
				size += len(p.data)
			default:
				break gather
			}
		}
		g.wg.Add(1)
		go g.dispatch(batch)
	}
}

// drain fails the proposals left when the group stops.
func (g *Group) drain(p *proposal) {
	if p != nil {
		p.done <- ErrClosed
	}
	for {
		select {
		case p := <-g.proposals:
			p.done <- ErrClosed
		default:
			return
		}
	}
}

func respond(ps []*proposal, err error) {
	for _, p := range ps {
		p.done <- err
	}
}

// dispatch commits one batch. Forwarded proposals are applied here or
// refused: forwarding them again could bounce them between nodes that
// disagree about the leader. Local proposals are applied when this node
// leads, else forwarded to the leader, retried until ProposeTimeout.
func (g *Group) dispatch(batch []*proposal) {
	defer g.wg.Done()
	defer func() { <-g.slots }()
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.ProposeTimeout)
	defer cancel()
	var local, fwd []*proposal
	for _, p := range batch {
		if p.forwarded {
			fwd = append(fwd, p)
		} else {
			local = append(local, p)
		}
	}
	if len(fwd) > 0 {
		err := fmt.Errorf("%w: %s", ErrNotLeader, g.cfg.NodeID)
		if g.raft.State() == raft.Leader {
			if err = g.apply(batch); err == nil {
				respond(batch, nil)
				return
			}
			if notLeader(err) {
				err = fmt.Errorf("%w: %s: %v", ErrNotLeader, g.cfg.NodeID, err)
			}
		}
		respond(fwd, err)
	}
	if len(local) > 0 {
		respond(local, g.propose(ctx, local))
	}
}

// notLeader reports raft errors after which another leader may take the
// entry (whether this attempt committed or not is unknown; applying twice
// is harmless).
func notLeader(err error) bool {
	return errors.Is(err, raft.ErrNotLeader) || errors.Is(err, raft.ErrLeadershipLost) ||
		errors.Is(err, raft.ErrLeadershipTransferInProgress) || errors.Is(err, ErrNotLeader)
}

var errNoLeader = errors.New("no known leader")

func (g *Group) propose(ctx context.Context, ps []*proposal) error {
	var payload []byte
	wait := backoff.Backoff{Min: 5 * time.Millisecond, Max: 200 * time.Millisecond}
	for {
		var err error
		if g.raft.State() == raft.Leader {
			err = g.apply(ps)
		} else if _, leader := g.raft.LeaderWithID(); leader == "" || string(leader) == g.cfg.NodeID {
			err = errNoLeader
		} else if g.cfg.Forward == nil {
			err = fmt.Errorf("%w: %s, and no Forward is configured", ErrNotLeader, g.cfg.NodeID)
		} else {
			if payload == nil {
				payload = forwardPayload(ps)
			}
			g.forwarded.Add(1)
			g.forwardedRecords.Add(int64(count(ps)))
			err = g.cfg.Forward(ctx, string(leader), payload)
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrCorrupt), errors.Is(err, ErrInvalidRecord):
			return err
		case errors.Is(err, raft.ErrRaftShutdown), errors.Is(err, ErrClosed) && g.ctx.Err() != nil:
			return ErrClosed
		}
		// Waiting for a new leader: the same short wait again; the leader
		// unreachable or busy: back off more.
		pause := wait.Peek()
		if !notLeader(err) {
			pause = wait.Next()
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			if g.ctx.Err() != nil {
				return ErrClosed
			}
			return fmt.Errorf("%w: records not committed within %v: %v", ErrUnavailable, g.cfg.ProposeTimeout, err)
		case <-t.C:
		}
	}
}

func count(ps []*proposal) int {
	n := 0
	for _, p := range ps {
		n += p.n
	}
	return n
}

func forwardPayload(ps []*proposal) []byte {
	size := 0
	for _, p := range ps {
		size += len(p.data)
	}
	var body []byte
	if len(ps) == 1 {
		body = ps[0].data
	} else {
		body = make([]byte, 0, size)
		for _, p := range ps {
			body = append(body, p.data...)
		}
	}
	return appendForwarded(make([]byte, 0, size+12), count(ps), body)
}

// apply appends one batch entry, stamped with this leader's clock, and
// waits until it is applied locally (which implies committed).
func (g *Group) apply(ps []*proposal) error {
	n, size := count(ps), 0
	for _, p := range ps {
		size += len(p.data)
	}
	now := g.cfg.Clock().UnixNano()
	data := appendBatchHeader(make([]byte, 0, size+32), batchHeader{at: now, window: int64(g.cfg.Window), buckets: g.cfg.Buckets, count: n})
	for _, p := range ps {
		data = append(data, p.data...)
	}
	g.batches.Add(1)
	g.records.Add(int64(n))
	g.lastBatch.Store(now)
	f := g.raft.Apply(data, g.cfg.ProposeTimeout)
	if err := f.Error(); err != nil {
		return err
	}
	if err, ok := f.Response().(error); ok && err != nil {
		return err
	}
	return nil
}

// Stats describes the group as this node sees it. It is declared in
// package api, whose admin replies carry it (ClusterInfo.Idempotency).
type Stats = api.IdempotencyStats

// Stats returns the group's figures.
func (g *Group) Stats() Stats {
	_, leader := g.raft.LeaderWithID()
	s := Stats{
		NodeID: g.cfg.NodeID, Addr: g.addr, GroupID: g.filter.GroupID(),
		Role: roleName(g.raft.State()), Leader: string(leader),
		Term: g.raft.CurrentTerm(), AppliedIndex: g.raft.AppliedIndex(),
		Filter: g.filter.Stats(), Complete: g.Complete(), TimeSteps: g.timeSteps.Load(),
		Batches: g.batches.Load(), Records: g.records.Load(),
		Forwarded: g.forwarded.Load(), ForwardedRecords: g.forwardedRecords.Load(),
	}
	if servers, err := g.servers(); err == nil {
		for _, sv := range servers {
			if sv.Suffrage == raft.Voter {
				s.Voters = append(s.Voters, string(sv.ID))
			} else {
				s.NonVoters = append(s.NonVoters, string(sv.ID))
			}
		}
		slices.Sort(s.Voters)
		slices.Sort(s.NonVoters)
	}
	g.mu.Lock()
	s.Conflicts = slices.Clone(g.mu.conflicts)
	g.mu.Unlock()
	return s
}

func roleName(s raft.RaftState) string {
	switch s {
	case raft.Leader:
		return "leader"
	case raft.Follower:
		return "follower"
	case raft.Candidate:
		return "candidate"
	}
	return "shutdown"
}

func (g *Group) servers() ([]raft.Server, error) {
	f := g.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, err
	}
	return f.Configuration().Servers, nil
}

// Shutdown stops the group: Record and HandleForwarded fail with ErrClosed
// from now on, a leader hands its leadership to an up-to-date voter (one
// TimeoutNow round, cheaper than letting the others time out), and the
// raft server and transport stop. The node stays in the raft
// configuration until the new leader removes it: at once if its member
// left the cluster gracefully, after FailureGrace otherwise. Shutdown
// waits for the group's goroutines and may be called more than once.
func (g *Group) Shutdown() error { return g.close(true) }

// close stops the group; graceful hands leadership over first. Tests use
// close(false) to simulate a crash.
func (g *Group) close(graceful bool) error {
	g.closeOnce.Do(func() {
		g.ready.Store(false)
		close(g.stop)
		if graceful && g.raft.State() == raft.Leader {
			if err := g.raft.LeadershipTransfer().Error(); err != nil {
				g.log.Debug("idempotency: no leadership transfer on shutdown", "err", err)
			}
		}
		g.cancel()
		g.closeErr = g.raft.Shutdown().Error() // also closes the transport
		g.wg.Wait()
		g.ready.Store(false)
	})
	return g.closeErr
}
