package idempotency

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/concursus-go/concursus/cluster"
)

// Profile picks the group's timings: raft's heartbeat, election, lease
// and commit timeouts, and how often membership is reconciled.
type Profile string

const (
	// ProfileLAN (the default) uses hashicorp/raft's defaults: 1s heartbeat
	// and election timeouts, 500ms leader lease, 50ms commit timeout; a
	// 5s bootstrap settle period and 1s reconciliation.
	ProfileLAN Profile = "lan"
	// ProfileLocal is for tests and single-machine demos: 200ms heartbeat
	// and election timeouts, 100ms lease, 5ms commit timeout, 300ms
	// settle, 50ms reconciliation.
	ProfileLocal Profile = "local"
)

type timings struct {
	heartbeat, election, lease, commit, settle, reconcile time.Duration
}

func (p Profile) timings() (timings, error) {
	switch p {
	case ProfileLAN, "":
		return timings{time.Second, time.Second, 500 * time.Millisecond, 50 * time.Millisecond, 5 * time.Second, time.Second}, nil
	case ProfileLocal:
		return timings{200 * time.Millisecond, 200 * time.Millisecond, 100 * time.Millisecond, 5 * time.Millisecond, 300 * time.Millisecond, 50 * time.Millisecond}, nil
	}
	return timings{}, fmt.Errorf("%w: Profile %q must be %q or %q", ErrInvalidConfig, string(p), ProfileLAN, ProfileLocal)
}

// Limits and defaults.
const (
	// MaxVoters is the most voters a group keeps.
	MaxVoters = 5
	// DefaultWindow is how long a command id is remembered, at least.
	DefaultWindow = 10 * time.Minute
	// DefaultBuckets is how many time buckets a window is cut into.
	DefaultBuckets = 10
)

// ForwardFunc carries a proposal from a follower to the leader: it must
// deliver payload to the node leaderID and return what that node's
// Group.HandleForwarded returned (nil once the records are committed), or
// an error if it could not. It is called from several goroutines at once,
// must honour ctx, and must not retain payload. Errors wrapping
// ErrNotLeader make the follower look up the leader again at once; any
// other error is retried after a short backoff until ProposeTimeout.
// NATSForwarder returns one that speaks NATS request/reply.
type ForwardFunc func(ctx context.Context, leaderID string, payload []byte) error

// GroupConfig configures one member of the idempotency raft group. Zero
// fields take the documented default.
type GroupConfig struct {
	// NodeID is this node's cluster NodeID, used as its raft server id.
	// Required. Use a fresh id per process incarnation (the cluster
	// package's default): raft state is kept in memory only, so a restarted
	// process must not claim the votes of its previous life (see the
	// package documentation).
	NodeID string

	// BindAddr is where the raft transport listens, "host:port"; port 0
	// picks a free port (read it back with Group.Addr). Default
	// "127.0.0.1:0".
	BindAddr string
	// AdvertiseAddr is the address other servers dial, "host:port", when
	// it differs from BindAddr (NAT, containers, BindAddr 0.0.0.0). Port
	// 0 means the bound port. Default: the bound address, which must then
	// not be unspecified (0.0.0.0 or ::).
	AdvertiseAddr string
	// TLS, when set, runs the raft transport over TLS with this config,
	// used both to accept (server side: Certificates, ClientCAs and
	// ClientAuth for mutual TLS) and to dial (client side: RootCAs,
	// Certificates; ServerName defaults to the dialled host). Every member
	// must use TLS or none. Default none (plain TCP).
	TLS *tls.Config

	// Window is how long, at least, a recorded command id is remembered,
	// measured in the leader clock times carried by the log. Entries live
	// between Window and Window+Window/Buckets. Default 10 minutes.
	Window time.Duration
	// Buckets is how many buckets a window is cut into; whole buckets
	// expire together. 1 to 1000. Default 10.
	Buckets int

	// Voters is how many voters the group keeps, chosen from the alive
	// members; the others are non-voters. 1 to MaxVoters (5). Default 3.
	Voters int
	// FailureGrace is how long a server whose member is dead or missing
	// stays in the raft configuration before the leader removes it (a
	// member that left gracefully is removed at once). Default 30s.
	FailureGrace time.Duration
	// Settle is how long the membership views must stay unchanged before a
	// node that belongs to no group may bootstrap one. Default from
	// Profile (5s LAN, 300ms local).
	Settle time.Duration
	// ReconcileInterval is how often membership is reconciled without a
	// new view (grace periods expire, idle time advances). Default from
	// Profile (1s LAN, 50ms local).
	ReconcileInterval time.Duration

	// MaxBatch is the most records one raft entry carries. Default 1024.
	MaxBatch int
	// MaxBatchBytes is the most encoded bytes one raft entry (and one
	// forwarded proposal) carries; keep it under the NATS max payload when
	// forwarding over NATS. Default 512 KiB, at least MaxRecordBytes.
	MaxBatchBytes int
	// MaxInflight is how many batches a node has in flight at once
	// (applying as the leader, or forwarded as a follower); records that
	// arrive meanwhile wait and form the next batch. Fewer means larger
	// batches, more means more pipelining over a slow network. Default 2.
	MaxInflight int
	// ProposeTimeout bounds one batch's attempts to reach a leader and
	// commit. Default 5s.
	ProposeTimeout time.Duration

	// Profile selects raft timings. Default ProfileLAN.
	Profile Profile
	// HeartbeatTimeout, ElectionTimeout, LeaderLeaseTimeout and
	// CommitTimeout override the profile's raft timings (see
	// hashicorp/raft Config). Default from Profile.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotInterval, SnapshotThreshold and TrailingLogs bound the
	// in-memory raft log: every SnapshotInterval (staggered up to 2x) a
	// snapshot is taken if SnapshotThreshold entries were appended since
	// the last, and TrailingLogs entries are kept after it for lagging
	// followers. Defaults 10s, 1024, 256.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	TrailingLogs      uint64

	// Forward carries proposals from a follower to the leader. Default
	// none: Record works only on the leader (elsewhere it fails with
	// ErrUnavailable wrapping ErrNotLeader after ProposeTimeout).
	Forward ForwardFunc
	// MemberGroup returns the raft group id a member advertises in its
	// gossiped metadata (what that member's Group.GroupID returned), or ""
	// when it is in none. The bootstrap rule and the leader's choice of
	// servers depend on it. Default: m.Meta.Group.
	MemberGroup func(m cluster.Member) string

	// Clock is the time source for batch times, grace periods and the
	// settle period. Default time.Now.
	Clock func() time.Time
	// Monotonic measures how long this replica waited from one batch to
	// the next, to tell a batch time stamped by a clock ahead of the last
	// one's (see Group.onAdvance). Setting the wall clock must not move
	// it: time.Now's readings do not (their Sub uses the monotonic
	// reading). Default: Clock if that is set, else time.Now.
	Monotonic func() time.Time
}

// DefaultGroupConfig returns the defaults for a node with the given id.
func DefaultGroupConfig(nodeID string) GroupConfig {
	c := GroupConfig{NodeID: nodeID}
	c.fill()
	return c
}

func (c *GroupConfig) fill() {
	t, err := c.Profile.timings()
	if err != nil {
		return // Validate reports it
	}
	if c.Profile == "" {
		c.Profile = ProfileLAN
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, t.heartbeat)
	def(&c.ElectionTimeout, t.election)
	def(&c.LeaderLeaseTimeout, t.lease)
	def(&c.CommitTimeout, t.commit)
	def(&c.Settle, t.settle)
	def(&c.ReconcileInterval, t.reconcile)
	def(&c.Window, DefaultWindow)
	def(&c.FailureGrace, 30*time.Second)
	def(&c.ProposeTimeout, 5*time.Second)
	def(&c.SnapshotInterval, 10*time.Second)
	if c.BindAddr == "" {
		c.BindAddr = "127.0.0.1:0"
	}
	if c.Buckets == 0 {
		c.Buckets = DefaultBuckets
	}
	if c.Voters == 0 {
		c.Voters = 3
	}
	if c.MaxBatch == 0 {
		c.MaxBatch = 1024
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = 512 << 10
	}
	if c.MaxInflight == 0 {
		c.MaxInflight = 2
	}
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 1024
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 256
	}
	if c.Monotonic == nil {
		c.Monotonic = c.Clock // nil when Clock is
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Monotonic == nil {
		c.Monotonic = time.Now
	}
	if c.MemberGroup == nil {
		c.MemberGroup = metaGroup
	}
}

func metaGroup(m cluster.Member) string { return m.Meta.Group }

// Validate checks a filled-in config.
func (c *GroupConfig) Validate() error {
	if _, err := c.Profile.timings(); err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.NodeID == "":
		return bad("NodeID is empty")
	case len(c.NodeID) > cluster.MaxNodeIDLen:
		return bad("NodeID is %d bytes, limit %d", len(c.NodeID), cluster.MaxNodeIDLen)
	case c.Voters < 1 || c.Voters > MaxVoters:
		return bad("Voters %d must be 1 to %d", c.Voters, MaxVoters)
	case c.Buckets < 1 || c.Buckets > maxBuckets:
		return bad("Buckets %d must be 1 to %d", c.Buckets, maxBuckets)
	case c.Window < time.Duration(c.Buckets)*time.Millisecond:
		return bad("Window %v must be at least a millisecond per bucket (%d buckets)", c.Window, c.Buckets)
	case c.FailureGrace < 0:
		return bad("FailureGrace %v is negative", c.FailureGrace)
	case c.Settle < 0:
		return bad("Settle %v is negative", c.Settle)
	case c.ReconcileInterval <= 0:
		return bad("ReconcileInterval %v must be positive", c.ReconcileInterval)
	case c.MaxBatch < 1:
		return bad("MaxBatch %d must be positive", c.MaxBatch)
	case c.MaxBatchBytes < MaxRecordBytes:
		return bad("MaxBatchBytes %d must be at least MaxRecordBytes (%d)", c.MaxBatchBytes, MaxRecordBytes)
	case c.MaxInflight < 1:
		return bad("MaxInflight %d must be positive", c.MaxInflight)
	case c.ProposeTimeout <= 0:
		return bad("ProposeTimeout %v must be positive", c.ProposeTimeout)
	case c.HeartbeatTimeout < 5*time.Millisecond || c.ElectionTimeout < c.HeartbeatTimeout:
		return bad("HeartbeatTimeout %v must be at least 5ms and ElectionTimeout %v at least HeartbeatTimeout", c.HeartbeatTimeout, c.ElectionTimeout)
	case c.LeaderLeaseTimeout < 5*time.Millisecond || c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return bad("LeaderLeaseTimeout %v must be 5ms to HeartbeatTimeout (%v)", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	case c.CommitTimeout < time.Millisecond:
		return bad("CommitTimeout %v must be at least 1ms", c.CommitTimeout)
	case c.SnapshotInterval < 5*time.Millisecond:
		return bad("SnapshotInterval %v must be at least 5ms", c.SnapshotInterval)
	}
	if err := checkHostPort("BindAddr", c.BindAddr); err != nil {
		return err
	}
	if c.AdvertiseAddr != "" {
		if err := checkHostPort("AdvertiseAddr", c.AdvertiseAddr); err != nil {
			return err
		}
	}
	return nil
}

func checkHostPort(field, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		var p uint64
		if p, err = strconv.ParseUint(port, 10, 16); err == nil && p > 65535 {
			err = fmt.Errorf("port out of range")
		}
	}
	if err != nil {
		return fmt.Errorf("%w: %s %q is not host:port: %v", ErrInvalidConfig, field, addr, err)
	}
	return nil
}
