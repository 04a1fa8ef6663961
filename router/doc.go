// Package router decides which cluster member owns an aggregate.
//
// It is the pure core of the command path's routing step (DESIGN.md, "The
// command path", step 2): a function from a member set to a partition table,
// and lookups into that table. It does no I/O, starts no goroutine and reads
// no clock. Learning the members (gossip), forwarding a command to its owner
// and handing state over are the caller's work; this package only answers
// "who owns this?" and "what changed?".
//
// # The model
//
//	(aggregate type, aggregate id) ──xxhash──► partition ──ring table──► owner member id
//	        fixed for ever: depends only on PartitionCount   depends on the member set
//
// An aggregate's partition is its hash modulo Config.PartitionCount. It never
// changes while the cluster lives, whoever the members are. A partition's
// owner is read from the Ring's partition table, which New computes from the
// member set with consistent hashing with bounded loads
// (github.com/buraksezer/consistent): each member puts ReplicationFactor
// virtual nodes on a 64-bit hash ring, each partition is hashed onto the
// ring and taken by the first virtual node clockwise whose member still has
// room (see "Bounded loads").
//
//	ring, err := router.New(router.DefaultConfig(), []string{"node-b", "node-a", "node-c"})
//	owner := ring.Owner("lightbulb", "254ddc61-…") // "node-a", "node-b" or "node-c"
//
// Members are plain string ids (the cluster package's node ids); whatever
// else a node advertises (its NATS subject, its raft address) stays with the
// caller, keyed by id. Keeping the router ignorant of it means metadata
// updates never rebuild rings.
//
// # Why partitions
//
// Hashing aggregates straight onto the ring would work for lookups, but
// ownership would then move one aggregate at a time, and "what moved?" would
// be a question about an unbounded key space. With a fixed set of
// partitions in between:
//
//   - Ownership moves in whole partitions. A node that gains or loses a
//     partition knows it at once from two small tables (Moved), and it can
//     tell which of its cached aggregates are affected by their partition
//     (PartitionOf) without asking anybody.
//   - The table is small: PartitionCount owner ids. Two nodes can compare
//     tables, or just their Fingerprint, to check they route alike, and the
//     table can be logged in full when they do not.
//   - Lookups are a hash and an index: Owner does not allocate, takes no lock
//     and costs about 50 ns (BenchmarkOwner).
//
// # Choosing PartitionCount
//
// The count is fixed for a cluster's life: changing it re-homes nearly every
// aggregate. It also caps the cluster: a ring holds at most PartitionCount
// members (ErrTooManyMembers). The default, 1021, is a prime (primes spread
// hash values evenly under the modulo) sized for the largest cluster we plan
// for, 64 members, at about 16 partitions each. That granularity matters
// because bounded loads only cap the busiest member; how idle the idlest one
// is depends on how finely its share is cut. Measured at 64 members with 20
// virtual nodes: 1021 partitions give loads from 0.50× to 1.19× the average,
// 271 partitions (the library's default) 0.24× to 1.18×, the idlest member
// then owning one partition. The cost stays small: a 1021-entry table of
// shared strings is about 16 KiB, and a rebuild takes under a millisecond up
// to 10 members and a few at 50 (BenchmarkNew; with 271 partitions, 0.1 to 2
// ms). Past a few tens of members the virtual nodes (members ×
// ReplicationFactor), not the partitions, dominate that cost. Rebuilds
// happen once per membership change, so either is noise.
//
// # Hashing
//
// The partition of an aggregate is the xxhash of its type and id, length-
// prefixed so that no two (type, id) pairs share an encoding (hash.go). DESIGN
// says "hash the aggregate id"; we hash the pair because the pair is the
// aggregate's identity. With the id alone, aggregates of different types
// that share an id (an account and its settings, both keyed by the account
// id; natural keys such as e-mail addresses) would always land on the same
// member, turning one busy id into a hot spot across types. Nothing relies on
// co-location: commands address one aggregate each. The encoding and hash
// are fixed by golden tests, because every node, in every version, must
// compute the same partition.
//
// # Bounded loads
//
// Plain consistent hashing leaves some members with far more than their
// share. buraksezer/consistent bounds every member's load: no member owns
// more than MaxLoad = ceil(floor(PartitionCount/N) × LoadFactor) partitions
// (the library rounds the average down before scaling it; tests assert this
// exact bound). A partition whose first choice is full walks on to the next
// virtual node with room. This can push a partition off its natural owner
// when a member joins, so a change moves a little more than the joining
// member's own share. Measured over random member ids, adding the Nth member
// (N = 2..10) moves 0.9/N to 1.25/N of the partitions on average, a single
// draw anywhere from 0.35/N to 2.1/N (20 virtual nodes give one member
// between about half and twice its fair share), and nearly all of it goes to
// the new member. Removing a member moves its own partitions plus, measured
// for N = 2..10 and averaged over which member leaves, at most about 1.5% of
// the table in rebalancing
// (TestAddMemberMovesAboutOneNth, TestRemoveMemberMovesItsPartitions).
//
// The bound holds only while the members have room for every partition,
// which New guarantees by accepting only LoadFactor > 1 (then N members have
// room for at least N × (floor(P/N)+1) > P partitions) and at most
// PartitionCount members.
//
// # Handover
//
// When the membership changes, the caller builds the new Ring and asks
// Moved(prev, next) which partitions change hands. Every other partition
// keeps its owner, its cached state and its in-flight commands untouched.
// For a moved partition p, a node acts on its own role:
//
//   - prev.OwnerOf(p) == self: it lost p. It stops accepting commands for
//     aggregates in p (they get "not owner" and the sender retries with the
//     new ring), lets in-flight ones finish, and drops their cached state.
//   - next.OwnerOf(p) == self: it gained p. It loads an aggregate's state
//     fresh from the event log on its first command, never trusting a cache
//     from an earlier ownership.
//
// Moved(nil, ring) lists every partition: a node that has just joined owns
// nothing yet and starts cold. Nodes learn of membership changes at
// slightly different times, so for a moment two nodes may both believe they
// own a partition. The router cannot prevent that; the event log's fenced
// append does (DESIGN.md, invariant 1): the stale writer gets a conflict.
//
// # Determinism
//
// Every node must compute the same table from the same member set, whatever
// order it learnt the members in. New makes this so:
//
//   - The member ids are sorted and deduplicated before they reach the ring,
//     so the library sees the same input on every node.
//   - Member keys are length-prefixed before the library derives virtual
//     node names from them. The library names a member's virtual nodes
//     id+"0", id+"1", …; with bare ids, "node1"'s tenth virtual node and
//     "node11"'s first are both "node110", and whichever member was added
//     last takes the position: the table then depends on insertion order.
//     (ringMember explains the encoding; a test shows the hazard.)
//   - Nothing on the assignment path depends on Go map iteration order, time
//     or randomness. What it does depend on, the library's internals (how it
//     names virtual nodes, hashes partitions, walks the ring), is pinned by a
//     golden Fingerprint test that fails if an upgrade changes them.
//
// What nodes must share: the member set, the three Config values, and the
// library version. Fingerprint summarises the result; a cluster can compare
// it across nodes to detect a disagreement early.
package router
