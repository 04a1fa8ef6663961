// Package integration holds the long suites that need real services
// started by the project's scripts or built from this repository. They are
// behind the "integration" build tag, which .ci/run turns on; the default
// `go test ./...` does not build them.
//
//	scripts/cassandra.sh start
//	CONCURSUS_CASSANDRA=127.0.0.1:9042 go test -tags integration -p 1 -v ./test/integration/
//
// Without CONCURSUS_CASSANDRA the suites skip, except under CI=true, where
// they fail.
//
// # Cassandra outage (cassandra_failure_test.go)
//
// TestCassandraOutageUnderLoad stops and restarts Cassandra under load: never
// run this package in parallel with other Cassandra suites.
//
// # Cluster processes (cluster_test.go)
//
// TestClusterProcessesUnderLoad builds cmd/node and nats-server (the
// module go.mod requires) and runs them as real processes on loopback: one
// standalone nats-server on a free port, and node processes started with
// --cluster --store cassandra --gossip-profile lan, each in a fresh keyspace
// of its own test, gossiping on a free port (--gossip-port 0, read back from
// the node's admin reply). Three nodes form a cluster, then, while a client
// (package client, retrying with the same command id) drives commands over
// a few hundred aggregates:
//
//   - a fourth node joins: the test reports the fraction of partitions that
//     moved, exactly, by comparing the owner tables before and after;
//   - a node leaves gracefully (SIGTERM): it must exit 0 within its
//     --shutdown-timeout;
//   - a node is killed (SIGKILL): the test reports the takeover time, from
//     the kill until the survivors' rings have dropped it and until a
//     command to an aggregate it owned succeeds, in a line starting
//     "takeover after SIGKILL:".
//
// After each change it waits for the members to agree on one ring (every
// node answering on the admin cluster subject with the same fingerprint and
// the expected members) and keeps the load going. Finally it reads every
// history from the Cassandra log and checks that each acknowledged command
// has its event there exactly once, at the sequence its reply gave, that
// histories are gap-free, and that no event belongs to a command the client
// neither saw acknowledged nor saw fail. A request that fails after the
// client's retries fails the test, and so does any reply with a
// non-retryable error (a tracer subscribed to the clients' inboxes sees
// every attempt, late replies included); the test logs the retries per
// phase and the route, hop by hop, of some retried commands.
//
// TestIdempotencyProcesses (idempotency_test.go) runs three node processes
// the same way and shows the replicated idempotency filter at work: the
// same command id sent at once to every node's direct subject takes effect
// once and every sender gets the same outcome; the raft leader, which also
// owns the probed aggregates, is SIGKILLed and retries of its accepted and
// rejected commands get their original outcomes from the survivors; the
// survivors elect a new raft leader and keep recording; the Cassandra log
// holds exactly the original events.
//
// # Jepsen-style suite (jepsen_*_test.go)
//
// TestJepsen runs three node processes (--gossip-profile local, --stream)
// on a fresh keyspace with a nats-server whose config drops a client that
// misses two 1 s pings, and a workload of about 50 lightbulbs driven by
// plain nats.go requests (not package client) that logs every attempt and
// retries with the same command id; a fifth of its steps are state queries
// instead (CONCURSUS_JEPSEN_READS). Faults follow one another, each after
// a quiet period: SIGKILL and restart of a node, SIGSTOP past failure
// detection then SIGCONT, a gossip partition (iptables DROP on the node's
// gossip port both ways, plus a cgroup match for the TCP connections the
// node dials; the rules carry the comment "concursus-jepsen" and are
// removed at cleanup; without iptables this fault is skipped with a loud
// line), nats-server SIGKILL and restart, nats-server SIGSTOP then
// SIGCONT (frozen, connections open and silent), Cassandra stop and
// start, and a
// storm of every answered command id sent again to the queue and to each
// node's own subject. A checker then reads the events, event_buckets and
// commands tables with gocql (not through storage/cassandra) and checks
// gap-free histories, fence heads, acknowledged events present once at
// their sequences, one batch per command id, no event for refused or
// rejected commands, command records against the log and the replies, one
// outcome per command id, linearizability of every reply per aggregate,
// state queries included (porcupine with a lightbulb model: a read must
// return the state of an instant inside its window), and every logged
// event in the
// JetStream stream. It prints per-fault figures (client-visible errors,
// longest gap without a decision, time until the cut-off aggregates are
// served again, time until the nodes agree on one ring after the heal,
// throughput before and during) and fails on any violation, never on a
// figure. CONCURSUS_JEPSEN_* variables (seed, fault and quiet durations,
// the faults to run, …; see jepsenConfig) change the run, and
// CONCURSUS_JEPSEN_OUT keeps porcupine's pictures and the node logs of a
// run with violations. TestJepsenCheckerSelf shows the checker finding
// planted faults without any service.
//
// Process logs (JSON) go to files in the test's temporary directory; their
// tails are printed when the test fails, and their warnings and errors are
// summarised either way. Every process runs in its own process group and is
// killed at cleanup (and, through Pdeathsig, when the test binary dies), so
// nothing is left running. The keyspace is dropped when the test passes and
// kept for inspection when it fails.
package integration
