package cluster

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
)

// Profile names a set of memberlist timings (probe interval, suspicion
// multiplier, gossip interval, stream timeout).
type Profile string

const (
	// ProfileLAN is memberlist.DefaultLANConfig (probes every 1s with a
	// 500ms timeout, suspicion 4×log10(N)×1s, at least 4s, stream timeout
	// 10s) with the suspicion ceiling lowered from 6× to 2× that: a
	// suspect is declared dead after 4–8s in a small cluster, however few
	// members are left to confirm the suspicion. With memberlist's 6×, a
	// small cluster that recently lost a member (which memberlist still
	// counts for 30s) waited up to 24s — measured: 13s from a SIGKILL to a
	// new ring in a 3-node cluster, longer than a client's default 10s
	// timeout. The default.
	ProfileLAN Profile = "lan"
	// ProfileWAN is memberlist.DefaultWANConfig: probes every 5s with a 3s
	// timeout, suspicion 6×log10(N)×5s, stream timeout 30s.
	ProfileWAN Profile = "wan"
	// ProfileLocal is memberlist.DefaultLocalConfig tuned further for
	// several nodes on one machine (tests, demos): probes every 300ms with
	// a 200ms timeout, gossip every 20ms with 4×log10(N+1) retransmits,
	// suspicion 3×300ms (at least 900ms, at most 5.4s before a silent
	// member is declared dead), push/pull every 2s and a 1s stream
	// timeout. Not for real networks, where a GC pause would get a healthy
	// node suspected; and even on one machine a host starved of CPU sees
	// false suspicions (refuted, but they delay convergence).
	ProfileLocal Profile = "local"
)

// memberlistConfig returns memberlist's configuration for the profile.
func (p Profile) memberlistConfig() (*memberlist.Config, error) {
	switch p {
	case ProfileLAN:
		mc := memberlist.DefaultLANConfig()
		mc.SuspicionMaxTimeoutMult = 2
		return mc, nil
	case ProfileWAN:
		return memberlist.DefaultWANConfig(), nil
	case ProfileLocal:
		mc := memberlist.DefaultLocalConfig()
		mc.ProbeInterval = 300 * time.Millisecond
		mc.ProbeTimeout = 200 * time.Millisecond
		mc.GossipInterval = 20 * time.Millisecond
		mc.SuspicionMult = 3
		// DefaultLocalConfig's RetransmitMult 2 sends a broadcast only
		// twice in clusters under 10 members: in a gossip round to 3
		// peers the third misses it and waits for a push/pull (measured:
		// about 1 late join in 25 at 4 members). 4 is the LAN value.
		mc.RetransmitMult = 4
		mc.PushPullInterval = 2 * time.Second
		mc.TCPTimeout = time.Second
		mc.GossipToTheDeadTime = 5 * time.Second
		return mc, nil
	}
	return nil, fmt.Errorf("%w: Profile %q must be %q, %q or %q",
		ErrInvalidConfig, string(p), ProfileLAN, ProfileWAN, ProfileLocal)
}

// DefaultPort is the gossip port (UDP and TCP) DefaultConfig binds to, the
// same as memberlist's and Serf's.
const DefaultPort = 7946

// Limits checked by Validate.
const (
	// MaxNodeIDLen is the longest NodeID, in bytes.
	MaxNodeIDLen = 128
)

// Config configures one cluster member. Zero fields take the documented
// default, with one exception: BindPort 0 means "any free port", so the
// standard port 7946 comes only from DefaultConfig.
type Config struct {
	// NodeID is this member's name in the cluster; it must be unique among
	// the members and is what the router hashes. Letters, digits and
	// ". _ : -", at most 128 bytes.
	//
	// Default: "<hostname>-<pid>-<6 random hex digits>", a fresh identity
	// for every process. That is the safe choice when a restarted process
	// has lost its memory: the partitions and raft votes of the old
	// incarnation belong to an id that is declared dead and never comes
	// back, so nothing it promised can be claimed by a process that does not
	// remember it, and memberlist never has to reconcile a name reappearing
	// at a new address (it refuses a new address for a dead name; see
	// memberlist.Config.DeadNodeReclaimTime). Give a stable NodeID only when
	// the node's durable state (raft log and vote) survives restarts; the
	// ring then hands the same partitions back to the restarted node.
	NodeID string

	// BindAddr is the IP address gossip listens on (UDP and TCP).
	// "0.0.0.0" listens everywhere and advertises a private address.
	// Default "127.0.0.1".
	BindAddr string
	// BindPort is the gossip port. 0 picks a free port (memberlist binds
	// TCP on :0 and then UDP on the same number, retrying on a clash); read
	// it back from LocalMember().Addr. DefaultConfig sets DefaultPort.
	BindPort int

	// AdvertiseAddr is the IP address other members use to reach this one,
	// when it differs from BindAddr (NAT, containers). Default: BindAddr,
	// or a private address when BindAddr is "0.0.0.0".
	AdvertiseAddr string
	// AdvertisePort is the advertised port. Needs AdvertiseAddr and a
	// fixed BindPort. Default: BindPort.
	AdvertisePort int

	// Join lists seed members as "host:port". Join contacts all of them
	// and succeeds when at least one answers. Empty: this node starts a
	// new cluster and others join it.
	Join []string
	// JoinBackoff is the wait after the first failed join attempt; it
	// doubles after each further failure up to JoinMaxBackoff.
	// Default 500ms.
	JoinBackoff time.Duration
	// JoinMaxBackoff caps the wait between join attempts. Default 15s.
	JoinMaxBackoff time.Duration
	// RejoinInterval is how often a joined member contacts the members it
	// holds dead (failed, not left), and its seeds while some known member
	// is missing, to merge state with them again. memberlist itself never
	// contacts a member it declared dead once it stopped gossiping to the
	// dead, so without this two sides of a healed network partition would
	// stay apart for good. Negative: never. Default 2s.
	RejoinInterval time.Duration

	// SecretKey enables gossip encryption (AES-GCM) with this key of 16,
	// 24 or 32 bytes; every member must have the same key, and messages
	// that are not encrypted with it are dropped. Empty: no encryption.
	// ParseSecretKey reads the base64 form. Default none.
	SecretKey []byte

	// Meta is this member's metadata, gossiped to every member. Meta.NodeID
	// defaults to NodeID and must equal it. Encoded as JSON it must fit in
	// MetaMaxSize bytes.
	Meta Meta

	// Profile selects the memberlist timings. Default ProfileLAN.
	Profile Profile

	// transport, when set (by tests), replaces memberlist's UDP/TCP
	// transport: partition_test.go cuts members apart with it.
	transport memberlist.Transport

	// Tombstones is how many departed (dead or left) members views keep,
	// the most recent departures first, so that consumers can tell a leave
	// from a failure. Default 64.
	Tombstones int
}

// DefaultConfig returns the defaults described on Config, with BindPort
// DefaultPort and a fresh default NodeID.
func DefaultConfig() Config {
	return Config{
		NodeID:         DefaultNodeID(),
		BindAddr:       "127.0.0.1",
		BindPort:       DefaultPort,
		JoinBackoff:    500 * time.Millisecond,
		JoinMaxBackoff: 15 * time.Second,
		RejoinInterval: 2 * time.Second,
		Profile:        ProfileLAN,
		Tombstones:     64,
	}
}

// DefaultNodeID returns "<hostname>-<pid>-<6 random hex digits>", with the
// hostname cut to its first label and any byte NodeID does not allow
// replaced by '-'.
func DefaultNodeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	host, _, _ = strings.Cut(host, ".")
	host = strings.Map(func(r rune) rune {
		if idByte(r) && r != '.' && r != ':' {
			return r
		}
		return '-'
	}, host)
	if len(host) > 64 {
		host = host[:64]
	}
	var b [3]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

func idByte(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '.' || r == '_' || r == ':' || r == '-'
}

// ParseSecretKey decodes a base64 (standard or URL alphabet, padded or
// not) gossip key and checks it is 16, 24 or 32 bytes long.
func ParseSecretKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	var key []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: SecretKey is not base64: %v", ErrInvalidConfig, err)
	}
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return key, nil
}

func checkKey(key []byte) error {
	switch len(key) {
	case 0, 16, 24, 32:
		return nil
	}
	return fmt.Errorf("%w: SecretKey is %d bytes, must be 16, 24 or 32", ErrInvalidConfig, len(key))
}

// fillDefaults replaces zero fields (except BindPort) with their defaults.
func (c *Config) fillDefaults() {
	d := DefaultConfig()
	if c.NodeID == "" {
		c.NodeID = d.NodeID
	}
	if c.BindAddr == "" {
		c.BindAddr = d.BindAddr
	}
	if c.AdvertiseAddr != "" && c.AdvertisePort == 0 {
		c.AdvertisePort = c.BindPort
	}
	if c.JoinBackoff == 0 {
		c.JoinBackoff = d.JoinBackoff
	}
	if c.JoinMaxBackoff == 0 {
		c.JoinMaxBackoff = d.JoinMaxBackoff
	}
	if c.RejoinInterval == 0 {
		c.RejoinInterval = d.RejoinInterval
	}
	if c.Meta.NodeID == "" {
		c.Meta.NodeID = c.NodeID
	}
	if c.Profile == "" {
		c.Profile = d.Profile
	}
	if c.Tombstones == 0 {
		c.Tombstones = d.Tombstones
	}
}

// Validate reports the first unusable value, naming it. Every error wraps
// ErrInvalidConfig; an oversized Meta also wraps ErrMetaTooLarge. It
// checks the config as given: New fills the defaults first.
func (c Config) Validate() error {
	if err := validateNodeID(c.NodeID); err != nil {
		return err
	}
	if net.ParseIP(c.BindAddr) == nil {
		return fmt.Errorf("%w: BindAddr %q is not an IP address", ErrInvalidConfig, c.BindAddr)
	}
	if c.BindPort < 0 || c.BindPort > 65535 {
		return fmt.Errorf("%w: BindPort %d must be between 0 and 65535", ErrInvalidConfig, c.BindPort)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		return fmt.Errorf("%w: AdvertiseAddr %q is not an IP address", ErrInvalidConfig, c.AdvertiseAddr)
	}
	if c.AdvertisePort != 0 {
		switch {
		case c.AdvertisePort < 0 || c.AdvertisePort > 65535:
			return fmt.Errorf("%w: AdvertisePort %d must be between 1 and 65535", ErrInvalidConfig, c.AdvertisePort)
		case c.AdvertiseAddr == "":
			return fmt.Errorf("%w: AdvertisePort %d needs an AdvertiseAddr", ErrInvalidConfig, c.AdvertisePort)
		case c.BindPort == 0:
			// memberlist advertises the port it picked and ignores ours.
			return fmt.Errorf("%w: AdvertisePort %d needs a fixed BindPort, not 0", ErrInvalidConfig, c.AdvertisePort)
		}
	}
	for i, seed := range c.Join {
		host, port, err := net.SplitHostPort(seed)
		if err != nil || host == "" {
			return fmt.Errorf("%w: Join[%d] %q must be host:port", ErrInvalidConfig, i, seed)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("%w: Join[%d] %q has an invalid port", ErrInvalidConfig, i, seed)
		}
	}
	if c.JoinBackoff <= 0 {
		return fmt.Errorf("%w: JoinBackoff %v must be positive", ErrInvalidConfig, c.JoinBackoff)
	}
	if c.JoinMaxBackoff < c.JoinBackoff {
		return fmt.Errorf("%w: JoinMaxBackoff %v must be at least JoinBackoff %v", ErrInvalidConfig, c.JoinMaxBackoff, c.JoinBackoff)
	}
	if err := checkKey(c.SecretKey); err != nil {
		return err
	}
	if c.Meta.NodeID != c.NodeID {
		return fmt.Errorf("%w: Meta.NodeID %q must equal NodeID %q", ErrInvalidConfig, c.Meta.NodeID, c.NodeID)
	}
	if _, err := c.Meta.encode(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if _, err := c.Profile.memberlistConfig(); err != nil {
		return err
	}
	if c.Tombstones < 1 {
		return fmt.Errorf("%w: Tombstones %d must be at least 1", ErrInvalidConfig, c.Tombstones)
	}
	return nil
}

func validateNodeID(id string) error {
	if id == "" || len(id) > MaxNodeIDLen {
		return fmt.Errorf("%w: NodeID %q must be 1 to %d bytes", ErrInvalidConfig, id, MaxNodeIDLen)
	}
	for _, r := range id {
		if !idByte(r) {
			return fmt.Errorf("%w: NodeID %q has %q; use letters, digits and . _ : -", ErrInvalidConfig, id, r)
		}
	}
	return nil
}
