// Package cluster is a node's membership in the Concursus cluster: who the
// other nodes are, how to reach them, and when that changes. It runs
// github.com/hashicorp/memberlist (SWIM gossip: random probes, indirect
// probes through other members, suspicion with refutation, and periodic
// full-state push/pull over TCP) and turns what memberlist reports into
// versioned views of the member set, for the router to build its ring from
// and for the idempotency group to pick its voters from.
//
// # Lifecycle
//
//	c, err := cluster.New(cfg, logger) // listens on BindAddr:BindPort
//	err = c.Join(ctx)                  // seeds in cfg.Join; retries with backoff
//	sub := c.Subscribe()               // versioned member views (see below)
//	...
//	err = c.Leave(5 * time.Second)     // graceful: others record "left"
//	err = c.Close()                    // stop gossiping; waits for goroutines
//
// Close without Leave is an abrupt stop: the others detect a failure.
// A node that has left cannot rejoin (memberlist forbids it); start a new
// Cluster, normally in a new process with a new NodeID.
//
// # Metadata
//
// Each member gossips a Meta: its NodeID, the NATS subject on which it
// takes direct requests, its raft address and its software version,
// encoded as a small JSON object that must fit memberlist's 512-byte
// limit (MetaMaxSize; New and SetMeta return ErrMetaTooLarge). SetMeta
// changes it at run time and the others see an EventUpdate.
//
// # Views and events
//
// memberlist calls its event delegate with its node lock held and requires
// it not to block. The delegate here only copies the node into a member
// table (a map under a mutex) and drops a token into a channel of capacity
// one. One publisher goroutine wakes on the token, takes a snapshot of the
// table — a View: a version that grows by one per change, and the members
// sorted by ID — and offers it to every Subscription. A subscription's
// channel also has capacity one and always holds the newest view not yet
// received: a slow consumer skips intermediate views and never blocks
// anything, yet never misses the latest. The changes between the last view
// a consumer handled and the one it receives are Diff(prev, next):
//
//	join    a member became alive (new, or back after failing or leaving)
//	leave   it left gracefully (Leave)
//	failed  it was declared dead after probes failed
//	update  an alive member's metadata or address changed
//
// Views keep departed members as tombstones (the Config.Tombstones most
// recent), so that a consumer can tell a leave from a failure. States are
// alive, dead and left; memberlist's "suspect" is not reported (it fires
// no callback) and a suspect member stays alive until declared dead — so
// suspicion alone moves no partition.
//
// Leave versus failure: memberlist's own leave reaches event delegates
// looking exactly like a failure (Node.State is not filled in for the
// callbacks; hashicorp/memberlist issue #293). So Leave first tells every
// alive member directly, over TCP, that it is leaving, then lets
// memberlist broadcast the departure. A member that hears the departure
// first records a failure and turns it into a leave when the intent
// arrives; every push/pull also carries the list of members known to have
// left, which corrects any member that missed the intent.
//
// # Feeding the router
//
// The router is pure: it builds a partition table from a set of member
// IDs. A node keeps one ring per view it acts on:
//
//	sub := c.Subscribe()
//	var prev *router.Ring
//	for v := range sub.C() {
//		ring, err := router.New(rcfg, v.AliveIDs()) // sorted alive IDs
//		if err != nil { … }                       // e.g. router.ErrNoMembers
//		moved, _ := router.Moved(prev, ring)       // partitions to hand over
//		… // stop taking moved partitions; look up owners' Meta.Subject via v.Member(id)
//		prev = ring
//	}
//
// After Leave a node's own views show it as left, so its own ring already
// hands its partitions to the others while it drains.
//
// Views are local: two nodes may briefly disagree about the members and so
// about owners. That is safe because the event log fences appends; views
// converge within a gossip round or two (milliseconds on a LAN), and a
// failure takes the probe and suspicion time of the profile.
//
// # Timing profiles
//
// Config.Profile picks memberlist's timings: "lan" (the default;
// memberlist.DefaultLANConfig: probe every 1s, a failed member declared
// dead after roughly 5–25s), "wan" (DefaultWANConfig), and "local" for
// tests and single-machine demos (DefaultLocalConfig with 300ms probes
// and 20ms gossip: convergence in tens of milliseconds, failures detected
// in about a second).
//
// # Encryption
//
// Config.SecretKey (16, 24 or 32 bytes; ParseSecretKey reads base64)
// encrypts and authenticates all gossip with AES-GCM. Members with another
// key, or none, cannot join: their messages are dropped, and Join fails
// with ErrJoin when its context ends.
//
// # Identity
//
// The default NodeID is "<hostname>-<pid>-<random>", new for every
// process: a restarted process is a new member and the old one is
// declared dead. That is right when a restart loses the node's state
// (its cached ownership, an in-memory raft vote). Give a stable NodeID
// only when the node's raft state is durable; see Config.NodeID.
//
// # Logging and goroutines
//
// memberlist's log lines are routed into the given slog.Logger, DEBUG and
// INFO at debug level, WARN and ERR at warn level; nothing is written to
// stderr directly. This package starts one long-lived goroutine (the
// publisher) and, during Leave, one short one per member; Close waits for
// all of them. memberlist's own goroutines stop when Close shuts it down.
package cluster
