// Package idempotency is the cluster-wide memory of decided commands: a
// small hashicorp/raft group whose replicated state machine holds, for
// every command id decided within a time window, the command's outcome
// (the commandlog.Record: accepted with its sequence range, or rejected
// with its code). Before running a command, a node looks its id up in its
// local replica; once the outcome is durable, it records it.
//
// The package has two parts: Filter, the state machine (pure: bytes in,
// state out, no clock, no sockets), and Group, one raft server running
// it, with batching, forwarding to the leader, and membership driven by
// the cluster's gossip views.
//
// # The filter and its buckets
//
// Entries live in time buckets. A window W (GroupConfig.Window, default 10
// minutes) is cut into N buckets (Buckets, default 10) of width W/N (one
// minute). A bucket covers [k·W/N, (k+1)·W/N) of log time; the records of
// a batch go into the bucket that holds the filter's "now". A bucket is
// dropped whole when its end is a window old:
//
//	drop bucket when  bucket.end <= now - W
//
// so an entry recorded at t lives until now reaches end(t)+W, that is at
// least W and at most W + W/N (10 to 11 minutes by default), and the
// filter holds at most N+1 buckets: memory is bounded by the record rate
// times W + W/N, whatever the load. Dropping a bucket frees its memory at
// once (its maps and arena go); nothing is deleted entry by entry.
//
// Time comes from the log only. Each batch entry carries the proposing
// leader's clock reading, the window and the bucket count; the filter's
// now is the largest batch time applied so far (a lagging clock never
// moves it back). Every replica applies the same entries in the same
// order, so every replica holds and drops exactly the same entries,
// whatever its own clock says. Only the leader stamps batches (followers
// forward records, not times), so only the leader's clock matters: a
// leader whose clock runs ahead of the last leader's (or steps forward)
// expires entries early by its skew, on every replica alike. On an idle
// cluster the leader appends an empty, time-only batch once per bucket
// width, so expiry goes on. Two rules catch a time that runs ahead, while
// the filter holds entries:
//
//   - A batch that moves the time further at once than idle ticks can
//     (more than two bucket widths, plus a quarter of the window up to
//     10 s: a leader whose clock is far ahead or stepped forward) is a
//     jump: the filter counts it (FilterStats.TimeJumps), and every
//     replica, applying the same batch, makes its Group doubt (see below)
//     before the batch's expiry is seen.
//   - Each replica also compares how far every batch moved the time with
//     how long it came after the one before, by its own monotonic clock
//     (GroupConfig.Monotonic), which a step of the wall clock does not
//     move. Time that ran ahead by more than a quarter of a bucket width
//     (at least 1 s, at most 5 s) makes that Group doubt as well
//     (Stats.TimeSteps): this catches skews below a jump, the leader's
//     own step included. Only batches applied while the replica is ready
//     count (one catching up applies batches stamped seconds apart in a
//     moment). It is a replica's own judgment: one that applied the
//     previous batch late (paused, lagging) doubts without need, which
//     costs command-log reads, never a wrong answer.
//
// So a skew or step shortens the window by at most about that tolerance
// before the nodes stop vouching for their misses; keep clocks
// synchronised all the same.
//
// A command id recorded twice keeps its first record: the original
// outcome is what every retry must get.
//
// # Memory
//
// A bucket stores its records encoded back to back (see codec.go: an
// accepted command with UUID command and aggregate ids takes 105 bytes)
// in append-only 4–64 KiB chunks, and indexes them with a
// map[uint64]uint64 from the 64-bit xxhash of the command id to the
// record's location (the rare id whose hash is already taken in the
// bucket goes to a small side map, and every hit is checked against the
// stored id). Neither holds a pointer, so the garbage collector never
// scans the filter, and there is no allocation per entry.
//
// Measured (TestMemoryOneMillion, BenchmarkFilterMemory; Go 1.26, amd64):
// one million entries spread over a full window take 123 MiB of heap,
// about 129 bytes per entry (105 of record, the rest map slots and chunk
// slack). Lookup takes 0.1–0.3 µs for an unknown id (one probe per
// bucket) and 0.3–0.6 µs for a hit (the record is decoded), from parallel
// goroutines (BenchmarkLookup; the spread is the shared machine's load).
//
// Raft adds little to this. Its log is in memory until the next snapshot
// (taken every SnapshotInterval, 10s, once SnapshotThreshold entries have
// accumulated), after which TrailingLogs entries remain: at a steady load
// that is the records of the last few tens of seconds, a few percent of a
// 10-minute window. The latest snapshot is kept by reference, not as
// bytes (snapshotStore): it shares the filter's chunks and pins only the
// buckets that expired since it was taken. Measured with a one-node group
// (BenchmarkGroupMemory: 200k records, then a snapshot): 144 bytes per
// entry in all, against 143 for the bare filter holding the same entries
// in one bucket. With raft's own in-memory snapshot store it would be
// about 105 bytes more per entry (a full copy).
//
// # Snapshots
//
// A snapshot is the arena bytes as they are, bucket by bucket, with a
// small header and a CRC-32C: 105 bytes per entry, against 253 for the
// same records as JSON lines (TestSnapshotSizeVersusJSON). Taking one
// copies slice headers only (chunks are never rewritten below their
// length, so Persist reads them while Apply appends); restoring one
// re-encodes nothing, the restored buckets alias the snapshot buffer.
//
// # The group
//
// Each node runs one raft server (Group), whose server id is the node's
// cluster NodeID and whose address is GroupConfig.BindAddr (advertised
// as AdvertiseAddr, which the node gossips as cluster.Meta.RaftAddr). The
// transport is TCP, or TLS with GroupConfig.TLS (mutual TLS when the
// config asks for client certificates).
//
// Record proposes records. Calls from many goroutines go through one
// batching loop (a group commit): while up to MaxInflight batches are in
// flight, new records queue, and the next batch takes everything queued
// (up to MaxBatch records, MaxBatchBytes). On the leader a batch is one
// raft entry; on a follower it is forwarded to the leader with
// GroupConfig.Forward, and the leader's HandleForwarded merges it into
// its own next batch. Forwarding is pluggable: ServeNATS and NATSForwarder
// carry it over NATS request/reply on "<prefix>.raft.<node id>.propose";
// tests call HandleForwarded directly. A forwarded proposal is never
// forwarded again (a node that is no longer leader answers ErrNotLeader
// and the follower retries with the leader it now knows), so proposals
// cannot bounce between nodes that disagree about the leader. Retries are
// safe because a record applied twice changes nothing.
//
// Measured (BenchmarkRecord: three groups in one process on loopback, 2
// CPUs, 32 goroutines each recording one record per call, two thirds of
// them on followers): 50–80 thousand records/s, 4–10 records per raft
// entry. The machine is shared, so the figures move by ±30% from run to
// run; they are CPU-bound, the three servers sharing two cores.
//
// Lookup reads the local replica (an RWMutex-guarded memory read). A
// follower applies an entry a moment after the leader committed it, so a
// retry that reaches a follower within that moment may miss; the
// executor's second line of defence (below) covers it.
//
// Ready tells the executor whether to use the filter at all: it is true
// once this node is a server of a group and its replica has caught up
// with the log as it stood when it joined, and stays true while a leader
// was known within ProposeTimeout (a routine election does not flip it;
// a lost quorum does). While it is false the executor answers retries
// from the durable command log and does not feed the filter.
//
// # Membership: voters and non-voters
//
// Observe feeds the group every cluster.View. The leader reconciles the
// raft configuration with it on every view, on leadership changes and
// every ReconcileInterval (see plan in membership.go):
//
//   - a member that is alive, has a RaftAddr and does not advertise another
//     group is eligible; eligible members that are not servers are added as
//     non-voters;
//   - non-voters that are already servers (so they had a round to catch up)
//     are promoted, in id order, until there are min(Voters, healthy
//     servers) voters (Voters: default 3, at most 5); current voters are
//     kept while healthy, so changes cause no churn;
//   - a server whose member left gracefully is removed at once; one whose
//     member is dead, missing from the view or no longer eligible is
//     removed after FailureGrace (default 30s) — measured on the injected
//     clock from when this node first saw it so; every node keeps that
//     record, so a new leader does not restart the grace period;
//   - a dead voter is replaced only after it is removed, so the group never
//     counts a dead voter and its replacement at once;
//   - voters that gossip calls gone are removed only while the leader sees a
//     majority of the voters healthy. A leader cut off from gossip but not
//     from raft (the gossip ports partitioned) sees every other voter dead
//     while they still follow it; removing them would leave the group to the
//     minority side and the majority without a leader.
//
// A group of 3 voters survives the loss of one (5: two). If a majority of
// the voters is lost before the leader replaced them (two of three within
// FailureGrace), the group has no quorum and, since dead identities never
// come back (below), never regains it: Record fails with ErrUnavailable,
// and Lookup keeps answering from what each replica holds. The executor
// then falls back to the aggregates' history. Restarting the surviving
// nodes gives them fresh identities in no group, and they bootstrap a new
// one (see "Bootstrap").
//
// # Restart safety
//
// Raft's safety rests on servers remembering their term, vote and log: a
// server that voted, forgot, and votes again can elect two leaders in one
// term. The raft state here is kept in memory only, so it is forgotten on
// every restart. What keeps raft safe is that identities are never
// reused: the raft server id is the cluster NodeID, and the cluster
// package's default NodeID is fresh per process incarnation
// ("<host>-<pid>-<random>"). A restarted process is a new member and a
// new raft server with an empty log; its old identity is dead in the
// views and is removed from the configuration after FailureGrace, and
// nothing the old incarnation voted for or acknowledged can be claimed by
// a process that does not remember it. A stable NodeID must not be used
// with this package (it would need a durable stable store and log).
//
// # Bootstrap
//
// A group is bootstrapped by exactly one node, with a configuration of
// itself alone; everyone else is added by its leader. Members advertise
// the id of the group they belong to (Group.GroupID, gossiped as
// cluster.Meta.Group and read back by GroupConfig.MemberGroup). A node
// bootstraps only when all of these hold:
//
//   - it belongs to no group and its raft server has no configuration;
//   - the alive members with a raft address, and the groups they advertise,
//     have not changed for Settle (default 5s; 300ms in ProfileLocal);
//   - no alive member advertises a group;
//   - it has the smallest id among the alive members with a raft address.
//
// The group's id (derived from the bootstrapping node's id and time) is
// the first entry its leader commits; a node learns it when it applies
// that entry and then advertises it (JoinedC).
//
// Three nodes started at once: after gossip joined them, each sees the
// three alive, none in a group. After Settle, only the smallest id passes
// the rule; it bootstraps, becomes leader of a group of one, commits the
// group id and advertises it. The other two would not bootstrap anyway
// (not the smallest) and now see a group, so they wait; the leader adds
// them as non-voters and promotes them on its next round. One group, three
// voters. A node that arrives later, even with a smaller id, sees members
// advertising a group and waits to be added. If the bootstrapper dies
// before anyone joined, its group dies with it: the others see it dead,
// the views change, and after Settle the next smallest bootstraps.
//
// The rule relies on the views: two nodes bootstrap only if, for a whole
// Settle period, each saw itself as the smallest alive member, which
// takes a gossip partition (or views fed before cluster.Join succeeded:
// feed Observe only after joining). Then each side forms its own group.
// When the sides meet, every node reports the other group id in
// Stats().Conflicts and logs an error, and leaders never add a member of
// another group; the groups do not merge by themselves. Each works alone
// (the filter is weaker across them: a retry that reaches the other side
// misses, and the second line of defence takes over). To merge, restart
// the nodes of one group: they come back with fresh ids in no group, and
// are added to the other.
//
// All nodes restarting at once is the same as a fresh start: none
// advertises a group, one bootstraps, the filter starts empty.
//
// # When the filter cannot vouch for a miss
//
// A hit is always right (the first outcome recorded for an id stands). A
// miss is right only if every outcome decided within the window reached
// the group, which fails when: the group formed or re-formed within the
// window (outcomes from before it, or from the previous group, are not in
// it); it had no quorum for a while (members decided on the command log
// and feed their outcomes only once it serves again); a member was cut off,
// paused or died with outcomes not yet replicated. Group.Complete reports
// whether the filter can vouch for its misses: not until it has been ready
// for a whole window, and not for a window after Group.Doubt, which the
// node calls when a member fails or stops listening on NATS, when its own
// NATS connection comes back, and when it finds it was paused, and which
// the Group calls itself when the filter's time jumps or runs ahead of
// its own clock (see above). While it
// cannot, the executor checks misses against the command log (one read per
// new command, as without the filter).
//
// # What the filter does not cover
//
// The filter is transient (the "what happens" schedule): it can lose
// entries — when every node restarts, when a group loses its quorum, in
// the moment between a commit and a follower's apply — and it forgets
// every id after the window. The durable second line is the command log
// (consulted while Complete is false, on every cold load and after every
// failed fence) and the event log: events carry their command id, and the
// owner of an aggregate recognises a command id in the aggregate's history
// (the last commands of a cached aggregate, the whole history when it is
// loaded) and returns the original outcome.
//
// After the window, a retried command id is a new command as far as the
// filter is concerned: it runs again, unless the aggregate's recent
// history still recognises it. A command that fails validation against the
// new state is rejected; one that is valid again takes effect again.
// Clients must not retry a command id for longer than the window
// (TestWindowExpiresOnAllReplicas shows the id recorded afresh).
//
// # Integration
//
// What a node does with a Group:
//
//	g, err := idempotency.NewGroup(idempotency.GroupConfig{
//		NodeID:   clusterCfg.NodeID,                     // fresh per process
//		BindAddr: "0.0.0.0:7947", AdvertiseAddr: "10.0.0.5:7947",
//		Forward:  idempotency.NATSForwarder(nc, prefix),
//		// MemberGroup defaults to reading cluster.Meta.Group
//	}, logger)
//	stop, err := g.ServeNATS(nc, prefix)
//	meta.RaftAddr = g.Addr()                            // gossip it
//	go func() { <-g.JoinedC(); meta.Group = g.GroupID(); c.SetMeta(meta) }()
//	for v := range sub.C() { g.Observe(v) }              // after cluster.Join succeeded
//	… executor.Deps{Filter: g} …                         // Ready, Lookup, Record
//	stop(); g.Shutdown()
//
// # Logging and goroutines
//
// hashicorp/raft's log lines go to the given slog.Logger one level down
// (its info at debug, its warnings at info, its errors at warn: a dead
// follower makes the leader log errors until it is removed). Besides
// raft's own goroutines, a Group runs a batching loop, a membership
// manager and one goroutine per batch in flight; ServeNATS one per
// request being served (at most 256). Shutdown and ServeNATS's stop wait
// for theirs.
package idempotency
